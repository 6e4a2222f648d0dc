/* hash.c - the per-process hash secret (see hash.h). */
#include "hash/hash.h"

#include <sys/random.h>

#include "gomap/type.h"

unsigned char gm_hash_secret[GM_HASH_SECRET_SIZE];

/* Filled before main() runs, so the hash functions never test a flag. */
__attribute__((constructor)) static void hash_secret_init(void)
{
    for (size_t i = 0; i < GM_HASH_SECRET_SIZE; i += 8) {
        uint64_t r = gm_rand_seed64();
        memcpy(gm_hash_secret + i, &r, 8);
    }
}

uint64_t gm_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    return gm_hash_mem(p, n, seed);
}

uint64_t gm_hash_mix(uint64_t h, uint64_t field_hash)
{
    /* Order-sensitive: (a, b) and (b, a) hash differently. */
    return gm_hash_finish(h * 0x9e3779b97f4a7c15ull + field_hash, 0x2545f4914f6cdd1dull);
}
