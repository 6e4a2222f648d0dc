/* test_map_diff.c - randomized differential test against a reference model.
 *
 * Keys come from a small universe [0, K), so the reference is two arrays
 * (present[], value[]) that cannot be wrong.  Every step is checked against
 * it and gm_map_check runs after every step (or every `every` steps for the
 * large universes).  Operations: put, assign-increment, delete, get, clear,
 * full iteration (set equality), iteration with deletes and inserts, clone.
 * Variants: u64 keys through the generic and fast paths; owned string keys;
 * 200-byte indirect keys with 160-byte indirect values. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "gomap/gomap.h"

enum variant { V_U64, V_STR, V_BIG };

struct bigkey { uint64_t id; uint8_t pad[192]; };
struct bigval { uint64_t v; uint8_t pad[152]; };
GM_TYPE_DEFINE_MEM(bigkey_type, struct bigkey);
GM_TYPE_DEFINE_VALUE(bigval_type, struct bigval);

struct model {
    enum variant var;
    gm_map *m;
    size_t K;
    uint8_t *present;
    uint64_t *value;
    size_t count;
    char sbuf[32];
    struct bigkey bk;
};

static const void *mkey(struct model *md, uint64_t k)
{
    static _Thread_local uint64_t u;
    static _Thread_local gm_str s;
    switch (md->var) {
    case V_U64: u = k; return &u;
    case V_STR: s.len = (size_t)snprintf(md->sbuf, sizeof md->sbuf, "str:%llu", (unsigned long long)k);
                s.ptr = md->sbuf; return &s;
    default: memset(&md->bk, 0, sizeof md->bk); md->bk.id = k; md->bk.pad[191] = (uint8_t)k; return &md->bk;
    }
}

static uint64_t key_id(struct model *md, const void *kp)
{
    switch (md->var) {
    case V_U64: return *(const uint64_t *)kp;
    case V_STR: { const gm_str *s = kp; unsigned long long v = 0;
                  char tmp[32]; memcpy(tmp, s->ptr, s->len); tmp[s->len] = 0;
                  sscanf(tmp, "str:%llu", &v); return v; }
    default: return ((const struct bigkey *)kp)->id;
    }
}

static uint64_t *val_ptr(struct model *md, void *vp)
{
    return md->var == V_BIG ? &((struct bigval *)vp)->v : (uint64_t *)vp;
}

static void *do_get(struct model *md, uint64_t k, bool fast)
{
    if (fast && md->var == V_U64) return gm_map_get_u64(md->m, k);
    if (fast && md->var == V_STR) { const gm_str *s = mkey(md, k); return gm_map_get_str(md->m, s->ptr, s->len); }
    return gm_map_get(md->m, mkey(md, k));
}

static void *do_assign(struct model *md, uint64_t k, bool fast)
{
    if (fast && md->var == V_U64) return gm_map_assign_u64(md->m, k);
    if (fast && md->var == V_STR) { const gm_str *s = mkey(md, k); return gm_map_assign_str(md->m, s->ptr, s->len); }
    return gm_map_assign(md->m, mkey(md, k));
}

static bool do_delete(struct model *md, uint64_t k, bool fast)
{
    if (fast && md->var == V_U64) return gm_map_delete_u64(md->m, k);
    if (fast && md->var == V_STR) { const gm_str *s = mkey(md, k); return gm_map_delete_str(md->m, s->ptr, s->len); }
    return gm_map_delete(md->m, mkey(md, k));
}

static bool full_iteration_matches(struct model *md, gm_map *m)
{
    uint8_t *seen = calloc(md->K, 1);
    gm_map_iter it;
    const void *k;
    void *v;
    size_t n = 0;
    bool ok = true;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, &v)) {
        uint64_t id = key_id(md, k);
        if (id >= md->K || !md->present[id] || seen[id] || *val_ptr(md, v) != md->value[id]) ok = false;
        if (id < md->K) seen[id] = 1;
        n++;
    }
    free(seen);
    return ok && n == md->count;
}

static void run(enum variant var, size_t K, size_t steps, size_t every, uint64_t seed)
{
    struct model md = { .var = var, .K = K };
    md.m = gm_map_new(var == V_U64 ? &gm_type_u64 : var == V_STR ? &gm_type_str_owned : &bigkey_type,
                      var == V_BIG ? &bigval_type : &gm_type_u64, 0);
    md.present = calloc(K, 1);
    md.value = calloc(K, sizeof(uint64_t));
    uint64_t s = seed;
    int failures_before = check_failures;
    for (size_t step = 0; step < steps && check_failures == failures_before; step++) {
        uint64_t r = test_rand(&s);
        uint64_t k = (r >> 8) % K;
        bool fast = r & 0x80;
        unsigned op = (unsigned)(r & 0x7f);
        /* Phases bias towards growth or towards emptying. */
        bool filling = (step / (K * 4)) % 2 == 0;
        if (op < (filling ? 50u : 30u)) {                /* put */
            void *e = do_assign(&md, k, fast);
            REQUIRE(e);
            uint64_t v = r >> 20;
            *val_ptr(&md, e) = v;
            if (!md.present[k]) { md.present[k] = 1; md.count++; }
            md.value[k] = v;
        } else if (op < 60) {                            /* m[k]++ */
            void *e = do_assign(&md, k, fast);
            REQUIRE(e);
            (*val_ptr(&md, e))++;
            if (!md.present[k]) { md.present[k] = 1; md.count++; md.value[k] = 0; }
            md.value[k]++;
        } else if (op < (filling ? 80u : 110u)) {        /* delete */
            bool had = do_delete(&md, k, fast);
            CHECK_MSG(had == (md.present[k] != 0), "step %zu: delete %llu returned %d", step, (unsigned long long)k, had);
            if (md.present[k]) { md.present[k] = 0; md.count--; }
        } else if (op < 125) {                           /* get */
            void *e = do_get(&md, k, fast);
            CHECK_MSG((e != NULL) == (md.present[k] != 0), "step %zu: get %llu", step, (unsigned long long)k);
            if (e && md.present[k]) CHECK(*val_ptr(&md, e) == md.value[k]);
        } else if (op == 125 && (r >> 40) % 64 == 0) {   /* clear (rare) */
            gm_map_clear(md.m);
            memset(md.present, 0, K);
            md.count = 0;
        } else if (op == 126) {                          /* full iteration / clone */
            if ((r >> 40) % 8 == 0) {
                CHECK_MSG(full_iteration_matches(&md, md.m), "step %zu: iteration differs", step);
                if ((r >> 44) % 4 == 0) {
                    gm_map *c = gm_map_clone(md.m);
                    CHECK(full_iteration_matches(&md, c));
                    CHECK(gm_map_check(c) == NULL);
                    gm_map_free(c);
                }
            }
        } else {                                         /* iterate while mutating */
            if ((r >> 40) % 16 != 0) continue;
            uint8_t *seen = calloc(K, 1), *at_start = malloc(K), *touched = calloc(K, 1);
            uint8_t *created = calloc(K, 1);
            memcpy(at_start, md.present, K);
            gm_map_iter it;
            const void *kp;
            void *vp;
            gm_map_iter_init(&it, md.m);
            size_t budget = (r >> 50) % 64;
            while (gm_map_iter_next(&it, &kp, &vp)) {
                uint64_t id = key_id(&md, kp);
                REQUIRE(id < K);
                /* A key deleted and inserted again during the iteration is a
                 * new entry, which Go allows to be returned (again). */
                CHECK_MSG(!seen[id] || created[id], "step %zu: key %llu returned twice", step, (unsigned long long)id);
                CHECK_MSG(md.present[id], "step %zu: deleted key %llu returned", step, (unsigned long long)id);
                CHECK(*val_ptr(&md, vp) == md.value[id]);
                seen[id] = 1;
                if (budget) {
                    budget--;
                    uint64_t r2 = test_rand(&s), k2 = (r2 >> 8) % K;
                    touched[k2] = 1;
                    if (r2 & 1) {
                        void *e = do_assign(&md, k2, r2 & 2);
                        *val_ptr(&md, e) = r2 >> 30;
                        if (!md.present[k2]) { md.present[k2] = 1; md.count++; created[k2] = 1; }
                        md.value[k2] = r2 >> 30;
                    } else {
                        do_delete(&md, k2, r2 & 2);
                        if (md.present[k2]) { md.present[k2] = 0; md.count--; }
                    }
                }
            }
            for (size_t i = 0; i < K; i++)
                if (at_start[i] && md.present[i] && !touched[i])
                    CHECK_MSG(seen[i], "step %zu: untouched key %zu missed", step, i);
            free(seen);
            free(at_start);
            free(touched);
            free(created);
        }
        CHECK_EQ_U(gm_map_len(md.m), md.count);
        if (step % every == 0) {
            const char *e = gm_map_check(md.m);
            CHECK_MSG(e == NULL, "step %zu: %s", step, e);
        }
    }
    CHECK(full_iteration_matches(&md, md.m));
    gm_map_free(md.m);
    free(md.present);
    free(md.value);
}

static size_t scaled(size_t n) { return (size_t)((double)n * test_scale()); }

TEST(diff_u64_small_universe_check_every_step)
{
    run(V_U64, 200, scaled(1500000), 1, 11);
}

TEST(diff_u64_large_universe)
{
    run(V_U64, 50000, scaled(1500000), 5000, 12);
}

TEST(diff_owned_strings)
{
    run(V_STR, 300, scaled(400000), 1, 13);
}

TEST(diff_indirect_big_keys_and_values)
{
    run(V_BIG, 300, scaled(200000), 1, 14);
}
