/* map_fast.c - Go's fast paths (mapaccess2_fast32/64/faststr, ...): the same
 * loops as the generic ones (map_impl.h) with hashing and key comparison
 * inlined for uint32, uint64 and string keys. */
#include "map/map_impl.h"

extern const gm_type gm_type_u32, gm_type_u64, gm_type_str, gm_type_str_owned;

static void require_kind(const gm_map *m, int kind, const char *fn)
{
    if (m == NULL) return;
    const gm_type *t = m->kt;
    bool ok = (kind == KK_U32 && t == &gm_type_u32) || (kind == KK_U64 && t == &gm_type_u64) ||
              (kind == KK_STR && (t == &gm_type_str || t == &gm_type_str_owned));
    if (!ok) gm_fatalf("%s: map key type is %s", fn, t->name ? t->name : "?");
}

#define CHECK_KIND(m, kind) \
    do { if (GM_UNLIKELY((m) && !kind_ok((m), (kind)))) require_kind((m), (kind), __func__); } while (0)

static inline bool kind_ok(const gm_map *m, int kind) { return m->kind == kind; }

void *gm_map_get_u32(const gm_map *m, uint32_t key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_get_u32(m, key);
    CHECK_KIND(m, KK_U32);
    uint8_t *e;
    return access_impl(m, KK_U32, &key, &e) ? e : NULL;
}

void *gm_map_assign_u32(gm_map *m, uint32_t key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_assign_u32(m, key);
    CHECK_KIND(m, KK_U32);
    return assign_entry(m, KK_U32, &key);
}

bool gm_map_delete_u32(gm_map *m, uint32_t key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_delete_u32(m, key);
    CHECK_KIND(m, KK_U32);
    return delete_entry(m, KK_U32, &key);
}

void *gm_map_get_u64(const gm_map *m, uint64_t key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_get_u64(m, key);
    CHECK_KIND(m, KK_U64);
    uint8_t *e;
    return access_impl(m, KK_U64, &key, &e) ? e : NULL;
}

void *gm_map_assign_u64(gm_map *m, uint64_t key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_assign_u64(m, key);
    CHECK_KIND(m, KK_U64);
    return assign_entry(m, KK_U64, &key);
}

bool gm_map_delete_u64(gm_map *m, uint64_t key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_delete_u64(m, key);
    CHECK_KIND(m, KK_U64);
    return delete_entry(m, KK_U64, &key);
}

void *gm_map_get_str(const gm_map *m, const char *key, size_t len)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_get_str(m, key, len);
    CHECK_KIND(m, KK_STR);
    gm_str s = { key, len };
    uint8_t *e;
    return access_impl(m, KK_STR, &s, &e) ? e : NULL;
}

void *gm_map_assign_str(gm_map *m, const char *key, size_t len)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_assign_str(m, key, len);
    CHECK_KIND(m, KK_STR);
    gm_str s = { key, len };
    return assign_entry(m, KK_STR, &s);
}

bool gm_map_delete_str(gm_map *m, const char *key, size_t len)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_delete_str(m, key, len);
    CHECK_KIND(m, KK_STR);
    gm_str s = { key, len };
    return delete_entry(m, KK_STR, &s);
}
