/* rand.c - seeds from the kernel, and a fast per-thread generator.
 *
 * Map hash seeds come from getrandom(2) so
 * they cannot be guessed from outside (hash flooding, Go issues 9365/66841).
 * Iteration start points and NaN hashes only need to differ, not to be
 * secret: they use a per-thread wyrand stream seeded once from the kernel. */
#include "common/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

uint64_t gm_rand_seed64(void)
{
    uint64_t v;
    size_t got = 0;
    while (got < sizeof v) {
        ssize_t n = getrandom((char *)&v + got, sizeof v - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            gm_fatal("gomap: getrandom failed; cannot seed map hashes");
        }
        got += (size_t)n;
    }
    return v;
}

static _Thread_local uint64_t rand_state;
static _Thread_local int rand_seeded;

uint64_t gm_rand64(void)
{
    if (GM_UNLIKELY(!rand_seeded)) {
        rand_state = gm_rand_seed64();
        rand_seeded = 1;
    }
    /* wyrand: a 64-bit add and one 128-bit multiply-fold. */
    rand_state += 0xa0761d6478bd642full;
    __uint128_t t = (__uint128_t)rand_state * (rand_state ^ 0xe7037ed1a0b428dbull);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}
