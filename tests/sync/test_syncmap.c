/* test_syncmap.c - gm_syncmap: every operation alone, the read/dirty state
 * machine (misses, promotion, expunged entries), a differential run against
 * a plain model, and concurrent use: disjoint owners, contended counters,
 * LoadOrStore races, readers checking every value they see while writers
 * replace, delete and clear, and reclamation of what was replaced. */
#include "check.h"
#include "gomap/map.h"
#include "gomap/sync.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "syncmap_model.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)

static int scaled(int n)
{
    int v = (int)(n * test_scale());
    return v < 1 ? 1 : v;
}

static gm_syncmap *new_u64(void)
{
    gm_syncmap *m = gm_syncmap_new(&gm_type_u64, &gm_type_u64);
    return m;
}

static uint64_t get(gm_syncmap *m, uint64_t k, bool *ok)
{
    uint64_t v = 12345;
    *ok = gm_syncmap_load(m, &k, &v);
    return v;
}

/* ---- every operation alone ---------------------------------------------- */

TEST(syncmap_load_and_store)
{
    gm_syncmap *m = new_u64();
    REQUIRE(m != NULL);
    bool ok;
    CHECK_EQ_U(get(m, 1, &ok), 0);     /* absent: zero value out */
    CHECK(!ok);
    uint64_t k = 1, v = 10;
    gm_syncmap_store(m, &k, &v);
    CHECK_EQ_U(get(m, 1, &ok), 10);
    CHECK(ok);
    v = 11;
    gm_syncmap_store(m, &k, &v);
    CHECK_EQ_U(get(m, 1, &ok), 11);
    CHECK(gm_syncmap_load(m, &k, NULL));
    gm_syncmap_free(m);
}

TEST(syncmap_load_or_store)
{
    gm_syncmap *m = new_u64();
    uint64_t k = 5, v = 50, actual = 0;
    CHECK(!gm_syncmap_load_or_store(m, &k, &v, &actual));
    CHECK_EQ_U(actual, 50);
    v = 51;
    CHECK(gm_syncmap_load_or_store(m, &k, &v, &actual));
    CHECK_EQ_U(actual, 50);
    CHECK(gm_syncmap_load_or_store(m, &k, &v, NULL));
    gm_syncmap_delete(m, &k);
    CHECK(!gm_syncmap_load_or_store(m, &k, &v, &actual));   /* deleted entry reused */
    CHECK_EQ_U(actual, 51);
    gm_syncmap_free(m);
}

TEST(syncmap_load_and_delete_and_delete)
{
    gm_syncmap *m = new_u64();
    uint64_t k = 7, v = 70, out = 1;
    CHECK(!gm_syncmap_load_and_delete(m, &k, &out));
    CHECK_EQ_U(out, 0);
    gm_syncmap_store(m, &k, &v);
    CHECK(gm_syncmap_load_and_delete(m, &k, &out));
    CHECK_EQ_U(out, 70);
    CHECK(!gm_syncmap_load(m, &k, NULL));
    CHECK(!gm_syncmap_load_and_delete(m, &k, NULL));
    gm_syncmap_store(m, &k, &v);
    gm_syncmap_delete(m, &k);
    gm_syncmap_delete(m, &k);          /* absent: nothing happens */
    CHECK(!gm_syncmap_load(m, &k, NULL));
    gm_syncmap_free(m);
}

TEST(syncmap_swap)
{
    gm_syncmap *m = new_u64();
    uint64_t k = 3, v = 30, prev = 9;
    CHECK(!gm_syncmap_swap(m, &k, &v, &prev));
    CHECK_EQ_U(prev, 0);
    v = 31;
    CHECK(gm_syncmap_swap(m, &k, &v, &prev));
    CHECK_EQ_U(prev, 30);
    bool ok;
    CHECK_EQ_U(get(m, 3, &ok), 31);
    gm_syncmap_delete(m, &k);
    CHECK(!gm_syncmap_swap(m, &k, &v, NULL));
    gm_syncmap_free(m);
}

TEST(syncmap_compare_and_swap)
{
    gm_syncmap *m = new_u64();
    uint64_t k = 4, a = 40, b = 41, c = 42;
    CHECK(!gm_syncmap_compare_and_swap(m, &k, &a, &b));   /* absent */
    gm_syncmap_store(m, &k, &a);
    CHECK(!gm_syncmap_compare_and_swap(m, &k, &b, &c));   /* mismatch */
    CHECK(gm_syncmap_compare_and_swap(m, &k, &a, &b));
    bool ok;
    CHECK_EQ_U(get(m, 4, &ok), 41);
    gm_syncmap_delete(m, &k);
    CHECK(!gm_syncmap_compare_and_swap(m, &k, &b, &c));   /* deleted */
    gm_syncmap_free(m);
}

TEST(syncmap_compare_and_delete)
{
    gm_syncmap *m = new_u64();
    uint64_t k = 8, a = 80, b = 81;
    CHECK(!gm_syncmap_compare_and_delete(m, &k, &a));
    gm_syncmap_store(m, &k, &a);
    CHECK(!gm_syncmap_compare_and_delete(m, &k, &b));
    CHECK(gm_syncmap_load(m, &k, NULL));
    CHECK(gm_syncmap_compare_and_delete(m, &k, &a));
    CHECK(!gm_syncmap_load(m, &k, NULL));
    CHECK(!gm_syncmap_compare_and_delete(m, &k, &a));
    gm_syncmap_free(m);
}

typedef struct { uint64_t seen[64]; int calls, stop_after; gm_syncmap *m; } range_ctx;

static bool range_fn(const void *key, const void *val, void *arg)
{
    range_ctx *c = arg;
    uint64_t k = *(const uint64_t *)key, v = *(const uint64_t *)val;
    if (k < 64) c->seen[k] += v;
    c->calls++;
    return c->stop_after == 0 || c->calls < c->stop_after;
}

TEST(syncmap_range_visits_each_present_key_once_and_stops_early)
{
    gm_syncmap *m = new_u64();
    range_ctx c;
    memset(&c, 0, sizeof c);
    gm_syncmap_range(m, range_fn, &c);
    CHECK_EQ_U(c.calls, 0);
    for (uint64_t k = 0; k < 40; k++) {
        uint64_t v = k + 1000;
        gm_syncmap_store(m, &k, &v);
    }
    for (uint64_t k = 0; k < 40; k += 4) gm_syncmap_delete(m, &k);
    gm_syncmap_range(m, range_fn, &c);
    CHECK_EQ_U(c.calls, 30);
    for (uint64_t k = 0; k < 40; k++)
        CHECK_EQ_U(c.seen[k], k % 4 == 0 ? 0 : k + 1000);
    memset(&c, 0, sizeof c);
    c.stop_after = 5;
    gm_syncmap_range(m, range_fn, &c);
    CHECK_EQ_U(c.calls, 5);
    gm_syncmap_free(m);
}

/* Go allows any Map call from inside Range's callback. */
static bool range_mutator(const void *key, const void *val, void *arg)
{
    range_ctx *c = arg;
    uint64_t k = *(const uint64_t *)key, v = *(const uint64_t *)val + 1;
    gm_syncmap_store(c->m, &k, &v);
    uint64_t nk = k + 100;
    gm_syncmap_load_or_store(c->m, &nk, &v, NULL);
    c->calls++;
    return true;
}

TEST(syncmap_range_callback_may_write_the_map)
{
    gm_syncmap *m = new_u64();
    for (uint64_t k = 0; k < 20; k++) gm_syncmap_store(m, &k, &k);
    range_ctx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    gm_syncmap_range(m, range_mutator, &c);
    CHECK_EQ_U(c.calls, 20);     /* keys added during Range are not seen */
    for (uint64_t k = 0; k < 20; k++) {
        bool ok;
        CHECK_EQ_U(get(m, k, &ok), k + 1);
        CHECK_EQ_U(get(m, k + 100, &ok), k + 1);
        CHECK(ok);
    }
    gm_syncmap_free(m);
}

TEST(syncmap_clear)
{
    gm_syncmap *m = new_u64();
    gm_syncmap_clear(m);              /* empty: nothing to do */
    for (uint64_t k = 0; k < 50; k++) gm_syncmap_store(m, &k, &k);
    for (uint64_t k = 0; k < 50; k += 2) CHECK(gm_syncmap_load(m, &k, NULL));
    gm_syncmap_clear(m);
    for (uint64_t k = 0; k < 50; k++) CHECK(!gm_syncmap_load(m, &k, NULL));
    range_ctx c;
    memset(&c, 0, sizeof c);
    gm_syncmap_range(m, range_fn, &c);
    CHECK_EQ_U(c.calls, 0);
    uint64_t k = 3, v = 33;
    gm_syncmap_store(m, &k, &v);
    bool ok;
    CHECK_EQ_U(get(m, 3, &ok), 33);
    gm_syncmap_free(m);
}

/* ---- the state machine --------------------------------------------------- */

TEST(syncmap_misses_promote_dirty_and_deletes_expunge)
{
    enum { N = 32 };
    gm_syncmap *m = new_u64();
    gm_syncmap_stats st;
    for (uint64_t k = 0; k < N; k++) gm_syncmap_store(m, &k, &k);
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.read_len, 0);        /* new keys go to dirty */
    CHECK_EQ_U(st.dirty_len, N);
    CHECK(st.amended);
    /* N misses promote dirty to read. */
    for (uint64_t k = 0; k < N; k++) CHECK(gm_syncmap_load(m, &k, NULL));
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.read_len, N);
    CHECK(!st.has_dirty);
    CHECK(!st.amended);
    CHECK_EQ_U(st.misses, 0);
    /* Delete 8 keys (their entries stay in read, empty), then a new key:
     * dirty is rebuilt without the 8, which become expunged. */
    for (uint64_t k = 0; k < 8; k++) gm_syncmap_delete(m, &k);
    uint64_t nk = 1000;
    gm_syncmap_store(m, &nk, &nk);
    gm_syncmap_stats_get(m, &st);
    CHECK(st.amended);
    CHECK_EQ_U(st.dirty_len, N - 8 + 1);
    CHECK_EQ_U(st.read_len, N);
    /* Storing to an expunged key puts it back in dirty. */
    uint64_t k = 3, v = 333;
    gm_syncmap_store(m, &k, &v);
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.dirty_len, N - 8 + 2);
    bool ok;
    CHECK_EQ_U(get(m, 3, &ok), 333);
    CHECK(!gm_syncmap_load(m, &(uint64_t){ 4 }, NULL));
    /* Loads of read keys are no misses; a dirty-only key is. */
    for (uint64_t j = 8; j < N; j++) CHECK(gm_syncmap_load(m, &j, NULL));
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.misses, 0);
    CHECK(gm_syncmap_load(m, &nk, NULL));
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.misses, 1);
    /* Range promotes at once: the expunged entries go, the map is right. */
    range_ctx c;
    memset(&c, 0, sizeof c);
    gm_syncmap_range(m, range_fn, &c);
    CHECK_EQ_U(c.calls, N - 8 + 2);
    gm_syncmap_stats_get(m, &st);
    CHECK(!st.amended);
    CHECK_EQ_U(st.read_len, N - 8 + 2);
    gm_syncmap_free(m);
}

/* Random operations against a plain model (syncmap_model.h), over few keys
 * so that every path (read hit, dirty hit, expunged, promotion, clear) recurs. */
TEST(syncmap_matches_a_model_under_random_operations)
{
    gm_syncmap *m = new_u64();
    REQUIRE(m != NULL);
    syncmap_model_run(m, 8, scaled(200000), NULL);
    gm_syncmap_free(m);
}

/* The same model run with u32 keys (the read index widens them) and with
 * i64 keys (no index: every read lookup goes through gm_map). */
TEST(syncmap_matches_a_model_with_u32_keys)
{
    gm_syncmap *m = gm_syncmap_new(&gm_type_u32, &gm_type_u64);
    REQUIRE(m != NULL);
    syncmap_model_run(m, 4, scaled(100000), NULL);
    gm_syncmap_free(m);
}

TEST(syncmap_matches_a_model_with_generic_keys)
{
    gm_syncmap *m = gm_syncmap_new(&gm_type_i64, &gm_type_u64);
    REQUIRE(m != NULL);
    syncmap_model_run(m, 8, scaled(100000), NULL);
    gm_syncmap_free(m);
}

/* Keys of a variable-length type (string bytes copied by the maps) and a
 * 24-byte value type compared bytewise. */
typedef struct { uint64_t a, b, c; } triple;
GM_TYPE_DEFINE_VALUE(triple_type, triple);

TEST(syncmap_string_keys_and_struct_values)
{
    gm_syncmap *m = gm_syncmap_new(&gm_type_str_owned, &triple_type);
    REQUIRE(m != NULL);
    char buf[32];
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "key-%d", i);
        gm_str k = { buf, strlen(buf) };
        triple t = { (uint64_t)i, (uint64_t)i * 2, (uint64_t)i * 3 };
        gm_syncmap_store(m, &k, &t);
    }
    memset(buf, 'x', sizeof buf);   /* the map kept its own copies */
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "key-%d", i);
        gm_str k = { buf, strlen(buf) };
        triple t, want = { (uint64_t)i, (uint64_t)i * 2, (uint64_t)i * 3 };
        CHECK(gm_syncmap_load(m, &k, &t));
        CHECK(memcmp(&t, &want, sizeof t) == 0);
        triple nt = { 1000, 0, 0 };
        CHECK(gm_syncmap_compare_and_swap(m, &k, &want, &nt));
        CHECK(!gm_syncmap_compare_and_swap(m, &k, &want, &nt));
    }
    gm_str missing = GM_STR("nope");
    CHECK(!gm_syncmap_load(m, &missing, NULL));
    gm_syncmap_free(m);
}

TEST(syncmap_new_rejects_a_type_that_cannot_be_a_key)
{
    CHECK(gm_syncmap_new(&triple_type, &gm_type_u64) == NULL);
}

/* The type-safe layer. */
typedef struct { int32_t hits; int32_t misses; } pairv;
GM_SYNCMAP_DEFINE(counts, uint64_t, pairv, gm_type_u64);

TEST(syncmap_typed_layer)
{
    counts *c = counts_new();
    REQUIRE(c != NULL);
    pairv v = { 0, 0 }, out;
    CHECK(!counts_load(c, 1, &out));
    counts_store(c, 1, (pairv){ 3, 4 });
    CHECK(counts_load(c, 1, &out));
    CHECK_EQ_U(out.hits, 3);
    CHECK_EQ_U(out.misses, 4);
    CHECK(counts_load_or_store(c, 1, v, &out));
    CHECK_EQ_U(out.hits, 3);
    CHECK(!counts_load_or_store(c, 2, (pairv){ 7, 7 }, NULL));
    CHECK(counts_swap(c, 2, (pairv){ 8, 8 }, &out));
    CHECK_EQ_U(out.hits, 7);
    CHECK(counts_compare_and_swap(c, 2, (pairv){ 8, 8 }, (pairv){ 9, 9 }));
    CHECK(!counts_compare_and_swap(c, 2, (pairv){ 8, 8 }, (pairv){ 1, 1 }));
    CHECK(!counts_compare_and_delete(c, 2, (pairv){ 8, 8 }));
    CHECK(counts_compare_and_delete(c, 2, (pairv){ 9, 9 }));
    CHECK(counts_load_and_delete(c, 1, &out));
    CHECK_EQ_U(out.misses, 4);
    counts_store(c, 5, v);
    counts_delete(c, 5);
    CHECK(!counts_load(c, 5, NULL));
    counts_store(c, 6, v);
    counts_clear(c);
    CHECK(!counts_load(c, 6, NULL));
    CHECK(gm_syncmap_check(counts_raw(c)) == NULL);
    counts_free(c);
}

/* ---- concurrent use ------------------------------------------------------ */

typedef struct {
    gm_syncmap *m;
    int id, rounds;
    int *failures;   /* atomic */
} owner_arg;

/* Each thread owns keys id*1000 .. id*1000+63: only it writes them, so what
 * it reads back is known exactly, while the other threads' new keys keep
 * rebuilding dirty and promoting it under it. */
static void *owner(void *p)
{
    owner_arg *a = p;
    uint64_t base = (uint64_t)a->id * 1000, seed = (uint64_t)a->id + 1;
    uint64_t val[64] = { 0 };
    bool has[64] = { false };
    for (int i = 0; i < a->rounds; i++) {
        uint64_t r = test_rand(&seed), j = r % 64, k = base + j, v = r >> 32, out;
        bool ok;
        switch ((r >> 8) % 6) {
        case 0: case 1:
            ok = gm_syncmap_load(a->m, &k, &out);
            if (ok != has[j] || (ok && out != val[j])) ADD(a->failures, 1);
            break;
        case 2:
            gm_syncmap_store(a->m, &k, &v);
            has[j] = true; val[j] = v;
            break;
        case 3:
            ok = gm_syncmap_swap(a->m, &k, &v, &out);
            if (ok != has[j] || (ok && out != val[j])) ADD(a->failures, 1);
            has[j] = true; val[j] = v;
            break;
        case 4:
            ok = gm_syncmap_load_and_delete(a->m, &k, &out);
            if (ok != has[j] || (ok && out != val[j])) ADD(a->failures, 1);
            has[j] = false;
            break;
        case 5:
            ok = gm_syncmap_compare_and_swap(a->m, &k, &val[j], &v);
            if (ok != has[j]) ADD(a->failures, 1);
            if (ok) val[j] = v;
            break;
        }
    }
    return NULL;
}

TEST(syncmap_disjoint_owners_see_exactly_their_own_history)
{
    enum { T = 4 };
    gm_syncmap *m = new_u64();
    int failures = 0;
    owner_arg args[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        args[i] = (owner_arg){ m, i, scaled(60000), &failures };
        pthread_create(&th[i], NULL, owner, &args[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(failures, 0);
    const char *err = gm_syncmap_check(m);
    CHECK_MSG(err == NULL, "%s", err);
    gm_syncmap_free(m);
}

/* Contended counters: each increment is a Load then CompareAndSwap(v, v+1)
 * retried until it lands; every key must end at the number of increments
 * made to it, and no thread may ever see a counter go down. */
typedef struct { gm_syncmap *m; int rounds, id; uint64_t *incs; int *failures; } ctr_arg;
enum { CTR_KEYS = 8 };

static void *counter_worker(void *p)
{
    ctr_arg *a = p;
    uint64_t seed = (uint64_t)a->id * 77 + 5, last[CTR_KEYS] = { 0 };
    for (int i = 0; i < a->rounds; i++) {
        uint64_t k = test_rand(&seed) % CTR_KEYS, v;
        for (;;) {
            if (!gm_syncmap_load(a->m, &k, &v)) { ADD(a->failures, 1); break; }
            if (v < last[k]) ADD(a->failures, 1);
            last[k] = v;
            uint64_t nv = v + 1;
            if (gm_syncmap_compare_and_swap(a->m, &k, &v, &nv)) {
                last[k] = nv;
                a->incs[k]++;
                break;
            }
        }
    }
    return NULL;
}

TEST(syncmap_compare_and_swap_counters_lose_no_increment)
{
    enum { T = 4 };
    gm_syncmap *m = new_u64();
    for (uint64_t k = 0; k < CTR_KEYS; k++) {
        uint64_t z = 0;
        gm_syncmap_store(m, &k, &z);
    }
    uint64_t incs[T][CTR_KEYS];
    memset(incs, 0, sizeof incs);
    int failures = 0;
    ctr_arg args[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        args[i] = (ctr_arg){ m, scaled(20000), i, incs[i], &failures };
        pthread_create(&th[i], NULL, counter_worker, &args[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(failures, 0);
    for (uint64_t k = 0; k < CTR_KEYS; k++) {
        uint64_t want = 0, v = 0;
        for (int i = 0; i < T; i++) want += incs[i][k];
        CHECK(gm_syncmap_load(m, &k, &v));
        CHECK_EQ_U(v, want);
    }
    gm_syncmap_free(m);
}

/* LoadOrStore races on fresh keys: exactly one thread stores, every thread
 * gets the stored value back. */
typedef struct {
    gm_syncmap *m; int id, keys;
    uint64_t *actual;   /* [keys], per thread */
    int *stored;        /* [keys], atomic */
    int *go;
} los_arg;

static void *los_worker(void *p)
{
    los_arg *a = p;
    while (!LOAD(a->go)) {}
    for (int i = 0; i < a->keys; i++) {
        uint64_t k = (uint64_t)i, v = (uint64_t)a->id * 1000000 + (uint64_t)i;
        if (!gm_syncmap_load_or_store(a->m, &k, &v, &a->actual[i])) ADD(&a->stored[i], 1);
    }
    return NULL;
}

TEST(syncmap_load_or_store_race_has_one_winner_per_key)
{
    enum { T = 4, KEYS = 2000 };
    gm_syncmap *m = new_u64();
    static uint64_t actual[T][KEYS];
    static int stored[KEYS];
    memset(stored, 0, sizeof stored);
    int go = 0;
    los_arg args[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        args[i] = (los_arg){ m, i, KEYS, actual[i], stored, &go };
        pthread_create(&th[i], NULL, los_worker, &args[i]);
    }
    STORE(&go, 1);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    for (int k = 0; k < KEYS; k++) {
        CHECK_EQ_U(stored[k], 1);
        uint64_t v;
        CHECK(gm_syncmap_load(m, &(uint64_t){ (uint64_t)k }, &v));
        for (int i = 0; i < T; i++) CHECK_EQ_U(actual[i][k], v);
        if (check_failures) break;
    }
    gm_syncmap_free(m);
}

#include "syncmap_stress.h"

TEST(syncmap_readers_see_only_whole_current_values_during_writes)
{
    stress_readers_and_writers();
}

TEST(syncmap_reclaims_replaced_values_and_dead_entries)
{
    stress_reclaim();
    gm_sync_stats st;
    gm_sync_stats_get(&st);
    CHECK(st.ebr_membarriers > 0);   /* Linux has membarrier: the fast fence */
}

/* A reader inside a call (here: a Range callback that waits) holds back the
 * freeing of everything retired after it entered; once it leaves, all of
 * it is freed. */
typedef struct { int inside, release; } park_ctx;

static bool parked_range_fn(const void *key, const void *val, void *arg)
{
    (void)key;
    (void)val;
    park_ctx *c = arg;
    STORE(&c->inside, 1);
    while (!LOAD(&c->release)) sched_yield();
    return false;
}

typedef struct { gm_syncmap *m; park_ctx *c; } parked_arg;

static void *parked_reader(void *p)
{
    parked_arg *a = p;
    gm_syncmap_range(a->m, parked_range_fn, a->c);
    return NULL;
}

TEST(syncmap_a_pinned_reader_holds_back_reclamation)
{
    gm_syncmap *m = new_u64();
    uint64_t k = 1;
    gm_syncmap_store(m, &k, &k);
    park_ctx c = { 0, 0 };
    parked_arg a = { m, &c };
    pthread_t t;
    pthread_create(&t, NULL, parked_reader, &a);
    while (!LOAD(&c.inside)) sched_yield();
    for (uint64_t i = 0; i < 1000; i++) gm_syncmap_store(m, &k, &i);   /* 1000 retired boxes */
    gm_sync_reclaim();
    gm_sync_stats st;
    gm_sync_stats_get(&st);
    CHECK(st.ebr_retired - st.ebr_freed >= 1000);
    STORE(&c.release, 1);
    pthread_join(t, NULL);
    gm_sync_reclaim();
    gm_sync_stats_get(&st);
    CHECK_EQ_U(st.ebr_freed, st.ebr_retired);
    gm_syncmap_free(m);
}
