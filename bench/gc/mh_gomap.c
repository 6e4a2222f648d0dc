/* mh_gomap.c - the map-heavy workload (mh_common.h) on gomap: GC maps
 * (gm_map_new_gc, u64 -> pointer), records from gm_new, every pointer store
 * through the barrier. */
#include <pthread.h>
#include <stdio.h>

#include "gomap/gomap.h"
#include "mh_common.h"
#include "gm_bench.h"

static const uint8_t rec_mask[] = { 0x1 };
static const gm_type rec_type = { sizeof(rec), 8, NULL, NULL, rec_mask, 0, "rec" };
static long LIVE, OPS;

static rec *new_rec(uint64_t key, uint64_t ver, rec *link)
{
    rec *r = gm_new(&rec_type);
    r->key = key;
    r->ver = ver;
    gm_store(&r->link, link);
    return r;
}

static rec *get(gm_map *m, uint64_t k) { return *(rec **)gm_map_get_u64(m, k); }
static void put(gm_map *m, uint64_t k, rec *r) { gm_store(gm_map_assign_u64(m, k), r); }

static void *mutator(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg + 1, sum = 0;
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    rec *prev = NULL;
    for (long i = 0; i < LIVE; i++) prev = new_rec((uint64_t)i, 0, prev), put(m, (uint64_t)i, prev);
    for (long n = 0; n < OPS; n++) {
        uint64_t r = mh_next(&s), k = (r & 0xffffffffu) % (uint64_t)LIVE, j = ((r >> 32) & 0xfffffff) % (uint64_t)LIVE;
        unsigned op = (unsigned)(r >> 60);
        rec *x = get(m, k);
        if (x->key != k) { fprintf(stderr, "mh_gomap: record of %llu damaged\n", (unsigned long long)k); abort(); }
        if (op < 10) sum += x->ver;
        else if (op < 14) put(m, k, new_rec(k, x->ver + 1, get(m, j)));
        else if (op == 14) { uint64_t v = x->ver + 1; gm_map_delete(m, &k); put(m, k, new_rec(k, v, NULL)); }
        else gm_store(&x->link, get(m, j));
    }
    for (long i = 0; i < LIVE; i++) sum += get(m, (uint64_t)i)->ver;
    gm_keep_alive(m);
    return (void *)(uintptr_t)sum;
}

static void pauses(double *max_ms, double *p99_ms)
{
    static gm_memstats m;
    gm_read_memstats(&m);
    if (m.num_gc <= 256) {
        uint64_t p[256];
        for (uint32_t i = 0; i < m.num_gc; i++) p[i] = m.pause_ns[i];
        bt_pause_stats(p, m.num_gc, max_ms, p99_ms);
    } else {
        *p99_ms = gm_pause_quantile_ns(0.99) / 1e6;
        *max_ms = gm_pause_quantile_ns(1.0) / 1e6;
        uint64_t mx = 0;
        for (int i = 0; i < 256; i++) if (m.pause_ns[i] > mx) mx = m.pause_ns[i];
        if (mx / 1e6 > *max_ms) *max_ms = mx / 1e6;
    }
}

int main(void)
{
    LIVE = mh_env("MH_LIVE", 1000000);
    OPS = mh_env("MH_OPS", 8000000);
    gm_thread_attach();
    double t0 = bt_now();
    pthread_t t[MH_THREADS];
    for (int i = 0; i < MH_THREADS; i++) pthread_create(&t[i], NULL, mutator, (void *)(uintptr_t)i);
    uint64_t check = 0;
    gm_blocking_begin();
    for (int i = 0; i < MH_THREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        check += (uint64_t)(uintptr_t)ret;
    }
    gm_blocking_end();
    double secs = bt_now() - t0, maxp, p99;
    pauses(&maxp, &p99);
    gm_memstats ms;
    gm_read_memstats(&ms);
    const char *peer = getenv("MH_PEER") ? getenv("MH_PEER") : "gomap";
    printf("RESULT %s time_s=%.3f gcs=%u max_pause_ms=%.3f p99_pause_ms=%.3f rss_mb=%.1f cpu_s=%.3f gc_cpu=%.3f check=%llu",
           peer, secs, ms.num_gc, maxp, p99, bt_rss_mb(), bt_cpu_s(), ms.gc_cpu_fraction, (unsigned long long)check);
    gm_bench_mark_fields();
    printf("\n");
    return 0;
}
