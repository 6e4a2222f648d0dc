/* map_check.c - gm_map_check: every invariant of map.c's essay, executed.
 * Cost is O(entries + buckets) with one lookup per entry: for tests and
 * debug builds, not for production paths. */
#include <stdio.h>

#include "map/map_internal.h"

static _Thread_local char why[256];

#define FAIL(...) do { snprintf(why, sizeof why, __VA_ARGS__); return why; } while (0)

struct tally { size_t live, novf; };

/* Checks one chain: slot states, EMPTY_REST order, key placement under
 * `mask` == `index`, and that lookup finds each key at its own slot. */
static const char *check_chain(const gm_map *m, uint8_t *head, size_t index,
                               size_t mask, bool old, struct tally *t)
{
    bool seen_rest = false, pending_one = false;
    for (uint8_t *b = head; b; b = b_ovf(m, b)) {
        if (b != head) t->novf++;
        for (unsigned i = 0; i < BUCKET_CNT; i++) {
            uint8_t top = b[i];
            if (top >= EVAC_X && top <= EVAC_EMPTY)
                FAIL("%s bucket %zu slot %u: evacuation mark %u in a live chain",
                     old ? "old" : "new", index, i, top);
            if (seen_rest && top != EMPTY_REST)
                FAIL("%s bucket %zu slot %u: state %u after EMPTY_REST",
                     old ? "old" : "new", index, i, top);
            if (top == EMPTY_REST) {
                if (pending_one)
                    FAIL("%s bucket %zu: EMPTY_ONE run ends in EMPTY_REST (should be EMPTY_REST)",
                         old ? "old" : "new", index);
                seen_rest = true;
                continue;
            }
            if (top == EMPTY_ONE) {
                pending_one = true;
                continue;
            }
            pending_one = false;
            t->live++;
            uint8_t *k = key_of(m, b, i);
            if (!m->reflexive && !m->keyeq(k, k)) continue; /* NaN: hash is random */
            uint64_t h = m->hasher(k, m->seed);
            if ((h & mask) != index)
                FAIL("%s bucket %zu slot %u: key hashes to bucket %zu",
                     old ? "old" : "new", index, i, (size_t)(h & mask));
            if (tophash(h) != top)
                FAIL("%s bucket %zu slot %u: tophash %u, key's is %u",
                     old ? "old" : "new", index, i, top, tophash(h));
            uint8_t *e;
            uint8_t *found = gm_map_access_k((gm_map *)m, k, &e);
            if (found != k)
                FAIL("%s bucket %zu slot %u: lookup of the key finds %s",
                     old ? "old" : "new", index, i, found ? "another slot (duplicate key)" : "nothing");
        }
    }
    if (pending_one)
        FAIL("%s bucket %zu: chain ends in EMPTY_ONE (should be EMPTY_REST)", old ? "old" : "new", index);
    return NULL;
}

static bool chain_pristine(const gm_map *m, uint8_t *b)
{
    if (b_ovf(m, b) != NULL) return false;
    for (unsigned i = 0; i < BUCKET_CNT; i++)
        if (b[i] != EMPTY_REST) return false;
    return true;
}

/* Shrinking, old bucket j not evacuated: the new bucket it feeds may hold
 * only entries drained from its sibling, and only if the sibling is
 * evacuated; those entries form a compact run (no EMPTY_ONE). */
static const char *check_shrink_target(const gm_map *m, size_t j, size_t nb)
{
    size_t nj = j & (nb - 1), sib = j ^ nb;
    bool sib_evac = evacuated(bucket_at(m, m->oldbuckets, sib));
    for (uint8_t *b = bucket_at(m, m->buckets, nj); b; b = b_ovf(m, b)) {
        for (unsigned i = 0; i < BUCKET_CNT; i++) {
            if (b[i] == EMPTY_ONE) FAIL("shrink target bucket %zu has a hole before both feeders drained", nj);
            if (b[i] < MIN_TOPHASH) continue;
            if (!sib_evac) FAIL("shrink target bucket %zu filled before its old buckets drained", nj);
            uint8_t *k = key_of(m, b, i);
            if (!m->reflexive && !m->keyeq(k, k)) continue;
            if ((m->hasher(k, m->seed) & (2 * nb - 1)) != sib)
                FAIL("shrink target bucket %zu holds a key from old bucket %zu, not yet drained", nj, j);
        }
    }
    return NULL;
}

const char *gm_map_check(const gm_map *m)
{
    if (m == NULL) return NULL;
    if (gm_map_is_swiss(m)) return gm_sw_check(m);
    if (WEAK_FRONT(m)) return gm_wmap_check(m);
    uint8_t f = flags_load(m);
    if (f & F_WRITING) FAIL("a write is in progress (F_WRITING set)");
    if (m->B > 47) FAIL("B = %u is impossible", m->B);
    if (m->buckets == NULL) {
        if (m->count != 0) FAIL("count %zu with no buckets", m->count);
        if (m->oldbuckets) FAIL("oldbuckets without buckets");
        return NULL;
    }
    if (m->gc && (m->prep || m->spare)) FAIL("a GC map with memory prepared by the helper thread");
    if (m->prep && m->prep->B != m->B + 1u)
        FAIL("the prepared array has 2^%u buckets, not twice the current 2^%u", m->prep->B, m->B);
    /* Above the load factor's point only while a grow waits for the
     * helper's array (gm_map_hash_grow: a recheck every PREP_RECHECK
     * inserts, never past the give-up point); deletes meanwhile lower the
     * count, not the threshold. */
    if (m->grow_at > m->grow_load && m->grow_at != SIZE_MAX) {
        size_t give_up = m->grow_load + m->grow_load / PREP_GIVEUP_DEN * PREP_GIVEUP_NUM;
        if (m->prep == NULL)
            FAIL("grow threshold %zu beyond the load factor's %zu with no array being prepared",
                 m->grow_at, m->grow_load);
        if (m->grow_at > give_up + PREP_RECHECK)
            FAIL("grow threshold %zu beyond the give-up point %zu", m->grow_at, give_up);
    }
    bool grow = growing(m);
    if (!grow && (f & (F_SAME_SIZE | F_SHRINK))) FAIL("same-size or shrink flag set while not growing");
    if ((f & F_SAME_SIZE) && (f & F_SHRINK)) FAIL("same-size and shrink flags both set");
    struct tally t = { 0, 0 };
    size_t nb = (size_t)1 << m->B, mask = nb - 1;
    const char *err;
    for (size_t j = 0; j < nb; j++)
        if ((err = check_chain(m, bucket_at(m, m->buckets, j), j, mask, false, &t)) != NULL)
            return err;
    if (m->B < 16 && t.novf != m->noverflow)
        FAIL("noverflow %u but %zu overflow buckets are chained", m->noverflow, t.novf);
    if (grow) {
        bool same = same_size_grow(m), shrink = shrinking(m);
        size_t onb = noldbuckets(m), omask = onb - 1;
        if (!same && !shrink && onb * 2 != nb) FAIL("old array has %zu buckets, new %zu", onb, nb);
        if (shrink && onb != nb * 2) FAIL("shrinking from %zu buckets to %zu", onb, nb);
        if (m->nevacuate > onb) FAIL("nevacuate %zu > %zu old buckets", m->nevacuate, onb);
        for (size_t j = 0; j < onb; j++) {
            uint8_t *ob = bucket_at(m, m->oldbuckets, j);
            if (evacuated(ob)) {
                for (uint8_t *b = ob; b; b = b_ovf(m, b))
                    for (unsigned i = 0; i < BUCKET_CNT; i++)
                        if (b[i] < EVAC_X || b[i] > EVAC_EMPTY)
                            FAIL("evacuated old bucket %zu slot %u has state %u", j, i, b[i]);
                continue;
            }
            if (j < m->nevacuate) FAIL("old bucket %zu < nevacuate %zu is not evacuated", j, m->nevacuate);
            if ((err = check_chain(m, ob, j, omask, true, &t)) != NULL) return err;
            if (shrink) {
                if ((err = check_shrink_target(m, j, nb)) != NULL) return err;
                continue;
            }
            if (!chain_pristine(m, bucket_at(m, m->buckets, j)) ||
                (!same && !chain_pristine(m, bucket_at(m, m->buckets, j + onb))))
                FAIL("new bucket fed by unevacuated old bucket %zu is not empty", j);
        }
    } else if (m->nevacuate != 0 && m->nevacuate != ((size_t)1 << (m->B ? m->B - 1 : 0)) &&
               m->nevacuate != nb && m->nevacuate != 2 * nb) {
        /* nevacuate keeps its final value after a grow; any other value while
         * not growing means a grow was abandoned half way. */
        FAIL("not growing but nevacuate = %zu", m->nevacuate);
    }
    if (t.live != m->count) FAIL("count %zu but %zu live slots", m->count, t.live);
    return NULL;
}
