/* maps_gomap.c - a map-heavy workload on gomap's GC heap: BT_THREADS (2)
 * threads, each with a gm_map_new_gc map from uint64 to pointers to small
 * GC objects, churned (insert, overwrite, delete, look up), the map replaced
 * by a fresh one every round.  Values are stored through gm_store (the
 * barrier contract).  Prints one RESULT line like the binary-trees peers.
 *   MAPS_KEYS (default 1<<20 per thread), MAPS_OPS (default 8<<20 per thread) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "gomap/gomap.h"

typedef struct obj { struct obj *next; uint64_t v; } obj;
static const uint8_t obj_mask[] = { 0x1 };
static const gm_type obj_type = { sizeof(obj), 8, NULL, NULL, obj_mask, 0, "obj" };

static long nkeys, nops;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static obj *mk(uint64_t v)
{
    obj *o = gm_new(&obj_type);
    o->v = v;
    return o;
}

static void *worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg, *sum = malloc(sizeof *sum);
    *sum = 0;
    gm_thread_attach();
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    for (long i = 0; i < nkeys; i++) gm_store(gm_map_assign_u64(m, (uint64_t)i), mk((uint64_t)i));
    for (long i = 0; i < nops; i++) {
        uint64_t r = rnd(&seed), k = r % (uint64_t)nkeys;
        switch ((r >> 40) & 3) {
        case 0: gm_store(gm_map_assign_u64(m, k), mk(k)); break;           /* overwrite */
        case 1: gm_map_delete_u64(m, k); break;
        default: {
            obj **p = gm_map_get_u64(m, k);
            if (p && *p) *sum += (*p)->v == k;
            else gm_store(gm_map_assign_u64(m, k), mk(k));
        }
        }
        if (i % (nops / 4) == nops / 4 - 1) {     /* a fresh map, the old one is garbage */
            gm_map *n = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
            for (long j = 0; j < nkeys; j++) {
                obj **p = gm_map_get_u64(m, (uint64_t)j);
                if (p) gm_store(gm_map_assign_u64(n, (uint64_t)j), *p);
            }
            m = n;
        }
    }
    *sum += gm_map_len(m);
    gm_thread_detach();
    return sum;
}

int main(void)
{
    nkeys = getenv("MAPS_KEYS") ? atol(getenv("MAPS_KEYS")) : 1L << 20;
    nops = getenv("MAPS_OPS") ? atol(getenv("MAPS_OPS")) : 8L << 20;
    int nth = getenv("BT_THREADS") ? atoi(getenv("BT_THREADS")) : 2;
    if (nth < 1 || nth > 16) nth = 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gm_thread_attach();
    pthread_t th[16];
    for (int i = 0; i < nth; i++) pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    uint64_t check = 0;
    gm_blocking_begin();
    for (int i = 0; i < nth; i++) {
        void *r;
        pthread_join(th[i], &r);
        check += *(uint64_t *)r;
        free(r);
    }
    gm_blocking_end();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    gm_memstats ms;
    gm_read_memstats(&ms);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *peer = getenv("BT_PEER") ? getenv("BT_PEER") : "gomap";
    printf("RESULT %s time_s=%.3f gcs=%u max_pause_ms=%.3f p99_pause_ms=%.3f gc_cpu=%.3f rss_mb=%.1f check=%llu\n",
           peer, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, ms.num_gc,
           gm_pause_quantile_ns(1.0) / 1e6, gm_pause_quantile_ns(0.99) / 1e6, ms.gc_cpu_fraction,
           ru.ru_maxrss / 1024.0, (unsigned long long)check);
    return 0;
}
