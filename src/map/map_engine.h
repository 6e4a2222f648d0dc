/* map_engine.h - the two map engines behind one API.
 *
 * struct gm_map is the classic engine's header (map_internal.h); a Swiss map
 * is a struct sw_map (swiss_internal.h).  Both start with the same fields
 * -- count, flags, and the engine tag at byte GM_MAP_ENGINE_OFFSET, which the
 * classic engine leaves 0 -- so that every public entry point can tell them
 * apart with one byte compare and hand Swiss maps to the gm_sw_* functions
 * below.  The layout agreement is checked by static assertions in swiss.c. */
#ifndef GOMAP_MAP_ENGINE_H
#define GOMAP_MAP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/internal.h"
#include "gomap/map.h"

#define GM_MAP_ENGINE_OFFSET 9  /* sizeof(size_t) + the flags byte */
#define GM_ENGINE_TAG_CLASSIC 0
#define GM_ENGINE_TAG_SWISS 1

static inline bool gm_map_is_swiss(const gm_map *m)
{
    return m != NULL && ((const uint8_t *)(const void *)m)[GM_MAP_ENGINE_OFFSET] == GM_ENGINE_TAG_SWISS;
}

/* The engine gm_map_new / gm_map_new_gc use: GMDEBUG=mapengine=..., else the
 * built-in default.  Never GM_MAP_ENGINE_DEFAULT. */
GM_INTERNAL gm_map_engine gm_map_default_engine(void);
/* Both constructors' type checks (map.c): false with a message and EINVAL. */
GM_INTERNAL bool gm_map_types_ok(const char *fn, const gm_type *key, const gm_type *val, bool gc);
/* The classic engine's constructor (map.c). */
GM_INTERNAL gm_map *gm_classic_new(const gm_type *key, const gm_type *val, size_t hint, bool gc);

/* The Swiss engine (swiss.c, swiss_iter.c, swiss_check.c). */
GM_INTERNAL gm_map *gm_sw_new(const gm_type *key, const gm_type *val, size_t hint, bool gc);
GM_INTERNAL void gm_sw_free(gm_map *m);
GM_INTERNAL const gm_type *gm_sw_key_type(const gm_map *m);
GM_INTERNAL const gm_type *gm_sw_val_type(const gm_map *m);
GM_INTERNAL void *gm_sw_get(const gm_map *m, const void *key);
GM_INTERNAL const void *gm_sw_get_or_zero(const gm_map *m, const void *key);
GM_INTERNAL void *gm_sw_assign(gm_map *m, const void *key);
GM_INTERNAL void gm_sw_put(gm_map *m, const void *key, const void *val);
GM_INTERNAL bool gm_sw_delete(gm_map *m, const void *key);
GM_INTERNAL void gm_sw_clear(gm_map *m);
GM_INTERNAL gm_map *gm_sw_clone(const gm_map *m);
GM_INTERNAL void gm_sw_iter_init(gm_map_iter *it, gm_map *m);
GM_INTERNAL bool gm_sw_iter_next(gm_map_iter *it, const void **key, void **val);
GM_INTERNAL void gm_sw_iter_done(gm_map_iter *it);
GM_INTERNAL void gm_sw_stats_get(const gm_map *m, gm_map_stats *out);
GM_INTERNAL const char *gm_sw_check(const gm_map *m);
GM_INTERNAL void *gm_sw_get_u32(const gm_map *m, uint32_t key);
GM_INTERNAL void *gm_sw_assign_u32(gm_map *m, uint32_t key);
GM_INTERNAL bool gm_sw_delete_u32(gm_map *m, uint32_t key);
GM_INTERNAL void *gm_sw_get_u64(const gm_map *m, uint64_t key);
GM_INTERNAL void *gm_sw_assign_u64(gm_map *m, uint64_t key);
GM_INTERNAL bool gm_sw_delete_u64(gm_map *m, uint64_t key);
GM_INTERNAL void *gm_sw_get_str(const gm_map *m, const char *key, size_t len);
GM_INTERNAL void *gm_sw_assign_str(gm_map *m, const char *key, size_t len);
GM_INTERNAL bool gm_sw_delete_str(gm_map *m, const char *key, size_t len);

#endif
