/* thread.c - attached threads, safepoints and the stop-the-world handshake.
 *
 * STATES.  An attached thread is RUNNING (it may touch the GC heap at any
 * moment), PARKED (stopped at a safepoint, waiting on resume_cv) or BLOCKING
 * (between gm_blocking_begin and gm_blocking_end: it promises not to touch
 * the heap).  Every transition out of RUNNING records the thread's stack
 * pointer and callee-saved registers first, so a thread that is not RUNNING
 * has roots [saved_sp, stack_hi) + regs that the collector can scan.
 *
 * HANDSHAKE (cooperative first).  The collector takes world_mu, sets
 * stw_owner and the POLL_STW bit of gc_poll_a, and waits on stopped_cv until
 * every other thread is PARKED or BLOCKING, or held by the preemption
 * signal.  Threads poll gc_poll_a (one relaxed load) in every allocation and
 * in gm_safepoint; a set bit sends them to park().  gm_blocking_end waits
 * while a stop is in force.  Attach waits likewise, so the thread list
 * cannot change while the world is stopped.  A thread still RUNNING after
 * 1 ms is looked at (poke_late): if it sleeps in the kernel or burns CPU
 * past GMDEBUG=preemptgrace, preempt.c sends it the signal, whose handler
 * saves its context and holds it (psig_a STOPPED, counted as stopped by
 * still_running) until gc_start_the_world releases it.  The same applies to
 * a thread that owes the concurrent mark its stack scan: the collector scans
 * a signal-held thread's stack like a parked one's and releases it.
 *
 * INVARIANTS.  (1) While stw_owner is set, no thread other than the owner is
 * RUNNING once the stop completed.  (2) All transitions of state_a happen
 * under world_mu; the relaxed poll is only a hint that leads to the lock.
 * (3) A thread never parks while holding an internal lock.
 *
 * STACK SCANS (concurrent mark).  At mark setup every thread's stack_state
 * becomes PENDING and the POLL_STACK bit is raised.  A RUNNING thread scans
 * its own stack at its next poll; the collector scans the stack of a thread
 * that is PARKED or BLOCKING, after marking it SCANNING under world_mu: a
 * parked or blocking thread that wants to run again (or to detach) waits
 * until the scan is DONE, so the stack does not change under the scan.  A thread attached while
 * marking starts PENDING; mark termination scans, with the world stopped,
 * any stack still PENDING.  POLL_STACK is dropped as soon as no stack is
 * PENDING (invariant: a PENDING stack => POLL_STACK set; both change under
 * world_mu), so the allocations of the rest of the mark stay on the fast
 * path (alloc.c).
 *
 * MISUSE.  A BLOCKING thread counts as stopped: the collector may take
 * back its cached spans and scan its stack while it runs on.  So inside a
 * blocking section an allocation, gm_gc, gm_safepoint, or a store through
 * the write barrier while marking is fatal, with a message naming the call
 * (gc_blocking_misuse), never a torn heap or stack scan; park() is never
 * entered with blocking_depth > 0 (it would make the thread RUNNING while it
 * sits in its blocking call, and the next stop of the world would wait for
 * it).  A longjmp out of a blocking section leaves the thread BLOCKING: it
 * is caught by the next of those calls.  Plain loads of GC pointers cannot
 * be checked.
 *
 * BOUND.  If a thread stays RUNNING for stoptimeout ms (GMDEBUG, default
 * 20000) -- preemption off (preemptsig=0), or a thread the signal cannot
 * stop (spinning inside the C library of a static executable) -- the
 * collector names it (id, tid, name) on stderr and stops the process with a
 * fatal error instead of hanging silently.
 */
#include "gc/gc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Thread_local gc_thread *gc_self __attribute__((tls_model("initial-exec")));
_Atomic uint32_t gc_poll_a;

static pthread_mutex_t world_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stopped_cv;   /* a thread left RUNNING */
static pthread_cond_t resume_cv;    /* the world restarted */
static gc_thread *threads;          /* under world_mu */
static size_t nthreads;
static gc_thread *stw_owner;        /* under world_mu */
static bool stw_requested;          /* under world_mu */
static uint64_t next_thread_id = 1;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* ---- registers and stack pointer ----------------------------------------- */

/* Stores the callee-saved registers, which hold the caller's values on
 * entry: the asm uses only the argument register. */
__attribute__((noinline)) void gc_save_regs(uintptr_t r[GC_NREGS])
{
#if defined(__x86_64__)
    __asm__ volatile("movq %%rbx, 0(%0)\n\tmovq %%rbp, 8(%0)\n\tmovq %%r12, 16(%0)\n\t"
                     "movq %%r13, 24(%0)\n\tmovq %%r14, 32(%0)\n\tmovq %%r15, 40(%0)"
                     : : "r"(r) : "memory");
#elif defined(__aarch64__)
    /* x19-x29 and the low halves of v8-v15 (d8-d15) are callee-saved
     * (AAPCS64); a compiler may spill a pointer into a d register */
    __asm__ volatile("stp x19, x20, [%0]\n\tstp x21, x22, [%0, #16]\n\t"
                     "stp x23, x24, [%0, #32]\n\tstp x25, x26, [%0, #48]\n\t"
                     "stp x27, x28, [%0, #64]\n\tstr x29, [%0, #80]\n\t"
                     "stp d8, d9, [%0, #88]\n\tstp d10, d11, [%0, #104]\n\t"
                     "stp d12, d13, [%0, #120]\n\tstp d14, d15, [%0, #136]"
                     : : "r"(r) : "memory");
#else
    __builtin_unwind_init();   /* spills into this frame; below the caller's */
    (void)r;
#endif
}

/* An address below every frame of the caller (the callee's frame). */
__attribute__((noinline)) uintptr_t gc_current_sp(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

/* ---- attach / detach ----------------------------------------------------- */

static void thread_exit_hook(void *p);
static void make_key(void)
{
    pthread_key_create(&exit_key, thread_exit_hook);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&stopped_cv, &ca);
    pthread_cond_init(&resume_cv, NULL);
    pthread_condattr_destroy(&ca);
}

static void stack_bounds(gc_thread *t)
{
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &addr, &size);
        pthread_attr_destroy(&a);
    }
    if (!addr) gm_fatal("gc: cannot find the thread's stack");
    t->stack_lo = (uintptr_t)addr;
    t->stack_hi = (uintptr_t)addr + size;
}

/* internal: a library thread (sweeper, finalizer, mark worker); its flags
 * are set before the thread is published (the stop loop and the stack
 * scans read them under world_mu). */
static gc_thread *attach_as(bool automatic, bool internal, bool no_stack_roots)
{
    gc_ensure_init();
    pthread_once(&key_once, make_key);
    gc_thread *t = gc_self;
    if (t) {
        t->attach_depth++;
        return t;
    }
    t = calloc(1, sizeof *t);
    if (!t) gm_fatal("runtime: out of memory (thread)");
    gc_mcache_init(&t->cache);
    stack_bounds(t);
    t->tid = gettid_();
    t->pth = pthread_self();
    t->rt_depth_p = &gm_rt_depth;
    t->attach_depth = 1;
    t->auto_attached = automatic;
    t->internal = internal;
    t->no_stack_roots = no_stack_roots;
    pthread_mutex_lock(&world_mu);
    while (stw_requested) pthread_cond_wait(&resume_cv, &world_mu);
    t->id = next_thread_id++;
    t->stack_state = STK_DONE;
    if (atomic_load_explicit(&gc_phase_a, memory_order_relaxed) != GC_OFF) {
        t->stack_state = STK_PENDING;       /* the collector waits for this scan too */
        atomic_fetch_or_explicit(&gc_poll_a, POLL_STACK, memory_order_relaxed);
    }
    t->next = threads;
    if (threads) threads->prev = t;
    threads = t;
    nthreads++;
    atomic_store_explicit(&t->state_a, TH_RUNNING, memory_order_relaxed);
    pthread_mutex_unlock(&world_mu);
    gc_self = t;
    pthread_setspecific(exit_key, t);
    return t;
}

static gc_thread *attach(bool automatic) { return attach_as(automatic, false, false); }

gc_thread *gc_thread_auto(void) { return attach(true); }

void gm_thread_attach(void) { attach(false); }

/* Library threads being started: created but not yet attached.  A fork
 * waits for them (fork_prepare): until it attaches, such a thread runs
 * outside the stop-the-world handshake and may hold the allocator's lock. */
static _Atomic int starting_a;

void gc_thread_starting(int delta) { atomic_fetch_add(&starting_a, delta); }

void gc_thread_register_internal(bool no_stack_roots)
{
    attach_as(false, true, no_stack_roots);
    gc_thread_starting(-1);
}

static void park(gc_thread *t);

static void detach(gc_thread *t)
{
    /* Still RUNNING, so no stop of the world is in progress: the cached
     * spans go back to their centrals before the next stop can see them
     * missing (during a concurrent mark they are swept spans, as any). */
    gc_mcache_release_all(&t->cache);
    if (t->wbn) {                           /* what the barrier recorded must not be lost */
        gc_workbuf *w = gc_cur_work();
        gc_wb_flush(t, w);
        if (w != &gc_work) gc_work_publish(w);
    }
    gc_mark_thread_exit();
    pthread_mutex_lock(&world_mu);
    t->saved_sp = t->stack_hi;              /* nothing of ours is live any more */
    while ((stw_requested && stw_owner != t) || t->stack_state == STK_SCANNING) {
        atomic_store_explicit(&t->state_a, TH_PARKED, memory_order_release);
        pthread_cond_broadcast(&stopped_cv);
        pthread_cond_wait(&resume_cv, &world_mu);
    }
    if (t->prev) t->prev->next = t->next;
    else threads = t->next;
    if (t->next) t->next->prev = t->prev;
    nthreads--;
    pthread_cond_broadcast(&stopped_cv);
    pthread_mutex_unlock(&world_mu);
    free(t);
}

void gm_thread_detach(void)
{
    gc_thread *t = gc_self;
    if (!t) {
        gm_errorf("gm_thread_detach: thread is not attached");
        return;
    }
    if (--t->attach_depth > 0) return;
    if (t->blocking_depth) gm_fatal("gm_thread_detach inside gm_blocking_begin/end");
    gc_self = NULL;
    pthread_setspecific(exit_key, NULL);
    detach(t);
}

static void thread_exit_hook(void *p)
{
    gc_thread *t = p;
    if (!t) return;
    gc_self = NULL;
    if (t->blocking_depth) {          /* exited inside a blocking section */
        t->blocking_depth = 0;
        pthread_mutex_lock(&world_mu);
        while (stw_requested || t->stack_state == STK_SCANNING) pthread_cond_wait(&resume_cv, &world_mu);
        atomic_store_explicit(&t->state_a, TH_RUNNING, memory_order_relaxed);
        pthread_mutex_unlock(&world_mu);
    }
    detach(t);
}

/* ---- safepoints ----------------------------------------------------------- */

__attribute__((noinline)) static void park(gc_thread *t)
{
    /* a blocking thread is already stopped for the collector; parking it
     * would make it RUNNING while it is still inside its blocking call */
    GM_ASSERT(t->blocking_depth == 0);
    gc_save_regs(t->regs);
    t->saved_sp = gc_current_sp();
    pthread_mutex_lock(&world_mu);
    /* a parked thread's stack may be being scanned by the collector (it saw
     * PARKED): it may not run on until the scan is done */
    while ((stw_requested && stw_owner != t) || t->stack_state == STK_SCANNING) {
        atomic_store_explicit(&t->state_a, TH_PARKED, memory_order_release);
        pthread_cond_broadcast(&stopped_cv);
        pthread_cond_wait(&resume_cv, &world_mu);
    }
    atomic_store_explicit(&t->state_a, TH_RUNNING, memory_order_relaxed);
    pthread_mutex_unlock(&world_mu);
}

void gc_park(gc_thread *t) { park(t); }

/* The calling thread scans its own stack if the cycle asks for it. */
/* world_mu held: once no thread's stack is PENDING, POLL_STACK is dropped,
 * so that allocations for the rest of the mark take the fast path again
 * (a thread that attaches during the mark raises it again, under world_mu). */
static void stack_poll_update_locked(void)
{
    for (gc_thread *t = threads; t; t = t->next)
        if (t->stack_state == STK_PENDING) return;
    atomic_fetch_and_explicit(&gc_poll_a, ~POLL_STACK, memory_order_relaxed);
}

static void self_scan(gc_thread *t)
{
    pthread_mutex_lock(&world_mu);
    bool mine = t->stack_state == STK_PENDING;
    if (mine) t->stack_state = STK_SCANNING;
    pthread_mutex_unlock(&world_mu);
    if (!mine) return;
    gc_scan_own_stack(t);
    pthread_mutex_lock(&world_mu);
    t->stack_state = STK_DONE;
    stack_poll_update_locked();
    pthread_cond_broadcast(&resume_cv);
    pthread_mutex_unlock(&world_mu);
}

void gc_poll_slow(gc_thread *t)
{
    uint32_t p = atomic_load_explicit(&gc_poll_a, memory_order_relaxed);
    if (p & POLL_STW) park(t);
    if ((p & POLL_STACK) && t->stack_state == STK_PENDING) self_scan(t);
    if ((p & POLL_STRESS) && gc_opt.gcstress > 0 && !t->internal && t->blocking_depth == 0 &&
        ++t->stress_count >= (uint32_t)gc_opt.gcstress) {
        t->stress_count = 0;
        gc_collect(false);
    }
}

void gc_blocking_misuse(const char *what)
{
    gm_fatalf("%s inside gm_blocking_begin/end (a missing gm_blocking_end, or a longjmp out of "
              "the section): a blocking thread must not touch the GC heap", what);
}

void gm_safepoint(void)
{
    gc_ensure_init();
    gc_thread *t = gc_self;
    if (GM_UNLIKELY(t == NULL)) t = gc_thread_auto();
    if (GM_UNLIKELY(t->blocking_depth)) gc_blocking_misuse("gm_safepoint");
    if (GM_UNLIKELY(atomic_load_explicit(&gc_poll_a, memory_order_relaxed))) {
        gm_rt_enter();                    /* a self scan holds grey objects until it publishes */
        gc_poll_slow(t);
        gm_rt_leave();
    }
}

/* ---- blocking sections ---------------------------------------------------- */

__attribute__((noinline)) static void save_self_regs(void)
{
    gc_thread *t = gc_self;
    if (t && t->blocking_depth == 0) gc_save_regs(t->regs);
}

__attribute__((noinline)) static void blocking_enter(void)
{
    gc_thread *t = gc_self;
    if (!t) return;
    if (t->blocking_depth++ > 0) return;
    t->saved_sp = gc_current_sp();
    pthread_mutex_lock(&world_mu);
    atomic_store_explicit(&t->state_a, TH_BLOCKING, memory_order_release);
    if (stw_requested) pthread_cond_broadcast(&stopped_cv);
    pthread_mutex_unlock(&world_mu);
}

/* Nothing is live across the first call, so this frame needs no callee-saved
 * register: they still hold the caller's values when save_self_regs runs. */
void gm_blocking_begin(void)
{
    save_self_regs();
    blocking_enter();
}

void gm_blocking_end(void)
{
    gc_thread *t = gc_self;
    if (!t) return;
    if (t->blocking_depth == 0) gm_fatal("gm_blocking_end without gm_blocking_begin");
    if (--t->blocking_depth > 0) return;
    pthread_mutex_lock(&world_mu);
    while ((stw_requested && stw_owner != t) || t->stack_state == STK_SCANNING)
        pthread_cond_wait(&resume_cv, &world_mu);
    atomic_store_explicit(&t->state_a, TH_RUNNING, memory_order_relaxed);
    pthread_mutex_unlock(&world_mu);
}

/* ---- stop / start the world ----------------------------------------------- */

/* Still to be stopped: RUNNING and not held by the preemption signal. */
static bool still_running(gc_thread *t)
{
    return atomic_load_explicit(&t->state_a, memory_order_acquire) == TH_RUNNING && !gc_preempt_stopped(t);
}

#define PREEMPT_LOOK_NS 1000000   /* a stop waits this long before looking at threads (preempt.c) */
static uint64_t preempt_gen;      /* one per wait, under world_mu */

/* Under world_mu: pokes the threads in `need` that have not stopped;
 * returns true if a signal is outstanding (a handler may stop soon). */
static bool poke_late(uint64_t waited_ns, bool stacks)
{
    bool outstanding = false;
    for (gc_thread *t = threads; t; t = t->next) {
        if (t == stw_owner || !still_running(t)) continue;
        if (stacks && t->stack_state != STK_PENDING) continue;
        if (waited_ns >= PREEMPT_LOOK_NS || t->preempted_before) gc_preempt_poke(t, waited_ns, preempt_gen);
        if (atomic_load_explicit(&t->psig_a, memory_order_relaxed) == PSIG_SENT) outstanding = true;
    }
    return outstanding;
}

static void release_signalled(void)
{
    for (gc_thread *t = threads; t; t = t->next) gc_preempt_release(t);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void report_late(const char *why, uint64_t waited)
{
    for (gc_thread *t = threads; t; t = t->next) {
        if (t == stw_owner) continue;
        if (atomic_load_explicit(&t->state_a, memory_order_acquire) != TH_RUNNING) continue;
        gm_errorf("stop-the-world (%s): thread %llu (tid %d) has not reached a safepoint "
                  "after %llu ms; a mutator must call gm_safepoint() in long loops and wrap "
                  "blocking calls in gm_blocking_begin/gm_blocking_end",
                  why, (unsigned long long)t->id, (int)t->tid, (unsigned long long)waited);
    }
}

/* 1: the world is stopped; 0: another thread was stopping it and we parked
 * until it finished; -1: (fatal false) not every thread stopped within
 * timeout ms, and the request was withdrawn. */
static int stop_world(const char *why, int timeout, bool fatal);

bool gc_stop_the_world(const char *why) { return stop_world(why, gc_opt.stoptimeout_ms, true) == 1; }

static int stop_world(const char *why, int timeout, bool fatal)
{
    gc_thread *self = gc_self;
    pthread_once(&key_once, make_key);
    pthread_mutex_lock(&world_mu);
    if (stw_requested) {
        /* another thread is collecting: behave as a safepoint */
        if (self && self->blocking_depth == 0) {
            pthread_mutex_unlock(&world_mu);
            park(self);
        } else {
            while (stw_requested) pthread_cond_wait(&resume_cv, &world_mu);
            pthread_mutex_unlock(&world_mu);
        }
        return 0;
    }
    stw_requested = true;
    stw_owner = self;
    atomic_fetch_or_explicit(&gc_poll_a, POLL_STW, memory_order_seq_cst);
    uint64_t start = mono_ms(), start_ns = gc_nanotime();
    preempt_gen++;
    for (;;) {
        bool all = true;
        for (gc_thread *t = threads; t; t = t->next)
            if (t != self && still_running(t)) {
                all = false;
                break;
            }
        if (all) break;
        /* cooperative threads broadcast stopped_cv when they park; a thread
         * that does not may get the preemption signal (preempt.c), whose
         * handler wakes gc_preempt_wait */
        if (poke_late(gc_nanotime() - start_ns, false)) {
            pthread_mutex_unlock(&world_mu);
            gc_preempt_wait(100);
            pthread_mutex_lock(&world_mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += (gc_opt.preemptsig ? 1 : 10) * 1000000;
            if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
            pthread_cond_timedwait(&stopped_cv, &world_mu, &ts);
        }
        uint64_t waited = mono_ms() - start;
        if (timeout > 0 && waited >= (uint64_t)timeout) {
            if (!fatal) {
                stw_requested = false;
                stw_owner = NULL;
                atomic_fetch_and_explicit(&gc_poll_a, ~POLL_STW, memory_order_seq_cst);
                release_signalled();
                pthread_cond_broadcast(&resume_cv);
                pthread_mutex_unlock(&world_mu);
                return -1;
            }
            report_late(why, waited);
            gm_fatal("stop the world: a thread did not reach a safepoint");
        }
    }
    pthread_mutex_unlock(&world_mu);
    return 1;
}

void gc_start_the_world(void)
{
    pthread_mutex_lock(&world_mu);
    stw_requested = false;
    stw_owner = NULL;
    atomic_fetch_and_explicit(&gc_poll_a, ~POLL_STW, memory_order_seq_cst);
    release_signalled();
    pthread_cond_broadcast(&resume_cv);
    pthread_mutex_unlock(&world_mu);
}

/* ---- fork ------------------------------------------------------------------ */

/* Only the forking thread exists in a child.  The prepare handler stops the
 * world (every other mutator parks at a safepoint, so none is caught in the
 * middle of an allocation or a sweep) and then takes every lock of the
 * collector, in lock order: a thread that is not stopped (a blocking one,
 * the sweeper waking up, a thread that never attached) may hold one, and
 * the child could never take it again.  The child keeps the forking thread
 * attached (if it was), forgets every other thread and any stop in
 * progress, and restarts the library's threads (sweeper, finalizer, mark
 * worker and helpers) when they are next needed -- the mark worker at the
 * child's next allocation if a cycle was marking (collect.c).  What the
 * forgotten threads hold for the collector is kept: their cached spans go
 * back to their centrals, and the values in their write-barrier buffers
 * are shaded (if a cycle is marking, they may be the only record of an
 * object moved into a black one). */
static bool fork_stopped;

static void fork_prepare(void)
{
    /* no mutator mid-allocation; but a fork must not hang on a thread that
     * ignores safepoints: after 1 s, fork anyway (the child may then find
     * that thread's cached spans inconsistent) */
    int r;
    for (int k = 0; k < 1000 && atomic_load(&starting_a) > 0; k++) usleep(1000);
    while ((r = stop_world("fork", 1000, false)) == 0) {}
    fork_stopped = r == 1;
    gc_collect_fork(0);
    gc_mark_fork(0);
    gc_alloc_fork(0);
    gc_special_fork(0);
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) pthread_mutex_lock(&gc_centrals[i].lock);
    pthread_mutex_lock(&gc_large_lock);
    gc_heap_lock();
    pthread_mutex_lock(&world_mu);
}

static void fork_release(void)
{
    pthread_mutex_unlock(&world_mu);
    gc_heap_unlock();
    pthread_mutex_unlock(&gc_large_lock);
    for (int i = GC_NUM_SPANCLASSES; i-- > 0;) pthread_mutex_unlock(&gc_centrals[i].lock);
}

static void fork_parent(void)
{
    fork_release();
    gc_special_fork(1);
    gc_alloc_fork(1);
    gc_mark_fork(1);
    gc_collect_fork(1);
    if (fork_stopped) gc_start_the_world();
}

static void fork_child(void)
{
    gc_thread *self = gc_self, *gone = NULL;
    for (gc_thread *t = threads, *nx; t; t = nx) {   /* unlink every other thread */
        nx = t->next;
        if (t == self) continue;
        t->next = gone;
        gone = t;
    }
    threads = NULL;
    nthreads = 0;
    if (self) {
        self->next = self->prev = NULL;
        threads = self;
        nthreads = 1;
    }
    stw_requested = false;
    stw_owner = NULL;
    atomic_store(&starting_a, 0);
    atomic_fetch_and_explicit(&gc_poll_a, ~POLL_STW, memory_order_relaxed);
    pthread_cond_init(&stopped_cv, NULL);
    pthread_cond_init(&resume_cv, NULL);
    fork_release();
    gc_special_fork(2);
    gc_alloc_fork(2);
    gc_mark_fork(2);
    gc_collect_fork(2);
    /* the spans cached by threads that do not exist here go back; what
     * their barrier buffers recorded is shaded (outside a mark they are
     * empty: mark termination flushed them) */
    bool marking = atomic_load_explicit(&gc_phase_a, memory_order_relaxed) != GC_OFF;
    gc_workbuf *w = gc_cur_work();
    while (gone) {
        gc_thread *t = gone;
        gone = t->next;
        gc_mcache_release_all(&t->cache);
        if (marking) gc_wb_flush(t, w);
        free(t);
    }
    if (w != &gc_work) gc_work_publish(w);
}

void gc_thread_fork_init(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* The world is stopped by the caller: the list is stable. */
void gc_for_each_thread(void (*fn)(gc_thread *t, void *arg), void *arg)
{
    pthread_mutex_lock(&world_mu);
    gc_thread *list = threads;
    pthread_mutex_unlock(&world_mu);
    for (gc_thread *t = list; t; t = t->next) fn(t, arg);
}

size_t gc_thread_count(void)
{
    pthread_mutex_lock(&world_mu);
    size_t n = nthreads;
    pthread_mutex_unlock(&world_mu);
    return n;
}

/* ---- stack scans of the concurrent mark ------------------------------------ */

/* World stopped by the caller: every thread's stack is to be scanned. */
static uint64_t stack_scans_since;    /* when the cycle asked for stack scans (world_mu) */

void gc_request_stack_scans(void)
{
    pthread_mutex_lock(&world_mu);
    stack_scans_since = gc_nanotime();
    preempt_gen++;
    for (gc_thread *t = threads; t; t = t->next) t->stack_state = STK_PENDING;
    pthread_mutex_unlock(&world_mu);
    atomic_fetch_or_explicit(&gc_poll_a, POLL_STACK, memory_order_relaxed);
}

/* Scans the stacks that can be scanned now: those of parked or blocking
 * threads (the caller's own too); returns how many are still PENDING (the
 * RUNNING threads scan theirs at their next poll). */
size_t gc_scan_stacks_step(void)
{
    size_t pending;
    gc_thread *self = gc_self;
    if (self && self->stack_state == STK_PENDING) self_scan(self);
    pthread_mutex_lock(&world_mu);
    for (;;) {
        gc_thread *pick = NULL;
        pending = 0;
        for (gc_thread *t = threads; t; t = t->next) {
            if (t->stack_state != STK_PENDING) continue;
            if (still_running(t)) {
                pending++;
                continue;
            }
            pick = t;
            break;
        }
        if (!pick) break;
        pick->stack_state = STK_SCANNING;
        pthread_mutex_unlock(&world_mu);
        gc_workbuf *w = gc_cur_work();
        gc_scan_thread_stack(pick, w);
        gc_work_publish(w);
        pthread_mutex_lock(&world_mu);
        pick->stack_state = STK_DONE;
        if (!stw_requested) gc_preempt_release(pick);   /* held by the signal for this scan */
        pthread_cond_broadcast(&resume_cv);
    }
    /* threads that have not scanned their own stack since the mark began:
     * the signal, after the grace (preempt.c) */
    if (pending && !stw_requested) poke_late(gc_nanotime() - stack_scans_since, true);
    if (!pending) stack_poll_update_locked();
    pthread_mutex_unlock(&world_mu);
    return pending;
}

/* World stopped (mark termination): scan every stack into w (again, for
 * those already scanned), flush every barrier buffer into w, clear
 * POLL_STACK. */
void gc_stacks_finish(gc_workbuf *w)
{
    pthread_mutex_lock(&world_mu);
    /* Every stack is scanned again, not only the ones still pending: a
     * conservative scan cannot tell a live slot from a stale one, and a
     * frame pushed since a thread's first scan may expose old values in
     * slots it has not written yet.  What a stack holds at termination is
     * kept this cycle -- the same stacks checkmark re-marks from. */
    for (gc_thread *t = threads; t; t = t->next) {
        if (t == gc_self) {
            gc_save_regs(t->regs);
            t->saved_sp = gc_current_sp();
        }
        gc_scan_thread_stack(t, w);
        t->stack_state = STK_DONE;
        gc_wb_flush(t, w);
    }
    pthread_mutex_unlock(&world_mu);
    atomic_fetch_and_explicit(&gc_poll_a, ~POLL_STACK, memory_order_relaxed);
}

/* World stopped: flush every barrier buffer into w. */
void gc_wb_flush_all(gc_workbuf *w)
{
    pthread_mutex_lock(&world_mu);
    for (gc_thread *t = threads; t; t = t->next) gc_wb_flush(t, w);
    pthread_mutex_unlock(&world_mu);
}
