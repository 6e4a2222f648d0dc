/* drv_khash.c - workload W on khash (klib's open addressing, quadratic
 * probing), as Debian ships it in libhts-dev (htslib/khash.h): no Debian
 * package ships klib alone.  u64 keys use khash's own kh_int64 hash; string
 * keys are pointers to 16 bytes in the shared buffer, hashed with khash's
 * X31 string hash run over exactly 16 bytes. */
#include <stdbool.h>
#include <htslib/khash.h>

static inline khint_t x31_16(const char *s)
{
    khint_t h = (khint_t)*s;
    for (int i = 1; i < 16; i++) h = (h << 5) - h + (khint_t)s[i];
    return h;
}
#define str16_eq(a, b) (memcmp((a), (b), 16) == 0)
KHASH_INIT(u64, khint64_t, uint64_t, 1, kh_int64_hash_func, kh_int64_hash_equal)
KHASH_INIT(s16, const char *, uint64_t, 1, x31_16, str16_eq)

#define IMPL_NAME "khash"
typedef khash_t(u64) u64map;
typedef khash_t(s16) strmap;

static u64map *u64_new(void)
{
    u64map *m = kh_init(u64);
    if (m == NULL) { fprintf(stderr, "khash: out of memory\n"); exit(2); }
    return m;
}
static void u64_free(u64map *m) { kh_destroy(u64, m); }
static inline void u64_insert(u64map *m, uint64_t k, uint64_t v)
{
    int ret;
    khint_t it = kh_put(u64, m, k, &ret);
    if (ret < 0) { fprintf(stderr, "khash: out of memory\n"); exit(2); }
    kh_val(m, it) = v;
}
static inline bool u64_find(u64map *m, uint64_t k, uint64_t *v)
{
    khint_t it = kh_get(u64, m, k);
    if (it == kh_end(m)) return false;
    *v = kh_val(m, it);
    return true;
}
static inline void u64_erase(u64map *m, uint64_t k)
{
    khint_t it = kh_get(u64, m, k);
    if (it != kh_end(m)) kh_del(u64, m, it);
}
static inline uint64_t u64_sum(u64map *m, size_t *count)
{
    uint64_t s = 0, v; size_t c = 0;
    kh_foreach_value(m, v, { s += v; c++; });
    *count = c;
    return s;
}
static inline size_t u64_len(u64map *m) { return kh_size(m); }
static inline bool u64_any(u64map *m, uint64_t *k)
{
    for (khint_t i = kh_begin(m); i != kh_end(m); i++)
        if (kh_exist(m, i)) { *k = kh_key(m, i); return true; }
    return false;
}
static inline void u64_clear(u64map *m) { kh_clear(u64, m); }

static strmap *str_new(void)
{
    strmap *m = kh_init(s16);
    if (m == NULL) { fprintf(stderr, "khash: out of memory\n"); exit(2); }
    return m;
}
static void str_free(strmap *m) { kh_destroy(s16, m); }
static inline void str_insert(strmap *m, const char *k, uint64_t v)
{
    int ret;
    khint_t it = kh_put(s16, m, k, &ret);
    if (ret < 0) { fprintf(stderr, "khash: out of memory\n"); exit(2); }
    kh_val(m, it) = v;
}
static inline bool str_find(strmap *m, const char *k, uint64_t *v)
{
    khint_t it = kh_get(s16, m, k);
    if (it == kh_end(m)) return false;
    *v = kh_val(m, it);
    return true;
}
static inline void str_erase(strmap *m, const char *k)
{
    khint_t it = kh_get(s16, m, k);
    if (it != kh_end(m)) kh_del(s16, m, it);
}
static inline uint64_t str_sum(strmap *m, size_t *count)
{
    uint64_t s = 0, v; size_t c = 0;
    kh_foreach_value(m, v, { s += v; c++; });
    *count = c;
    return s;
}
static inline size_t str_len(strmap *m) { return kh_size(m); }

#include "harness.h"
