/* syncmap_model.h - a differential run of gm_syncmap against a plain model,
 * for any map maker and any integer key type of 4 or 8 bytes (u32 and u64
 * keys take the read-index paths, i64 keys the generic gm_map ones).  Few
 * keys, so that every path (read hit, dirty hit, expunged, promotion, clear)
 * recurs.  `between(i)` runs every 1000 steps (the GC tests collect there).
 * Included by test_syncmap.c and test_syncmap_gc.c; needs check.h. */
#ifndef GOMAP_TEST_SYNCMAP_MODEL_H
#define GOMAP_TEST_SYNCMAP_MODEL_H

#include <string.h>

#include "gomap/sync.h"

typedef struct { uint64_t seen[64]; int calls; } model_range;

static bool model_range_fn(const void *key, const void *val, void *arg)
{
    model_range *c = arg;
    uint64_t k = 0, v = *(const uint64_t *)val;
    memcpy(&k, key, 4);   /* keys < 64: the low 4 bytes (little-endian) */
    if (k < 64) c->seen[k] += v;
    c->calls++;
    return true;
}

static void syncmap_model_run(gm_syncmap *m, size_t ksize, int steps, void (*between)(int))
{
    enum { K = 48 };
    bool present[K] = { false };
    uint64_t model[K] = { 0 };
    uint64_t seed = 42;
    for (int i = 0; i < steps && !check_failures; i++) {
        uint64_t r = test_rand(&seed);
        uint64_t k64 = r % K, v = (r >> 8) % 5, out = 99;
        uint32_t k32 = (uint32_t)k64;
        const void *key = ksize == 4 ? (const void *)&k32 : (const void *)&k64;
        uint64_t k = k64;
        bool ok;
        switch ((r >> 16) % 10) {
        case 0: case 1:
            ok = gm_syncmap_load(m, key, &out);
            CHECK(ok == present[k]);
            CHECK_EQ_U(out, present[k] ? model[k] : 0);
            break;
        case 2:
            gm_syncmap_store(m, key, &v);
            present[k] = true; model[k] = v;
            break;
        case 3:
            ok = gm_syncmap_load_or_store(m, key, &v, &out);
            CHECK(ok == present[k]);
            if (!present[k]) { present[k] = true; model[k] = v; }
            CHECK_EQ_U(out, model[k]);
            break;
        case 4:
            ok = gm_syncmap_load_and_delete(m, key, &out);
            CHECK(ok == present[k]);
            CHECK_EQ_U(out, present[k] ? model[k] : 0);
            present[k] = false;
            break;
        case 5:
            ok = gm_syncmap_swap(m, key, &v, &out);
            CHECK(ok == present[k]);
            CHECK_EQ_U(out, present[k] ? model[k] : 0);
            present[k] = true; model[k] = v;
            break;
        case 6: {
            uint64_t old = (r >> 24) % 5;
            ok = gm_syncmap_compare_and_swap(m, key, &old, &v);
            bool want = present[k] && model[k] == old;
            CHECK(ok == want);
            if (want) model[k] = v;
            break;
        }
        case 7: {
            uint64_t old = (r >> 24) % 5;
            ok = gm_syncmap_compare_and_delete(m, key, &old);
            bool want = present[k] && model[k] == old;
            CHECK(ok == want);
            if (want) present[k] = false;
            break;
        }
        case 8:
            if ((r >> 24) % 64 == 0) {
                gm_syncmap_clear(m);
                memset(present, 0, sizeof present);
            } else {
                gm_syncmap_delete(m, key);
                present[k] = false;
            }
            break;
        case 9:
            if ((r >> 24) % 16 == 0) {
                model_range c;
                memset(&c, 0, sizeof c);
                gm_syncmap_range(m, model_range_fn, &c);
                int n = 0;
                for (int j = 0; j < K; j++) {
                    n += present[j];
                    CHECK_EQ_U(c.seen[j], present[j] ? model[j] : 0);
                }
                CHECK_EQ_U(c.calls, n);
            }
            break;
        }
        if (i % 997 == 0) {
            const char *err = gm_syncmap_check(m);
            CHECK_MSG(err == NULL, "step %d: %s", i, err);
        }
        if (between != NULL && i % 1000 == 999) between(i);
    }
    CHECK(gm_syncmap_check(m) == NULL);
}

#endif
