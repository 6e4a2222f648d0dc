/* scn_gc.c - gomap-lab scenarios where the map lives on the GC heap. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap/gomap.h"
#include "gomap/trace.h"
#include "lab.h"

typedef struct box { uint64_t v; } box;

static uint64_t last_pause_ns(void)
{
    gm_memstats ms;
    gm_read_memstats(&ms);
    return ms.num_gc ? ms.pause_ns[(ms.num_gc + 255) % 256] : 0;
}

static double heap_mb(void)
{
    gm_memstats ms;
    gm_read_memstats(&ms);
    double mb = (double)ms.heap_alloc / (1 << 20);
    gm_trace_counter("gc", "heap_alloc (MB)", (int64_t)mb);
    return mb;
}

/* One forced cycle, best of three: the bytes the mark scanned, the cycle's
 * wall time (gm_gc returns when it is done) and its stop-the-world pause. */
typedef struct cycle_cost { double scanned, ms, pause_ms; } cycle_cost;

static cycle_cost gc_cost(void)
{
    cycle_cost best = { 0, 1e300, 0 };
    for (int i = 0; i < 3; i++) {
        gm_memstats a, b;
        gm_read_memstats(&a);
        uint64_t t0 = lab_now_ns();
        gm_gc();
        double ms = (double)(lab_now_ns() - t0) / 1e6;
        gm_read_memstats(&b);
        if (ms < best.ms) {
            best.ms = ms;
            best.scanned = (double)(b.gc_bg_work + b.gc_assist_work - a.gc_bg_work - a.gc_assist_work);
            best.pause_ms = last_pause_ns() / 1e6;
        }
    }
    return best;
}

/* ------------------------------------------------ scanning a big map (9477) */

static gm_map *scan_map; /* a root while measured */

static int run_scan_cost(const lab_opts *o)
{
    size_t n = o->quick ? 1000000 : 4000000;
    static const char *hdr[] = { "map[uint64]...", "entries", "buckets are", "heap", "scanned per cycle",
                                 "cycle time", "pause" };
    lab_table_begin(7, hdr);
    gm_root_add(&scan_map, sizeof scan_map);
    char sb[32];
    cycle_cost c = gc_cost();
    lab_table_row("(empty heap)|0|-|%.1f MB|%s|%.2f ms|%.3f ms", heap_mb(), lab_bytes(c.scanned, sb, sizeof sb), c.ms,
                  c.pause_ms);
    cycle_cost costs[2];
    for (int kind = 0; kind < 2; kind++) {
        /* Pointer values all point at one object, so the difference is the
         * cost of scanning the buckets, not of marking what they hold. */
        box *shared = gm_alloc_noscan(sizeof(box));
        scan_map = gm_map_new_opts(&gm_type_u64, kind ? &gm_type_ptr : &gm_type_u64, &(gm_map_opts){ GM_MAP_CLASSIC, true, 0 });
        for (uint64_t i = 0; i < n; i++) {
            if (kind) gm_map_put(scan_map, &i, &shared);
            else *(uint64_t *)gm_map_assign_u64(scan_map, i) = i;
            if (i % 200000 == 0) lab_progress("filling %s map: %llu", kind ? "pointer" : "uint64", (unsigned long long)i);
        }
        costs[kind] = gc_cost();
        lab_table_row("%s|%zu|%s|%.1f MB|%s|%.2f ms|%.3f ms", kind ? "*T (pointer)" : "uint64", n,
                      kind ? "scanned" : "pointer-free", heap_mb(), lab_bytes(costs[kind].scanned, sb, sizeof sb),
                      costs[kind].ms, costs[kind].pause_ms);
        scan_map = NULL;
        gm_gc();
    }
    lab_table_end();
    gm_root_remove(&scan_map);
    lab_say("  Go issue 9477: buckets whose keys and values hold no pointers are allocated");
    lab_say("  pointer-free and never scanned, so a huge map[uint64]uint64 costs the collector");
    lab_say("  nothing; the same map of pointers is read word by word on every cycle.  The");
    lab_say("  marking runs concurrently, so the program is not stopped for it: the cost");
    lab_say("  shows as the cycle's length and the CPU the mark takes, not as the pause.");
    lab_verdict(costs[1].scanned > 10 * (costs[0].scanned + 1),
                "the pointer map makes the mark scan over 10x more (%.1f vs %.1f MB per cycle)",
                costs[1].scanned / (1 << 20), costs[0].scanned / (1 << 20));
    return 0;
}

static const lab_scenario scan_cost = { 8, "gc-map-scan-cost", "A large map of pointers vs a pointer-free one",
    "Mark work and cycle time of a full collection with a big map[uint64]*T vs map[uint64]uint64 on the heap "
    "(Go issue 9477).",
    run_scan_cost };
LAB_SCENARIO(scan_cost)

/* ------------------------------------------ bulk delete while the GC runs */

static gm_map *bulk_map;

static int run_bulk_delete(const lab_opts *o)
{
    size_t n = o->quick ? 300000 : 2000000;
    static const char *hdr[] = { "values", "entries", "GC cycles during delete", "max pause", "mark work (assist+bg)",
                                 "heap before", "heap after GC", "objects freed" };
    lab_table_begin(8, hdr);
    gm_root_add(&bulk_map, sizeof bulk_map);
    bool freed_ok = true;
    for (int kind = 0; kind < 2; kind++) {
        bulk_map = gm_map_new_opts(&gm_type_u64, kind ? &gm_type_ptr : &gm_type_u64, &(gm_map_opts){ GM_MAP_CLASSIC, true, 0 });
        for (uint64_t i = 0; i < n; i++) {
            if (kind) {
                box *b = gm_alloc_noscan(sizeof *b);
                b->v = i;
                gm_map_put(bulk_map, &i, &b);
            } else {
                *(uint64_t *)gm_map_assign_u64(bulk_map, i) = i;
            }
        }
        gm_gc();
        double before = heap_mb();
        gm_memstats ms;
        gm_read_memstats(&ms);
        uint32_t gc0 = ms.num_gc;
        uint64_t objs0 = ms.heap_objects;
        uint64_t work0 = ms.gc_assist_work + ms.gc_bg_work, assist0 = ms.gc_assist_work;
        uint64_t maxp = 0;
        for (uint64_t i = 0; i < n; i++) {
            gm_map_delete(bulk_map, &i);
            /* garbage from elsewhere in the program keeps the pacer cycling */
            if (i % 4 == 0) (void)gm_alloc_noscan(512);
            if (i % 100000 == 0) lab_progress("deleting: %llu", (unsigned long long)i);
        }
        gm_read_memstats(&ms);
        for (uint32_t c = gc0; c < ms.num_gc && c < gc0 + 256; c++)
            if (ms.pause_ns[c % 256] > maxp) maxp = ms.pause_ns[c % 256];
        uint32_t cycles = ms.num_gc - gc0;
        uint64_t work = ms.gc_assist_work + ms.gc_bg_work - work0, assist = ms.gc_assist_work - assist0;
        gm_gc();
        double after = heap_mb();
        gm_read_memstats(&ms);
        uint64_t freed = objs0 > ms.heap_objects ? objs0 - ms.heap_objects : 0;
        if (kind) freed_ok &= freed + 16 >= n; /* a stale stack word may pin a few */
        char wb[32], ab[32];
        lab_table_row("%s|%zu|%u|%.2f ms|%s (%s by assists)|%.1f MB|%.1f MB|%llu", kind ? "*T (pointer)" : "uint64",
                      n, cycles, maxp / 1e6, lab_bytes((double)work, wb, sizeof wb),
                      lab_bytes((double)assist, ab, sizeof ab), before, after, (unsigned long long)freed);
        bulk_map = NULL;
        gm_gc();
    }
    lab_table_end();
    gm_root_remove(&bulk_map);
    lab_say("  Deleting clears the value slot (with the write barrier), so the objects only");
    lab_say("  the map held become garbage at once; the bucket array stays until later");
    lab_say("  writes find the map sparse and halve it (sparse-after-delete) or the map is");
    lab_say("  dropped.  Marking runs concurrently with the deletes: the pause column is a");
    lab_say("  cycle's two short stops of the world; mark work is what the collector scanned");
    lab_say("  (pointer-free buckets are never scanned: compare the two rows).");
    lab_say("  (The stack is scanned conservatively, so a stale copy of a pointer left in a");
    lab_say("  dead stack slot can keep the odd object alive a while longer.)");
    lab_verdict(freed_ok, "the objects held only by deleted entries were freed (all but a stack stray or two)");
    return 0;
}

static const lab_scenario bulk = { 10, "gc-bulk-delete", "Bulk delete from a large map while the GC runs",
    "Deletes every entry of a big GC map while other allocation drives collections; with pointer values and without.",
    run_bulk_delete };
LAB_SCENARIO(bulk)

/* --------------------------------- finalizers on objects held by a map */

static atomic_int finalized;
static void on_final(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    atomic_fetch_add(&finalized, 1);
}

static gm_map *fin_map;

static int run_finalizers(const lab_opts *o)
{
    (void)o;
    enum { N = 2000 };
    gm_root_add(&fin_map, sizeof fin_map);
    fin_map = gm_map_new_opts(&gm_type_u64, &gm_type_ptr, &(gm_map_opts){ GM_MAP_CLASSIC, true, 0 });
    uint64_t i = 0;
    /* Fill until a grow has just started: the objects sit in old buckets. */
    for (;; i++) {
        box *b = gm_alloc_noscan(sizeof *b);
        b->v = i;
        gm_map_put(fin_map, &i, &b);
        if (i < N) gm_set_finalizer(b, on_final, NULL);
        gm_map_stats st;
        gm_map_stats_get(fin_map, &st);
        if (i >= N && st.growing) break;
    }
    gm_map_stats st;
    gm_map_stats_get(fin_map, &st);
    lab_say("  %d objects with finalizers in a map of %zu entries, growing (%zu of %zu old buckets evacuated)",
            N, st.count, st.nevacuate, st.old_nbuckets);
    int cycles_alive = 0;
    for (int c = 0; c < 3; c++) {
        gm_gc();
        gm_finalizers_wait();
        if (atomic_load(&finalized) == 0) cycles_alive++;
    }
    for (uint64_t k = 0; k < N; k++) gm_map_delete(fin_map, &k);
    int cycles = 0;
    while (atomic_load(&finalized) < N && cycles < 10) {
        gm_gc();
        gm_finalizers_wait();
        cycles++;
    }
    static const char *hdr[] = { "phase", "GC cycles", "finalizers run" };
    lab_table_begin(3, hdr);
    lab_table_row("objects held by the map|3|%d", 0);
    lab_table_row("after deleting their entries|%d|%d", cycles, atomic_load(&finalized));
    lab_table_end();
    lab_say("  While the map holds them (old buckets included), no finalizer runs; once the");
    lab_say("  entries are deleted, the next cycle finds them unreachable and queues the");
    lab_say("  finalizers; the objects are freed by the cycle after that.");
    lab_verdict(cycles_alive == 3 && atomic_load(&finalized) == N && cycles == 1,
                "no finalizer ran while held; all %d ran after %d cycle(s)", N, cycles);
    fin_map = NULL;
    gm_root_remove(&fin_map);
    return 0;
}

static const lab_scenario fins = { 11, "gc-finalizers-in-map", "Finalizers on objects held by a growing map",
    "Objects with finalizers live in a map that is mid-growth; how many cycles until their finalizers run once deleted.",
    run_finalizers };
LAB_SCENARIO(fins)
