/* collect.c - the collection cycle, the pacer, the mark worker, assists,
 * the background sweeper and the statistics.
 *
 * A CYCLE (Go's gcStart / gcMarkDone / gcMarkTermination):
 *   1. sweep termination + mark setup (stop the world): the rest of the last
 *      cycle's sweep (the starting thread sweeps while the world still runs
 *      first), every mcache back to its central, phase MARK, barrier on,
 *      black allocation, stack scans requested; restart the world.
 *   2. concurrent mark: the mark worker thread scans root ranges, specials
 *      and blocking threads' stacks and drains the grey queue; running
 *      threads scan their own stacks at safepoints and assist.
 *   3. mark termination (stop the world) once nothing is grey and no stack
 *      is pending: flush barrier buffers, rescan root ranges, scan every
 *      stack again (mark.c, rule 3), drain at most STW_MARK_BUDGET, then one
 *      pass of the ephemeron fixpoint (ephemeron.c); grey
 *      objects left: back to concurrent marking (after STW_TRIES attempts:
 *      drain all).  Then
 *      checkmark, specials, sweepgen += 2 (every in-use span unswept),
 *      pacer; restart the world.
 *   4. sweep, concurrently: lazily by allocation and by the background
 *      sweeper thread, which afterwards returns free pages to the OS beyond
 *      goal + 10%.
 * cycle_active_a is set from (1) to (3); at most one cycle runs.  gm_gc()
 * waits for a whole cycle that starts after the call, then sweeps it all.
 * A child forked while a cycle marks has no worker: its next allocation
 * starts one (gc_maybe_collect, worker_lost_a), which ends that cycle.
 * GMDEBUG=gcstoptheworld=1 runs 1-3 in one pause (cycle_stw).
 *
 * PACER.  goal = marked + (marked + stack bytes + root bytes) * GMGC / 100,
 * at least 4 MiB * GMGC/100 (in 128 bits, saturating at UINT64_MAX: a big
 * heap times a big GMGC overflows 64); a memory limit lowers it to what the limit
 * leaves after non-heap memory, but never below marked + 1/16 (so a heap
 * over its limit does not collect continuously).  The trigger lies at
 * trigger_frac of the runway from marked to the goal, tuned after each
 * cycle by where the heap peaked (pacer_feedback).
 *
 * WORK AND CPU.  The worker takes 25% of the processors (one thread; on 2
 * CPUs it naps to hold half of one), flat out while someone waits in gm_gc.
 * Assists: each thread's byte credit is debited at every span refill (and
 * large allocation) while marking; in debt it first claims the worker's
 * surplus (bg_credit_a), then scans debt * assistWorkPerByte itself (at
 * least ASSIST_MIN_WORK).  The CPU limiter turns assists off while the
 * cycle's GC CPU exceeds 50% of the processors' time since mark start.
 */
#include "gc/gc_internal.h"
#include "common/trace_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int gc_inited_a;
_Atomic int gc_phase_a;
_Atomic bool gc_wb_enabled_a;
_Atomic uint32_t gc_sweepgen_a;
_Atomic uint64_t gc_heap_live_a;
_Atomic uint64_t gc_trigger_a;
gc_counters gc_stats;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t pacer_mu = PTHREAD_MUTEX_INITIALIZER;
static int gc_percent = 100;                 /* under pacer_mu */
static int64_t mem_limit = INT64_MAX;        /* under pacer_mu */
static uint64_t last_marked;                 /* under pacer_mu */
static uint64_t last_roots;
static _Atomic uint64_t next_gc_a;
static _Atomic uint64_t sweep_id_a;          /* trace id of the current sweep span */
static double trigger_frac = 0.7;            /* under pacer_mu: where in the runway to start */
static long gc_nproc = 1;                    /* processors online */

/* cycle records, written with the world stopped */
static uint32_t num_gc, num_forced_gc;
static uint64_t pause_total_ns, last_gc_unix;
static uint64_t pause_ns[256], pause_end[256];
static uint64_t pause_hist[GM_PAUSE_BUCKETS];
static uint64_t start_ns;                     /* process start (monotonic) */
static uint64_t gc_busy_ns;                   /* total pause time */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER; /* pause records for readers */

/* background sweeper */
static pthread_mutex_t bg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cv = PTHREAD_COND_INITIALIZER;
static bool bg_work, bg_started;

uint64_t gc_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread: what the mark's own accounting (gctrace's
 * cpu fields, GCCPUFraction, the worker's 25% share, the assist limiter and
 * MemStats gc_mark_cpu_ns) is measured in.  Wall time would charge the
 * collector for the time the scheduler gave to other threads, which on a
 * machine with fewer cores than runnable threads is most of it. */
uint64_t gc_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- pacer ------------------------------------------------------------------- */

static uint64_t metadata_bytes(void)
{
    gc_heapstats hs;
    gc_heap_stats(&hs);
    return hs.span_bytes + (hs.sys >> GC_PAGE_SHIFT) * sizeof(void *);
}

/* pacer_mu held */
static void pacer_set_goal(void)
{
    uint64_t goal = UINT64_MAX;
    if (gc_percent >= 0) {
        /* in 128 bits: a large heap times a large GMGC overflows 64; a goal
         * past 2^64 bytes is no goal (UINT64_MAX, as GMGC=off) */
        unsigned __int128 g = (unsigned __int128)last_marked +
                              ((unsigned __int128)last_marked + last_roots) * (unsigned)gc_percent / 100;
        unsigned __int128 min = (unsigned __int128)GC_HEAP_MIN * (unsigned)gc_percent / 100;
        if (g < min) g = min;
        goal = g > UINT64_MAX ? UINT64_MAX : (uint64_t)g;
    }
    if (mem_limit != INT64_MAX) {
        uint64_t other = metadata_bytes();
        uint64_t lim = (uint64_t)mem_limit > other ? (uint64_t)mem_limit - other : 0;
        uint64_t floor = last_marked + last_marked / 16 + ((uint64_t)1 << 20);
        if (lim < floor) lim = floor;
        if (lim < goal) goal = lim;
    }
    atomic_store_explicit(&next_gc_a, goal, memory_order_relaxed);
    /* A concurrent mark must start before the goal, so that it ends near it
     * while the mutators go on allocating: at trigger_frac of the runway
     * from the live heap to the goal (pacer_feedback tunes it). */
    uint64_t trigger = goal;
    if (goal != UINT64_MAX && !gc_opt.gcstoptheworld && goal > last_marked)
        trigger = last_marked + (uint64_t)((double)(goal - last_marked) * trigger_frac);
    atomic_store_explicit(&gc_trigger_a, trigger, memory_order_relaxed);
}

/* pacer_mu held.  After a concurrent cycle: the heap reached `peak` while
 * marking; aim the next trigger so that the peak lands just under the goal
 * (a proportional step, as Go's pre-1.18 trigger controller). */
static void pacer_feedback(uint64_t peak, uint64_t goal)
{
    if (goal == UINT64_MAX || gc_opt.gcstoptheworld || goal <= last_marked) return;
    double runway = (double)(goal - last_marked);
    double used = peak > last_marked ? (double)(peak - last_marked) / runway : 0;
    /* used > 1: the goal was overshot, start earlier; used < 0.9: later */
    if (used > 1.0) trigger_frac -= 0.1 * (used - 1.0 > 1.0 ? 1.0 : used - 1.0) + 0.02;
    else if (used < 0.9) trigger_frac += 0.02;
    if (trigger_frac < 0.4) trigger_frac = 0.4;
    if (trigger_frac > 0.95) trigger_frac = 0.95;
}

int gm_gc_percent(int percent)
{
    gc_ensure_init();
    pthread_mutex_lock(&pacer_mu);
    int old = gc_percent;
    gc_percent = percent < 0 ? -1 : percent;
    pacer_set_goal();
    pthread_mutex_unlock(&pacer_mu);
    return old;
}

int64_t gm_memory_limit(int64_t bytes)
{
    gc_ensure_init();
    pthread_mutex_lock(&pacer_mu);
    int64_t old = mem_limit;
    if (bytes >= 0) {
        mem_limit = bytes;
        pacer_set_goal();
    }
    pthread_mutex_unlock(&pacer_mu);
    return old;
}


/* ---- background sweeper -------------------------------------------------------- */

/* Return free pages to the OS beyond goal + 10% (or the memory limit), as
 * Go's background scavenger aims at; after a cycle the pacer started (the
 * background sweeper: `steady`), beyond the most that was in use during the
 * last two cycles + 10% if that is more, and only free runs that have not
 * been touched for 4 cycles.  Returning pages only to fault them in again
 * during the next cycle cost mt-gcbench 100,000 page faults and a fifth of
 * its time (docs/gc.md, Benchmark). */
static void scavenge_to_goal(bool steady)
{
    static uint64_t prev_peak;           /* steady: the sweeper thread's only */
    uint64_t goal = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    if (steady) {
        uint64_t peak = gc_heap_take_inuse_peak(), keep = peak > prev_peak ? peak : prev_peak;
        prev_peak = peak;
        if (keep > goal) goal = keep;
    }
    uint64_t retain = goal == UINT64_MAX ? UINT64_MAX : goal + goal / 10;
    pthread_mutex_lock(&pacer_mu);
    if (mem_limit != INT64_MAX && (uint64_t)mem_limit < retain) retain = (uint64_t)mem_limit;
    pthread_mutex_unlock(&pacer_mu);
    gc_scavenge(retain, steady ? 8 : 0);
}

static void *sweeper_main(void *arg)
{
    (void)arg;
    gc_thread_register_internal(false);
    for (;;) {
        gm_blocking_begin();
        pthread_mutex_lock(&bg_mu);
        while (!bg_work) pthread_cond_wait(&bg_cv, &bg_mu);
        bg_work = false;
        pthread_mutex_unlock(&bg_mu);
        gm_blocking_end();
        unsigned k = 0;
        while (gc_sweep_one()) {
            gm_safepoint();
            if (++k % 64 == 0) sched_yield();   /* low priority, as Go's bgsweep */
        }
        if (GM_UNLIKELY(gm_tracing_on())) gm_trace_async_end("gc", "sweep", atomic_load_explicit(&sweep_id_a, memory_order_relaxed));
        scavenge_to_goal(true);
    }
    return NULL;
}

static void wake_sweeper(void)
{
    pthread_mutex_lock(&bg_mu);
    if (!bg_started) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        gc_thread_starting(1);
        if (pthread_create(&th, &a, sweeper_main, NULL) == 0) bg_started = true;
        else gc_thread_starting(-1);
        pthread_attr_destroy(&a);
    }
    bg_work = true;
    pthread_cond_signal(&bg_cv);
    pthread_mutex_unlock(&bg_mu);
}

/* ---- init ------------------------------------------------------------------------ */

static void init_once_fn(void)
{
    start_ns = gc_nanotime();
    gc_nproc = sysconf(_SC_NPROCESSORS_ONLN);
    if (gc_nproc < 1) gc_nproc = 1;
    gc_options_init();
    gc_classes_init();
    gc_pageheap_init();
    if (gc_opt.heaplimit) gc_heap_set_limit_env(gc_opt.heaplimit);
    gc_alloc_init();
    gc_mark_init();
    atomic_store(&gc_sweepgen_a, 2);
    gc_percent = gc_env_percent;
    mem_limit = gc_env_memlimit;
    pacer_set_goal();
    if (gc_opt.gcstress > 0) atomic_fetch_or(&gc_poll_a, POLL_STRESS);
    gc_thread_fork_init();
    gc_preempt_init();
    atomic_store_explicit(&gc_inited_a, 1, memory_order_release);
}

void gc_init(void) { pthread_once(&init_once, init_once_fn); }

/* ---- the cycle ---------------------------------------------------------------------- */

static void release_cache(gc_thread *t, void *arg)
{
    (void)arg;
    gc_mcache_release_all(&t->cache);
}

static void reset_credit(gc_thread *t, void *arg)
{
    (void)arg;
    t->assist_credit = 0;
    t->last_black = 0;    /* black in the last cycle says nothing about this one */
}

static unsigned pause_bucket(uint64_t ns)
{
    if (ns < 16) return (unsigned)ns;
    unsigned e = 63u - (unsigned)__builtin_clzll(ns);       /* ns in [2^e, 2^(e+1)) */
    unsigned sub = (unsigned)((ns >> (e - 4)) & 15);
    unsigned b = (e - 4 + 1) * 16 + sub;
    return b >= GM_PAUSE_BUCKETS ? GM_PAUSE_BUCKETS - 1 : b;
}

/* One stop-the-world pause (the histogram holds every pause). */
static void record_stw(uint64_t ns)
{
    pthread_mutex_lock(&stats_mu);
    pause_hist[pause_bucket(ns)]++;
    gc_busy_ns += ns * (uint64_t)gc_nproc;
    pthread_mutex_unlock(&stats_mu);
}

/* The end of a cycle: PauseNs holds the cycle's total pause, as Go's. */
static void record_cycle(uint64_t pause, uint64_t end_unix)
{
    pthread_mutex_lock(&stats_mu);
    pause_ns[num_gc % 256] = pause;
    pause_end[num_gc % 256] = end_unix;
    pause_total_ns += pause;
    num_gc++;
    last_gc_unix = end_unix;
    pthread_mutex_unlock(&stats_mu);
}

uint64_t gm_pause_bucket_lower_ns(unsigned b)
{
    if (b < 16) return b;
    unsigned e = b / 16 - 1 + 4, sub = b % 16;
    if (e >= 63) return UINT64_MAX;
    return ((uint64_t)1 << e) + ((uint64_t)sub << (e - 4));
}

void gm_read_pause_histogram(uint64_t counts[GM_PAUSE_BUCKETS])
{
    gc_ensure_init();
    pthread_mutex_lock(&stats_mu);
    memcpy(counts, pause_hist, sizeof pause_hist);
    pthread_mutex_unlock(&stats_mu);
}

uint64_t gm_pause_quantile_ns(double q)
{
    uint64_t h[GM_PAUSE_BUCKETS], total = 0;
    gm_read_pause_histogram(h);
    for (unsigned i = 0; i < GM_PAUSE_BUCKETS; i++) total += h[i];
    if (!total) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
    if (want == 0) want = 1;
    for (unsigned i = 0; i < GM_PAUSE_BUCKETS; i++) {
        acc += h[i];
        if (acc >= want) return i + 1 < GM_PAUSE_BUCKETS ? gm_pause_bucket_lower_ns(i + 1) : UINT64_MAX;
    }
    return UINT64_MAX;
}

/* What gctrace prints about one cycle. */
typedef struct cycle_info {
    uint64_t t_start;                 /* when sweep termination stopped the world */
    uint64_t sweepterm, mark, markterm;   /* clock ns of the three phases */
    uint64_t assist_ns, bg_ns;        /* CPU ns of the concurrent mark */
    uint64_t heap0, heap1, marked, goal;
    bool forced;
} cycle_info;

static void gctrace(uint32_t n, const cycle_info *ci)
{
    double since = (double)(ci->t_start - start_ns) / 1e9;
    uint64_t now = gc_nanotime();
    int pct = now > start_ns ? (int)(100.0 * (double)gc_busy_ns / ((double)(now - start_ns) * gc_nproc)) : 0;
    double a = ci->sweepterm / 1e6, b = ci->mark / 1e6, c = ci->markterm / 1e6;
    fprintf(stderr,
            "gc %u @%.3fs %d%%: %.3g+%.3g+%.3g ms clock, %.3g+%.3g/%.3g/0+%.3g ms cpu, "
            "%llu->%llu->%llu MB, %llu MB goal, %llu MB stacks, %llu MB globals, %ld P%s\n",
            n, since, pct, a, b, c, a * gc_nproc, ci->assist_ns / 1e6, ci->bg_ns / 1e6, c * gc_nproc,
            (unsigned long long)(ci->heap0 >> 20), (unsigned long long)(ci->heap1 >> 20),
            (unsigned long long)(ci->marked >> 20),
            (unsigned long long)(ci->goal == UINT64_MAX ? 0 : ci->goal >> 20),
            (unsigned long long)(gc_scan_stack_bytes >> 20),
            (unsigned long long)(gc_scan_global_bytes >> 20), gc_nproc, ci->forced ? " (forced)" : "");
}

static void trace_counters(void)
{
    if (GM_LIKELY(!gm_tracing_on())) return;
    gm_trace_counter("gc", "heap live", (int64_t)atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed));
    uint64_t g = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    gm_trace_counter("gc", "heap goal", g == UINT64_MAX ? 0 : (int64_t)g);
}

#define TRACE_BEGIN(name) do { if (GM_UNLIKELY(gm_tracing_on())) gm_trace_begin("gc", name); } while (0)
#define TRACE_END(name)   do { if (GM_UNLIKELY(gm_tracing_on())) gm_trace_end("gc", name); } while (0)

/* ---- concurrent cycle state ---------------------------------------------------------- */

static pthread_mutex_t cycle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cycle_cv = PTHREAD_COND_INITIALIZER;   /* a cycle started or ended */
static _Atomic bool cycle_active_a;        /* between mark setup and the end of mark termination */
static uint64_t cycles_started, cycles_done; /* under cycle_mu */
static _Atomic int sync_waiters_a;         /* threads waiting for a cycle (gm_gc, gcstress) */
static bool worker_started;                /* under cycle_mu */
static _Atomic bool worker_lost_a;         /* a forked child: a cycle marks, no worker */
static cycle_info cur;                     /* the running cycle; written by its STW phases */
static uint64_t cur_heap_live0;            /* heap_live after sweep termination */
static uint64_t cur_mark_start;            /* when the world restarted after mark setup */
static uint64_t cur_expected_work;         /* scan work the cycle is expected to need */
static _Atomic uint64_t bg_credit_a;       /* scan work the worker did that assists may claim */
static _Atomic uint64_t cyc_assist_ns_a, cyc_bg_ns_a;
static _Atomic uint64_t total_assist_work_a, total_bg_work_a, total_assists_a;
static _Atomic uint64_t total_mark_cpu_ns_a;  /* bg + assists + mark inside stops of the world */
static _Atomic uint64_t total_mark_wall_ns_a; /* wall time from mark start to the end of termination */
static uint64_t total_scan_work;           /* bytes scanned by every cycle's mark (stats_mu) */
static _Atomic int hold_mark_a;            /* fault injection: the worker waits before marking */

#ifdef GOMAP_FAULT_INJECTION
#include "gc/gc_fault.h"
int gm_gc_fault_hold_mark(int on)
{
    gc_ensure_init();
    return atomic_exchange(&hold_mark_a, on);
}

int gm_gc_fault_marking(void)
{
    return atomic_load_explicit(&gc_phase_a, memory_order_relaxed) == GC_MARK &&
           atomic_load_explicit(&cycle_active_a, memory_order_relaxed);
}
#endif

/* Sweep termination and mark setup (Go's gcStart): finish sweeping while the
 * world runs, stop it, sweep the remainder, take back the mcaches, turn on
 * the barrier and black allocation, ask for stack scans, restart the world
 * and wake the mark worker.  Returns false if no cycle was started (one is
 * running, or the trigger is no longer reached and `always` is false). */
static void wake_worker(void);
static bool start_cycle(bool always, bool forced)
{
    gc_thread *self = gc_self;
    while (gc_sweep_one())
        if (atomic_load_explicit(&gc_poll_a, memory_order_relaxed) & POLL_STW) gc_park(self);
    gc_save_regs(self->regs);
    self->saved_sp = gc_current_sp();
    if (!gc_stop_the_world("gc")) return false;
    uint64_t t0 = gc_nanotime();
    if (atomic_load_explicit(&cycle_active_a, memory_order_relaxed) ||
        (!always && atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed) <
                        atomic_load_explicit(&gc_trigger_a, memory_order_relaxed))) {
        gc_start_the_world();
        return false;
    }
    TRACE_BEGIN("STW sweep termination");
    while (gc_sweep_one()) {}
    gc_for_each_thread(release_cache, NULL);
    gc_for_each_thread(reset_credit, NULL);
    memset(&cur, 0, sizeof cur);
    cur.t_start = t0;
    cur.forced = forced;
    cur.heap0 = cur_heap_live0 = atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
    pthread_mutex_lock(&pacer_mu);
    cur_expected_work = last_marked + last_roots;
    pthread_mutex_unlock(&pacer_mu);
    gc_marked_bytes = 0;
    gc_scan_stack_bytes = 0;
    atomic_store_explicit(&gc_marked_bytes_a, 0, memory_order_relaxed);
    atomic_store_explicit(&gc_scan_work_a, 0, memory_order_relaxed);
    atomic_store_explicit(&bg_credit_a, 0, memory_order_relaxed);
    atomic_store_explicit(&cyc_assist_ns_a, 0, memory_order_relaxed);
    atomic_store_explicit(&cyc_bg_ns_a, 0, memory_order_relaxed);
    atomic_store_explicit(&gc_phase_a, GC_MARK, memory_order_relaxed);
    atomic_store_explicit(&gc_mark_concurrent_a, true, memory_order_relaxed);
    atomic_store_explicit(&gc_wb_enabled_a, true, memory_order_relaxed);
    gc_request_stack_scans();
    pthread_mutex_lock(&cycle_mu);
    atomic_store_explicit(&cycle_active_a, true, memory_order_relaxed);
    cycles_started++;
    pthread_mutex_unlock(&cycle_mu);
    TRACE_END("STW sweep termination");
    uint64_t t1 = gc_nanotime();
    cur.sweepterm = t1 - t0;
    cur_mark_start = t1;
    record_stw(t1 - t0);
    if (GM_UNLIKELY(gm_tracing_on())) {
        trace_counters();
        gm_trace_async_begin("gc", "concurrent mark", cycles_started, NULL, 0);
    }
    gc_start_the_world();
    wake_worker();
    return true;
}

/* Mark termination, the world stopped and no grey object left (Go's
 * gcMarkTermination): checkmark, specials, flip to sweeping, pacer. */
static void mark_termination(uint64_t t0, uint64_t pause_start, uint64_t pause_total_prev)
{
    atomic_store_explicit(&gc_phase_a, GC_MARKTERM, memory_order_relaxed);
    atomic_store_explicit(&gc_wb_enabled_a, false, memory_order_relaxed);
    if (gc_opt.gccheckmark) gc_checkmark();
    gc_for_each_thread(release_cache, NULL);
    uint64_t heap1 = atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
    gc_marked_bytes = atomic_load_explicit(&gc_marked_bytes_a, memory_order_relaxed);
    gc_special_mark_done();
    atomic_store_explicit(&gc_phase_a, GC_OFF, memory_order_relaxed);
    atomic_fetch_add_explicit(&gc_sweepgen_a, 2, memory_order_relaxed);
    gc_sweep_prepare();
    /* objects allocated during the mark were black: live too */
    uint64_t marked = gc_marked_bytes + (heap1 > cur_heap_live0 ? heap1 - cur_heap_live0 : 0);
    atomic_store_explicit(&gc_heap_live_a, marked, memory_order_relaxed);
    uint64_t old_goal = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    pthread_mutex_lock(&pacer_mu);
    pacer_feedback(heap1, old_goal);
    last_marked = marked;
    last_roots = gc_scan_stack_bytes + gc_scan_global_bytes;
    pacer_set_goal();
    pthread_mutex_unlock(&pacer_mu);
    if (cur.forced) num_forced_gc++;
    if (gc_opt.gccheckmark) {
        size_t bad = gc_verify_stopped();
        if (bad) gm_fatalf("gccheckmark: heap verification found %zu problems", bad);
    }
    uint64_t t1 = gc_nanotime();
    cur.markterm = t1 - t0;
    cur.heap1 = heap1;
    cur.marked = marked;
    cur.goal = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    cur.assist_ns = atomic_load_explicit(&cyc_assist_ns_a, memory_order_relaxed);
    cur.bg_ns = atomic_load_explicit(&cyc_bg_ns_a, memory_order_relaxed);
    record_stw(t1 - pause_start);
    atomic_fetch_add_explicit(&total_mark_cpu_ns_a, cur.assist_ns + cur.bg_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&total_mark_wall_ns_a, t1 - cur_mark_start, memory_order_relaxed);
    pthread_mutex_lock(&stats_mu);
    gc_busy_ns += cur.assist_ns + cur.bg_ns;
    total_scan_work += atomic_load_explicit(&gc_scan_work_a, memory_order_relaxed);
    pthread_mutex_unlock(&stats_mu);
    record_cycle(pause_total_prev + (t1 - pause_start), unix_ns());
    uint32_t n = num_gc;
    pthread_mutex_lock(&cycle_mu);
    atomic_store_explicit(&cycle_active_a, false, memory_order_relaxed);
    cycles_done++;
    pthread_cond_broadcast(&cycle_cv);
    pthread_mutex_unlock(&cycle_mu);
    if (gc_opt.gctrace) gctrace(n, &cur);
}

#define STW_MARK_BUDGET ((uint64_t)16 << 10)   /* scan work tried in a termination pause */
#define STW_TRIES 8                            /* then mark termination drains it all */

/* One attempt at mark termination; false if grey objects were left after a
 * bounded drain (they go back to the queue and concurrent marking goes on). */
static bool try_terminate(int attempt)
{
    gc_thread *self = gc_self;
    gc_save_regs(self->regs);
    self->saved_sp = gc_current_sp();
    if (!gc_stop_the_world("gc mark termination")) return false;
    bool tr2 = gc_opt.gctrace >= 2;
    uint64_t t0 = gc_nanotime(), c0 = gc_thread_cpu_ns();
    TRACE_BEGIN("STW mark termination");
    atomic_store_explicit(&gc_mark_concurrent_a, false, memory_order_relaxed);
    gc_work.shared = false;
    gc_stacks_finish(&gc_work);
    gc_mark_root_ranges(&gc_work);
    uint64_t cg = tr2 ? gc_thread_cpu_ns() : 0;
    gc_globals_mark(&gc_work, GLOBALS_TERM);   /* pages written since the scan (globals.c) */
    if (tr2) cg = gc_thread_cpu_ns() - cg;
    gc_special_mark_roots();   /* records made during the mark (only spans with records) */
    uint64_t ta = gc_nanotime(), ca = tr2 ? gc_thread_cpu_ns() : 0;
    uint64_t did = gc_mark_drain_some(&gc_work, attempt < STW_TRIES ? STW_MARK_BUDGET : UINT64_MAX, NULL);
    /* the ephemeron fixpoint (ephemeron.c): values of keys marked since */
    while (gc_wq_empty() && gc_ephemeron_progress(&gc_work)) {
        gc_work_publish(&gc_work);
        if (attempt < STW_TRIES) break;
        did += gc_mark_drain_some(&gc_work, UINT64_MAX, NULL);
    }
    atomic_fetch_add_explicit(&total_mark_cpu_ns_a, gc_thread_cpu_ns() - c0, memory_order_relaxed);
    if (tr2)
        fprintf(stderr, "gc %u: mark termination attempt %d: %.3f ms flush+rescan (cpu %.3f ms, globals %.3f ms), "
                "%.3f ms drain (%llu bytes)%s\n",
                num_gc + 1, attempt, (ta - t0) / 1e6, (ca - c0) / 1e6, cg / 1e6, (gc_nanotime() - ta) / 1e6,
                (unsigned long long)did, gc_wq_empty() ? "" : ", grey objects left");
    if (!gc_wq_empty()) {
        atomic_store_explicit(&gc_mark_concurrent_a, true, memory_order_relaxed);
        TRACE_END("STW mark termination");
        uint64_t t1 = gc_nanotime();
        cur.markterm += t1 - t0;
        record_stw(t1 - t0);
        gc_start_the_world();
        return false;
    }
    cur.mark = t0 - cur_mark_start;
    if (GM_UNLIKELY(gm_tracing_on())) gm_trace_async_end("gc", "concurrent mark", cycles_started);
    mark_termination(t0, t0, cur.sweepterm + cur.markterm);
    TRACE_END("STW mark termination");
    if (GM_UNLIKELY(gm_tracing_on())) {
        trace_counters();
        atomic_store_explicit(&sweep_id_a, num_gc, memory_order_relaxed);
        gm_trace_async_begin("gc", "sweep", num_gc, NULL, 0);
    }
    gc_start_the_world();
    return true;
}

/* ---- the mark worker ----------------------------------------------------------------- */

#define BG_STEP ((uint64_t)64 << 10)     /* scan work between safepoints of the worker */

static void worker_nap(unsigned us)
{
    gm_blocking_begin();
    usleep(us);
    gm_blocking_end();
}

/* Marks one cycle to its end.  The worker's share of the CPU is Go's: 25%
 * of the processors, as one thread that idles when it is ahead (with 2
 * processors: half of one), unless someone waits for the cycle (gm_gc),
 * when it runs flat out.  Assists make up for what it does not do. */
static void mark_cycle(void)
{
    while (atomic_load_explicit(&hold_mark_a, memory_order_relaxed)) worker_nap(200);
    double share = 0.25 * (double)gc_nproc;
    if (share > 1) share = 1;
    uint64_t t0 = gc_nanotime(), c0 = gc_thread_cpu_ns(), busy = 0;
    gc_workbuf *w = gc_cur_work();
    gc_mark_root_ranges(w);
    gc_globals_mark(w, GLOBALS_START);
    gc_special_mark_roots();
    gc_work_publish(w);
    busy += gc_thread_cpu_ns() - c0;
    atomic_fetch_add_explicit(&cyc_bg_ns_a, busy, memory_order_relaxed);
    for (int attempt = 0;;) {
        uint64_t a = gc_thread_cpu_ns();
        size_t pending = gc_scan_stacks_step();
        uint64_t did = gc_mark_drain_some_mine(BG_STEP);
        uint64_t b = gc_thread_cpu_ns();
        busy += b - a;
        atomic_fetch_add_explicit(&cyc_bg_ns_a, b - a, memory_order_relaxed);
        atomic_fetch_add_explicit(&bg_credit_a, did, memory_order_relaxed);
        atomic_fetch_add_explicit(&total_bg_work_a, did, memory_order_relaxed);
        gm_safepoint();
        /* done when nothing is grey: not in the queue, not in an assist's
         * hands (it publishes what it holds when its step ends) */
        if (did == 0 && pending == 0 && gc_wq_empty() &&
            atomic_load_explicit(&gc_mark_drainers_a, memory_order_acquire) == 0) {
            if (gc_globals_before_term(w) ||   /* a new library, or many pages written */
                gc_ephemeron_progress(w)) {     /* keys marked since: their values */
                gc_work_publish(w);
                continue;
            }
            if (try_terminate(attempt++)) {
                wake_sweeper();
                return;
            }
            continue;
        }
        if (did == 0) {                    /* waiting for stack scans or assists */
            worker_nap(50);
            continue;
        }
        if (!atomic_load_explicit(&sync_waiters_a, memory_order_relaxed) &&
            (double)busy > share * (double)(gc_nanotime() - t0))
            worker_nap(100);
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    gc_thread_register_internal(true);   /* the mark worker: its stack is not a root */
    uint64_t seen = 0;
    for (;;) {
        gm_blocking_begin();
        pthread_mutex_lock(&cycle_mu);
        while (!(atomic_load_explicit(&cycle_active_a, memory_order_relaxed) && cycles_started != seen))
            pthread_cond_wait(&cycle_cv, &cycle_mu);
        seen = cycles_started;
        pthread_mutex_unlock(&cycle_mu);
        gm_blocking_end();
        mark_cycle();
    }
    return NULL;
}

static void wake_worker(void)
{
    pthread_mutex_lock(&cycle_mu);
    if (!worker_started) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        gc_thread_starting(1);
        if (pthread_create(&th, &a, worker_main, NULL) != 0)
            gm_fatal("runtime: cannot start the mark worker");
        pthread_attr_destroy(&a);
        worker_started = true;
    }
    pthread_cond_broadcast(&cycle_cv);
    pthread_mutex_unlock(&cycle_mu);
}

/* ---- mark assists --------------------------------------------------------------------- */

#define ASSIST_MIN_WORK ((uint64_t)64 << 10)   /* Go's gcOverAssistWork */
/* One allocation's assist does at most this much scan work while the heap is
 * below its goal (about 0.2-0.4 ms here); the rest of its debt stays on the
 * thread (a negative assist_credit), paid by its next allocations, and the
 * background worker's credit pays it meanwhile.  A large allocation during
 * marking -- a GC map's next bucket array -- would otherwise owe, and scan
 * on the spot, work in proportion to its size: a 72 MiB array cost one map
 * insert 14 ms.  Past the goal an assist pays all it owes, as in Go, so the
 * heap's bound stays the pacer's. */
#define ASSIST_MAX_WORK ((uint64_t)256 << 10)
static _Atomic uint64_t max_capped_assist_a;   /* gm_gc_fault_max_capped_assist */
#ifdef GOMAP_FAULT_INJECTION
uint64_t gm_gc_fault_max_capped_assist(void) { return atomic_exchange(&max_capped_assist_a, 0); }
#endif

/* GC CPU of this cycle so far (worker + assists) over the processors' time
 * since mark start: the limiter turns assists off above 50%. */
static bool cpu_limited(void)
{
    uint64_t el = gc_nanotime() - cur_mark_start;
    uint64_t gc = atomic_load_explicit(&cyc_assist_ns_a, memory_order_relaxed) +
                  atomic_load_explicit(&cyc_bg_ns_a, memory_order_relaxed);
    return el > 1000000 && (double)gc > 0.5 * (double)el * (double)gc_nproc;
}

/* Assist work per byte = remaining expected scan work / remaining heap to the
 * goal (Go's assistWorkPerByte), 16.16 fixed point, at least 1/16. */
static uint64_t assist_ratio_fp(void)
{
    uint64_t done = atomic_load_explicit(&gc_scan_work_a, memory_order_relaxed);
    uint64_t work = cur_expected_work > done ? cur_expected_work - done : 0;
    if (work < ASSIST_MIN_WORK) work = ASSIST_MIN_WORK;
    uint64_t live = atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
    uint64_t goal = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    uint64_t room = goal > live ? goal - live : 0;
    if (room < (goal >> 6) + 1) room = (goal >> 6) + 1;     /* past the goal: assist hard */
    uint64_t r = (uint64_t)(((unsigned __int128)work << 16) / room);
    return r < 4096 ? 4096 : r;
}

void gc_assist_alloc(gc_thread *t, uint64_t bytes)
{
    if (t->internal) return;
    t->assist_credit -= (int64_t)bytes;
    if (t->assist_credit >= 0) return;
    uint64_t ratio = assist_ratio_fp();
    uint64_t debt = (uint64_t)(((unsigned __int128)(uint64_t)-t->assist_credit * ratio) >> 16);
    /* the worker's surplus first */
    uint64_t bg = atomic_load_explicit(&bg_credit_a, memory_order_relaxed);
    while (bg) {
        uint64_t take = bg < debt ? bg : debt;
        if (atomic_compare_exchange_weak_explicit(&bg_credit_a, &bg, bg - take, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            debt -= take;
            break;
        }
    }
    uint64_t live = atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
    uint64_t goal = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    /* The CPU limiter gives way once the heap is 10% past its goal (Go's
     * hard goal): a starved background worker (a loaded machine) with the
     * assists off let a fast allocator take the heap 9x past its goal. */
    if (debt == 0 || (cpu_limited() && live < goal + goal / 10)) {
        t->assist_credit = 0;
        return;
    }
    if (debt < ASSIST_MIN_WORK) debt = ASSIST_MIN_WORK;
    bool capped = false;
    if (debt > ASSIST_MAX_WORK && live < goal) {
        debt = ASSIST_MAX_WORK;
        capped = true;
    }
    TRACE_BEGIN("assist");
    uint64_t a = gc_thread_cpu_ns();
    uint64_t did = gc_mark_drain_some_mine(debt);
    uint64_t ns = gc_thread_cpu_ns() - a;
    TRACE_END("assist");
    atomic_fetch_add_explicit(&cyc_assist_ns_a, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&total_assist_work_a, did, memory_order_relaxed);
    atomic_fetch_add_explicit(&total_assists_a, 1, memory_order_relaxed);
    if (capped) gc_atomic_max(&max_capped_assist_a, did);
    /* Paid (with some over-assist to spare), or nothing grey right now (the
     * rest is forgiven: nobody can do the work yet), or capped with grey
     * work left (the rest stays owed). */
    t->assist_credit = did ? t->assist_credit + (int64_t)(((unsigned __int128)did << 16) / ratio) : 0;
    if (t->assist_credit < 0 && !(capped && did >= debt)) t->assist_credit = 0;
}

/* ---- stop-the-world cycle (GMDEBUG=gcstoptheworld=1) ------------------------------------ */

static void cycle_stw(bool forced, uint64_t t_stop)
{
    memset(&cur, 0, sizeof cur);
    cur.t_start = t_stop;
    cur.forced = forced;
    while (gc_sweep_one()) {}
    gc_for_each_thread(release_cache, NULL);
    cur.heap0 = cur_heap_live0 = atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
    uint64_t t1 = gc_nanotime();
    cur.sweepterm = t1 - t_stop;
    atomic_store_explicit(&gc_phase_a, GC_MARK, memory_order_relaxed);
    gc_marked_bytes = 0;
    atomic_store_explicit(&gc_marked_bytes_a, 0, memory_order_relaxed);
    atomic_store_explicit(&gc_scan_work_a, 0, memory_order_relaxed);
    uint64_t c1 = gc_thread_cpu_ns();
    gc_mark_roots();
    gc_mark_drain_parallel();
    while (gc_ephemeron_progress(&gc_work)) gc_mark_drain();   /* the ephemeron fixpoint */
    /* the collector thread's CPU (the helpers of gcworkers>1 are not counted) */
    atomic_fetch_add_explicit(&total_mark_cpu_ns_a, gc_thread_cpu_ns() - c1, memory_order_relaxed);
    atomic_store_explicit(&gc_marked_bytes_a, gc_marked_bytes, memory_order_relaxed);
    uint64_t t2 = gc_nanotime();
    cur.mark = t2 - t1;
    cur_mark_start = t1;
    mark_termination(t2, t_stop, 0);
}

static void collect_stw(bool forced)
{
    gc_thread *self = gc_self;
    gc_save_regs(self->regs);
    self->saved_sp = gc_current_sp();
    gc_globals_prepare();              /* never with the world stopped (globals.c) */
    for (;;) {
        if (gc_stop_the_world("gc")) break;
        if (!forced) return;          /* someone else just collected */
    }
    uint64_t t_stop = gc_nanotime();
    if (!forced && atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed) <
                       atomic_load_explicit(&gc_trigger_a, memory_order_relaxed) &&
        !(gc_opt.gcstress > 0)) {
        gc_start_the_world();          /* a cycle finished while we waited */
        return;
    }
    pthread_mutex_lock(&cycle_mu);
    atomic_store_explicit(&cycle_active_a, true, memory_order_relaxed);
    cycles_started++;
    pthread_mutex_unlock(&cycle_mu);
    cycle_stw(forced, t_stop);
    gc_start_the_world();
}

/* ---- entry points ---------------------------------------------------------------------- */

void gc_maybe_collect(void)
{
    if (GM_UNLIKELY(atomic_load_explicit(&worker_lost_a, memory_order_relaxed)) &&
        atomic_exchange(&worker_lost_a, false))
        wake_worker();                 /* a child forked mid-mark (gc_collect_fork) */
    if (atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed) >=
            atomic_load_explicit(&gc_trigger_a, memory_order_relaxed) &&
        !atomic_load_explicit(&cycle_active_a, memory_order_relaxed))
        gc_collect(false);
}

/* Waits, as a blocking section, for a whole cycle that starts after the call. */
static void collect_sync(bool forced)
{
    pthread_mutex_lock(&cycle_mu);
    uint64_t want = cycles_started + 1;
    pthread_mutex_unlock(&cycle_mu);
    atomic_fetch_add_explicit(&sync_waiters_a, 1, memory_order_relaxed);
    for (;;) {
        pthread_mutex_lock(&cycle_mu);
        bool done = cycles_done >= want, active = atomic_load(&cycle_active_a);
        pthread_mutex_unlock(&cycle_mu);
        if (done) break;
        if (!active) {
            start_cycle(true, forced);
            continue;
        }
        wake_worker();                 /* after a fork the worker must be started again */
        gm_blocking_begin();
        pthread_mutex_lock(&cycle_mu);
        while (cycles_done < want && atomic_load(&cycle_active_a)) pthread_cond_wait(&cycle_cv, &cycle_mu);
        pthread_mutex_unlock(&cycle_mu);
        gm_blocking_end();
    }
    atomic_fetch_sub_explicit(&sync_waiters_a, 1, memory_order_relaxed);
}

__attribute__((noinline)) void gc_collect(bool forced)
{
    gc_thread *self = gc_self;
    if (!self) self = gc_thread_auto();
    if (gc_opt.gcstoptheworld) {
        collect_stw(forced);
        pthread_mutex_lock(&cycle_mu);
        if (atomic_load(&cycle_active_a)) {
            atomic_store_explicit(&cycle_active_a, false, memory_order_relaxed);
            cycles_done = cycles_started;
        }
        pthread_mutex_unlock(&cycle_mu);
    } else if (forced || gc_opt.gcstress > 0) {
        collect_sync(forced);
    } else {
        start_cycle(false, false);
        return;
    }
    wake_sweeper();
    if (forced) {        /* sweep it all; park if someone stops the world (no gcstress here) */
        while (gc_sweep_one())
            if (atomic_load_explicit(&gc_poll_a, memory_order_relaxed) & POLL_STW) gc_park(self);
        while (!gc_sweep_idle())   /* a span the sweeper took last is swept too */
            if (atomic_load_explicit(&gc_poll_a, memory_order_relaxed) & POLL_STW) gc_park(self);
            else sched_yield();
        scavenge_to_goal(false);
    }
}

/* Zeroes the stack just below the caller, where the collector's own frames
 * are about to go: their unused slots would otherwise hold stale pointers
 * from earlier, deeper calls, which the conservative stack scan would take
 * for live ones (Boehm's GC_clear_stack does the same). */
__attribute__((noinline, no_sanitize("address"))) static void clear_stack_below(void)
{
    volatile char buf[8192];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

void gm_gc(void)
{
    gc_ensure_init();
    if (!gc_self) gc_thread_auto();
    if (GM_UNLIKELY(gc_self->blocking_depth)) gc_blocking_misuse("gm_gc");
    clear_stack_below();
    gm_rt_enter();      /* sweeping and scavenging: never stopped by the preemption signal */
    gc_collect(true);
    gm_rt_leave();
}

void gm_free_os_memory(void)
{
    gm_gc();
    gc_scavenge(0, 0);
}

/* ---- MemStats ------------------------------------------------------------------------ */

static void flush_cache(gc_thread *t, void *arg)
{
    (void)arg;
    gc_mcache_flush_stats(&t->cache);
}

void gm_read_memstats(gm_memstats *m)
{
    gc_ensure_init();
    if (!gc_self) gc_thread_auto();
    memset(m, 0, sizeof *m);
    while (!gc_stop_the_world("ReadMemStats")) {}
    gc_for_each_thread(flush_cache, NULL);
    uint64_t alloc_bytes = 0, free_bytes = 0, mallocs = 0, frees = 0;
    for (int c = 0; c < GC_NUM_CLASSES; c++) {
        uint64_t a = atomic_load(&gc_stats.nmalloc[c]), f = atomic_load(&gc_stats.nfree[c]);
        mallocs += a;
        frees += f;
        m->by_size[c].size = c < gc_nclasses ? gc_classes[c].size : 0;
        m->by_size[c].mallocs = a;
        m->by_size[c].frees = f;
        if (c > 0) {
            alloc_bytes += a * gc_classes[c].size;
            free_bytes += f * gc_classes[c].size;
        }
    }
    alloc_bytes += atomic_load(&gc_stats.large_alloc_bytes);
    free_bytes += atomic_load(&gc_stats.large_free_bytes);
    gc_heapstats hs;
    gc_heap_stats(&hs);
    m->total_alloc = alloc_bytes;
    m->heap_alloc = m->alloc = alloc_bytes - free_bytes;
    m->mallocs = mallocs;
    m->frees = frees;
    m->heap_objects = mallocs - frees;
    m->heap_sys = hs.sys;
    m->heap_idle = hs.idle;
    m->heap_inuse = hs.inuse;
    m->heap_released = hs.released;
    m->mspan_inuse = m->mspan_sys = hs.span_bytes;
    m->mcache_inuse = m->mcache_sys = gc_thread_count() * sizeof(gc_thread);
    m->gc_sys = (hs.sys >> GC_PAGE_SHIFT) * (sizeof(void *) + 1) + gc_work.cap * sizeof(uintptr_t);
    m->sys = m->heap_sys + m->mspan_sys + m->mcache_sys + m->gc_sys;
    m->next_gc = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    pthread_mutex_lock(&stats_mu);
    m->last_gc = last_gc_unix;
    m->pause_total_ns = pause_total_ns;
    memcpy(m->pause_ns, pause_ns, sizeof pause_ns);
    memcpy(m->pause_end, pause_end, sizeof pause_end);
    m->num_gc = num_gc;
    m->num_forced_gc = num_forced_gc;
    uint64_t now = gc_nanotime();
    m->gc_cpu_fraction = now > start_ns ? (double)gc_busy_ns / ((double)(now - start_ns) * gc_nproc) : 0;
    m->gc_assist_work = atomic_load_explicit(&total_assist_work_a, memory_order_relaxed);
    m->gc_bg_work = atomic_load_explicit(&total_bg_work_a, memory_order_relaxed);
    m->gc_num_assists = atomic_load_explicit(&total_assists_a, memory_order_relaxed);
    m->gc_wb_shades = atomic_load_explicit(&gc_wb_recorded_a, memory_order_relaxed);
    m->gc_mark_cpu_ns = atomic_load_explicit(&total_mark_cpu_ns_a, memory_order_relaxed);
    m->gc_mark_wall_ns = atomic_load_explicit(&total_mark_wall_ns_a, memory_order_relaxed);
    m->gc_scan_work = total_scan_work;
    m->gc_preempt_signals = atomic_load_explicit(&gc_preempt_signals_a, memory_order_relaxed);
    m->gc_preempt_stops = atomic_load_explicit(&gc_preempt_stops_a, memory_order_relaxed);
    pthread_mutex_unlock(&stats_mu);
    pthread_mutex_lock(&pacer_mu);
    m->enable_gc = gc_percent >= 0 || mem_limit != INT64_MAX;
    pthread_mutex_unlock(&pacer_mu);
    m->debug_gc = gc_opt.gcstress > 0;
    gc_start_the_world();
}

/* fork (thread.c): the locks are taken before the fork and released after
 * it in both processes.  In the child the sweeper and the mark worker do
 * not exist: the sweeper starts again at the next wake_sweeper; if a cycle
 * was marking, the child's next allocation (gc_maybe_collect) starts a
 * worker to finish it -- without one the child would allocate black and
 * free nothing for ever.  (A thread cannot be created in an atfork
 * handler.) */
void gc_collect_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&cycle_mu);
        pthread_mutex_lock(&bg_mu);
        pthread_mutex_lock(&pacer_mu);
        pthread_mutex_lock(&stats_mu);
        return;
    }
    pthread_mutex_unlock(&stats_mu);
    pthread_mutex_unlock(&pacer_mu);
    pthread_mutex_unlock(&bg_mu);
    pthread_mutex_unlock(&cycle_mu);
    if (phase != 2) return;
    worker_started = false;
    atomic_store(&worker_lost_a, atomic_load(&cycle_active_a));
    atomic_store(&sync_waiters_a, 0);  /* the waiting threads do not exist here */
    atomic_store(&gc_mark_drainers_a, 0); /* nor do any that were draining (a fork that
                                          * did not wait for every thread, thread.c) */
    pthread_cond_init(&cycle_cv, NULL);
    bg_started = false;
    bg_work = false;
    pthread_cond_init(&bg_cv, NULL);
}

