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
 */
#include "map/map_impl.h"

static void iter_finish(gm_map_iter *it)
{
    if (it->counted && it->m && it->clear_seq == it->m->clear_seq)
        atomic_fetch_sub_explicit(&it->m->iters_open, 1, memory_order_release);
    it->counted = 0;
    it->done = 1;
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
            if (keyp) *keyp = k;
            if (valp) *valp = e;
            return true;
        }
        b = b_ovf(m, b);
        i = 0;
    }
}

bool gm_map_iter_next(gm_map_iter *it, const void **keyp, void **valp)
{
    /* a weak map's table is a classic map (map_weak.c); a Swiss map has no weak_back */
    if (GM_UNLIKELY(!it->done && !gm_map_is_swiss(it->m) && it->m->weak_back != NULL))
        return gm_wmap_iter_next(it, keyp, valp);
    return gm_map_iter_next_raw(it, keyp, valp);
}

bool gm_map_iter_next_raw(gm_map_iter *it, const void **keyp, void **valp)
{
    if (it->done) return false;
    if (GM_UNLIKELY(gm_map_is_swiss(it->m))) return gm_sw_iter_next(it, keyp, valp);
    gm_map *m = it->m;
    if (it->clear_seq != m->clear_seq || (flags_load(m) & F_WRITING) || it->check_bucket != NO_CHECK ||
        it->buckets != m->buckets || growing(m) || it->phase != 0)
        return iter_next_slow(it, keyp, valp);
    /* The common case: walking the map's current array, which is not being
     * resized, so its slots are live or empty, never moved, and every bucket
     * index maps to its own chain. */
    size_t bucket = it->bucket, nb = (size_t)1 << it->b;
    uint8_t *b = it->bptr;
    unsigned i = it->i;
    for (;;) {
        if (b == NULL) {
            if (bucket == it->start_bucket && it->wrapped) {
                iter_finish(it);
                return false;
            }
            b = bucket_at(m, it->buckets, bucket);
            it->cur = bucket;
            if (++bucket == nb) {
                bucket = 0;
                it->wrapped = 1;
            }
            i = 0;
        }
        for (; i < BUCKET_CNT; i++) {
            unsigned off = (i + it->offset) & (BUCKET_CNT - 1);
            if (b[off] < MIN_TOPHASH) continue;
            it->bucket = bucket;
            it->bptr = b;
            it->i = (uint8_t)(i + 1);
            if (keyp) *keyp = key_of(m, b, off);
            if (valp) *valp = elem_of(m, b, off);
            return true;
        }
        b = b_ovf(m, b);
        i = 0;
    }
}
