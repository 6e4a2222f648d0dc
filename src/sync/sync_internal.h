/* sync_internal.h - what the files of src/sync share (not installed).
 *
 * Atomics.  Every shared word is touched through the helpers below, whose
 * names carry the memory order; fields that are accessed atomically end in
 * `_a`.  The public structs (gomap/sync.h) hold plain integers so that they
 * can be included from C++ and zero-initialised; the GCC __atomic builtins
 * work on plain objects, and ThreadSanitizer understands them.
 *
 * Lock order (the only one in src/sync):
 *     gm_once.m  ->  whatever the user's fn takes  ->  gm_syncmap.mu
 *         ->  sema root lock
 * gm_rwmutex.w is taken before the rwmutex's semaphores, like any mutex.
 * A sema root lock is a leaf: nothing is taken while holding it, and no user
 * code runs under it.  The EBR registry (ebr.c) is lock-free.  Range's
 * callback runs with no gomap lock held.
 */
#ifndef GOMAP_SYNC_INTERNAL_H
#define GOMAP_SYNC_INTERNAL_H

#include "common/internal.h"
#include "gomap/sync.h"

/* ---- atomics with their order in the name ------------------------------ */
#define at_load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define at_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define at_load_seqcst(p)       __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define at_store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define at_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define at_store_seqcst(p, v)   __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define at_add_relaxed(p, v)    __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define at_add_acqrel(p, v)     __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define at_add_seqcst(p, v)     __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define at_xchg_acqrel(p, v)    __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
#define at_xchg_seqcst(p, v)    __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
/* Strong CAS; on failure *expected gets the current value. */
#define at_cas_acqrel(p, expected, desired)                                    \
    __atomic_compare_exchange_n((p), (expected), (desired), false,             \
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define at_cas_acquire(p, expected, desired)                                   \
    __atomic_compare_exchange_n((p), (expected), (desired), false,             \
                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
#define at_cas_seqcst(p, expected, desired)                                    \
    __atomic_compare_exchange_n((p), (expected), (desired), false,             \
                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

/* One pause of a spin-wait loop (x86 PAUSE, arm YIELD). */
static inline void gm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- futex -------------------------------------------------------------- */
/* Sleep while *addr == val (spurious returns happen: callers loop). */
GM_INTERNAL void gm_futex_wait(uint32_t *addr, uint32_t val);
GM_INTERNAL void gm_futex_wake(uint32_t *addr, int n);

/* ---- gm_lock: the internal futex lock (Drepper's three-state mutex) ------
 * key_a: 0 unlocked, 1 locked, 2 locked and a thread may sleep on it.
 * Zero value unlocked.  Used for the sema roots and the EBR registry, where
 * critical sections are a few dozen instructions. */
typedef struct gm_lock { uint32_t key_a; } gm_lock;
GM_INTERNAL void gm_lock_slow(gm_lock *l);
static inline void gm_lock_acquire(gm_lock *l)
{
    uint32_t zero = 0;
    if (GM_LIKELY(at_cas_acquire(&l->key_a, &zero, 1))) return;
    gm_lock_slow(l);
}
static inline void gm_lock_release(gm_lock *l)
{
    if (GM_UNLIKELY(__atomic_exchange_n(&l->key_a, 0, __ATOMIC_RELEASE) == 2))
        gm_futex_wake(&l->key_a, 1);
}

/* ---- event counters (gm_sync_stats) ------------------------------------- */
GM_INTERNAL extern gm_sync_stats gm_sync_counters;
#define GM_SYNC_COUNT(field) ((void)at_add_relaxed(&gm_sync_counters.field, 1))
#define GM_SYNC_COUNT_N(field, n) ((void)at_add_relaxed(&gm_sync_counters.field, (n)))

/* Monotonic clock in nanoseconds. */
GM_INTERNAL int64_t gm_nanotime(void);
/* Online CPUs, read once. */
GM_INTERNAL int gm_ncpu(void);

#endif
