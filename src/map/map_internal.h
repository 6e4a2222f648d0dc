/* map_internal.h - the map's private structures, shared by map*.c.
 * The design and its invariants are described at the top of map.c. */
#ifndef GOMAP_MAP_INTERNAL_H
#define GOMAP_MAP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/internal.h"
#include "gomap/gc.h"
#include "gomap/map.h"
#include "map/map_engine.h"

/* ---- tunables (named bounds; see the essay in map.c) ---- */
#define BUCKET_CNT 8            /* slots per bucket */
#define LOAD_NUM 13             /* load factor 6.5 = LOAD_NUM / LOAD_DEN */
#define LOAD_DEN 2
#define MAX_INLINE_KEY 128      /* larger keys are stored indirectly */
#define MAX_INLINE_ELEM 128     /* larger values are stored indirectly */
#define EVAC_SCAN_MAX 1024      /* old buckets nevacuate may skip in one write */
#define MMAP_THRESHOLD (64u << 10) /* arrays this big come from mmap: lazily zeroed, never memset */
#define RELEASE_STEP (256u << 10) /* bytes of retired arrays a write unmaps itself (no helper) */
#define PREP_MIN_BYTES (1u << 20) /* arrays this big are prepared by the helper thread */
#define HUGE_THRESHOLD (8u << 20) /* prepared arrays this big get huge pages */
#define HUGE_PAGE (2u << 20)    /* the huge-page size the helper works in */
#define PREP_AT_NUM 3           /* a next array >= HUGE_THRESHOLD is prepared at 3/4 of the grow point */
#define PREP_AT_DEN 4
#define PREP_WAIT_NUM 1         /* a grow waits for its prepared array up to 1/4 more entries, */
#define PREP_WAIT_DEN 4         /* then asks for it as it is (the rest faulted in 4 KiB pages), */
#define PREP_GIVEUP_NUM 1       /* and after 1/2 more gives up on it */
#define PREP_GIVEUP_DEN 2
#define PREP_RECHECK 256        /* while waiting, look again every 256 inserts */
#define OVF_BLOCK_MAX 4096      /* overflow buckets per block, at most */
#define ZERO_BUF_SIZE 1024      /* values up to this size read as a shared zero */
#define PREFETCH_MIN_BYTES (8u << 20) /* arrays at least this big prefetch whole buckets */
#define SHRINK_MIN_B 3          /* tables of 2^3 buckets or fewer never shrink */
#define SHRINK_EVAC_PER_WRITE 8 /* old buckets nevacuate drains per write while shrinking */

/* ---- tophash states ---- */
enum {
    EMPTY_REST = 0,     /* this slot and every later one in the chain are empty */
    EMPTY_ONE = 1,      /* this slot is empty */
    EVAC_X = 2,         /* key/elem valid, entry moved to the X (low) half */
    EVAC_Y = 3,         /* ... moved to the Y (high) half */
    EVAC_EMPTY = 4,     /* slot was empty and its bucket is evacuated */
    MIN_TOPHASH = 5,    /* smallest tophash of a live entry */
};

/* ---- header flags (h->flags, accessed with relaxed atomics) ---- */
enum {
    F_ITERATOR = 1,     /* an iterator may be using buckets */
    F_OLD_ITERATOR = 2, /* an iterator may be using oldbuckets */
    F_WRITING = 4,      /* a write is in progress (misuse detection) */
    F_SAME_SIZE = 8,    /* the current growth is same-size */
    F_SHRINK = 16,      /* the current "growth" halves the table */
};

#define NO_CHECK ((size_t)1 << (sizeof(size_t) * 8 - 1))

/* Every bucket array and overflow block starts with this header; the
 * buckets follow at m->hdrsize.  An array owns the overflow blocks that
 * were allocated while it was current (or its evacuation target). */
typedef struct gm_ovf_block {
    struct gm_ovf_block *next;
    size_t bytes;               /* whole allocation, header included */
    bool mmapped;
} gm_ovf_block;

/* The next array, being faulted in by the helper thread (map_mem.c,
 * PREPARED ARRAYS).  `owner_a` is 1 while the helper may still touch it. */
typedef struct gm_prep {
    struct gm_prep *qnext;      /* helper queue, or the map's orphan list */
    uint8_t *map_base;          /* the whole mapping (alignment slack included) */
    size_t map_bytes;
    uint8_t *base;              /* 2 MiB aligned: where the array goes */
    size_t bytes;               /* the array's bytes, header included */
    unsigned B;
    _Atomic int cancel_a;       /* set by the map: stop, the array is not wanted */
    _Atomic int finish_a;       /* set by the map: stop, hand it over as it is */
    _Atomic int ready_a;        /* set by the helper: every page is populated */
    _Atomic int owner_a;        /* 1 while the helper holds it */
} gm_prep;

typedef struct gm_barray {
    struct gm_barray *next;     /* link in the retired / release lists */
    uint8_t *gc_buckets;        /* GC maps: the array (the header is a separate object) */
    void **gc_blocks;           /* GC maps: every overflow block, kept reachable */
    size_t gc_nblocks, gc_cap;
    gm_ovf_block *blocks;       /* overflow blocks owned by this array */
    size_t bytes;               /* whole allocation, header included */
    size_t nbuckets;
    size_t ovf_blocks_made;     /* sizes blocks: they double up to OVF_BLOCK_MAX */
    uint8_t *ovf_next, *ovf_end;/* unused overflow buckets, handed out in order */
    bool mmapped;
} gm_barray;

struct gm_map {
    size_t count;               /* live entries: len(m) */
    _Atomic uint8_t flags;
    uint8_t engine;             /* 0 here; a Swiss map has its tag at this offset (map_engine.h) */
    uint8_t B;                  /* log2 of the bucket count */
    uint16_t noverflow;         /* overflow buckets of the current array (approx. above B=15) */
    uint64_t seed;
    uint8_t *buckets;           /* 2^B buckets; NULL until the first insert */
    uint8_t *oldbuckets;        /* the array being evacuated, or NULL */
    size_t nevacuate;           /* old buckets below this are all evacuated */
    uint64_t clear_seq;         /* bumped by clear: stops running iterators */
    _Atomic uint32_t iters_open;/* iterators initialised and not finished */
    gm_barray *retired;         /* arrays retired while iterators were open */
    gm_barray *release;         /* arrays being returned to the OS in steps */
    void *deferred;             /* entry storage freed while iterators were open */
    gm_prep *prep;              /* the next (doubled) array, being prepared; or NULL */
    gm_prep *spare;             /* the next full-size overflow block, being prepared */
    uint64_t n_prep_made, n_prep_taken; /* arrays prepared, and taken by a grow */
    size_t grow_load;           /* count at which the load factor calls for a grow */

    /* layout, fixed at creation */
    const gm_type *kt, *vt;
    uint64_t (*hasher)(const void *, uint64_t);
    bool (*keyeq)(const void *, const void *);
    uint32_t keysize, elemsize;         /* slot sizes (a pointer when indirect) */
    uint32_t keyoff, elemoff, ovfoff, bucketsize;
    uint32_t hdrsize;                   /* array/block header, keeps bucket alignment */
    uint32_t balign;                    /* bucket alignment */
    bool indirectkey, indirectelem;
    bool reflexive;                     /* k == k for every key (no NaN) */
    bool keyupdate;
    bool ownedkey;                      /* GM_TYPE_OWNED_STR */
    uint8_t kind;                       /* enum key_kind (map_impl.h): which fast path fits */
    bool gc;                            /* lives on the GC heap (gm_map_new_gc) */
    bool bscan;                         /* GC map whose buckets hold pointers: scanned, barriered */
    const gm_type *btype;               /* GC map: the bucket's type (precise scan mask) */
    gm_barray *hdr_cur, *hdr_old;       /* GC map: headers of buckets / oldbuckets */
    bool owns_storage;                  /* entries own allocations (indirect or owned keys) */
    bool prefetch;                      /* the array is too big for the caches: prefetch buckets */
    uint8_t *zero;                      /* zero value for get_or_zero if > ZERO_BUF_SIZE */

    /* memory and work counters (gm_map_stats) */
    size_t bytes_held;
    uint64_t n_grows, n_same_grows, n_evac_buckets, n_moved, n_ovf, n_shrinks;
    size_t sparse_writes;               /* shrink policy: writes while sparse and steady, in a row */
    size_t sparse_base;                 /* count when that streak began */
    size_t sparse_below;                /* sparse below this count; 0: cannot shrink now */
    size_t grow_at;                     /* inserting a new key at this count grows (SIZE_MAX: resizing) */
    uint32_t ovf_limit;                 /* this many overflow buckets call for a same-size grow */
    uint8_t min_B;                      /* never shrink below the size hinted at creation */

    /* weak-keyed maps (map_weak.c): the header the user holds is a front
     * with only kt, vt, gc and weak set; the entries live in a table behind
     * it, whose weak_back points to the same gm_wmap */
    struct gm_wmap *weak;               /* this header is a weak map's front */
    struct gm_wmap *weak_back;          /* this table is behind a front: iterators translate */
};

/* The public entry points of map.c / map_iter.c / map_check.c hand a weak
 * map's front to map_weak.c (one test of a field already in cache). */
#define WEAK_FRONT(m) GM_UNLIKELY((m) != NULL && (m)->weak != NULL)
GM_INTERNAL size_t gm_wmap_len(const gm_map *m);
GM_INTERNAL void *gm_wmap_get(const gm_map *m, const void *key);
GM_INTERNAL const void *gm_wmap_get_or_zero(const gm_map *m, const void *key);
GM_INTERNAL void *gm_wmap_assign(gm_map *m, const void *key);
GM_INTERNAL void gm_wmap_put(gm_map *m, const void *key, const void *val);
GM_INTERNAL bool gm_wmap_delete(gm_map *m, const void *key);
GM_INTERNAL void gm_wmap_clear(gm_map *m);
GM_INTERNAL gm_map *gm_wmap_clone(const gm_map *m);
GM_INTERNAL void gm_wmap_iter_init(gm_map_iter *it, gm_map *m);
GM_INTERNAL bool gm_wmap_iter_next(gm_map_iter *it, const void **keyp, void **valp);
GM_INTERNAL const char *gm_wmap_check(const gm_map *m);
GM_INTERNAL void gm_wmap_stats(const gm_map *m, gm_map_stats *out);
/* gm_map_iter_next without the weak-map translation */
GM_INTERNAL bool gm_map_iter_next_raw(gm_map_iter *it, const void **keyp, void **valp);

/* ---- bucket accessors ---- */
static inline uint8_t *b_key(const gm_map *m, uint8_t *b, unsigned i)
{ return b + m->keyoff + (size_t)i * m->keysize; }
static inline uint8_t *b_elem(const gm_map *m, uint8_t *b, unsigned i)
{ return b + m->elemoff + (size_t)i * m->elemsize; }
static inline uint8_t *b_ovf(const gm_map *m, const uint8_t *b)
{ uint8_t *o; memcpy(&o, b + m->ovfoff, sizeof o); return o; }
static inline void b_set_ovf(const gm_map *m, uint8_t *b, uint8_t *o)
{ if (m->bscan) gm_store(b + m->ovfoff, o); else memcpy(b + m->ovfoff, &o, sizeof o); }
static inline uint8_t *bucket_at(const gm_map *m, uint8_t *arr, size_t i)
{ return arr + i * m->bucketsize; }
static inline void *deref(const void *slot)
{ void *p; memcpy(&p, slot, sizeof p); return p; }
static inline uint8_t *key_of(const gm_map *m, uint8_t *b, unsigned i)
{ uint8_t *k = b_key(m, b, i); return m->indirectkey ? (uint8_t *)deref(k) : k; }
static inline uint8_t *elem_of(const gm_map *m, uint8_t *b, unsigned i)
{ uint8_t *e = b_elem(m, b, i); return m->indirectelem ? (uint8_t *)deref(e) : e; }

/* memcpy/memset with the common slot sizes inlined (a call otherwise). */
static inline void slot_copy(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 0: return;
    case 4: memcpy(dst, src, 4); return;
    case 8: memcpy(dst, src, 8); return;
    case 16: memcpy(dst, src, 16); return;
    default: memcpy(dst, src, n);
    }
}
static inline void slot_clear(void *dst, size_t n)
{
    switch (n) {
    case 0: return;
    case 4: memset(dst, 0, 4); return;
    case 8: memset(dst, 0, 8); return;
    case 16: memset(dst, 0, 16); return;
    default: memset(dst, 0, n);
    }
}

/* ---- writes into buckets and the header ----
 * On a GC map whose buckets hold pointers every pointer write goes through
 * the write barrier (gm_store, gm_typed_memmove, gm_typed_memclr); elsewhere
 * these are plain copies. */
static inline void hdr_store(const gm_map *m, void *field, void *p)
{
    if (m->gc) gm_store(field, p);
    else memcpy(field, &p, sizeof p);
}
static inline void mw_key(const gm_map *m, void *dst, const void *src)
{
    if (m->bscan && (m->indirectkey || m->kt->ptrmask)) {
        if (m->indirectkey) gm_store(dst, deref(src));
        else gm_typed_memmove(m->kt, dst, src);
    } else {
        slot_copy(dst, src, m->keysize);
    }
}
static inline void mw_elem(const gm_map *m, void *dst, const void *src)
{
    if (m->bscan && (m->indirectelem || m->vt->ptrmask)) {
        if (m->indirectelem) gm_store(dst, deref(src));
        else gm_typed_memmove(m->vt, dst, src);
    } else {
        slot_copy(dst, src, m->elemsize);
    }
}
static inline void mw_clear_key(const gm_map *m, void *dst)
{
    if (m->bscan && (m->indirectkey || m->kt->ptrmask)) {
        if (m->indirectkey) gm_store(dst, NULL);
        else gm_typed_memclr(m->kt, dst);
    } else {
        slot_clear(dst, m->keysize);
    }
}
static inline void mw_clear_elem(const gm_map *m, void *dst)
{
    if (m->bscan && (m->indirectelem || m->vt->ptrmask)) {
        if (m->indirectelem) gm_store(dst, NULL);
        else gm_typed_memclr(m->vt, dst);
    } else {
        slot_clear(dst, m->elemsize);
    }
}

static inline bool is_empty(uint8_t top) { return top <= EMPTY_ONE; }
static inline bool evacuated(const uint8_t *b)
{ return b[0] > EMPTY_ONE && b[0] < MIN_TOPHASH; }
static inline uint8_t tophash(uint64_t h)
{ uint8_t t = (uint8_t)(h >> 56); return t < MIN_TOPHASH ? (uint8_t)(t + MIN_TOPHASH) : t; }
static inline size_t bucket_mask(unsigned B) { return ((size_t)1 << B) - 1; }

static inline uint8_t flags_load(const gm_map *m)
{ return atomic_load_explicit(&((gm_map *)m)->flags, memory_order_relaxed); }
static inline void flags_store(gm_map *m, uint8_t f)
{ atomic_store_explicit(&m->flags, f, memory_order_relaxed); }
static inline bool growing(const gm_map *m) { return m->oldbuckets != NULL; }
static inline bool same_size_grow(const gm_map *m) { return flags_load(m) & F_SAME_SIZE; }
static inline bool shrinking(const gm_map *m) { return flags_load(m) & F_SHRINK; }
static inline size_t noldbuckets(const gm_map *m)
{
    uint8_t f = flags_load(m);
    unsigned ob = m->B;
    if (f & F_SHRINK) ob++;
    else if (!(f & F_SAME_SIZE)) ob--;
    return (size_t)1 << ob;
}
static inline size_t oldbucket_mask(const gm_map *m) { return noldbuckets(m) - 1; }

static inline bool over_load_factor(size_t count, unsigned B)
{
    if (count <= BUCKET_CNT) return false;
    if (B >= 58) return false;
    return count > LOAD_NUM * (((size_t)1 << B) / LOAD_DEN);
}

/* ---- shared between map.c, map_iter.c, map_check.c, map_fast.c, map_mem.c ---- */
GM_INTERNAL uint8_t *gm_map_access_k(gm_map *m, const void *key, uint8_t **elem);
GM_INTERNAL void gm_map_begin_write(gm_map *m);
GM_INTERNAL void gm_map_end_write(gm_map *m);
GM_INTERNAL bool gm_map_grow_work(gm_map *m, size_t bucket);
GM_INTERNAL bool gm_map_hash_grow(gm_map *m);
GM_INTERNAL void gm_map_shrink_start(gm_map *m);
GM_INTERNAL void gm_map_delete_clear(gm_map *m, uint8_t *b, unsigned i);
GM_INTERNAL void gm_map_delete_tail(gm_map *m, uint8_t *borig, uint8_t *b, unsigned i);
GM_INTERNAL void gm_map_emptied(gm_map *m);

/* memory (map_mem.c) */
GM_INTERNAL uint8_t *gm_arr_new(gm_map *m, unsigned B, gm_barray **hdr);
GM_INTERNAL void gm_arr_install(gm_map *m, uint8_t *buckets, gm_barray *hdr, bool grow);
GM_INTERNAL gm_barray *gm_arr_hdr(const gm_map *m, uint8_t *buckets);
GM_INTERNAL uint8_t *gm_ovf_new(gm_map *m, uint8_t *arr);
GM_INTERNAL bool gm_ovf_reserve(gm_map *m, uint8_t *arr, size_t n);
GM_INTERNAL void gm_arr_retire(gm_map *m, uint8_t *arr);
GM_INTERNAL void gm_arr_free_now(gm_map *m, gm_barray *a);
GM_INTERNAL void gm_arr_reset(gm_map *m, uint8_t *arr);
GM_INTERNAL void gm_mem_maintain(gm_map *m);
GM_INTERNAL void gm_mem_unpin_retired(gm_map *m);
GM_INTERNAL void gm_mem_release_all(gm_map *m);
GM_INTERNAL bool gm_arr_prepare(gm_map *m, unsigned B);
GM_INTERNAL void gm_prep_cancel(gm_map *m);
GM_INTERNAL void gm_prep_hurry(gm_map *m);
GM_INTERNAL bool gm_prep_wanted(const gm_map *m);
GM_INTERNAL bool gm_prep_early(const gm_map *m);
GM_INTERNAL int gm_arr_prepared(gm_map *m, unsigned B, uint8_t **buckets, gm_barray **hdr);
GM_INTERNAL bool gm_map_bg_enabled(void);
GM_INTERNAL bool gm_map_bg_quiesce(void);
GM_INTERNAL void gm_map_bg_pause(bool on);
GM_INTERNAL void gm_map_options_set(const char *gmdebug);
GM_INTERNAL uint64_t gm_map_seed(void);
GM_INTERNAL uint64_t gm_map_rand(void);
GM_INTERNAL bool gm_map_gc_layout(gm_map *m);
GM_INTERNAL void *gm_map_malloc(size_t n, size_t align);
GM_INTERNAL void *gm_own_alloc(gm_map *m, size_t n, const gm_type *t);
GM_INTERNAL void gm_own_free(gm_map *m, void *p, size_t align, bool published);
GM_INTERNAL void gm_map_mfree(void *p);
/* A detached helper thread with every signal blocked (map_mem.c). */
GM_INTERNAL bool gm_map_start_helper(void *(*fn)(void *), const char *name);

#ifdef GOMAP_FAULT_INJECTION
/* Test hook: the n-th map allocation from now fails (0 turns it off). */
GM_API void gm_map_fault_alloc_after(long n);
/* Test hook: with hold on, the helper thread waits after it has released
 * a retired array and before it takes bg_mu again; returns how many
 * releases are waiting there now (0 or 1). */
GM_API int gm_map_fault_hold_after_release(int hold);
#endif

#endif
