/* types.c - the built-in type descriptors (Go's compiler-made types).
 *
 * Floats follow Go: +0 and -0 are one key (hashed alike, compared equal, and
 * GM_TYPE_KEY_UPDATE makes assign store the newer bits); NaN is unequal to
 * everything including itself (GM_TYPE_IRREFLEXIVE), and hashes to a random
 * value each time, so NaN keys spread over buckets and every insert adds one. */
#include <math.h>
#include <string.h>

#include "gomap/type.h"
#include "hash/hash.h"

static const uint8_t ptrmask_word0 = 1;

#define INT_TYPE(name, ctype, label)                                           \
    static uint64_t name##_hash(const void *v, uint64_t seed)                  \
    { return gm_hash_mem(v, sizeof(ctype), seed); }                            \
    static bool name##_equal(const void *a, const void *b)                     \
    { ctype x, y; memcpy(&x, a, sizeof x); memcpy(&y, b, sizeof y); return x == y; } \
    const gm_type gm_type_##name = { sizeof(ctype), _Alignof(ctype),           \
        name##_hash, name##_equal, NULL, 0, label }

INT_TYPE(bool, bool, "bool");
INT_TYPE(i8, int8_t, "int8");
INT_TYPE(u8, uint8_t, "uint8");
INT_TYPE(i16, int16_t, "int16");
INT_TYPE(u16, uint16_t, "uint16");
INT_TYPE(i32, int32_t, "int32");
INT_TYPE(i64, int64_t, "int64");

/* u32 and u64 share their hash with the fast paths (hash.h). */
static uint64_t u32_hash(const void *v, uint64_t seed)
{
    uint32_t x;
    memcpy(&x, v, sizeof x);
    return gm_hash_u32v(x, seed);
}
static bool u32_equal(const void *a, const void *b)
{
    return *(const uint32_t *)a == *(const uint32_t *)b;
}
const gm_type gm_type_u32 = { 4, 4, u32_hash, u32_equal, NULL, 0, "uint32" };

static uint64_t u64_hash(const void *v, uint64_t seed)
{
    uint64_t x;
    memcpy(&x, v, sizeof x);
    return gm_hash_u64v(x, seed);
}
static bool u64_equal(const void *a, const void *b)
{
    return *(const uint64_t *)a == *(const uint64_t *)b;
}
const gm_type gm_type_u64 = { 8, 8, u64_hash, u64_equal, NULL, 0, "uint64" };

static uint64_t nan_hash(uint64_t seed)
{
    return gm_hash_finish(gm_rand64(), seed);
}

/* Go's float keys: NaN hashes at random, -0 hashes as +0, == compares. */
#define FLOAT_TYPE(name, ctype, label)                                         \
    static uint64_t name##_hash(const void *v, uint64_t seed)                  \
    {                                                                          \
        ctype f;                                                               \
        memcpy(&f, v, sizeof f);                                               \
        if (f != f) return nan_hash(seed);                                     \
        if (f == 0) f = 0;                                                     \
        return gm_hash_mem(&f, sizeof f, seed);                                \
    }                                                                          \
    static bool name##_equal(const void *a, const void *b)                     \
    { ctype x, y; memcpy(&x, a, sizeof x); memcpy(&y, b, sizeof y); return x == y; } \
    const gm_type gm_type_##name = { sizeof(ctype), _Alignof(ctype), name##_hash, \
        name##_equal, NULL, GM_TYPE_IRREFLEXIVE | GM_TYPE_KEY_UPDATE, label }

FLOAT_TYPE(f32, float, "float32");
FLOAT_TYPE(f64, double, "float64");

static uint64_t ptr_hash(const void *v, uint64_t seed)
{
    return gm_hash_mem(v, sizeof(void *), seed);
}
static bool ptr_equal(const void *a, const void *b)
{
    return *(void *const *)a == *(void *const *)b;
}
const gm_type gm_type_ptr = { sizeof(void *), _Alignof(void *), ptr_hash,
    ptr_equal, &ptrmask_word0, 0, "unsafe.Pointer" };

static uint64_t str_hash(const void *v, uint64_t seed)
{
    const gm_str *s = v;
    return gm_hash_mem(s->ptr, s->len, seed);
}
static bool str_equal(const void *a, const void *b)
{
    const gm_str *x = a, *y = b;
    return x->len == y->len && (x->ptr == y->ptr || x->len == 0 || memcmp(x->ptr, y->ptr, x->len) == 0);
}
const gm_type gm_type_str = { sizeof(gm_str), _Alignof(gm_str), str_hash,
    str_equal, &ptrmask_word0, 0, "string" };
const gm_type gm_type_str_owned = { sizeof(gm_str), _Alignof(gm_str), str_hash,
    str_equal, &ptrmask_word0, GM_TYPE_OWNED_STR, "string(owned)" };

gm_str gm_str_from_cstr(const char *s)
{
    gm_str r = { s, s ? strlen(s) : 0 };
    return r;
}

bool gm_mem_equal(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

const char *gm_type_validate(const gm_type *t, bool as_key)
{
    if (t == NULL) return "type is NULL";
    if (t->align == 0 || (t->align & (t->align - 1)) != 0)
        return "align must be a power of two";
    if (t->align > 4096) return "align above 4096 is not supported";
    if (t->size % t->align != 0) return "size must be a multiple of align";
    if (as_key && (t->hash == NULL || t->equal == NULL))
        return "a key type needs hash and equal functions";
    if ((t->flags & GM_TYPE_OWNED_STR) && t->size != sizeof(gm_str))
        return "GM_TYPE_OWNED_STR needs a gm_str-sized type";
    return NULL;
}
