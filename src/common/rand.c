/* rand.c - seeds from the kernel, and a fast per-thread generator.
 *
 * Map hash seeds come from getrandom(2) so
 * they cannot be guessed from outside (hash flooding, Go issues 9365/66841).
 * Iteration start points and NaN hashes only need to differ, not to be
 * secret: they use a per-thread wyrand stream seeded once from the kernel. */
#include "common/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

/* Kernel randomness, fetched 32 seeds at a time per thread: a map's seed is
 * still straight from getrandom(2), but creating a map no longer costs a
 * system call (it did: about 600 ns of the 660 ns that making and freeing a
 * small map took). */
#define SEED_POOL 32
static _Thread_local uint64_t seed_pool[SEED_POOL];
static _Thread_local unsigned seed_left;

uint64_t gm_rand_seed64(void)
{
    if (seed_left == 0) {
        size_t got = 0;
        while (got < sizeof seed_pool) {
            ssize_t n = getrandom((char *)seed_pool + got, sizeof seed_pool - got, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                gm_fatal("gomap: getrandom failed; cannot seed map hashes");
            }
            got += (size_t)n;
        }
        seed_left = SEED_POOL;
    }
    uint64_t v = seed_pool[--seed_left];
    seed_pool[seed_left] = 0; /* a used seed does not linger */
    return v;
}

static _Thread_local uint64_t rand_state;
static _Thread_local int rand_seeded;

/* A forked child must not repeat its parent's seeds or stream. */
static void rand_after_fork_child(void)
{
    seed_left = 0;
    rand_seeded = 0;
}

__attribute__((constructor)) static void rand_init(void)
{
    pthread_atfork(NULL, NULL, rand_after_fork_child);
}

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
