/* internal.h - helpers shared by every subsystem (not installed).
 *
 * Error model (one per layer):
 *   gm_fatal(msg)    misuse that Go makes fatal, or broken internal state:
 *                    prints "fatal error: <msg>" on stderr and abort()s.
 *   gm_errorf(...)   a recoverable problem the caller is told about (bad
 *                    argument, bad environment value): "gomap: ..." on stderr,
 *                    then the API returns NULL/false/-1 as documented.
 */
#ifndef GOMAP_INTERNAL_H
#define GOMAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gomap/config.h"

#define GM_INTERNAL __attribute__((visibility("hidden")))
#define GM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Fatal with Go's wording.  Exported so tests of every subsystem can see the
 * same function, but not part of the public headers. */
GM_API GM_NORETURN void gm_fatal(const char *msg);
GM_API GM_NORETURN void gm_fatalf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
GM_INTERNAL void gm_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Randomness.  gm_rand_seed64 reads the kernel (getrandom); gm_rand64 is a
 * fast per-thread generator seeded from it (Go's fastrand). */
GM_INTERNAL uint64_t gm_rand_seed64(void);
GM_API uint64_t gm_rand64(void);

/* Assertion levels (mimalloc's three): GM_ASSERT is cheap and on in debug
 * builds; GM_ASSERT_EXPENSIVE only with GOMAP_EXPENSIVE_CHECKS. */
#ifndef NDEBUG
#define GM_ASSERT(c) do { if (GM_UNLIKELY(!(c))) gm_fatalf("assertion failed: %s (%s:%d)", #c, __FILE__, __LINE__); } while (0)
#else
#define GM_ASSERT(c) ((void)0)
#endif
#ifdef GOMAP_EXPENSIVE_CHECKS
#define GM_ASSERT_EXPENSIVE(c) GM_ASSERT(c)
#else
#define GM_ASSERT_EXPENSIVE(c) ((void)0)
#endif

/* IN-RUNTIME DEPTH (src/gc/preempt.c).  A thread the collector stops with a
 * signal (GMDEBUG=preemptsig) must not be stopped while it holds one of
 * gomap's locks, or mid-allocation: the collector would then wait for that
 * lock with the world stopped.  gm_rt_depth counts how deep the calling
 * thread is inside such a section; the signal handler defers while it is
 * non-zero and the collector signals again a little later (an allocation
 * that ends at depth zero with a deferred stop pending parks right away).  Inside the library every pthread_mutex_lock /
 * unlock goes through gm_mutex_lock_ / gm_mutex_unlock_ (the macros below),
 * so every internal lock is covered without touching its call sites.  Plain
 * loads and stores (relaxed atomics, for TSan): only the owning thread and
 * its own signal handler write it. */
#ifdef GOMAP_BUILDING
#include <pthread.h>
#include <stdatomic.h>
extern _Thread_local int gm_rt_depth __attribute__((tls_model("initial-exec"), visibility("hidden")));
extern _Thread_local int gm_rt_pending __attribute__((tls_model("initial-exec"), visibility("hidden")));
GM_INTERNAL void gm_rt_pending_slow(void);
static inline void gm_rt_enter(void)
{
    __atomic_store_n(&gm_rt_depth, __atomic_load_n(&gm_rt_depth, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
}
static inline void gm_rt_leave(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    __atomic_store_n(&gm_rt_depth, __atomic_load_n(&gm_rt_depth, __ATOMIC_RELAXED) - 1, __ATOMIC_RELAXED);
}
/* The end of an allocation: a safe place to stop if a signal was deferred. */
static inline void gm_rt_leave_safepoint(void)
{
    gm_rt_leave();
    atomic_signal_fence(memory_order_seq_cst);
    if (GM_UNLIKELY(__atomic_load_n(&gm_rt_pending, __ATOMIC_RELAXED)) &&
        __atomic_load_n(&gm_rt_depth, __ATOMIC_RELAXED) == 0)
        gm_rt_pending_slow();
}
static inline int gm_mutex_lock_(pthread_mutex_t *m)
{
    gm_rt_enter();
    return (pthread_mutex_lock)(m);
}
static inline int gm_mutex_unlock_(pthread_mutex_t *m)
{
    int r = (pthread_mutex_unlock)(m);
    gm_rt_leave();
    return r;
}
#define pthread_mutex_lock(m) gm_mutex_lock_(m)
#define pthread_mutex_unlock(m) gm_mutex_unlock_(m)
#endif

#endif
