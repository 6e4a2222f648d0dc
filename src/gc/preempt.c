/* preempt.c - stopping threads that do not reach a safepoint, with a signal.
 *
 * THE FAST PATH STAYS COOPERATIVE (thread.c).  A stop of the world, or the
 * concurrent mark's request for a stack scan, is first only a flag that
 * threads see at their next allocation or gm_safepoint.  This file is the
 * fallback for a thread that breaks the contract: one that blocks in read(),
 * pthread_cond_wait, sleep ... without gm_blocking_begin, or loops without a
 * safepoint.  Go does the same since 1.14 (asynchronous preemption, SIGURG).
 *
 * WHEN A SIGNAL IS SENT (gc_preempt_poke, called by the waiting collector
 * about every PREEMPT_POLL_US).  To a thread t that is attached, not a
 * library thread, RUNNING (not parked, not blocking), not inside gomap
 * (gm_rt_depth, read racily as a hint), and
 *   (a) the stop has waited GMDEBUG=preemptgrace ms (default 10, Go's
 *       forcePreemptNS) and t sleeps in the kernel (state S in
 *       /proc/self/task/<tid>/stat): it is blocked in a call outside a
 *       blocking section; or
 *   (b) t has used preemptgrace ms of CPU time since the collector first
 *       looked at it in this stop (its thread CPU clock): it loops without
 *       a safepoint; or
 *   (c) t needed a signal before and sleeps in the kernel now: no grace
 *       again (a thread pool idling in pthread_cond_wait would otherwise add
 *       the grace to every pause).
 * A thread that follows the contract reaches a safepoint within microseconds
 * of CPU time and is never signalled: a descheduled thread is runnable
 * (state R, its CPU clock still), so neither (a) nor (b) fires for it.
 *
 * WHERE THE HANDLER STOPS A THREAD.  The signal may land anywhere, so the
 * handler stops the thread only where stopping is as safe as parking at a
 * safepoint; elsewhere it returns at once and the collector signals again
 * PREEMPT_RETRY_US later:
 *   - gm_rt_depth > 0 (the thread holds one of gomap's locks or is inside
 *     an allocation, a self stack scan, a weak-pointer shade: see
 *     common/internal.h): deferred; the allocation ending at depth 0 parks.
 *   - the PC is in the write barrier (section gomap_nopreempt, barrier.c):
 *     a barrier that read "barrier off" must not store after a mark started.
 *   - the PC is in the C library, the dynamic loader or the allocator the
 *     program uses (their executable segments, found at init from the
 *     addresses of malloc, pthread_mutex_lock, fwrite and the loader's load
 *     base), unless the thread sits at a system call (the instruction at the
 *     PC is the syscall instruction, where the kernel rewound a call to be
 *     restarted, or the one before it with -EINTR in the result): the
 *     collector calls malloc and prints while the world is stopped, and a
 *     thread stopped inside malloc could hold the lock it needs.  A thread
 *     blocked in a system call holds no such lock (a futex wait inside
 *     malloc is one for a lock it does not hold).
 * In a statically linked program the C library is part of the executable:
 * then only threads at a system call are stopped, never a spinning one
 * (stoptimeout names it, as before).
 *
 * THE HANDLER (async-signal-safe: atomics, futex, no lock, no malloc).  It
 * saves the callee-saved registers and its own stack pointer as the
 * thread's saved_sp: the whole interrupted context (every general and
 * vector register, in the ucontext the kernel pushed) lies on the stack
 * above it, and the conservative scan from saved_sp covers it, the x86-64
 * red zone included.  Then psig_a goes SENT -> STOPPED (the collector counts
 * the thread as stopped; a failed exchange means the collector withdrew the
 * request) and the thread waits on a futex until the collector sets
 * RELEASED: when the world restarts, or, for a stack scan while the world
 * runs, as soon as the collector scanned its stack (thread.c).  errno is
 * preserved; SA_RESTART makes the interrupted call resume (a call that
 * returns EINTR regardless, e.g. select, is the program's to retry, as with
 * any signal; gomap's own waits retry theirs).  A signal that was not sent
 * by gomap goes to the handler installed before gomap's (chained), so the
 * program may use the same signal number for its own purposes.
 *
 * The handler is installed the first time a signal is needed, never in a
 * program that cooperates.  GMDEBUG=preemptsig=N picks the signal (default
 * SIGURG, as Go: ignored by default and meaningless to most programs),
 * preemptsig=0 turns preemption off (stoptimeout then applies as before).
 */
#include "gc/gc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <dlfcn.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

_Thread_local int gm_rt_depth __attribute__((tls_model("initial-exec")));
_Thread_local int gm_rt_pending __attribute__((tls_model("initial-exec")));

_Atomic uint64_t gc_preempt_signals_a;   /* signals sent */
_Atomic uint64_t gc_preempt_stops_a;     /* handler stopped its thread */
_Atomic uint64_t gc_preempt_deferred_a;  /* handler declined (unsafe point) */
_Atomic uint64_t gc_preempt_handled_a;   /* every run of the handler for gomap's signal */
_Atomic uint32_t gc_preempt_seq_a;       /* bumped by a handler that stopped (futex) */

extern const char __start_gomap_nopreempt[] __attribute__((weak, visibility("hidden")));
extern const char __stop_gomap_nopreempt[] __attribute__((weak, visibility("hidden")));

typedef struct trange { uintptr_t lo, hi; } trange;
static trange unsafe_text[16];
static int nunsafe;
static struct sigaction old_action;
static _Atomic int installed_a;
static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- futex ----------------------------------------------------------------------- */

static void futex_wait(_Atomic uint32_t *a, uint32_t v, long timeout_ns)
{
    struct timespec ts = { timeout_ns / 1000000000, timeout_ns % 1000000000 };
    syscall(SYS_futex, a, FUTEX_WAIT_PRIVATE, v, timeout_ns ? &ts : NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *a)
{
    syscall(SYS_futex, a, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* ---- where the handler must not stop --------------------------------------------- */

struct find_ctx { uintptr_t addr[6]; int n; uintptr_t ldbase; };

static int text_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct find_ctx *c = arg;
    (void)size;
    bool unsafe = c->ldbase && info->dlpi_addr == c->ldbase;
    for (int i = 0; i < info->dlpi_phnum && !unsafe; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + p->p_vaddr, hi = lo + p->p_memsz;
        for (int k = 0; k < c->n; k++)
            if (c->addr[k] >= lo && c->addr[k] < hi) unsafe = true;
    }
    if (!unsafe) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD || !(p->p_flags & PF_X)) continue;
        if (nunsafe < (int)(sizeof unsafe_text / sizeof unsafe_text[0]))
            unsafe_text[nunsafe++] = (trange){ info->dlpi_addr + p->p_vaddr,
                                               info->dlpi_addr + p->p_vaddr + p->p_memsz };
    }
    return 0;
}

static void find_unsafe_text(void)
{
    struct find_ctx c = { .n = 0, .ldbase = (uintptr_t)getauxval(AT_BASE) };
    static const char *const names[] = { "malloc", "free", "pthread_mutex_lock", "fwrite", "dl_iterate_phdr", "memcpy" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *a = dlsym(RTLD_DEFAULT, names[i]);
        if (a) c.addr[c.n++] = (uintptr_t)a;
    }
    dl_iterate_phdr(text_cb, &c);
}

static bool pc_in(uintptr_t pc, uintptr_t lo, uintptr_t hi) { return pc >= lo && pc < hi; }

static uintptr_t ctx_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

/* At a system call: about to (re)start one, or just interrupted out of one. */
static bool at_syscall(const ucontext_t *uc, uintptr_t pc)
{
#if defined(__x86_64__)
    const uint8_t *p = (const uint8_t *)pc;
    if (p[0] == 0x0f && p[1] == 0x05) return true;
    return p[-2] == 0x0f && p[-1] == 0x05 && uc->uc_mcontext.gregs[REG_RAX] == -EINTR;
#elif defined(__aarch64__)
    const uint32_t *p = (const uint32_t *)pc;
    if (p[0] == 0xd4000001u) return true;
    return p[-1] == 0xd4000001u && (long)uc->uc_mcontext.regs[0] == -EINTR;
#else
    (void)uc;
    (void)pc;
    return false;
#endif
}

static bool unsafe_pc(const ucontext_t *uc)
{
    uintptr_t pc = ctx_pc(uc);
    if (pc == 0) return true;
    if (pc_in(pc, (uintptr_t)__start_gomap_nopreempt, (uintptr_t)__stop_gomap_nopreempt)) return true;
    for (int i = 0; i < nunsafe; i++)
        if (pc_in(pc, unsafe_text[i].lo, unsafe_text[i].hi)) return !at_syscall(uc, pc);
    return false;
}

/* ---- the handler ------------------------------------------------------------------- */

static void chain(int sig, siginfo_t *si, void *uc)
{
    if (old_action.sa_flags & SA_SIGINFO) {
        if (old_action.sa_sigaction) old_action.sa_sigaction(sig, si, uc);
    } else if (old_action.sa_handler != SIG_DFL && old_action.sa_handler != SIG_IGN &&
               old_action.sa_handler) {
        old_action.sa_handler(sig);
    }
}

static void decline(gc_thread *t)
{
    uint32_t e = PSIG_SENT;
    atomic_compare_exchange_strong(&t->psig_a, &e, PSIG_NONE);
    atomic_fetch_add_explicit(&gc_preempt_deferred_a, 1, memory_order_relaxed);
}

__attribute__((noinline)) static void stop_here(gc_thread *t)
{
    gc_save_regs(t->regs);
    t->saved_sp = gc_current_sp();
    uint32_t e = PSIG_SENT;
    if (!atomic_compare_exchange_strong(&t->psig_a, &e, PSIG_STOPPED)) {
        atomic_store(&t->psig_a, PSIG_NONE);     /* withdrawn: the world restarted */
        return;
    }
    atomic_fetch_add_explicit(&gc_preempt_stops_a, 1, memory_order_relaxed);
    atomic_fetch_add(&gc_preempt_seq_a, 1);
    futex_wake(&gc_preempt_seq_a);
    while (atomic_load(&t->psig_a) == PSIG_STOPPED) futex_wait(&t->psig_a, PSIG_STOPPED, 0);
    atomic_store(&t->psig_a, PSIG_NONE);
}

static void handler(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    gc_thread *t = gc_self;
    if (!t || atomic_load(&t->psig_a) != PSIG_SENT) {
        chain(sig, si, ucv);
        errno = saved_errno;
        return;
    }
    atomic_fetch_add_explicit(&gc_preempt_handled_a, 1, memory_order_relaxed);
    if (__atomic_load_n(&gm_rt_depth, __ATOMIC_RELAXED) > 0) {
        __atomic_store_n(&gm_rt_pending, 1, __ATOMIC_RELAXED);
        decline(t);
    } else if (t->blocking_depth > 0 || unsafe_pc(ucv)) {
        decline(t);
    } else {
        stop_here(t);
    }
    errno = saved_errno;
}

/* At gc_init, world running and no lock held: the loader's lock is taken
 * here, never later under world_mu. */
void gc_preempt_init(void)
{
    if (gc_opt.preemptsig) find_unsafe_text();
}

/* A stop was deferred inside gomap and the thread left it at an allocation. */
void gm_rt_pending_slow(void)
{
    __atomic_store_n(&gm_rt_pending, 0, __ATOMIC_RELAXED);
    gc_thread *t = gc_self;
    if (t && t->blocking_depth == 0 && atomic_load_explicit(&gc_poll_a, memory_order_relaxed))
        gc_poll_slow(t);
}

static bool install(void)
{
    if (atomic_load_explicit(&installed_a, memory_order_acquire)) return true;
    pthread_mutex_lock(&install_mu);
    if (!atomic_load(&installed_a)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(gc_opt.preemptsig, &sa, &old_action) == 0) atomic_store(&installed_a, 1);
        else gm_errorf("cannot install the preemption signal handler (signal %d): %s",
                       gc_opt.preemptsig, strerror(errno));
    }
    pthread_mutex_unlock(&install_mu);
    return atomic_load(&installed_a);
}

/* ---- the collector's side -------------------------------------------------------- */

static uint64_t thread_cpu_ns(gc_thread *t)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(t->pth, &cid) != 0 || clock_gettime(cid, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 'S' if t sleeps interruptibly in the kernel, '?' if unknown. */
static char thread_state(gc_thread *t)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)t->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return '?';
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return '?';
    buf[n] = 0;
    const char *p = strrchr(buf, ')');     /* the name may hold spaces and parens */
    return p && p[1] == ' ' ? p[2] : '?';
}

/* Under world_mu.  waited_ns: how long this stop (or stack-scan wait) has
 * lasted; gen: which wait (the first look at t in a wait takes its CPU
 * baseline).  Returns the number of signals sent. */
int gc_preempt_poke(gc_thread *t, uint64_t waited_ns, uint64_t gen)
{
    if (!gc_opt.preemptsig || t->internal || t == gc_self) return 0;
    if (atomic_load_explicit(&t->psig_a, memory_order_acquire) != PSIG_NONE) return 0;
    if (__atomic_load_n(t->rt_depth_p, __ATOMIC_RELAXED) > 0) return 0;   /* inside gomap: a hint */
    uint64_t cpu = thread_cpu_ns(t);
    if (t->cpu0_gen != gen) {
        t->cpu0 = cpu;
        t->cpu0_gen = gen;
    }
    uint64_t grace = (uint64_t)gc_opt.preemptgrace_ms * 1000000u;
    bool spinning = cpu - t->cpu0 >= grace && cpu != 0;
    bool sleeping = false;
    if (!spinning && (t->preempted_before || waited_ns >= grace)) sleeping = thread_state(t) == 'S';
    if (!spinning && !(sleeping && (t->preempted_before || waited_ns >= grace))) return 0;
    if (!install()) return 0;
    atomic_store_explicit(&t->psig_a, PSIG_SENT, memory_order_release);
    if (pthread_kill(t->pth, gc_opt.preemptsig) != 0) {
        atomic_store(&t->psig_a, PSIG_NONE);
        return 0;
    }
    t->preempted_before = true;
    atomic_fetch_add_explicit(&gc_preempt_signals_a, 1, memory_order_relaxed);
    return 1;
}

/* Under world_mu: t no longer needs to stay stopped. */
void gc_preempt_release(gc_thread *t)
{
    uint32_t v = atomic_load(&t->psig_a);
    if (v == PSIG_NONE || v == PSIG_RELEASED) return;
    atomic_store(&t->psig_a, PSIG_RELEASED);
    if (v == PSIG_STOPPED) futex_wake(&t->psig_a);
}

bool gc_preempt_stopped(gc_thread *t)
{
    return atomic_load_explicit(&t->psig_a, memory_order_acquire) == PSIG_STOPPED;
}

/* Waits (world_mu NOT held) up to us microseconds for a handler to stop. */
void gc_preempt_wait(unsigned us)
{
    uint32_t seq = atomic_load(&gc_preempt_seq_a);
    futex_wait(&gc_preempt_seq_a, seq, (long)us * 1000);
}
