/* gomap/sync.h - Go's sync package and runtime semaphores for C threads.
 *
 *   gm_sema_*      runtime semacquire/semrelease: a counting semaphore on any
 *                  uint32_t, waiters parked on futexes (src/sync/sema.c)
 *   gm_mutex       sync.Mutex: spinning, normal and starvation mode
 *   gm_rwmutex     sync.RWMutex: writer preference
 *   gm_once        sync.Once
 *   gm_waitgroup   sync.WaitGroup
 *   gm_syncmap     sync.Map over fixed-size keys and values, built on gm_map
 *
 * The lock types are defined here so that they can live inside user structs;
 * their zero value (`gm_mutex mu = {0};`, or memset 0) is ready to use.  Their
 * fields are private: every one is accessed atomically by the library (the
 * `_a` suffix marks an atomic field).  A lock must not be copied once used.
 *
 * Misuse that Go makes fatal is fatal here with Go's words, printed as
 * "fatal error: <message>" before abort():
 *   sync: unlock of unlocked mutex          gm_mutex_unlock
 *   sync: RUnlock of unlocked RWMutex       gm_rwmutex_runlock
 *   sync: Unlock of unlocked RWMutex        gm_rwmutex_unlock
 *   sync: negative WaitGroup counter        gm_waitgroup_add / _done
 *   sync: WaitGroup misuse: Add called concurrently with Wait
 *   sync: WaitGroup is reused before previous Wait has returned
 *   sync: inconsistent mutex state          a corrupted gm_mutex
 */
#ifndef GOMAP_SYNC_H
#define GOMAP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gomap/config.h"
#include "gomap/type.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- semaphores (runtime/sema.go) -------------------------------------- */

/* Waits until *addr > 0, then decrements it.  FIFO among waiters on addr. */
GM_API void gm_sema_acquire(uint32_t *addr);
/* Increments *addr and wakes the oldest waiter on addr, if any. */
GM_API void gm_sema_release(uint32_t *addr);
/* The variants the mutex uses.  lifo: queue at the head of addr's waiters
 * (a waiter that was already woken once and lost the race).  handoff: give
 * the count directly to the woken waiter, so that no thread running now can
 * take it first (the mutex's starvation mode). */
GM_API void gm_sema_acquire_ex(uint32_t *addr, bool lifo);
GM_API void gm_sema_release_ex(uint32_t *addr, bool handoff);
/* For tests: threads queued on addr right now; and a check of every
 * invariant of the semaphore table (NULL when all hold, else what broke). */
GM_API size_t gm_sema_waiters(const uint32_t *addr);
GM_API const char *gm_sema_check(void);

/* ---- sync.Mutex --------------------------------------------------------- */

typedef struct gm_mutex {
    int32_t state_a;    /* locked | woken | starving bits, waiter count above */
    uint32_t sema_a;    /* semaphore the waiters sleep on */
} gm_mutex;
#define GM_MUTEX_INIT { 0, 0 }

GM_API void gm_mutex_lock(gm_mutex *m);
GM_API bool gm_mutex_trylock(gm_mutex *m);
GM_API void gm_mutex_unlock(gm_mutex *m);

/* ---- sync.RWMutex ------------------------------------------------------- */

typedef struct gm_rwmutex {
    gm_mutex w;              /* held by the writer that holds or waits */
    uint32_t writer_sem_a;   /* the writer waits here for departing readers */
    uint32_t reader_sem_a;   /* readers wait here for the writer */
    int32_t reader_count_a;  /* readers holding or waiting; minus 2^30 while a writer is pending */
    int32_t reader_wait_a;   /* readers the pending writer still waits for */
} gm_rwmutex;
#define GM_RWMUTEX_INIT { GM_MUTEX_INIT, 0, 0, 0, 0 }

GM_API void gm_rwmutex_rlock(gm_rwmutex *rw);
GM_API bool gm_rwmutex_tryrlock(gm_rwmutex *rw);
GM_API void gm_rwmutex_runlock(gm_rwmutex *rw);
GM_API void gm_rwmutex_lock(gm_rwmutex *rw);
GM_API bool gm_rwmutex_trylock(gm_rwmutex *rw);
GM_API void gm_rwmutex_unlock(gm_rwmutex *rw);

/* ---- sync.Once ---------------------------------------------------------- */

typedef struct gm_once {
    uint32_t done_a;    /* 1 once fn has returned */
    gm_mutex m;
} gm_once;
#define GM_ONCE_INIT { 0, GM_MUTEX_INIT }

/* Calls fn(arg) if and only if no gm_once_do on o has called fn before; every
 * call returns after fn has returned.  fn must not call gm_once_do(o): that
 * deadlocks, as in Go. */
GM_API void gm_once_do(gm_once *o, void (*fn)(void *), void *arg);

/* ---- sync.WaitGroup ----------------------------------------------------- */

typedef struct gm_waitgroup {
    uint64_t state_a;   /* counter in the high 32 bits, waiters in the low 32 */
    uint32_t sema_a;
} gm_waitgroup;
#define GM_WAITGROUP_INIT { 0, 0 }

GM_API void gm_waitgroup_add(gm_waitgroup *wg, int64_t delta);
GM_API void gm_waitgroup_done(gm_waitgroup *wg);
GM_API void gm_waitgroup_wait(gm_waitgroup *wg);

/* ---- sync.Map ------------------------------------------------------------
 * A map safe for concurrent use, for keys that are written once and read many
 * times, or keys that disjoint threads own: Load, and Store/Swap/CAS of a key
 * already present, take no lock.  Keys and values are copied in and out by
 * value (key->size and val->size bytes); the key type needs hash and equal.
 * CompareAndSwap/CompareAndDelete compare values with val->equal, or bytewise
 * when it is NULL.  Range's callback sees a key and a value that stay valid
 * for the call; it may call any gm_syncmap function, on this map too.
 * Memory: on malloc; replaced values, deleted entries and retired read-only
 * maps are freed once no thread can still be reading them (epoch-based
 * reclamation, see src/sync/ebr.c).  gm_syncmap_new returns NULL (errno set,
 * message on stderr) when the types are unusable or memory is short; a
 * write that cannot get memory is fatal ("runtime: out of memory").
 *
 * On the GC heap (gomap/gc.h): gm_syncmap_new_gc makes a sync.Map that is
 * itself a GC object, as are its entries, value boxes and maps
 * (gm_map_new_gc): it lives while reachable, gm_syncmap_free does nothing
 * for it, and keys and values whose types have a ptrmask keep what they
 * point to alive (gm_type_str keys: their bytes).  Every call on it is a
 * safepoint and attaches the calling thread, as an allocation does.
 * val_out/prev_out/actual_out may point into GC objects: values holding
 * pointers are copied out with gm_typed_memmove. */

typedef struct gm_syncmap gm_syncmap;

GM_API gm_syncmap *gm_syncmap_new(const gm_type *key, const gm_type *val);
GM_API gm_syncmap *gm_syncmap_new_gc(const gm_type *key, const gm_type *val);
GM_API void gm_syncmap_free(gm_syncmap *m);
GM_API bool gm_syncmap_load(gm_syncmap *m, const void *key, void *val_out);
GM_API void gm_syncmap_store(gm_syncmap *m, const void *key, const void *val);
GM_API bool gm_syncmap_load_or_store(gm_syncmap *m, const void *key, const void *val, void *actual_out);
GM_API bool gm_syncmap_load_and_delete(gm_syncmap *m, const void *key, void *val_out);
GM_API void gm_syncmap_delete(gm_syncmap *m, const void *key);
GM_API bool gm_syncmap_swap(gm_syncmap *m, const void *key, const void *val, void *prev_out);
GM_API bool gm_syncmap_compare_and_swap(gm_syncmap *m, const void *key, const void *old, const void *new_);
GM_API bool gm_syncmap_compare_and_delete(gm_syncmap *m, const void *key, const void *old);
GM_API void gm_syncmap_range(gm_syncmap *m, bool (*fn)(const void *key, const void *val, void *arg), void *arg);
GM_API void gm_syncmap_clear(gm_syncmap *m);

/* ---- type-safe layer ------------------------------------------------------
 *
 *   GM_SYNCMAP_DEFINE(sessions, uint64_t, struct session, gm_type_u64)
 *
 * declares `sessions` (an opaque gm_syncmap of uint64_t -> struct session) and
 *   sessions *sessions_new(void);          void sessions_free(sessions *);
 *   bool sessions_load(sessions *, K k, V *out);     void sessions_store(sessions *, K, V);
 *   bool sessions_load_or_store(sessions *, K, V v, V *actual);
 *   bool sessions_load_and_delete(sessions *, K, V *out);  void sessions_delete(sessions *, K);
 *   bool sessions_swap(sessions *, K, V v, V *prev);
 *   bool sessions_compare_and_swap(sessions *, K, V old, V new_);
 *   bool sessions_compare_and_delete(sessions *, K, V old);
 *   void sessions_clear(sessions *);        gm_syncmap *sessions_raw(sessions *);
 * V is compared bytewise by the compare_ functions (mind struct padding:
 * zero it, or use gm_syncmap with a value type that has `equal`).  Out
 * pointers may be NULL.  Range: gm_syncmap_range(sessions_raw(m), ...).
 * ------------------------------------------------------------------------ */
#define GM_SYNCMAP_DEFINE(name, K, V, keytype)                                  \
    typedef struct name name;                                                  \
    static const gm_type name##_val_type_ = { sizeof(V), _Alignof(V), NULL,    \
        NULL, NULL, 0, #V, NULL };                                                 \
    static inline gm_syncmap *name##_raw(name *m)                              \
    { return (gm_syncmap *)(void *)m; }                                        \
    static inline name *name##_new(void)                                       \
    { return (name *)(void *)gm_syncmap_new(&(keytype), &name##_val_type_); }  \
    static inline void name##_free(name *m) { gm_syncmap_free(name##_raw(m)); }\
    static inline bool name##_load(name *m, K key, V *out)                     \
    { return gm_syncmap_load(name##_raw(m), &key, out); }                      \
    static inline void name##_store(name *m, K key, V val)                     \
    { gm_syncmap_store(name##_raw(m), &key, &val); }                           \
    static inline bool name##_load_or_store(name *m, K key, V val, V *actual)  \
    { return gm_syncmap_load_or_store(name##_raw(m), &key, &val, actual); }    \
    static inline bool name##_load_and_delete(name *m, K key, V *out)          \
    { return gm_syncmap_load_and_delete(name##_raw(m), &key, out); }           \
    static inline void name##_delete(name *m, K key)                           \
    { gm_syncmap_delete(name##_raw(m), &key); }                                \
    static inline bool name##_swap(name *m, K key, V val, V *prev)             \
    { return gm_syncmap_swap(name##_raw(m), &key, &val, prev); }               \
    static inline bool name##_compare_and_swap(name *m, K key, V old, V new_)  \
    { return gm_syncmap_compare_and_swap(name##_raw(m), &key, &old, &new_); }  \
    static inline bool name##_compare_and_delete(name *m, K key, V old)        \
    { return gm_syncmap_compare_and_delete(name##_raw(m), &key, &old); }       \
    static inline void name##_clear(name *m) { gm_syncmap_clear(name##_raw(m)); } \
    typedef int name##_define_ends_here_

/* ---- introspection ------------------------------------------------------ */

/* Process-wide event counters, for tests and tuning (relaxed, monotonic).
 * They count slow-path events only; the fast paths touch none of them. */
typedef struct gm_sync_stats {
    uint64_t sema_sleeps;          /* threads parked in gm_sema_acquire */
    uint64_t sema_handoffs;        /* releases that handed the count to the woken waiter */
    uint64_t mutex_starving_enter; /* waiters that switched a mutex to starvation mode */
    uint64_t mutex_starving_exit;  /* acquisitions that switched it back to normal */
    uint64_t mutex_handoff_acquires; /* locks acquired by direct handoff */
    uint64_t syncmap_promotions;   /* dirty maps promoted to read-only by misses */
    uint64_t syncmap_dirty_builds; /* dirty maps rebuilt from the read-only map */
    uint64_t ebr_epochs;           /* reclamation epochs advanced */
    uint64_t ebr_membarriers;      /* of which paid with membarrier (asymmetric fence) */
    uint64_t ebr_retired;          /* objects handed to reclamation */
    uint64_t ebr_freed;            /* objects freed by reclamation */
} gm_sync_stats;
GM_API void gm_sync_stats_get(gm_sync_stats *out);

/* Frees now whatever the reclamation of gm_syncmap can free: objects retired
 * before the call, unless a thread is inside a gm_syncmap call (or a Range
 * callback) that began before they were retired.  Never needed for
 * correctness: it happens on its own every few dozen retirements per thread. */
GM_API void gm_sync_reclaim(void);

/* Inspection of a gm_syncmap for tests: lengths of the read-only and dirty
 * maps, whether the read-only map is amended, and the miss counter.  Takes
 * the map's mutex. */
typedef struct gm_syncmap_stats {
    size_t read_len, dirty_len;
    bool amended, has_dirty;
    size_t misses;
} gm_syncmap_stats;
GM_API void gm_syncmap_stats_get(gm_syncmap *m, gm_syncmap_stats *out);
/* Verifies the invariants of the read/dirty pair (see src/sync/syncmap.c)
 * under the map's mutex; safe while other threads use the map.  NULL when
 * all hold, else the first violation (thread-local, valid until the next
 * call on this thread). */
GM_API const char *gm_syncmap_check(gm_syncmap *m);

#ifdef __cplusplus
}
#endif
#endif
