/* gomap/type.h - type descriptors: what the map and the GC know of a type.
 *
 * A gm_type says how big a value is, how to hash and compare it when it is a
 * map key, and which of its words are GC pointers.  Go's compiler makes these
 * for every type; a C program declares them, usually once, as constants.
 */
#ifndef GOMAP_TYPE_H
#define GOMAP_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gomap/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* flags */
#define GM_TYPE_IRREFLEXIVE 0x1u  /* a value may be unequal to itself (NaN) */
#define GM_TYPE_KEY_UPDATE  0x2u  /* equal keys can differ in bits (+0/-0): assign rewrites the key */
#define GM_TYPE_OWNED_STR   0x4u  /* gm_str key whose bytes a malloc map copies and frees */

/* The visitor a trace function reports decoded pointers to (interior
 * pointers and non-heap addresses are fine: the collector filters them). */
typedef void gm_visit_fn(void *ptr, void *ctx);

typedef struct gm_type {
    size_t size;        /* bytes; 0 is legal (Go's struct{}) */
    size_t align;       /* power of two; size is a multiple of it */
    uint64_t (*hash)(const void *v, uint64_t seed);   /* NULL: not a key type */
    bool (*equal)(const void *a, const void *b);
    const uint8_t *ptrmask; /* bit i set: pointer-sized word i holds a GC pointer; NULL: none */
    uint32_t flags;     /* GM_TYPE_* */
    const char *name;
    /* Optional (a trailing field: positional initializers that stop at name
     * leave it NULL).  When set, the collector does not read ptrmask for
     * objects of this type: it calls trace(obj, visit, ctx) for each element
     * (gm_new: one; gm_new_array: each), and trace calls visit(p, ctx) for
     * every GC pointer it decodes from the element (a tagged or NaN-boxed
     * word, a high-bit-tagged pointer...).  It runs on collector threads,
     * concurrently with mutators, possibly on a zeroed or half-written
     * element: it must only read the element, never allocate, lock or call
     * into gomap except visit.  Stores into such slots use gm_barrier. */
    void (*trace)(const void *obj, gm_visit_fn *visit, void *ctx);
} gm_type;

/* A string: bytes and a length, not NUL-terminated (Go's string header). */
typedef struct gm_str { const char *ptr; size_t len; } gm_str;

/* Build a gm_str from a C string literal or a NUL-terminated string. */
#define GM_STR(s) ((gm_str){ (s), sizeof(s) - 1 })
GM_API gm_str gm_str_from_cstr(const char *s);

GM_API extern const gm_type gm_type_bool, gm_type_i8, gm_type_u8, gm_type_i16,
    gm_type_u16, gm_type_i32, gm_type_u32, gm_type_i64, gm_type_u64,
    gm_type_f32, gm_type_f64, gm_type_ptr, gm_type_str;

/* gm_type_str_owned: a gm_str key whose bytes a malloc map copies on insert
 * and frees on delete, clear and free; the caller's buffer may be reused as
 * soon as the call returns.  Looked up with an ordinary gm_str.  (On a GC map
 * the bytes are copied into the GC heap and collected like any object.) */
GM_API extern const gm_type gm_type_str_owned;

/* The hash every built-in type uses: keyed by the seed and by a random
 * per-process secret, so hash values cannot be predicted from outside
 * (hash flooding).  Use it to write hash functions for your own types. */
GM_API uint64_t gm_hash_bytes(const void *p, size_t n, uint64_t seed);
/* Combine a field's hash into a running hash (for struct keys). */
GM_API uint64_t gm_hash_mix(uint64_t h, uint64_t field_hash);

/* GM_TYPE_DEFINE_MEM(name, ctype): a key type compared and hashed as raw
 * bytes, for structs without padding or floats, and fixed byte arrays.
 *   typedef struct { uint32_t a, b; } pair;
 *   GM_TYPE_DEFINE_MEM(pair_type, pair)   ->  const gm_type pair_type        */
#define GM_TYPE_DEFINE_MEM(name, ctype)                                        \
    static GM_MAYBE_UNUSED uint64_t name##_hashfn(const void *v, uint64_t seed)                \
    { return gm_hash_bytes(v, sizeof(ctype), seed); }                          \
    static GM_MAYBE_UNUSED bool name##_equalfn(const void *a, const void *b)                   \
    { return gm_mem_equal(a, b, sizeof(ctype)); }                              \
    static const gm_type name = { sizeof(ctype), _Alignof(ctype),              \
        name##_hashfn, name##_equalfn, NULL, 0, #ctype, NULL }

/* GM_TYPE_DEFINE_VALUE(name, ctype): a pointer-free value type (not a key). */
#define GM_TYPE_DEFINE_VALUE(name, ctype)                                      \
    static const gm_type name = { sizeof(ctype), _Alignof(ctype),              \
        NULL, NULL, NULL, 0, #ctype, NULL }

GM_API bool gm_mem_equal(const void *a, const void *b, size_t n);

/* Checks a user-made descriptor: returns NULL if usable, else why not. */
GM_API const char *gm_type_validate(const gm_type *t, bool as_key);

#ifdef __cplusplus
}
#endif
#endif
