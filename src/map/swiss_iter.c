/* swiss_iter.c - iteration over a Swiss map with Go's guarantees.
 *
 * ORDER.  An iterator walks the directory from a random entry (sw_dir_off)
 * and each table from a random slot (sw_ent_off), visiting every table once:
 * after a table it skips the 2^(gd-ld) directory entries the table fills.
 * If the random start falls inside a table's run of entries, the start is
 * moved back to the run's first entry, so the iterator always stands on a
 * table boundary.  A small map's single group is walked from a random slot.
 *
 * WHY IT HOLDS WHILE THE MAP CHANGES.
 *  - Entries never move inside a table: deletes mark control bytes, inserts
 *    fill free slots, pruning turns DELETED into EMPTY.  Walking the current
 *    table returns each live slot at most once and skips deleted ones.
 *  - A table that grows, is rebuilt or splits is replaced by new tables
 *    (its prefix becomes -1) and is kept readable for the iterator (m->retired
 *    on malloc maps, the iterator's own reference on GC maps).  The iterator
 *    finishes the replaced table in its old order, but looks each key up in
 *    the live map: a deleted key is skipped, an updated value is returned
 *    from where it lives now.  NaN keys cannot be looked up and are returned
 *    from the old table (they can only be removed by clear, which stops the
 *    iterator).  Afterwards it skips the replaced table's whole range, so
 *    the keys that moved into the new tables are not returned again.
 *  - A directory that doubles scales the iterator's position by the depth
 *    change: every boundary stays a boundary.  Splits only add boundaries.
 *  - Merges and directory halving would remove boundaries, so a map does
 *    not shrink while an iterator is open (m->iters_open, see swiss.c).
 *  - clear() bumps clear_seq; an iterator that sees it stops before
 *    touching any table (Go issue 59411).
 */
#include "map/map_internal.h"
#include "map/swiss_internal.h"

static void iter_finish(gm_map_iter *it)
{
    sw_map *m = (sw_map *)(void *)it->m;
    if (it->counted && m && it->clear_seq == m->clear_seq)
        atomic_fetch_sub_explicit(&m->iters_open, 1, memory_order_release);
    it->counted = 0;
    it->done = 1;
    it->sw_tab = NULL;
}

void gm_sw_iter_init(gm_map_iter *it, gm_map *gm)
{
    sw_map *m = (sw_map *)(void *)gm;
    memset(it, 0, sizeof *it);
    it->done = 1;
    if (m == NULL || m->count == 0) return;
    it->m = gm;
    it->clear_seq = m->clear_seq;
    uint64_t r = gm_map_rand();
    if (m->dir == NULL) {
        it->sw_small = 1;
        it->sw_tab = m->small;
    } else {
        it->sw_gd = m->gd;
        it->sw_dir_off = (size_t)r & (m->dir_len - 1);
    }
    it->sw_ent_off = (uint32_t)(r >> 32);
    atomic_fetch_add_explicit(&m->iters_open, 1, memory_order_acq_rel);
    it->counted = 1;
    it->done = 0;
}

void gm_sw_iter_done(gm_map_iter *it)
{
    if (!it->done) iter_finish(it);
}

/* An entry of a replaced table: its current key and value, or false if it
 * was deleted.  NaN keys stay as they are. */
static bool resolve(const sw_map *m, const void **k, void **e)
{
    if (!m->reflexive && !m->keyeq(*k, *k)) return true;
    uint8_t *fe;
    uint8_t *fk = gm_sw_find(m, *k, &fe);
    if (fk == NULL) return false;
    *k = fk;
    *e = fe;
    return true;
}

bool gm_sw_iter_next(gm_map_iter *it, const void **keyp, void **valp)
{
    if (it->done) return false;
    sw_map *m = (sw_map *)(void *)it->m;
    if (it->clear_seq != m->clear_seq) {
        iter_finish(it);
        return false;
    }
    if (sw_flags_load(m) & SWF_WRITING) gm_fatal("concurrent map iteration and map write");
    const void *k;
    void *e;
    if (it->sw_small) {
        sw_table *t = it->sw_tab;
        uint8_t *g = t->ctrl;
        while (it->sw_ent < SW_SMALL) {
            unsigned i = (unsigned)(it->sw_ent + it->sw_ent_off) & (SW_SMALL - 1);
            it->sw_ent++;
            if (g[i] & 0x80) continue; /* empty */
            k = sw_key(m, t, g, i);
            e = sw_elem(m, t, g, i);
            if (m->small != t && !resolve(m, &k, &e)) continue;
            if (keyp) *keyp = k;
            if (valp) *valp = e;
            return true;
        }
        iter_finish(it);
        return false;
    }
    for (;;) {
        sw_table *t = it->sw_tab;
        if (t == NULL) {
            if (m->gd != it->sw_gd) {
                unsigned d = (unsigned)(m->gd - it->sw_gd); /* only grows while we are open */
                it->sw_dir_idx <<= d;
                it->sw_dir_off <<= d;
                it->sw_gd = m->gd;
            }
            if (it->sw_dir_idx >= m->dir_len) {
                iter_finish(it);
                return false;
            }
            size_t j = (it->sw_dir_idx + it->sw_dir_off) & (m->dir_len - 1);
            t = m->dir[j].t;
            size_t tj = sw_tindex(m, t);
            if (tj != j) it->sw_dir_off -= j - tj; /* onto the boundary */
            it->sw_tab = t;
            it->sw_ent = 0;
        }
        size_t cap = t->capacity;
        while (it->sw_ent < cap) {
            size_t s = (it->sw_ent + it->sw_ent_off) & (cap - 1);
            it->sw_ent++;
            uint8_t *g = sw_group(m, t, s / SW_SLOTS);
            unsigned i = (unsigned)(s & (SW_SLOTS - 1));
            if (g[i] & 0x80) continue; /* empty or deleted */
            k = sw_key(m, t, g, i);
            e = sw_elem(m, t, g, i);
            if (t->prefix < 0 && !resolve(m, &k, &e)) continue;
            if (keyp) *keyp = k;
            if (valp) *valp = e;
            return true;
        }
        it->sw_dir_idx += (size_t)1 << (it->sw_gd - t->local_depth);
        it->sw_tab = NULL;
    }
}
