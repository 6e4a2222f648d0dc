/* harness.h - workload W and its measurements, shared by every C/C++ driver.
 *
 * A driver defines a small set of operations on its map and then includes
 * this file, which supplies main().  The operations (all static, usually
 * inline) are:
 *
 *   typedef ... u64map;            u64 -> u64
 *   u64map *u64_new(void);         void u64_free(u64map *);
 *   void u64_insert(u64map *, uint64_t key, uint64_t val);
 *   bool u64_find(u64map *, uint64_t key, uint64_t *val);
 *   void u64_erase(u64map *, uint64_t key);
 *   uint64_t u64_sum(u64map *, size_t *count);       iterate, summing values
 *   size_t u64_len(u64map *);
 *   bool u64_any(u64map *, uint64_t *key);           some key (first from an
 *                                                    iterator), false if empty
 *   void u64_clear(u64map *);
 *   typedef ... strmap;            16-byte string key -> u64, the same set
 *   (str_new, str_free, str_insert, str_find, str_erase, str_sum, str_len),
 *   where a key is `const char *` to 16 bytes that outlive the map.
 *   IMPL_NAME                      a string
 *   optional: BM_DESCRIBE(m, buf, size), writes a JSON object describing
 *   the table's shape after the first map of the latency pass (gomap: its
 *   gm_map_stats), kept in the record as "shape"
 *   optional: BM_ALLOC_BYTES_U64(m) / BM_ALLOC_BYTES_STR(m), the bytes the
 *   map says it holds, for a map that does not take all its memory from
 *   malloc (gomap mmaps large bucket arrays); else mallinfo2's delta is used
 *
 * Workload W (identical in the Go program, go/main.go): N keys from
 * splitmix64 seeded 1, values key*3; insert into a fresh map (no hint),
 * look up every key (hit), look up N keys from splitmix64 seeded 2 (miss),
 * iterate summing the values, delete every key.  String keys are the 16
 * lower-case hex digits of the same u64 keys, all in one buffer.
 *
 * Modes (one process each, so one cannot disturb another's memory figures):
 *   phases   ns/op of the five phases, summed over `reps` fresh maps
 *   latency  every insert timed alone (one clock read per insert); max,
 *            p99.99, p50; involuntary context switches and minor page
 *            faults during the pass (what a loaded machine adds to the
 *            tail); the inserts during which the thread was switched out
 *            (getrusage(RUSAGE_THREAD) after every insert, outside the
 *            timed window) and the max and p99.99 of the others ("quiet":
 *            the map's own work, without other processes' time slices);
 *            and memory: RSS delta, peak RSS delta and the
 *            allocator's count (mallinfo2) per entry after the first map
 *   shapes   Go's own benchmark shapes (populate, pop, clear, sparse iter)
 *
 * Every mode checks its results (all hits found with the right value, no
 * miss found, the sum, an empty map at the end) and exits 1 if wrong.
 * Output: one JSON object on stdout.
 */
#ifndef BENCH_MAP_HARNESS_H
#define BENCH_MAP_HARNESS_H

#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define BM_NOINLINE __attribute__((noinline))
#else
#define BM_NOINLINE
#endif

static uint64_t bm_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t bm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t bm_sink;

static void *bm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

static void bm_fail(const char *impl, const char *what)
{
    fprintf(stderr, "bench: %s: WRONG RESULT: %s\n", impl, what);
    exit(1);
}

static uint64_t *bm_keys(size_t n, uint64_t seed)
{
    uint64_t *k = (uint64_t *)bm_xmalloc(n * sizeof *k);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        k[i] = bm_splitmix64(&s);
    return k;
}

static char *bm_str_keys(const uint64_t *k, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *buf = (char *)bm_xmalloc(n * 16);
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 16; d++)
            buf[i * 16 + d] = hex[(k[i] >> (60 - 4 * d)) & 15];
    return buf;
}

/* ---- memory ------------------------------------------------------------ */

static size_t bm_rss_bytes(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t bm_hwm_bytes(void)
{
    char line[256];
    size_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}

static size_t bm_malloc_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static char bm_shape[1024] = "null";
#ifndef BM_DESCRIBE
#define BM_DESCRIBE(m, buf, size) ((void)(m))
#endif

#ifdef BM_ALLOC_BYTES_U64
#define u64_alloc_bytes(m, malloc_delta) ((void)(malloc_delta), BM_ALLOC_BYTES_U64(m))
#define str_alloc_bytes(m, malloc_delta) ((void)(malloc_delta), BM_ALLOC_BYTES_STR(m))
#else
#define u64_alloc_bytes(m, malloc_delta) ((void)(m), (malloc_delta))
#define str_alloc_bytes(m, malloc_delta) ((void)(m), (malloc_delta))
#endif

/* ---- latency histogram: exact below 4096 ns, then 2048 steps per octave
 * (0.05% precision), so p99.99 needs no sort and no per-sample store.  The
 * Go program has the same histogram. ------------------------------------ */

#define BM_HEXACT 4096u
#define BM_HSUB 2048u
#define BM_HSIZE (BM_HEXACT + 52u * BM_HSUB)

typedef struct bm_hist {
    uint32_t *count;
    uint64_t n, max;
    size_t max_at;      /* which insert of its map took the longest */
} bm_hist;

static unsigned bm_msb(uint64_t v) { return 63u - (unsigned)__builtin_clzll(v); }

static inline void bm_hist_add(bm_hist *h, uint64_t v)
{
    size_t idx;
    if (v < BM_HEXACT) {
        idx = (size_t)v;
    } else {
        unsigned shift = bm_msb(v) - 11u;          /* v >> shift in [2048, 4096) */
        idx = BM_HEXACT + (size_t)(shift - 1u) * BM_HSUB + (size_t)((v >> shift) - BM_HSUB);
    }
    h->count[idx]++;
    h->n++;
    if (v > h->max) h->max = v;
}

static uint64_t bm_hist_value(size_t idx)
{
    if (idx < BM_HEXACT) return idx;
    size_t j = idx - BM_HEXACT;
    unsigned shift = (unsigned)(j / BM_HSUB) + 1u;
    return (uint64_t)(j % BM_HSUB + BM_HSUB) << shift;
}

static uint64_t bm_hist_quantile(const bm_hist *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999), acc = 0;
    if (rank == 0) rank = 1;
    for (size_t i = 0; i < BM_HSIZE; i++) {
        acc += h->count[i];
        if (acc >= rank) return bm_hist_value(i);
    }
    return h->max;
}

/* Context switches of the calling thread so far (voluntary and not).  The
 * latency pass reads it after every insert, outside the timed window, to
 * tell the inserts the thread was switched out during (whose time is
 * mostly other processes' on a shared machine) from the others. */
static long bm_thread_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nivcsw + ru.ru_nvcsw;
}

/* The cost of one clock read, which every latency sample includes once
 * (mean of 200,000 back-to-back reads, ns). */
static double bm_clock_overhead(void)
{
    enum { R = 200000 };
    uint64_t t0 = bm_now_ns();
    for (int i = 0; i < R; i++) bm_sink += bm_now_ns();
    return (double)(bm_now_ns() - t0) / R;
}

/* ---- the phases -------------------------------------------------------- */

typedef struct bm_args {
    const char *mode, *keys;
    size_t n, reps;
} bm_args;

enum { PH_INSERT, PH_HIT, PH_MISS, PH_ITER, PH_DELETE, PH_N };
static const char *const bm_phase_names[PH_N] = {"insert", "hit", "miss", "iter", "delete"};

/* Each phase is its own noinline function so that a profiler
 * (profile.sh: callgrind --toggle-collect=phase_hit_u64) can count one. */
#define BM_DEFINE_PHASES(P, MAP, KEYT, KEYAT)                                  \
    BM_NOINLINE static void phase_insert_##P(MAP *m, KEYT keys, const uint64_t *vals, size_t n) \
    { for (size_t i = 0; i < n; i++) P##_insert(m, KEYAT(keys, i), vals[i] * 3); } \
    BM_NOINLINE static uint64_t phase_hit_##P(MAP *m, KEYT keys, const uint64_t *vals, size_t n) \
    {                                                                          \
        uint64_t sum = 0, bad = 0, v;                                          \
        for (size_t i = 0; i < n; i++) {                                       \
            if (P##_find(m, KEYAT(keys, i), &v)) {                             \
                sum += v; bad += (v != vals[i] * 3);                           \
            } else {                                                           \
                bad++;                                                         \
            }                                                                  \
        }                                                                      \
        return bad ? UINT64_MAX : sum;                                         \
    }                                                                          \
    BM_NOINLINE static size_t phase_miss_##P(MAP *m, KEYT keys, size_t n)      \
    {                                                                          \
        size_t found = 0; uint64_t v;                                          \
        for (size_t i = 0; i < n; i++) found += P##_find(m, KEYAT(keys, i), &v); \
        return found;                                                          \
    }                                                                          \
    BM_NOINLINE static uint64_t phase_iter_##P(MAP *m, size_t *count)          \
    { return P##_sum(m, count); }                                              \
    BM_NOINLINE static void phase_delete_##P(MAP *m, KEYT keys, size_t n)      \
    { for (size_t i = 0; i < n; i++) P##_erase(m, KEYAT(keys, i)); }           \
    static void run_phases_##P(const bm_args *a, KEYT keys, KEYT miss,          \
                               const uint64_t *vals, double ns[PH_N])          \
    {                                                                          \
        uint64_t t[PH_N] = {0}, want = 0;                                      \
        for (size_t i = 0; i < a->n; i++) want += vals[i] * 3;                 \
        for (size_t r = 0; r < a->reps; r++) {                                 \
            MAP *m = P##_new();                                                \
            uint64_t t0 = bm_now_ns();                                         \
            phase_insert_##P(m, keys, vals, a->n);                             \
            uint64_t t1 = bm_now_ns();                                         \
            uint64_t s = phase_hit_##P(m, keys, vals, a->n);                   \
            uint64_t t2 = bm_now_ns();                                         \
            size_t f = phase_miss_##P(m, miss, a->n);                          \
            uint64_t t3 = bm_now_ns();                                         \
            size_t cnt = 0;                                                    \
            uint64_t s2 = phase_iter_##P(m, &cnt);                             \
            uint64_t t4 = bm_now_ns();                                         \
            phase_delete_##P(m, keys, a->n);                                   \
            uint64_t t5 = bm_now_ns();                                         \
            if (P##_len(m) != 0) bm_fail(IMPL_NAME, "map not empty after delete"); \
            P##_free(m);                                                       \
            if (s != want) bm_fail(IMPL_NAME, "hit phase: missing key or wrong value"); \
            if (f != 0) bm_fail(IMPL_NAME, "miss phase found an absent key");  \
            if (s2 != want || cnt != a->n) bm_fail(IMPL_NAME, "iteration sum/count"); \
            t[PH_INSERT] += t1 - t0; t[PH_HIT] += t2 - t1; t[PH_MISS] += t3 - t2; \
            t[PH_ITER] += t4 - t3; t[PH_DELETE] += t5 - t4;                    \
            bm_sink += s + s2;                                                 \
        }                                                                      \
        for (int p = 0; p < PH_N; p++)                                         \
            ns[p] = (double)t[p] / ((double)a->n * (double)a->reps);           \
    }                                                                          \
    /* every insert timed alone; memory measured after the first map */       \
    static void run_latency_##P(const bm_args *a, KEYT keys, const uint64_t *vals, \
                                bm_hist *h, bm_hist *hq, double mem[3])        \
    {                                                                          \
        for (size_t r = 0; r < a->reps; r++) {                                 \
            size_t rss0 = bm_rss_bytes(), mal0 = bm_malloc_bytes();            \
            MAP *m = P##_new();                                                \
            long sw = bm_thread_switches();                                    \
            uint64_t prev = bm_now_ns();                                       \
            for (size_t i = 0; i < a->n; i++) {                                \
                P##_insert(m, KEYAT(keys, i), vals[i] * 3);                    \
                uint64_t now = bm_now_ns();                                    \
                long sw1 = bm_thread_switches();                               \
                if (now - prev > h->max) h->max_at = i;                        \
                bm_hist_add(h, now - prev);                                    \
                if (sw1 == sw) {                                               \
                    if (now - prev > hq->max) hq->max_at = i;                  \
                    bm_hist_add(hq, now - prev);                               \
                }                                                              \
                sw = sw1;                                                      \
                prev = bm_now_ns();                                            \
            }                                                                  \
            if (r == 0) {                                                      \
                mem[0] = (double)(bm_rss_bytes() - rss0) / (double)a->n;       \
                mem[1] = (double)(bm_hwm_bytes() - rss0) / (double)a->n;       \
                mem[2] = (double)(P##_alloc_bytes(m, bm_malloc_bytes() - mal0)) \
                         / (double)a->n;                                       \
                BM_DESCRIBE(m, bm_shape, sizeof bm_shape);                     \
            }                                                                  \
            if (P##_len(m) != a->n) bm_fail(IMPL_NAME, "latency: wrong length"); \
            P##_free(m);                                                       \
        }                                                                      \
    }

#define BM_U64AT(keys, i) ((keys)[i])
#define BM_STRAT(keys, i) ((keys) + (size_t)(i) * 16)

BM_DEFINE_PHASES(u64, u64map, const uint64_t *, BM_U64AT)
BM_DEFINE_PHASES(str, strmap, const char *, BM_STRAT)

/* ---- Go's own benchmark shapes (runtime/map_test.go), on u64 -> u64 ---- */

static void bm_shapes(const bm_args *a)
{
    int quick = a->reps <= 1;
    printf("{\"impl\":\"%s\",\"mode\":\"shapes\",\"results\":{", IMPL_NAME);
    const char *sep = "";
    /* populate: a fresh map, keys 0..size-1 (BenchmarkMapPopulate) */
    for (size_t size = 1; size <= 100000; size *= 10) {
        size_t iters = (quick ? 1000000 : 4000000) / size;
        if (iters < 5) iters = 5;
        uint64_t t0 = bm_now_ns();
        for (size_t i = 0; i < iters; i++) {
            u64map *m = u64_new();
            for (size_t j = 0; j < size; j++) u64_insert(m, j, j);
            if (u64_len(m) != size) bm_fail(IMPL_NAME, "populate");
            u64_free(m);
        }
        printf("%s\"populate/%zu\":%.1f", sep, size, (double)(bm_now_ns() - t0) / (double)iters);
        sep = ",";
    }
    /* pop: fill, then take one key from a fresh iteration and delete it
     * until empty (BenchmarkMapPop, issue 8412) */
    for (size_t size = 100; size <= 10000; size *= 10) {
        size_t iters = (quick ? 200000 : 1000000) / size;
        u64map *m = u64_new();
        uint64_t t0 = bm_now_ns();
        for (size_t i = 0; i < iters; i++) {
            for (size_t j = 0; j < size; j++) u64_insert(m, j, j);
            for (size_t j = 0; j < size; j++) {
                uint64_t k;
                if (!u64_any(m, &k)) bm_fail(IMPL_NAME, "pop: empty too soon");
                u64_erase(m, k);
            }
        }
        if (u64_len(m) != 0) bm_fail(IMPL_NAME, "pop: not empty");
        printf(",\"pop/%zu\":%.1f", size, (double)(bm_now_ns() - t0) / (double)iters);
        u64_free(m);
    }
    /* clear of a large map after it was emptied: 1M in, 1M out, then
     * m[0] = 1; clear(m) (the cost is the bucket array's size; issue 70617) */
    {
        size_t big = 1000000, iters = quick ? 100 : 400;
        uint64_t *k = bm_keys(big, 1);
        u64map *m = u64_new();
        for (size_t j = 0; j < big; j++) u64_insert(m, k[j], j);
        for (size_t j = 0; j < big; j++) u64_erase(m, k[j]);
        uint64_t t0 = bm_now_ns();
        for (size_t i = 0; i < iters; i++) {
            u64_insert(m, 0, 1);
            u64_clear(m);
        }
        if (u64_len(m) != 0) bm_fail(IMPL_NAME, "clear");
        printf(",\"clear_emptied/1000000\":%.1f", (double)(bm_now_ns() - t0) / (double)iters);
        /* iteration over a sparse map: 1M in, the first 990K out */
        for (size_t j = 0; j < big; j++) u64_insert(m, k[j], j);
        for (size_t j = 0; j < 990000; j++) u64_erase(m, k[j]);
        uint64_t want = 0;
        for (size_t j = 990000; j < big; j++) want += j;
        iters = quick ? 50 : 200;
        t0 = bm_now_ns();
        for (size_t i = 0; i < iters; i++) {
            size_t cnt = 0;
            uint64_t s = u64_sum(m, &cnt);
            if (s != want || cnt != 10000) bm_fail(IMPL_NAME, "sparse iteration");
            bm_sink += s;
        }
        printf(",\"iter_sparse/1000000-990000\":%.1f", (double)(bm_now_ns() - t0) / (double)iters);
        u64_free(m);
        free(k);
    }
    printf("}}\n");
}

/* ---- main --------------------------------------------------------------- */

static void bm_usage(void)
{
    fprintf(stderr, "usage: driver --mode phases|latency|shapes [--keys u64|str] "
                    "[--n N] [--reps R]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bm_args a;
    a.mode = "phases"; a.keys = "u64"; a.n = 1000; a.reps = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) bm_usage();
        if (strcmp(argv[i], "--mode") == 0) a.mode = argv[++i];
        else if (strcmp(argv[i], "--keys") == 0) a.keys = argv[++i];
        else if (strcmp(argv[i], "--n") == 0) a.n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0) a.reps = strtoull(argv[++i], NULL, 10);
        else bm_usage();
    }
    if (a.n == 0 || a.reps == 0) bm_usage();
    int str = strcmp(a.keys, "str") == 0;
    if (!str && strcmp(a.keys, "u64") != 0) bm_usage();

    if (strcmp(a.mode, "shapes") == 0) {
        bm_shapes(&a);
        return 0;
    }
    uint64_t *keys = bm_keys(a.n, 1), *miss = bm_keys(a.n, 2);
    char *skeys = str ? bm_str_keys(keys, a.n) : NULL;
    char *smiss = str ? bm_str_keys(miss, a.n) : NULL;

    printf("{\"impl\":\"%s\",\"keys\":\"%s\",\"n\":%zu,\"reps\":%zu,\"mode\":\"%s\"",
           IMPL_NAME, a.keys, a.n, a.reps, a.mode);
    if (strcmp(a.mode, "phases") == 0) {
        double ns[PH_N];
        if (str) run_phases_str(&a, skeys, smiss, keys, ns);
        else run_phases_u64(&a, keys, miss, keys, ns);
        printf(",\"ns\":{");
        for (int p = 0; p < PH_N; p++)
            printf("%s\"%s\":%.2f", p ? "," : "", bm_phase_names[p], ns[p]);
        printf("}");
    } else if (strcmp(a.mode, "latency") == 0) {
        bm_hist h, hq;
        double mem[3] = {0, 0, 0};
        h.count = (uint32_t *)calloc(BM_HSIZE, sizeof(uint32_t));
        hq.count = (uint32_t *)calloc(BM_HSIZE, sizeof(uint32_t));
        h.n = h.max = hq.n = hq.max = 0;
        h.max_at = hq.max_at = 0;
        if (h.count == NULL || hq.count == NULL) bm_fail(IMPL_NAME, "histogram");
        double clk = bm_clock_overhead();
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        if (str) run_latency_str(&a, skeys, keys, &h, &hq, mem);
        else run_latency_u64(&a, keys, keys, &h, &hq, mem);
        getrusage(RUSAGE_SELF, &ru1);
        printf(",\"clock_ns\":%.1f,\"lat_samples\":%" PRIu64 ",\"lat_max_ns\":%" PRIu64
               ",\"lat_p9999_ns\":%" PRIu64 ",\"lat_p999_ns\":%" PRIu64 ",\"lat_p50_ns\":%" PRIu64
               ",\"lat_max_at\":%zu,\"rss_bpe\":%.2f,\"peak_bpe\":%.2f,\"alloc_bpe\":%.2f"
               ",\"invol_csw\":%ld,\"minflt\":%ld,\"shape\":%s",
               clk, h.n, h.max, bm_hist_quantile(&h, 0.9999), bm_hist_quantile(&h, 0.999),
               bm_hist_quantile(&h, 0.5), h.max_at, mem[0], mem[1], mem[2],
               ru1.ru_nivcsw - ru0.ru_nivcsw, ru1.ru_minflt - ru0.ru_minflt, bm_shape);
        printf(",\"lat_switched\":%" PRIu64 ",\"lat_quiet_max_ns\":%" PRIu64
               ",\"lat_quiet_max_at\":%zu,\"lat_quiet_p9999_ns\":%" PRIu64,
               h.n - hq.n, hq.max, hq.max_at, bm_hist_quantile(&hq, 0.9999));
        free(h.count);
        free(hq.count);
    } else {
        bm_usage();
    }
    printf("}\n");
    free(keys); free(miss); free(skeys); free(smiss);
    return 0;
}

#endif
