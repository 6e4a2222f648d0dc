/* gc_internal.h - the GC heap's internal structures (not installed).
 *
 * Files of the subsystem (one concept each):
 *   sizeclass.c  size classes, generated at start-up
 *   pageheap.c   the address-space reservation, arenas, page map, free runs,
 *                scavenging (madvise), span structures
 *   alloc.c      mcache / mcentral / mallocgc, heap bits, lazy sweep of a span
 *   thread.c     attached threads, safepoints, stop-the-world and stack-scan
 *                handshakes
 *   mark.c       roots, the mark queues, scanning, gccheckmark; the
 *                correctness argument of the concurrent mark
 *   collect.c    the cycle: phases, mark worker, assists, pacer, background
 *                sweeper, memstats, gctrace, trace events
 *   special.c    finalizers, cleanups, weak handles (per-span special records)
 *   trace_fn.c   types with a trace function (per-object type ids of small
 *                objects), gm_barrier, object queries (gm_base, gm_size,
 *                gm_heap_live)
 *   ephemeron.c  ephemerons: the pending list, the fixpoint in the mark,
 *                clearing at mark termination
 *   barrier.c    the hybrid write barrier (gm_store, gm_typed_memmove,
 *                gm_typed_memclr, gm_atomic_*), buffered per thread
 *   debug.c      GMDEBUG/GMGC/GMMEMLIMIT parsing, the heap verifier
 *   profile.c    heap profiling: sampled allocations and their stacks,
 *                pprof's profile.proto (the allocator's hooks: profile.h)
 *   globals.c    the data and bss segments of the program and its libraries
 *                as roots; soft-dirty tracking for mark termination
 *   preempt.c    the preemption signal for threads that miss safepoints
 *
 * Lock order (outer first): special_mu -> finq_mu -> eph_mu; pacer_mu -> heap_lock;
 * a fork takes every lock (thread.c fork_prepare) in the order cycle_mu,
 * bg_mu, pacer_mu, stats_mu, roots_mu, wq.mu, pool.mu, helpers_mu, oom_mu,
 * special_mu, finq_mu, eph_mu, centrals, large_lock, heap_lock, world_mu;
 * cycle_mu is never held with another; wq.mu (mark queue) neither;
 * central[i].lock / large_lock -> heap_lock.  world_mu, roots_mu, bg_mu,
 * stats_mu and the mark pool's locks are never held with another.  No lock
 * is held across a safepoint, and a thread never parks while holding one.
 * Fields named *_a are accessed atomically.
 */
#ifndef GOMAP_GC_INTERNAL_H
#define GOMAP_GC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/internal.h"
#include "gomap/gc.h"

/* ---- constants ----------------------------------------------------------- */
#define GC_PAGE_SHIFT   13
#define GC_PAGE_SIZE    ((size_t)1 << GC_PAGE_SHIFT)       /* 8 KiB, as Go */
#define GC_MAX_SMALL    32768                               /* larger: own span */
#define GC_NUM_CLASSES  GM_NUM_SIZE_CLASSES                 /* incl. class 0 */
#define GC_NUM_SPANCLASSES (GC_NUM_CLASSES * 2)             /* scan + noscan */
#define GC_ARENA_BYTES  ((size_t)64 << 20)                  /* commit granularity */
#define GC_MAX_OBJS     1024                                /* per small span */
#define GC_BITS_WORDS   (GC_MAX_OBJS / 64)
#define GC_HEAP_MIN     ((uint64_t)4 << 20)                 /* heapMinimum */
#define GC_SWEEP_BOUND  100   /* unswept spans a refill may sweep before growing */

#define WORD_SIZE sizeof(uintptr_t)

/* Code the preemption signal never stops in (preempt.c: the handler declines
 * when the interrupted PC lies in this section and the collector signals
 * again): the write barrier (barrier.c) and the allocation fast path
 * (alloc.c), which would otherwise need the in-runtime depth counter.
 * Whatever such code calls out of line must protect itself. */
#define GC_NOPREEMPT __attribute__((section("gomap_nopreempt")))
#define GC_ALWAYS_INLINE __attribute__((always_inline)) inline
/* Sanitizer builds call into their runtimes (outside the section) from
 * instrumented code: there the fast paths count the in-runtime depth too. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GC_SANITIZED 1
#endif
#endif
#ifndef GC_SANITIZED
#define GC_SANITIZED 0
#endif

/* ---- size classes -------------------------------------------------------- */
typedef struct gc_class {
    uint32_t size;     /* object size */
    uint32_t npages;   /* pages per span */
    uint32_t nelems;   /* objects per span */
    uint32_t divmul;   /* ceil(2^32 / size): offset -> index by multiply */
} gc_class;
extern gc_class gc_classes[GC_NUM_CLASSES];
extern int gc_nclasses;
GM_INTERNAL void gc_classes_init(void);
extern uint8_t gc_class_by_8[], gc_class_by_128[];
/* *a = max(*a, v), relaxed (statistics and test counters). */
static inline void gc_atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t was = atomic_load_explicit(a, memory_order_relaxed);
    while (v > was && !atomic_compare_exchange_weak_explicit(a, &was, v, memory_order_relaxed, memory_order_relaxed)) {}
}

static inline unsigned gc_size_to_class(size_t size)   /* 0 < size <= GC_MAX_SMALL */
{
    if (size <= 1024) return gc_class_by_8[(size + 7) >> 3];
    return gc_class_by_128[(size - 1024 + 127) >> 7];
}

/* ---- spans --------------------------------------------------------------- */
enum { SPAN_DEAD = 0, SPAN_FREE = 1, SPAN_INUSE = 2 };
/* which list a span is on (verify uses it) */
enum { LIST_NONE = 0, LIST_PARTIAL, LIST_FULL, LIST_UNSWEPT, LIST_LARGE,
       LIST_LARGE_UNSWEPT, LIST_FREE, LIST_CACHE };

typedef struct gc_special gc_special;

/* A span is a run of pages.  In use: it holds nelems objects of elemsize
 * bytes (small classes) or one large object.  Counting invariant, checked by
 * gm_heap_verify:  alloc_count == |{ i : i < freeindex or alloc_bits[i] }|.
 * An object i is allocated iff i < freeindex or alloc_bits[i] (Go's isFree).
 * mark_bits is the bitmap the current/last cycle marked into; sweeping makes
 * it the new alloc_bits and clears the other one. */
typedef struct gc_span {
    /* first cache line: everything gc_find_object and marking read */
    uintptr_t base;
    uintptr_t limit;              /* base + nelems * elemsize */
    uint64_t *alloc_bits, *mark_bits;
    uint32_t elemsize, divmul;
    uint32_t freeindex;           /* allocation scans from here */
    uint8_t state;                /* SPAN_* */
    uint8_t sizeclass;            /* 0: large */
    uint8_t noscan;
    uint8_t conservative;         /* large: scan word by word */
    uint64_t *heap_bits;          /* scan small spans: 1 bit per word, set = pointer */
    uint16_t *otypes;             /* small scan span: per object, the id of its traced type
                                     (0: none; trace_fn.c); NULL until one is allocated here */
    /* the rest */
    uint32_t nelems;
    uint32_t alloc_count;
    uint32_t cache_count;         /* alloc_count when an mcache took the span */
    _Atomic uint32_t sweepgen;    /* == heap sweepgen: swept this cycle (stored last, release) */
    uint64_t alloc_cache;         /* ~alloc_bits from freeindex; bit j = index freeindex+j */
    uint64_t hb_mask;             /* small scan span with hb_uniform: the heap bits every slot,
                                     free or not, carries (alloc.c, HEAP BITS) */
    uint8_t hb_uniform;
    size_t npages;
    struct gc_span *next, *prev;  /* list links (central, large, free lists) */
    uint8_t list;                 /* LIST_* */
    uint8_t needzero;             /* memory may be dirty: zero on allocation */
    size_t heap_bits_words;       /* capacity of heap_bits in uint64s */
    const gm_type *type;          /* large typed object */
    size_t count;                 /* large typed object: array length */
    gc_special *specials;         /* under special_mu */
    uint8_t in_special_list;      /* listed in special.c's spans-with-specials (special_mu) */
    uint64_t freed_at;            /* free runs: cycle number when freed */
    size_t nscav;                 /* free runs: pages returned to the OS (pageheap.c) */
    uint8_t queued;               /* span mark queue: on a work queue, not yet scanned (mark.c;
                                     __atomic builtins only) */
    uint64_t scan_bits[GC_BITS_WORDS]; /* span mark queue: objects scanned this cycle (mark.c) */
    uint32_t otypes_cap;          /* entries of otypes */
    uint64_t bits[2][GC_BITS_WORDS];
    uint64_t ckbits[GC_BITS_WORDS]; /* gccheckmark's separate mark bits (debug.c) */
} __attribute__((aligned(64))) gc_span;

/* ---- page heap (pageheap.c) ---------------------------------------------- */
typedef struct gc_heapstats {
    uint64_t sys;        /* committed arena bytes (HeapSys) */
    uint64_t inuse;      /* bytes in in-use spans */
    uint64_t idle;       /* bytes in free runs */
    uint64_t released;   /* idle bytes returned to the OS */
    uint64_t span_structs, span_bytes; /* metadata */
} gc_heapstats;

extern uintptr_t gc_arena_start;           /* reservation start */
extern _Atomic uintptr_t gc_arena_used_a;  /* committed bytes from start */
extern gc_span **gc_pagemap;               /* one entry per page */

GM_INTERNAL void gc_pageheap_init(void);
/* NULL if the heap limit, the reservation or the system refuses; then
 * gc_heap_oom_reason() (this thread's last failure) says which */
GM_INTERNAL gc_span *gc_heap_alloc_span(size_t npages);
/* The pages of a new span that may be dirty (the others were returned to
 * the OS and read as zero): at most GC_DIRTY_RUNS runs, page offsets from
 * the span's base; when there were more, the last run reaches the span's
 * end.  n == 0: nothing to zero. */
enum { GC_DIRTY_RUNS = 8 };
typedef struct {
    uint32_t n;
    size_t first[GC_DIRTY_RUNS], npages[GC_DIRTY_RUNS];
} gc_dirty_runs;
GM_INTERNAL gc_span *gc_heap_alloc_span_dirty(size_t npages, gc_dirty_runs *dirty);
enum { GC_OOM_LIMIT = 1, GC_OOM_RESERVE = 2, GC_OOM_OS = 3 };
GM_INTERNAL int gc_heap_oom_reason(void);
GM_INTERNAL size_t gc_heap_reserve_bytes(void);
GM_INTERNAL uint64_t gc_heap_max(void);              /* UINT64_MAX: no limit */
GM_INTERNAL void gc_heap_set_limit_env(uint64_t bytes);
#define GC_HEAP_RESERVE_MIN ((size_t)64 << 20)
#define GC_HEAP_RESERVE_MAX ((size_t)16 << 40)
GM_INTERNAL void gc_heap_free_span(gc_span *s);
GM_INTERNAL void gc_heap_stats(gc_heapstats *out);
/* Free runs back to the OS until the retained heap fits retain_bytes, only
 * runs freed at least min_age_gens sweep generations ago (2 a cycle); returns
 * bytes released */
GM_INTERNAL uint64_t gc_scavenge(uint64_t retain_bytes, uint32_t min_age_gens);
/* the most bytes of in-use spans since the last call (then: those in use now) */
GM_INTERNAL uint64_t gc_heap_take_inuse_peak(void);
GM_INTERNAL size_t gc_heap_verify_pages(void);
/* every span structure ever made, for marking specials and verifying;
 * the caller holds heap_lock or has stopped the world */
GM_INTERNAL gc_span **gc_allspans(size_t *n);
GM_INTERNAL void gc_heap_lock(void);
GM_INTERNAL void gc_heap_unlock(void);
GM_INTERNAL void gc_heap_bits_reserve(gc_span *s);

/* Lookups that a concurrent marker makes while the owners of spans change
 * them (freeindex, alloc bits, new spans): racy by design and safe (mark.c,
 * alloc.c); not instrumented by TSan. */
#define GC_RACY __attribute__((no_sanitize("thread")))

/* O(1): the in-use span holding address p, or NULL. */
GC_RACY static inline gc_span *gc_span_of(uintptr_t p)
{
    uintptr_t off = p - gc_arena_start;
    if (off >= atomic_load_explicit(&gc_arena_used_a, memory_order_relaxed))
        return NULL;
    gc_span *s = gc_pagemap[off >> GC_PAGE_SHIFT];
    if (s == NULL || s->state != SPAN_INUSE || p >= __atomic_load_n(&s->limit, __ATOMIC_ACQUIRE))
        return NULL;
    return s;
}
GC_RACY static inline uint32_t gc_obj_index(const gc_span *s, uintptr_t p)
{
    return (uint32_t)(((uint64_t)(p - s->base) * s->divmul) >> 32);
}
GC_RACY static inline bool gc_bit(const uint64_t *b, uint32_t i) { return (b[i >> 6] >> (i & 63)) & 1; }
static inline void gc_setbit(uint64_t *b, uint32_t i) { b[i >> 6] |= (uint64_t)1 << (i & 63); }
GC_RACY static inline bool gc_obj_allocated(const gc_span *s, uint32_t i)
{
    return i < s->freeindex || gc_bit(s->alloc_bits, i);
}
/* The base of the allocated object containing p, or 0. */
GC_RACY static inline uintptr_t gc_find_object(uintptr_t p, gc_span **sp, uint32_t *ip)
{
    gc_span *s = gc_span_of(p);
    if (s == NULL) return 0;
    uint32_t i = gc_obj_index(s, p);
    if (i >= s->nelems || !gc_obj_allocated(s, i)) return 0;   /* bound: a span being reused */
    *sp = s;
    *ip = i;
    return s->base + (uintptr_t)i * s->elemsize;
}

/* ---- mcache / mcentral (alloc.c) ----------------------------------------- */
typedef struct gc_mcache {
    gc_span *alloc[GC_NUM_SPANCLASSES];
} gc_mcache;

typedef struct gc_spanlist { gc_span *first, *last; size_t n; } gc_spanlist;
GM_INTERNAL void gc_list_push(gc_spanlist *l, gc_span *s, uint8_t which);
GM_INTERNAL void gc_list_push_tail(gc_spanlist *l, gc_span *s, uint8_t which);
GM_INTERNAL void gc_list_remove(gc_spanlist *l, gc_span *s);
GM_INTERNAL gc_span *gc_list_pop(gc_spanlist *l);

typedef struct gc_central {
    pthread_mutex_t lock;
    gc_spanlist partial, full, unswept;
    _Atomic size_t nunswept_a;   /* == unswept.n; read without the lock as a hint */
} gc_central;
extern gc_central gc_centrals[GC_NUM_SPANCLASSES];
extern pthread_mutex_t gc_large_lock;
extern gc_spanlist gc_large, gc_large_unswept;
extern gc_span gc_empty_span;

GM_INTERNAL void gc_alloc_init(void);
GM_INTERNAL void gc_mcache_init(gc_mcache *c);
GM_INTERNAL void gc_mcache_release_all(gc_mcache *c);  /* spans back to central */
GM_INTERNAL void gc_mcache_flush_stats(gc_mcache *c);  /* count objects allocated so far */
/* Sweeping (alloc.c).  gc_sweep_one sweeps one span of the unswept lists;
 * false when none is left. */
GM_INTERNAL bool gc_sweep_one(void);
GM_INTERNAL bool gc_sweep_idle(void);   /* no sweep in progress (gm_gc waits for it) */
GM_INTERNAL void gc_sweep_prepare(void);    /* STW: every in-use span becomes unswept */
GM_INTERNAL size_t gc_unswept_count(void);
/* Is s on an unswept list?  gc_sweep_prepare moves whole lists in O(1) and
 * leaves the spans' list tags as they were (PARTIAL, FULL, LARGE): such a
 * tag with a sweepgen behind the heap's also means unswept.  Under the list's
 * lock, or with the world stopped. */
static inline bool gc_span_unswept(const gc_span *s, uint32_t sg)
{
    if (s->list == LIST_UNSWEPT || s->list == LIST_LARGE_UNSWEPT) return true;
    return (s->list == LIST_PARTIAL || s->list == LIST_FULL || s->list == LIST_LARGE) &&
           atomic_load_explicit(&s->sweepgen, memory_order_relaxed) != sg;
}
/* Sweeps s now if it is still unswept, or waits for whoever is sweeping it
 * (Go's ensureSwept): afterwards its alloc state may be read while the world
 * runs, as long as the caller holds a live object in it. */
GM_INTERNAL void gc_ensure_swept(gc_span *s);

/* ---- threads (thread.c) --------------------------------------------------- */
enum { TH_RUNNING = 0, TH_PARKED = 1, TH_BLOCKING = 2 };
/* stack scan of the current cycle (stack_state, transitions under world_mu):
 * DONE (or no cycle), PENDING (to be scanned this cycle), SCANNING (someone
 * is reading it now: the collector for a parked/blocking thread, or the
 * thread itself at a safepoint; a blocking thread waits before it runs again) */
enum { STK_DONE = 0, STK_PENDING = 1, STK_SCANNING = 2 };
#define GC_NREGS 20            /* callee-saved registers (AArch64: x19-x29, d8-d15) */
#define GC_WBBUF 256           /* write-barrier buffer entries per thread (Go: 256) */

/* A grey-object stack owned by one thread (see mark.c). */
typedef struct gc_workbuf {
    uintptr_t *buf;
    size_t n, cap;
    uint64_t marked;   /* bytes this worker marked (not yet added to the total) */
    uint64_t scanned;  /* scan work done (bytes of objects scanned) */
    bool shared;       /* other workers mark at the same time: atomic mark bits */
    bool checkmark;    /* gccheckmark's re-mark: ckbits, report unmarked objects */
    uintptr_t parent;  /* checkmark: the object being scanned (0: a root) */
    const char *root;  /* checkmark: which root is being scanned */
} gc_workbuf;

typedef struct gc_thread {
    gc_mcache cache;
    _Atomic int state_a;           /* TH_* */
    int attach_depth;              /* nested gm_thread_attach */
    int blocking_depth;
    bool auto_attached;
    bool internal;                 /* the sweeper / finalizer thread */
    bool no_stack_roots;           /* the mark worker: its stack holds no references of its
                                      own (what it handles is marked already), and stale
                                      slots of its deep mark frames would keep garbage */
    uintptr_t stack_lo, stack_hi;  /* [lo, hi): the whole stack */
    uintptr_t saved_sp;            /* valid while parked or blocking */
    uintptr_t regs[GC_NREGS];      /* callee-saved registers at park/blocking */
    uint64_t id;
    pid_t tid;
    uint64_t stop_wait_polls;      /* STW diagnostics */
    uint32_t stress_count;
    int stack_state;               /* STK_*, under world_mu */
    size_t wbn;                    /* entries in wb */
    uintptr_t last_black;          /* the object this thread allocated last during the current
                                      mark (black: the barrier need not record it, barrier.c);
                                      0 from each mark's start (collect.c) */
    int64_t assist_credit;         /* bytes this thread may allocate before assisting */
    struct gc_thread *next, *prev;
    /* preemption by signal (preempt.c) */
    pthread_t pth;
    _Atomic uint32_t psig_a;       /* PSIG_*: the signal stop's handshake */
    int *rt_depth_p;               /* the thread's gm_rt_depth (read racily as a hint) */
    uint64_t cpu0;                 /* thread CPU time at the collector's first look */
    uint64_t cpu0_gen;             /* which wait cpu0 belongs to */
    bool preempted_before;         /* needed a signal once: no grace when found sleeping */
    uintptr_t wb[GC_WBBUF];        /* write-barrier buffer: values to shade */
} gc_thread;

extern _Thread_local gc_thread *gc_self __attribute__((tls_model("initial-exec")));
/* Non-zero while a thread should enter the slow path at its next poll: bit 0
 * a stop-the-world is requested, bit 1 gcstress. */
extern _Atomic uint32_t gc_poll_a;
#define POLL_STW    1u
#define POLL_STRESS 2u
#define POLL_STACK  4u      /* concurrent mark asks threads to scan their stacks */

/* psig_a: NONE -> SENT (collector, before pthread_kill) -> STOPPED (handler,
 * context saved, waiting) -> RELEASED (collector) -> NONE (handler, leaving);
 * SENT -> NONE when the handler declines (unsafe point). */
enum { PSIG_NONE = 0, PSIG_SENT = 1, PSIG_STOPPED = 2, PSIG_RELEASED = 3 };
GM_INTERNAL int gc_preempt_poke(gc_thread *t, uint64_t waited_ns, uint64_t gen); /* world_mu held */
GM_INTERNAL void gc_preempt_release(gc_thread *t);                                 /* world_mu held */
GM_INTERNAL bool gc_preempt_stopped(gc_thread *t);
GM_INTERNAL void gc_preempt_wait(unsigned us);
GM_INTERNAL void gc_preempt_init(void);     /* gc_init: where the handler must not stop */
extern _Atomic uint64_t gc_preempt_signals_a, gc_preempt_stops_a, gc_preempt_deferred_a,
    gc_preempt_handled_a;
GM_INTERNAL gc_thread *gc_thread_auto(void);     /* gc_self, attaching if needed */
GM_INTERNAL void gc_poll_slow(gc_thread *t);
GM_INTERNAL void gc_park(gc_thread *t);          /* a safepoint without gcstress */
/* Stop every other attached thread (they park or are blocking); the caller
 * becomes the world's owner.  Returns false if another thread is already
 * stopping the world: the caller then parked until it finished. */
GM_INTERNAL bool gc_stop_the_world(const char *why);
GM_INTERNAL void gc_start_the_world(void);
/* The world is stopped: call fn on every attached thread. */
GM_INTERNAL void gc_for_each_thread(void (*fn)(gc_thread *t, void *arg), void *arg);
GM_INTERNAL size_t gc_thread_count(void);
GM_INTERNAL void gc_request_stack_scans(void);   /* world stopped: all PENDING */
GM_INTERNAL size_t gc_scan_stacks_step(void);    /* scan what can be; returns # still pending */
extern _Atomic uint64_t gc_wb_recorded_a;   /* heap pointers the barrier recorded (MemStats) */
GM_INTERNAL void gc_stacks_finish(gc_workbuf *w); /* world stopped: every stack again, + wb buffers */
GM_INTERNAL void gc_wb_flush_all(gc_workbuf *w);
GM_INTERNAL void gc_save_regs(uintptr_t regs[GC_NREGS]);
GM_INTERNAL uintptr_t gc_current_sp(void);
GM_INTERNAL void gc_thread_register_internal(bool no_stack_roots); /* attach a library thread */
/* +1 before creating a library thread (it attaches with
 * gc_thread_register_internal, which counts -1); -1 if creation failed */
GM_INTERNAL void gc_thread_starting(int delta);
GM_INTERNAL void gc_thread_fork_init(void);         /* pthread_atfork handlers */
/* fork phases: 0 prepare (take the locks), 1 parent, 2 child (release them,
 * forget the threads that do not exist in the child) */
GM_INTERNAL void gc_special_fork(int phase);
GM_INTERNAL void gc_collect_fork(int phase);  /* cycle_mu, bg_mu, pacer_mu, stats_mu */
GM_INTERNAL void gc_mark_fork(int phase);     /* roots_mu, the mark queue's locks */
GM_INTERNAL void gc_alloc_fork(int phase);    /* oom_mu */
/* fatal: `what` was called inside a blocking section (thread.c) */
GM_INTERNAL GM_NORETURN void gc_blocking_misuse(const char *what);

/* ---- mark (mark.c) ------------------------------------------------------- */
/* The stop-the-world mark's work stack; while the world runs each thread
 * greys into its own buffer and publishes it to a global queue (mark.c). */
extern gc_workbuf gc_work;
extern _Atomic bool gc_mark_concurrent_a;     /* marking runs with the world running */
extern _Atomic uint64_t gc_marked_bytes_a;    /* concurrent: bytes marked (published) */
extern _Atomic uint64_t gc_scan_work_a;       /* concurrent: scan work done (published) */
GM_INTERNAL gc_workbuf *gc_cur_work(void);    /* this thread's buffer, or gc_work */
GM_INTERNAL void gc_work_publish(gc_workbuf *w);
GM_INTERNAL void gc_work_publish_mine(void);
GM_INTERNAL void gc_mark_thread_exit(void);   /* free this thread's mark buffer */
GM_INTERNAL bool gc_wq_empty(void);
/* threads inside gc_mark_drain_some (holding grey objects not yet published) */
extern _Atomic int gc_mark_drainers_a;
GM_INTERNAL uint64_t gc_mark_drain_some(gc_workbuf *w, uint64_t budget, _Atomic bool *stop);
GM_INTERNAL uint64_t gc_mark_drain_some_mine(uint64_t budget);
GM_INTERNAL void gc_shade_into(gc_workbuf *w, uintptr_t p);
GM_INTERNAL void gc_wb_flush(gc_thread *t, gc_workbuf *w);
GM_INTERNAL void gc_scan_thread_stack(gc_thread *t, gc_workbuf *w);
GM_INTERNAL void gc_scan_own_stack(gc_thread *t);
GM_INTERNAL void gc_mark_root_ranges(gc_workbuf *w);
GM_INTERNAL void gc_checkmark(void);          /* world stopped, mark complete */
extern uint64_t gc_marked_bytes;     /* bytes of objects marked this cycle */
extern uint64_t gc_scan_roots_bytes; /* stack + globals bytes scanned this cycle */
extern uint64_t gc_scan_stack_bytes, gc_scan_global_bytes;

GM_INTERNAL void gc_mark_init(void);
GM_INTERNAL void gc_mark_roots(void);    /* stacks, registers, root ranges, specials, queues */
GM_INTERNAL void gc_mark_drain(void);
GM_INTERNAL void gc_mark_drain_parallel(void);  /* the cycle's main drain, gcworkers threads */
GM_INTERNAL void gc_shade(uintptr_t p);  /* grey the object p points into, if any */
GM_INTERNAL void gc_scan_range_conservative(uintptr_t lo, uintptr_t hi);
GM_INTERNAL void gc_scan_object_referents(uintptr_t base, gc_span *s); /* push what obj points to */
static inline bool gc_is_marked(const gc_span *s, uint32_t i) { return gc_bit(s->mark_bits, i); }

/* ---- types with a trace function (trace_fn.c) ------------------------------ */
#define GC_MAX_TRACED_TYPES 65535
extern const gm_type *gc_traced_types[GC_MAX_TRACED_TYPES + 1];  /* by id; [0] unused */
GM_INTERNAL void gc_trace_fn_exclude_globals(void);   /* the registry is not a root (globals.c) */
/* Allocation of object idx of small scan span s: t is its type if traced,
 * else NULL (called when t is traced or s already has ids). */
GM_INTERNAL void gc_otype_note(gc_span *s, uint32_t idx, const gm_type *t);
GM_INTERNAL void gc_otypes_reset(gc_span *s);   /* span (re)initialised */
/* The traced type of object i of a small span, or NULL (racy, as marking). */
GC_RACY static inline const gm_type *gc_otype(const gc_span *s, uint32_t i)
{
    const uint16_t *o = __atomic_load_n(&s->otypes, __ATOMIC_ACQUIRE);
    if (o == NULL) return NULL;
    uint16_t id = __atomic_load_n(&o[i], __ATOMIC_RELAXED);
    return id ? gc_traced_types[id] : NULL;
}
/* Calls t->trace on each of the count elements at base, visiting into w. */
GM_INTERNAL void gc_trace_object(gc_workbuf *w, uintptr_t base, const gm_type *t, size_t count);
/* 1 while gccheckmark's re-mark runs (for a fault-injection test) */
extern _Atomic int gc_checkmarking_a;

/* ---- ephemerons (ephemeron.c) ------------------------------------------------ */
/* Marking, any thread: shades the values of pending ephemerons whose keys
 * are now marked into w; returns how many. */
GM_INTERNAL size_t gc_ephemeron_progress(gc_workbuf *w);
GM_INTERNAL void gc_ephemeron_fork(int phase);   /* 0: lock eph_mu; else unlock */
/* World stopped, after a complete drain (gc_mark_drain): runs the fixpoint
 * to its end, then clears every ephemeron whose key is still unmarked. */
GM_INTERNAL void gc_ephemeron_finish(void);
/* Bumped each time mark termination clears at least one ephemeron. */
GM_INTERNAL uint64_t gc_ephemeron_epoch(void);
/* Cleared (its key died)?  A read that does not shade: for tables that
 * skip dead entries without handing out their keys (map_weak.c). */
GM_INTERNAL bool gc_ephemeron_dead(const gm_ephemeron *e);

/* ---- roots ------------------------------------------------------------- */
GM_INTERNAL void gc_roots_scan(void);
GM_INTERNAL uint64_t gc_roots_bytes(void);
GM_INTERNAL void gc_scan_range_into(gc_workbuf *w, uintptr_t lo, uintptr_t hi);

/* ---- data and bss segments (globals.c) ----------------------------------- */
enum { GLOBALS_START = 0, GLOBALS_TERM = 1, GLOBALS_FULL = 2 };
/* START: worker at mark start, world running (refresh, clear soft-dirty,
 * scan all); TERM: mark termination, world stopped (dirty pages, or all);
 * FULL: world stopped, everything (stop-the-world mark, checkmark). */
GM_INTERNAL void gc_globals_mark(gc_workbuf *w, int mode);
GM_INTERNAL bool gc_globals_before_term(gc_workbuf *w);  /* worker: one more round? */
GM_INTERNAL void gc_globals_prepare(void);   /* world running, before a STW mark */
GM_INTERNAL void gc_globals_exclude(const void *p, size_t len);
typedef struct gc_globals_info {
    size_t bytes, segments;
    bool soft_dirty, tracking, diffing;
    uint64_t dirty_pages_scanned, diff_words;
} gc_globals_info;
GM_INTERNAL void gc_globals_stats(gc_globals_info *out);
GM_INTERNAL size_t gc_globals_check(void);

/* ---- collector (collect.c) ----------------------------------------------- */
enum { GC_OFF = 0, GC_MARK = 1, GC_MARKTERM = 2 };
extern _Atomic int gc_phase_a;           /* GC_OFF outside a cycle */
extern _Atomic bool gc_wb_enabled_a;     /* the write barrier is on (concurrent mark) */
extern _Atomic uint32_t gc_sweepgen_a;   /* += 2 per cycle */
extern _Atomic uint64_t gc_heap_live_a;  /* bytes live or cached, for the pacer */
extern _Atomic uint64_t gc_trigger_a;    /* collect when heap_live reaches this */

GM_INTERNAL void gc_init(void);          /* once; every entry point calls it */
extern _Atomic int gc_inited_a;
static inline void gc_ensure_init(void)
{
    if (GM_UNLIKELY(!atomic_load_explicit(&gc_inited_a, memory_order_acquire))) gc_init();
}
GM_INTERNAL void gc_collect(bool forced);  /* a full STW cycle (returns with world running) */
GM_INTERNAL void gc_maybe_collect(void);   /* heap_live reached the trigger */
/* Mark assist (collect.c): thread t takes `bytes` of heap while marking;
 * in debt, it does scan work in proportion first. */
GM_INTERNAL void gc_assist_alloc(gc_thread *t, uint64_t bytes);

/* counters flushed by mcaches and sweepers (collect.c) */
typedef struct gc_counters {
    _Atomic uint64_t nmalloc[GC_NUM_CLASSES], nfree[GC_NUM_CLASSES];
    _Atomic uint64_t large_alloc_bytes, large_free_bytes;
} gc_counters;
extern gc_counters gc_stats;
GM_INTERNAL uint64_t gc_nanotime(void);
GM_INTERNAL uint64_t gc_thread_cpu_ns(void);

/* ---- specials (special.c) ------------------------------------------------ */
enum { SP_FINALIZER = 1, SP_CLEANUP = 2, SP_WEAK = 3 };
struct gc_special {
    gc_special *next;
    uintptr_t offset;      /* from the span's base: a large object's may pass 4 GiB */
    uint8_t kind;
    void (*fin)(void *obj, void *arg);
    void (*cleanup)(void *arg);
    void *arg;
    uint64_t id;
    uintptr_t *weak_cell;  /* SP_WEAK: the handle object (one word: the pointer) */
    bool unordered;        /* SP_FINALIZER: gm_set_finalizer_unordered (referents not marked at mark start) */
};
extern pthread_mutex_t gc_special_mu;
GM_INTERNAL void gc_special_mark_roots(void);    /* STW mark: finalizer referents, args, queue */
GM_INTERNAL void gc_special_mark_done(void);     /* STW after drain: weak, finalizers, cleanups */
GM_INTERNAL void gc_finq_start_thread(void);
GM_INTERNAL size_t gc_special_verify(void);

/* ---- options (debug.c) --------------------------------------------------- */
typedef struct gc_options {
    int gctrace, gcstress, clobberfree, gccheckmark;
    int stoptimeout_ms;
    int gcworkers;           /* mark threads during a stop-the-world mark */
    int gcstoptheworld;      /* 1: the whole mark with the world stopped (no concurrent mark) */
    int gcmarkqueue;         /* GC_MARKQ_OBJECT or GC_MARKQ_SPAN (mark.c) */
    uint64_t heaplimit;      /* bytes; 0: none (GMDEBUG=heaplimit=512MiB) */
    size_t heapreserve;      /* bytes; 0: the default 64 GiB (GMDEBUG=heapreserve=) */
    int scanglobals;         /* 1: data and bss segments are roots (globals.c) */
    int globalsterm;         /* how termination finds stores into globals: 0 rescan, 1 diff, 2 soft-dirty */
    int preemptsig;          /* signal that stops threads that miss safepoints (0: none) */
    int preemptgrace_ms;     /* how long before a thread is signalled (preempt.c) */
} gc_options;
enum { GC_MARKQ_OBJECT = 0, GC_MARKQ_SPAN = 1 };
extern gc_options gc_opt;
GM_INTERNAL void gc_options_init(void);
GM_INTERNAL size_t gc_verify_stopped(void);  /* world stopped by the caller */      /* GMDEBUG, GMGC, GMMEMLIMIT */
extern int gc_env_percent;                   /* from GMGC */
extern int64_t gc_env_memlimit;              /* from GMMEMLIMIT */

#define CLOBBER_PATTERN 0xdeadbeefdeadbeefull

#endif
