/* scn_mark.c - gomap-lab: a map growing while the collector marks.
 *
 * The question: Go's map evacuates old buckets into the new array a few at a
 * time, on later writes, and the collector may be marking all the while.
 * Does anything the map holds get lost, and what does it cost?  The scenario
 * fills a GC map of pointers while a thread runs collections back to back,
 * then asks checkmark (a second, stop-the-world mark after every cycle) in a
 * child process, and finally - in a build with fault injection - drops the
 * write barrier during evacuation only and shows checkmark catching the
 * objects that would have been freed while still in the map. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gc/gc_fault.h"
#include "gomap/gomap.h"
#include "lab.h"

typedef struct box { uint64_t v, check; } box;

static box *new_box(uint64_t v)
{
    box *b = gm_alloc_noscan(sizeof *b);
    b->v = v;
    b->check = ~v;
    return b;
}

static atomic_bool stop;
static atomic_long cycles_run;

static void *collector(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        gm_gc();
        atomic_fetch_add(&cycles_run, 1);
    }
    return NULL;
}

static pthread_t start_collector(void)
{
    pthread_t t;
    atomic_store(&stop, false);
    atomic_store(&cycles_run, 0);
    if (pthread_create(&t, NULL, collector, NULL) != 0) {
        fprintf(stderr, "gomap-lab: cannot start a thread\n");
        exit(1);
    }
    return t;
}

static void stop_collector(pthread_t t)
{
    atomic_store(&stop, true);
    gm_blocking_begin();
    pthread_join(t, NULL);
    gm_blocking_end();
}

typedef struct fill_result {
    size_t n, bad;
    long cycles;
    uint64_t grows, evacuated;
    uint64_t max_pause_ns, pauses;
    double pause_sum_ns;
    uint64_t assist_work, bg_work, assists, wb_shades;
} fill_result;

static gm_map *mark_map; /* a root */

/* Fills mark_map with n boxes while collections run back to back. */
static fill_result fill(size_t n)
{
    fill_result r = { .n = n };
    gm_root_add(&mark_map, sizeof mark_map);
    gm_memstats ms;
    gm_read_memstats(&ms);
    uint32_t gc0 = ms.num_gc;
    gm_memstats ms0 = ms;
    pthread_t t = start_collector();
    mark_map = gm_map_new_opts(&gm_type_u64, &gm_type_ptr, &(gm_map_opts){ GM_MAP_CLASSIC, true, 0 });
    for (uint64_t k = 0; k < n; k++) {
        box *b = new_box(k);
        gm_map_put(mark_map, &k, &b);
        if (k % 500000 == 0 && k) lab_progress("filling: %llu", (unsigned long long)k);
    }
    stop_collector(t);
    for (uint64_t k = 0; k < n; k++) {
        box **p = gm_map_get(mark_map, &k);
        if (!p || (*p)->v != k || (*p)->check != ~k) r.bad++;
    }
    gm_map_stats st;
    gm_map_stats_get(mark_map, &st);
    r.grows = st.grows;
    r.evacuated = st.evacuated_buckets;
    gm_read_memstats(&ms);
    r.cycles = (long)(ms.num_gc - gc0);
    r.assist_work = ms.gc_assist_work - ms0.gc_assist_work;
    r.bg_work = ms.gc_bg_work - ms0.gc_bg_work;
    r.assists = ms.gc_num_assists - ms0.gc_num_assists;
    r.wb_shades = ms.gc_wb_shades - ms0.gc_wb_shades;
    for (uint32_t c = ms.num_gc > 256 && ms.num_gc - 256 > gc0 ? ms.num_gc - 256 : gc0; c < ms.num_gc; c++) {
        uint64_t p = ms.pause_ns[c % 256];
        if (p > r.max_pause_ns) r.max_pause_ns = p;
        r.pause_sum_ns += (double)p;
        r.pauses++;
    }
    mark_map = NULL;
    gm_root_remove(&mark_map);
    return r;
}

static size_t child_n(void)
{
    const char *s = getenv("GOMAP_LAB_N");
    return s ? (size_t)strtoull(s, NULL, 10) : 200000;
}

static int child_checkmark(void)
{
    fill_result r = fill(child_n());
    fprintf(stderr, "%ld cycles checked, %zu bad values\n", r.cycles, r.bad);
    return r.bad ? 1 : 0;
}
static const lab_child ck = { "growth-checkmark", child_checkmark };
LAB_CHILD(ck)

#ifdef GOMAP_FAULT_INJECTION
static bool st_growing(void)
{
    gm_map_stats st;
    gm_map_stats_get(mark_map, &st);
    return st.growing;
}

/* The fault build's child: the interleaving is forced with the collector's
 * hold switch.  The map is filled to the edge of a grow and collected (its
 * boxes are old and white); a cycle starts and its background mark is held
 * before any root is scanned; inside that window the grow starts and every
 * old bucket is evacuated with the barrier dropped; then the cycle finishes
 * and checkmark re-marks. */
static void *gc_thread(void *arg)
{
    (void)arg;
    gm_gc();
    return NULL;
}

/* Overwrites the dead stack below the caller: stale copies of the map
 * pointer there would make the stack scan grey the map, and an assist would
 * then mark it -- the window must start with the map unreached. */
__attribute__((noinline)) static void scrub(void)
{
    volatile char buf[32 * 1024];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

__attribute__((noinline)) static uint64_t fill_to_edge(void)
{
    mark_map = gm_map_new_opts(&gm_type_u64, &gm_type_ptr, &(gm_map_opts){ GM_MAP_CLASSIC, true, 0 });
    uint64_t k = 0;
    for (; k < 3000 || !st_growing(); k++) {
        box *b = new_box(k);
        gm_map_put(mark_map, &k, &b);
    }
    for (uint64_t j = 0; st_growing(); j++) gm_map_assign(mark_map, &j); /* finish that grow */
    gm_map_stats st;
    gm_map_stats_get(mark_map, &st);
    uint64_t edge = (uint64_t)(6.5 * (double)st.nbuckets);
    for (; k < edge; k++) {    /* k: the first key not yet inserted */
        box *b = new_box(k);
        gm_map_put(mark_map, &k, &b);
    }
    return k;
}

__attribute__((noinline)) static void grow_without_barrier(uint64_t k)
{
    box *b = new_box(k);
    gm_map_put(mark_map, &k, &b);                 /* starts the grow */
    gm_gc_fault_drop_barrier(1);
    for (uint64_t j = 0; st_growing(); j = (j + 1) % k) gm_map_assign(mark_map, &j);
    gm_gc_fault_drop_barrier(0);
}

static int child_no_barrier(void)
{
    gm_root_add(&mark_map, sizeof mark_map);
    uint64_t k = fill_to_edge();
    scrub();
    gm_gc();
    scrub();
    gm_gc_fault_hold_mark(1);
    pthread_t t;
    if (pthread_create(&t, NULL, gc_thread, NULL) != 0) return 2;
    while (!gm_gc_fault_marking()) gm_safepoint();
    for (int i = 0; i < 10; i++) gm_safepoint();
    grow_without_barrier(k);
    scrub();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(t, NULL);
    gm_blocking_end();
    fprintf(stderr, "no checkmark failure\n");
    return 0;
}
static const lab_child nb = { "growth-no-barrier", child_no_barrier };
LAB_CHILD(nb)
#endif

static const char *first_line_with(char *buf, const char *needle)
{
    char *p = strstr(buf, needle);
    if (!p) return NULL;
    while (p > buf && p[-1] != '\n') p--;
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    return p;
}

static int run_growth_mark(const lab_opts *o)
{
    size_t n = o->quick ? 300000 : 3000000;
    fill_result r = fill(n);
    static const char *hdr[] = { "entries", "grows", "buckets evacuated", "GC cycles meanwhile", "max pause",
                                 "mean pause", "barrier shades", "assists", "assist / background mark",
                                 "values intact" };
    lab_table_begin(10, hdr);
    char aw[32], bw[32];
    lab_table_row("%zu|%llu|%llu|%ld|%.3f ms|%.3f ms|%llu|%llu|%s / %s|%s", r.n, (unsigned long long)r.grows,
                  (unsigned long long)r.evacuated, r.cycles, r.max_pause_ns / 1e6,
                  r.pauses ? r.pause_sum_ns / (double)r.pauses / 1e6 : 0.0, (unsigned long long)r.wb_shades,
                  (unsigned long long)r.assists,
                  lab_bytes((double)r.assist_work, aw, sizeof aw), lab_bytes((double)r.bg_work, bw, sizeof bw),
                  r.bad ? "NO" : "all");
    lab_table_end();
    lab_say("  (pause: a cycle's two stops of the world together, as Go's PauseNs; marking");
    lab_say("   runs between them while the filling thread keeps inserting and evacuating;");
    lab_say("   barrier shades: pointers the write barrier handed to the mark -- values");
    lab_say("   copied and cleared by evacuation, inserts and overflow links while marking;");
    lab_say("   assists: mark work the filling thread did itself because it allocated fast)");

    char buf[8192];
    int status = 0;
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%zu", o->quick ? (size_t)100000 : (size_t)400000);
    setenv("GOMAP_LAB_N", nbuf, 1);
    bool ck_ok = lab_run_child("growth-checkmark", "gccheckmark=1", buf, sizeof buf, &status) &&
                 WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const char *line = first_line_with(buf, "cycles checked");
    lab_say("  with GMDEBUG=gccheckmark=1 (a child process, %s entries): %s", nbuf,
            line ? line : ck_ok ? "no report" : buf);

    bool fault_ok = true;
#ifdef GOMAP_FAULT_INJECTION
    bool started = lab_run_child("growth-no-barrier", "gccheckmark=1", buf, sizeof buf, &status);
    bool aborted = started && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    bool fired = strstr(buf, "fatal error: checkmark found unmarked object") != NULL;
    lab_say("  barrier dropped during evacuation only (fault-injection build, the interleaving");
    lab_say("  forced: the grow runs while the background mark is held): the child %s",
            aborted ? "died, saying:" : "did not die:");
    int lines = 0;
    for (char *p = buf, *nl; *p && lines < 4; p = nl + 1, lines++) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        lab_say("      %s", p);
        if (!nl) break;
    }
    fault_ok = aborted && fired;
#else
    lab_say("  (the barrier-dropped run needs a build with -DGOMAP_FAULT_INJECTION=ON;");
    lab_say("   the test build has it: tests/tools/lab_run.sh shows that verdict)");
#endif
    unsetenv("GOMAP_LAB_N");
    lab_say("  Evacuation copies each entry into the new array with a typed memmove and");
    lab_say("  clears the old slot with a typed memclr; both shade the pointers they");
    lab_say("  overwrite and copy while the collector marks, so an object moving from an");
    lab_say("  old bucket the mark has not reached into the new array (allocated black,");
    lab_say("  never scanned this cycle) is still marked.");
    lab_verdict(r.bad == 0, "every value intact after %ld cycles during the growth", r.cycles);
    lab_verdict(ck_ok, "checkmark found no reachable object left unmarked");
#ifdef GOMAP_FAULT_INJECTION
    lab_verdict(fault_ok, "without the barrier, checkmark catches the lost object");
#endif
    (void)fault_ok;
    return 0;
}

static const lab_scenario growth_mark = { 9, "gc-growth-during-mark", "Map growth while the collector marks",
    "Fills a GC map of pointers while collections run back to back; checkmark verifies every cycle; with the "
    "barrier dropped (fault build) checkmark must catch the loss.",
    run_growth_mark };
LAB_SCENARIO(growth_mark)
