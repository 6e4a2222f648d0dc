/* fuzz_map.c - libFuzzer target: the input is a program of map operations,
 * run against a reference model (arrays over a 64-key universe), with
 * gm_map_check after every operation.  The first byte picks the key kind:
 * uint64 (generic and fast paths), owned strings, or float64 with NaNs; bit 2
 * picks the engine (classic or Swiss), bits 3-7 the size hint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap/gomap.h"

#define K 64

static void fail(const char *what, unsigned step)
{
    fprintf(stderr, "fuzz_map: %s at step %u\n", what, step);
    abort();
}

struct ref { unsigned char present[K]; uint64_t val[K]; size_t count; size_t nans; };

static const void *key_for(int kind, unsigned k, char *buf, gm_str *s, uint64_t *u, double *d)
{
    if (kind == 0) { *u = (uint64_t)k * 0x9e3779b97f4a7c15ull; return u; }
    if (kind == 1) { s->len = (size_t)snprintf(buf, 16, "k%u", k); s->ptr = buf; return s; }
    *d = k == K - 1 ? NAN : (k == 0 ? -0.0 : (double)k); return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int kind = data[0] % 3;
    const gm_type *kt = kind == 0 ? &gm_type_u64 : kind == 1 ? &gm_type_str_owned : &gm_type_f64;
    /* Both engines, chosen by the input (the hint's low bit). */
    gm_map_opts o = { (data[0] >> 2) & 1 ? GM_MAP_SWISS : GM_MAP_CLASSIC, false, data[0] >> 3 };
    gm_map *m = gm_map_new_opts(kt, &gm_type_u64, &o);
    struct ref r;
    memset(&r, 0, sizeof r);
    char buf[16];
    gm_str s;
    uint64_t u;
    double d;
    gm_map_iter it;
    int it_open = 0;
    for (size_t i = 1; i + 1 < size; i += 2) {
        unsigned op = data[i] & 7, k = data[i + 1] % K;
        unsigned step = (unsigned)i;
        bool nan = kind == 2 && k == K - 1;
        const void *key = key_for(kind, k, buf, &s, &u, &d);
        bool fast = data[i] & 8;
        switch (op) {
        case 0: case 1: { /* put / m[k]++ */
            uint64_t *v = (fast && kind == 0) ? gm_map_assign_u64(m, u) : gm_map_assign(m, key);
            if (!v) fail("assign returned NULL", step);
            if (nan) { r.nans++; break; }
            if (!r.present[k]) { r.present[k] = 1; r.count++; r.val[k] = 0; }
            if (op == 0) *v = r.val[k] = data[i];
            else r.val[k] = ++*v;
            break;
        }
        case 2: { /* delete */
            bool had = (fast && kind == 0) ? gm_map_delete_u64(m, u) : gm_map_delete(m, key);
            if (had != (!nan && r.present[k])) fail("delete result", step);
            if (had) { r.present[k] = 0; r.count--; }
            break;
        }
        case 3: { /* get */
            uint64_t *v = (fast && kind == 0) ? gm_map_get_u64(m, u) : gm_map_get(m, key);
            if ((v != NULL) != (!nan && r.present[k])) fail("get presence", step);
            if (v && *v != r.val[k]) fail("get value", step);
            break;
        }
        case 4: /* clear */
            if (data[i + 1] & 0x80) {
                gm_map_clear(m);
                memset(&r, 0, sizeof r);
            }
            break;
        case 5: { /* open or step an iterator (writes may interleave) */
            if (!it_open) { gm_map_iter_init(&it, m); it_open = 1; }
            const void *kp;
            void *vp;
            if (!gm_map_iter_next(&it, &kp, &vp)) it_open = 0;
            break;
        }
        case 6: { /* full iteration equals the model */
            size_t n = 0, nans = 0;
            gm_map_iter it2;
            const void *kp;
            void *vp;
            gm_map_iter_init(&it2, m);
            while (gm_map_iter_next(&it2, &kp, &vp)) {
                n++;
                if (kind == 2 && isnan(*(const double *)kp)) nans++;
            }
            if (n != r.count + r.nans || nans != r.nans) fail("iteration count", step);
            break;
        }
        default: { /* clone and compare */
            gm_map *c = gm_map_clone(m);
            if (gm_map_len(c) != r.count + r.nans) fail("clone len", step);
            if (gm_map_check(c)) fail(gm_map_check(c), step);
            gm_map_free(c);
        }
        }
        if (gm_map_len(m) != r.count + r.nans) fail("len", step);
        const char *e = gm_map_check(m);
        if (e) fail(e, step);
    }
    if (it_open) gm_map_iter_done(&it);
    gm_map_free(m);
    return 0;
}
