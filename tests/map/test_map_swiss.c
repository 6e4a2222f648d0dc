/* test_map_swiss.c - the Swiss engine's own behaviour: bounded work per
 * insert, the directory growing and shrinking, tombstone pruning (Go issue
 * 70886), small maps, iteration across splits and shrinks.  Every map here
 * is made Swiss explicitly (gm_map_new_opts), so the cases check the same
 * thing under both registrations of the suite. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "map/swiss_internal.h"

#define CHECK_MAP(m) do { const char *e_ = gm_map_check(m); CHECK_MSG(e_ == NULL, "gm_map_check: %s", e_); } while (0)

static gm_map *swiss(const gm_type *k, const gm_type *v, size_t hint)
{
    gm_map_opts o = { GM_MAP_SWISS, false, hint };
    return gm_map_new_opts(k, v, &o);
}

static void putu(gm_map *m, uint64_t k, uint64_t v) { gm_map_put(m, &k, &v); }

/* The byte loop that the group matchers must agree with. */
static sw_bits ref_match(const uint8_t *c, int what, uint8_t h2)
{
    sw_bits b = 0;
    for (unsigned i = 0; i < SW_SLOTS; i++) {
        bool hit = what == 0 ? c[i] == h2 : what == 1 ? c[i] == SW_EMPTY
                 : what == 2 ? (c[i] & 0x80) != 0 : (c[i] & 0x80) == 0;
        if (hit) b |= 1u << i;
    }
    return b;
}

TEST(group_match_sse2_and_swar_agree_with_a_byte_loop)
{
    /* Control bytes drawn from EMPTY, DELETED and h2 values, biased to the
     * cases SWAR zero-byte tricks get wrong (a match next to h2 ^ 1, 0x00,
     * 0x7f, 0x80 beside 0x00). */
    static const uint8_t pool[] = { SW_EMPTY, SW_DELETED, 0x00, 0x01, 0x7f, 0x7e, 0x40, 0x41 };
    uint64_t r = 0x9e3779b97f4a7c15ull;
    int sse2_cases = 0;
    for (int round = 0; round < 200000; round++) {
        uint8_t c[SW_SLOTS];
        for (unsigned i = 0; i < SW_SLOTS; i++) {
            r ^= r << 13; r ^= r >> 7; r ^= r << 17;
            c[i] = (r & 0x100) ? pool[r & 7] : (r & 0x200) ? (uint8_t)((r >> 10) & 0x7f) : pool[(r >> 3) & 1];
        }
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        uint8_t h2 = (r & 1) ? c[(r >> 1) % SW_SLOTS] & 0x7f : (uint8_t)((r >> 8) & 0x7f);
        sw_swar w = sw_swar_load(c);
        CHECK_EQ_U(sw_swar_h2(w, h2), ref_match(c, 0, h2));
        CHECK_EQ_U(sw_swar_empty(w), ref_match(c, 1, 0));
        CHECK_EQ_U(sw_swar_empty_or_deleted(w), ref_match(c, 2, 0));
        CHECK_EQ_U(sw_swar_full(w), ref_match(c, 3, 0));
#ifdef SW_HAVE_SSE2
        __m128i v = sw_sse2_load(c);
        CHECK_EQ_U(sw_sse2_h2(v, h2), ref_match(c, 0, h2));
        CHECK_EQ_U(sw_sse2_empty(v), ref_match(c, 1, 0));
        CHECK_EQ_U(sw_sse2_empty_or_deleted(v), ref_match(c, 2, 0));
        CHECK_EQ_U(sw_sse2_full(v), ref_match(c, 3, 0));
        sse2_cases++;
#endif
        /* and the matcher the engine was built with */
        sw_cw x = sw_ctrl(c);
        CHECK_EQ_U(sw_match_h2(x, h2), ref_match(c, 0, h2));
        CHECK_EQ_U(sw_match_empty(x), ref_match(c, 1, 0));
        if (sw_match_h2(x, h2) != ref_match(c, 0, h2)) break; /* one report is enough */
    }
#if defined(__x86_64__) && defined(__SSE2__) && !defined(GM_SW_NO_SIMD)
    CHECK(sse2_cases > 0);
    CHECK(strcmp(SW_MATCH_IMPL, "sse2") == 0);
#endif
    (void)sse2_cases;
}

TEST(engine_selection)
{
    gm_map_opts c = { GM_MAP_CLASSIC, false, 0 }, s = { GM_MAP_SWISS, false, 0 };
    gm_map *mc = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &c);
    gm_map *ms = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &s);
    CHECK(gm_map_engine_of(mc) == GM_MAP_CLASSIC);
    CHECK(gm_map_engine_of(ms) == GM_MAP_SWISS);
    CHECK(gm_map_engine_of(NULL) == GM_MAP_ENGINE_DEFAULT);
    gm_map_stats st;
    gm_map_stats_get(ms, &st);
    CHECK(st.engine == GM_MAP_SWISS);
    gm_map_stats_get(mc, &st);
    CHECK(st.engine == GM_MAP_CLASSIC);
    /* The default follows GMDEBUG (the suite runs under both settings). */
    const char *d = getenv("GMDEBUG");
    gm_map *md = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    gm_map *mo = gm_map_new_opts(&gm_type_u64, &gm_type_u64, NULL);
    if (d && strstr(d, "mapengine=classic")) CHECK(gm_map_engine_of(md) == GM_MAP_CLASSIC);
    if (d && strstr(d, "mapengine=swiss")) CHECK(gm_map_engine_of(md) == GM_MAP_SWISS);
    CHECK(gm_map_engine_of(mo) == gm_map_engine_of(md));
    gm_map_opts g = { GM_MAP_SWISS, true, 100 };
    gm_map *mg = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &g);
    CHECK(gm_map_engine_of(mg) == GM_MAP_SWISS);
    for (uint64_t i = 0; i < 1000; i++) { putu(mc, i, i); putu(ms, i, i); putu(mg, i, i); }
    CHECK_EQ_U(gm_map_len(mc), 1000);
    CHECK_EQ_U(gm_map_len(ms), 1000);
    CHECK_EQ_U(gm_map_len(mg), 1000);
    CHECK_MAP(mg);
    gm_map_free(mc);
    gm_map_free(ms);
    gm_map_free(md);
    gm_map_free(mo);
}

TEST(map_of_at_most_8_entries_has_no_table)
{
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    for (uint64_t i = 0; i < 8; i++) {
        putu(m, i * 977, i);
        gm_map_stats_get(m, &st);
        CHECK(st.small);
        CHECK_EQ_U(st.tables, 0);
        CHECK_EQ_U(st.dir_len, 0);
        CHECK_EQ_U(st.slots, 8);
        CHECK_MAP(m);
    }
    /* Deleting in a small map leaves no tombstones; refilling stays small. */
    uint64_t k = 3 * 977;
    CHECK(gm_map_delete(m, &k));
    putu(m, 12345, 1);
    gm_map_stats_get(m, &st);
    CHECK(st.small);
    CHECK_EQ_U(st.tombstones, 0);
    putu(m, 99999, 1); /* the 9th entry makes a table */
    gm_map_stats_get(m, &st);
    CHECK(!st.small);
    CHECK_EQ_U(st.tables, 1);
    CHECK_EQ_U(st.slots, 16);
    CHECK_EQ_U(gm_map_len(m), 9);
    CHECK_MAP(m);
    gm_map_free(m);
    /* A hint of 8 or less makes a small map too. */
    m = swiss(&gm_type_u64, &gm_type_u64, 8);
    putu(m, 1, 1);
    gm_map_stats_get(m, &st);
    CHECK(st.small);
    gm_map_free(m);
}

TEST(no_insert_moves_more_than_one_table)
{
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    uint64_t before = 0, maxd = 0;
    size_t dir_before = 0;
    size_t n = (size_t)(400000 * test_scale());
    for (uint64_t i = 0; i < n; i++) {
        putu(m, i * 0x9e3779b97f4a7c15ull, i);
        gm_map_stats_get(m, &st);
        uint64_t d = st.moved_entries - before;
        if (d > maxd) maxd = d;
        CHECK_MSG(d <= 1024, "insert %llu moved %llu entries", (unsigned long long)i, (unsigned long long)d);
        /* and wrote at most one new directory (twice the old one's entries) */
        CHECK_MSG(st.dir_len <= 2 * dir_before || dir_before == 0, "insert %llu: directory %zu -> %zu",
                  (unsigned long long)i, dir_before, st.dir_len);
        before = st.moved_entries;
        dir_before = st.dir_len;
        if (i % 50021 == 0) CHECK_MAP(m);
    }
    CHECK(st.max_moved_per_write <= 1024);
    CHECK_EQ_U(st.max_moved_per_write, maxd);
    CHECK(st.splits > 0);
    CHECK(st.dir_doublings > 0);
    /* Total work stays linear: each entry moved a handful of times. */
    CHECK_MSG(st.moved_entries < 4 * n, "%llu moves for %zu inserts", (unsigned long long)st.moved_entries, n);
    CHECK_MAP(m);
    gm_map_free(m);
}

TEST(directory_doubles_and_halves)
{
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    for (uint64_t i = 0; i < 100000; i++) putu(m, i, i);
    gm_map_stats_get(m, &st);
    unsigned gd_full = st.global_depth;
    CHECK_MSG(gd_full >= 6, "global depth %u for 100000 entries", gd_full);
    CHECK(st.dir_len == (size_t)1 << gd_full);
    CHECK(st.tables >= 100000 / 1024);
    CHECK_MAP(m);
    for (uint64_t i = 100; i < 100000; i++) {
        CHECK(gm_map_delete(m, &i));
        if (i % 9973 == 0) CHECK_MAP(m);
    }
    gm_map_stats_get(m, &st);
    CHECK(st.dir_halvings > 0);
    CHECK(st.merges > 0);
    /* A table shrinks (merging with its buddy when both fit) on the delete
     * that leaves it at most 1/SW_SHRINK_AT live: every table that has
     * seen a delete since is smaller than SW_SHRINK_AT slots per entry, or
     * a single group. */
    /* How far the directory halves depends on the seed (300 seeds: full
     * depth 7-8, then 3-4 at 100 entries and 0-2 at 10): bounds with a
     * margin. */
    CHECK_MSG(st.global_depth + 2 <= gd_full, "global depth %u after shrinking to 100 entries (%u full)",
              st.global_depth, gd_full);
    CHECK_MSG(st.slots <= SW_SHRINK_AT * 100 + SW_SLOTS * st.tables, "%zu slots in %zu tables for 100 entries",
              st.slots, st.tables);
    CHECK_EQ_U(gm_map_len(m), 100);
    for (uint64_t i = 0; i < 100; i++) CHECK(gm_map_get(m, &i) && *(uint64_t *)gm_map_get(m, &i) == i);
    CHECK_MAP(m);
    for (uint64_t i = 10; i < 100; i++) CHECK(gm_map_delete(m, &i));
    gm_map_stats_get(m, &st);
    CHECK_MSG(st.global_depth <= 3, "global depth %u after shrinking to 10 entries", st.global_depth);
    CHECK_MSG(st.slots <= SW_SHRINK_AT * 10 + SW_SLOTS * st.tables, "%zu slots in %zu tables for 10 entries",
              st.slots, st.tables);
    CHECK_MAP(m);
    gm_map_free(m);
}

TEST(tombstone_churn_at_constant_size_keeps_the_table)
{
    /* Go issue 70886: a map of ~100 entries under delete/insert churn. */
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    uint64_t next = 0, oldest = 0;
    for (; next < 100; next++) putu(m, next, next);
    size_t slots_warm = 0;
    for (int op = 0; op < 200000; op++) {
        CHECK(gm_map_delete(m, &oldest));
        oldest++;
        putu(m, next, next);
        next++;
        if (op == 10000) {
            gm_map_stats_get(m, &st);
            slots_warm = st.slots;
        }
    }
    gm_map_stats_get(m, &st);
    CHECK_EQ_U(gm_map_len(m), 100);
    CHECK_EQ_U(st.tables, 1);
    CHECK_MSG(st.slots == slots_warm && st.slots <= 256, "%zu slots (%zu after warm-up)", st.slots, slots_warm);
    CHECK(st.prunes > 0);
    CHECK_MAP(m);
    gm_map_free(m);
    /* The same through the u64 fast path. */
    m = swiss(&gm_type_u64, &gm_type_u64, 0);
    next = oldest = 0;
    for (; next < 100; next++) *(uint64_t *)gm_map_assign_u64(m, next) = next;
    for (int op = 0; op < 200000; op++) {
        CHECK(gm_map_delete_u64(m, oldest++));
        *(uint64_t *)gm_map_assign_u64(m, next) = next;
        next++;
    }
    gm_map_stats_get(m, &st);
    CHECK_MSG(st.slots <= 256, "%zu slots", st.slots);
    CHECK_MAP(m);
    gm_map_free(m);
}

static bool is_nan_key(const void *k) { double d; memcpy(&d, k, 8); return d != d; }

TEST(iteration_across_splits_and_shrinks_with_nan_keys)
{
    for (int round = 0; round < 20; round++) {
        gm_map *m = swiss(&gm_type_f64, &gm_type_u64, 0);
        enum { N = 3000, NAN_N = 40 };
        uint64_t one = 1;
        for (int i = 0; i < N; i++) {
            double d = i;
            gm_map_put(m, &d, &one);
        }
        double nan = NAN;
        for (int i = 0; i < NAN_N; i++) gm_map_put(m, &nan, &one);
        static unsigned char seen[N];
        memset(seen, 0, sizeof seen);
        int nans = 0, steps = 0;
        gm_map_iter it;
        const void *k;
        void *v;
        gm_map_stats st0, st1;
        gm_map_stats_get(m, &st0);
        gm_map_iter_init(&it, m);
        while (gm_map_iter_next(&it, &k, &v)) {
            if (is_nan_key(k)) {
                nans++;
            } else {
                double d;
                memcpy(&d, k, 8);
                CHECK(d >= 0);
                if (d < N) {
                    CHECK((int)d % 2 == 0 || steps == 0); /* odd keys are deleted after the first */
                    CHECK(seen[(int)d] == 0);
                    seen[(int)d]++;
                }
            }
            /* Grow it (splits, directory doublings) and delete the odd keys. */
            if (steps++ == 0) {
                for (int i = 1; i < N; i += 2) {
                    double o = i;
                    gm_map_delete(m, &o);
                }
            }
            for (int j = 0; j < 30 && steps < 300; j++) {
                double x = N + steps * 30 + j + round * 0.5;
                gm_map_put(m, &x, &one);
            }
        }
        gm_map_stats_get(m, &st1);
        CHECK(st1.splits > st0.splits);
        CHECK_EQ_U(nans, NAN_N);
        for (int i = 0; i < N; i += 2) CHECK(seen[i] == 1);
        CHECK_MAP(m);
        /* Shrink while another iteration runs: merges wait for it. */
        gm_map_iter_init(&it, m);
        int got = 0;
        while (gm_map_iter_next(&it, &k, &v)) {
            if (!is_nan_key(k)) {
                double d;
                memcpy(&d, k, 8);
                CHECK(d >= N || (int)d % 2 == 0);
                if (d >= N) gm_map_delete(m, &d);
            }
            got++;
        }
        gm_map_stats_get(m, &st0);
        CHECK_EQ_U(st0.merges, st1.merges);
        CHECK_MAP(m);
        /* With no iterator open the next deletes shrink it. */
        for (int i = 0; i < N; i += 2) {
            double d = i;
            if (i > 20) CHECK(gm_map_delete(m, &d));
        }
        gm_map_stats_get(m, &st1);
        CHECK(st1.merges + st1.shrinks > st0.merges + st0.shrinks);
        CHECK_MAP(m);
        /* Iteration after shrinking: 11 numbers and every NaN. */
        gm_map_iter_init(&it, m);
        int cnt = 0;
        nans = 0;
        while (gm_map_iter_next(&it, &k, &v)) {
            cnt++;
            nans += is_nan_key(k);
        }
        CHECK_EQ_U(nans, NAN_N);
        CHECK_EQ_U(cnt, 11 + NAN_N);
        gm_map_free(m);
    }
}

TEST(clear_frees_the_tables_and_stops_iterators)
{
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 50000; i++) putu(m, i, i);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, m);
    CHECK(gm_map_iter_next(&it, &k, &v));
    gm_map_clear(m);
    CHECK(!gm_map_iter_next(&it, &k, &v));
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK_EQ_U(st.tables, 0);
    CHECK_EQ_U(gm_map_len(m), 0);
    CHECK_MAP(m);
    for (uint64_t i = 0; i < 100; i++) putu(m, i, i);
    CHECK_EQ_U(gm_map_len(m), 100);
    CHECK_MAP(m);
    gm_map_free(m);
}

#ifdef GOMAP_FAULT_INJECTION
TEST(allocation_failure_during_growth_split_and_doubling)
{
    /* Every insert's first map allocation fails: the inserts that need a
     * new table (the 9th entry, a grow, a split, a directory doubling)
     * return NULL with the map unchanged, and succeed when retried. */
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    size_t n = (size_t)(60000 * test_scale()), failures = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = i * 0x9e3779b97f4a7c15ull;
        gm_map_stats before, after;
        gm_map_stats_get(m, &before);
        gm_map_fault_alloc_after(1);
        uint64_t *v = gm_map_assign_u64(m, k);
        gm_map_fault_alloc_after(0);
        if (v == NULL) {
            failures++;
            gm_map_stats_get(m, &after);
            CHECK_EQ_U(gm_map_len(m), i);
            CHECK(gm_map_get_u64(m, k) == NULL);
            CHECK_EQ_U(after.slots, before.slots);
            CHECK_EQ_U(after.dir_len, before.dir_len);
            v = gm_map_assign_u64(m, k);
        }
        REQUIRE(v);
        *v = i;
        if (i % 4099 == 0) CHECK_MAP(m);
    }
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK_MSG(failures >= st.splits + st.grows, "%zu failures, %llu splits, %llu grows", failures,
              (unsigned long long)st.splits, (unsigned long long)st.grows);
    CHECK(st.dir_doublings > 0);
    for (uint64_t i = 0; i < n; i++) CHECK(gm_map_get_u64(m, i * 0x9e3779b97f4a7c15ull) && *(uint64_t *)gm_map_get_u64(m, i * 0x9e3779b97f4a7c15ull) == i);
    CHECK_MAP(m);
    gm_map_free(m);
}
#endif

/* Tables of a big malloc map are blocks of 2 MiB chunks (huge pages); a
 * chunk whose blocks are all free again is unmapped, except one spare. */
TEST(big_map_tables_come_from_chunks_and_go_back)
{
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    const sw_map *sm = (const sw_map *)(const void *)m;
    size_t n = 300000;
    for (uint64_t i = 0; i < n; i++) putu(m, i * 0x9e3779b97f4a7c15ull, i);
    CHECK_MAP(m);
    size_t slab = 0, tables = 0;
    for (size_t j = 0; j < sm->dir_len; j += (size_t)1 << (sm->gd - sm->dir[j].t->local_depth)) {
        tables++;
        slab += sm->dir[j].t->slab;
    }
    CHECK_MSG(tables > SW_SLAB_MIN_TABLES, "%zu tables", tables);
    /* the first SW_SLAB_MIN_TABLES splits' tables come from malloc, and
     * are replaced by later splits */
    CHECK_MSG(slab + SW_SLAB_MIN_TABLES >= tables, "%zu of %zu tables in chunks", slab, tables);
    size_t block = sm->chunks ? sm->chunks->block : 0;
    CHECK(sm->nchunks >= 1);
    if (block) CHECK_MSG(sm->nchunks <= slab / ((SW_CHUNK - SW_CHUNK_HDR) / block) + 2, "%zu chunks for %zu blocks",
                         sm->nchunks, slab);
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK_MSG(st.bytes >= sm->nchunks * SW_CHUNK, "bytes %zu, %zu chunks", st.bytes, sm->nchunks);
    /* drain: the chunks go back as their tables merge and shrink */
    for (uint64_t i = 0; i < n; i++) gm_map_delete(m, &(uint64_t){ i * 0x9e3779b97f4a7c15ull });
    CHECK_MAP(m);
    CHECK_MSG(sm->nchunks <= 1, "%zu chunks after draining", sm->nchunks);
    for (uint64_t i = 0; i < n; i++) putu(m, i, i);
    gm_map_clear(m);
    CHECK_MAP(m);
    CHECK_MSG(sm->nchunks <= 1, "%zu chunks after clear", sm->nchunks);
    CHECK(sm->chunks == NULL);
    gm_map_free(m);
}

/* The insert that doubles the directory finds the new directory mostly
 * prepared by the splits before it (dir_next), and it rewrites no table
 * header (a table's directory position is its prefix, independent of the
 * global depth). */
TEST(directory_doubling_copies_little_and_touches_no_table)
{
    gm_map *m = swiss(&gm_type_u64, &gm_type_u64, 0);
    const sw_map *sm = (const sw_map *)(const void *)m;
    size_t n = (size_t)(400000 * test_scale());
    enum { MAXT = 256 };
    static sw_table before[MAXT];
    static const sw_table *where[MAXT];
    static size_t lo[MAXT], hi[MAXT];
    size_t doublings = 0, checked = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = i * 0x9e3779b97f4a7c15ull;
        /* while the map has few tables, snapshot their headers before
         * every insert */
        bool watch = sm->dir && sm->ntables <= 128;
        size_t nt = 0;
        if (watch)
            for (size_t j = 0; j < sm->dir_len; j += (size_t)1 << (sm->gd - sm->dir[j].t->local_depth)) {
                where[nt] = sm->dir[j].t;
                lo[nt] = j;
                hi[nt] = j + ((size_t)1 << (sm->gd - sm->dir[j].t->local_depth));
                before[nt++] = *sm->dir[j].t;
            }
        uint8_t gd = sm->dir ? sm->gd : 0;
        putu(m, k, i);
        if (!sm->dir || sm->gd == gd) continue;
        doublings++;
        if (!watch) continue;
        /* every table but the one that split is still the directory's,
         * with the very same header */
        size_t at = gd ? (size_t)(sw_hash_kind(sm, SK_U64, &k) >> (64 - gd)) : 0; /* k's entry before the insert */
        for (size_t t = 0; t < nt; t++) {
            if (lo[t] <= at && at < hi[t]) continue; /* the one that split (freed) */
            CHECK_MSG(memcmp(where[t], &before[t], sizeof before[t]) == 0,
                      "table %zu's header changed (prefix %lld -> %lld, used %u -> %u, gd %u)", t,
                      (long long)before[t].prefix, (long long)where[t]->prefix, before[t].used, where[t]->used, gd);
            checked++;
        }
    }
    CHECK_MAP(m);
    CHECK_MSG(doublings >= 5, "%zu doublings", doublings);
    CHECK_MSG(checked > 0, "no doubling watched");
    /* the first doublings come with the first splits, before any
     * preparation; later ones find all or nearly all prepared */
    CHECK_MSG(sm->max_dir_copied <= 16, "a doubling copied %llu entries (directory of %zu)",
              (unsigned long long)sm->max_dir_copied, sm->dir_len);
    printf("%zu doublings, directory %zu entries, most copied by one doubling %llu, %zu headers compared\n",
           doublings, sm->dir_len, (unsigned long long)sm->max_dir_copied, checked);
    gm_map_free(m);
}
