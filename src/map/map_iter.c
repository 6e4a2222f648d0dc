/* map_iter.c - iteration with Go's guarantees.
 *
 * An iterator walks the bucket array it saw at init (its snapshot, of 2^b
 * buckets) from a random bucket and, inside every bucket, from a random slot
 * offset.  What keeps it correct while the map changes:
 *
 *  - Growth started before init: if the map is still growing and the
 *    iterator's b equals the map's B, the iterator is walking the new array;
 *    for a new bucket whose old bucket is not yet evacuated it reads the old
 *    bucket instead, returning only the keys that will land in the new bucket
 *    it stands for (check_bucket).  NaN keys cannot be rehashed; the stored
 *    tophash's low bit decides for them, as in evacuate.
 *  - Growth started after init: the snapshot becomes (or became) an old
 *    array.  Entries already moved are marked EVAC_X/EVAC_Y but keep their
 *    key, so the iterator looks the key up in the live map: a deleted entry is
 *    skipped and an updated value is seen.  NaN keys cannot be looked up and
 *    are returned from where they are.
 *  - Entries never move within a bucket array, so nothing is returned twice.
 *  - clear() bumps clear_seq; an iterator that sees a new clear_seq stops
 *    without touching any bucket (Go issue 59411).
 *
 *  - Shrinking (beyond Go) started before init: new bucket j is fed by two
 *    old buckets, j and j + 2^b.  The iterator walks the unevacuated ones
 *    first (phases 1 and 2; it->walked remembers which), then new bucket j
 *    (phase 3), skipping entries that came from an old bucket it walked:
 *    their source is bit b of the hash, or for a NaN the low tophash bit
 *    that evacuate_shrink stored.
 *
 * The snapshot must stay readable while the iterator is open: map_mem.c keeps
 * retired arrays while m->iters_open > 0.  An iterator counts itself open from
 * init until it returns false or gm_map_iter_done is called.
 *
 * The simple walk (iter_next_classic): while the iterator walks the map's
 * current array and no resize is under way -- it->fast equals m->buckets,
 * which no later array can since the snapshot is kept -- a bucket's live
 * slots are taken as one SWAR mask (it->slots) when the iterator reaches
 * it, and each call returns the next one after re-reading its tophash.
 * Invariant: it->slots holds only slots of it->bptr at rotated positions
 * >= it->i, and is 0 on a finished iterator, on a Swiss iterator and on a
 * weak map's table (which always take the slow walk).  Either walk can
 * hand over to the other between two calls.
 */
#include "map/map_impl.h"

static void iter_finish(gm_map_iter *it)
{
    it->slots = 0;
    if (it->counted && it->m && it->clear_seq == it->m->clear_seq)
        atomic_fetch_sub_explicit(&it->m->iters_open, 1, memory_order_release);
    it->counted = 0;
    it->done = 1;
}

/* it->fast when the simple walk does not apply (see iter_next_classic):
 * an address no bucket array has */
static char no_fast_tag;
#define NO_FAST ((void *)&no_fast_tag)

static inline bool simple_walk(const gm_map_iter *it, const gm_map *m)
{
    return it->fast == (void *)m->buckets && it->clear_seq == m->clear_seq &&
           !(flags_load(m) & F_WRITING);
}

static inline void set_fast(gm_map_iter *it, const gm_map *m)
{
    bool simple = m->weak_back == NULL && it->check_bucket == NO_CHECK && it->phase == 0 &&
                  !growing(m) && it->buckets == m->buckets;
    it->fast = simple ? (void *)m->buckets : NO_FAST;
}

void gm_map_iter_init(gm_map_iter *it, gm_map *m)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) {
        gm_sw_iter_init(it, m);
        return;
    }
    if (WEAK_FRONT(m)) {
        gm_wmap_iter_init(it, m);
        return;
    }
    memset(it, 0, sizeof *it);
    it->done = 1;
    if (m == NULL || m->count == 0) return;
    it->m = m;
    it->b = m->B;
    it->buckets = m->buckets;
    it->keep = m->gc ? m->hdr_cur : NULL;
    uint64_t r = gm_map_rand();
    it->start_bucket = r & bucket_mask(m->B);
    it->offset = (uint8_t)((r >> m->B) & (BUCKET_CNT - 1));
    it->bucket = it->start_bucket;
    it->check_bucket = NO_CHECK;
    it->clear_seq = m->clear_seq;
    set_fast(it, m);
    /* Readers may iterate concurrently, so these are atomic RMWs. */
    uint8_t f = flags_load(m);
    if ((f & (F_ITERATOR | F_OLD_ITERATOR)) != (F_ITERATOR | F_OLD_ITERATOR))
        atomic_fetch_or_explicit(&m->flags, F_ITERATOR | F_OLD_ITERATOR, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->iters_open, 1, memory_order_acq_rel);
    it->counted = 1;
    it->done = 0;
}

/* The next chain for iterator bucket it->cur while the map shrinks: the
 * unevacuated old buckets that feed it (phases 1 and 2), then the new bucket
 * itself (phase 3). */
static uint8_t *shrink_chain(gm_map_iter *it, gm_map *m)
{
    while (it->phase < 2) {
        it->phase++;
        if (!growing(m) || !shrinking(m) || m->buckets != it->shrink_new)
            continue; /* that shrink finished meanwhile: nothing left in old buckets */
        size_t ob = it->cur + (it->phase == 2 ? ((size_t)1 << m->B) : 0);
        uint8_t *b = bucket_at(m, m->oldbuckets, ob);
        if (!evacuated(b)) {
            it->walked |= it->phase;
            it->keep_old = m->hdr_old;
            return b;
        }
    }
    it->phase = 3;
    return bucket_at(m, it->shrink_new, it->cur);
}

void gm_map_iter_done(gm_map_iter *it)
{
    if (GM_UNLIKELY(!it->done && gm_map_is_swiss(it->m))) {
        gm_sw_iter_done(it);
        return;
    }
    if (!it->done) iter_finish(it);
}

/* The live slots of bucket b an iterator at rotated position `from` has
 * still to visit, rotated so that bit 8p stands for slot (p + offset) & 7:
 * the lowest set bit is the next slot in the iterator's order. */
static inline uint64_t slots_from(const gm_map_iter *it, const uint8_t *b, unsigned from)
{
    if (from >= BUCKET_CNT) return 0;
    unsigned r = 8u * it->offset;
    uint64_t full = match_full(tophash_word(b));
    if (r) full = (full >> r) | (full << (64 - r));
    return full & (~0ull << (8u * from));
}

/* Everything but the common case: resizes under way or since, shrink
 * phases, re-lookups. */
__attribute__((noinline)) static bool iter_next_slow(gm_map_iter *it, const void **keyp, void **valp)
{
    if (it->done) return false;
    gm_map *m = it->m;
    if (it->clear_seq != m->clear_seq) {
        iter_finish(it);
        return false;
    }
    if (flags_load(m) & F_WRITING) gm_fatal("concurrent map iteration and map write");
    size_t bucket = it->bucket;
    uint8_t *b = it->bptr;
    unsigned i = it->i;
    size_t check = it->check_bucket;
    size_t nb = (size_t)1 << it->b;
    for (;;) {
        if (b == NULL) {
            if (it->phase == 1 || it->phase == 2) {
                b = shrink_chain(it, m);
            } else {
                if (bucket == it->start_bucket && it->wrapped) {
                    iter_finish(it);
                    return false;
                }
                it->cur = bucket;
                it->phase = 0;
                check = NO_CHECK;
                if (growing(m) && it->b == m->B && shrinking(m)) {
                    it->walked = 0;
                    it->shrink_new = m->buckets;
                    it->keep_new = m->gc ? m->hdr_cur : NULL;
                    b = shrink_chain(it, m);
                } else if (growing(m) && it->b == m->B) {
                    size_t ob = bucket & oldbucket_mask(m);
                    b = bucket_at(m, m->oldbuckets, ob);
                    if (!evacuated(b)) {
                        check = bucket;
                        it->keep_old = m->hdr_old;
                    } else {
                        b = bucket_at(m, it->buckets, bucket);
                    }
                } else {
                    b = bucket_at(m, it->buckets, bucket);
                }
                bucket++;
                if (bucket == nb) {
                    bucket = 0;
                    it->wrapped = 1;
                }
            }
            i = 0;
        }
        for (; i < BUCKET_CNT; i++) {
            unsigned off = (i + it->offset) & (BUCKET_CNT - 1);
            uint8_t top = b[off];
            if (is_empty(top) || top == EVAC_EMPTY) continue;
            uint8_t *k = key_of(m, b, off);
            uint8_t *e = elem_of(m, b, off);
            bool self_equal = m->reflexive || m->keyeq(k, k);
            if (it->phase == 3 && it->walked) {
                /* Came from an old bucket walked in phase 1 or 2? */
                unsigned src = self_equal ? (unsigned)(map_hash(m, k) >> it->b) & 1 : top & 1u;
                if (it->walked & (src ? 2 : 1)) continue;
            }
            if (check != NO_CHECK && !same_size_grow(m)) {
                /* Old bucket read on behalf of new bucket `check`: only the
                 * keys that will go there. */
                if (self_equal) {
                    uint64_t h = map_hash(m, k);
                    if ((h & bucket_mask(it->b)) != check) continue;
                } else if ((check >> (it->b - 1)) != (size_t)(top & 1)) {
                    continue;
                }
            }
            if ((top == EVAC_X || top == EVAC_Y) && self_equal) {
                /* Moved since the iterator started: ask the map. */
                uint8_t *re;
                uint8_t *rk = gm_map_access_k(m, k, &re);
                if (rk == NULL) continue; /* deleted */
                k = rk;
                e = re;
            }
            it->bucket = bucket;
            it->bptr = b;
            it->i = (uint8_t)(i + 1);
            it->check_bucket = check;
            /* for the simple walk, if it takes over here; a weak map's
             * table always comes here (gm_map_iter_next sends an iterator
             * with slots to the simple walk, which does no translation) */
            it->slots = m->weak_back ? 0 : slots_from(it, b, i + 1);
            set_fast(it, m);
            if (keyp) *keyp = k;
            if (valp) *valp = e;
            return true;
        }
        b = b_ovf(m, b);
        i = 0;
    }
}

/* The simple walk: the iterator walks the map's current array, which is not
 * being resized, so its slots are live or empty, never moved, and every
 * bucket index maps to its own chain.  it->fast holds that array while this
 * holds, and NO_FAST otherwise (set where the slow path returns): a grow
 * replaces m->buckets, and the snapshot is kept while the iterator is open,
 * so no later array has its address; with the clear count and the writing
 * flag, three compares tell whether an entry can come from it->slots.
 * Per entry: one bit of it->slots (the bucket's live slots when the
 * iterator reached it, in its order) and a re-read of that slot's tophash,
 * because the entry may have been deleted since (an entry inserted since
 * into a slot already passed over is not returned, which Go allows). */
/* The entry at rotated position p of bucket b. */
static inline bool iter_yield(gm_map_iter *it, const gm_map *m, uint8_t *b, uint64_t slots, unsigned p,
                              const void **keyp, void **valp)
{
    unsigned s = (p + it->offset) & (BUCKET_CNT - 1);
    it->bptr = b;
    it->slots = slots;
    it->i = (uint8_t)(p + 1);
    if (keyp) *keyp = key_of(m, b, s);
    if (valp) *valp = elem_of(m, b, s);
    return true;
}

/* The simple walk past the current bucket's remembered slots: the rest of
 * the chain, then the next buckets.  A bucket with an EMPTY_REST ends its
 * chain without reading its overflow pointer. */
__attribute__((noinline)) static bool iter_next_more(gm_map_iter *it, const void **keyp, void **valp)
{
    gm_map *m = it->m;
    if (!simple_walk(it, m)) return iter_next_slow(it, keyp, valp);
    uint8_t *b = it->bptr;
    uint64_t slots = it->slots;
    unsigned offset = it->offset;
    for (;;) {
        while (slots) {
            unsigned p = first_slot(slots);
            slots &= slots - 1;
            if (b[(p + offset) & (BUCKET_CNT - 1)] < MIN_TOPHASH) continue; /* deleted since */
            return iter_yield(it, m, b, slots, p, keyp, valp);
        }
        if (b == NULL || zero_bytes(tophash_word(b)) || (b = b_ovf(m, b)) == NULL) {
            size_t bucket = it->bucket;
            if (bucket == it->start_bucket && it->wrapped) {
                it->bptr = NULL;
                iter_finish(it);
                return false;
            }
            b = bucket_at(m, it->buckets, bucket);
            it->cur = bucket;
            if (++bucket == (size_t)1 << it->b) {
                bucket = 0;
                it->wrapped = 1;
            }
            it->bucket = bucket;
        }
        slots = slots_from(it, b, 0);
    }
}

/* The next entry of the current bucket, inline; everything else out of line.
 * it->slots is nonzero only on a classic iterator that is not done, and
 * it->fast is NO_FAST for a weak map's table (those go through the slow
 * walk, which gm_wmap_iter_next wraps). */
static inline bool iter_next_classic(gm_map_iter *it, const void **keyp, void **valp)
{
    gm_map *m = it->m;
    uint64_t slots = it->slots;
    if (GM_LIKELY(slots != 0 && simple_walk(it, m))) {
        uint8_t *b = it->bptr;
        unsigned p = first_slot(slots);
        if (GM_LIKELY(b[(p + it->offset) & (BUCKET_CNT - 1)] >= MIN_TOPHASH))
            return iter_yield(it, m, b, slots & (slots - 1), p, keyp, valp);
    }
    return iter_next_more(it, keyp, valp);
}

bool gm_map_iter_next(gm_map_iter *it, const void **keyp, void **valp)
{
    if (GM_LIKELY(it->slots != 0)) return iter_next_classic(it, keyp, valp);
    if (it->done) return false;
    if (GM_UNLIKELY(gm_map_is_swiss(it->m))) return gm_sw_iter_next(it, keyp, valp);
    /* a weak map's table is a classic map (map_weak.c) */
    if (GM_UNLIKELY(it->m->weak_back != NULL)) return gm_wmap_iter_next(it, keyp, valp);
    return iter_next_more(it, keyp, valp);
}

bool gm_map_iter_next_raw(gm_map_iter *it, const void **keyp, void **valp)
{
    if (it->done) return false;
    if (GM_UNLIKELY(gm_map_is_swiss(it->m))) return gm_sw_iter_next(it, keyp, valp);
    return iter_next_classic(it, keyp, valp);
}
