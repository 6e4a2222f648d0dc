/* gomap/gc.h - the garbage-collected heap (Go's runtime/malloc.go, mgc.go).
 *
 * Objects are allocated with gm_new / gm_new_array (typed: scanned precisely
 * by the type's ptrmask), gm_alloc_noscan (never scanned) or
 * gm_alloc_conservative (every aligned word may be a pointer).  Memory is
 * zeroed.  Objects never move.  An object stays alive while it is reachable
 * from a root: the stacks and saved registers of attached threads (scanned
 * conservatively), ranges registered with gm_root_add, and the library's own
 * tables (finalizer queue, ...).  Pointers into the middle of an object keep
 * the whole object alive.
 *
 * Threads.  A thread that touches GC pointers is a mutator.  It is attached
 * by gm_thread_attach() (or automatically, the first time it calls an
 * allocation, gm_gc or gm_safepoint; an automatically attached thread is
 * detached when it exits).  The collector stops the world cooperatively, with
 * no signals: every allocation polls, a long loop that does not allocate
 * calls gm_safepoint(), and a call that may block (I/O, lock waits, sleeps)
 * is wrapped in gm_blocking_begin/end, during which the thread must not touch
 * the GC heap.  A thread that fails to reach a safepoint within the bound
 * (GMDEBUG=stoptimeout=<ms>, default 20000) is named on stderr and the
 * process stops with a fatal error rather than hanging silently.
 *
 * Environment: GMGC (GOGC: percent or "off"), GMMEMLIMIT (GOMEMLIMIT, e.g.
 * "512MiB"), GMDEBUG (GODEBUG syntax): gctrace=1, gcstress=N (collect at
 * every Nth allocation/safepoint), clobberfree=1, stoptimeout=<ms>,
 * gccheckmark=1 (verify the heap after every cycle).
 */
#ifndef GOMAP_GC_H
#define GOMAP_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gomap/config.h"
#include "gomap/type.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- threads ------------------------------------------------------------ */
GM_API void gm_thread_attach(void);   /* this thread's stack and registers become roots */
GM_API void gm_thread_detach(void);   /* must balance gm_thread_attach */
GM_API void gm_safepoint(void);       /* a long loop that does not allocate calls this */
GM_API void gm_blocking_begin(void);  /* around a call that may block (entersyscall) */
GM_API void gm_blocking_end(void);    /* exitsyscall: waits while the world is stopped */

/* ---- allocation (mallocgc) ---------------------------------------------- */
GM_API void *gm_new(const gm_type *t);                 /* new(T): zeroed, scanned precisely */
GM_API void *gm_new_array(const gm_type *t, size_t n); /* make([]T, n) backing store */
GM_API void *gm_alloc_noscan(size_t size);             /* pointer-free memory, never scanned */
GM_API void *gm_alloc_conservative(size_t size);       /* every aligned word may be a pointer */

/* ---- write barrier entry points (plain stores while the world is STW) ---- */
GM_API void gm_store(void *slot, void *ptr);            /* *(void **)slot = ptr, with the write barrier */
GM_API void gm_typed_memmove(const gm_type *t, void *dst, const void *src); /* typedmemmove */
GM_API void gm_typed_memclr(const gm_type *t, void *dst);                   /* memclrHasPointers */
/* Atomic pointer slots (Go's atomic.Pointer / StorePointer): the same barrier,
 * then a sequentially consistent store, exchange or compare-and-swap. */
GM_API void  gm_atomic_store(void *slot, void *ptr);
GM_API void *gm_atomic_swap(void *slot, void *ptr);            /* returns the old pointer */
GM_API bool  gm_atomic_cas(void *slot, void *old, void *ptr);  /* true if *slot was old */

/* ---- roots -------------------------------------------------------------- */
GM_API void gm_root_add(void *start, size_t len);     /* a global or malloc'd range holding GC pointers */
GM_API void gm_root_remove(void *start);              /* by the start given to gm_root_add */

/* ---- collection and pacing ---------------------------------------------- */
GM_API void    gm_gc(void);                 /* runtime.GC(): a full cycle, returns when swept */
GM_API int     gm_gc_percent(int percent);  /* debug.SetGCPercent; <0 turns GC off; returns old */
GM_API int64_t gm_memory_limit(int64_t bytes); /* debug.SetMemoryLimit; <0 only reads; returns old */
GM_API void    gm_free_os_memory(void);     /* debug.FreeOSMemory: collect, return free pages */

/* ---- finalizers, cleanups, weak pointers --------------------------------- */
/* runtime.SetFinalizer: obj must be the start of a GC object; fn NULL clears.
 * fn runs on the finalizer thread, one at a time, once obj is unreachable;
 * obj is reachable again while fn runs and is freed by a later cycle. */
GM_API void gm_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg);
GM_API void gm_keep_alive(const void *p);   /* runtime.KeepAlive */
/* Blocks until every finalizer and cleanup queued so far has run (a testing
 * and shutdown aid; not in Go). */
GM_API void gm_finalizers_wait(void);

/* runtime.AddCleanup (Go 1.24): fn(arg) runs on the finalizer thread after
 * obj becomes unreachable; obj is not resurrected; several per object.  arg
 * must not be obj (it would keep obj alive forever; fatal). */
typedef struct gm_cleanup { uintptr_t hidden_obj; uint64_t id; } gm_cleanup;
GM_API gm_cleanup gm_add_cleanup(void *obj, void (*fn)(void *arg), void *arg);
GM_API void gm_cleanup_stop(gm_cleanup c);   /* Cleanup.Stop: no-op if it already ran */

/* weak.Pointer (Go 1.24).  gm_weak_make returns a handle, itself a GC object
 * (keep it reachable like any other); the same handle for the same pointer.
 * gm_weak_get returns the pointer, or NULL once the object has become
 * unreachable (already when its finalizer is queued). */
typedef struct gm_weak gm_weak;
GM_API gm_weak *gm_weak_make(void *p);
GM_API void    *gm_weak_get(const gm_weak *w);

/* ---- statistics --------------------------------------------------------- */
#define GM_NUM_SIZE_CLASSES 68   /* class 0 = large objects */

typedef struct gm_memstats {
    /* general */
    uint64_t alloc;          /* bytes of allocated heap objects (= heap_alloc) */
    uint64_t total_alloc;    /* cumulative bytes allocated */
    uint64_t sys;            /* bytes obtained from the OS */
    uint64_t lookups;        /* always 0 (as in Go) */
    uint64_t mallocs;        /* cumulative objects allocated */
    uint64_t frees;          /* cumulative objects freed */
    /* heap */
    uint64_t heap_alloc, heap_sys, heap_idle, heap_inuse, heap_released, heap_objects;
    /* off-heap metadata */
    uint64_t stack_inuse, stack_sys, mspan_inuse, mspan_sys, mcache_inuse, mcache_sys,
             buck_hash_sys, gc_sys, other_sys;
    /* collector */
    uint64_t next_gc;        /* heap goal of the next cycle */
    uint64_t last_gc;        /* end of the last cycle, ns since the Unix epoch */
    uint64_t pause_total_ns;
    uint64_t pause_ns[256];  /* circular: most recent at [(num_gc+255)%256] */
    uint64_t pause_end[256]; /* ns since the Unix epoch */
    uint32_t num_gc, num_forced_gc;
    double   gc_cpu_fraction;
    bool     enable_gc, debug_gc;
    struct { uint32_t size; uint64_t mallocs, frees; } by_size[GM_NUM_SIZE_CLASSES];
    /* not in Go: concurrent-mark work, in bytes of objects scanned */
    uint64_t gc_assist_work;   /* by mark assists of allocating threads */
    uint64_t gc_bg_work;       /* by the background mark worker */
    uint64_t gc_num_assists;   /* assists that did scan work */
    uint64_t gc_wb_shades;     /* heap pointers the write barrier recorded while marking */
    uint64_t gc_preempt_signals; /* preemption signals sent to threads that missed safepoints */
    uint64_t gc_preempt_stops;   /* ... that stopped their thread (the others hit an unsafe point) */
} gm_memstats;

GM_API void gm_read_memstats(gm_memstats *out);  /* runtime.ReadMemStats */

/* Stop-the-world pause histogram (runtime/metrics /gc/pauses:seconds).
 * Bucket i counts pauses d with lower(i) <= d < lower(i+1) nanoseconds:
 * 16 buckets per power of two, so a bucket is at most 1/16 wide. */
#define GM_PAUSE_BUCKETS 640
GM_API void     gm_read_pause_histogram(uint64_t counts[GM_PAUSE_BUCKETS]);
GM_API uint64_t gm_pause_bucket_lower_ns(unsigned bucket);
/* The pause (ns, a bucket's upper bound) below which a fraction q of all
 * pauses so far lie; 0 if there was no pause. */
GM_API uint64_t gm_pause_quantile_ns(double q);

/* ---- debugging ---------------------------------------------------------- */
/* Stops the world, walks every span and free run and checks the heap's
 * invariants (counts, bitmaps, page map, lists, statistics).  Returns the
 * number of violations, each described on stderr; 0 for a sound heap. */
GM_API size_t gm_heap_verify(void);

#ifdef __cplusplus
}
#endif
#endif
