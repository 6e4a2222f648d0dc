/* test_map_gc.c - maps on the GC heap (gm_map_new_gc): the map keeps what its
 * keys and values point to alive, is collected whole when unreachable, lets
 * go of what deletes and evacuation drop, and stays consistent when a
 * collection happens at any allocation (the gcstress variants). */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "../gc/gc_util.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "engine.h"
#include "gc_box.h"

#define CHECK_MAP(m) do { const char *e_ = gm_map_check(m); CHECK_MSG(e_ == NULL, "gm_map_check: %s", e_); } while (0)


static gm_map *pmap; /* registered as a root in the cases that need one */

TEST(pointer_values_survive_collections)
{
    long n = scaled(20000);
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    REQUIRE(m);
    gm_map_stats lst;
    gm_map_stats_get(m, &lst);
    REQUIRE(lst.scanned);
    for (long i = 0; i < n; i++) {
        uint64_t k = (uint64_t)i;
        box *b = new_box(k);
        gm_map_put(m, &k, &b);
        if (i % 5000 == 0) collect();
    }
    collect();
    collect();
    for (long i = 0; i < n; i++) {
        uint64_t k = (uint64_t)i;
        box **p = gm_map_get(m, &k);
        CHECK(p && box_ok(*p, k));
    }
    CHECK_MAP(m);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_keep_alive(m);
}

static uint64_t ident_hash(const void *v, uint64_t seed)
{
    (void)seed;
    uint64_t x;
    memcpy(&x, v, 8);
    return x | (x << 56);
}
static bool u64_eq(const void *a, const void *b) { return memcmp(a, b, 8) == 0; }
static const gm_type ident_u64 = { 8, 8, ident_hash, u64_eq, NULL, 0, "ident_u64" };

TEST(noscan_map_keeps_overflow_buckets_alive)
{
    /* Pointer-free buckets are never scanned: overflow buckets live only
     * through the header's block list. */
    gm_map *m = gm_map_new_gc(&ident_u64, &gm_type_u64, 0);
    REQUIRE(m);
    gm_map_stats lst;
    gm_map_stats_get(m, &lst);
    REQUIRE(!lst.scanned);
    for (uint64_t i = 0; i < 3000; i++) {
        uint64_t k = (i / 4) << 8 | (i % 4), v = i * 7;
        gm_map_put(m, &k, &v);
        if (i % 500 == 0) collect();
    }
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    if (st.engine == GM_MAP_CLASSIC) CHECK(st.noverflow > 50);
    collect();
    /* Allocate over whatever the collector might have wrongly freed. */
    for (int i = 0; i < 20000; i++) {
        uint64_t *junk = gm_alloc_noscan(st.nbuckets > 0 ? 144 * 8 : 8);
        memset(junk, 0xEE, 144 * 8);
    }
    for (uint64_t i = 0; i < 3000; i++) {
        uint64_t k = (i / 4) << 8 | (i % 4);
        uint64_t *v = gm_map_get(m, &k);
        CHECK(v && *v == i * 7);
    }
    CHECK_MAP(m);
    gm_keep_alive(m);
}

__attribute__((noinline)) static gm_weak *make_garbage_map(gm_weak **wval)
{
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    box *keep = NULL;
    for (uint64_t i = 0; i < 5000; i++) {
        box *b = new_box(i);
        if (i == 17) keep = b;
        gm_map_put(m, &i, &b);
    }
    *wval = gm_weak_make(keep);
    return gm_weak_make(m);
}

TEST(unreachable_map_is_collected_whole)
{
    gm_weak *wval, *wmap = make_garbage_map(&wval);
    gm_root_add(&wval, sizeof wval);
    gm_root_add(&wmap, sizeof wmap);
    uint64_t frees0 = stats()->frees;
    collect();
    collect();
    CHECK(gm_weak_get(wmap) == NULL);
    CHECK(gm_weak_get(wval) == NULL);
    CHECK(stats()->frees - frees0 >= 5000);
    gm_root_remove(&wval);
    gm_root_remove(&wmap);
}

__attribute__((noinline)) static gm_weak *put_and_delete(gm_map *m, bool overwrite)
{
    uint64_t k = 424242;
    box *b = new_box(k);
    gm_weak *w = gm_weak_make(b);
    gm_map_put(m, &k, &b);
    b = NULL;
    if (overwrite) {
        box *c = new_box(k + 1);
        gm_map_put(m, &k, &c);
    } else {
        gm_map_delete(m, &k);
    }
    return w;
}

TEST(deleted_and_overwritten_values_are_freed)
{
    pmap = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    gm_root_add(&pmap, sizeof pmap);
    for (uint64_t i = 0; i < 100; i++) {
        box *b = new_box(i);
        gm_map_put(pmap, &i, &b);
    }
    gm_weak *wd = put_and_delete(pmap, false), *wo = put_and_delete(pmap, true);
    gm_root_add(&wd, sizeof wd);
    gm_root_add(&wo, sizeof wo);
    collect();
    CHECK(gm_weak_get(wd) == NULL);
    CHECK(gm_weak_get(wo) == NULL);
    uint64_t k = 424242;
    box **p = gm_map_get(pmap, &k);
    CHECK(p && box_ok(*p, k + 1));
    gm_root_remove(&wd);
    gm_root_remove(&wo);
    gm_root_remove(&pmap);
    pmap = NULL;
}

TEST(iteration_across_collections_and_growth)
{
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    long n = scaled(3000);
    for (long i = 0; i < n; i++) {
        uint64_t k = (uint64_t)i;
        box *b = new_box(k);
        gm_map_put(m, &k, &b);
    }
    uint8_t *seen = calloc((size_t)n, 1);
    gm_map_iter it;
    const void *kp;
    void *vp;
    uint64_t next = (uint64_t)n + 1000000;
    long steps = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &kp, &vp)) {
        uint64_t k = *(const uint64_t *)kp;
        if (k < (uint64_t)n) {
            CHECK(!seen[k]);
            seen[k] = 1;
            CHECK(box_ok(*(box **)vp, k));
        }
        for (int j = 0; j < 4; j++, next++) { /* grow under the iterator */
            box *b = new_box(next);
            gm_map_put(m, &next, &b);
        }
        if (++steps % 500 == 0) collect();
    }
    for (long i = 0; i < n; i++) CHECK(seen[i]);
    free(seen);
    CHECK_MAP(m);
    gm_keep_alive(m);
}

TEST(string_keys_and_values_live_in_the_gc_heap)
{
    gm_map *m = gm_map_new_gc(&gm_type_str, &gm_type_str, 0);
    gm_map *owned = gm_map_new_gc(&gm_type_str_owned, &gm_type_u64, 0);
    long n = scaled(4000);
    char buf[32];
    for (long i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "key-%ld", i);
        char *kb = gm_alloc_noscan((size_t)len), *vb = gm_alloc_noscan((size_t)len + 2);
        memcpy(kb, buf, (size_t)len);
        memcpy(vb, "v:", 2);
        memcpy(vb + 2, buf, (size_t)len);
        gm_str k = { kb, (size_t)len }, v = { vb, (size_t)len + 2 };
        gm_map_put(m, &k, &v); /* only the map holds kb and vb */
        uint64_t u = (uint64_t)i;
        gm_map_put(owned, &(gm_str){ buf, (size_t)len }, &u);
        memset(buf, 'X', sizeof buf);
    }
    collect();
    for (int i = 0; i < 20000; i++) memset(gm_alloc_noscan(16), 0xEE, 16); /* reuse freed memory */
    for (long i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "key-%ld", i);
        gm_str *v = gm_map_get_str(m, buf, (size_t)len);
        REQUIRE(v);
        CHECK(v->len == (size_t)len + 2 && memcmp(v->ptr, "v:", 2) == 0 && memcmp(v->ptr + 2, buf, (size_t)len) == 0);
        uint64_t *u = gm_map_get_str(owned, buf, (size_t)len);
        CHECK(u && *u == (uint64_t)i);
    }
    CHECK_MAP(m);
    CHECK_MAP(owned);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_keep_alive(m);
    gm_keep_alive(owned);
}

typedef struct bigkey { uint64_t id; box *ref; uint8_t pad[184]; } bigkey;
static const uint8_t bigkey_mask[] = { 0x2, 0, 0, 0 }; /* 25 words */
static uint64_t bigkey_hash(const void *v, uint64_t seed) { return gm_hash_bytes(v, 8, seed); }
static bool bigkey_eq(const void *a, const void *b) { return memcmp(a, b, 8) == 0; }
static const gm_type bigkey_type = { sizeof(bigkey), 8, bigkey_hash, bigkey_eq, bigkey_mask, 0, "bigkey" };
typedef struct bigval { box *refs[20]; uint64_t pad[10]; } bigval;
static const uint8_t bigval_mask[] = { 0xff, 0xff, 0x0f, 0, 0 };
static const gm_type bigval_type = { sizeof(bigval), 8, NULL, NULL, bigval_mask, 0, "bigval" };

TEST(indirect_keys_and_values_hold_pointers)
{
    gm_map *m = gm_map_new_gc(&bigkey_type, &bigval_type, 0);
    REQUIRE(m);
    gm_map_stats lst;
    gm_map_stats_get(m, &lst);
    REQUIRE(lst.indirect_key && lst.indirect_val && lst.scanned);
    long n = scaled(1500);
    for (long i = 0; i < n; i++) {
        bigkey k;
        memset(&k, 0, sizeof k);
        k.id = (uint64_t)i;
        k.ref = new_box((uint64_t)i);
        bigval v;
        memset(&v, 0, sizeof v);
        for (int j = 0; j < 20; j++) v.refs[j] = new_box((uint64_t)(i * 20 + j));
        gm_map_put(m, &k, &v);
    }
    collect();
    for (int i = 0; i < 30000; i++) memset(gm_alloc_noscan(16), 0xEE, 16);
    for (long i = 0; i < n; i++) {
        bigkey k;
        memset(&k, 0, sizeof k);
        k.id = (uint64_t)i;
        const bigkey *kp = NULL;
        bigval *v = gm_map_get(m, &k);
        REQUIRE(v);
        for (int j = 0; j < 20; j++) CHECK(box_ok(v->refs[j], (uint64_t)(i * 20 + j)));
        gm_map_iter it;
        (void)it;
        (void)kp;
    }
    gm_map_iter it;
    const void *kp;
    long cnt = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &kp, NULL)) {
        const bigkey *k = kp;
        CHECK(box_ok(k->ref, k->id));
        cnt++;
    }
    CHECK_EQ_U(cnt, n);
    CHECK_MAP(m);
    gm_keep_alive(m);
}

TEST(value_reachable_only_from_an_unevacuated_old_bucket)
{
    CLASSIC_ONLY("no unevacuated old buckets: a Swiss table moves in one write");
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    uint64_t i = 0;
    for (; !m->oldbuckets || i < 1000; i++) { /* stop right after a grow starts */
        box *b = new_box(i);
        gm_map_put(m, &i, &b);
        if (i >= 1000 && m->oldbuckets) break;
    }
    REQUIRE(m->oldbuckets != NULL);
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK(st.nevacuate < st.old_nbuckets);
    collect();
    for (int j = 0; j < 20000; j++) memset(gm_alloc_noscan(16), 0xEE, 16);
    for (uint64_t k = 0; k <= i; k++) {
        box **p = gm_map_get(m, &k);
        CHECK(p && box_ok(*p, k));
    }
    CHECK_MAP(m);
    gm_keep_alive(m);
}

static int finalized_ok = -1;
typedef struct holder { gm_map *m; } holder;
static const uint8_t holder_mask[] = { 0x1 };
static const gm_type holder_type = { sizeof(holder), 8, NULL, NULL, holder_mask, 0, "holder" };

static void check_on_finalize(void *obj, void *arg)
{
    (void)arg;
    holder *h = obj;
    int ok = 1;
    for (uint64_t k = 0; k < 2000; k++) {
        box **p = gm_map_get(h->m, &k);
        ok &= p && box_ok(*p, k);
    }
    finalized_ok = ok;
}

__attribute__((noinline)) static void make_finalizable_holder(void)
{
    holder *h = gm_new(&holder_type);
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    gm_store(&h->m, m);
    for (uint64_t k = 0; k < 2000; k++) {
        box *b = new_box(k);
        gm_map_put(m, &k, &b);
    }
    gm_set_finalizer(h, check_on_finalize, NULL);
}

TEST(map_reachable_only_from_a_finalizable_object)
{
    make_finalizable_holder();
    collect();
    gm_finalizers_wait();
    CHECK_MSG(finalized_ok == 1, "finalizer saw the map %s", finalized_ok < 0 ? "never" : "damaged");
}

/* A random walk of puts, deletes, gets and iterations with pointer values,
 * checked against a plain array; the gcstress variant collects at every
 * allocation, so the map is scanned in every intermediate state. */
TEST(random_operations_with_collections)
{
    enum { K = 512 };
    long steps = scaled(60000);
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    static bool present[K];
    memset(present, 0, sizeof present);
    size_t count = 0;
    uint64_t s = 99;
    for (long step = 0; step < steps; step++) {
        uint64_t r = test_rand(&s), k = (r >> 8) % K;
        unsigned op = r & 7;
        if (op < 4) {
            box *b = new_box(k);
            gm_map_put(m, &k, &b);
            if (!present[k]) { present[k] = 1; count++; }
        } else if (op < 6) {
            bool had = gm_map_delete(m, &k);
            CHECK(had == present[k]);
            if (had) { present[k] = 0; count--; }
        } else if (op == 6) {
            box **p = gm_map_get(m, &k);
            CHECK((p != NULL) == present[k]);
            if (p) CHECK(box_ok(*p, k));
        } else if ((r >> 40) % 64 == 0) {
            gm_map_iter it;
            const void *kp;
            void *vp;
            size_t n = 0;
            gm_map_iter_init(&it, m);
            while (gm_map_iter_next(&it, &kp, &vp)) {
                CHECK(box_ok(*(box **)vp, *(const uint64_t *)kp));
                n++;
            }
            CHECK_EQ_U(n, count);
        } else if ((r >> 40) % 512 == 1) {
            gm_map_clear(m);
            memset(present, 0, sizeof present);
            count = 0;
        }
        CHECK_EQ_U(gm_map_len(m), count);
        if (step % 1000 == 0) {
            const char *e = gm_map_check(m);
            CHECK_MSG(e == NULL, "step %ld: %s", step, e);
        }
        if (check_failures) break;
    }
    CHECK_MAP(m);
    gm_keep_alive(m);
}

/* The no-stall promise on the GC heap, counted in work: a GC map's arrays
 * come from the heap's large-object path, which maps fresh pages and never
 * clears them by hand, so the insert that starts a grow touches a few pages
 * of the new array, not the array; the collector's cycles during the fill
 * (assists, sweeping by the inserting thread) stay bounded too.  Counted:
 * the most minor faults any one insert takes (the inserting thread's own,
 * getrusage).  2^21 keys, the last array 72 MiB: clearing it in the insert
 * would be 18,000 faults; measured 36, in the insert that starts that grow
 * (the heap's per-page records of the new object, about 1/1000 of its
 * size: 54 at 150 MiB, 86 at 300 MiB). */
TEST(gc_map_no_insert_touches_more_than_a_few_new_pages)
{
    CLASSIC_ONLY("the classic engine's arrays");
    size_t n = (size_t)(2097152 * test_scale());
    gm_map *m = gm_map_new_gc(&gm_type_u64, &gm_type_u64, 0);
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    long f = ru.ru_minflt, worst = 0;
    size_t worst_at = 0;
    for (size_t i = 0; i < n; i++) {
        *(uint64_t *)gm_map_assign_u64(m, (uint64_t)i * 0x9e3779b97f4a7c15ull) = i;
        getrusage(RUSAGE_THREAD, &ru);
        if (ru.ru_minflt - f > worst) { worst = ru.ru_minflt - f; worst_at = i; }
        f = ru.ru_minflt;
    }
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    fprintf(stderr, "%zu inserts, %llu grows, array %zu KiB: at most %ld faults in one insert (insert %zu)\n",
            n, (unsigned long long)st.grows, st.array_bytes >> 10, worst, worst_at);
    CHECK(st.grows >= 10); /* 14 at the gcstress suite's scale, 19 in full */
#ifdef GOMAP_SANITIZED
    CHECK_MSG(worst <= 256, "insert %zu took %ld page faults", worst_at, worst);
#else
    CHECK_MSG(worst <= 64, "insert %zu took %ld page faults", worst_at, worst);
#endif
    CHECK_MAP(m);
    gm_keep_alive(m);
}
