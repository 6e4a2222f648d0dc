/* claims.c - `gomap-lab claims`: the 36 claims of docs/claims.md, each
 * settled by a measurement made in this run.
 *
 * Every row has a measure function that runs (or reuses, settle.h) an
 * experiment and derives the verdict -- true, false or partly -- from the
 * numbers it saw; nothing here returns a verdict without measuring.  Where a
 * claim names Go-only machinery (a function, a field, a Go version) the row
 * measures the mechanism the claim implies (does memory drop on delete?
 * does a write ever wait?) and its figures say what was measured.  The exit
 * status is non-zero if any measured verdict differs from the expected one.
 *
 * A few rows look inside the classic map and the heap (the tophash states,
 * the preallocated overflow buckets, mark bits): those helpers are grouped
 * under "peeking inside" below. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gc/gc_internal.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "settle.h"

typedef struct box { uint64_t v, check; } box;
static box *new_box(uint64_t v)
{
    box *b = gm_alloc_noscan(sizeof *b);
    b->v = v;
    b->check = ~v;
    return b;
}

#define FIG(...) snprintf(fig, n, __VA_ARGS__)
static gm_map *cm;                 /* a root: GC maps of the rows below */

static size_t map_bytes(const gm_map *m)
{
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    return st.bytes;
}
static gm_map_stats stats_of(const gm_map *m)
{
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    return st;
}

/* ---- peeking inside (classic map, GC heap) ----------------------------------- */

/* Slots of the current array, by state. */
static void census(const gm_map *m, size_t *one, size_t *rest, size_t *live)
{
    *one = *rest = *live = 0;
    for (size_t i = 0; m->buckets && i < ((size_t)1 << m->B); i++)
        for (uint8_t *b = bucket_at(m, m->buckets, i); b; b = b_ovf(m, b))
            for (int s = 0; s < BUCKET_CNT; s++) {
                if (b[s] == EMPTY_ONE) (*one)++;
                else if (b[s] == EMPTY_REST) (*rest)++;
                else if (b[s] >= MIN_TOPHASH) (*live)++;
            }
}

/* u64 keys living in bucket indexes below half the array. */
static size_t keys_in_low_half(const gm_map *m, uint64_t *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < ((size_t)1 << m->B) / 2; i++)
        for (uint8_t *b = bucket_at(m, m->buckets, i); b; b = b_ovf(m, b))
            for (unsigned s = 0; s < BUCKET_CNT && k < max; s++)
                if (b[s] >= MIN_TOPHASH) memcpy(&out[k++], key_of(m, b, s), 8);
    return k;
}

/* Of the old buckets below nevacuate, how many carry an evacuation mark in
 * tophash[0] (EVAC_X, EVAC_Y, EVAC_EMPTY). */
static void evac_marks(const gm_map *m, size_t *checked, size_t *marked)
{
    *checked = *marked = 0;
    for (size_t i = 0; m->oldbuckets && i < m->nevacuate; i++) {
        (*checked)++;
        *marked += evacuated(bucket_at(m, m->oldbuckets, i));
    }
}

static const void *next_overflow(const gm_map *m) { return m->hdr_cur ? m->hdr_cur->ovf_next : NULL; }

static bool is_gc_object(const void *p)
{
    gc_span *s;
    uint32_t i;
    return gc_find_object((uintptr_t)p, &s, &i) != 0;
}

/* ---- rows ------------------------------------------------------------------------ */

/* 1: memory after deletes (malloc map; deletes only). */
static char c1(const lab_opts *o, char *fig, size_t n)
{
    size_t keys = o->quick ? 100000 : 1000000;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t k = 0; k < keys; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    gm_map_stats a = stats_of(m);
    for (uint64_t k = 0; k < keys * 9 / 10; k++) gm_map_delete_u64(m, k);
    gm_map_stats b = stats_of(m);
    char x[32], y[32];
    FIG("%zu entries, 90%% deleted: buckets %s -> %s, %zu -> %zu buckets, %llu shrinks",
        keys, lab_bytes((double)a.bytes, x, sizeof x), lab_bytes((double)b.bytes, y, sizeof y), a.nbuckets, b.nbuckets,
        (unsigned long long)b.shrinks);
    gm_map_free(m);
    return b.bytes < a.bytes ? 'T' : 'F';
}

/* 2: what one delete does to the slot, the count and the memory. */
static char c2(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t k = 0; k < 1000; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    size_t one0, rest0, live0, one1, rest1, live1;
    census(m, &one0, &rest0, &live0);
    size_t len0 = gm_map_len(m), bytes0 = map_bytes(m);
    gm_map_delete_u64(m, 500);
    census(m, &one1, &rest1, &live1);
    size_t len1 = gm_map_len(m), bytes1 = map_bytes(m);
    FIG("len %zu -> %zu; slots emptyOne %zu -> %zu, emptyRest %zu -> %zu; bytes %zu -> %zu", len0, len1, one0, one1,
        rest0, rest1, bytes0, bytes1);
    gm_map_free(m);
    bool tomb = one1 + rest1 == one0 + rest0 + 1 && live1 + 1 == live0;
    return tomb && len1 + 1 == len0 && bytes1 == bytes0 ? 'T' : 'F';
}

/* 3: deleting inside range, breaking, growing: in a child (a crash would be
 * the verdict). */
static int child_range_delete(void)
{
    uint64_t seed = 1;
    for (int round = 0; round < 300; round++) {
        gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
        for (uint64_t k = 0; k < 2000; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
        gm_map_iter it;
        const void *kp;
        void *vp;
        int stop = (int)(seed % 1500);
        int i = 0;
        for (gm_map_iter_init(&it, m); gm_map_iter_next(&it, &kp, &vp); i++) {
            uint64_t k = *(const uint64_t *)kp;
            gm_map_delete_u64(m, k);
            gm_map_delete_u64(m, k ^ 1);
            if (round % 3 == 0) *(uint64_t *)gm_map_assign_u64(m, k + 100000) = k;   /* grows under the loop */
            if (i == stop) break;
        }
        gm_map_iter_done(&it);
        for (uint64_t k = 0; k < 20000; k++) *(uint64_t *)gm_map_assign_u64(m, k + 500000) = k;   /* growth after */
        if (gm_map_check(m)) {
            fprintf(stderr, "map check: %s\n", gm_map_check(m));
            return 3;
        }
        gm_map_free(m);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    }
    fprintf(stderr, "300 rounds ok\n");
    return 0;
}
static const lab_child rd_child = { "range-delete", child_range_delete };
LAB_CHILD(rd_child)

static char c3(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    char buf[4096];
    int st = 0;
    bool ran = lab_run_child("range-delete", NULL, buf, sizeof buf, &st);
    bool clean = ran && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    bool nilmsg = strstr(buf, "bucket pointer is nil") != NULL;
    const char *l = lab_line_with(buf, clean ? "rounds ok" : "");
    FIG("child: 300 rounds of delete-in-range, break, grow: %s", clean ? (l ? l : "ok") : "FAILED");
    return clean && !nilmsg ? 'F' : 'T';
}

/* 4: what an iterator freezes. */
static char c4(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t k = 0; k < 1000; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    gm_map_iter it;
    const void *kp;
    void *vp;
    gm_map_iter_init(&it, m);
    const void *arr0 = stats_of(m).array;
    gm_map_iter_next(&it, &kp, &vp);
    uint64_t first = *(const uint64_t *)kp;
    for (uint64_t k = 0; k < 1000; k++)
        if (k != first) gm_map_delete_u64(m, k);       /* all not yet reached */
    size_t after = 0;
    while (gm_map_iter_next(&it, &kp, &vp)) after++;
    /* bucket pointer: a second iterator, then growth */
    gm_map_iter it2;
    gm_map_iter_init(&it2, m);
    const void *snap = it2.buckets;
    for (uint64_t k = 0; k < 5000; k++) *(uint64_t *)gm_map_assign_u64(m, k + 10000) = k;
    bool kept = it2.buckets == snap && stats_of(m).array != snap;
    gm_map_iter_done(&it2);
    FIG("deleted before reached: %zu of 999 returned (count is not frozen); bucket array kept by the iterator "
        "across growth: %s (array %s)", after, kept ? "yes" : "no", arr0 == snap ? "as at init" : "changed");
    gm_map_free(m);
    return after == 0 && kept ? 'P' : after == 999 ? 'T' : 'F';
}

/* 5: Mallocs across deletes (GC map; both rows of delete-and-the-gc too). */
static char c5(const lab_opts *o, char *fig, size_t n)
{
    const delgc_result *d = m_delete_gc(o);
    gm_root_add(&cm, sizeof cm);
    cm = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, true);
    for (uint64_t k = 0; k < 100000; k++) *(uint64_t *)gm_map_assign_u64(cm, k) = k;
    gm_gc();
    gm_memstats a, b;
    gm_read_memstats(&a);
    size_t bytes0 = map_bytes(cm);
    for (uint64_t k = 0; k < 100000; k++) gm_map_delete_u64(cm, k);
    gm_gc();
    gm_read_memstats(&b);
    size_t bytes1 = map_bytes(cm);
    cm = NULL;
    gm_root_remove(&cm);
    FIG("100000 deleted: Mallocs %llu -> %llu, bucket bytes %zu -> %zu; delete-and-the-gc: Mallocs never fell: %s",
        (unsigned long long)a.mallocs, (unsigned long long)b.mallocs, bytes0, bytes1,
        d->mallocs_monotone ? "yes" : "NO");
    return b.mallocs < a.mallocs || bytes1 < bytes0 || !d->mallocs_monotone ? 'T' : 'F';
}

/* 6: deleting while ranging vs collecting keys first vs clear. */
static char c6(const lab_opts *o, char *fig, size_t n)
{
    size_t keys = o->quick ? 200000 : 1000000;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t k = 0; k < keys; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    gm_map_iter it;
    const void *kp;
    void *vp;
    size_t seen = 0;
    uint64_t t0 = lab_now_ns();
    for (gm_map_iter_init(&it, m); gm_map_iter_next(&it, &kp, &vp); seen++) gm_map_delete_u64(m, *(const uint64_t *)kp);
    double range_ms = (double)(lab_now_ns() - t0) / 1e6;
    bool ok = gm_map_len(m) == 0 && seen == keys && gm_map_check(m) == NULL;
    for (uint64_t k = 0; k < keys; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    t0 = lab_now_ns();
    gm_map_clear(m);
    double clear_ms = (double)(lab_now_ns() - t0) / 1e6;
    bool clear_ok = gm_map_len(m) == 0 && gm_map_check(m) == NULL && gm_map_get_u64(m, 7) == NULL;
    FIG("range-and-delete of %zu: all gone, each seen once: %s (%.1f ms); clear() in one call: %s (%.2f ms)", keys,
        ok ? "yes" : "NO", range_ms, clear_ok ? "empty" : "NOT EMPTY", clear_ms);
    gm_map_free(m);
    if (!ok) return 'T';
    return clear_ok ? 'P' : 'F';
}

/* 7: empty buckets and shrinking. */
static char c7(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t k = 0; k < 100000; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    static uint64_t low[100000];
    size_t nl = keys_in_low_half(m, low, 100000);
    gm_map_stats a = stats_of(m);
    for (size_t i = 0; i < nl; i++) gm_map_delete_u64(m, low[i]);     /* half the buckets emptied */
    for (uint64_t w = 0; w < 10 * a.nbuckets; w++) {                   /* then many writes */
        uint64_t k = w % 100000;
        void *v = gm_map_get_u64(m, k);
        if (v) *(uint64_t *)gm_map_assign_u64(m, k) = w;
    }
    gm_map_stats b = stats_of(m);
    size_t one, rest, live;
    census(m, &one, &rest, &live);
    FIG("%zu of %zu buckets emptied (%zu deletes), then %zu writes: %zu buckets, %llu shrinks, bytes %zu -> %zu",
        a.nbuckets / 2, a.nbuckets, nl, 10 * a.nbuckets, b.nbuckets, (unsigned long long)b.shrinks, a.bytes, b.bytes);
    gm_map_free(m);
    return b.shrinks == 0 && b.bytes == a.bytes && b.nbuckets == a.nbuckets ? 'F' : 'T';
}

/* 8: the deletion barrier. */
static char c8(const lab_opts *o, char *fig, size_t n)
{
    const delgc_result *d = m_delete_gc(o);
    FIG("checkmark child: %s%s", d->ck_line,
        d->fault == 1 ? "; barrier dropped (fault build): checkmark caught the loss" : "");
    if (!d->ck_ok) return 'T';
    return d->shades > 0 ? 'F' : 'P';
}

/* 9: does a map operation start or feed mark work? */
static char c9(const lab_opts *o, char *fig, size_t n)
{
    size_t keys = o->quick ? 100000 : 1000000;
    gm_root_add(&cm, sizeof cm);
    cm = lab_classic_map(&gm_type_u64, &gm_type_ptr, 0, true);
    for (uint64_t k = 0; k < keys; k++) {
        box *b = new_box(k);
        gm_map_put(cm, &k, &b);
    }
    gm_gc();
    gm_memstats a, b;
    gm_read_memstats(&a);
    uint64_t ops = 0;
    for (int pass = 0; pass < 3; pass++)
        for (uint64_t k = 0; k < keys; k++, ops += 3) {
            box **p = gm_map_get(cm, &k);
            box *v = *p;
            gm_map_delete(cm, &k);
            gm_map_put(cm, &k, &v);
        }
    gm_read_memstats(&b);
    cm = NULL;
    gm_root_remove(&cm);
    const delgc_result *d = m_delete_gc(o);
    FIG("%llu map ops on a map of pointers, no allocation: %u cycles started, mark work %llu B; with cycles "
        "running, delete-only assists: %llu",
        (unsigned long long)ops, b.num_gc - a.num_gc,
        (unsigned long long)(b.gc_bg_work + b.gc_assist_work - a.gc_bg_work - a.gc_assist_work),
        (unsigned long long)(d->rows[0].assists + d->rows[1].assists + d->rows[2].assists));
    bool none = b.num_gc == a.num_gc && b.gc_bg_work == a.gc_bg_work &&
                d->rows[0].assists + d->rows[1].assists + d->rows[2].assists == 0;
    return none ? 'F' : 'T';
}

/* 10, 11: assists and pauses with deletes. */
static char c10(const lab_opts *o, char *fig, size_t n)
{
    const delgc_result *d = m_delete_gc(o);
    uint64_t da = 0, aa = 0;
    for (int i = 0; i < d->nrows; i++) {
        if (d->rows[i].alloc) aa += d->rows[i].assists;
        else da += d->rows[i].assists;
    }
    FIG("assists during delete-only loops: %llu (%ld+%ld+%ld cycles); with 64 B allocated per delete: %llu",
        (unsigned long long)da, d->rows[0].cycles, d->rows[1].cycles, d->rows[2].cycles, (unsigned long long)aa);
    return da == 0 ? 'F' : 'T';
}

static char c11(const lab_opts *o, char *fig, size_t n)
{
    const delgc_result *d = m_delete_gc(o);
    const delgc_row *s = &d->rows[0], *l = &d->rows[2];
    FIG("median pause while deleting %zu / %zu / %zu entries: %.0f / %.0f / %.0f us (max %.0f / %.0f / %.0f us)",
        s->n, d->rows[1].n, l->n, s->med_pause_ns / 1e3, d->rows[1].med_pause_ns / 1e3, l->med_pause_ns / 1e3,
        s->max_pause_ns / 1e3, d->rows[1].max_pause_ns / 1e3, l->max_pause_ns / 1e3);
    bool flat = l->med_pause_ns <= 4 * s->med_pause_ns || l->med_pause_ns <= s->med_pause_ns + 250000;
    return flat ? 'F' : 'T';
}

/* 12: finalizers are per object. */
static atomic_int fin_ran;
static void on_fin(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    atomic_fetch_add(&fin_ran, 1);
}
static box **fin_objs;

__attribute__((noinline)) static void fin_setup(int k)
{
    for (int i = 0; i < k; i++) {
        fin_objs[i] = new_box((uint64_t)i);
        gm_set_finalizer(fin_objs[i], on_fin, NULL);
    }
}

__attribute__((noinline)) static void scrub_stack(void)
{
    volatile char buf[32 * 1024];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

static char c12(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    enum { K = 100 };
    fin_objs = calloc(K, sizeof *fin_objs);
    if (!fin_objs) return '?';
    gm_root_add(fin_objs, K * sizeof *fin_objs);
    atomic_store(&fin_ran, 0);
    fin_setup(K);
    fin_objs[37] = NULL;                    /* one object of the hundred becomes unreachable */
    scrub_stack();
    gm_gc();
    gm_finalizers_wait();
    int one = atomic_load(&fin_ran);
    memset(fin_objs, 0, K * sizeof *fin_objs);
    scrub_stack();
    gm_gc();
    gm_finalizers_wait();
    int all = atomic_load(&fin_ran);
    gm_root_remove(fin_objs);
    free(fin_objs);
    FIG("%d objects of one type with finalizers; one dropped: %d ran after a cycle; all dropped: %d ran in total", K, one,
        all);
    return one == 1 && all == K ? 'F' : 'T';
}

/* 13: finalizers of objects in a map that is mid-growth. */
static char c13(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    enum { K = 500 };
    gm_root_add(&cm, sizeof cm);
    atomic_store(&fin_ran, 0);
    cm = lab_classic_map(&gm_type_u64, &gm_type_ptr, 0, true);
    uint64_t i = 0;
    for (;; i++) {
        box *b = new_box(i);
        gm_map_put(cm, &i, &b);
        if (i < K) gm_set_finalizer(b, on_fin, NULL);
        if (i >= 200000 && stats_of(cm).growing) break;
    }
    for (uint64_t k = 0; k < K; k++) gm_map_delete(cm, &k);
    gm_map_stats st = stats_of(cm);
    scrub_stack();
    gm_gc();
    gm_finalizers_wait();
    int ran = atomic_load(&fin_ran);
    gm_map_stats st2 = stats_of(cm);
    cm = NULL;
    gm_root_remove(&cm);
    FIG("%d finalizers after one cycle, map still growing (%zu of %zu old buckets evacuated, unchanged by the cycle: %s)",
        ran, st2.nevacuate, st2.old_nbuckets, st.nevacuate == st2.nevacuate ? "yes" : "no");
    return ran == K && st2.growing && st.nevacuate == st2.nevacuate ? 'F' : 'T';
}

/* 14, 15, 23: iteration during growth (one measurement). */
typedef struct iterg { size_t keys, dups, missing, grew; } iterg;
static iterg iter_growth(bool u32)
{
    static iterg r[2];
    static bool done[2];
    if (done[u32]) return r[u32];
    done[u32] = true;
    iterg *g = &r[u32];
    g->keys = 2000;
    gm_map *m = lab_classic_map(u32 ? &gm_type_u32 : &gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t k = 0; k < g->keys; k++) {
        if (u32) *(uint64_t *)gm_map_assign_u32(m, (uint32_t)k) = k;
        else *(uint64_t *)gm_map_assign_u64(m, k) = k;
    }
    uint8_t *seen = calloc(g->keys, 1);
    gm_map_iter it;
    const void *kp;
    void *vp;
    uint64_t next = 1u << 20;
    uint64_t grows0 = stats_of(m).grows;
    for (gm_map_iter_init(&it, m); gm_map_iter_next(&it, &kp, &vp);) {
        uint64_t k = u32 ? *(const uint32_t *)kp : *(const uint64_t *)kp;
        if (k < g->keys && seen[k]++) g->dups++;
        for (int j = 0; j < 8; j++, next++) {      /* growth under the loop */
            if (u32) *(uint64_t *)gm_map_assign_u32(m, (uint32_t)next) = next;
            else *(uint64_t *)gm_map_assign_u64(m, next) = next;
        }
    }
    for (size_t k = 0; k < g->keys; k++) g->missing += !seen[k];
    g->grew = stats_of(m).grows - grows0;
    free(seen);
    gm_map_free(m);
    return *g;
}

static char c14(const lab_opts *o, char *fig, size_t n)
{
    iterg g = iter_growth(false);
    const delgc_result *d = m_delete_gc(o);
    FIG("no such fields here; what they would fix: range over a map growing %zu times: %zu dups, %zu missing; "
        "deletes under checkmark: %s", g.grew, g.dups, g.missing, d->ck_ok ? "no loss" : "LOSS");
    return g.grew && g.dups == 0 && g.missing == 0 && d->ck_ok ? 'F' : 'T';
}

static char c15(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    iterg g = iter_growth(true);
    FIG("a uint32-keyed map (fast paths: get/assign/delete) is ranged by the one iterator, the same as every map: "
        "growing %zu times under it, %zu dups, %zu missing", g.grew, g.dups, g.missing);
    return g.grew && g.dups == 0 && g.missing == 0 ? 'F' : 'T';
}

/* 16: when a map grows. */
static char c16(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    /* A grow into an array of 1 MiB or more may wait for the array the
     * map's helper thread prepares (no growth stall, docs/map.md): a quarter
     * past the threshold it takes the array as it is, half past it gives
     * up and maps a fresh one.  Those grows are checked against that bound,
     * the others against Go's threshold exactly. */
    int exact = 0, checked = 0, bfactor = 0, big = 0, big_ok = 0;
    for (uint64_t k = 0; k < 200000; k++) {
        gm_map_stats a = stats_of(m);
        *(uint64_t *)gm_map_assign_u64(m, k) = k;
        gm_map_stats b = stats_of(m);
        if (b.grows != a.grows && a.b >= 1) {
            size_t limit = (size_t)(6.5 * (double)((size_t)1 << a.b));
            bfactor += b.count == (size_t)(6.5 * a.b) + 1;
            if (a.array_bytes * 2 >= ((size_t)1 << 20)) {   /* the new array: twice the old */
                big++;
                big_ok += b.count > limit && b.count <= limit + limit / 2 + 1;
                continue;
            }
            checked++;
            exact += b.count == limit + 1;
        }
        while (stats_of(m).growing) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    }
    gm_map_free(m);
    /* overflow churn at a steady count: same-size grows */
    m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    uint64_t lo = 0, hi = 0;
    for (; hi < 5 * 1024; hi++) *(uint64_t *)gm_map_assign_u64(m, hi * 0x9e3779b97f4a7c15ull) = hi;
    for (int s = 0; s < 400000; s++, lo++, hi++) {
        gm_map_delete_u64(m, lo * 0x9e3779b97f4a7c15ull);
        *(uint64_t *)gm_map_assign_u64(m, hi * 0x9e3779b97f4a7c15ull) = hi;
    }
    gm_map_stats st = stats_of(m);
    gm_map_free(m);
    FIG("%d of %d grows into arrays under 1 MiB came at count = 6.5*2^B + 1 (%d of all at B*6.5 + 1); %d of %d "
        "into bigger arrays within half past it (waiting for the prepared array); steady churn: %llu "
        "same-size grows (overflow buckets), %llu doublings", exact, checked, bfactor, big_ok, big,
        (unsigned long long)st.same_size_grows, (unsigned long long)st.grows);
    if (exact == checked && checked > 0 && big_ok == big && st.same_size_grows > 0) return 'P';
    return bfactor == checked ? 'T' : 'F';
}

/* 17, 18, 19: who evacuates, and what a grow holds. */
static char c17(const lab_opts *o, char *fig, size_t n)
{
    const evac_result *e = m_who_evacuates(o);
    FIG("%llu writes evacuated %zu old buckets, at most %llu per write (its own and the next)",
        (unsigned long long)e->writes, e->old_nbuckets, (unsigned long long)e->max_per_write);
    return e->max_per_write == 2 ? 'T' : 'F';
}

static char c18(const lab_opts *o, char *fig, size_t n)
{
    const evac_result *e = m_who_evacuates(o);
    double ratio = e->bytes_after ? (double)e->bytes_peak / (double)e->bytes_after : 0;
    uint64_t base = e->scan_base < e->scan_done ? e->scan_base : e->scan_done;   /* stacks and roots */
    uint64_t extra = e->scan_growing > base ? e->scan_growing - base : 0;
    FIG("during the grow old + new held %.2fx the new array alone (old = half of new); a growing pointer-free map "
        "of %zu bucket bytes added %llu B to a cycle's mark work (not scanned)", ratio, e->pf_bytes,
        (unsigned long long)extra);
    bool coexist = ratio > 1.3;
    bool scans_both = extra > e->pf_bytes / 4;
    return coexist && !scans_both ? 'P' : coexist ? 'T' : 'F';
}

static char c19(const lab_opts *o, char *fig, size_t n)
{
    const evac_result *e = m_who_evacuates(o);
    FIG("%d GC cycles with no writes: nevacuate %zu -> %zu, evacuations %llu -> %llu", e->cycles, e->nevac_start,
        e->nevac_after_cycles, (unsigned long long)e->evac_start, (unsigned long long)e->evac_after_cycles);
    return e->nevac_after_cycles == e->nevac_start && e->evac_after_cycles == e->evac_start ? 'F' : 'T';
}

/* 20: evacuation under the barrier; allocation during mark is black.
 * A write records into this thread's barrier buffer (gc_self->wbn) only
 * while the barrier is on; writes are counted only when the flag was the
 * same before and after them. */
static size_t wbn(void) { return gc_self ? gc_self->wbn : 0; }

static char c20(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_root_add(&cm, sizeof cm);
    cm = lab_classic_map(&gm_type_u64, &gm_type_ptr, 0, true);
    uint64_t k = 0;
    for (;; k++) {
        box *b = new_box(k);
        gm_map_put(cm, &k, &b);
        if (k > 200000 && stats_of(cm).growing) break;
    }
    lab_collector c;
    lab_collector_start(&c);
    size_t evac_writes = 0, recorded = 0;
    uint64_t t0 = lab_now_ns();
    for (uint64_t j = 0; stats_of(cm).growing && lab_now_ns() - t0 < 5000000000ull; j = (j + 1) % k) {
        gm_safepoint();
        if (!atomic_load(&gc_wb_enabled_a)) continue;
        uint64_t e0 = stats_of(cm).evacuated_buckets;
        size_t w0 = wbn();
        gm_map_assign(cm, &j);                      /* stores no pointer itself */
        size_t w1 = wbn();
        if (!atomic_load(&gc_wb_enabled_a) || stats_of(cm).evacuated_buckets == e0) continue;
        evac_writes++;
        recorded += w1 != w0;
    }
    /* objects allocated while the phase is mark: black at once */
    size_t checked = 0, black = 0;
    for (int i = 0; i < 5000000 && checked < 2000; i++) {
        int ph = atomic_load(&gc_phase_a);
        box *x = new_box((uint64_t)i);
        if (ph != GC_MARK || atomic_load(&gc_phase_a) != GC_MARK) continue;
        gc_span *s;
        uint32_t idx;
        if (!gc_find_object((uintptr_t)x, &s, &idx)) continue;
        checked++;
        black += gc_is_marked(s, idx);
    }
    lab_collector_stop(&c);
    cm = NULL;
    gm_root_remove(&cm);
    FIG("%zu writes that evacuated while the barrier was on (they store no pointer themselves): %zu recorded "
        "barrier entries (typed copies of the moved values; the rest moved empty buckets); objects allocated during mark: %zu of %zu marked at once",
        evac_writes, recorded, black, checked);
    return evac_writes > 0 && recorded * 100 >= evac_writes * 99 && checked > 0 && black == checked ? 'T' : 'F';
}

/* 21: the barrier follows one global flag. */
static char c21(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_root_add(&cm, sizeof cm);
    cm = lab_classic_map(&gm_type_u64, &gm_type_ptr, 0, true);
    box *b = new_box(1);
    size_t puts[2] = { 0, 0 }, rec[2] = { 0, 0 };
    lab_collector c;
    lab_collector_start(&c);
    uint64_t t0 = lab_now_ns();
    for (uint64_t k = 0; (puts[0] < 1000 || puts[1] < 1000) && lab_now_ns() - t0 < 5000000000ull; k++) {
        gm_safepoint();
        bool on = atomic_load(&gc_wb_enabled_a);
        size_t w0 = wbn();
        gm_map_put(cm, &k, &b);
        size_t w1 = wbn();
        if (on != atomic_load(&gc_wb_enabled_a)) continue;
        puts[on]++;
        rec[on] += w1 != w0;
    }
    lab_collector_stop(&c);
    cm = NULL;
    gm_root_remove(&cm);
    FIG("map puts while the global flag was off: %zu of %zu recorded a barrier entry; while on: %zu of %zu -- "
        "the map asks nothing but that flag (gc_wb_enabled), no per-map readiness state",
        rec[0], puts[0], rec[1], puts[1]);
    return puts[0] > 0 && rec[0] == 0 && puts[1] > 0 && rec[1] == puts[1] ? 'F' : 'T';
}

/* 22: the evacuation mark. */
static char c22(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    uint64_t k = 0;
    for (;; k++) {
        *(uint64_t *)gm_map_assign_u64(m, k) = k;
        if (k > 20000 && stats_of(m).growing) break;
    }
    for (uint64_t j = 0; j < 500; j++) *(uint64_t *)gm_map_assign_u64(m, j) = j;   /* evacuate some */
    size_t checked, marked;
    evac_marks(m, &checked, &marked);
    uint8_t f0 = flags_load(m);
    size_t hits = 0;
    for (uint64_t j = 0; j < k; j++) hits += gm_map_get_u64(m, j) != NULL;
    uint8_t f1 = flags_load(m);
    FIG("%zu of %zu evacuated old buckets carry tophash[0] in {evacuatedX, evacuatedY, evacuatedEmpty}; %zu reads of "
        "the growing map changed no flag (%u -> %u): a plain state byte and plain loads",
        marked, checked, hits, f0, f1);
    gm_map_free(m);
    return checked > 0 && marked == checked && f0 == f1 ? 'F' : 'T';
}

static char c23(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    iterg g = iter_growth(false);
    FIG("range over %zu keys while the map grew %zu times under it: %zu returned twice, %zu missed", g.keys, g.grew,
        g.dups, g.missing);
    return g.grew && g.dups == 0 && g.missing == 0 ? 'T' : 'F';
}

static char c24(const lab_opts *o, char *fig, size_t n)
{
    const hint_result *h = m_size_hint(o);
    const hint_row *z = &h->rows[0], *w = &h->rows[1];
    FIG("grows: %llu without the hint, %llu with it; median pause %.0f vs %.0f us (%ld vs %ld cycles)",
        (unsigned long long)z->grows, (unsigned long long)w->grows, z->med_pause_ns / 1e3, w->med_pause_ns / 1e3,
        z->cycles, w->cycles);
    bool fewer = w->grows < z->grows;
    /* "same" within 4x + 250 us: on a loaded machine a pause median is
     * mostly the wait for descheduled threads (830 vs 225 us was seen with
     * both cases' true pauses at tens of us); a hint that shortened the
     * pause, as the claim says, would show far more than that */
    bool same = w->med_pause_ns <= 4 * z->med_pause_ns + 250000 && z->med_pause_ns <= 4 * w->med_pause_ns + 250000;
    return fewer && same ? 'P' : fewer ? 'T' : 'F';
}

static char c25(const lab_opts *o, char *fig, size_t n)
{
    const swept_result *s = m_gc_returns_swept(o);
    FIG("%d gm_gc() calls with another thread allocating: at most %zu spans unswept on return (pacer cycles: up to %zu)",
        s->forced, s->max_unswept_forced, s->max_unswept_paced);
    return s->max_unswept_forced == 0 && s->forced > 0 ? 'F' : 'T';
}

/* 26: a setting to switch the barrier off. */
static int child_gmdebug(void)
{
    (void)gm_alloc_noscan(16);
    gm_gc();
    return 0;
}
static const lab_child gmdebug_child = { "gmdebug-probe", child_gmdebug };
LAB_CHILD(gmdebug_child)

static char c26(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    char buf[2048];
    int st = 0;
    bool ran = lab_run_child("gmdebug-probe", "wb=0", buf, sizeof buf, &st);
    const char *l = ran ? lab_line_with(buf, "wb") : NULL;
    FIG("GMDEBUG=wb=0 (GODEBUG's spelling): %s", l ? l : "accepted silently");
    return l && strstr(l, "unknown setting") ? 'F' : 'T';
}

/* 27-31: the misuse matrix. */
static char c27(const lab_opts *o, char *fig, size_t n)
{
    const misuse_result *m = m_misuse(o);
    const mis_row *w = &m->rows[MIS_ASSIGN_DEL];
    FIG("assign vs delete: %d of %d runs fatal (%d by SIGABRT: a throw, not a recoverable panic), message \"%s\"",
        w->fatal, w->runs, w->sigabrt, w->message);
    if (w->fatal == 0) return '?';     /* the race was never hit: nothing measured */
    bool msg = strstr(w->message, "concurrent map writes") != NULL;
    if (msg && w->fatal == w->sigabrt && w->fatal > 0) return 'P';
    return msg ? 'T' : 'F';
}

static char c28(const lab_opts *o, char *fig, size_t n)
{
    const misuse_result *m = m_misuse(o);
    const mis_row *w = &m->rows[MIS_DEL_DEL];
    FIG("delete vs delete of the same keys: %d of %d runs caught (\"%s\"), %d undetected, %d left a broken map",
        w->fatal, w->runs, w->message, w->undetected, w->corrupt);
    if (w->fatal > 0) return 'P';
    if (w->corrupt == 0) return '?';   /* neither caught nor harmed: the race was never hit */
    return 'T';
}

static char c29(const lab_opts *o, char *fig, size_t n)
{
    const misuse_result *m = m_misuse(o);
    const mis_row *w = &m->rows[MIS_DEL_LEN];
    FIG("len() against a deleting thread: %d runs, %d fatal; len() inside a held write took %.0f ns", w->runs, w->fatal,
        m->len_ns);
    return w->fatal == 0 && w->runs > 0 ? 'F' : 'T';
}

static char c30(const lab_opts *o, char *fig, size_t n)
{
    const misuse_result *m = m_misuse(o);
    FIG("a second writer during a %.0f ms write died after %.2f ms (%s); after a write abandoned in the hash, writes "
        "%s; abandoned mid-write: \"%s\", no hang",
        m->hold_ms, m->writer_wait_ms, m->writer_msg, m->hash_escape_ok ? "work" : "FAIL", m->eq_escape_msg);
    return m->writer_wait_ms < m->hold_ms / 2 && m->hash_escape_ok && m->eq_escape_fatal ? 'F' : 'T';
}

static char c31(const lab_opts *o, char *fig, size_t n)
{
    const misuse_result *m = m_misuse(o);
    int und = 0, ov = 0, runs = 0, end = 0;
    for (int p = 0; p < MIS_N; p++) {
        if (p == MIS_DEL_LEN) continue;
        und += m->rows[p].undetected;
        ov += m->rows[p].overlapped;
        end += m->rows[p].at_end;
        runs += m->rows[p].runs;
    }
    end += m->races_at_end;
    ov += m->races_overlapped;
    FIG("begin/end of a write raced alone: %d of %d races caught only at a write's end (both passed the check); "
        "%d short assign races: %d caught only "
        "at the end of a write (both had passed the check), %d undetected; misuse-matrix: %d of %d runs undetected",
        m->check_both, m->check_races, m->races, m->races_at_end, m->races_undetected, und, runs);
    return end > 0 || ov > 0 || m->check_both > 0 ? 'T' : 'F';
}

/* 32: semaphores do not lose wakeups. */
static uint32_t sema;
static atomic_long sema_done;
static void *sema_acq(void *arg)
{
    long k = (long)(intptr_t)arg;
    for (long i = 0; i < k; i++) gm_sema_acquire(&sema);
    atomic_fetch_add(&sema_done, 1);
    return NULL;
}
static void *sema_rel(void *arg)
{
    long k = (long)(intptr_t)arg;
    for (long i = 0; i < k; i++) {
        gm_sema_release(&sema);
        if ((i & 1023) == 0) sched_yield();
    }
    return NULL;
}

static char c32(const lab_opts *o, char *fig, size_t n)
{
    long k = o->quick ? 100000 : 1000000;
    gm_sync_stats s0, s1;
    gm_sync_stats_get(&s0);
    pthread_t t[4];
    atomic_store(&sema_done, 0);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, i < 2 ? sema_acq : sema_rel, (void *)(intptr_t)k);
    uint64_t t0 = lab_now_ns();
    while (atomic_load(&sema_done) < 2 && lab_now_ns() - t0 < 20000000000ull) usleep(1000);
    bool all = atomic_load(&sema_done) == 2;
    if (!all) {
        FIG("acquirers still waiting after 20 s: a lost wakeup");
        return 'T';
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    gm_sync_stats_get(&s1);
    FIG("2 threads released %ld times each, 2 acquired as often: all done, count back to %u, %llu sleeps woken",
        k, sema, (unsigned long long)(s1.sema_sleeps - s0.sema_sleeps));
    return sema == 0 ? 'F' : 'T';
}

/* 33: preallocated overflow buckets and the collector. */
static char c33(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_root_add(&cm, sizeof cm);
    cm = lab_classic_map(&gm_type_u64, &gm_type_u64, 1 << 12, true);   /* B >= 4: overflow buckets preallocated */
    const void *p0 = next_overflow(cm);
    for (int i = 0; i < 5; i++) gm_gc();
    const void *p1 = next_overflow(cm);
    uint64_t ovf0 = stats_of(cm).overflow_allocs;
    for (uint64_t k = 0; k < 20000; k++) *(uint64_t *)gm_map_assign_u64(cm, k) = k;
    const void *p2 = next_overflow(cm);
    uint64_t ovf1 = stats_of(cm).overflow_allocs;
    cm = NULL;
    gm_root_remove(&cm);
    FIG("next preallocated overflow bucket: %s across 5 GC cycles; after inserts that took %llu overflow buckets: %s",
        p0 == p1 ? "unchanged" : "MOVED", (unsigned long long)(ovf1 - ovf0), p2 != p1 ? "advanced" : "unchanged");
    return p0 && p0 == p1 && (p2 != p1 || ovf1 == ovf0) ? 'F' : 'T';
}

/* 34: where buckets live. */
/* Fills the map and says whether its bucket array is a GC object; no copy
 * of the array's address is left in the caller's frame (the stack is
 * scanned conservatively: such a copy kept the array alive a cycle). */
__attribute__((noinline)) static bool make_gc_map(size_t keys)
{
    cm = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, true);
    for (uint64_t k = 0; k < keys; k++) *(uint64_t *)gm_map_assign_u64(cm, k) = k;
    return is_gc_object(stats_of(cm).array);
}

static char c34(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    gm_root_add(&cm, sizeof cm);
    bool in_heap = make_gc_map(200000);
    scrub_stack();
    gm_gc();
    gm_memstats a, b;
    gm_read_memstats(&a);
    cm = NULL;
    /* Freed by the collector alone, within three cycles: a stale copy of an
     * address in a conservatively scanned stack or register can keep it one
     * cycle longer (seen once in CI-like runs). */
    int cycles = 0;
    do {
        scrub_stack();
        gm_gc();
        cycles++;
        gm_read_memstats(&b);
    } while (b.heap_alloc >= a.heap_alloc && cycles < 3);
    gm_root_remove(&cm);
    char x[32], y[32];
    FIG("the bucket array is a GC heap object: %s; the map dropped: heap %s -> %s after %d cycle%s, no finalizer "
        "involved", in_heap ? "yes" : "no", lab_bytes((double)a.heap_alloc, x, sizeof x),
        lab_bytes((double)b.heap_alloc, y, sizeof y), cycles, cycles == 1 ? "" : "s");
    return in_heap && b.heap_alloc < a.heap_alloc ? 'F' : 'T';
}

static char c35(const lab_opts *o, char *fig, size_t n)
{
    const smdel_result *s = m_syncmap_delete(o);
    FIG("%zu deleted values: %zu still reachable after one cycle; their keys stayed in the read-only map (%zu keys) "
        "until promotion (%zu)", s->n / 2, s->deleted_alive_1, s->read_after_delete, s->read_after_promote);
    bool freed = s->deleted_alive_1 == 0;
    bool key_stays = s->read_after_delete == s->n;
    return freed && key_stays ? 'P' : !freed ? 'T' : 'F';
}

/* 36: which delete runs: chosen by key type. */
static int child_fast_wrong(void)
{
    gm_map *m = lab_classic_map(&gm_type_str, &gm_type_u64, 1000, false);   /* B >= 4 */
    gm_map_delete_u64(m, 1);
    return 0;
}
static const lab_child fw_child = { "fast-wrong-key", child_fast_wrong };
LAB_CHILD(fw_child)

static char c36(const lab_opts *o, char *fig, size_t n)
{
    (void)o;
    bool ok = true;
    for (unsigned want_b = 2; want_b <= 6; want_b += 4) {
        gm_map *m = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
        uint64_t k = 0;
        for (; stats_of(m).b < want_b || stats_of(m).growing; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
        size_t len = gm_map_len(m);
        for (uint64_t j = 0; j < k; j += 2) ok &= gm_map_delete_u64(m, j);
        ok &= gm_map_len(m) == len - (k + 1) / 2 && gm_map_check(m) == NULL;
        gm_map_free(m);
    }
    char buf[2048];
    int st = 0;
    bool ran = lab_run_child("fast-wrong-key", NULL, buf, sizeof buf, &st);
    const char *l = lab_line_with(buf, "fatal error");
    bool by_type = ran && WIFSIGNALED(st) && l;
    FIG("the uint64 delete path (C, map_fast.c) works at B=2 and B=6: %s; on a string-keyed map it refuses at once "
        "whatever B: \"%s\"", ok ? "yes" : "NO", l ? l : "(no refusal)");
    return ok && by_type ? 'F' : 'T';
}

/* ---- the table -------------------------------------------------------------------- */

typedef struct claim {
    const char *text;       /* the claim, one line */
    const char *go;         /* what Go's runtime does (function, file) */
    const char *here;       /* what settles it here */
    char expect;
    char (*measure)(const lab_opts *o, char *fig, size_t n);
} claim;
/* Rows whose verdict rests on timing or on thread interleavings (see
 * lab_verdict_stat): in sanitizer builds a mismatch is shown, not counted. */
static bool stat_row(int no) { return no == 11 || no == 24 || no == 27 || no == 28 || no == 30 || no == 31; }

static const claim claims[] = {
    { "Since Go 1.21, delete frees a bucket's memory once it is empty",
      "mapdelete (runtime/map.go) marks emptyOne/emptyRest; buckets never freed (issue 20135)",
      "deletes on a malloc map, bucket bytes before/after (sparse-after-delete)", 'F', c1 },
    { "delete leaves a tombstone (emptyOne), lowers count, keeps the memory",
      "mapdelete (runtime/map.go): emptyOne, trailing runs emptyRest, count--",
      "one delete: slot states (tophash census), len, bytes", 'T', c2 },
    { "delete inside range then break or growth can panic (\"bucket pointer is nil\")",
      "the spec allows delete during range; mapiternext (map.go) has no such message",
      "child: delete-in-range, break, growth, 300 rounds", 'F', c3 },
    { "range works on a snapshot: mapiterinit freezes count and the bucket pointer",
      "mapiterinit (map.go) records B and buckets, not count",
      "iterate after deleting unreached keys; growth under an iterator", 'P', c4 },
    { "After deletes, MemStats.Mallocs stops rising because buckets are handed back",
      "Mallocs is cumulative (mstats.go); mapdelete frees nothing",
      "delete-and-the-gc; delete all of a GC map", 'F', c5 },
    { "Bulk delete should collect the keys first, then delete",
      "range-delete compiles to mapclear (walk/range.go); clear() since Go 1.21",
      "range-and-delete vs clear() on one map", 'P', c6 },
    { "A bucket that becomes empty triggers a lazy shrink or cleanup",
      "no shrink in Go's map (map.go); delete only helps a grow already running",
      "empty half the buckets, then many writes", 'F', c7 },
    { "mapdelete clears with *k = 0, skipping the barrier, so the GC frees live objects",
      "mapdelete: typedmemclr / memclrHasPointers (mbarrier.go), barriered",
      "delete-and-the-gc: checkmark child, barrier shades", 'F', c8 },
    { "A map op on a grey hmap wakes gcMarkWorker; markrootSpans calls it",
      "no such function; gcBgMarkWorker (mgc.go) scheduled by the pacer; markrootSpans: specials",
      "map ops without allocation: cycles started, mark work, assists", 'F', c9 },
    { "Bulk delete makes mark-assist time jump",
      "assists are charged in mallocgc (malloc.go, gcAssistAlloc); deletes only shade",
      "delete-and-the-gc: assists, delete-only vs delete+alloc", 'F', c10 },
    { "Frequent deletes lengthen stop-the-world pauses",
      "map ops never run inside STW (mgc.go gcStart/gcMarkDone)",
      "delete-and-the-gc: pauses at n, 10n, 100n", 'F', c11 },
    { "Go 1.21 moved finalizers to a per-type cache with batched registration",
      "SetFinalizer (mfinal.go) adds one special record per object (addfinalizer, mheap.go)",
      "100 objects of one type, one dropped", 'F', c12 },
    { "Finalizers are delayed because mark termination waits for map evacuation",
      "nothing waits on evacuation; old buckets stay reachable via h.oldbuckets",
      "objects in a growing map, entries deleted, one cycle", 'F', c13 },
    { "Official fixes added hiter.last, gcWriteBarrierCheck, wbBuf.wbActive",
      "none of these exist (hiter in map.go, wbBuf in mwbbuf.go)",
      "the guarantees they would add: iteration, barrier (measured)", 'F', c14 },
    { "map_fast32.go holds an iterator state machine",
      "map_fast32.go: access/assign/delete only; iteration is mapiternext (map.go)",
      "range over a uint32-keyed map while it grows", 'F', c15 },
    { "Growth starts when count > B*6.5, or on too many overflow buckets",
      "overLoadFactor: count > 8 && count > 6.5*2^B; tooManyOverflowBuckets: same-size",
      "the count at every doubling; overflow churn", 'P', c16 },
    { "Each write evacuates its own old bucket plus one more",
      "growWork (map.go), called by mapassign and mapdelete",
      "who-evacuates: evacuations per write", 'T', c17 },
    { "During a grow old and new coexist, memory briefly doubles, the GC scans both",
      "hashGrow: new = 2x old; old dropped when done; scanned only with pointers",
      "who-evacuates: bytes held; mark work on a pointer-free map", 'P', c18 },
    { "The GC mark phase forces evacuation (gcDrain drains oldbuckets)",
      "only mapassign/mapdelete call growWork; the GC only scans",
      "who-evacuates: nevacuate across GC cycles", 'F', c19 },
    { "Evacuation copies with typedmemmove (barrier on); new buckets allocated black",
      "evacuate (map.go) uses typedmemmove; mallocgc marks new objects during mark",
      "evacuation while marking: barrier shades; mark bits of new objects", 'T', c20 },
    { "mapassign inserts an explicit barrier-readiness check",
      "barriers are compiler-emitted; writeBarrier.enabled is one global flag",
      "barrier shades of map puts with and without a cycle", 'F', c21 },
    { "Reads of a growing map use acquire atomics; tophash[0] is an atomic migration flag",
      "plain loads and stores; evacuated() tests tophash[0] in {2,3,4} (map.go)",
      "old buckets' tophash[0]; flags across reads", 'F', c22 },
    { "An iterator on a growing map walks the old bucket, skipping the other half's entries",
      "mapiternext (map.go) with checkBucket",
      "range while the map grows: duplicates, misses", 'T', c23 },
    { "A size hint cuts growths and STW time",
      "makemap sizes B from the hint; marking is concurrent, STW unaffected",
      "size-hint", 'P', c24 },
    { "runtime.GC() returns while sweeping may still run",
      "GC() (mgc.go) sweeps to completion (sweepone loop) before returning",
      "gc-returns-swept", 'F', c25 },
    { "GODEBUG wb=false disables the write barrier for comparison",
      "no such setting (runtime/runtime1.go dbgvars)",
      "GMDEBUG=wb=0 in a child", 'F', c26 },
    { "Concurrent write and delete panics with \"concurrent map writes\"",
      "fatal(\"concurrent map writes\") in mapassign/mapdelete: a throw, best effort",
      "misuse-matrix: assign vs delete", 'P', c27 },
    { "Two goroutines deleting the same key silently corrupt count or chains",
      "a data race; usually caught by hashWriting in mapdelete",
      "misuse-matrix: delete vs delete", 'P', c28 },
    { "len(m) during a concurrent delete throws since Go 1.16",
      "len is a plain load of h.count (maplen, map.go): no check",
      "misuse-matrix: delete vs len; len inside a held write", 'F', c29 },
    { "mapassign takes a lock or semaphore; a panic mid-evacuation leaves writers hung",
      "hmap has no lock; hashWriting is set after hashing (mapassign)",
      "misuse-matrix: a held write, abandoned writes", 'F', c30 },
    { "The h.flags check is not atomic, so two writers can both think they are alone",
      "true by design: hashWriting is a best-effort detector",
      "misuse-matrix: undetected overlapping races", 'T', c31 },
    { "semrelease does a plain increment and loses wakeups",
      "semrelease1 (sema.go) uses atomic.Xadd",
      "gm_sema: 2 acquirers vs 2 releasers", 'F', c32 },
    { "extra.nextOverflow is tied to gcmarkBits",
      "nextOverflow points at preallocated overflow buckets (makeBucketArray); mark bits are per span",
      "the next overflow bucket across GC cycles and inserts", 'F', c33 },
    { "SetFinalizer on hmap.buckets prevents leaks of C-allocated buckets",
      "buckets are always Go heap objects (makeBucketArray -> newarray)",
      "where a GC map's buckets live; a dropped map's memory", 'F', c34 },
    { "sync.Map Delete only marks entries expunged later, so values stay alive",
      "entry.delete (sync/map.go) swaps p to nil at once; the key waits for promotion",
      "syncmap-delete", 'P', c35 },
    { "mapdelete_fast64 is assembly, chosen when B >= 4",
      "Go code (map_fast64.go), chosen at compile time by key type and value size",
      "the uint64 delete at B=2 and B=6; on a string map", 'F', c36 },
};

static const char *word(char v)
{
    return v == 'T' ? "true" : v == 'F' ? "false" : v == 'P' ? "partly" : "n/a";
}

int lab_run_claims(const lab_opts *o)
{
    enum { NCLAIMS = sizeof claims / sizeof claims[0] };
    _Static_assert(NCLAIMS == 36, "docs/claims.md lists 36 claims");
    lab_heading("Claims about Go's map and GC, measured here (docs/claims.md)");
    printf("  Each row: the claim; what Go's runtime does; what settles it here, and the\n"
           "  figures of this run; the verdict measured now against the one expected.\n"
           "  Where a claim names Go-only machinery, the mechanism it implies is measured.\n\n");
    int bad = 0, skipped = 0;
    char verdicts[NCLAIMS];
    for (int i = 0; i < NCLAIMS; i++) {
        const claim *c = &claims[i];
        char fig[512] = "";
        lab_progress("claim %d", i + 1);
        char v = c->measure(o, fig, sizeof fig);
        verdicts[i] = v;
        bool ok = v == c->expect;
        /* not counted: a timing row in a sanitizer build, or a race that
         * this run never hit ('?': detection is best effort, as in Go) */
        bool skip = !ok && ((lab_sanitized() && stat_row(i + 1)) || v == '?');
        bad += !ok && !skip;
        skipped += skip;
        if (isatty(2)) fprintf(stderr, "\r\033[K");
        printf("  %2d  %-6s %s  %s\n", i + 1, word(v), ok ? "[ok]  " : skip ? "[skip]" : "[FAIL]", c->text);
        printf("          Go:   %s\n", c->go);
        printf("          here: %s: %s\n", c->here, fig);
        if (!ok) printf("          expected %s, measured %s%s\n", word(c->expect), word(v),
                        v == '?' ? " (inconclusive: the race was not hit in this run)"
                        : skip   ? " (sanitizer build: timing and interleavings are not representative)"
                                 : "");
    }
    int t = 0, f = 0, p = 0;
    for (int i = 0; i < NCLAIMS; i++) {
        t += verdicts[i] == 'T';
        f += verdicts[i] == 'F';
        p += verdicts[i] == 'P';
    }
    printf("\n  %d claims: %d true, %d false, %d partly, measured in this run; %s", NCLAIMS, t, f, p,
           bad ? "SOME VERDICTS DIFFER FROM THE EXPECTED ONES" : "every verdict as expected");
    if (skipped) printf(" (%d timing/interleaving rows not counted: sanitizer build or a race not hit)", skipped);
    printf(".\n");
    lab_verdict(bad == 0, "all %d measured verdicts match docs/claims.md", NCLAIMS);
    return bad ? 1 : 0;
}
