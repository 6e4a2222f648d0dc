/* scn_engines.c - gomap-lab scenario `engines`: the same workloads on the
 * classic engine (Go 1.19-1.23) and the Swiss engine (Go 1.24). */
#include <stdlib.h>
#include <string.h>

#include "gomap/gomap.h"
#include "lab.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct growth_result {
    uint64_t max_moved;     /* most entries moved by one insert (counted) */
    double max_us, p9999_us, median_ns;
    double bpe_end, bpe_peak;
    const char *check;
};

static struct growth_result grow(gm_map_engine e, size_t n)
{
    struct growth_result r = { 0 };
    gm_map *m = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &(gm_map_opts){ e, false, 0 });
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!m || !lat) abort();
    gm_map_stats st;
    uint64_t moved0 = 0;
    size_t peak = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t0 = lab_now_ns();
        *(uint64_t *)gm_map_assign_u64(m, i * 0x9e3779b97f4a7c15ull) = i;
        lat[i] = lab_now_ns() - t0;
        /* Swiss stats walk the directory: sampled; the engine counts its
         * own most-moved write (max_moved_per_write). */
        if (e == GM_MAP_SWISS && (i & 4095) != 0 && i + 1 != n) continue;
        gm_map_stats_get(m, &st);
        if (e == GM_MAP_SWISS) r.max_moved = st.max_moved_per_write;
        else if (st.moved_entries - moved0 > r.max_moved) r.max_moved = st.moved_entries - moved0;
        moved0 = st.moved_entries;
        if (st.bytes > peak) peak = st.bytes;
        if (i % 262144 == 0) lab_progress("engines: %s %llu / %zu", e == GM_MAP_SWISS ? "swiss" : "classic",
                                          (unsigned long long)i, n);
    }
    qsort(lat, n, sizeof *lat, cmp_u64);
    r.median_ns = (double)lat[n / 2];
    r.p9999_us = lat[(size_t)(n * 0.9999)] / 1e3;
    r.max_us = lat[n - 1] / 1e3;
    r.bpe_end = (double)st.bytes / (double)n;
    r.bpe_peak = (double)peak / (double)n;
    r.check = gm_map_check(m);
    free(lat);
    gm_map_free(m);
    return r;
}

/* Go issue 70886: a map of 100 entries under delete/insert churn. */
static size_t churn(gm_map_engine e, size_t ops, size_t *slots_or_buckets)
{
    gm_map *m = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &(gm_map_opts){ e, false, 0 });
    uint64_t next = 0, oldest = 0;
    for (; next < 100; next++) *(uint64_t *)gm_map_assign_u64(m, next) = next;
    for (size_t op = 0; op < ops; op++) {
        gm_map_delete_u64(m, oldest++);
        *(uint64_t *)gm_map_assign_u64(m, next) = next;
        next++;
    }
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    *slots_or_buckets = e == GM_MAP_SWISS ? st.slots : st.nbuckets * 8;
    gm_map_free(m);
    return st.bytes;
}

/* Bytes the mark scans in one forced cycle. */
static double cycle_scan(void)
{
    gm_memstats a, b;
    gm_read_memstats(&a);
    gm_gc();
    gm_read_memstats(&b);
    return (double)(b.gc_scan_work - a.gc_scan_work);
}

/* Mark work of one forced cycle with a GC map of n pointer values on the
 * heap (all pointing at one object: what differs is the map's own scan),
 * less that of a cycle just before the map was made (whatever else the
 * heap holds, a map of an earlier run that a stale stack word still
 * reaches included). */
static gm_map *eng_gc_map; /* a root while measured */

static double mark_work(gm_map_engine e, size_t n, size_t *bytes)
{
    gm_root_add(&eng_gc_map, sizeof eng_gc_map);
    gm_gc();
    double base = cycle_scan();
    void *shared = gm_alloc_noscan(16);
    eng_gc_map = gm_map_new_opts(&gm_type_u64, &gm_type_ptr, &(gm_map_opts){ e, true, 0 });
    if (!eng_gc_map) abort();
    for (uint64_t i = 0; i < n; i++) gm_map_put(eng_gc_map, &i, &shared);
    gm_gc();
    double scanned = cycle_scan() - base;
    gm_map_stats st;
    gm_map_stats_get(eng_gc_map, &st);
    *bytes = st.bytes;
    eng_gc_map = NULL;
    gm_gc();
    gm_root_remove(&eng_gc_map);
    return scanned;
}

static int run_engines(const lab_opts *o)
{
    size_t n = o->quick ? 1000000 : 10000000;
    static const char *hdr[] = { "engine", "most entries moved by one insert", "slowest insert",
                                 "p99.99", "median", "bytes/entry at end", "peak while growing" };
    lab_table_begin(7, hdr);
    struct growth_result rc = grow(GM_MAP_CLASSIC, n), rs = grow(GM_MAP_SWISS, n);
    struct growth_result *rr[2] = { &rc, &rs };
    for (int i = 0; i < 2; i++)
        lab_table_row("%s|%llu|%.1f us|%.2f us|%.0f ns|%.1f|%.1f", i ? "swiss (Go 1.24)" : "classic (Go 1.23)",
                      (unsigned long long)rr[i]->max_moved, rr[i]->max_us, rr[i]->p9999_us, rr[i]->median_ns,
                      rr[i]->bpe_end, rr[i]->bpe_peak);
    lab_table_end();
    lab_say("  %zu u64 inserts one at a time; times are wall clock on this machine (noisy), moves are counted", n);
    lab_verdict(rs.max_moved <= 1024, "Swiss: no insert moved more than one table (max %llu entries, cap 1024)",
                (unsigned long long)rs.max_moved);
    lab_verdict(rc.check == NULL && rs.check == NULL, "gm_map_check after the inserts: %s",
                rc.check ? rc.check : rs.check ? rs.check : "all invariants hold on both");
    size_t ops = o->quick ? 200000 : 2000000, cs, ss;
    churn(GM_MAP_CLASSIC, ops, &cs);
    churn(GM_MAP_SWISS, ops, &ss);
    lab_say("  churn (Go 70886): 100 live entries, %zu delete+insert pairs: classic ends with %zu slots, Swiss with %zu",
            ops, cs, ss);
    lab_verdict(ss <= 256, "Swiss: tombstone pruning keeps the churned map at %zu slots (<= 256; Go 1.24 reached 1024)", ss);
    size_t gn = o->quick ? 300000 : 2000000, cb, sbytes;
    double cw = mark_work(GM_MAP_CLASSIC, gn, &cb), sw = mark_work(GM_MAP_SWISS, gn, &sbytes);
    lab_say("  GC map[uint64]*T of %zu entries, one forced cycle: classic marks %.1f MiB (%.1f B/entry; map holds %.1f MiB),",
            gn, cw / (1 << 20), cw / (double)gn, (double)cb / (1 << 20));
    lab_say("  Swiss %.1f MiB (%.1f B/entry; map holds %.1f MiB): both scan their slot arrays by the slot type's",
            sw / (1 << 20), sw / (double)gn, (double)sbytes / (1 << 20));
    lab_say("  pointer mask; Swiss's control bytes are pointer-free and never scanned");
    lab_verdict(sw > 0 && sw <= cw, "Swiss: mark work per cycle no more than classic's (%.2fx)", sw / cw);
    return 0;
}

static const lab_scenario engines = { 40, "engines", "Classic (Go 1.23) and Swiss (Go 1.24) maps, same workloads",
    "Inserts N keys into each engine and compares the worst single insert, entries moved per write and memory; then delete/insert churn at a constant size (Go issue 70886), and the mark work of a GC map of pointers.",
    run_engines };
LAB_SCENARIO(engines)
