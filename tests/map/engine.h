/* engine.h - the map suite runs once per engine (tests/map/CMakeLists.txt
 * sets GMDEBUG=mapengine=classic|swiss).  A few cases test structures only
 * the classic engine has -- buckets, overflow chains, incremental
 * evacuation, same-size grow -- and skip cleanly under the Swiss engine with
 * CLASSIC_ONLY(why); the Swiss engine's counterparts are in
 * test_map_swiss.c. */
#ifndef GOMAP_TEST_MAP_ENGINE_H
#define GOMAP_TEST_MAP_ENGINE_H

#include <stdbool.h>
#include <stdio.h>

#include "gomap/gomap.h"

/* The engine gm_map_new and gm_map_new_gc use in this run. */
static inline bool default_engine_is_swiss(void)
{
    gm_map *m = gm_map_new(&gm_type_u8, &gm_type_u8, 0);
    bool s = gm_map_engine_of(m) == GM_MAP_SWISS;
    gm_map_free(m);
    return s;
}

#define CLASSIC_ONLY(why)                                                     \
    do {                                                                      \
        if (default_engine_is_swiss()) {                                      \
            printf("skipped under the Swiss engine: %s\n", why);              \
            return;                                                           \
        }                                                                     \
    } while (0)

/* A classic map is growing (an old bucket array is being evacuated). */
static inline bool map_growing(const gm_map *m)
{
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    return st.growing;
}

/* Buckets (classic) or groups (Swiss) held. */
static inline size_t map_nbuckets(const gm_map *m)
{
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    return st.nbuckets;
}

#endif
