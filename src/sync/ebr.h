/* ebr.h - epoch-based reclamation for the lock-free readers of src/sync.
 * See the essay in ebr.c.  Pin and unpin are inline: they are most of what
 * a gm_syncmap_load costs beyond the map lookup. */
#ifndef GOMAP_SYNC_EBR_H
#define GOMAP_SYNC_EBR_H

#include <stdlib.h>

#include "sync/sync_internal.h"

typedef struct ebr_item { void *p; void (*fn)(void *); } ebr_item;
typedef struct ebr_bag { uint64_t epoch; size_t n, cap; ebr_item *items; } ebr_bag;

/* Freed 8-byte blocks a record keeps for reuse (gm_syncmap's value boxes). */
#define GM_EBR_BOX_CACHE 1024   /* 2x ADVANCE_EVERY: a whole bag fits */

typedef struct gm_ebr_rec gm_ebr_rec;
struct gm_ebr_rec {
    uint64_t state_a;        /* 0 quiescent, 2e+1 pinned in epoch e */
    uint32_t owned_a;        /* 1 while a thread (or a reclaimer) owns the record */
    uint32_t nest;           /* owner only: pin depth */
    uint32_t since_advance;  /* owner only */
    uint64_t retired_a, freed_a; /* written by the owner only, read by stats */
    ebr_bag bags[3];         /* owner only */
    gm_ebr_rec *next;        /* immutable once published */
    uint32_t nbox;           /* owner only: box_cache[0, nbox) are free */
    void *box_cache[GM_EBR_BOX_CACHE];   /* owner only: see gm_ebr_box8_alloc */
} __attribute__((aligned(64)));

enum { GM_EBR_FENCE_UNKNOWN, GM_EBR_FENCE_MEMBARRIER, GM_EBR_FENCE_XCHG };
/* What every pin reads, alone on its cache line: written only when the
 * epoch advances. */
typedef struct gm_ebr_globals {
    uint64_t epoch_a;        /* the global epoch E */
    int fence_mode_a;        /* GM_EBR_FENCE_*, decided before the first pin */
} __attribute__((aligned(64))) gm_ebr_globals;
GM_INTERNAL extern gm_ebr_globals gm_ebr_global;
/* initial-exec: one load from %fs, no __tls_get_addr on the fast path. */
GM_INTERNAL extern _Thread_local gm_ebr_rec *gm_ebr_self
    __attribute__((tls_model("initial-exec")));

GM_INTERNAL gm_ebr_rec *gm_ebr_adopt(void);
GM_INTERNAL void gm_ebr_pin_slow(gm_ebr_rec *r);

/* Enter / leave a read-side critical section (nestable).  While pinned, no
 * object retired by anyone after this thread pinned is freed. */
static inline gm_ebr_rec *gm_ebr_pin(void)
{
    gm_ebr_rec *r = gm_ebr_self;
    if (GM_UNLIKELY(r == NULL)) r = gm_ebr_adopt();
    if (r->nest++ != 0) return r;
    uint64_t e = at_load_acquire(&gm_ebr_global.epoch_a);
    if (GM_LIKELY(at_load_relaxed(&gm_ebr_global.fence_mode_a) == GM_EBR_FENCE_MEMBARRIER)) {
        at_store_relaxed(&r->state_a, 2 * e + 1);
        /* Only a compiler barrier: advance's membarrier is the fence. */
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        if (GM_LIKELY(at_load_seqcst(&gm_ebr_global.epoch_a) == e)) return r;
    }
    gm_ebr_pin_slow(r);
    return r;
}

static inline void gm_ebr_unpin(gm_ebr_rec *r)
{
    if (--r->nest == 0) at_store_release(&r->state_a, 0);
}

/* The same critical section without the nesting count, for a short leaf
 * section that calls nothing that pins or retires (gm_syncmap_load's fast
 * path).  False, with nothing changed, when the full pin must be used: the
 * thread is already pinned, pins fence with the exchange, or the epoch moved
 * meanwhile. */
static inline bool gm_ebr_pin_flat(gm_ebr_rec *r)
{
    if (r->nest != 0) return false;
    uint64_t e = at_load_acquire(&gm_ebr_global.epoch_a);
    if (at_load_relaxed(&gm_ebr_global.fence_mode_a) != GM_EBR_FENCE_MEMBARRIER) return false;
    at_store_relaxed(&r->state_a, 2 * e + 1);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);   /* advance's membarrier is the fence */
    if (GM_LIKELY(at_load_seqcst(&gm_ebr_global.epoch_a) == e)) return true;
    at_store_release(&r->state_a, 0);
    return false;
}

static inline void gm_ebr_unpin_flat(gm_ebr_rec *r)
{
    at_store_release(&r->state_a, 0);
}

/* Frees fn(p) once no thread can still hold p: p must already be unreachable
 * for threads that pin from now on.  The caller must be pinned.  fn NULL: p
 * is a malloc'd 8-byte box, recycled (see gm_ebr_box8_alloc). */
GM_INTERNAL void gm_ebr_retire(void *p, void (*fn)(void *));
/* 8-byte value boxes.  A box retired with gm_ebr_retire(p, NULL) is, once
 * safe, kept in the freeing record's box_cache (up to GM_EBR_BOX_CACHE, the
 * rest are freed), and gm_ebr_box8_alloc hands it out again before asking
 * malloc: a Store then costs no malloc or free, and nothing writes into a
 * dead box (free() would write its list links there, into a cache line it
 * may share with a live box that another core is reading).  Only the owner
 * thread, pinned, allocates; NULL when memory is short. */
static inline void *gm_ebr_box8_alloc(void)
{
    gm_ebr_rec *r = gm_ebr_self;
    if (GM_LIKELY(r != NULL && r->nbox != 0)) return r->box_cache[--r->nbox];
    return malloc(8);
}

/* Objects retired and freed so far, all threads. */
GM_INTERNAL void gm_ebr_counts(uint64_t *retired, uint64_t *freed);

#endif
