/* drv_gomap.c - workload W on gomap's map (malloc maps, or GC maps with
 * GOMAP_BENCH_GC=1; the u64 and string fast paths).  String keys are gm_type_str: gm_str headers pointing into
 * the shared key buffer, as Go's map[string] holds string headers. */
#include <stdio.h>
#include <stdlib.h>

#include <gomap/map.h>

#define IMPL_NAME "gomap"
typedef gm_map u64map;
typedef gm_map strmap;

/* GOMAP_BENCH_GC=1 (run.sh's gomap-classic-gc): the maps live on the GC
 * heap (gm_map_new_gc), collector running, as a language runtime uses them */
static gm_map *new_or_die(const gm_type *k)
{
    static int gc = -1;
    if (gc < 0) {
        const char *e = getenv("GOMAP_BENCH_GC");
        gc = e != NULL && e[0] == '1';
    }
    gm_map *m = gc ? gm_map_new_gc(k, &gm_type_u64, 0) : gm_map_new(k, &gm_type_u64, 0);
    if (m == NULL) { fprintf(stderr, "gomap: gm_map_new failed\n"); exit(2); }
    return m;
}
static inline void *assign_or_die(void *slot)
{
    if (slot == NULL) { fprintf(stderr, "gomap: assign failed\n"); exit(2); }
    return slot;
}

static u64map *u64_new(void) { return new_or_die(&gm_type_u64); }
static void u64_free(u64map *m) { gm_map_free(m); }
static inline void u64_insert(u64map *m, uint64_t k, uint64_t v)
{
    *(uint64_t *)assign_or_die(gm_map_assign_u64(m, k)) = v;
}
static inline bool u64_find(u64map *m, uint64_t k, uint64_t *v)
{
    const uint64_t *p = (const uint64_t *)gm_map_get_u64(m, k);
    if (p == NULL) return false;
    *v = *p;
    return true;
}
static inline void u64_erase(u64map *m, uint64_t k) { gm_map_delete_u64(m, k); }
static inline uint64_t u64_sum(u64map *m, size_t *count)
{
    gm_map_iter it;
    const void *k;
    void *v;
    uint64_t s = 0;
    size_t c = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, &v)) { s += *(const uint64_t *)v; c++; }
    *count = c;
    return s;
}
static inline size_t u64_len(u64map *m) { return gm_map_len(m); }
static inline bool u64_any(u64map *m, uint64_t *key)
{
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, m);
    bool ok = gm_map_iter_next(&it, &k, &v);
    if (ok) *key = *(const uint64_t *)k;
    gm_map_iter_done(&it);
    return ok;
}
static inline void u64_clear(u64map *m) { gm_map_clear(m); }

static strmap *str_new(void) { return new_or_die(&gm_type_str); }
static void str_free(strmap *m) { gm_map_free(m); }
static inline void str_insert(strmap *m, const char *k, uint64_t v)
{
    *(uint64_t *)assign_or_die(gm_map_assign_str(m, k, 16)) = v;
}
static inline bool str_find(strmap *m, const char *k, uint64_t *v)
{
    const uint64_t *p = (const uint64_t *)gm_map_get_str(m, k, 16);
    if (p == NULL) return false;
    *v = *p;
    return true;
}
static inline void str_erase(strmap *m, const char *k) { gm_map_delete_str(m, k, 16); }
static inline uint64_t str_sum(strmap *m, size_t *count) { return u64_sum(m, count); }
static inline size_t str_len(strmap *m) { return gm_map_len(m); }

/* the allocator's count: what the map holds (bucket arrays, overflow
 * blocks), since large arrays come from mmap, unseen by mallinfo2 */
static size_t map_bytes(gm_map *m)
{
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    return st.bytes;
}
static void describe(gm_map *m, char *buf, size_t size)
{
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    snprintf(buf, size, "{\"count\":%zu,\"b\":%u,\"nbuckets\":%zu,\"noverflow\":%zu,"
             "\"growing\":%d,\"bytes\":%zu,\"grows\":%llu,\"same_size_grows\":%llu,"
             "\"evacuated_buckets\":%llu,\"moved_entries\":%llu,\"overflow_allocs\":%llu}",
             st.count, st.b, st.nbuckets, st.noverflow, (int)st.growing, st.bytes,
             (unsigned long long)st.grows, (unsigned long long)st.same_size_grows,
             (unsigned long long)st.evacuated_buckets, (unsigned long long)st.moved_entries,
             (unsigned long long)st.overflow_allocs);
}
#define BM_DESCRIBE(m, buf, size) describe((m), (buf), (size))
#define BM_ALLOC_BYTES_U64(m) map_bytes(m)
#define BM_ALLOC_BYTES_STR(m) map_bytes(m)

#include "harness.h"
