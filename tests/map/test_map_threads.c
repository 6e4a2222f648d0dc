/* test_map_threads.c - concurrent readers are legal (Go allows any number of
 * readers with no writer): lookups and iterations from several threads over
 * a stable map give exact results and no false misuse report.  Runs under
 * TSan in CI. */
#include <pthread.h>

#include "check.h"
#include "gomap/gomap.h"

static gm_map *m;
enum { N = 20000, THREADS = 4 };

static void *reader(void *arg)
{
    uintptr_t bad = 0;
    uint64_t s = (uintptr_t)arg;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            uint64_t k = test_rand(&s) % (2 * N);
            uint64_t *v = gm_map_get_u64(m, k);
            if ((k < N) != (v != NULL) || (v && *v != k + 1)) bad++;
        }
        gm_map_iter it;
        const void *kp;
        void *vp;
        size_t n = 0;
        gm_map_iter_init(&it, m);
        while (gm_map_iter_next(&it, &kp, &vp)) {
            if (*(const uint64_t *)vp != *(const uint64_t *)kp + 1) bad++;
            n++;
        }
        if (n != N) bad++;
    }
    return (void *)bad;
}

TEST(concurrent_readers_agree)
{
    m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < N; i++) *(uint64_t *)gm_map_assign_u64(m, i) = i + 1;
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, reader, (void *)(i + 1));
    for (int i = 0; i < THREADS; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        CHECK_EQ_U((uintptr_t)bad, 0);
    }
    /* Iterators opened by readers all finished: growth frees arrays again. */
    for (uint64_t i = N; i < 8 * N; i++) *(uint64_t *)gm_map_assign_u64(m, i) = i + 1;
    for (int i = 0; i < 64; i++) *(uint64_t *)gm_map_assign_u64(m, 1) = 2;
    gm_map_stats st;
    gm_map_stats_get(m, &st);
    CHECK_EQ_U(st.retired_pending, 0);
    gm_map_free(m);
}
