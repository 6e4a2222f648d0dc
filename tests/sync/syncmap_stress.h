/* syncmap_stress.h - concurrent gm_syncmap checks shared by test_syncmap.c
 * and test_syncmap_xchg.c (the same checks with the other reclamation fence).
 * Included once per test binary; needs check.h, pthread.h, string.h. */
#ifndef GOMAP_TEST_SYNCMAP_STRESS_H
#define GOMAP_TEST_SYNCMAP_STRESS_H

#ifndef LOAD
#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#endif

static int stress_scaled(int n)
{
    int v = (int)(n * test_scale());
    return v < 1 ? 1 : v;
}

/* Readers check every value they see: a value is (key, version, checksum),
 * versions of a key only grow, while writers store new versions, delete,
 * add new keys (forcing dirty rebuilds and promotions), range, and clear.
 * A value read from freed or torn memory fails the checksum. */
typedef struct { uint64_t key, version, check; } vval;
GM_TYPE_DEFINE_VALUE(vval_type, vval);
static uint64_t vcheck(uint64_t k, uint64_t ver) { return (k * 0x9e3779b97f4a7c15ull) ^ ver ^ 0x5555; }

enum { V_KEYS = 256 };
typedef struct {
    gm_syncmap *m;
    uint64_t version[V_KEYS];   /* writer-owned: key k is written by thread k%2 */
    int stop, failures, rounds;
} vshared;

typedef struct { vshared *s; int id; } vw_arg;

static bool vrange_fn(const void *key, const void *val, void *arg)
{
    const vval *v = val;
    vshared *s = arg;
    if (v->key != *(const uint64_t *)key || v->check != vcheck(v->key, v->version))
        ADD(&s->failures, 1);
    return true;
}

static void *vwriter(void *p)
{
    vw_arg *a = p;
    vshared *s = a->s;
    uint64_t seed = (uint64_t)a->id + 99;
    for (int i = 0; i < s->rounds; i++) {
        uint64_t r = test_rand(&seed);
        uint64_t k = (r % (V_KEYS / 2)) * 2 + (uint64_t)a->id;
        uint64_t op = (r >> 32) % 100;
        if (op < 70) {
            vval v = { k, ++s->version[k], 0 };
            v.check = vcheck(k, v.version);
            gm_syncmap_store(s->m, &k, &v);
        } else if (op < 90) {
            gm_syncmap_delete(s->m, &k);
        } else if (op < 99) {
            gm_syncmap_range(s->m, vrange_fn, s);
        } else if (a->id == 0 && (r >> 40) % 8 == 0) {
            gm_syncmap_clear(s->m);
        }
    }
    return NULL;
}

static void *vreader(void *p)
{
    vshared *s = p;
    uint64_t last[V_KEYS] = { 0 }, seed = 3, n = 0;
    while (!LOAD(&s->stop)) {
        if (++n % 4096 == 0 && gm_syncmap_check(s->m) != NULL) ADD(&s->failures, 1);
        uint64_t k = test_rand(&seed) % V_KEYS;
        vval v;
        if (!gm_syncmap_load(s->m, &k, &v)) continue;
        if (v.key != k || v.check != vcheck(k, v.version) || v.version < last[k])
            ADD(&s->failures, 1);
        last[k] = v.version;
    }
    return NULL;
}

static void stress_readers_and_writers(void)
{
    vshared s;
    memset(&s, 0, sizeof s);
    s.m = gm_syncmap_new(&gm_type_u64, &vval_type);
    s.rounds = stress_scaled(100000);
    gm_sync_stats before, after;
    gm_sync_stats_get(&before);
    pthread_t w[2], r[2];
    vw_arg wa[2];
    for (int i = 0; i < 2; i++) pthread_create(&r[i], NULL, vreader, &s);
    for (int i = 0; i < 2; i++) {
        wa[i] = (vw_arg){ &s, i };
        pthread_create(&w[i], NULL, vwriter, &wa[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    STORE(&s.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
    CHECK_EQ_U(s.failures, 0);
    gm_sync_stats_get(&after);
    CHECK(after.syncmap_promotions > before.syncmap_promotions);
    CHECK(after.syncmap_dirty_builds > before.syncmap_dirty_builds);
    gm_syncmap_free(s.m);
}

/* Everything replaced or deleted is freed once no thread can hold it. */
static void *replace_many(void *p)
{
    gm_syncmap *m = p;
    for (uint64_t i = 0; i < 5000; i++) {
        uint64_t k = i % 50, nk = 100000 + i;
        gm_syncmap_store(m, &k, &i);
        gm_syncmap_store(m, &nk, &i);
        gm_syncmap_load(m, &nk, NULL);
        gm_syncmap_delete(m, &nk);
    }
    return NULL;
}

static void stress_reclaim(void)
{
    gm_syncmap *m = gm_syncmap_new(&gm_type_u64, &gm_type_u64);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, replace_many, m);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    gm_sync_reclaim();
    gm_sync_stats st;
    gm_sync_stats_get(&st);
    CHECK(st.ebr_retired > 20000);
    CHECK_EQ_U(st.ebr_freed, st.ebr_retired);   /* nobody is pinned now */
    gm_syncmap_free(m);
}

#endif
