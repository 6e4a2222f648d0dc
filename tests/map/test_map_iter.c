/* test_map_iter.c - iteration guarantees while the map grows and changes. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "engine.h"

static void putu(gm_map *m, uint64_t k, uint64_t v) { gm_map_put(m, &k, &v); }

/* A bitmap of keys in [0, n): counts how often each was returned. */
typedef struct { uint8_t *seen; size_t n; } tally;
static tally tally_new(size_t n) { tally t = { calloc(n, 1), n }; return t; }

TEST(every_entry_once)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 10000; i++) putu(m, i, i * 2);
    tally t = tally_new(10000);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, &v)) {
        uint64_t key = *(const uint64_t *)k;
        REQUIRE(key < 10000);
        CHECK(*(uint64_t *)v == key * 2);
        t.seen[key]++;
    }
    for (size_t i = 0; i < 10000; i++) CHECK(t.seen[i] == 1);
    free(t.seen);
    gm_map_free(m);
}

/* Keys [0, base) exist at the start; while iterating, insert `extra` new
 * keys (from base up) every step.  Every original key exactly once, no key
 * ever twice. */
static void grow_during_iteration(size_t base, size_t extra_per_step, bool start_mid_grow)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    size_t total = base + extra_per_step * base + 10;
    for (uint64_t i = 0; i < base; i++) putu(m, i, i);
    if (start_mid_grow) {
        /* Insert until a grow has just started, then iterate. */
        uint64_t i = base;
        while (m->oldbuckets == NULL) { putu(m, i, i); i++; }
        base = i;
        total = base + extra_per_step * base + 10;
    }
    tally t = tally_new(total);
    gm_map_iter it;
    const void *k;
    void *v;
    uint64_t next = base;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, &v)) {
        uint64_t key = *(const uint64_t *)k;
        REQUIRE(key < total);
        CHECK(*(uint64_t *)v == key);
        t.seen[key]++;
        for (size_t j = 0; j < extra_per_step && next < total; j++, next++) putu(m, next, next);
    }
    for (size_t i = 0; i < total; i++) {
        if (i < base) CHECK_MSG(t.seen[i] == 1, "original key %zu seen %u times", i, t.seen[i]);
        else CHECK_MSG(t.seen[i] <= 1, "new key %zu seen %u times", i, t.seen[i]);
    }
    const char *e = gm_map_check(m);
    CHECK_MSG(e == NULL, "%s", e);
    free(t.seen);
    gm_map_free(m);
}

TEST(growth_during_iteration)
{
    grow_during_iteration(100, 10, false);
    grow_during_iteration(1000, 3, false);
    grow_during_iteration(5, 50, false);
}

TEST(iteration_started_mid_growth)
{
    CLASSIC_ONLY("no incremental growth: a Swiss write finishes its table's move");
    grow_during_iteration(50, 0, true);
    grow_during_iteration(1000, 2, true);
    grow_during_iteration(3000, 5, true);
}

TEST(nan_keys_with_growth_during_iteration)
{
    gm_map *m = gm_map_new(&gm_type_f64, &gm_type_u64, 0);
    double nan = NAN;
    for (uint64_t i = 0; i < 20; i++) gm_map_put(m, &nan, &i);
    for (uint64_t i = 0; i < 200; i++) {
        double d = (double)i;
        gm_map_put(m, &d, &i);
    }
    gm_map_iter it;
    const void *k;
    int nans = 0, seen[200] = { 0 };
    double next = 1000;
    uint64_t z = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, NULL)) {
        double d = *(const double *)k;
        if (isnan(d)) nans++;
        else if (d < 200) seen[(int)d]++;
        for (int j = 0; j < 20; j++, next++) gm_map_put(m, &next, &z);
    }
    CHECK_EQ_U(nans, 20);
    for (int i = 0; i < 200; i++) CHECK(seen[i] == 1);
    const char *e = gm_map_check(m);
    CHECK_MSG(e == NULL, "%s", e);
    gm_map_free(m);
}

TEST(deleted_before_reached_never_returned)
{
    for (int round = 0; round < 20; round++) {
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        for (uint64_t i = 0; i < 2000; i++) putu(m, i, i);
        tally t = tally_new(2000);
        uint8_t *deleted = calloc(2000, 1);
        gm_map_iter it;
        const void *k;
        uint64_t s = (uint64_t)round + 1;
        gm_map_iter_init(&it, m);
        while (gm_map_iter_next(&it, &k, NULL)) {
            uint64_t key = *(const uint64_t *)k;
            if (key < 2000) {
                CHECK_MSG(!deleted[key], "key %llu returned after its delete", (unsigned long long)key);
                t.seen[key]++;
            }
            for (int j = 0; j < 3; j++) { /* delete random keys, reached or not */
                uint64_t d = test_rand(&s) % 2000;
                if (gm_map_delete(m, &d)) deleted[d] = 1;
            }
            if (round % 2) putu(m, 5000 + key, 0); /* growth too */
        }
        for (size_t i = 0; i < 2000; i++) {
            CHECK(t.seen[i] <= 1);
            if (!deleted[i]) CHECK_MSG(t.seen[i] == 1, "kept key %zu seen %u", i, t.seen[i]);
        }
        free(deleted);
        free(t.seen);
        gm_map_free(m);
    }
}

TEST(deleting_the_current_entry_while_iterating)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 5000; i++) putu(m, i, i);
    gm_map_iter it;
    const void *k;
    size_t n = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, NULL)) {
        uint64_t key = *(const uint64_t *)k;
        CHECK(gm_map_delete(m, &key));
        n++;
    }
    CHECK_EQ_U(n, 5000);
    CHECK_EQ_U(gm_map_len(m), 0);
    gm_map_free(m);
}

TEST(pop_pattern_range_delete_break)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 3000; i++) putu(m, i, i);
    size_t popped = 0;
    while (gm_map_len(m) > 0) {
        gm_map_iter it;
        const void *k;
        gm_map_iter_init(&it, m);
        REQUIRE(gm_map_iter_next(&it, &k, NULL));
        uint64_t key = *(const uint64_t *)k;
        gm_map_iter_done(&it);
        CHECK(gm_map_delete(m, &key));
        popped++;
    }
    CHECK_EQ_U(popped, 3000);
    gm_map_free(m);
}

static uint64_t first_key(gm_map *m)
{
    gm_map_iter it;
    const void *k;
    gm_map_iter_init(&it, m);
    gm_map_iter_next(&it, &k, NULL);
    uint64_t r = *(const uint64_t *)k;
    gm_map_iter_done(&it);
    return r;
}

TEST(iteration_order_differs_small_map)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 5; i++) putu(m, i, i);
    uint8_t firsts = 0;
    for (int i = 0; i < 200; i++) firsts |= (uint8_t)(1u << first_key(m));
    CHECK_MSG(__builtin_popcount(firsts) >= 3, "first keys seen: mask %#x", firsts);
    gm_map_free(m);
}

TEST(iteration_order_differs_sparse_map)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 1000; i++) putu(m, i, i);
    for (uint64_t i = 0; i < 1000; i++)
        if (i % 100) gm_map_delete(m, &i);
    CHECK_EQ_U(gm_map_len(m), 10);
    uint16_t firsts = 0;
    for (int i = 0; i < 200; i++) firsts |= (uint16_t)(1u << (first_key(m) / 100));
    CHECK_MSG(__builtin_popcount(firsts) >= 4, "first keys seen: mask %#x", firsts);
    gm_map_free(m);
}

TEST(clear_stops_a_running_iterator)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 100; i++) putu(m, i, i);
    gm_map_iter it;
    gm_map_iter_init(&it, m);
    CHECK(gm_map_iter_next(&it, NULL, NULL));
    gm_map_clear(m);
    for (uint64_t i = 0; i < 100; i++) putu(m, i, i);
    CHECK(!gm_map_iter_next(&it, NULL, NULL));
    CHECK(!gm_map_iter_next(&it, NULL, NULL));
    /* A new iterator sees the new entries. */
    size_t n = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, NULL, NULL)) n++;
    CHECK_EQ_U(n, 100);
    gm_map_free(m);
}

TEST(updates_during_iteration_are_seen)
{
    /* An entry moved by growth after the iterator started is looked up
     * again, so its current value is returned. */
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 1000; i++) putu(m, i, 0);
    gm_map_iter it;
    const void *k;
    void *v;
    size_t n = 0, updated_seen = 0;
    gm_map_iter_init(&it, m);
    uint64_t next = 1000;
    while (gm_map_iter_next(&it, &k, &v)) {
        n++;
        if (*(uint64_t *)v == 1) updated_seen++;
        if (n == 1) {
            for (uint64_t i = 0; i < 1000; i++) putu(m, i, 1); /* update all */
            for (int j = 0; j < 3000; j++, next++) putu(m, next, 2); /* grow */
        }
    }
    CHECK(n >= 1000);
    CHECK_MSG(updated_seen >= 999, "only %zu updated values seen", updated_seen);
    gm_map_free(m);
}

/* Found by the fuzzer: an evacuated slot of an iterator's snapshot still
 * points at an owned string's bytes; deleting the entry must not free them
 * while the iterator can read them. */
TEST(owned_keys_deleted_while_iterating_across_growth)
{
    gm_map *m = gm_map_new(&gm_type_str_owned, &gm_type_u64, 0);
    char buf[32];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(buf, sizeof buf, "orig-%d", i);
        *(uint64_t *)gm_map_assign_str(m, buf, (size_t)n) = 1;
    }
    gm_map_iter it;
    const void *k;
    gm_map_iter_init(&it, m);
    REQUIRE(gm_map_iter_next(&it, &k, NULL));
    for (int i = 0; i < 2000; i++) { /* grow past the snapshot */
        int n = snprintf(buf, sizeof buf, "new-%d", i);
        *(uint64_t *)gm_map_assign_str(m, buf, (size_t)n) = 2;
    }
    for (int i = 0; i < 50; i++) {
        int n = snprintf(buf, sizeof buf, "orig-%d", i);
        gm_map_delete_str(m, buf, (size_t)n);
    }
    size_t returned = 0;
    while (gm_map_iter_next(&it, &k, NULL)) {
        const gm_str *s = k;
        CHECK(s->len < 4 || memcmp(s->ptr, "orig", 4) != 0);
        returned++;
    }
    CHECK(returned <= 2000);
    for (int i = 0; i < 300; i++) *(uint64_t *)gm_map_assign_str(m, "x", 1) = 3; /* release deferred */
    gm_map_free(m); /* ASan: nothing leaked, nothing read after free */
}

/* Iterators started before, during and across shrinks (beyond Go).  A
 * shrink needs the map to stay sparse for a bucket-count of writes, so the
 * test keeps updating the surviving keys. */
static void upd(gm_map *m, bool nan_keys, uint64_t k)
{
    double d = (double)k;
    if (nan_keys) gm_map_put(m, &d, &k);
    else putu(m, k, k);
}

static void shrink_iteration(bool start_mid_shrink, bool nan_keys, uint64_t seed)
{
    gm_map *m = gm_map_new(nan_keys ? &gm_type_f64 : &gm_type_u64, &gm_type_u64, 0);
    enum { N = 20000, KEEP = 300 };
    uint64_t one = 1;
    for (uint64_t i = 0; i < N; i++) upd(m, nan_keys, i);
    uint64_t s = seed;
    uint8_t *deleted = calloc(N, 1);
    size_t left = N;
    while (left > KEEP) {
        uint64_t k = test_rand(&s) % N;
        if (deleted[k]) continue;
        double d = (double)k;
        CHECK(nan_keys ? gm_map_delete(m, &d) : gm_map_delete(m, &k));
        deleted[k] = 1;
        left--;
    }
    double nan = __builtin_nan("");
    if (nan_keys)
        for (int j = 0; j < 10; j++) gm_map_put(m, &nan, &one);
    uint64_t kept[KEEP];
    size_t nkept = 0;
    for (uint64_t k = 0; k < N; k++)
        if (!deleted[k] && nkept < KEEP) kept[nkept++] = k;
    if (start_mid_shrink) {
        for (int guard = 0; guard < 100000 && !(m->oldbuckets && (flags_load(m) & F_SHRINK)); guard++)
            upd(m, nan_keys, kept[test_rand(&s) % nkept]);
        REQUIRE(m->oldbuckets != NULL);
    }
    uint8_t *seen = calloc(N, 1);
    uint8_t *touched = calloc(N, 1);
    int nans = 0;
    gm_map_iter it;
    const void *kp;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &kp, NULL)) {
        uint64_t k;
        if (nan_keys) {
            double d = *(const double *)kp;
            if (d != d) { nans++; continue; }
            k = (uint64_t)d;
        } else {
            k = *(const uint64_t *)kp;
        }
        REQUIRE(k < N);
        CHECK_MSG(!seen[k] || touched[k], "key %llu returned twice", (unsigned long long)k);
        CHECK_MSG(!deleted[k], "deleted key %llu returned", (unsigned long long)k);
        seen[k] = 1;
        /* keep writing while iterating: updates (the map stays sparse, so it
         * shrinks under the iterator) and a few deletes */
        for (int j = 0; j < 40; j++) {
            uint64_t d = kept[test_rand(&s) % nkept];
            if (deleted[d]) continue;
            if (j == 0 && left > 20) {
                double dd = (double)d;
                if (nan_keys ? gm_map_delete(m, &dd) : gm_map_delete(m, &d)) {
                    deleted[d] = 1;
                    touched[d] = 1;
                    left--;
                }
            } else {
                upd(m, nan_keys, d);
            }
        }
    }
    for (size_t k = 0; k < N; k++)
        if (!deleted[k]) CHECK_MSG(seen[k], "kept key %zu missed", k);
    if (nan_keys) CHECK_EQ_U(nans, 10);
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK(st.shrinks >= 1);
    const char *e = gm_map_check(m);
    CHECK_MSG(e == NULL, "%s", e);
    free(seen);
    free(touched);
    free(deleted);
    gm_map_free(m);
}

TEST(iteration_across_shrinks)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        shrink_iteration(false, false, seed);
        if (default_engine_is_swiss()) continue; /* no incremental shrink to start in */
        shrink_iteration(true, false, seed);
        shrink_iteration(true, true, seed);
    }
}

/* An iterator that entered an old bucket on behalf of a new one (the map was
 * growing) must still return that bucket's moved entries after the grow
 * completes under it. */
TEST(grow_completes_while_iterator_is_inside_an_old_bucket)
{
    CLASSIC_ONLY("no old buckets; a replaced table under an iterator: test_map_swiss.iteration_across_splits_and_shrinks_with_nan_keys");
    for (int trial = 0; trial < 60; trial++) {
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        uint64_t n = 0;
        while (n < 200 || m->oldbuckets == NULL) { putu(m, n, n); n++; }
        uint8_t *seen = calloc(n, 1);
        gm_map_iter it;
        const void *kp;
        gm_map_iter_init(&it, m);
        REQUIRE(gm_map_iter_next(&it, &kp, NULL));
        seen[*(const uint64_t *)kp]++;
        for (uint64_t k = 0; m->oldbuckets != NULL; k = (k + 1) % n) putu(m, k, k); /* finish the grow */
        while (gm_map_iter_next(&it, &kp, NULL)) {
            uint64_t k = *(const uint64_t *)kp;
            REQUIRE(k < n);
            seen[k]++;
        }
        for (uint64_t k = 0; k < n; k++) CHECK_MSG(seen[k] == 1, "trial %d: key %llu seen %u times", trial, (unsigned long long)k, seen[k]);
        free(seen);
        gm_map_free(m);
        if (check_failures) break;
    }
}

/* The simple walk remembers a bucket's live slots when it reaches the
 * bucket (map_iter.c): entries deleted after that, in the bucket being
 * walked, must still never be returned, and one left must be.  One bucket
 * of 8 (no hint, 8 keys), every first key and every kept key. */
TEST(deleted_in_the_bucket_being_walked_never_returned)
{
    CLASSIC_ONLY("buckets are the classic engine's");
    for (uint64_t keep = 0; keep < 8; keep++) {
        for (int round = 0; round < 8; round++) {
            gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
            for (uint64_t i = 0; i < 8; i++) putu(m, i, i);
            REQUIRE(m->B == 0);
            gm_map_iter it;
            const void *k;
            gm_map_iter_init(&it, m);
            REQUIRE(gm_map_iter_next(&it, &k, NULL));
            uint64_t first = *(const uint64_t *)k;
            for (uint64_t i = 0; i < 8; i++)
                if (i != first && i != keep) CHECK(gm_map_delete(m, &i));
            size_t more = 0;
            while (gm_map_iter_next(&it, &k, NULL)) {
                uint64_t key = *(const uint64_t *)k;
                CHECK_MSG(key == keep && key != first, "key %llu returned (first %llu, kept %llu)",
                          (unsigned long long)key, (unsigned long long)first, (unsigned long long)keep);
                more++;
            }
            CHECK_EQ_U(more, keep == first ? 0 : 1);
            gm_map_free(m);
        }
    }
}
