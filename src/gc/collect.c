/* collect.c - the collection cycle, the pacer, the background sweeper and
 * the statistics.
 *
 * A CYCLE (all of it with the world stopped in this version; the phase
 * names are Go's so that issue 5 can move the middle one out of the pause):
 *   1. sweep termination: finish sweeping the previous cycle's spans; every
 *      thread's mcache goes back to the centrals.
 *   2. mark: gc_phase_a = GC_MARK; mark the roots, drain the work queue.
 *   3. mark termination: weak handles, finalizers and cleanups
 *      (special.c); sweepgen += 2 and every in-use span becomes unswept; the
 *      pacer sets the next goal from the bytes marked.
 *   4. sweep, with the world running: lazily by allocation (alloc.c) and by
 *      the background sweeper thread, which afterwards returns free pages
 *      to the OS beyond goal + 10%.
 * gm_gc() sweeps everything itself before returning (runtime.GC).
 *
 * PACER.  goal = marked + (marked + stack bytes + root bytes) * GMGC / 100,
 * at least 4 MiB * GMGC/100; a memory limit lowers it to what the limit
 * leaves after non-heap memory, but never below marked + 1/16 (so a heap
 * over its limit does not collect continuously).  With a stop-the-world
 * mark the trigger is the goal itself.
 */
#include "gc/gc_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
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
        goal = last_marked + (last_marked + last_roots) * (uint64_t)gc_percent / 100;
        uint64_t min = GC_HEAP_MIN * (uint64_t)gc_percent / 100;
        if (goal < min) goal = min;
    }
    if (mem_limit != INT64_MAX) {
        uint64_t other = metadata_bytes();
        uint64_t lim = (uint64_t)mem_limit > other ? (uint64_t)mem_limit - other : 0;
        uint64_t floor = last_marked + last_marked / 16 + ((uint64_t)1 << 20);
        if (lim < floor) lim = floor;
        if (lim < goal) goal = lim;
    }
    atomic_store_explicit(&next_gc_a, goal, memory_order_relaxed);
    atomic_store_explicit(&gc_trigger_a, goal, memory_order_relaxed);
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

void gc_maybe_collect(void)
{
    if (atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed) >=
        atomic_load_explicit(&gc_trigger_a, memory_order_relaxed))
        gc_collect(false);
}

/* ---- background sweeper -------------------------------------------------------- */

/* Return free pages to the OS beyond goal + 10% (or the memory limit), as
 * Go's background scavenger aims at. */
static void scavenge_to_goal(void)
{
    uint64_t goal = atomic_load_explicit(&next_gc_a, memory_order_relaxed);
    uint64_t retain = goal == UINT64_MAX ? UINT64_MAX : goal + goal / 10;
    pthread_mutex_lock(&pacer_mu);
    if (mem_limit != INT64_MAX && (uint64_t)mem_limit < retain) retain = (uint64_t)mem_limit;
    pthread_mutex_unlock(&pacer_mu);
    gc_scavenge(retain);
}

static void *sweeper_main(void *arg)
{
    (void)arg;
    gc_thread_register_internal();
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
        scavenge_to_goal();
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
        if (pthread_create(&th, &a, sweeper_main, NULL) == 0) bg_started = true;
        pthread_attr_destroy(&a);
    }
    bg_work = true;
    pthread_cond_signal(&bg_cv);
    pthread_mutex_unlock(&bg_mu);
}

/* fork: the sweeper does not exist in the child */
void gc_collect_fork_child(void)
{
    bg_started = false;
    bg_work = false;
    pthread_cond_init(&bg_cv, NULL);
}

/* ---- init ------------------------------------------------------------------------ */

static void init_once_fn(void)
{
    start_ns = gc_nanotime();
    gc_options_init();
    gc_classes_init();
    gc_pageheap_init();
    gc_alloc_init();
    gc_mark_init();
    atomic_store(&gc_sweepgen_a, 2);
    gc_percent = gc_env_percent;
    mem_limit = gc_env_memlimit;
    pacer_set_goal();
    if (gc_opt.gcstress > 0) atomic_fetch_or(&gc_poll_a, POLL_STRESS);
    gc_thread_fork_init();
    atomic_store_explicit(&gc_inited_a, 1, memory_order_release);
}

void gc_init(void) { pthread_once(&init_once, init_once_fn); }

/* ---- the cycle ---------------------------------------------------------------------- */

static void release_cache(gc_thread *t, void *arg)
{
    (void)arg;
    gc_mcache_release_all(&t->cache);
}

static void record_pause(uint64_t ns, uint64_t end_unix)
{
    pthread_mutex_lock(&stats_mu);
    pause_ns[num_gc % 256] = ns;
    pause_end[num_gc % 256] = end_unix;
    pause_total_ns += ns;
    gc_busy_ns += ns;
    unsigned b = 0;
    if (ns >= 16) {
        unsigned e = 63u - (unsigned)__builtin_clzll(ns);       /* ns in [2^e, 2^(e+1)) */
        unsigned sub = (unsigned)((ns >> (e - 4)) & 15);
        b = (e - 4 + 1) * 16 + sub;
        if (b >= GM_PAUSE_BUCKETS) b = GM_PAUSE_BUCKETS - 1;
    } else {
        b = (unsigned)ns;
    }
    pause_hist[b]++;
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

static void gctrace(uint32_t n, uint64_t t0, uint64_t sweepterm, uint64_t mark, uint64_t markterm,
                    uint64_t heap0, uint64_t marked, uint64_t goal, bool forced)
{
    double since = (double)(t0 - start_ns) / 1e9;
    uint64_t now = gc_nanotime();
    int pct = now > start_ns ? (int)(100.0 * (double)gc_busy_ns / (double)(now - start_ns)) : 0;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    if (nproc < 1) nproc = 1;
    double a = sweepterm / 1e6, b = mark / 1e6, c = markterm / 1e6;
    fprintf(stderr,
            "gc %u @%.3fs %d%%: %.3g+%.3g+%.3g ms clock, %.3g+0/%.3g/0+%.3g ms cpu, "
            "%llu->%llu->%llu MB, %llu MB goal, %llu MB stacks, %llu MB globals, %ld P%s\n",
            n, since, pct, a, b, c, a, b, c,
            (unsigned long long)(heap0 >> 20), (unsigned long long)(heap0 >> 20),
            (unsigned long long)(marked >> 20),
            (unsigned long long)(goal == UINT64_MAX ? 0 : goal >> 20),
            (unsigned long long)(gc_scan_stack_bytes >> 20),
            (unsigned long long)(gc_scan_global_bytes >> 20), nproc, forced ? " (forced)" : "");
}

static void cycle(bool forced, uint64_t t_stop)
{
    /* 1. sweep termination */
    while (gc_sweep_one()) {}
    gc_for_each_thread(release_cache, NULL);
    uint64_t heap0 = atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
    uint64_t t1 = gc_nanotime();

    /* 2. mark */
    atomic_store_explicit(&gc_phase_a, GC_MARK, memory_order_relaxed);
    gc_marked_bytes = 0;
    gc_mark_roots();
    gc_mark_drain_parallel();
    uint64_t t2 = gc_nanotime();

    /* 3. mark termination */
    atomic_store_explicit(&gc_phase_a, GC_MARKTERM, memory_order_relaxed);
    gc_special_mark_done();
    atomic_store_explicit(&gc_phase_a, GC_OFF, memory_order_relaxed);
    atomic_fetch_add_explicit(&gc_sweepgen_a, 2, memory_order_relaxed);
    gc_sweep_prepare();
    uint64_t marked = gc_marked_bytes;
    atomic_store_explicit(&gc_heap_live_a, marked, memory_order_relaxed);
    pthread_mutex_lock(&pacer_mu);
    last_marked = marked;
    last_roots = gc_scan_roots_bytes;
    pacer_set_goal();
    pthread_mutex_unlock(&pacer_mu);
    if (forced) num_forced_gc++;
    if (gc_opt.gccheckmark) {
        size_t bad = gc_verify_stopped();
        if (bad) gm_fatalf("gccheckmark: heap verification found %zu problems", bad);
    }
    uint64_t t3 = gc_nanotime();
    uint32_t n = num_gc + 1;
    record_pause(t3 - t_stop, unix_ns());
    if (gc_opt.gctrace)
        gctrace(n, t_stop, t1 - t_stop, t2 - t1, t3 - t2, heap0, marked,
                atomic_load_explicit(&next_gc_a, memory_order_relaxed), forced);
}

__attribute__((noinline)) void gc_collect(bool forced)
{
    gc_thread *self = gc_self;
    if (!self) self = gc_thread_auto();
    /* our own roots: registers and everything above this frame */
    gc_save_regs(self->regs);
    self->saved_sp = gc_current_sp();
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
    cycle(forced, t_stop);
    gc_start_the_world();
    wake_sweeper();
    if (forced) {        /* sweep it all; park if someone stops the world (no gcstress here) */
        while (gc_sweep_one())
            if (atomic_load_explicit(&gc_poll_a, memory_order_relaxed) & POLL_STW) gc_park(self);
        scavenge_to_goal();
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
    clear_stack_below();
    gc_collect(true);
}

void gm_free_os_memory(void)
{
    gm_gc();
    gc_scavenge(0);
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
    m->gc_cpu_fraction = now > start_ns ? (double)gc_busy_ns / (double)(now - start_ns) : 0;
    pthread_mutex_unlock(&stats_mu);
    pthread_mutex_lock(&pacer_mu);
    m->enable_gc = gc_percent >= 0 || mem_limit != INT64_MAX;
    pthread_mutex_unlock(&pacer_mu);
    m->debug_gc = gc_opt.gcstress > 0;
    gc_start_the_world();
}
