/* hash.h - the one hash function behind every built-in key type.
 *
 * Bytes are hashed with XXH3 (Debian's libxxhash, used header-only) keyed by
 * the map's 64-bit seed, which comes from getrandom(2) when the map is made
 * and from the per-thread generator (itself seeded by getrandom) when it is
 * drawn again (the map emptied, or was cleared: Go issue 25237).  The seed is
 * never observable through the API, so an attacker cannot precompute keys
 * that collide in a map's buckets (hash flooding, Go issues 9365 and 66841);
 * and every map lays out the same keys differently, so copying one map into
 * another in iteration order cannot cluster.
 *
 * Integer keys (uint32/uint64 and the fast paths) take a cheaper road with
 * the same shape: for 4..8-byte input XXH3 itself computes
 * bijection(key XOR seed-derived word); gomap uses MurmurHash3's public-domain
 * 64-bit finalizer (fmix64) as the bijection over key XOR seed.  Two keys
 * never share a full hash, the layout still depends on the secret seed, and
 * it costs 7 instructions instead of about 25.
 *
 * The fast paths (map_fast.c) and the gm_type hash functions must agree bit
 * for bit, since one map may be used through both: both call these inlines
 * (the classic string fast path calls XXH3's 9..16-byte routine directly for
 * keys of that length, the very routine gm_hash_mem reaches for them;
 * test_map.c:string_fast_path_hashes_every_length_as_generic checks it).
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

/* MurmurHash3's fmix64: a bijective avalanche of 64 bits. */
static inline uint64_t gm_fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t gm_hash_u64v(uint64_t v, uint64_t seed)
{
    return gm_fmix64(v ^ seed);
}

static inline uint64_t gm_hash_u32v(uint32_t v, uint64_t seed)
{
    return gm_fmix64((uint64_t)v ^ seed);
}

#endif
