/* gomap/gc.h - the garbage-collected heap (Go's runtime/malloc.go, mgc.go).
 *
 * Objects are allocated with gm_new / gm_new_array (typed: scanned precisely
 * by the type's ptrmask, or by its trace function when it has one: see
 * gomap/type.h and docs/gc.md), gm_alloc_noscan (never scanned) or
 * gm_alloc_conservative (every aligned word may be a pointer).  Memory is
 * zeroed.  Objects never move.  An object stays alive while it is reachable
 * from a root: the stacks and saved registers of attached threads (scanned
 * conservatively), ranges registered with gm_root_add, and the library's own
 * tables (finalizer queue, ...).  Pointers into the middle of an object keep
 * the whole object alive.
 *
 * Threads.  A thread that touches GC pointers is a mutator.  It is attached
 * by gm_thread_attach() (or automatically, the first time it calls an
 * allocation, gm_gc, gm_safepoint or gm_weak_get, or stores through the
 * write barrier while the collector marks; an automatically attached thread
 * is detached when it exits).  The collector stops the world cooperatively, with
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
 * gccheckmark=1 (verify the heap after every cycle), heaplimit=<size> (a
 * hard limit on the heap in use), heapreserve=<size> (the address-space
 * reservation, default 64GiB), memprofilerate=N (heap profile sampling,
 * see below).  Inside a blocking section, allocating,
 * gm_gc, gm_safepoint or a barriered store while marking is fatal.
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
/* gm_new / gm_new_array honour t->align (at most 4096); gm_alloc_* return
 * 8-byte aligned memory, 16-byte aligned from 16 bytes on. */

/* ---- out of memory -------------------------------------------------------- */
/* When the heap cannot grow (the hard limit below, the end of the address-
 * space reservation, or the system refuses), an allocation runs a full
 * collection and tries again; then calls the out-of-memory handler, if one
 * is set, and if the handler returns non-zero collects and tries once more.
 * If that fails too, the gm_try_* forms return NULL with errno ENOMEM and
 * the others stop the process ("fatal error: runtime: out of memory: ..."
 * with the reason).  After a NULL the heap is as before the call, less what
 * the collections freed: nothing was allocated, every reachable object is
 * intact, gm_heap_verify() finds nothing wrong, and the call may simply be
 * retried once memory has been let go.  gm_try_new_array also returns NULL
 * (ENOMEM) where gm_new_array stops with "makeslice: len out of range". */
GM_API void *gm_try_new(const gm_type *t);
GM_API void *gm_try_new_array(const gm_type *t, size_t n);
GM_API void *gm_try_alloc_noscan(size_t size);
GM_API void *gm_try_alloc_conservative(size_t size);
/* The handler runs on the allocating thread, with no lock of the library
 * held and at a safepoint; it may drop references (gm_store NULL into
 * roots) and return non-zero to have the allocation collect and retry.  An
 * allocation that fails inside the handler does not call it again.  NULL
 * removes it. */
typedef int (*gm_oom_handler)(size_t request_bytes, void *arg);
GM_API void gm_set_oom_handler(gm_oom_handler fn, void *arg);
/* Hard limit on the heap in use (MemStats.HeapInuse: bytes of spans holding
 * objects), unlike gm_memory_limit's soft goal.  INT64_MAX: no limit (the
 * default, or GMDEBUG=heaplimit=<size>); bytes < 0 only reads.  Returns the
 * old limit.  Lowering it below the heap in use frees nothing by itself:
 * allocations fail until collections bring the heap under it. */
GM_API int64_t gm_set_max_heap(int64_t bytes);
/* The heap lives in one reservation of address space, 64 GiB by default
 * (GMDEBUG=heapreserve=<size>, 64MiB..16TiB).  This call sets it before the
 * heap exists -- before any other call into the GC -- and wins over the
 * environment; returns 0, EBUSY once the heap exists, EINVAL for a size out
 * of range (errno set too).  Running past it is an out-of-memory failure
 * as above, whose message names the setting. */
GM_API int gm_set_heap_reserve(size_t bytes);

/* ---- write barrier entry points (plain stores while the world is STW) ---- */
GM_API void gm_store(void *slot, void *ptr);            /* *(void **)slot = ptr, with the write barrier */
GM_API void gm_typed_memmove(const gm_type *t, void *dst, const void *src); /* typedmemmove */
GM_API void gm_typed_memclr(const gm_type *t, void *dst);                   /* memclrHasPointers */
/* Atomic pointer slots (Go's atomic.Pointer / StorePointer): the same barrier,
 * then a sequentially consistent store, exchange or compare-and-swap. */
GM_API void  gm_atomic_store(void *slot, void *ptr);
GM_API void *gm_atomic_swap(void *slot, void *ptr);            /* returns the old pointer */
GM_API bool  gm_atomic_cas(void *slot, void *old, void *ptr);  /* true if *slot was old */

/* The write barrier for a slot the collector cannot decode (a field of a
 * type with a trace function: a tagged or NaN-boxed word).  Call it with the
 * pointer the slot held and the pointer it is about to hold (decoded; NULL
 * for none), then store the encoded word yourself.  Outside a mark it is a
 * load and a branch.  (gm_typed_memmove / memclr read only ptrmask.) */
GM_API void gm_barrier(const void *old_ptr, const void *new_ptr);

/* ---- roots -------------------------------------------------------------- */
/* A global or malloc'd range holding GC pointers.  Out of memory for the
 * table of ranges is fatal ("gm_root_add: out of memory"): an unregistered
 * range would leave its objects unprotected.  gm_root_try_add returns 0, or
 * ENOMEM (errno set too; the range is not registered) or EINVAL (NULL start,
 * zero length or a range that wraps around). */
GM_API void gm_root_add(void *start, size_t len);
GM_API int  gm_root_try_add(void *start, size_t len);
GM_API void gm_root_remove(void *start);              /* by the start given to gm_root_add */

/* ---- collection and pacing ---------------------------------------------- */
GM_API void    gm_gc(void);                 /* runtime.GC(): a full cycle, returns when swept */
GM_API int     gm_gc_percent(int percent);  /* debug.SetGCPercent; <0 turns GC off; returns old */
GM_API int64_t gm_memory_limit(int64_t bytes); /* debug.SetMemoryLimit; <0 only reads; returns old */
GM_API void    gm_free_os_memory(void);     /* debug.FreeOSMemory: collect, return free pages */

/* ---- finalizers, cleanups, weak pointers --------------------------------- */
/* runtime.SetFinalizer: obj must be the start of a GC object; fn NULL clears.
 * fn runs on the finalizer thread (or, on demand, in gm_run_finalizers),
 * one at a time, once obj is unreachable; obj is reachable again while fn
 * runs and is freed by a later cycle. */
GM_API void gm_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg);
GM_API void gm_keep_alive(const void *p);   /* runtime.KeepAlive */
/* Blocks until every finalizer and cleanup queued so far has run (a testing
 * and shutdown aid; not in Go). */
GM_API void gm_finalizers_wait(void);

/* Boehm's unordered finalizer: as gm_set_finalizer, but obj's finalizer
 * runs even while obj is reachable from another finalizable object, so a
 * cycle through such objects is collected (each member's fn may then see
 * the others finalized already).  Same rules otherwise (resurrection, one
 * finalizer per object, fn NULL clears). */
GM_API void gm_set_finalizer_unordered(void *obj, void (*fn)(void *obj, void *arg), void *arg);
/* On demand (true): the library's finalizer thread runs nothing; finalizers
 * and cleanups wait in the queue until a thread calls gm_run_finalizers,
 * which runs every queued one on the calling thread (attaching it if
 * needed) and returns how many ran -- an interpreter calls it at its own
 * safe points.  false (the default) hands the queue back to the thread.
 * gm_finalizers_wait in on-demand mode runs the queue on its caller. */
GM_API void   gm_finalizers_on_demand(bool on);
GM_API size_t gm_run_finalizers(void);

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

/* ---- object queries ----------------------------------------------------- */
/* The start of the GC object holding p (p may point anywhere inside it), or
 * NULL if p is not inside an allocated GC object (a stack, static or malloc
 * address, a free slot, a zero-size object).  Lock-free apart from sweeping
 * p's span first if the background sweeper has not reached it yet. */
GM_API void    *gm_base(const void *p);
/* The usable size of that object (its size class, or the pages of a large
 * object: at least what was asked), or 0 when gm_base(p) is NULL. */
GM_API size_t   gm_size(const void *p);
/* The collector's live-heap estimate in bytes (what the pacer compares with
 * the trigger): marked at the last cycle plus allocated since, counting the
 * free slots of spans held by threads' caches.  One atomic load: no
 * stop-the-world (unlike gm_read_memstats), so a language's
 * collectgarbage("count") may call it freely. */
GM_API uint64_t gm_heap_live(void);

/* Ephemerons (JavaScript WeakMap entries, Lua weak-keyed tables, Scheme
 * weak hash tables).  gm_ephemeron_new returns a GC object (keep it
 * reachable like any other) holding key weakly and value strongly only
 * while key is reachable from somewhere other than value (or other
 * ephemerons' values): a value that points back at its key does not keep
 * it alive.  Once the key is found unreachable, both reads return NULL
 * (from the end of that cycle's mark, before finalizers of the key run).
 * key must point into a GC object (a non-heap key is never collected: the
 * value stays); key NULL gives an ephemeron that reads NULL.  Key and value
 * are fixed at creation. */
typedef struct gm_ephemeron gm_ephemeron;
GM_API gm_ephemeron *gm_ephemeron_new(void *key, void *value);
GM_API void *gm_ephemeron_key(const gm_ephemeron *e);     /* NULL once the key died */
GM_API void *gm_ephemeron_value(const gm_ephemeron *e);   /* NULL once the key died */

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
    /* not in Go: the mark's cost, both modes (gcstoptheworld too) */
    uint64_t gc_mark_cpu_ns;   /* thread CPU time spent marking: background worker, assists,
                                  and the mark done inside stops of the world */
    uint64_t gc_scan_work;     /* bytes of objects scanned by the mark, every cycle */
    uint64_t gc_preempt_signals; /* preemption signals sent to threads that missed safepoints */
    uint64_t gc_preempt_stops;   /* ... that stopped their thread (the others hit an unsafe point) */
    uint64_t gc_mark_wall_ns;  /* wall time from each mark's start to the end of its termination,
                                  summed: gc_mark_cpu_ns / (gc_mark_wall_ns * CPUs) is the GC's CPU
                                  share while marking */
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

/* ---- heap profile (runtime.MemProfileRate, pprof.WriteHeapProfile) -------- */
/* Sampling: on average one allocation per `rate` bytes records its stack
 * (default 512 KiB, as Go; GMDEBUG=memprofilerate=N; 1: every allocation;
 * 0: none).  Sets the rate if rate >= 0 (the calling thread at once, others
 * from their next sample) and returns the previous one. */
GM_API int gm_mem_profile_rate(int rate);
/* Writes the heap profile to path in pprof's format (profile.proto,
 * gzip'd): samples alloc_objects, alloc_space, inuse_objects, inuse_space,
 * scaled as Go scales sampled counts, with the allocation stacks and their
 * function names (`go tool pprof -top PATH` needs no binary).  inuse counts
 * objects not yet found free by a sweep (exact after gm_gc()).  False, with
 * a message on stderr, if the file cannot be written. */
GM_API bool gm_write_heap_profile(const char *path);
/* alloc_* count from now on (inuse_* are unaffected); not in Go. */
GM_API void gm_heap_profile_reset(void);
/* The raw (unscaled) sums over every stack, for tests and tools. */
typedef struct gm_heap_profile_totals {
    uint64_t alloc_objects, alloc_bytes;   /* sampled since start or the last reset */
    uint64_t inuse_objects, inuse_bytes;   /* sampled and not yet swept free */
    size_t records;                        /* live sampled objects tracked */
    size_t buckets;                        /* distinct (stack, size) pairs */
    int rate;
} gm_heap_profile_totals;
GM_API void gm_heap_profile_read(gm_heap_profile_totals *out);

/* ---- debugging ---------------------------------------------------------- */
/* Stops the world, walks every span and free run and checks the heap's
 * invariants (counts, bitmaps, page map, lists, statistics).  Returns the
 * number of violations, each described on stderr; 0 for a sound heap. */
GM_API size_t gm_heap_verify(void);

#ifdef __cplusplus
}
#endif
#endif
