/* test_map_gc_stress.c - maps on the GC heap mutated by several threads
 * while collections run back to back.
 *
 * Each worker thread owns a map of pointer values (u64 -> box *) and shares
 * one more map, under a gm_mutex, with the others.  Workers insert, overwrite,
 * delete, look up, iterate (also deleting while iterating), bulk-delete,
 * clear and clone, and move boxes between the maps and their own stacks, while
 * the key range they use swings between small and large so that the maps
 * grow, grow again, go sparse and shrink.  A collector thread calls gm_gc()
 * back to back the whole time, and allocation triggers more cycles.
 *
 * Every value is a box whose contents are a checksum of the key and a
 * version; each worker keeps a plain (malloc'd, unscanned) model of what each
 * key must hold.  A box the collector freed too early reads back as garbage
 * (the heap clobbers nothing by itself, but the freed slot is reused for a
 * box with another key and version, which the model catches), and with
 * GMDEBUG=gccheckmark=1 (set by CMake for this file) every cycle is verified
 * by a second, stop-the-world mark: an object the cycle missed is fatal.
 *
 * Scale: GOMAP_TEST_SCALE multiplies the operation counts (CI runs 1.0);
 * GOMAP_SOAK_SECONDS > 0 instead runs the workers for that long (the soak
 * command, scripts/soak.sh).
 *
 * With fault injection, the same kind of work with the write barrier dropped
 * (gm_gc_fault_drop_barrier) around deletes, or around evacuation only, must
 * make checkmark fire: the proof that the tests above can fail. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../gc/gc_util.h"
#include "gc/gc_fault.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "engine.h"
#include "gc_box.h"

/* v = key in the low 32 bits, a version above: a box found under the wrong
 * key or with a stale version is caught. */
static uint64_t vof(uint64_t k, uint64_t ver) { return (k & 0xffffffffu) | (ver << 32); }

enum { KMAX = 1 << 16, HELD = 16, WORKERS = 2 };

static gm_map *shared_map;           /* a root (gm_root_add) */
static uint64_t *shared_model;       /* under shared_mu */
static gm_mutex shared_mu = GM_MUTEX_INIT;
static atomic_bool stop_collector;
static atomic_long collector_cycles;

static double soak_seconds(void)
{
    const char *s = getenv("GOMAP_SOAK_SECONDS");
    return s ? atof(s) : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *collector(void *arg)
{
    (void)arg;
    gm_thread_attach();
    while (!atomic_load(&stop_collector)) {
        gm_gc();
        atomic_fetch_add(&collector_cycles, 1);
    }
    gm_thread_detach();
    return NULL;
}

typedef struct worker {
    int id;
    long ops;                 /* operations to run (0: run until deadline) */
    double deadline;
    uint64_t seed;
    uint64_t *model;          /* own map: expected v per key, 0 = absent */
    size_t count;
    long failures;            /* model mismatches seen by this worker */
    long iterations, bulk_deletes, clones, moves, grows_seen, shrinks_seen;
} worker;

#define WFAIL(w, ...) do { (w)->failures++; if ((w)->failures < 10) fprintf(stderr, __VA_ARGS__); } while (0)

static void verify_all(worker *w, gm_map *m)
{
    size_t n = 0;
    gm_map_iter it;
    const void *kp;
    void *vp;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &kp, &vp)) {
        uint64_t k = *(const uint64_t *)kp;
        if (k >= KMAX || !box_ok(*(box **)vp, w->model[k]))
            WFAIL(w, "worker %d: key %llu holds a bad box\n", w->id, (unsigned long long)k);
        n++;
    }
    if (n != w->count || gm_map_len(m) != w->count)
        WFAIL(w, "worker %d: iteration saw %zu, len %zu, model %zu\n", w->id, n, gm_map_len(m), w->count);
    const char *e = gm_map_check(m);
    if (e) WFAIL(w, "worker %d: gm_map_check: %s\n", w->id, e);
    w->iterations++;
}

/* Iterate, deleting every other key seen and overwriting the rest: Go's
 * guarantee is that each entry present throughout is seen exactly once. */
static void iterate_mutating(worker *w, gm_map *m)
{
    gm_map_iter it;
    const void *kp;
    void *vp;
    size_t seen = 0, before = w->count;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &kp, &vp)) {
        uint64_t k = *(const uint64_t *)kp;
        if (k >= KMAX || w->model[k] == 0 || !box_ok(*(box **)vp, w->model[k])) {
            WFAIL(w, "worker %d: mutating iteration: bad entry %llu\n", w->id, (unsigned long long)k);
            continue;
        }
        if (seen++ & 1) {
            gm_map_delete(m, &k);
            w->model[k] = 0;
            w->count--;
        } else {
            uint64_t v = vof(k, test_rand(&w->seed) >> 33 | 1);
            box *b = new_box(v);
            gm_map_put(m, &k, &b);
            w->model[k] = v;
        }
    }
    if (seen != before) WFAIL(w, "worker %d: mutating iteration saw %zu of %zu\n", w->id, seen, before);
    w->iterations++;
}

static void shared_op(worker *w, uint64_t r, box **held, uint64_t *held_v, int *nheld, gm_map *m)
{
    uint64_t k = (r >> 20) % 4096;
    gm_mutex_lock(&shared_mu);
    switch ((r >> 8) & 3) {
    case 0: { /* put */
        uint64_t v = vof(k, (uint64_t)w->id << 24 | (r >> 40));
        box *b = new_box(v);
        gm_map_put(shared_map, &k, &b);
        shared_model[k] = v;
        break;
    }
    case 1: /* delete */
        if (gm_map_delete(shared_map, &k) != (shared_model[k] != 0))
            WFAIL(w, "shared: delete of %llu disagrees\n", (unsigned long long)k);
        shared_model[k] = 0;
        break;
    case 2: { /* get */
        box **p = gm_map_get(shared_map, &k);
        if ((p != NULL) != (shared_model[k] != 0) || (p && !box_ok(*p, shared_model[k])))
            WFAIL(w, "shared: key %llu wrong\n", (unsigned long long)k);
        break;
    }
    default: { /* take a box out of the shared map onto this thread's stack */
        box **p = gm_map_get(shared_map, &k);
        if (p && *nheld < HELD) {
            box *b = *p;
            if (!box_ok(b, shared_model[k])) WFAIL(w, "shared: take %llu bad\n", (unsigned long long)k);
            held[*nheld] = b;
            held_v[*nheld] = shared_model[k];
            (*nheld)++;
            gm_map_delete(shared_map, &k);
            shared_model[k] = 0;
            w->moves++;
        }
        break;
    }
    }
    gm_mutex_unlock(&shared_mu);
    (void)m;
}

/* Put the boxes held on the stack into the own map, under their keys. */
static void drop_held(worker *w, gm_map *m, box **held, uint64_t *held_v, int *nheld)
{
    for (int i = 0; i < *nheld; i++) {
        uint64_t k = held_v[i] & 0xffffffffu;
        if (!box_ok(held[i], held_v[i])) WFAIL(w, "worker %d: held box %d bad\n", w->id, i);
        if (w->model[k] == 0) w->count++;
        gm_map_put(m, &k, &held[i]);
        w->model[k] = held_v[i];
        held[i] = NULL;
    }
    *nheld = 0;
}

static void *work(void *arg)
{
    worker *w = arg;
    gm_thread_attach();
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    box *held[HELD] = {0};
    uint64_t held_v[HELD];
    int nheld = 0;
    uint64_t range = 256, ver = 1;
    size_t lastB = map_nbuckets(m);
    for (long step = 0;; step++) {
        if (w->ops ? step >= w->ops : (step % 1024 == 0 && now_s() > w->deadline)) break;
        if (step % 20000 == 0) range = range == 256 ? KMAX : range == KMAX ? 2048 : 256;
        uint64_t r = test_rand(&w->seed), k = (r >> 24) % range;
        unsigned op = r & 127;
        if (op < 50) {
            uint64_t v = vof(k, ver++);
            box *b = new_box(v);
            gm_map_put(m, &k, &b);
            if (w->model[k] == 0) w->count++;
            w->model[k] = v;
        } else if (op < 80) {
            bool had = gm_map_delete(m, &k);
            if (had != (w->model[k] != 0)) WFAIL(w, "worker %d: delete %llu disagrees\n", w->id, (unsigned long long)k);
            if (had) w->count--;
            w->model[k] = 0;
        } else if (op < 105) {
            box **p = gm_map_get(m, &k);
            if ((p != NULL) != (w->model[k] != 0) || (p && !box_ok(*p, w->model[k])))
                WFAIL(w, "worker %d: get %llu wrong\n", w->id, (unsigned long long)k);
        } else if (op < 120) {
            shared_op(w, r, held, held_v, &nheld, m);
        } else if (op < 124) {
            drop_held(w, m, held, held_v, &nheld);
        } else {
            unsigned rare = (unsigned)(r >> 48) % 1024;
            if (rare < 8) verify_all(w, m);
            else if (rare < 12) iterate_mutating(w, m);
            else if (rare == 12) { /* bulk delete: everything, in key order */
                for (uint64_t kk = 0; kk < KMAX; kk++)
                    if (w->model[kk]) { gm_map_delete(m, &kk); w->model[kk] = 0; }
                w->count = 0;
                w->bulk_deletes++;
            } else if (rare == 13) {
                gm_map *c = gm_map_clone(m);
                verify_all(w, c);
                w->clones++;
            } else if (rare == 14 && (r >> 60) == 0) {
                gm_map_clear(m);
                memset(w->model, 0, KMAX * sizeof *w->model);
                w->count = 0;
            }
        }
        size_t nb = map_nbuckets(m);
        if (nb > lastB) w->grows_seen++;
        if (nb < lastB) w->shrinks_seen++;
        lastB = nb;
        if (gm_map_len(m) != w->count) {
            WFAIL(w, "worker %d: len %zu, model %zu at step %ld\n", w->id, gm_map_len(m), w->count, step);
            break;
        }
    }
    drop_held(w, m, held, held_v, &nheld);
    verify_all(w, m);
    gm_keep_alive(m);
    gm_thread_detach();
    return NULL;
}

static void join(pthread_t t)
{
    gm_blocking_begin();
    pthread_join(t, NULL);
    gm_blocking_end();
}

TEST(threads_mutate_maps_while_collections_run)
{
    double soak = soak_seconds();
    shared_model = calloc(KMAX, sizeof *shared_model);
    REQUIRE(shared_model);
    shared_map = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    gm_root_add(&shared_map, sizeof shared_map);
    gm_memstats before;
    gm_read_memstats(&before);

    atomic_store(&stop_collector, false);
    atomic_store(&collector_cycles, 0);
    pthread_t ct, wt[WORKERS];
    worker ws[WORKERS];
    REQUIRE(pthread_create(&ct, NULL, collector, NULL) == 0);
    for (int i = 0; i < WORKERS; i++) {
        ws[i] = (worker){ .id = i, .ops = soak > 0 ? 0 : scaled(1500000), .deadline = now_s() + soak,
                          .seed = 0x5eed + (uint64_t)i * 7919, .model = calloc(KMAX, sizeof(uint64_t)) };
        REQUIRE(ws[i].model);
        REQUIRE(pthread_create(&wt[i], NULL, work, &ws[i]) == 0);
    }
    for (int i = 0; i < WORKERS; i++) join(wt[i]);
    atomic_store(&stop_collector, true);
    join(ct);

    long failures = 0, iterations = 0, bulk = 0, moves = 0, grows = 0, shrinks = 0;
    for (int i = 0; i < WORKERS; i++) {
        failures += ws[i].failures;
        iterations += ws[i].iterations;
        bulk += ws[i].bulk_deletes;
        moves += ws[i].moves;
        grows += ws[i].grows_seen;
        shrinks += ws[i].shrinks_seen;
        free(ws[i].model);
    }
    /* the shared map against its model */
    size_t shared_count = 0;
    for (uint64_t k = 0; k < KMAX; k++) {
        box **p = gm_map_get(shared_map, &k);
        if (shared_model[k]) shared_count++;
        if ((p != NULL) != (shared_model[k] != 0) || (p && !box_ok(*p, shared_model[k]))) failures++;
    }
    CHECK_EQ_U(gm_map_len(shared_map), shared_count);
    const char *e = gm_map_check(shared_map);
    CHECK_MSG(e == NULL, "shared map: %s", e);
    gm_memstats after;
    gm_read_memstats(&after);
    long cycles = (long)(after.num_gc - before.num_gc);
    printf("stress: %ld cycles (%ld by the collector thread), %ld verifications, %ld bulk deletes, "
           "%ld moves via stacks, %ld grows, %ld shrinks seen\n",
           cycles, atomic_load(&collector_cycles), iterations, bulk, moves, grows, shrinks);
    CHECK_EQ_U(failures, 0);
    /* the run must have been a real one: many cycles during the mutation,
     * growth and shrinking both happened */
    CHECK_MSG(cycles >= 20, "only %ld cycles", cycles);
    CHECK(grows > 0);
    CHECK(shrinks > 0);
    CHECK(bulk > 0 && moves > 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(&shared_map);
    shared_map = NULL;
    free(shared_model);
}
