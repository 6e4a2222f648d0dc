/* test_syncmap_gc.c - gm_syncmap_new_gc: sync.Map on the GC heap.
 *
 * Every operation alone; values and keys that hold GC pointers kept alive by
 * the map and nothing else; replaced values and an unreachable map collected
 * (weak pointers prove it); and threads storing, deleting and reading with
 * consistent per-key histories and intact values (checksums) while another
 * thread runs gm_gc() back to back.  Registered with GMDEBUG=gccheckmark=1
 * (the heap is verified after every cycle), and again under gcstress. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gc_util.h"
#include "gomap/map.h"
#include "gomap/sync.h"
#include "syncmap_model.h"

/* ---- a value that holds a GC pointer ------------------------------------- */

enum { BLOB_WORDS = 6 };
typedef struct { uint64_t w[BLOB_WORDS]; } blob;   /* noscan, checksummed */
typedef struct { blob *b; uint64_t key, version; } pval;
static const uint8_t pval_mask[] = { 0x1 };
static const gm_type pval_type = { sizeof(pval), _Alignof(pval), NULL, NULL, pval_mask, 0, "pval" };

static uint64_t word_of(uint64_t key, uint64_t ver, int i)
{
    return (key * 0x9e3779b97f4a7c15ull) ^ (ver << 8) ^ (uint64_t)i ^ 0xa5a5;
}

static pval make_pval(uint64_t key, uint64_t ver)
{
    blob *b = gm_alloc_noscan(sizeof *b);
    for (int i = 0; i < BLOB_WORDS; i++) b->w[i] = word_of(key, ver, i);
    return (pval){ b, key, ver };
}

static bool pval_ok(const pval *v, uint64_t key)
{
    if (v->key != key || v->b == NULL) return false;
    for (int i = 0; i < BLOB_WORDS; i++)
        if (v->b->w[i] != word_of(key, v->version, i)) return false;
    return true;
}

static bool pval_equal(const void *a, const void *b)
{
    const pval *x = a, *y = b;
    return x->key == y->key && x->version == y->version;
}
static const gm_type pval_eq_type = { sizeof(pval), _Alignof(pval), NULL, pval_equal,
                                      pval_mask, 0, "pval" };

/* Attached threads that wait must say so (gc.h's threads contract). */
static void join(pthread_t t)
{
    gm_blocking_begin();
    pthread_join(t, NULL);
    gm_blocking_end();
}

/* ---- every operation alone ------------------------------------------------ */

TEST(gc_syncmap_every_operation)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_u64, &gm_type_u64);
    REQUIRE(m != NULL);
    uint64_t k = 7, v = 70, out = 1, k2 = 8;
    CHECK(!gm_syncmap_load(m, &k, &out));
    CHECK_EQ_U(out, 0);
    gm_syncmap_store(m, &k, &v);
    collect();
    CHECK(gm_syncmap_load(m, &k, &out));
    CHECK_EQ_U(out, 70);
    /* LoadOrStore: loads the present value, stores an absent one. */
    uint64_t v2 = 71;
    CHECK(gm_syncmap_load_or_store(m, &k, &v2, &out));
    CHECK_EQ_U(out, 70);
    CHECK(!gm_syncmap_load_or_store(m, &k2, &v2, &out));
    CHECK_EQ_U(out, 71);
    /* Swap returns the previous value. */
    uint64_t v3 = 72;
    CHECK(gm_syncmap_swap(m, &k, &v3, &out));
    CHECK_EQ_U(out, 70);
    collect();
    CHECK(gm_syncmap_load(m, &k, &out));
    CHECK_EQ_U(out, 72);
    /* CompareAndSwap / CompareAndDelete. */
    uint64_t wrong = 1, v4 = 73;
    CHECK(!gm_syncmap_compare_and_swap(m, &k, &wrong, &v4));
    CHECK(gm_syncmap_compare_and_swap(m, &k, &v3, &v4));
    CHECK(!gm_syncmap_compare_and_delete(m, &k, &v3));
    CHECK(gm_syncmap_compare_and_delete(m, &k, &v4));
    CHECK(!gm_syncmap_load(m, &k, NULL));
    /* LoadAndDelete and Delete. */
    CHECK(gm_syncmap_load_and_delete(m, &k2, &out));
    CHECK_EQ_U(out, 71);
    CHECK(!gm_syncmap_load_and_delete(m, &k2, &out));
    gm_syncmap_delete(m, &k2);
    /* Many keys through promotions and dirty rebuilds, then Range. */
    for (uint64_t i = 0; i < 500; i++) {
        uint64_t val = i * 3;
        gm_syncmap_store(m, &i, &val);
        if (i % 50 == 0) collect();
        for (uint64_t j = 0; j < i; j += 37) (void)gm_syncmap_load(m, &j, NULL);   /* misses */
    }
    for (uint64_t i = 0; i < 500; i += 2) gm_syncmap_delete(m, &i);
    collect();
    CHECK(gm_syncmap_check(m) == NULL);
    uint64_t sum = 0, n = 0;
    for (uint64_t i = 0; i < 500; i++)
        if (gm_syncmap_load(m, &i, &out)) {
            CHECK_EQ_U(out, i * 3);
            sum += out;
            n++;
        }
    CHECK_EQ_U(n, 250);
    CHECK_EQ_U(sum, 3 * 250 * 250);   /* 3 * (1 + 3 + ... + 499) */
    gm_syncmap_clear(m);
    collect();
    for (uint64_t i = 0; i < 500; i++) CHECK(!gm_syncmap_load(m, &i, NULL));
    gm_syncmap_stats st;
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.read_len, 0);
    CHECK(!st.amended);
    gm_syncmap_free(m);   /* does nothing for a GC map */
    gm_syncmap_store(m, &k, &v);
    CHECK(gm_syncmap_load(m, &k, &out));
    CHECK_EQ_U(out, 70);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

static bool count_fn(const void *key, const void *val, void *arg)
{
    const pval *v = val;
    uint64_t *c = arg;
    if (pval_ok(v, *(const uint64_t *)key)) c[0]++;
    else c[1]++;
    return true;
}

/* Differential runs against a plain model, a collection every 1000 steps:
 * u64 and u32 keys (read index) and i64 keys (gm_map lookups). */
static void collect_between(int step)
{
    (void)step;
    collect();
}

TEST(gc_syncmap_matches_a_model_with_collections)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_u64, &gm_type_u64);
    REQUIRE(m != NULL);
    syncmap_model_run(m, 8, (int)scaled(60000), collect_between);
    gm_syncmap *m32 = gm_syncmap_new_gc(&gm_type_u32, &gm_type_u64);
    REQUIRE(m32 != NULL);
    syncmap_model_run(m32, 4, (int)scaled(30000), collect_between);
    gm_syncmap *mg = gm_syncmap_new_gc(&gm_type_i64, &gm_type_u64);
    REQUIRE(mg != NULL);
    syncmap_model_run(mg, 8, (int)scaled(30000), collect_between);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* ---- values and keys that hold pointers ----------------------------------- */

/* The map is the only thing that references the blobs. */
__attribute__((noinline)) static void fill_pvals(gm_syncmap *m, uint64_t n, uint64_t ver)
{
    for (uint64_t k = 0; k < n; k++) {
        pval v = make_pval(k, ver);
        gm_syncmap_store(m, &k, &v);
    }
}

TEST(gc_syncmap_keeps_pointer_values_alive_and_frees_replaced_ones)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_u64, &pval_eq_type);
    REQUIRE(m != NULL);
    const uint64_t n = 300;
    fill_pvals(m, n, 1);
    for (int i = 0; i < 3; i++) collect();
    fill_pvals(m, n, 2);   /* replaces every value: version 1 is garbage */
    collect();
    for (uint64_t k = 0; k < n; k++) {
        pval v;
        REQUIRE(gm_syncmap_load(m, &k, &v));
        CHECK(pval_ok(&v, k));
        CHECK_EQ_U(v.version, 2);
    }
    uint64_t c[2] = { 0, 0 };
    gm_syncmap_range(m, count_fn, c);
    CHECK_EQ_U(c[0], n);
    CHECK_EQ_U(c[1], 0);
    /* A replaced value's blob is collected (nothing like EBR holds it). */
    uint64_t k0 = 0;
    pval old, now = make_pval(k0, 3);
    CHECK(gm_syncmap_swap(m, &k0, &now, &old));
    gm_weak *w = gm_weak_make(old.b);
    memset(&old, 0, sizeof old);
    for (int i = 0; i < 3 && gm_weak_get(w) != NULL; i++) collect();
    CHECK(gm_weak_get(w) == NULL);
    /* CompareAndSwap compares with the type's equal. */
    pval want = { NULL, 0, 3 }, next = make_pval(0, 4);
    CHECK(gm_syncmap_compare_and_swap(m, &k0, &want, &next));
    collect();
    pval got;
    CHECK(gm_syncmap_load(m, &k0, &got));
    CHECK(pval_ok(&got, 0));
    CHECK_EQ_U(got.version, 4);
    CHECK(gm_syncmap_check(m) == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* sync.Map's Delete sets the entry's pointer to nil at once (Go's
 * entry.delete): the value becomes garbage even while the key's entry stays
 * in the read-only map until the next promotion.  That holds for a key's
 * first value too, and for a first value replaced by a Store: nothing but
 * p_a may keep a value alive (a first value kept inside the entry would
 * live as long as the entry). */
__attribute__((noinline)) static gm_weak *store_weak_first(gm_syncmap *m, uint64_t k)
{
    pval v = make_pval(k, 1);
    gm_weak *w = gm_weak_make(v.b);
    gm_syncmap_store(m, &k, &v);
    return w;
}

TEST(gc_syncmap_deleted_and_replaced_first_values_are_collectable)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_u64, &pval_type);
    REQUIRE(m != NULL);
    gm_root_add(&m, sizeof m);
    enum { NK = 64 };
    static gm_weak *w[NK];
    gm_root_add(w, sizeof w);
    for (uint64_t k = 0; k < NK; k++) w[k] = store_weak_first(m, k);
    for (uint64_t k = 0; k < NK; k++) CHECK(gm_syncmap_load(m, &k, NULL)); /* promote to read */
    gm_syncmap_stats st;
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.read_len, NK);
    for (uint64_t k = 0; k < NK / 2; k++) gm_syncmap_delete(m, &k);
    for (uint64_t k = NK / 2; k < NK; k++) {
        pval v = make_pval(k, 2);
        gm_syncmap_store(m, &k, &v);
    }
    gm_syncmap_stats_get(m, &st);
    CHECK_EQ_U(st.read_len, NK);   /* the deleted keys are still in read */
    collect();
    collect();
    size_t alive = 0;
    for (uint64_t k = 0; k < NK; k++) alive += gm_weak_get(w[k]) != NULL;
    /* all 64 were kept before the fix; a stale stack word (the stack is
     * scanned conservatively; sanitizer builds keep more) may pin one or two */
    CHECK_MSG(alive <= 2, "%zu of %d deleted or replaced first values still reachable", alive, NK);
    for (uint64_t k = NK / 2; k < NK; k++) {
        pval v;
        CHECK(gm_syncmap_load(m, &k, &v));
        CHECK(pval_ok(&v, k));
    }
    CHECK(gm_syncmap_check(m) == NULL);
    gm_root_remove(w);
    gm_root_remove(&m);
}

/* A value copied out into a GC object goes through the barrier (typed). */
TEST(gc_syncmap_copies_out_into_a_gc_object)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_u64, &pval_type);
    REQUIRE(m != NULL);
    uint64_t k = 5;
    pval v = make_pval(k, 9);
    gm_syncmap_store(m, &k, &v);
    memset(&v, 0, sizeof v);
    pval *holder = gm_new(&pval_type);
    CHECK(gm_syncmap_load(m, &k, holder));
    gm_syncmap_delete(m, &k);
    collect();
    CHECK(pval_ok(holder, k));   /* the holder alone keeps the blob alive */
    CHECK(!gm_syncmap_load(m, &k, holder));
    CHECK(holder->b == NULL);    /* zeroed with gm_typed_memclr */
}

__attribute__((noinline)) static void fill_str_keys(gm_syncmap *m, int n)
{
    for (int i = 0; i < n; i++) {
        char *bytes = gm_alloc_noscan(32);
        int len = snprintf(bytes, 32, "key-%d-%d", i, i * 7);
        gm_str key = { bytes, (size_t)len };
        uint64_t v = (uint64_t)i;
        gm_syncmap_store(m, &key, &v);
    }
}

static bool str_check_fn(const void *key, const void *val, void *arg)
{
    const gm_str *k = key;
    int *bad = arg;
    char want[32];
    int i = (int)*(const uint64_t *)val;
    int len = snprintf(want, sizeof want, "key-%d-%d", i, i * 7);
    if (k->len != (size_t)len || memcmp(k->ptr, want, (size_t)len) != 0) (*bad)++;
    return true;
}

TEST(gc_syncmap_string_keys_keep_their_bytes_alive)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_str, &gm_type_u64);
    REQUIRE(m != NULL);
    const int n = 200;
    fill_str_keys(m, n / 2);
    collect();
    fill_str_keys(m, n);   /* equal keys: overwrites; new keys: dirty */
    for (int i = 0; i < 3; i++) collect();
    for (int i = 0; i < n; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "key-%d-%d", i, i * 7);
        gm_str key = { buf, (size_t)len };   /* a lookup key on the stack is fine */
        uint64_t v;
        CHECK(gm_syncmap_load(m, &key, &v));
        CHECK_EQ_U(v, (uint64_t)i);
    }
    int bad = 0;
    gm_syncmap_range(m, str_check_fn, &bad);   /* promotes: read map only */
    CHECK_EQ_U(bad, 0);
    collect();
    bad = 0;
    gm_syncmap_range(m, str_check_fn, &bad);
    CHECK_EQ_U(bad, 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

__attribute__((noinline)) static gm_weak *make_unreachable_map(gm_weak **blob_w)
{
    gm_syncmap *m = gm_syncmap_new_gc(&gm_type_u64, &pval_type);
    pval keep = { NULL, 0, 0 };
    for (uint64_t k = 0; k < 100; k++) {
        pval v = make_pval(k, 1);
        if (k == 42) keep = v;
        gm_syncmap_store(m, &k, &v);
        (void)gm_syncmap_load(m, &k, NULL);
    }
    *blob_w = gm_weak_make(keep.b);
    return gm_weak_make(m);
}

TEST(gc_syncmap_unreachable_map_is_collected)
{
    gm_weak *blob_w = NULL;
    gm_weak *w = make_unreachable_map(&blob_w);
    for (int i = 0; i < 4 && gm_weak_get(w) != NULL; i++) collect();
    CHECK(gm_weak_get(w) == NULL);       /* the sync.Map itself */
    CHECK(gm_weak_get(blob_w) == NULL);  /* and what only it reached */
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* ---- concurrency with collections running ---------------------------------- */

enum { H_KEYS = 128, H_WRITERS = 2, H_READERS = 2 };
typedef struct {
    gm_syncmap *m;
    atomic_int stop, failures, writers_left;
    long rounds;
    uint64_t last_version[H_KEYS];   /* writer-owned: key k by writer k % H_WRITERS */
    bool present[H_KEYS];            /* writer-owned: the key's state after its last write */
    uint64_t counters;               /* CAS counter key value at the end */
} hist_shared;
typedef struct { hist_shared *s; int id; } hist_arg;

static bool hist_range_fn(const void *key, const void *val, void *arg)
{
    hist_shared *s = arg;
    if (!pval_ok(val, *(const uint64_t *)key)) atomic_fetch_add(&s->failures, 1);
    return true;
}

static void *hist_writer(void *p)
{
    hist_arg *a = p;
    hist_shared *s = a->s;
    uint64_t seed = 1000 + (uint64_t)a->id;
    for (long i = 0; i < s->rounds; i++) {
        uint64_t r = test_rand(&seed);
        uint64_t k = (r % (H_KEYS / H_WRITERS)) * H_WRITERS + (uint64_t)a->id;
        uint64_t op = (r >> 32) % 100;
        if (op < 60) {
            pval v = make_pval(k, ++s->last_version[k]);
            gm_syncmap_store(s->m, &k, &v);
            s->present[k] = true;
        } else if (op < 75) {
            pval old;
            bool had = gm_syncmap_load_and_delete(s->m, &k, &old);
            if (had != s->present[k] || (had && (!pval_ok(&old, k) ||
                                                 old.version != s->last_version[k])))
                atomic_fetch_add(&s->failures, 1);
            s->present[k] = false;
        } else if (op < 90) {
            pval v = make_pval(k, s->last_version[k] + 1), actual;
            bool loaded = gm_syncmap_load_or_store(s->m, &k, &v, &actual);
            if (loaded != s->present[k] || !pval_ok(&actual, k))
                atomic_fetch_add(&s->failures, 1);
            if (!loaded) s->last_version[k]++;
            s->present[k] = true;
        } else if (op < 98) {
            pval prev, v = make_pval(k, ++s->last_version[k]);
            bool had = gm_syncmap_swap(s->m, &k, &v, &prev);
            if (had != s->present[k] || (had && !pval_ok(&prev, k)))
                atomic_fetch_add(&s->failures, 1);
            s->present[k] = true;
        } else {
            gm_syncmap_range(s->m, hist_range_fn, s);
        }
        /* A shared counter, bumped by CAS (key H_KEYS, value version). */
        if (i % 8 == 0) {
            uint64_t ck = H_KEYS;
            for (;;) {
                pval cur;
                if (!gm_syncmap_load(s->m, &ck, &cur)) {
                    atomic_fetch_add(&s->failures, 1);
                    break;
                }
                pval next = make_pval(ck, cur.version + 1);
                if (gm_syncmap_compare_and_swap(s->m, &ck, &cur, &next)) break;
            }
        }
    }
    atomic_fetch_sub(&s->writers_left, 1);
    return NULL;
}

static void *hist_reader(void *p)
{
    hist_arg *a = p;
    hist_shared *s = a->s;
    uint64_t seen[H_KEYS] = { 0 };   /* versions only grow, per key */
    uint64_t seed = 77 + (uint64_t)a->id;
    while (atomic_load(&s->writers_left) > 0) {
        uint64_t k = test_rand(&seed) % H_KEYS;
        pval v;
        if (gm_syncmap_load(s->m, &k, &v)) {
            if (!pval_ok(&v, k) || v.version < seen[k]) atomic_fetch_add(&s->failures, 1);
            seen[k] = v.version;
        } else if (v.b != NULL) {
            atomic_fetch_add(&s->failures, 1);   /* out must be zeroed */
        }
    }
    return NULL;
}

static void *collector(void *p)
{
    hist_shared *s = p;
    long cycles = 0;
    while (!atomic_load(&s->stop) || cycles < 2) {
        gm_gc();
        cycles++;
    }
    return (void *)(intptr_t)cycles;
}

static void run_histories(hist_shared *s)
{
    uint64_t ck = H_KEYS;
    pval zero = make_pval(ck, 0);
    gm_syncmap_store(s->m, &ck, &zero);
    atomic_store(&s->writers_left, H_WRITERS);
    pthread_t w[H_WRITERS], r[H_READERS], c;
    hist_arg wa[H_WRITERS], ra[H_READERS];
    pthread_create(&c, NULL, collector, s);
    for (int i = 0; i < H_WRITERS; i++) {
        wa[i] = (hist_arg){ s, i };
        pthread_create(&w[i], NULL, hist_writer, &wa[i]);
    }
    for (int i = 0; i < H_READERS; i++) {
        ra[i] = (hist_arg){ s, i };
        pthread_create(&r[i], NULL, hist_reader, &ra[i]);
    }
    for (int i = 0; i < H_WRITERS; i++) join(w[i]);
    for (int i = 0; i < H_READERS; i++) join(r[i]);
    atomic_store(&s->stop, 1);
    join(c);
}

TEST(gc_syncmap_histories_stay_consistent_while_collections_run)
{
    static hist_shared s;
    memset(&s, 0, sizeof s);
    gm_root_add(&s.m, sizeof s.m);   /* a global that holds a GC pointer */
    s.m = gm_syncmap_new_gc(&gm_type_u64, &pval_eq_type);
    REQUIRE(s.m != NULL);
    s.rounds = scaled(20000);
    gm_memstats before;
    gm_read_memstats(&before);
    run_histories(&s);
    CHECK_EQ_U(atomic_load(&s.failures), 0);
    CHECK(stats()->num_gc >= before.num_gc + 2);
    /* The end state is exactly each key's history's last step. */
    collect();
    for (uint64_t k = 0; k < H_KEYS; k++) {
        pval v;
        bool had = gm_syncmap_load(s.m, &k, &v);
        CHECK_MSG(had == s.present[k], "key %" PRIu64, k);
        if (had) {
            CHECK(pval_ok(&v, k));
            CHECK_EQ_U(v.version, s.last_version[k]);
        }
    }
    uint64_t ck = H_KEYS;
    pval cv;
    CHECK(gm_syncmap_load(s.m, &ck, &cv));
    CHECK(pval_ok(&cv, ck));
    uint64_t bumps = 0;
    for (long i = 0; i < s.rounds; i += 8) bumps++;
    CHECK_EQ_U(cv.version, bumps * H_WRITERS);   /* no CAS increment lost */
    CHECK(gm_syncmap_check(s.m) == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(&s.m);
}

/* Readers on a map being cleared and refilled, collections running: every
 * value seen is whole (its blob intact), never a freed one. */
static void *clear_writer(void *p)
{
    hist_shared *s = p;
    for (long i = 0; i < s->rounds; i++) {
        uint64_t k = (uint64_t)i % H_KEYS;
        pval v = make_pval(k, (uint64_t)i);
        gm_syncmap_store(s->m, &k, &v);
        if (i % 500 == 499) gm_syncmap_clear(s->m);
    }
    atomic_fetch_sub(&s->writers_left, 1);
    return NULL;
}

static void *clear_reader(void *p)
{
    hist_shared *s = p;
    uint64_t seed = 5;
    uint64_t c[2] = { 0, 0 };
    while (atomic_load(&s->writers_left) > 0) {
        uint64_t k = test_rand(&seed) % H_KEYS;
        pval v;
        if (gm_syncmap_load(s->m, &k, &v) && !pval_ok(&v, k)) atomic_fetch_add(&s->failures, 1);
        if (k == 0) gm_syncmap_range(s->m, count_fn, c);
    }
    if (c[1] != 0) atomic_fetch_add(&s->failures, 1);
    return NULL;
}

TEST(gc_syncmap_readers_see_whole_values_across_clears_and_collections)
{
    static hist_shared s;
    memset(&s, 0, sizeof s);
    gm_root_add(&s.m, sizeof s.m);
    s.m = gm_syncmap_new_gc(&gm_type_u64, &pval_type);
    REQUIRE(s.m != NULL);
    s.rounds = scaled(20000);
    atomic_store(&s.writers_left, 1);
    pthread_t w, r, c;
    pthread_create(&c, NULL, collector, &s);
    pthread_create(&w, NULL, clear_writer, &s);
    pthread_create(&r, NULL, clear_reader, &s);
    join(w);
    join(r);
    atomic_store(&s.stop, 1);
    join(c);
    CHECK_EQ_U(atomic_load(&s.failures), 0);
    CHECK(gm_syncmap_check(s.m) == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(&s.m);
}
