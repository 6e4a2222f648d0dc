/* swiss_internal.h - the Swiss-table engine's private structures, shared by
 * swiss.c, swiss_iter.c and swiss_check.c.  The design and its invariants
 * are described at the top of swiss.c. */
#ifndef GOMAP_SWISS_INTERNAL_H
#define GOMAP_SWISS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/internal.h"
#include "gomap/gc.h"
#include "gomap/map.h"
#include "hash/hash.h"
#include "map/map_engine.h"

/* ---- tunables (see the essay in swiss.c) ---- */
#ifndef SW_SLOTS
#define SW_SLOTS 16                 /* slots (and control bytes) per group: 8 or 16 */
#endif
_Static_assert(SW_SLOTS == 8 || SW_SLOTS == 16, "SW_SLOTS");
#define SW_SMALL 8                  /* slots of a small map's single group (Go's abi.SwissMapGroupSlots) */
#define SW_MAX_TABLE 1024           /* slots per table, at most (Go's maxTableCapacity) */
#define SW_MAX_INLINE 128           /* larger keys / values are stored indirectly */
#define SW_ZERO_BUF 1024            /* values up to this size read as a shared zero */
#ifndef SW_SHRINK_AT
#define SW_SHRINK_AT 16             /* a table at most 1/16 live shrinks (see SHRINKING in swiss.c) */
#endif

/* ---- control bytes ---- */
#define SW_EMPTY 0x80u
#define SW_DELETED 0xFEu
#define SW_LSB 0x0101010101010101ull
#define SW_MSB 0x8080808080808080ull
#define SW_LOW7 0x7f7f7f7f7f7f7f7full

/* map flags (same bit as the classic engine's F_WRITING) */
enum { SWF_WRITING = 4 };

/* A table: capacity slots in capacity/SW_SLOTS groups; control bytes in one
 * array, slots (each a key then its value) in another. */
typedef struct sw_table {
    struct sw_table *next;      /* malloc maps: link in the retired list */
    uint8_t *ctrl;              /* capacity control bytes: group g's are ctrl[16g..16g+15] */
    uint8_t *slots;             /* capacity slots: group g's are slots[16g..16g+15] */
    size_t mask;                /* groups - 1 */
    uint32_t capacity;          /* slots: a power of two, 8..SW_MAX_TABLE */
    uint32_t used;              /* live entries */
    uint32_t tombstones;        /* DELETED control bytes */
    uint32_t growth_left;       /* EMPTY slots an insert may still fill */
    int64_t prefix;             /* the top local_depth bits of its keys' hashes (its first
                                 * directory entry is prefix << (gd - local_depth), so a
                                 * directory doubling changes no table); -1 once replaced */
    uint8_t local_depth;
    bool small;                 /* the map's single group (no directory) */
    bool slab;                  /* malloc map: a block of one of the map's chunks (swiss.c, MEMORY) */
    size_t bytes;               /* memory held by this table */
} sw_table;

/* A directory entry: its table and, copied from it, what a probe reads
 * (a table's ctrl, slots and mask never change), so that a lookup goes
 * from the directory straight to the control bytes without first loading
 * the table's header, a cache line of its own. */
typedef struct sw_dent {
    sw_table *t;
    uint8_t *ctrl;
    uint8_t *slots;
    size_t mask;
} sw_dent;

typedef struct sw_map {
    /* These four fields sit where the classic struct gm_map has them
     * (static assertions in swiss.c): gm_map_len and the engine dispatch
     * read them without knowing the engine. */
    size_t count;
    _Atomic uint8_t flags;
    uint8_t engine;             /* GM_ENGINE_TAG_SWISS */
    uint8_t gd;                 /* global depth: the directory has 2^gd entries */
    uint8_t kind;               /* enum sw_kind: which fast path fits */
    uint32_t n_at_gd;           /* tables whose local depth is gd */
    uint64_t seed;

    sw_table *small;            /* dir == NULL: the single group (NULL before the first insert) */
    sw_dent *dir;               /* 2^gd entries, or NULL while small */
    size_t dir_len;
    sw_dent *dir_next;          /* the next doubling's directory, filled ahead by splits, or NULL */
    size_t dir_next_done;       /* entries of dir mirrored into dir_next (2 each) */
    uint64_t clear_seq;         /* bumped by clear: stops running iterators */
    _Atomic uint32_t iters_open;
    sw_table *retired;          /* malloc maps: tables replaced while iterators were open */
    void *deferred;             /* malloc maps: entry storage freed while iterators were open */
    struct sw_chunk *chunks;    /* malloc maps: chunks with a block to hand out (MEMORY in swiss.c) */
    struct sw_chunk *spare;     /* malloc maps: one empty chunk kept for the next table */
    size_t nchunks;             /* chunks mapped, spare included */
    uint64_t n_chunks_prepared; /* of them, taken ready (huge, faulted in) from the helper */

    /* layout, fixed at creation */
    const gm_type *kt, *vt;
    const gm_type *gtype;       /* GC map whose slots hold pointers: the slot's type */
    uint64_t (*hasher)(const void *, uint64_t);
    bool (*keyeq)(const void *, const void *);
    uint32_t keysize, elemsize; /* slot sizes (a pointer when indirect) */
    uint32_t slotsize, elemoff, galign;
    bool indirectkey, indirectelem, reflexive, keyupdate, ownedkey, owns_storage;
    bool gc, bscan;
    uint8_t *zero;              /* zero value for get_or_zero if > SW_ZERO_BUF */

    /* sizes and work counters (gm_map_stats) */
    size_t min_cap;             /* never shrink below the capacity the hint asked for */
    size_t cap_total;           /* slots of every table in the directory */
    size_t ntables;
    size_t bytes_held;
    uint64_t n_moved, n_grows, n_splits, n_merges, n_shrinks, n_doublings, n_halvings;
    uint64_t n_prunes, n_pruned, n_rehashes;
    uint64_t moved_this_write, max_moved_write;
    uint64_t max_dir_copied;    /* most directory entries one doubling had left to copy */
} sw_map;

enum sw_kind { SK_GENERIC, SK_U32, SK_U64, SK_STR };

/* ---- table memory of big malloc maps (MEMORY in swiss.c) ---- */
#define SW_CHUNK ((size_t)2 << 20)  /* one huge page, aligned to its size */
#ifndef SW_SLAB_MIN_TABLES
#define SW_SLAB_MIN_TABLES 256      /* a map with this many tables (~4.5 MiB of u64) takes full ones from chunks */
#endif
/* A chunk's header, at its start; blocks follow at SW_CHUNK_HDR. */
typedef struct sw_chunk {
    struct sw_chunk *next, *prev;   /* in m->chunks while it has a block to hand out */
    void *free;                     /* returned blocks, linked through their first word */
    size_t block;                   /* bytes per block */
    uint32_t nblocks, carved, live; /* blocks it holds, handed out so far, in use now */
    bool listed;
} sw_chunk;
#define SW_CHUNK_HDR ((size_t)64)
#define SW_DIR_STEP 4               /* directory entries each split mirrors into dir_next */

#define SW_INLINE static inline __attribute__((always_inline))

/* ---- control bytes: matching a whole group at once ----
 * A match yields an sw_bits: bit i set for slot i (at most 16 slots).  Two
 * implementations compute the same bits: SSE2 (x86-64's baseline; one
 * compare and one movemask) and SWAR on 64-bit words, which any CPU runs.
 * sw_match_* use SSE2 where the compiler targets it (unless GM_SW_NO_SIMD
 * is defined), else SWAR; both are always compiled where they can be, so
 * that the tests compare them with each other and with a byte loop. */
typedef uint32_t sw_bits;
SW_INLINE unsigned sw_first(sw_bits b) { return (unsigned)__builtin_ctz(b); }
#define SW_GROUP_MASK ((sw_bits)((1u << SW_SLOTS) - 1))

/* One 64-bit word of control bytes, little-endian order. */
SW_INLINE uint64_t sw_word(const uint8_t *c)
{
    uint64_t w;
    memcpy(&w, c, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}
/* High bit of byte i set exactly when byte i of x is zero (exact). */
SW_INLINE uint64_t sw_zero_bytes(uint64_t x) { return ~(((x & SW_LOW7) + SW_LOW7) | x | SW_LOW7); }
/* 0x80-per-byte mask -> one bit per byte (no carries: every partial
 * product lands on its own bit). */
SW_INLINE sw_bits sw_compress(uint64_t m) { return (sw_bits)(((m >> 7) * 0x0102040810204080ull) >> 56); }
/* EMPTY is 0x80: high bit set, bit 1 clear (DELETED 0xFE has bit 1 set). */
SW_INLINE uint64_t sw_w_h2(uint64_t w, uint8_t h2) { return sw_zero_bytes(w ^ (SW_LSB * h2)); }
SW_INLINE uint64_t sw_w_empty(uint64_t w) { return w & ~(w << 6) & SW_MSB; }

typedef struct { uint64_t w[SW_SLOTS / 8]; } sw_swar;
SW_INLINE sw_swar sw_swar_load(const uint8_t *g)
{
    sw_swar v;
    for (unsigned j = 0; j < SW_SLOTS / 8; j++) v.w[j] = sw_word(g + 8 * j);
    return v;
}
#define SW_SWAR_COMBINE(v, expr)                                                        \
    sw_bits r_ = 0;                                                                     \
    for (unsigned j_ = 0; j_ < SW_SLOTS / 8; j_++) {                                    \
        uint64_t w = (v).w[j_];                                                         \
        r_ |= sw_compress(expr) << (8 * j_);                                            \
    }                                                                                   \
    return r_
SW_INLINE sw_bits sw_swar_h2(sw_swar v, uint8_t h2) { SW_SWAR_COMBINE(v, sw_w_h2(w, h2)); }
SW_INLINE sw_bits sw_swar_empty(sw_swar v) { SW_SWAR_COMBINE(v, sw_w_empty(w)); }
SW_INLINE sw_bits sw_swar_empty_or_deleted(sw_swar v) { SW_SWAR_COMBINE(v, w & SW_MSB); }
SW_INLINE sw_bits sw_swar_full(sw_swar v) { SW_SWAR_COMBINE(v, ~w & SW_MSB); }

#if defined(__SSE2__)
#include <emmintrin.h>
#define SW_HAVE_SSE2 1
SW_INLINE __m128i sw_sse2_load(const uint8_t *g)
{
#if SW_SLOTS == 16
    return _mm_loadu_si128((const __m128i *)(const void *)g);
#else
    return _mm_loadl_epi64((const __m128i *)(const void *)g);
#endif
}
SW_INLINE sw_bits sw_sse2_h2(__m128i v, uint8_t h2)
{ return (sw_bits)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)h2))) & SW_GROUP_MASK; }
SW_INLINE sw_bits sw_sse2_empty(__m128i v)
{ return (sw_bits)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)SW_EMPTY))) & SW_GROUP_MASK; }
SW_INLINE sw_bits sw_sse2_empty_or_deleted(__m128i v) { return (sw_bits)_mm_movemask_epi8(v) & SW_GROUP_MASK; }
SW_INLINE sw_bits sw_sse2_full(__m128i v) { return ~(sw_bits)_mm_movemask_epi8(v) & SW_GROUP_MASK; }
#endif

#if defined(SW_HAVE_SSE2) && !defined(GM_SW_NO_SIMD)
#define SW_MATCH_IMPL "sse2"
typedef __m128i sw_cw;
#define SW_IMPL(f) sw_sse2_##f
#else
#define SW_MATCH_IMPL "swar"
typedef sw_swar sw_cw;
#define SW_IMPL(f) sw_swar_##f
#endif
SW_INLINE sw_cw sw_ctrl(const uint8_t *g) { return SW_IMPL(load)(g); }
SW_INLINE sw_bits sw_match_h2(sw_cw v, uint8_t h2) { return SW_IMPL(h2)(v, h2); }
SW_INLINE sw_bits sw_match_empty(sw_cw v) { return SW_IMPL(empty)(v); }
SW_INLINE sw_bits sw_match_empty_or_deleted(sw_cw v) { return SW_IMPL(empty_or_deleted)(v); }
SW_INLINE sw_bits sw_match_full(sw_cw v) { return SW_IMPL(full)(v); }
SW_INLINE void sw_ctrl_set(uint8_t *g, unsigned i, uint8_t c) { g[i] = c; }
SW_INLINE void sw_ctrl_fill(uint8_t *g, uint8_t c) { memset(g, c, SW_SLOTS); }

SW_INLINE uint8_t sw_h2(uint64_t h) { return (uint8_t)(h & 0x7f); }
SW_INLINE size_t sw_h1(uint64_t h) { return (size_t)(h >> 7); }

/* ---- layout ---- */
/* A group is named by its control bytes g (inside t->ctrl); slot i of that
 * group is at the same index of t->slots. */
#define sw_group(m, t, g) ((void)(m), (t)->ctrl + (size_t)(g) * SW_SLOTS)
SW_INLINE uint8_t *sw_slot_at(const sw_map *m, const uint8_t *ctrl, uint8_t *slots, const uint8_t *g, unsigned i)
{ return slots + ((size_t)(g - ctrl) + i) * m->slotsize; }
static inline void *sw_deref(const void *slot) { void *p; memcpy(&p, slot, sizeof p); return p; }
SW_INLINE uint8_t *sw_key_at(const sw_map *m, const uint8_t *ctrl, uint8_t *slots, const uint8_t *g, unsigned i)
{ uint8_t *k = sw_slot_at(m, ctrl, slots, g, i); return m->indirectkey ? (uint8_t *)sw_deref(k) : k; }
SW_INLINE uint8_t *sw_elem_at(const sw_map *m, const uint8_t *ctrl, uint8_t *slots, const uint8_t *g, unsigned i)
{
    uint8_t *e = sw_slot_at(m, ctrl, slots, g, i) + m->elemoff;
    return m->indirectelem ? (uint8_t *)sw_deref(e) : e;
}
/* t: a table or a directory entry (both have ctrl and slots). */
#define sw_slot(m, t, g, i) sw_slot_at((m), (t)->ctrl, (t)->slots, (g), (i))
#define sw_key(m, t, g, i) sw_key_at((m), (t)->ctrl, (t)->slots, (g), (i))
#define sw_elem(m, t, g, i) sw_elem_at((m), (t)->ctrl, (t)->slots, (g), (i))

SW_INLINE size_t sw_dir_index(const sw_map *m, uint64_t h)
{ return m->gd ? (size_t)(h >> (64 - m->gd)) : 0; }
/* The first directory entry of a table of the directory. */
SW_INLINE size_t sw_tindex(const sw_map *m, const sw_table *t)
{ return (size_t)t->prefix << (m->gd - t->local_depth); }
/* Prefetches the slots of group `off` of entry d's table (at most 8
 * lines): they load while the probe waits for the group's control bytes,
 * instead of after them (as boost's flat map does).  A hit at 10M entries
 * otherwise pays two dependent memory misses, control bytes then slot.
 * Only for maps of 2^SW_PREFETCH_MIN_GD directory entries or more (about
 * 350K entries, past the caches): measured at 10M u64, 3 interleaved
 * pairs, medians, hit 82.5 -> 60.3 ns and delete 101.6 -> 89.3, but miss
 * 30.1 -> 44.2 (lines loaded for nothing); at 100K, in cache, it only
 * costs instructions. */
#define SW_PREFETCH_LINES 8
#ifndef SW_PREFETCH_MIN_GD
#define SW_PREFETCH_MIN_GD 9
#endif
SW_INLINE void sw_prefetch_slots(const sw_map *m, const uint8_t *slots, size_t off)
{
    if (m->gd < SW_PREFETCH_MIN_GD) return;
    const uint8_t *p = slots + off * SW_SLOTS * (size_t)m->slotsize;
    size_t n = (size_t)SW_SLOTS * m->slotsize;
    if (n > SW_PREFETCH_LINES * 64) n = SW_PREFETCH_LINES * 64;
    for (size_t o = 0; o < n; o += 64) __builtin_prefetch(p + o);
}
SW_INLINE const sw_dent *sw_dent_for(const sw_map *m, uint64_t h) { return &m->dir[sw_dir_index(m, h)]; }

static inline uint8_t sw_flags_load(const sw_map *m)
{ return atomic_load_explicit(&((sw_map *)m)->flags, memory_order_relaxed); }
static inline void sw_flags_store(sw_map *m, uint8_t f)
{ atomic_store_explicit(&m->flags, f, memory_order_relaxed); }

SW_INLINE uint64_t sw_hash_kind(const sw_map *m, int kind, const void *key)
{
    switch (kind) {
    case SK_U32: { uint32_t v; memcpy(&v, key, 4); return gm_hash_u32v(v, m->seed); }
    case SK_U64: { uint64_t v; memcpy(&v, key, 8); return gm_hash_u64v(v, m->seed); }
    case SK_STR: { const gm_str *s = key; return gm_hash_mem(s->ptr, s->len, m->seed); }
    default: return m->hasher(key, m->seed);
    }
}
static inline uint64_t sw_hash(const sw_map *m, const void *key) { return sw_hash_kind(m, m->kind, key); }

SW_INLINE bool sw_equal_kind(const sw_map *m, int kind, const void *key, const uint8_t *k)
{
    switch (kind) {
    case SK_U32: return memcmp(key, k, 4) == 0;
    case SK_U64: { uint64_t a, b; memcpy(&a, key, 8); memcpy(&b, k, 8); return a == b; }
    case SK_STR: {
        const gm_str *x = key;
        gm_str y;
        memcpy(&y, k, sizeof y);
        return x->len == y.len && (x->ptr == y.ptr || y.len == 0 || memcmp(x->ptr, y.ptr, y.len) == 0);
    }
    default: return m->keyeq(key, k);
    }
}

/* ---- shared between the swiss*.c files ---- */
GM_INTERNAL uint8_t *gm_sw_find(const sw_map *m, const void *key, uint8_t **elem);
GM_INTERNAL size_t gm_sw_cap_for(size_t n);
GM_INTERNAL bool gm_sw_slab_table_ok(const sw_map *m, const sw_table *t);

#endif
