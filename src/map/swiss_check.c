/* swiss_check.c - gm_sw_check: every invariant of swiss.c's essay, executed.
 * O(entries + slots + directory), one hash and one lookup per entry: for
 * tests and debug builds. */
#include <stdio.h>

#include "map/swiss_internal.h"

static _Thread_local char why[256];

#define FAIL(...) do { snprintf(why, sizeof why, __VA_ARGS__); return why; } while (0)

/* Counters and entries of one table; lo..hi is its directory range. */
static const char *check_table(const sw_map *m, const sw_table *t, size_t lo, size_t hi, size_t *live)
{
    size_t full = 0, del = 0, empty = 0;
    unsigned width = t->small ? SW_SMALL : SW_SLOTS;
    if (t->small ? t->capacity != SW_SMALL || t->mask != 0
                 : t->capacity < SW_SLOTS || (t->capacity & (t->capacity - 1)))
        FAIL("table %zu: capacity %u is not a power of two >= %u", lo, t->capacity, SW_SLOTS);
    if ((t->mask + 1) * width != t->capacity) FAIL("table %zu: mask %zu vs capacity %u", lo, t->mask, t->capacity);
    for (size_t gi = 0; gi <= t->mask; gi++) {
        uint8_t *g = sw_group(m, t, gi);
        for (unsigned i = width; i < SW_SLOTS; i++) /* a small group's unused control bytes */
            if (g[i] != SW_EMPTY) FAIL("small group: control byte %u is %#x, not EMPTY", i, g[i]);
        for (unsigned i = 0; i < width; i++) {
            uint8_t c = g[i];
            if (c == SW_EMPTY) { empty++; continue; }
            if (c == SW_DELETED) { del++; continue; }
            if (c & 0x80) FAIL("table %zu group %zu slot %u: bad control byte %#x", lo, gi, i, c);
            full++;
            uint8_t *k = sw_key(m, t, g, i);
            if (!m->reflexive && !m->keyeq(k, k)) continue; /* NaN: hash is random */
            uint64_t h = sw_hash(m, k);
            if (sw_h2(h) != c) FAIL("table %zu group %zu slot %u: control %#x, key's h2 %#x", lo, gi, i, c, sw_h2(h));
            if (!t->small) {
                size_t d = sw_dir_index(m, h);
                if (d < lo || d >= hi) FAIL("table %zu..%zu: key hashes to directory entry %zu", lo, hi, d);
            }
            uint8_t *e;
            uint8_t *found = gm_sw_find(m, k, &e);
            if (found != k)
                FAIL("table %zu group %zu slot %u: lookup of the key finds %s", lo, gi, i,
                     found ? "another slot (duplicate key)" : "nothing");
        }
    }
    if (full != t->used) FAIL("table %zu: used %u, %zu full slots", lo, t->used, full);
    if (del != t->tombstones) FAIL("table %zu: tombstones %u, %zu DELETED slots", lo, t->tombstones, del);
    if (t->small) {
        if (del) FAIL("small group holds tombstones");
        if (t->growth_left != SW_SMALL - t->used) FAIL("small group: growth_left %u, used %u", t->growth_left, t->used);
    } else {
        size_t budget = t->capacity - t->capacity / 8;
        if (t->used + t->tombstones + t->growth_left != budget)
            FAIL("table %zu: used %u + tombstones %u + growth_left %u != %zu", lo, t->used, t->tombstones,
                 t->growth_left, budget);
        if (empty == 0) FAIL("table %zu: no EMPTY slot (probes would not end)", lo);
    }
    *live += full;
    return NULL;
}

const char *gm_sw_check(const gm_map *gm)
{
    const sw_map *m = (const sw_map *)(const void *)gm;
    if (m == NULL) return NULL;
    size_t live = 0;
    const char *w;
    if (m->dir == NULL) {
        if (m->dir_len || m->gd || m->ntables) FAIL("small map with directory state");
        if (m->small) {
            if (!m->small->small || m->small->capacity != SW_SMALL) FAIL("small group is not a small table");
            if ((w = check_table(m, m->small, 0, 1, &live)) != NULL) return w;
        }
        if (live != m->count) FAIL("count %zu, %zu live entries", m->count, live);
        return NULL;
    }
    if (m->small) FAIL("map has both a directory and a small group");
    if (m->dir_len != (size_t)1 << m->gd) FAIL("directory of %zu entries at global depth %u", m->dir_len, m->gd);
    size_t ntables = 0, at_gd = 0, cap = 0;
    for (size_t j = 0; j < m->dir_len;) {
        const sw_table *t = m->dir[j].t;
        if (t == NULL) FAIL("directory entry %zu is NULL", j);
        if (t->small) FAIL("directory entry %zu is a small group", j);
        if (t->local_depth > m->gd) FAIL("table at %zu: local depth %u > global %u", j, t->local_depth, m->gd);
        size_t span = (size_t)1 << (m->gd - t->local_depth);
        if (t->prefix < 0 || sw_tindex(m, t) != j)
            FAIL("table at %zu: prefix %lld at local depth %u", j, (long long)t->prefix, t->local_depth);
        if (j % span) FAIL("table at %zu: not aligned to its %zu entries", j, span);
        for (size_t x = j; x < j + span; x++)
            if (m->dir[x].t != t) FAIL("directory entry %zu: not the table of %zu (local depth %u)", x, j, t->local_depth);
            else if (m->dir[x].ctrl != t->ctrl || m->dir[x].slots != t->slots || m->dir[x].mask != t->mask)
                FAIL("directory entry %zu: its copy of the table's ctrl/slots/mask is stale", x);
        if (t->slab && (m->gc || t->capacity != SW_MAX_TABLE || !gm_sw_slab_table_ok(m, t)))
            FAIL("table at %zu: not a block of one of the map's chunks", j);
        if ((w = check_table(m, t, j, j + span, &live)) != NULL) return w;
        ntables++;
        cap += t->capacity;
        if (t->local_depth == m->gd) at_gd++;
        j += span;
    }
    if (ntables != m->ntables) FAIL("ntables %zu, %zu in the directory", m->ntables, ntables);
    if (m->dir_next_done > m->dir_len || (m->dir_next_done && m->dir_next == NULL))
        FAIL("next directory: %zu of %zu entries prepared", m->dir_next_done, m->dir_len);
    for (size_t j = 0; j < m->dir_next_done; j++)
        for (size_t h = 2 * j; h < 2 * j + 2; h++)
            if (m->dir_next[h].t != m->dir[j].t || m->dir_next[h].ctrl != m->dir[j].ctrl ||
                m->dir_next[h].slots != m->dir[j].slots || m->dir_next[h].mask != m->dir[j].mask)
                FAIL("next directory: entry %zu is not a copy of entry %zu", h, j);
    size_t listed = 0;
    for (const sw_chunk *c = m->chunks; c; c = c->next) {
        if (!c->listed || (c->next && c->next->prev != c) || (c == m->chunks && c->prev))
            FAIL("chunk list: broken links");
        if (c->live == 0 || (c->free == NULL && c->carved == c->nblocks) || c->live > c->carved ||
            c->carved > c->nblocks)
            FAIL("chunk list: a chunk with %u live of %u carved, %u blocks", c->live, c->carved, c->nblocks);
        if (++listed > m->nchunks) FAIL("chunk list: longer than the %zu chunks mapped", m->nchunks);
    }
    if (m->spare && (m->spare->live || m->spare->carved || m->spare->listed)) FAIL("spare chunk in use");
    if (at_gd != m->n_at_gd) FAIL("n_at_gd %u, %zu tables at global depth", m->n_at_gd, at_gd);
    if (cap != m->cap_total) FAIL("cap_total %zu, tables hold %zu slots", m->cap_total, cap);
    if (live != m->count) FAIL("count %zu, %zu live entries", m->count, live);
    return NULL;
}
