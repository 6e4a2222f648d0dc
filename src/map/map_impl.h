/* map_impl.h - the lookup, assign and delete loops, written once.
 *
 * Each loop is an always-inline template over a constant key kind: the
 * generic kind calls the type's hash and equal functions; the u32, u64 and
 * string kinds (Go's mapaccess1_fast64 and friends) compare inline and hash
 * with the same functions the built-in types use (hash/hash.h), so a map can
 * be used through both entry points at once. */
#ifndef GOMAP_MAP_IMPL_H
#define GOMAP_MAP_IMPL_H

#include "hash/hash.h"
#include "map/map_internal.h"

enum key_kind { KK_GENERIC, KK_U32, KK_U64, KK_STR };

#define GM_INLINE static inline __attribute__((always_inline))

GM_INLINE uint64_t kk_hash(const gm_map *m, int kind, const void *key)
{
    switch (kind) {
    case KK_U32: { uint32_t v; memcpy(&v, key, 4); return gm_hash_u32v(v, m->seed); }
    case KK_U64: { uint64_t v; memcpy(&v, key, 8); return gm_hash_u64v(v, m->seed); }
    case KK_STR: {
        const gm_str *s = key;
        /* 9..16 bytes (ids, hex keys, short names): XXH3's own routine for
         * that length, inline -- the value gm_hash_mem returns, which
         * reaches the same routine through an out-of-line call and a
         * length dispatch (11 instructions a lookup) */
        if (s->len - 9u <= 7u)
            return XXH3_len_9to16_64b((const xxh_u8 *)s->ptr, s->len, XXH3_kSecret, m->seed);
        return gm_hash_mem(s->ptr, s->len, m->seed);
    }
    default: return m->hasher(key, m->seed);
    }
}

/* The map's hash of a key in a slot, by the map's own kind: one predictable
 * branch instead of an indirect call (evacuation, iteration, checks). */
static inline uint64_t map_hash(const gm_map *m, const void *key)
{
    switch (m->kind) {
    case KK_U32: return kk_hash(m, KK_U32, key);
    case KK_U64: return kk_hash(m, KK_U64, key);
    case KK_STR: return kk_hash(m, KK_STR, key);
    default: return m->hasher(key, m->seed);
    }
}

GM_INLINE bool kk_equal(const gm_map *m, int kind, const void *key, const uint8_t *k)
{
    switch (kind) {
    case KK_U32: return memcmp(key, k, 4) == 0;
    case KK_U64: { uint64_t a, b; memcpy(&a, key, 8); memcpy(&b, k, 8); return a == b; }
    case KK_STR: {
        const gm_str *x = key;
        gm_str y;
        memcpy(&y, k, sizeof y);
        return x->len == y.len && (x->ptr == y.ptr || y.len == 0 || memcmp(x->ptr, y.ptr, y.len) == 0);
    }
    default: return m->keyeq(key, k);
    }
}

/* ---- SWAR: the 8 tophash bytes of a bucket examined as one word ----
 * zero_bytes(x) has the high bit of byte i set exactly when byte i of x is
 * 0 (no false positives, unlike the shorter borrow trick), so match masks
 * never send us to a slot whose tophash differs. */
#define LSB8 0x0101010101010101ull
#define LOW7 0x7f7f7f7f7f7f7f7full

GM_INLINE uint64_t tophash_word(const uint8_t *b)
{
    uint64_t w;
    memcpy(&w, b, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

GM_INLINE uint64_t zero_bytes(uint64_t x)
{
    return ~(((x & LOW7) + LOW7) | x | LOW7);
}

/* slots whose tophash is `top` */
GM_INLINE uint64_t match_top(uint64_t w, uint8_t top) { return zero_bytes(w ^ (LSB8 * top)); }
/* slots that are empty (EMPTY_REST or EMPTY_ONE) */
GM_INLINE uint64_t match_empty(uint64_t w) { return zero_bytes(w & ~LSB8); }
/* slots that hold an entry (tophash >= MIN_TOPHASH): per byte, the low
 * seven bits plus 0x80 - MIN_TOPHASH carry into the high bit exactly when
 * they are at least MIN_TOPHASH; a byte >= 0x80 has it already */
GM_INLINE uint64_t match_full(uint64_t w)
{
    return (((w & LOW7) + LSB8 * (0x80 - MIN_TOPHASH)) | w) & ~LOW7;
}
GM_INLINE unsigned first_slot(uint64_t mask) { return (unsigned)__builtin_ctzll(mask) >> 3; }

/* Key slot i: a constant layout for the fast kinds (never indirect, keys at
 * offset 8), the map's layout otherwise. */
GM_INLINE uint8_t *kk_key(const gm_map *m, int kind, uint8_t *b, unsigned i)
{
    switch (kind) {
    case KK_U32: return b + 8 + 4 * (size_t)i;
    case KK_U64: return b + 8 + 8 * (size_t)i;
    case KK_STR: return b + 8 + sizeof(gm_str) * (size_t)i;
    default: return key_of(m, b, i);
    }
}

/* A bucket spans several cache lines: tophash and keys first, values after.
 * In an array too big for the caches, asking for all of them as soon as the
 * bucket is known lets the value line arrive in parallel with the tophash
 * line instead of after the key compare.  Measured at 10M u64 entries
 * (medians of 5 interleaved runs): hits 1.36x and inserts 1.10x faster,
 * misses 0.84x (the extra lines cost bandwidth); at 100K, where the array
 * mostly fits in cache, misses lost more than hits gained -- so only arrays
 * of PREFETCH_MIN_BYTES or more do it (m->prefetch, set at install).
 * Deletes, which read no value, ask for the keys' second line only
 * (delete_impl). */
GM_INLINE void prefetch_bucket(const gm_map *m, const uint8_t *b)
{
    if (!m->prefetch) return;
    /* Unrolled for the usual sizes (u64 -> u64: 144 bytes, string -> u64:
     * 208): three compares instead of a loop that reloads the size. */
    uint32_t size = m->bucketsize;
    __builtin_prefetch(b + 64);
    if (size > 128) __builtin_prefetch(b + 128);
    if (size > 192) __builtin_prefetch(b + 192);
    for (uint32_t off = 256; off < size; off += 64) __builtin_prefetch(b + off);
}

GM_INLINE uint8_t *lookup_bucket(const gm_map *m, uint64_t h)
{
    size_t mask = bucket_mask(m->B);
    uint8_t *b = bucket_at(m, m->buckets, h & mask);
    if (GM_UNLIKELY(m->oldbuckets != NULL)) {
        uint8_t *ob = bucket_at(m, m->oldbuckets, h & oldbucket_mask(m));
        if (!evacuated(ob)) b = ob;
    }
    return b;
}

/* mapaccessK: the key slot (and *elem) of `key`, or NULL. */
GM_INLINE uint8_t *access_impl(const gm_map *m, int kind, const void *key, uint8_t **elem)
{
    if (m == NULL || m->count == 0) return NULL;
    if (flags_load(m) & F_WRITING) gm_fatal("concurrent map read and map write");
    uint64_t h = kk_hash(m, kind, key);
    uint8_t top = tophash(h);
    uint8_t *b0 = lookup_bucket(m, h);
    prefetch_bucket(m, b0);
    /* The overflow pointer's line, which a full bucket needs next (at 100K
     * u64 entries about a quarter of the buckets are full): a miss walks on
     * without waiting for it.  Interleaved runs at 100K u64 (medians of 5,
     * load 2-5): miss 9.84 -> 9.17 ns and 10.9 -> 10.1; the same line in
     * inserts showed no gain, so only lookups ask for it. */
    if (!m->prefetch) __builtin_prefetch(b0 + m->ovfoff);
    for (uint8_t *b = b0; b; b = b_ovf(m, b)) {
        uint64_t w = tophash_word(b);
        for (uint64_t mt = match_top(w, top); mt; mt &= mt - 1) {
            unsigned i = first_slot(mt);
            uint8_t *k = kk_key(m, kind, b, i);
            if (kk_equal(m, kind, key, k)) {
                *elem = elem_of(m, b, i);
                return k;
            }
        }
        if (zero_bytes(w)) return NULL; /* an EMPTY_REST: the chain ends here */
    }
    return NULL;
}

/* Go's "!h.growing() && (overLoadFactor(h.count+1, h.B) ||
 * tooManyOverflowBuckets(h.noverflow, h.B))", as two compares against
 * thresholds precomputed per table (limits_update in map.c). */
static inline bool should_grow(const gm_map *m)
{
    return m->count >= m->grow_at || m->noverflow >= m->ovf_limit;
}

GM_INTERNAL bool gm_map_first_array(gm_map *m);
GM_INTERNAL void *gm_map_insert_new(gm_map *m, const void *key, uint8_t top,
                                    uint8_t *insertb, unsigned inserti, uint8_t *last);

/* mapassign body; the caller holds F_WRITING.  NULL if out of memory. */
GM_INLINE void *assign_impl(gm_map *m, int kind, const void *key, uint64_t h)
{
    if (m->buckets == NULL && !gm_map_first_array(m)) return NULL;
    bool tried_grow = false;
    uint8_t top = tophash(h);
again:;
    size_t bucket = h & bucket_mask(m->B);
    if (growing(m) && !gm_map_grow_work(m, bucket)) return NULL;
    uint8_t *b = bucket_at(m, m->buckets, bucket);
    prefetch_bucket(m, b);
    uint8_t *insertb = NULL, *last = b;
    unsigned inserti = 0;
    for (;;) {
        uint64_t w = tophash_word(b);
        for (uint64_t mt = match_top(w, top); mt; mt &= mt - 1) {
            unsigned i = first_slot(mt);
            uint8_t *k = kk_key(m, kind, b, i);
            if (!kk_equal(m, kind, key, k)) continue;
            if (kind == KK_GENERIC && m->keyupdate) {
                /* the rewritten key may hold GC pointers: barriered on GC maps */
                if (m->gc && m->kt->ptrmask) gm_typed_memmove(m->kt, k, key);
                else memcpy(k, key, m->kt->size);
            }
            return elem_of(m, b, i);
        }
        uint64_t me = match_empty(w);
        if (me && insertb == NULL) {
            insertb = b;
            inserti = first_slot(me);
        }
        if (zero_bytes(w)) break; /* EMPTY_REST: nothing further in the chain */
        last = b;
        uint8_t *o = b_ovf(m, b);
        if (o == NULL) break;
        b = o;
    }

    if (!tried_grow && should_grow(m)) {
        tried_grow = true;
        if (gm_map_hash_grow(m)) goto again;
        /* No memory for a bigger array: the key still fits this one. */
    }
    if (GM_LIKELY(insertb != NULL && !m->owns_storage && !m->gc)) {
        /* A free slot, nothing to allocate, no barriers: store_entry's
         * work, inline. */
        uint8_t *k = kind == KK_GENERIC ? b_key(m, insertb, inserti) : kk_key(m, kind, insertb, inserti);
        switch (kind) {
        case KK_U32: memcpy(k, key, 4); break;
        case KK_U64: memcpy(k, key, 8); break;
        case KK_STR: memcpy(k, key, sizeof(gm_str)); break;
        default: slot_copy(k, key, m->kt->size);
        }
        uint8_t *e = b_elem(m, insertb, inserti);
        slot_clear(e, m->elemsize); /* delete leaves a dead slot's value as it was */
        insertb[inserti] = top;
        m->count++;
        return e;
    }
    return gm_map_insert_new(m, key, top, insertb, inserti, last);
}

GM_INLINE void tophash_store(uint8_t *b, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    memcpy(b, &w, 8);
}

/* Deletes the entry in slot (b, i) of the chain that starts at borig: the
 * slot becomes EMPTY_ONE and, when nothing live follows it in the chain
 * (the next slot is EMPTY_REST, or it is the last slot of its bucket),
 * gm_map_delete_tail turns the trailing empties into EMPTY_REST, out of
 * line.  The common path is a byte store, a byte load and one compare:
 * at 10M entries the processor overlaps the cache misses of as many
 * deletes as fit in its reorder window, so the instructions of this path
 * are what limits that overlap (a branchless version of the tail, 45
 * instructions, was slower: docs/bench.md). */
GM_INLINE void delete_slot(gm_map *m, uint8_t *borig, uint8_t *b, unsigned i)
{
    if (m->owns_storage | m->bscan) gm_map_delete_clear(m, b, i);
    b[i] = EMPTY_ONE;
    if (i == BUCKET_CNT - 1 || b[i + 1] == EMPTY_REST) gm_map_delete_tail(m, borig, b, i);
    if (--m->count == 0) gm_map_emptied(m);
}

/* mapdelete body; the caller holds F_WRITING. */
GM_INLINE bool delete_impl(gm_map *m, int kind, const void *key, uint64_t h)
{
    size_t bucket = h & bucket_mask(m->B);
    if (growing(m) && !gm_map_grow_work(m, bucket)) gm_fatal("runtime: out of memory");
    uint8_t *borig = bucket_at(m, m->buckets, bucket);
    /* The keys' second cache line (a delete reads no value): it arrives
     * with the tophash line instead of after the tophash compare. */
    if (m->prefetch) __builtin_prefetch(borig + 64);
    uint8_t top = tophash(h);
    for (uint8_t *b = borig; b; b = b_ovf(m, b)) {
        uint64_t w = tophash_word(b);
        for (uint64_t mt = match_top(w, top); mt; mt &= mt - 1) {
            unsigned i = first_slot(mt);
            if (!kk_equal(m, kind, key, kk_key(m, kind, b, i))) continue;
            delete_slot(m, borig, b, i);
            return true;
        }
        if (zero_bytes(w)) return false;
    }
    return false;
}

/* The write bracket, inline: Go's hashWriting toggle, and at the end the
 * work a write may owe (shrink policy, returning retired memory) only when
 * there is any, found by one test of fields the write has in cache: with
 * count >= sparse_below and no streak counted, shrink_policy has nothing to
 * do (map.c). */
GM_INLINE void begin_write(gm_map *m)
{
    uint8_t f = flags_load(m);
    if (GM_UNLIKELY(f & F_WRITING)) gm_fatal("concurrent map writes");
    flags_store(m, f ^ F_WRITING);
}

GM_INLINE void end_write(gm_map *m)
{
    if (GM_UNLIKELY((m->count < m->sparse_below) | (m->sparse_writes != 0) |
                    (((uintptr_t)m->retired | (uintptr_t)m->release | (uintptr_t)m->deferred) != 0))) {
        gm_map_end_write(m);
        return;
    }
    uint8_t f = flags_load(m);
    if (GM_UNLIKELY(!(f & F_WRITING))) gm_fatal("concurrent map writes");
    flags_store(m, f & (uint8_t)~F_WRITING);
}

/* The public entry points, per kind. */
GM_INLINE void *assign_entry(gm_map *m, int kind, const void *key)
{
    if (m == NULL) gm_fatal("assignment to entry in nil map");
    uint64_t h = kk_hash(m, kind, key);
    begin_write(m);
    void *e = assign_impl(m, kind, key, h);
    end_write(m);
    return e;
}

GM_INLINE bool delete_entry(gm_map *m, int kind, const void *key)
{
    if (m == NULL || m->count == 0) return false;
    uint64_t h = kk_hash(m, kind, key);
    begin_write(m);
    bool found = delete_impl(m, kind, key, h);
    end_write(m);
    return found;
}

#endif
