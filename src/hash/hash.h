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
 * one folded multiply (the 128-bit product, its two halves XORed: the mixer
 * of wyhash and rapidhash) of key XOR seed by the key rotated 32 bits XOR a
 * fixed odd constant.  Every bit of the key reaches the low bits (the
 * bucket index) and the top byte (tophash); the layout depends on the
 * secret seed; and the value is ready about six cycles after the key,
 * where MurmurHash3's fmix64 (used here before) is a chain of two
 * multiplies and three shift-XORs, about twelve: a lookup's bucket address
 * waits on the hash, so those cycles are a lookup's latency.  The key on
 * both sides matters: with a constant multiplier alone, keys that differ
 * only in bits 32..63 land on a lattice of buckets (keys i << 32: 6,850
 * overflow buckets at 100,000 keys instead of about 2,700;
 * test_map.c:integer_keys_differing_only_in_high_bits_spread_over_buckets).
 * Unlike fmix64 it is not a bijection: two keys may share a full hash,
 * which the map handles like any tophash match (it compares keys).
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

#define GM_HASH_INT_MUL 0x9e3779b97f4a7c15ull /* odd: 2^64 / golden ratio */

static inline uint64_t gm_hash_u64v(uint64_t v, uint64_t seed)
{
    return gm_fold_mul(v ^ seed, ((v << 32) | (v >> 32)) ^ GM_HASH_INT_MUL);
}

static inline uint64_t gm_hash_u32v(uint32_t v, uint64_t seed)
{
    return gm_hash_u64v(v, seed);
}

#endif
