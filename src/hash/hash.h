/* hash.h - the one hash function behind every built-in key type.
 *
 * Bytes are hashed with XXH3 (Debian's libxxhash, used header-only) keyed by
 * the map's 64-bit seed, which comes from getrandom(2) when the map is made
 * and from the per-thread generator (itself seeded by getrandom) when it is
 * drawn again (the map emptied, or was cleared: Go issue 25237).  The seed is
 * never observable through the API, so an attacker cannot precompute keys
 * that collide in a map's buckets (hash flooding, Go issues 9365 and 66841);
 * and every map lays out the same keys differently, so copying one map into
 * another in iteration order cannot cluster.  For 4..8-byte keys XXH3 is a
 * bijection of the key keyed by the seed (no two keys share a full hash), a
 * dozen instructions once inlined with a constant length.
 *
 * The fast paths (map_fast.c) and the gm_type hash functions must agree bit
 * for bit, since one map may be used through both: both call these inlines.
 */
#ifndef GOMAP_HASH_H
#define GOMAP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/internal.h"

static inline uint64_t gm_hash_mem(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

/* A final avalanche for values that are random already (NaN hashes). */
static inline uint64_t gm_hash_finish(uint64_t h, uint64_t seed)
{
    h ^= seed;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t gm_hash_u64v(uint64_t v, uint64_t seed)
{
    return gm_hash_mem(&v, sizeof v, seed);
}

static inline uint64_t gm_hash_u32v(uint32_t v, uint64_t seed)
{
    return gm_hash_mem(&v, sizeof v, seed);
}

#endif
