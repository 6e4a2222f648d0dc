/* test_map_misuse.c - Go's fatal errors for concurrent misuse.  Each case
 * runs in a forked child and checks the exact message and the abort. */
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "gomap/gomap.h"

/* Re-entrancy makes the races deterministic: a key type whose equal()
 * touches the map runs inside the map's write. */
static gm_map *victim;
static int mode;
static gm_map_iter victim_it;

static uint64_t rhash(const void *v, uint64_t seed) { (void)v; return seed; }
static bool requal(const void *a, const void *b)
{
    (void)a; (void)b;
    uint64_t k = 99, val = 0;
    if (mode == 1) gm_map_put(victim, &k, &val);
    if (mode == 2) (void)gm_map_get(victim, &k);
    if (mode == 3) gm_map_iter_next(&victim_it, NULL, NULL);
    return true;
}
static const gm_type reentrant = { 8, 8, rhash, requal, NULL, 0, "reentrant" };

static void reenter(void *arg)
{
    victim = gm_map_new(&reentrant, &gm_type_u64, 0);
    uint64_t k = 1, v = 1;
    gm_map_put(victim, &k, &v);
    gm_map_iter_init(&victim_it, victim);
    mode = *(int *)arg;
    gm_map_put(victim, &k, &v); /* equal() runs inside this write */
}

TEST(write_inside_write_is_concurrent_map_writes)
{
    int m = 1;
    CHECK(expect_fatal(reenter, &m, "concurrent map writes"));
}

TEST(read_inside_write_is_concurrent_read_and_write)
{
    int m = 2;
    CHECK(expect_fatal(reenter, &m, "concurrent map read and map write"));
}

TEST(iteration_inside_write_is_concurrent_iteration_and_write)
{
    int m = 3;
    CHECK(expect_fatal(reenter, &m, "concurrent map iteration and map write"));
}

/* The real thing: two threads writing one map without a lock. */
static gm_map *shared;
static void *writer(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg << 32;
    for (uint64_t i = 0;; i++) {
        uint64_t k = base | (i & 1023), v = i;
        gm_map_put(shared, &k, &v);
    }
    return NULL;
}

static void race_writers(void *arg)
{
    (void)arg;
    shared = gm_map_new(&gm_type_u64, &gm_type_u64, 4096);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, writer, (void *)1);
    pthread_create(&t2, NULL, writer, (void *)2);
    pthread_join(t1, NULL);
}

TEST(two_threads_writing_are_detected)
{
    CHECK(expect_fatal(race_writers, NULL, "concurrent map writes"));
}

static void *reader(void *arg)
{
    (void)arg;
    for (uint64_t i = 0;; i++) {
        uint64_t k = i & 1023;
        (void)gm_map_get(shared, &k);
    }
    return NULL;
}

static void race_read_write(void *arg)
{
    (void)arg;
    shared = gm_map_new(&gm_type_u64, &gm_type_u64, 4096);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, reader, NULL);
    pthread_create(&t2, NULL, writer, (void *)1);
    pthread_join(t1, NULL);
}

TEST(reader_and_writer_threads_are_detected)
{
    /* Either message is a correct detection of this race. */
    CHECK(expect_abort_with(race_read_write, NULL, "fatal error: concurrent map"));
}
