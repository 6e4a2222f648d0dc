/* hash.c - the exported hash helpers (see hash.h). */
#include "hash/hash.h"

#include "gomap/type.h"

uint64_t gm_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    return gm_hash_mem(p, n, seed);
}

uint64_t gm_hash_mix(uint64_t h, uint64_t field_hash)
{
    /* Order-sensitive: (a, b) and (b, a) hash differently. */
    return gm_hash_finish(h * 0x9e3779b97f4a7c15ull + field_hash, 0x2545f4914f6cdd1dull);
}
