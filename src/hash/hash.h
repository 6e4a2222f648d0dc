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
 * Integer keys (uint32/uint64 and the fast paths) take a cheaper road:
 * two folded multiplies (a 128-bit product, its two halves XORed or
 * carried on: the mixer of wyhash and rapidhash).  First (key ^ seed ^ P0)
 * times (key ^ P1), then the product's low half ^ P2 times its high half ^
 * seed, folded.  Every bit of the key and of the secret seed reaches every
 * bit of the hash, the low bits (the bucket index) as much as the top ones
 * (tophash, Swiss's h2), and the value is ready about nine cycles after the
 * key, where MurmurHash3's fmix64 (used here before) is a chain of two
 * multiplies and three shift-XORs, about twelve: a lookup's bucket address
 * waits on the hash.  One multiply is not enough: key ^ seed times the key
 * rotated (used for a few hours) clustered for some seeds -- keys i << 24,
 * 100,000 of them in 16,384 buckets, took 2,252 to 3,612 overflow buckets
 * over 200 seeds where fmix64 and this take 2,600 to 2,800 (a simulation of
 * the bucket counts; CI saw 4,069 once,
 * test_map.c:integer_keys_differing_only_in_high_bits_spread_over_buckets);
 * with a constant multiplier alone, keys i << 32 landed on a lattice (6,850).
 * Unlike fmix64 it is not a bijection: two keys may share a full hash,
 * which the map handles like any tophash match (it compares keys).  P0..P2
 * are odd constants drawn from a splitmix64 stream.
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

/* The folded multiply: the 128-bit product of a and b, halves XORed. */
static inline uint64_t gm_fold_mul(uint64_t a, uint64_t b)
{
    __extension__ typedef unsigned __int128 u128;
    u128 p = (u128)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

#define GM_HASH_P0 0x3a34ce6380fc0bc5ull
#define GM_HASH_P1 0x26687a0f5d616de9ull
#define GM_HASH_P2 0xce60f88df2e681b1ull

static inline uint64_t gm_hash_u64v(uint64_t v, uint64_t seed)
{
    __extension__ typedef unsigned __int128 u128;
    u128 p = (u128)(v ^ seed ^ GM_HASH_P0) * (v ^ GM_HASH_P1);
    return gm_fold_mul((uint64_t)p ^ GM_HASH_P2, (uint64_t)(p >> 64) ^ seed);
}

static inline uint64_t gm_hash_u32v(uint32_t v, uint64_t seed)
{
    return gm_hash_u64v(v, seed);
}

#endif
