/* hash.h - the one hash function behind every built-in key type.
 *
 * Bytes are hashed with XXH3 (Debian's libxxhash, used header-only) keyed by
 * a 192-byte secret drawn from getrandom(2) once per process; the map's own
 * 64-bit seed is then mixed in by a bijective finalizer, so each map (and
 * each re-seeding of one map, Go issue 25237) distributes keys over buckets
 * independently.  Neither the secret nor the seed is observable through the
 * API, so an attacker cannot precompute colliding keys (hash flooding, Go
 * issues 9365 and 66841).  Fixed-size keys go through the same code with a
 * compile-time length, which XXH3 turns into a few multiplies.
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

#define GM_HASH_SECRET_SIZE 192
GM_INTERNAL extern unsigned char gm_hash_secret[GM_HASH_SECRET_SIZE];

static inline uint64_t gm_hash_finish(uint64_t h, uint64_t seed)
{
    h ^= seed;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t gm_hash_mem(const void *p, size_t n, uint64_t seed)
{
    return gm_hash_finish(XXH3_64bits_withSecret(p, n, gm_hash_secret,
                                                 GM_HASH_SECRET_SIZE), seed);
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
