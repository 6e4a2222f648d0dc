/* test_map.c - behaviour of the map: Go's semantics, one case each. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "engine.h"

#define CHECK_MAP(m) do { const char *e_ = gm_map_check(m); CHECK_MSG(e_ == NULL, "gm_map_check: %s", e_); } while (0)

static uint64_t getu(gm_map *m, uint64_t k, bool *ok)
{
    uint64_t *v = gm_map_get(m, &k);
    if (ok) *ok = v != NULL;
    return v ? *v : 0;
}

static void putu(gm_map *m, uint64_t k, uint64_t v) { gm_map_put(m, &k, &v); }

TEST(basic_put_get_delete)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    REQUIRE(m);
    for (uint64_t i = 0; i < 5000; i++) putu(m, i, i * 3);
    CHECK_EQ_U(gm_map_len(m), 5000);
    bool ok;
    for (uint64_t i = 0; i < 5000; i++) CHECK_EQ_U(getu(m, i, &ok), i * 3);
    getu(m, 5000, &ok);
    CHECK(!ok);
    for (uint64_t i = 0; i < 5000; i += 2) CHECK(gm_map_delete(m, &i));
    uint64_t k = 0;
    CHECK(!gm_map_delete(m, &k));
    CHECK_EQ_U(gm_map_len(m), 2500);
    for (uint64_t i = 0; i < 5000; i++) {
        getu(m, i, &ok);
        CHECK(ok == (i % 2 == 1));
    }
    putu(m, 7, 70); /* overwrite */
    CHECK_EQ_U(getu(m, 7, NULL), 70);
    CHECK_EQ_U(gm_map_len(m), 2500);
    CHECK_MAP(m);
    gm_map_free(m);
}

TEST(nil_map_reads_are_empty)
{
    gm_map *m = NULL;
    uint64_t k = 1;
    CHECK_EQ_U(gm_map_len(m), 0);
    CHECK(gm_map_get(m, &k) == NULL);
    CHECK(!gm_map_delete(m, &k));
    gm_map_clear(m);
    CHECK(gm_map_clone(m) == NULL);
    const uint64_t *z = gm_map_get_or_zero(m, &k);
    CHECK(z && *z == 0);
    gm_map_iter it;
    gm_map_iter_init(&it, m);
    CHECK(!gm_map_iter_next(&it, NULL, NULL));
    CHECK(gm_map_get_u64(m, 1) == NULL);
    CHECK(!gm_map_delete_u64(m, 1));
    CHECK(gm_map_check(m) == NULL);
    gm_map_free(m);
}

static void nil_assign(void *arg)
{
    (void)arg;
    uint64_t k = 1, v = 2;
    gm_map_put(NULL, &k, &v);
}

TEST(nil_map_assign_is_fatal)
{
    CHECK(expect_fatal(nil_assign, NULL, "assignment to entry in nil map"));
}

TEST(float_zero_keys_are_one_key_and_update)
{
    gm_map *m = gm_map_new(&gm_type_f64, &gm_type_i64, 0);
    double pz = 0.0, nz = -0.0;
    int64_t a = 1, b = 2;
    gm_map_put(m, &pz, &a);
    gm_map_put(m, &nz, &b);
    CHECK_EQ_U(gm_map_len(m), 1);
    int64_t *v = gm_map_get(m, &pz);
    CHECK(v && *v == 2);
    /* Go's needkeyupdate: the stored key is now -0. */
    gm_map_iter it;
    const void *k;
    gm_map_iter_init(&it, m);
    REQUIRE(gm_map_iter_next(&it, &k, NULL));
    CHECK(signbit(*(const double *)k));
    CHECK(gm_map_delete(m, &pz));
    CHECK_EQ_U(gm_map_len(m), 0);
    gm_map_free(m);
}

TEST(nan_keys_insert_always_never_found)
{
    gm_map *m = gm_map_new(&gm_type_f64, &gm_type_i64, 0);
    double nan = NAN;
    for (int64_t i = 0; i < 3; i++) gm_map_put(m, &nan, &i);
    CHECK_EQ_U(gm_map_len(m), 3);
    CHECK(gm_map_get(m, &nan) == NULL);
    CHECK(!gm_map_delete(m, &nan));
    CHECK_EQ_U(gm_map_len(m), 3);
    /* Iteration yields every NaN entry. */
    gm_map_iter it;
    const void *k;
    void *v;
    int n = 0, seen = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, &v)) {
        CHECK(isnan(*(const double *)k));
        seen |= 1 << *(int64_t *)v;
        n++;
    }
    CHECK_EQ_U(n, 3);
    CHECK_EQ_U(seen, 7);
    CHECK_MAP(m);
    gm_map_clear(m);
    CHECK_EQ_U(gm_map_len(m), 0);
    gm_map_iter_init(&it, m);
    CHECK(!gm_map_iter_next(&it, NULL, NULL));
    gm_map_free(m);
}

TEST(nan_keys_survive_growth)
{
    gm_map *m = gm_map_new(&gm_type_f64, &gm_type_i64, 0);
    double nan = NAN;
    int64_t one = 1;
    for (int i = 0; i < 100; i++) gm_map_put(m, &nan, &one);
    for (int i = 0; i < 5000; i++) {
        double d = i;
        gm_map_put(m, &d, &one);
    }
    CHECK_EQ_U(gm_map_len(m), 5100);
    CHECK_MAP(m);
    gm_map_iter it;
    const void *k;
    int nans = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, NULL)) nans += isnan(*(const double *)k);
    CHECK_EQ_U(nans, 100);
    gm_map_clear(m);
    CHECK_EQ_U(gm_map_len(m), 0);
    CHECK_MAP(m);
    gm_map_free(m);
}

struct big { uint8_t b[200]; };
struct huge { uint8_t b[4096]; };
GM_TYPE_DEFINE_MEM(big_type, struct big);
GM_TYPE_DEFINE_VALUE(huge_type, struct huge);

TEST(big_keys_and_values_are_indirect)
{
    gm_map *m = gm_map_new(&big_type, &huge_type, 0);
    REQUIRE(m);
    gm_map_stats lst;
    gm_map_stats_get(m, &lst);
    CHECK(lst.indirect_key && lst.indirect_val);
    struct big k;
    struct huge v;
    for (int i = 0; i < 300; i++) {
        memset(&k, i, sizeof k);
        k.b[0] = (uint8_t)(i >> 8);
        memset(&v, i + 1, sizeof v);
        gm_map_put(m, &k, &v);
    }
    CHECK_EQ_U(gm_map_len(m), 300);
    CHECK_MAP(m);
    for (int i = 0; i < 300; i++) {
        memset(&k, i, sizeof k);
        k.b[0] = (uint8_t)(i >> 8);
        struct huge *p = gm_map_get(m, &k);
        REQUIRE(p);
        CHECK(p->b[0] == (uint8_t)(i + 1) && p->b[4095] == (uint8_t)(i + 1));
        if (i % 3 == 0) CHECK(gm_map_delete(m, &k));
    }
    CHECK_EQ_U(gm_map_len(m), 200);
    gm_map *c = gm_map_clone(m);
    CHECK_EQ_U(gm_map_len(c), 200);
    CHECK_MAP(c);
    gm_map_clear(m);
    CHECK_EQ_U(gm_map_len(c), 200);
    gm_map_free(c);
    gm_map_free(m); /* ASan's leak check sees every indirect block freed */
}

TEST(huge_values_read_as_zero_when_absent)
{
    gm_map *m = gm_map_new(&gm_type_u64, &huge_type, 0);
    uint64_t k = 5;
    const struct huge *z = gm_map_get_or_zero(m, &k);
    bool allzero = true;
    for (size_t i = 0; i < sizeof z->b; i++) allzero &= z->b[i] == 0;
    CHECK(allzero);
    struct huge *slot = gm_map_assign(m, &k);
    memset(slot, 0xAB, sizeof *slot);
    CHECK(gm_map_delete(m, &k));
    slot = gm_map_assign(m, &k); /* a new entry starts at zero */
    allzero = true;
    for (size_t i = 0; i < sizeof slot->b; i++) allzero &= slot->b[i] == 0;
    CHECK(allzero);
    gm_map_free(m);
}

static uint64_t zs_hash(const void *v, uint64_t seed) { (void)v; return seed * 7; }
static bool zs_equal(const void *a, const void *b) { (void)a; (void)b; return true; }
static const gm_type empty_struct = { 0, 1, zs_hash, zs_equal, NULL, 0, "struct{}" };

TEST(zero_size_keys_and_values)
{
    gm_map *m = gm_map_new(&empty_struct, &gm_type_u64, 0);
    char dummy;
    uint64_t v = 9;
    gm_map_put(m, &dummy, &v);
    gm_map_put(m, &dummy, &v);
    CHECK_EQ_U(gm_map_len(m), 1);
    uint64_t *p = gm_map_get(m, &dummy);
    CHECK(p && *p == 9);
    CHECK(gm_map_delete(m, &dummy));
    gm_map_free(m);

    gm_map *set = gm_map_new(&gm_type_u64, &empty_struct, 0);
    for (uint64_t i = 0; i < 1000; i++) gm_map_put(set, &i, &dummy);
    CHECK_EQ_U(gm_map_len(set), 1000);
    uint64_t k = 10, absent = 5000;
    CHECK(gm_map_get(set, &k) != NULL);
    CHECK(gm_map_get(set, &absent) == NULL);
    CHECK_MAP(set);
    gm_map_free(set);
}

TEST(bogus_hints_do_not_crash)
{
    size_t hints[] = { SIZE_MAX, SIZE_MAX / 2, (size_t)1 << 62, (size_t)1 << 40 };
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, hints[i]);
        REQUIRE(m);
        putu(m, 1, 2);
        CHECK_EQ_U(getu(m, 1, NULL), 2);
        gm_map_free(m);
    }
}

TEST(increment_after_delete_starts_from_zero)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_i64, 0);
    for (uint64_t k = 0; k < 100; k++) {
        int64_t *p = gm_map_assign(m, &k);
        *p += 5;
    }
    for (uint64_t k = 0; k < 100; k++) gm_map_delete(m, &k);
    for (uint64_t k = 0; k < 100; k++) {
        int64_t *p = gm_map_assign(m, &k); /* m[k]++ */
        (*p)++;
    }
    for (uint64_t k = 0; k < 100; k++) CHECK_EQ_U(*(int64_t *)gm_map_get(m, &k), 1);
    gm_map_free(m);
}

TEST(bucket_counts_match_go)
{
    CLASSIC_ONLY("Go 1.19's bucket counts; Swiss sizes: test_map_swiss.map_of_at_most_8_entries_has_no_table");
    size_t n[] = { 8, 9, 13, 14, 26, 27 }, want[] = { 1, 2, 2, 4, 4, 8 };
    for (int t = 0; t < 6; t++) {
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        for (uint64_t i = 0; i < n[t]; i++) putu(m, i, i);
        gm_map_stats st;
        gm_map_stats_get(m, &st);
        CHECK_MSG(st.nbuckets == want[t], "%zu entries: %zu buckets, Go has %zu", n[t], st.nbuckets, want[t]);
        gm_map_free(m);
        /* The hint gives the same sizes (makemap's rule). */
        m = gm_map_new(&gm_type_u64, &gm_type_u64, n[t]);
        gm_map_stats_get(m, &st);
        CHECK_MSG(st.nbuckets == want[t], "hint %zu: %zu buckets, Go has %zu", n[t], st.nbuckets, want[t]);
        gm_map_free(m);
    }
}

static uint64_t insert_work(size_t n, gm_map_stats *st)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < n; i++) putu(m, i * 0x9e3779b97f4a7c15ull, i);
    gm_map_stats_get(m, st);
    gm_map_free(m);
    return n + st->moved_entries + st->evacuated_buckets + st->overflow_allocs;
}

/* Inserting n keys costs O(n) in all.  A doubling from 2^B buckets starts
 * at a count between the threshold T = 6.5 * 2^B and 1.5 T (a big array's
 * doubling waits for the helper thread to prepare it: map_mem.c), and moves
 * what the map then holds; the last one started at most at n, the one
 * before at most at 1.5 T / 2 <= 0.75 n, and so on: at most 2.5 n entries
 * moved.  Evacuated buckets are fewer than the final array's buckets (under
 * 2n / 6.5), and overflow buckets, about one per bucket at most of each
 * array the map had (9.75 entries a bucket at 1.5 T), fewer than twice
 * that.  So about 4.4 n at most; the test allows 5 n.  A per-entry bound, not a ratio between
 * sizes: when a doubling starts depends on the helper's timing, so one n
 * may end just before a doubling on an idle machine and just after it on a
 * loaded one (CI saw 2n cost 3.04x n that way, and moved 2.02 n). */
static void check_linear_work(void)
{
    for (size_t n = 1000; n <= 512000; n *= 2) {
        gm_map_stats st;
        uint64_t w = insert_work(n, &st);
        CHECK_MSG(w < 5 * n && 2 * st.moved_entries <= 5 * n, "n=%zu: work %llu (moved %llu, evacuated %llu, overflow %llu)",
                  n, (unsigned long long)w, (unsigned long long)st.moved_entries,
                  (unsigned long long)st.evacuated_buckets, (unsigned long long)st.overflow_allocs);
    }
}

TEST(growth_is_linear_in_work) { check_linear_work(); }

/* The worst case of the bound above: no prepared array ever arrives, so
 * every big doubling waits until half past its threshold and gives up. */
TEST(growth_is_linear_in_work_when_the_helper_never_prepares)
{
    CLASSIC_ONLY("no helper thread: Swiss tables split at their own size");
    gm_map_bg_pause(true);
    check_linear_work();
    gm_map_bg_pause(false);
}

TEST(deleting_while_a_grow_waits_for_its_prepared_array_keeps_the_invariants)
{
    /* A grow that waits for the helper's array looks again every
     * PREP_RECHECK inserts (grow_at above the load factor's point); deletes
     * meanwhile must leave a map that gm_map_check accepts.  Ranging over a
     * million keys and deleting each failed the check about 1 run in 4
     * (the demo's claim 6), whenever the helper was late. */
    CLASSIC_ONLY("the helper-prepared arrays are the classic engine's");
    gm_map_bg_pause(true);                /* the prepared array never gets ready */
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    uint64_t k = 0;
    for (; k < 26624 + 300; k++) putu(m, k, k);   /* 6.5 x 2^12: past the load factor */
    gm_map_stats_get(m, &st);
    CHECK_EQ_U(st.b, 12);                  /* still waiting: no grow started */
    CHECK_EQ_U(st.growing, 0);
    CHECK_MAP(m);
    for (uint64_t d = 0; d < 2000; d++) gm_map_delete_u64(m, d);
    CHECK_MAP(m);
    gm_map_bg_pause(false);
    for (; k < 100000; k++) putu(m, k, k);  /* and it grows on */
    CHECK_MAP(m);
    CHECK_EQ_U(gm_map_len(m), 100000 - 2000);
    gm_map_free(m);
}

TEST(fork_while_the_helper_releases_an_array)
{
    /* The helper unmaps a retired array (its header last) without holding
     * bg_mu; a fork at that moment must not hand the array back to the
     * child's queue: its header is gone.  gomap-lab's claims table forked
     * there about one run in two, and the child died of SIGSEGV in
     * bg_fork_child before it could exec. */
    CLASSIC_ONLY("retired arrays released by the helper are the classic engine's");
    gm_map_fault_hold_after_release(1);
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t k = 0; k < 200000; k++) putu(m, k, k);   /* mmapped arrays retire to the helper */
    for (int i = 0; i < 10000 && !gm_map_fault_hold_after_release(1); i++) usleep(1000);
    REQUIRE(gm_map_fault_hold_after_release(1));            /* released one, waiting */
    pid_t pid = fork();
    if (pid == 0) {
        gm_map *c = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        for (uint64_t k = 0; k < 200000; k++) putu(c, k, k); /* the child's own helper, its own retirements */
        _exit(gm_map_check(c) == NULL && gm_map_check(m) == NULL ? 0 : 3);
    }
    REQUIRE(pid > 0);
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    gm_map_fault_hold_after_release(0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: exited %d status %d signal %d",
              WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    gm_map_free(m);
}

TEST(growth_evacuates_at_most_two_buckets_per_write)
{
    CLASSIC_ONLY("no incremental evacuation; the bound is test_map_swiss.no_insert_moves_more_than_one_table");
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    uint64_t before = 0, seen_growing = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        putu(m, i, i);
        gm_map_stats_get(m, &st);
        CHECK(st.evacuated_buckets - before <= 2);
        before = st.evacuated_buckets;
        seen_growing += st.growing;
        if (i % 5003 == 0) CHECK_MAP(m);
    }
    CHECK(seen_growing > 1000);
    gm_map_free(m);
}

/* A hash with the key itself in the low bits: the test chooses buckets. */
static uint64_t ident_hash(const void *v, uint64_t seed)
{
    (void)seed;
    uint64_t x;
    memcpy(&x, v, 8);
    return x | (x << 56);
}
static bool u64_eq(const void *a, const void *b) { return memcmp(a, b, 8) == 0; }
static const gm_type ident_u64 = { 8, 8, ident_hash, u64_eq, NULL, 0, "ident_u64" };

TEST(same_size_grow_repacks_overflow)
{
    CLASSIC_ONLY("no overflow buckets; tombstones: test_map_swiss.tombstone_churn_at_constant_size_keeps_the_table");
    gm_map *m = gm_map_new(&ident_u64, &gm_type_u64, 1000);
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    unsigned B = st.b;
    REQUIRE(B == 8);
    /* Phase 1: 1600 keys in buckets 0..3; delete them; phase 2 in 100..103. */
    for (int phase = 0; phase < 3; phase++) {
        for (uint64_t i = 0; i < 1600; i++) putu(m, ((i / 4) << 8) | (phase * 100 + i % 4), i);
        CHECK_MAP(m);
        for (uint64_t i = 0; i < 1600; i++) {
            uint64_t k = ((i / 4) << 8) | (phase * 100 + i % 4);
            CHECK(gm_map_delete(m, &k));
        }
    }
    for (uint64_t i = 0; i < 5000; i++) putu(m, i * 1000003, i); /* drive the grow to its end */
    gm_map_stats_get(m, &st);
    CHECK(st.same_size_grows >= 1);
    CHECK_MAP(m);
    gm_map_free(m);
}

TEST(clear_removes_all_keeps_buckets_and_reseeds)
{
    gm_map *m = gm_map_new(&gm_type_f64, &gm_type_u64, 0);
    double nan = NAN;
    uint64_t v = 1;
    for (int i = 0; i < 1000; i++) {
        double d = i;
        gm_map_put(m, &d, &v);
    }
    gm_map_put(m, &nan, &v);
    gm_map_stats st1, st2;
    gm_map_stats_get(m, &st1);
    uint64_t seed = m->seed;
    gm_map_clear(m);
    gm_map_stats_get(m, &st2);
    CHECK_EQ_U(gm_map_len(m), 0);
    /* Classic keeps its buckets (as Go); Swiss frees its tables (O(tables)). */
    if (st1.engine == GM_MAP_CLASSIC) CHECK_EQ_U(st2.nbuckets, st1.nbuckets);
    else CHECK_EQ_U(st2.tables, 0);
    CHECK(m->seed != seed);
    CHECK_MAP(m);
    double one = 1;
    CHECK(gm_map_get(m, &one) == NULL);
    gm_map_put(m, &one, &v);
    CHECK_EQ_U(gm_map_len(m), 1);
    gm_map_free(m);
}

TEST(emptying_by_delete_reseeds)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 10; i++) putu(m, i, i);
    uint64_t seed = m->seed;
    for (uint64_t i = 0; i < 9; i++) gm_map_delete(m, &i);
    CHECK(m->seed == seed);
    uint64_t last = 9;
    gm_map_delete(m, &last);
    CHECK(m->seed != seed);
    gm_map_free(m);
}

TEST(delete_turns_trailing_slots_into_empty_rest)
{
    CLASSIC_ONLY("no EMPTY_REST chains (reads classic buckets)");
    gm_map *m = gm_map_new(&ident_u64, &gm_type_u64, 0);
    /* 20 keys in bucket 0 of a 1-bucket map... B grows to 2 at 14 entries;
     * keys with low bits 0 stay in bucket 0: a chain of 3 buckets. */
    for (uint64_t i = 0; i < 20; i++) putu(m, i << 8, i);
    CHECK_MAP(m);
    uint8_t *b0 = m->buckets;
    /* Delete in the middle: EMPTY_ONE, chain still valid. */
    uint64_t k = 3 << 8;
    gm_map_delete(m, &k);
    CHECK_MAP(m);
    /* Delete everything from the end back: all slots become EMPTY_REST. */
    for (int64_t i = 19; i >= 0; i--) {
        k = (uint64_t)i << 8;
        gm_map_delete(m, &k);
        CHECK_MAP(m);
    }
    bool allrest = true;
    for (uint8_t *b = b0; b; b = b_ovf(m, b))
        for (int i = 0; i < 8; i++) allrest &= b[i] == EMPTY_REST;
    CHECK(allrest);
    gm_map_free(m);
}

/* Deletes in random orders from chains of 5 buckets (40 keys that all
 * select bucket 0): every step leaves the chain's trailing empties
 * EMPTY_REST and no EMPTY_ONE run at its end (gm_map_check, invariant 1),
 * through the slot-7 and back-through-the-chain cases of the delete. */
TEST(delete_in_any_order_keeps_chains_well_formed)
{
    CLASSIC_ONLY("no EMPTY_REST chains (reads classic buckets)");
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 200; round++) {
        gm_map *m = gm_map_new(&ident_u64, &gm_type_u64, 0);
        uint64_t keys[40];
        for (uint64_t i = 0; i < 40; i++) {
            keys[i] = i << 8;
            putu(m, keys[i], i);
        }
        for (int i = 39; i > 0; i--) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((rng >> 33) % (uint64_t)(i + 1));
            uint64_t t = keys[i]; keys[i] = keys[j]; keys[j] = t;
        }
        /* half the rounds put some keys back midway: slots reused */
        for (int i = 0; i < 40; i++) {
            CHECK(gm_map_delete(m, &keys[i]));
            CHECK_MAP(m);
            if (round % 2 && i == 20)
                for (int r = 0; r <= i; r += 3) { putu(m, keys[r], 7); CHECK_MAP(m); }
        }
        for (int r = 0; round % 2 && r <= 20; r += 3) {
            CHECK(gm_map_delete(m, &keys[r]));
            CHECK_MAP(m);
        }
        CHECK(gm_map_len(m) == 0);
        gm_map_free(m);
    }
}

TEST(clone_is_deep_and_independent)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 3000; i++) putu(m, i, i + 1);
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    gm_map *c = gm_map_clone(m);
    REQUIRE(c);
    CHECK_EQ_U(gm_map_len(c), 3000);
    CHECK_MAP(c);
    for (uint64_t i = 0; i < 3000; i++) CHECK_EQ_U(getu(c, i, NULL), i + 1);
    putu(c, 1, 100);
    uint64_t k = 2;
    gm_map_delete(c, &k);
    CHECK_EQ_U(getu(m, 1, NULL), 2);
    CHECK_EQ_U(getu(m, 2, NULL), 3);
    CHECK(m->seed != c->seed);
    gm_map_free(c);
    gm_map_free(m);
}

TEST(owned_string_keys_are_copied_and_freed)
{
    gm_map *m = gm_map_new(&gm_type_str_owned, &gm_type_u64, 0);
    char buf[32];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(buf, sizeof buf, "key-%d", i);
        gm_str s = { buf, (size_t)n };
        uint64_t v = (uint64_t)i;
        gm_map_put(m, &s, &v);
        memset(buf, 'X', sizeof buf); /* the caller's buffer is reused */
    }
    CHECK_EQ_U(gm_map_len(m), 2000);
    CHECK_MAP(m);
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(buf, sizeof buf, "key-%d", i);
        uint64_t *v = gm_map_get_str(m, buf, (size_t)n);
        CHECK(v && *v == (uint64_t)i);
        if (i % 2) CHECK(gm_map_delete_str(m, buf, (size_t)n));
    }
    gm_str empty = { NULL, 0 };
    uint64_t z = 42;
    gm_map_put(m, &empty, &z);
    CHECK(gm_map_get_str(m, "", 0) && *(uint64_t *)gm_map_get_str(m, "", 0) == 42);
    gm_map *c = gm_map_clone(m);
    gm_map_clear(m);
    CHECK_EQ_U(gm_map_len(c), 1001);
    CHECK(gm_map_get_str(c, "key-10", 6) != NULL);
    gm_map_free(c);
    gm_map_free(m); /* ASan: no leak of copied bytes */
}

TEST(string_keys_generic_and_fast_agree)
{
    gm_map *m = gm_map_new(&gm_type_str, &gm_type_u64, 0);
    static char store[4000][16];
    for (int i = 0; i < 4000; i++) {
        int n = snprintf(store[i], 16, "s%d", i * 7);
        uint64_t *v = (i % 2) ? gm_map_assign_str(m, store[i], (size_t)n)
                              : gm_map_assign(m, &(gm_str){ store[i], (size_t)n });
        *v = (uint64_t)i;
    }
    CHECK_MAP(m);
    for (int i = 0; i < 4000; i++) {
        gm_str s = gm_str_from_cstr(store[i]);
        uint64_t *a = gm_map_get(m, &s), *b = gm_map_get_str(m, s.ptr, s.len);
        CHECK(a && a == b && *a == (uint64_t)i);
    }
    CHECK(gm_map_delete_str(m, "s7", 2));
    CHECK(gm_map_get(m, &(gm_str){ "s7", 2 }) == NULL);
    gm_map_free(m);
}

/* Keys of every length from 0 to 40 bytes, each put through one path and
 * found through the other: the string fast path hashes 9..16-byte keys
 * with its own inline call, which must give gm_type_str's hash bit for bit. */
TEST(string_fast_path_hashes_every_length_as_generic)
{
    gm_map *m = gm_map_new(&gm_type_str, &gm_type_u64, 0);
    static char store[41 * 100][48];
    size_t n = 0;
    for (size_t len = 0; len <= 40; len++) {
        for (int j = 0; j < 100; j++, n++) {
            char *k = store[n];
            for (size_t c = 0; c < len; c++) k[c] = (char)('a' + (j * 7 + (int)c * 13) % 26);
            if (len >= 2) { k[0] = (char)('A' + j % 26); k[1] = (char)('A' + j / 26); }
            uint64_t *v = (n % 2) ? gm_map_assign_str(m, k, len) : gm_map_assign(m, &(gm_str){ k, len });
            *v = n;
        }
    }
    CHECK_MAP(m);
    size_t found = 0;
    for (size_t i = 0, len = 0; len <= 40; len++) {
        for (int j = 0; j < 100; j++, i++) {
            gm_str s = { store[i], len };
            uint64_t *a = gm_map_get(m, &s), *b = gm_map_get_str(m, s.ptr, s.len);
            CHECK(a != NULL && a == b);
            found += a != NULL && a == b;
        }
    }
    CHECK(found == n);
    gm_map_free(m);
}

TEST(u32_and_u64_fast_paths_agree_with_generic)
{
    gm_map *m32 = gm_map_new(&gm_type_u32, &gm_type_u32, 0);
    gm_map *m64 = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint32_t i = 0; i < 20000; i++) {
        uint32_t k = i * 2654435761u;
        if (i % 2) *(uint32_t *)gm_map_assign_u32(m32, k) = i;
        else gm_map_put(m32, &k, &i);
        uint64_t k64 = (uint64_t)k << 20, v64 = i;
        if (i % 3) *(uint64_t *)gm_map_assign_u64(m64, k64) = v64;
        else gm_map_put(m64, &k64, &v64);
    }
    CHECK_MAP(m32);
    CHECK_MAP(m64);
    for (uint32_t i = 0; i < 20000; i++) {
        uint32_t k = i * 2654435761u;
        uint64_t k64 = (uint64_t)k << 20;
        CHECK(gm_map_get_u32(m32, k) == gm_map_get(m32, &k));
        CHECK(gm_map_get_u64(m64, k64) == gm_map_get(m64, &k64));
        CHECK(*(uint32_t *)gm_map_get_u32(m32, k) == i);
        if (i % 5 == 0) {
            CHECK(gm_map_delete_u32(m32, k));
            CHECK(gm_map_delete_u64(m64, k64));
        }
    }
    CHECK_EQ_U(gm_map_len(m32), 16000);
    CHECK_EQ_U(gm_map_len(m64), 16000);
    CHECK_MAP(m32);
    CHECK_MAP(m64);
    gm_map_free(m32);
    gm_map_free(m64);
}

static void wrong_fast_path(void *arg)
{
    (void)arg;
    gm_map *m = gm_map_new(&gm_type_u32, &gm_type_u32, 0);
    gm_map_get_u64(m, 1);
}

TEST(fast_path_on_wrong_key_type_is_fatal)
{
    CHECK(expect_abort_with(wrong_fast_path, NULL, "gm_map_get_u64: map key type is uint32"));
}

typedef struct { uint32_t a, b; } pair;
GM_TYPE_DEFINE_MEM(pair_type, pair);
typedef struct { char bytes[16]; } name16;
GM_TYPE_DEFINE_MEM(name16_type, name16);

TEST(struct_and_byte_array_keys)
{
    gm_map *m = gm_map_new(&pair_type, &gm_type_u64, 0);
    for (uint32_t i = 0; i < 500; i++) {
        pair p = { i, i * 2 };
        uint64_t v = i;
        gm_map_put(m, &p, &v);
    }
    pair p = { 10, 20 }, q = { 10, 21 };
    CHECK(gm_map_get(m, &p) && *(uint64_t *)gm_map_get(m, &p) == 10);
    CHECK(gm_map_get(m, &q) == NULL);
    gm_map_free(m);

    gm_map *n = gm_map_new(&name16_type, &gm_type_i32, 0);
    name16 a = { "alpha" }, b = { "beta" };
    int32_t one = 1, two = 2;
    gm_map_put(n, &a, &one);
    gm_map_put(n, &b, &two);
    name16 a2;
    memset(&a2, 0, sizeof a2);
    strcpy(a2.bytes, "alpha");
    CHECK(*(int32_t *)gm_map_get(n, &a2) == 1);
    gm_map_free(n);
}

GM_MAP_DEFINE(wordcount, gm_str, int64_t, gm_type_str);

TEST(typed_layer_wordcount)
{
    const char *text[] = { "the", "cat", "the", "hat", "the", "cat" };
    wordcount *wc = wordcount_new(0);
    for (int i = 0; i < 6; i++) (*wordcount_ref(wc, gm_str_from_cstr(text[i])))++;
    CHECK_EQ_U(wordcount_len(wc), 3);
    CHECK_EQ_U(wordcount_get(wc, GM_STR("the")), 3);
    CHECK_EQ_U(wordcount_get(wc, GM_STR("dog")), 0);
    int64_t out = -1;
    CHECK(!wordcount_lookup(wc, GM_STR("dog"), &out) && out == 0);
    wordcount_put(wc, GM_STR("dog"), 7);
    CHECK(wordcount_lookup(wc, GM_STR("dog"), &out) && out == 7);
    CHECK(wordcount_delete(wc, GM_STR("cat")));
    wordcount_iter it;
    gm_str k;
    int64_t v, total = 0;
    wordcount_iter_init(&it, wc);
    while (wordcount_iter_next(&it, &k, &v)) total += v;
    CHECK_EQ_U(total, 3 + 1 + 7);
    wordcount *c = wordcount_clone(wc);
    wordcount_clear(wc);
    CHECK_EQ_U(wordcount_len(wc), 0);
    CHECK_EQ_U(wordcount_len(c), 3);
    wordcount_free(c);
    wordcount_free(wc);
}

TEST(grow_does_not_touch_the_new_array)
{
    CLASSIC_ONLY("no big bucket array: a Swiss table is at most 1024 slots");
    /* The insert that starts a grow evacuates two old buckets: it may touch
     * a few 4 KiB pages of the new array, never the whole array.  (Without
     * the helper thread: with it, big arrays are populated beforehand, off
     * the insert path -- big_table_grows_into_the_prepared_array.) */
    gm_map_options_set("mapbg=0");
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    gm_map_stats st;
    long page = sysconf(_SC_PAGESIZE);
    int checked = 0;
    for (uint64_t i = 0; i < 4000000 && checked < 1; i++) {
        bool was = m->oldbuckets != NULL;
        putu(m, i, i);
        if (!was && m->oldbuckets != NULL) {
            gm_map_stats_get(m, &st);
            if (st.array_bytes < (32u << 20)) continue;
            uintptr_t lo = (uintptr_t)st.array & ~(uintptr_t)(page - 1);
            size_t len = (uintptr_t)st.array + st.array_bytes - lo;
            size_t pages = (len + (size_t)page - 1) / (size_t)page;
            unsigned char *vec = malloc(pages);
            REQUIRE(mincore((void *)lo, len, vec) == 0);
            size_t resident = 0;
            for (size_t p = 0; p < pages; p++) resident += vec[p] & 1;
            free(vec);
            size_t bytes = resident * (size_t)page;
            CHECK_MSG(bytes <= (256u << 10) && bytes * 4 < st.array_bytes,
                      "%zu of %zu bytes of the new array resident after the grow started", bytes, st.array_bytes);
            checked++;
        }
    }
    CHECK(checked == 1);
    gm_map_free(m);
    gm_map_options_set("");
}

TEST(retired_arrays_wait_for_open_iterators)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 100; i++) putu(m, i, i);
    gm_map_iter it;
    gm_map_iter_init(&it, m);
    REQUIRE(gm_map_iter_next(&it, NULL, NULL));
    for (uint64_t i = 100; i < 100000; i++) putu(m, i, i); /* several grows */
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK(st.retired_pending >= 3);
    /* The open iterator can still run to the end over its snapshot. */
    size_t n = 1;
    while (gm_map_iter_next(&it, NULL, NULL)) n++;
    CHECK(n >= 100);
    for (uint64_t i = 0; i < 64; i++) putu(m, i, i); /* writes release */
    gm_map_stats_get(m, &st);
    CHECK_EQ_U(st.retired_pending, 0);
    /* An abandoned iterator released with gm_map_iter_done. */
    gm_map_iter_init(&it, m);
    gm_map_iter_next(&it, NULL, NULL);
    for (uint64_t i = 100000; i < 400000; i++) putu(m, i, i);
    gm_map_stats_get(m, &st);
    CHECK(st.retired_pending >= 1);
    gm_map_iter_done(&it);
    for (uint64_t i = 0; i < 4096; i++) putu(m, i, i);
    gm_map_stats_get(m, &st);
    CHECK_EQ_U(st.retired_pending, 0);
    gm_map_free(m);
}

TEST(allocation_failure_leaves_map_unchanged)
{
    gm_map *m = gm_map_new(&gm_type_str_owned, &gm_type_u64, 0);
    char buf[32];
    int failures = 0;
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(buf, sizeof buf, "k%d", i);
        gm_str s = { buf, (size_t)n };
        size_t before = gm_map_len(m);
        gm_map_fault_alloc_after(1 + i % 3);
        uint64_t *v = gm_map_assign(m, &s);
        gm_map_fault_alloc_after(0);
        if (v == NULL) {
            failures++;
            CHECK_EQ_U(gm_map_len(m), before);
            CHECK(gm_map_get(m, &s) == NULL);
            v = gm_map_assign(m, &s); /* memory is back: it works */
        }
        REQUIRE(v);
        *v = (uint64_t)i;
        const char *e = gm_map_check(m);
        CHECK_MSG(e == NULL, "%s", e);
    }
    CHECK(failures > 100);
    CHECK_EQ_U(gm_map_len(m), 3000);
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(buf, sizeof buf, "k%d", i);
        uint64_t *v = gm_map_get_str(m, buf, (size_t)n);
        CHECK(v && *v == (uint64_t)i);
    }
    gm_map_free(m);
}

TEST(bad_types_are_rejected_clearly)
{
    gm_type bad = gm_type_u64;
    bad.align = 3;
    errno = 0;
    CHECK(gm_map_new(&bad, &gm_type_u64, 0) == NULL && errno == EINVAL);
    gm_type nohash = gm_type_u64;
    nohash.hash = NULL;
    CHECK(gm_map_new(&nohash, &gm_type_u64, 0) == NULL && errno == EINVAL);
    gm_type odd = { 12, 8, NULL, NULL, NULL, 0, "odd" };
    CHECK(gm_map_new(&gm_type_u64, &odd, 0) == NULL && errno == EINVAL);
    CHECK(gm_map_new(NULL, &gm_type_u64, 0) == NULL);
    CHECK(gm_type_validate(&gm_type_str, true) == NULL);
}

struct aligned64 { _Alignas(64) uint64_t v[8]; };
GM_TYPE_DEFINE_MEM(al64_type, struct aligned64);

TEST(over_aligned_keys_stay_aligned)
{
    gm_map *m = gm_map_new(&al64_type, &gm_type_u8, 0);
    struct aligned64 k;
    memset(&k, 0, sizeof k);
    for (uint64_t i = 0; i < 500; i++) {
        k.v[0] = i;
        uint8_t v = (uint8_t)i;
        gm_map_put(m, &k, &v);
    }
    gm_map_iter it;
    const void *kp;
    gm_map_iter_init(&it, m);
    size_t n = 0;
    while (gm_map_iter_next(&it, &kp, NULL)) {
        CHECK(((uintptr_t)kp & 63) == 0);
        n++;
    }
    CHECK_EQ_U(n, 500);
    CHECK_MAP(m);
    gm_map_free(m);
}

TEST(large_map_values_intact_after_many_grows)
{
    size_t n = (size_t)(400000 * test_scale());
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    uint64_t s = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = test_rand(&s);
        putu(m, k, k ^ 0x5555);
    }
    CHECK_MAP(m);
    s = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = test_rand(&s);
        bool ok;
        CHECK(getu(m, k, &ok) == (k ^ 0x5555) && ok);
    }
    gm_map_free(m);
}

/* Every built-in type of API.md works as a key: distinct values are distinct
 * keys, equal values one key. */
TEST(every_builtin_type_is_a_key)
{
    const gm_type *types[] = { &gm_type_bool, &gm_type_i8, &gm_type_u8, &gm_type_i16, &gm_type_u16,
                               &gm_type_i32, &gm_type_u32, &gm_type_i64, &gm_type_u64, &gm_type_f32,
                               &gm_type_f64, &gm_type_ptr };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const gm_type *kt = types[t];
        gm_map *m = gm_map_new(kt, &gm_type_u64, 0);
        REQUIRE(m);
        size_t distinct = kt->size == 1 && kt == &gm_type_bool ? 2 : kt->size == 1 ? 200 : 1000;
        for (uint64_t i = 0; i < distinct; i++) {
            union { bool b; int8_t i8; uint8_t u8; int16_t i16; uint16_t u16; int32_t i32; uint32_t u32;
                    int64_t i64; uint64_t u64; float f32; double f64; void *p; } k;
            memset(&k, 0, sizeof k);
            if (kt == &gm_type_f32) k.f32 = (float)i;
            else if (kt == &gm_type_f64) k.f64 = (double)i;
            else if (kt == &gm_type_ptr) k.p = (char *)0x1000 + i * 16;
            else if (kt == &gm_type_bool) k.b = i != 0;
            else memcpy(&k, &i, kt->size); /* little-endian low bytes */
            gm_map_put(m, &k, &i);
            gm_map_put(m, &k, &i); /* same key again */
            uint64_t *v = gm_map_get(m, &k);
            CHECK_MSG(v && *v == i, "%s key %llu", kt->name, (unsigned long long)i);
        }
        CHECK_MSG(gm_map_len(m) == distinct, "%s: len %zu, want %zu", kt->name, gm_map_len(m), distinct);
        CHECK_MAP(m);
        gm_map_free(m);
    }
}

/* Beyond Go (Go issue 20135): a map that stays sparse shrinks. */
TEST(sparse_map_shrinks_and_returns_memory)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 100000; i++) putu(m, i, i);
    gm_map_stats big, small;
    gm_map_stats_get(m, &big);
    for (uint64_t i = 1000; i < 100000; i++) {
        CHECK(gm_map_delete(m, &i));
        if (i % 9973 == 0) CHECK_MAP(m);
    }
    for (int round = 0; round < 80; round++)     /* the map stays sparse while used */
        for (uint64_t i = 0; i < 1000; i++) putu(m, i, i + round);
    gm_map_stats_get(m, &small);
    CHECK_MSG(small.shrinks >= 3, "%llu shrinks", (unsigned long long)small.shrinks);
    CHECK_MSG(small.nbuckets <= 2048 && small.nbuckets >= 128, "%zu buckets for 1000 entries (16384 before)", small.nbuckets);
    CHECK_MSG(small.bytes * 8 < big.bytes, "%zu bytes held, %zu before", small.bytes, big.bytes);
    for (uint64_t i = 0; i < 1000; i++) CHECK_EQ_U(getu(m, i, NULL), i + 79);
    CHECK_MAP(m);
    gm_map_free(m);
}

TEST(delete_all_then_refill_does_not_thrash)
{
    /* N deletes then N inserts, five times: shrinking and regrowing is
     * allowed, but the work per operation stays bounded. */
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    uint64_t ops = 0;
    for (int cycle = 0; cycle < 5; cycle++) {
        for (uint64_t i = 0; i < 50000; i++, ops++) putu(m, i * 7 + (uint64_t)cycle, i);
        for (uint64_t i = 0; i < 50000; i++, ops++) {
            uint64_t k = i * 7 + (uint64_t)cycle;
            CHECK(gm_map_delete(m, &k));
        }
        CHECK_MAP(m);
    }
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK_MSG(st.moved_entries < 3 * ops, "%llu entries moved for %llu operations",
              (unsigned long long)st.moved_entries, (unsigned long long)ops);
    /* Classic: its shrink policy never shrinks a map being drained.  Swiss
     * shrinks each table as it empties, one table per write at most. */
    if (st.engine == GM_MAP_CLASSIC) CHECK_MSG(st.shrinks == 0, "%llu shrinks", (unsigned long long)st.shrinks);
    else CHECK_MSG(st.max_moved_per_write <= 1024, "%llu moved by one write", (unsigned long long)st.max_moved_per_write);
    gm_map_free(m);
}

TEST(a_hinted_map_keeps_its_size)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 50000);
    gm_map_stats a, b;
    gm_map_stats_get(m, &a);
    for (int round = 0; round < 3; round++) {
        for (uint64_t i = 0; i < 50000; i++) putu(m, i, i);
        for (uint64_t i = 0; i < 50000; i++) gm_map_delete(m, &i);
    }
    gm_map_stats_get(m, &b);
    if (a.engine == GM_MAP_CLASSIC) {
        CHECK_EQ_U(b.nbuckets, a.nbuckets);
        CHECK_EQ_U(b.shrinks, 0);
    } else {
        CHECK_MSG(b.slots >= a.slots, "%zu slots, the hint made %zu", b.slots, a.slots);
    }
    gm_map_free(m);
}

/* Seeds come from getrandom in batches per thread; a forked child must not
 * reuse the batch its parent will use next. */
TEST(forked_child_draws_its_own_seeds)
{
    gm_map *warm = gm_map_new(&gm_type_u64, &gm_type_u64, 0); /* fills this thread's batch */
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        gm_map *c = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        ssize_t w = write(fds[1], &c->seed, sizeof c->seed);
        _exit(w == sizeof c->seed ? 0 : 1);
    }
    gm_map *p = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    uint64_t child_seed = 0;
    CHECK(read(fds[0], &child_seed, sizeof child_seed) == (ssize_t)sizeof child_seed);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(child_seed != p->seed && child_seed != warm->seed);
    close(fds[0]);
    close(fds[1]);
    gm_map_free(p);
    gm_map_free(warm);
}

/* ---- growth touches a bounded amount of new memory per insert ---- */

static long thread_minflt(void) { return test_minor_faults(true); }
static long rss_pages(void) { return test_resident_pages(); }

/* Inserts n u64 keys one at a time, the helper thread paused around each
 * insert and drained between them, so that every change of the resident
 * set inside an insert is the inserting thread's own work: page faults
 * (new memory first touched, 4 KiB or 2 MiB at a time) and unmapping.
 * Reports the largest growth and shrinkage of the resident set in pages,
 * the most minor faults, and how many grows ran. */
struct touch_report { long grow_pages, shrink_pages, faults; uint64_t grows; size_t worst_at; };

static struct touch_report touch_per_insert(uint64_t n)
{
    struct touch_report r = { 0, 0, 0, 0, 0 };
    /* Warm-up: the first run of each code path faults in its text pages. */
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 200000; i++) *(uint64_t *)gm_map_assign_u64(m, i) = i;
    gm_map_free(m);
    gm_map_bg_quiesce();
    m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    long rss = rss_pages(); /* current whenever nothing could have changed it */
    for (uint64_t i = 0; i < n; i++) {
        gm_map_bg_pause(true);
        bool watch = m->release != NULL; /* this insert may unmap a step */
        long r0 = watch ? rss_pages() : rss;
        long f0 = thread_minflt();
        *(uint64_t *)gm_map_assign_u64(m, i * 0x9e3779b97f4a7c15ull) = i;
        long f1 = thread_minflt();
        bool changed = f1 != f0 || watch;
        if (changed) {
            long now = rss_pages();
            if (now - r0 > r.grow_pages) { r.grow_pages = now - r0; r.worst_at = i; }
            if (r0 - now > r.shrink_pages && watch) r.shrink_pages = r0 - now;
            if (f1 - f0 > r.faults) r.faults = f1 - f0;
        }
        gm_map_bg_pause(false);
        if (gm_map_bg_quiesce() || changed) rss = rss_pages();
    }
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    r.grows = st.grows;
    fprintf(stderr, "%" PRIu64 " inserts, %" PRIu64 " grows: at most %ld KiB faulted in, %ld KiB given back, "
            "%ld faults by one insert\n", n, r.grows, r.grow_pages * sysconf(_SC_PAGESIZE) >> 10,
            r.shrink_pages * sysconf(_SC_PAGESIZE) >> 10, r.faults);
    const char *e = gm_map_check(m);
    CHECK_MSG(e == NULL, "gm_map_check: %s", e);
    gm_map_free(m);
    return r;
}

/* Sanitizers map shadow memory beside every page the map touches: its
 * faults are the inserting thread's too. */
#ifdef GOMAP_SANITIZED
#define MAX_FAULTS_PER_INSERT 64
#else
#define MAX_FAULTS_PER_INSERT 16
#endif

/* The promise of no growth stall, counted in work: whatever the kernel's
 * transparent-huge-page settings, no insert faults in more than 256 KiB of
 * new memory (the kernel's resident count is batched per CPU: a margin) or
 * takes more than 16 page faults -- the old code took 2 MiB huge-page faults,
 * with compaction, in the insert that started a grow of a big array: 6 MiB
 * and 34 faults at the 32768 -> 65536 grow -- and none unmaps more than
 * RELEASE_STEP of a retired array (with the helper, none unmaps anything).
 * 1.2M keys: the last grows (arrays of 9 and 19 MiB) are prepared by the
 * helper thread. */
TEST(no_insert_touches_more_than_a_few_new_pages)
{
    CLASSIC_ONLY("the helper-prepared arrays and page counts are the classic engine's; Swiss: test_map_swiss.no_insert_moves_more_than_one_table");
    long page = sysconf(_SC_PAGESIZE);
    struct touch_report r = touch_per_insert((uint64_t)(1200000 * test_scale()));
    CHECK(r.grows >= 10);
    CHECK_MSG(r.grow_pages * page <= (256 << 10),
              "insert %zu grew the resident set by %ld KiB", r.worst_at, r.grow_pages * page >> 10);
    CHECK_MSG(r.faults <= MAX_FAULTS_PER_INSERT, "an insert took %ld page faults", r.faults);
    CHECK_MSG(r.shrink_pages * page <= (long)RELEASE_STEP,
              "an insert returned %ld KiB to the OS", r.shrink_pages * page >> 10);
}

/* The same without the helper thread (GMDEBUG=mapbg=0): big arrays are
 * faulted in 4 KiB at a time by evacuation, retired ones unmapped by
 * inserts RELEASE_STEP at a time. */
TEST(no_insert_touches_more_than_a_few_new_pages_without_helper)
{
    CLASSIC_ONLY("the helper-prepared arrays and page counts are the classic engine's; Swiss: test_map_swiss.no_insert_moves_more_than_one_table");
    gm_map_options_set("mapbg=0");
    long page = sysconf(_SC_PAGESIZE);
    struct touch_report r = touch_per_insert((uint64_t)(1200000 * test_scale()));
    gm_map_options_set("");
    CHECK(r.grows >= 10);
    CHECK_MSG(r.grow_pages * page <= (256 << 10),
              "insert %zu grew the resident set by %ld KiB", r.worst_at, r.grow_pages * page >> 10);
    CHECK_MSG(r.faults <= MAX_FAULTS_PER_INSERT, "an insert took %ld page faults", r.faults);
    CHECK_MSG(r.shrink_pages * page <= (long)RELEASE_STEP,
              "an insert returned %ld KiB to the OS", r.shrink_pages * page >> 10);
}

/* The helper prepares the next array of a big table before the grow needs
 * it, and the grow takes it. */
TEST(big_table_grows_into_the_prepared_array)
{
    CLASSIC_ONLY("the helper-prepared arrays and page counts are the classic engine's; Swiss: test_map_swiss.no_insert_moves_more_than_one_table");
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    uint64_t i = 0;
    for (; i < (uint64_t)(1200000 * test_scale()); i++) {
        *(uint64_t *)gm_map_assign_u64(m, i) = i;
        if (m->prep) gm_map_bg_quiesce(); /* let it finish before the grow */
    }
    CHECK(m->n_prep_made >= 2);
    CHECK_EQ_U(m->n_prep_taken, m->n_prep_made - (m->prep != NULL));
    for (uint64_t k = 0; k < i; k++) {
        uint64_t *v = gm_map_get_u64(m, k);
        if (!v || *v != k) { CHECK_MSG(false, "key %" PRIu64 " lost", k); break; }
    }
    CHECK_MAP(m);
    gm_map_free(m);
    gm_map_bg_quiesce();
}

/* A map freed, shrunk or cleared with its next array still being prepared,
 * and a grow that cannot wait for it any longer: nothing leaks, nothing is
 * touched after it is given back (ASan), the map stays whole. */
TEST(prepared_array_given_up)
{
    CLASSIC_ONLY("the helper-prepared arrays and page counts are the classic engine's; Swiss: test_map_swiss.no_insert_moves_more_than_one_table");
    for (int round = 0; round < 3; round++) {
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        uint64_t n = 0;
        while (m->prep == NULL && n < 2000000) { *(uint64_t *)gm_map_assign_u64(m, n) = n; n++; }
        REQUIRE(m->prep != NULL);
        if (round == 0) {
            gm_map_free(m);      /* queued or in flight */
            continue;
        }
        if (round == 1) {
            gm_map_bg_pause(true); /* never ready: the grow gives up on it */
            for (uint64_t k = 0; k < n; k++) gm_map_delete_u64(m, k);
            for (uint64_t k = 0; k < 2 * n; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
            gm_map_bg_pause(false);
            CHECK_EQ_U(gm_map_len(m), 2 * n);
            for (uint64_t k = 0; k < 2 * n; k++) { uint64_t *v = gm_map_get_u64(m, k); if (!v || *v != k) { CHECK(false); break; } }
        } else {
            gm_map_clear(m);
            for (uint64_t k = 0; k < n / 2; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
        }
        CHECK_MAP(m);
        gm_map_free(m);
    }
    gm_map_bg_quiesce();
}

/* GMDEBUG=mapseed=N: the same seeds, hence the same layout and iteration
 * order, run after run; maps still differ from each other. */
static void seeded_run(uint64_t *seeds, uint64_t *order, size_t n)
{
    gm_map *a = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    gm_map *b = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 1000; i++) *(uint64_t *)gm_map_assign_u64(a, i) = i;
    seeds[0] = a->seed;
    seeds[1] = b->seed;
    gm_map_iter it;
    const void *k;
    size_t j = 0;
    for (gm_map_iter_init(&it, a); gm_map_iter_next(&it, &k, NULL) && j < n;) order[j++] = *(const uint64_t *)k;
    gm_map_iter_done(&it);
    gm_map_free(a);
    gm_map_free(b);
}

TEST(mapseed_makes_runs_repeatable)
{
    uint64_t s1[2], s2[2], s3[2], o1[64], o2[64], o3[64];
    gm_map_options_set("gctrace=0,mapseed=42");
    seeded_run(s1, o1, 64);
    gm_map_options_set("mapseed=42");
    seeded_run(s2, o2, 64);
    gm_map_options_set("mapseed=0x2a");
    seeded_run(s3, o3, 64);
    gm_map_options_set("");
    CHECK(s1[0] == s2[0] && s1[1] == s2[1] && s1[0] == s3[0]);
    CHECK(s1[0] != s1[1]);
    CHECK(memcmp(o1, o2, sizeof o1) == 0 && memcmp(o1, o3, sizeof o1) == 0);
    uint64_t r1[2], r2[2], q1[64], q2[64];
    seeded_run(r1, q1, 64);
    seeded_run(r2, q2, 64);
    CHECK(r1[0] != r2[0]); /* random again without the switch */
}

TEST(mapseed_bad_values_are_reported)
{
    const char *bad[] = { "mapseed=abc", "mapseed=", "mapseed=-1", "mapseed=1x", "mapseed=99999999999999999999999", "mapbg=2" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fflush(stderr);
        FILE *tmp = tmpfile();
        REQUIRE(tmp);
        int saved = dup(2);
        dup2(fileno(tmp), 2);
        gm_map_options_set(bad[i]);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        char buf[512] = "";
        rewind(tmp);
        size_t got = fread(buf, 1, sizeof buf - 1, tmp);
        buf[got] = 0;
        fclose(tmp);
        CHECK_MSG(strstr(buf, "GMDEBUG: bad value") && strstr(buf, bad[i] + 0 + (strchr(bad[i], '=') - bad[i]) + 1),
                  "%s: stderr was \"%.300s\"", bad[i], buf);
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        gm_map *m2 = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        if (strncmp(bad[i], "mapseed", 7) == 0) CHECK(m->seed != m2->seed); /* stays random */
        gm_map_free(m);
        gm_map_free(m2);
    }
    gm_map_options_set("");
}

/* fork() with the helper at work: the child has no helper thread; what it
 * was doing is handed back, a new one starts on demand, and the child's map
 * grows on and stays whole. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif

TEST(fork_while_the_helper_prepares)
{
    CLASSIC_ONLY("the helper-prepared arrays and page counts are the classic engine's; Swiss: test_map_swiss.no_insert_moves_more_than_one_table");
#ifdef TSAN_BUILD
    return; /* TSan cannot start threads in the child of a multithreaded fork */
#endif
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    uint64_t n = 0;
    while (m->prep == NULL && n < 2000000) { *(uint64_t *)gm_map_assign_u64(m, n) = n; n++; }
    REQUIRE(m->prep != NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        uint64_t total = 2 * n;
        for (uint64_t k = n; k < total; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
        for (uint64_t k = 0; k < total; k++) {
            uint64_t *v = gm_map_get_u64(m, k);
            if (!v || *v != k) _exit(1);
        }
        if (gm_map_check(m) != NULL) _exit(2);
        gm_map_free(m);
        gm_map_bg_quiesce();
        _exit(0);
    }
    for (uint64_t k = n; k < 2 * n; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    CHECK_MAP(m);
    gm_map_free(m);
    gm_map_bg_quiesce();
}

/* A grow that waited a quarter more entries for its array asks the helper
 * to hand it over as it is: the grow takes it, its unpopulated part now
 * faulted in by inserts 4 KiB at a time (never a huge-page fault). */
TEST(hurried_array_is_taken_as_it_is)
{
    CLASSIC_ONLY("the helper-prepared arrays and page counts are the classic engine's; Swiss: test_map_swiss.no_insert_moves_more_than_one_table");
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    uint64_t n = 0;
    gm_map_bg_pause(true);
    while (m->prep == NULL && n < 2000000) { *(uint64_t *)gm_map_assign_u64(m, n) = n; n++; }
    REQUIRE(m->prep != NULL);
    unsigned B = m->B;
    size_t wait_until = m->grow_load + m->grow_load / PREP_WAIT_DEN * PREP_WAIT_NUM;
    while (m->count < wait_until + PREP_RECHECK) { *(uint64_t *)gm_map_assign_u64(m, n) = n; n++; }
    REQUIRE(m->prep != NULL);
    CHECK(atomic_load(&m->prep->finish_a) == 1);
    CHECK(m->B == B && m->oldbuckets == NULL); /* still waiting */
    gm_map_bg_pause(false);
    gm_map_bg_quiesce();
    long worst = 0;
    for (uint64_t k = 0; k < 2 * PREP_RECHECK && m->B == B; k++, n++) *(uint64_t *)gm_map_assign_u64(m, n) = n;
    CHECK(m->B == B + 1 && m->prep == NULL && m->oldbuckets != NULL); /* the grow took it */
    for (uint64_t k = 0; k < 10000; k++, n++) { /* evacuation faults the rest in */
        long f0 = thread_minflt();
        *(uint64_t *)gm_map_assign_u64(m, n) = n;
        long d = thread_minflt() - f0;
        if (d > worst) worst = d;
    }
    CHECK_MSG(worst <= MAX_FAULTS_PER_INSERT, "an insert took %ld faults", worst);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t *v = gm_map_get_u64(m, k);
        if (!v || *v != k) { CHECK_MSG(false, "key %" PRIu64 " lost", k); break; }
    }
    CHECK_MAP(m);
    gm_map_free(m);
    gm_map_bg_quiesce();
}

/* The integer hash carries every key bit into the bucket index: keys that
 * differ only in their high bits (a multiply without the fold, or a hash
 * of the low word, would put them all in one chain) spread like random
 * ones.  At 100,000 keys in 16,384 buckets random keys need about 2,700
 * overflow buckets (50,000 u32 keys in 8,192: about 1,350); one chain
 * would need 12,500, and a multiply by a constant alone gave 6,850 for
 * keys i << 32 (src/hash/hash.h). */
TEST(integer_keys_differing_only_in_high_bits_spread_over_buckets)
{
    CLASSIC_ONLY("overflow buckets are the classic engine's");
    for (unsigned shift = 24; shift <= 48; shift += 8) {
        gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
        for (uint64_t i = 0; i < 100000; i++) REQUIRE(gm_map_assign_u64(m, i << shift) != NULL);
        gm_map_stats st;
        gm_map_stats_get(m, &st);
        CHECK_MSG(st.noverflow < 4000, "keys i << %u: %zu overflow buckets for %zu buckets", shift,
                  st.noverflow, st.nbuckets);
        gm_map_free(m);
        gm_map *m32 = gm_map_new(&gm_type_u32, &gm_type_u64, 0);
        for (uint32_t i = 0; i < 50000; i++) REQUIRE(gm_map_assign_u32(m32, i << 16 | (shift & 1)) != NULL);
        gm_map_stats_get(m32, &st);
        CHECK_MSG(st.noverflow < 2000, "u32 keys i << 16: %zu overflow buckets for %zu buckets",
                  st.noverflow, st.nbuckets);
        gm_map_free(m32);
    }
}
