/* bench_sync.c - gomap's sync against its peers, in one process.
 *
 *   bench_sync [--reps R] [--quick]
 *
 * Part 1, mutex: lock + counter++ + unlock, by 1 thread (uncontended) and by
 * 2 threads on one mutex: gm_mutex vs pthread_mutex (default attributes).
 * Part 2, maps: 1024 preloaded u64 keys, every operation on a key that stays
 * present ("stable keys"): a load, or a store of a new value.  read-mostly
 * is 99% loads, mixed 90%, at 1 and 2 threads.  Peers:
 *   syncmap   gm_syncmap (loads take no lock; stores CAS a new value box)
 *   syncmap-gc  gm_syncmap_new_gc: the same on the GC heap (boxes are GC
 *             objects, no EBR; every call is a safepoint); the workers
 *             attach themselves on their first call
 *   mutex+map gm_mutex around gm_map
 *   ck_ht     Concurrency Kit's SPMC hash table (direct mode: 64-bit keys
 *             and values in the table), lock-free loads, stores serialised
 *             by a pthread mutex (ck_ht allows one writer)
 *   urcu_lfht liburcu's lock-free hash table (memb flavour), loads under
 *             rcu_read_lock, stores by cds_lfht_replace + call_rcu
 * Every configuration runs R times, implementations interleaved within each
 * repetition so that machine noise hits all alike; the table shows medians.
 * Throughput is total operations per second over all threads.  The last
 * columns give each thread's CPU time per operation (CLOCK_THREAD_CPUTIME_ID):
 * on a shared machine they show what contention costs even when the wall
 * clock cannot (a lock waiter asleep in the kernel is not counted, so for
 * the locked peers they understate).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_ht.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "gomap/gc.h"
#include "gomap/map.h"
#include "gomap/sync.h"

#define NKEYS 1024
#define MAXT 2

static double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- a run: T threads start together, each does `ops` operations -------- */

typedef struct run run;
typedef void (*worker_fn)(run *r, int tid);
struct run {
    worker_fn fn;
    void *impl;
    long ops;
    int read_pct;
    int nthreads;
    int ready, go;   /* atomic */
    double cpu_ns[MAXT];   /* CPU time each worker used */
};

typedef struct { run *r; int tid; } targ;

static void *thread_main(void *p)
{
    targ *a = p;
    if (a->r->fn == NULL) return NULL;
    rcu_register_thread();
    __atomic_add_fetch(&a->r->ready, 1, __ATOMIC_ACQ_REL);
    while (!__atomic_load_n(&a->r->go, __ATOMIC_ACQUIRE)) {}
    double c0 = thread_cpu_ns();
    a->r->fn(a->r, a->tid);
    a->r->cpu_ns[a->tid] = thread_cpu_ns() - c0;
    rcu_unregister_thread();
    return NULL;
}

/* The CPU time the last run's workers got, as a fraction of wall time times
 * their number: near 1 when every worker had a CPU of its own throughout.
 * On a machine busy with other work, 2-thread runs share CPUs and their
 * wall-clock figures say little about scaling. */
static double last_cpu_share;

/* Returns million operations per second, all threads together; *cpu_op gets
 * the CPU time per operation of one thread (mean over threads), which
 * another process's load does not inflate. */
static double run_threads(worker_fn fn, void *impl, int nthreads, long ops, int read_pct,
                          double *cpu_op)
{
    run r = { fn, impl, ops, read_pct, nthreads, 0, 0, { 0 } };
    pthread_t th[MAXT];
    targ args[MAXT];
    for (int i = 0; i < nthreads; i++) {
        args[i] = (targ){ &r, i };
        pthread_create(&th[i], NULL, thread_main, &args[i]);
    }
    while (__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE) < nthreads) {}
    double t0 = now_s();
    __atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    double cpu = 0;
    for (int i = 0; i < nthreads; i++) cpu += r.cpu_ns[i];
    if (cpu_op) *cpu_op = cpu / nthreads / (double)ops;
    last_cpu_share = cpu / (dt * 1e9 * nthreads);
    return (double)ops * nthreads / dt / 1e6;
}

/* ---- part 1: mutexes ------------------------------------------------------ */

static gm_mutex gmu;
static pthread_mutex_t pmu = PTHREAD_MUTEX_INITIALIZER;
static volatile uint64_t shared_counter;

static void w_gm_mutex(run *r, int tid)
{
    (void)tid;
    for (long i = 0; i < r->ops; i++) {
        gm_mutex_lock(&gmu);
        shared_counter++;
        gm_mutex_unlock(&gmu);
    }
}

static void w_pthread_mutex(run *r, int tid)
{
    (void)tid;
    for (long i = 0; i < r->ops; i++) {
        pthread_mutex_lock(&pmu);
        shared_counter++;
        pthread_mutex_unlock(&pmu);
    }
}

/* ---- part 2: maps ---------------------------------------------------------- */

static uint64_t key_of(uint64_t i) { return i * 0x9e3779b97f4a7c15ull + 1; }

/* syncmap */
static void w_syncmap(run *r, int tid)
{
    gm_syncmap *m = r->impl;
    uint64_t s = 0x1234567ull * (uint64_t)(tid + 1), sink = 0, v;
    for (long i = 0; i < r->ops; i++) {
        uint64_t x = xs(&s), k = key_of(x % NKEYS);
        if ((int)((x >> 32) % 100) < r->read_pct) {
            if (gm_syncmap_load(m, &k, &v)) sink += v;
        } else {
            v = (uint64_t)i;
            gm_syncmap_store(m, &k, &v);
        }
    }
    if (sink == 42) puts("");
}

/* mutex + map */
typedef struct { gm_mutex mu; gm_map *m; } locked_map;

static void w_mutex_map(run *r, int tid)
{
    locked_map *lm = r->impl;
    uint64_t s = 0x1234567ull * (uint64_t)(tid + 1), sink = 0;
    for (long i = 0; i < r->ops; i++) {
        uint64_t x = xs(&s), k = key_of(x % NKEYS);
        gm_mutex_lock(&lm->mu);
        if ((int)((x >> 32) % 100) < r->read_pct) {
            uint64_t *p = gm_map_get_u64(lm->m, k);
            if (p) sink += *p;
        } else {
            *(uint64_t *)gm_map_assign_u64(lm->m, k) = (uint64_t)i;
        }
        gm_mutex_unlock(&lm->mu);
    }
    if (sink == 42) puts("");
}

/* ck_ht */
static void *ck_malloc_fn(size_t n) { return malloc(n); }
static void *ck_realloc_fn(void *p, size_t o, size_t n, bool d) { (void)o; (void)d; return realloc(p, n); }
static void ck_free_fn(void *p, size_t n, bool d) { (void)n; (void)d; free(p); }
static struct ck_malloc ck_alloc = { ck_malloc_fn, ck_realloc_fn, ck_free_fn };
typedef struct { ck_ht_t ht; pthread_mutex_t wmu; } ck_map;

static void w_ck_ht(run *r, int tid)
{
    ck_map *cm = r->impl;
    uint64_t s = 0x1234567ull * (uint64_t)(tid + 1), sink = 0;
    for (long i = 0; i < r->ops; i++) {
        uint64_t x = xs(&s), k = key_of(x % NKEYS);
        ck_ht_hash_t h;
        ck_ht_entry_t e;
        ck_ht_hash_direct(&h, &cm->ht, (uintptr_t)k);
        if ((int)((x >> 32) % 100) < r->read_pct) {
            ck_ht_entry_key_set_direct(&e, (uintptr_t)k);
            if (ck_ht_get_spmc(&cm->ht, h, &e)) sink += ck_ht_entry_value_direct(&e);
        } else {
            ck_ht_entry_set_direct(&e, h, (uintptr_t)k, (uintptr_t)i);
            pthread_mutex_lock(&cm->wmu);
            ck_ht_set_spmc(&cm->ht, h, &e);
            pthread_mutex_unlock(&cm->wmu);
        }
    }
    if (sink == 42) puts("");
}

/* liburcu lfht */
typedef struct lf_node {
    uint64_t key, val;
    struct cds_lfht_node node;
    struct rcu_head rcu;
} lf_node;

static unsigned long lf_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (unsigned long)k;
}

static int lf_match(struct cds_lfht_node *n, const void *key)
{
    return caa_container_of(n, lf_node, node)->key == *(const uint64_t *)key;
}

static void lf_free(struct rcu_head *h)
{
    free(caa_container_of(h, lf_node, rcu));
}

static void w_urcu(run *r, int tid)
{
    struct cds_lfht *ht = r->impl;
    uint64_t s = 0x1234567ull * (uint64_t)(tid + 1), sink = 0;
    for (long i = 0; i < r->ops; i++) {
        uint64_t x = xs(&s), k = key_of(x % NKEYS);
        unsigned long h = lf_hash(k);
        struct cds_lfht_iter it;
        if ((int)((x >> 32) % 100) < r->read_pct) {
            rcu_read_lock();
            cds_lfht_lookup(ht, h, lf_match, &k, &it);
            struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
            if (n) sink += caa_container_of(n, lf_node, node)->val;
            rcu_read_unlock();
        } else {
            lf_node *nn = malloc(sizeof *nn);
            nn->key = k;
            nn->val = (uint64_t)i;
            cds_lfht_node_init(&nn->node);
            for (;;) {
                rcu_read_lock();
                cds_lfht_lookup(ht, h, lf_match, &k, &it);
                struct cds_lfht_node *old = cds_lfht_iter_get_node(&it);
                if (old && cds_lfht_replace(ht, &it, h, lf_match, &k, &nn->node) == 0) {
                    rcu_read_unlock();
                    call_rcu(&caa_container_of(old, lf_node, node)->rcu, lf_free);
                    break;
                }
                rcu_read_unlock();
            }
        }
    }
    if (sink == 42) puts("");
}

/* ---- setup ------------------------------------------------------------------ */

enum { IMPL_SYNCMAP, IMPL_SYNCMAP_GC, IMPL_MUTEX_MAP, IMPL_CK, IMPL_URCU, NIMPL };
static const char *impl_names[NIMPL] = { "syncmap", "syncmap-gc", "mutex+map", "ck_ht",
                                         "urcu_lfht" };
static const worker_fn impl_fns[NIMPL] = { w_syncmap, w_syncmap, w_mutex_map, w_ck_ht, w_urcu };
static void *impls[NIMPL];

/* The GC-heap sync.Map is made, filled and warmed by a thread of its own,
 * which is attached automatically and detached when it exits: the main
 * thread never becomes a mutator, so its joins and spin-waits cannot hold up
 * a stop of the world.  impls[] is registered as a root (globals are not
 * scanned unless registered). */
static void *setup_gc_map(void *arg)
{
    (void)arg;
    gm_syncmap *sm = gm_syncmap_new_gc(&gm_type_u64, &gm_type_u64);
    if (!sm) { fprintf(stderr, "bench_sync: gm_syncmap_new_gc failed\n"); exit(1); }
    for (uint64_t i = 0; i < NKEYS; i++) {
        uint64_t k = key_of(i), v = i;
        gm_syncmap_store(sm, &k, &v);
    }
    for (int rep = 0; rep < 2; rep++)
        for (uint64_t i = 0; i < NKEYS; i++) {
            uint64_t k = key_of(i);
            gm_syncmap_load(sm, &k, NULL);
        }
    impls[IMPL_SYNCMAP_GC] = sm;
    return NULL;
}

static void setup_maps(void)
{
    gm_syncmap *sm = gm_syncmap_new(&gm_type_u64, &gm_type_u64);
    locked_map *lm = calloc(1, sizeof *lm);
    lm->m = gm_map_new(&gm_type_u64, &gm_type_u64, NKEYS);
    ck_map *cm = calloc(1, sizeof *cm);
    pthread_mutex_init(&cm->wmu, NULL);
    if (!sm || !lm->m || !ck_ht_init(&cm->ht, CK_HT_MODE_DIRECT, NULL, &ck_alloc, NKEYS * 2, 6602834))
        { fprintf(stderr, "bench_sync: setup failed\n"); exit(1); }
    struct cds_lfht *ht = cds_lfht_new(NKEYS, NKEYS, 0, 0, NULL);
    if (!ht) { fprintf(stderr, "bench_sync: cds_lfht_new failed\n"); exit(1); }
    for (uint64_t i = 0; i < NKEYS; i++) {
        uint64_t k = key_of(i), v = i;
        gm_syncmap_store(sm, &k, &v);
        gm_map_put(lm->m, &k, &v);
        ck_ht_hash_t h;
        ck_ht_entry_t e;
        ck_ht_hash_direct(&h, &cm->ht, (uintptr_t)k);
        ck_ht_entry_set_direct(&e, h, (uintptr_t)k, (uintptr_t)v);
        ck_ht_put_spmc(&cm->ht, h, &e);
        lf_node *n = malloc(sizeof *n);
        n->key = k;
        n->val = v;
        cds_lfht_node_init(&n->node);
        rcu_read_lock();
        cds_lfht_add(ht, lf_hash(k), &n->node);
        rcu_read_unlock();
    }
    /* Warm the syncmap into its steady state: all keys in the read map. */
    for (int rep = 0; rep < 2; rep++)
        for (uint64_t i = 0; i < NKEYS; i++) {
            uint64_t k = key_of(i);
            gm_syncmap_load(sm, &k, NULL);
        }
    impls[IMPL_SYNCMAP] = sm;
    gm_root_add(&impls[IMPL_SYNCMAP_GC], sizeof impls[IMPL_SYNCMAP_GC]);
    pthread_t t;
    pthread_create(&t, NULL, setup_gc_map, NULL);
    pthread_join(t, NULL);
    impls[IMPL_MUTEX_MAP] = lm;
    impls[IMPL_CK] = cm;
    impls[IMPL_URCU] = ht;
}

int main(int argc, char **argv)
{
    int reps = 7;
    long mutex_ops = 5000000, map_ops = 2000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) { reps = 3; mutex_ops /= 10; map_ops /= 10; }
        else { fprintf(stderr, "usage: bench_sync [--reps R] [--quick]\n"); return 2; }
    }
    if (reps < 1 || reps > 99) reps = 7;
    rcu_register_thread();
    setup_maps();

    /* Part 1. */
    double mres[2][2][99];   /* [impl][threads-1][rep] */
    for (int rep = 0; rep < reps; rep++)
        for (int t = 1; t <= 2; t++) {
            mres[0][t - 1][rep] = run_threads(w_gm_mutex, NULL, t, mutex_ops, 0, NULL);
            mres[1][t - 1][rep] = run_threads(w_pthread_mutex, NULL, t, mutex_ops, 0, NULL);
        }
    printf("mutex: lock + counter++ + unlock, median of %d interleaved runs\n", reps);
    printf("  %-14s %8s %12s %10s\n", "impl", "threads", "Mops/s", "ns/op");
    double med[2][2];
    for (int t = 1; t <= 2; t++)
        for (int k = 0; k < 2; k++) {
            med[k][t - 1] = median(mres[k][t - 1], reps);
            printf("  %-14s %8d %12.1f %10.2f\n", k ? "pthread_mutex" : "gm_mutex", t,
                   med[k][t - 1], 1e3 / med[k][t - 1] * t);
        }
    printf("  gm_mutex/pthread time ratio: uncontended %.2fx, 2 threads %.2fx (<1 is faster)\n\n",
           med[1][0] / med[0][0], med[1][1] / med[0][1]);

    /* Part 2. */
    enum { NW = 3 };
    static double res[NW][2][NIMPL][99];   /* [workload][threads-1][impl][rep] */
    static double cpu[NW][2][NIMPL][99];   /* CPU ns per op per thread */
    static double share2[NW * NIMPL * 99]; /* CPU share of the 2-thread runs */
    int nshare = 0;
    const int read_pct[NW] = { 100, 99, 90 };
    const char *wname[NW] = { "100/0", "99/1", "90/10" };
    for (int rep = 0; rep < reps; rep++)
        for (int w = 0; w < NW; w++)
            for (int t = 1; t <= 2; t++)
                for (int k = 0; k < NIMPL; k++) {
                    int kk = (k + rep) % NIMPL;   /* rotate the order too */
                    res[w][t - 1][kk][rep] = run_threads(impl_fns[kk], impls[kk], t, map_ops,
                                                         read_pct[w], &cpu[w][t - 1][kk][rep]);
                    /* syncmap never sleeps: its share is the machine's */
                    if (t == 2 && kk == IMPL_SYNCMAP) share2[nshare++] = last_cpu_share;
                }
    printf("maps: %d stable u64 keys, median Mops/s (all threads) of %d interleaved runs\n",
           NKEYS, reps);
    printf("  %-12s %-8s %10s %10s %10s %12s   %s\n", "impl", "load", "1 thread", "2 threads",
           "scaling", "vs mutex+map@2", "cpu ns/op/thread @1 @2");
    double target_ratio = 0, target_scaling = 0;
    for (int w = 0; w < NW; w++) {
        double base2 = median(res[w][1][IMPL_MUTEX_MAP], reps);
        for (int k = 0; k < NIMPL; k++) {
            double m1 = median(res[w][0][k], reps), m2 = median(res[w][1][k], reps);
            printf("  %-12s %-8s %10.1f %10.1f %9.2fx %11.2fx   %6.1f %6.1f\n", impl_names[k],
                   wname[w], m1, m2, m2 / m1, m2 / base2, median(cpu[w][0][k], reps),
                   median(cpu[w][1][k], reps));
            if (w == 1 && k == IMPL_SYNCMAP) {
                target_ratio = m2 / base2;
                target_scaling = m2 / m1;
            }
        }
    }
    printf("\n2-thread syncmap runs: the workers had %.0f%% of two CPUs (median; below ~90%% "
           "the machine was busy and the 2-thread columns understate scaling)\n",
           100 * median(share2, nshare));
    printf("targets: syncmap 99/1 at 2 threads vs mutex+map %.2fx (want >= 3x), "
           "scaling 1->2 threads %.2fx (want > 1); gm_mutex uncontended time %.2fx "
           "pthread's (want <= 1.2x)\n", target_ratio, target_scaling, med[1][0] / med[0][0]);
    rcu_barrier();
    return 0;
}
