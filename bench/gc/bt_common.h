/* bt_common.h - binary-trees driver shared by the C peers.
 *
 * The workload (max depth 20): a long-lived tree of depth 20, then for
 * d = 4, 6, ..., 20: 2^(20 - d + 4) trees of depth d, each built, checked
 * (node count) and dropped.  A tree of depth d has 2^(d+1) - 1 nodes.
 * Each peer defines node_t, make_tree(d) and drop_tree(t), and pause
 * accounting; the driver prints the results in one RESULT line:
 *   RESULT <peer> time_s=.. gcs=.. max_pause_ms=.. p99_pause_ms=.. rss_mb=.. check=..
 */
#ifndef BT_COMMON_H
#define BT_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double bt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Max and p99 of n pause samples (ns), in ms. */
__attribute__((unused)) static void bt_pause_stats(uint64_t *p, size_t n, double *max_ms, double *p99_ms)
{
    *max_ms = *p99_ms = 0;
    if (!n) return;
    qsort(p, n, sizeof *p, bt_cmp_u64);
    *max_ms = p[n - 1] / 1e6;
    size_t i = (size_t)((double)n * 0.99);
    if (i >= n) i = n - 1;
    *p99_ms = p[i] / 1e6;
}

static double bt_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* user + system CPU seconds of the whole process, every thread (on a loaded
 * machine a steadier figure than the wall time) */
static double bt_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

#ifndef BT_HELPERS_ONLY /* mh_common.h wants the helpers above, not the workload */
#define BT_MAX_DEPTH 20
#define BT_MIN_DEPTH 4

/* Every peer defines these (and node_t); the hooks below default to nothing. */
typedef struct node_t node_t;
static node_t *make(int d);
static uint64_t check(const node_t *t);
static void drop(node_t *t);
#ifndef BT_EXTRA_FIELDS
#define BT_EXTRA_FIELDS()      /* more " name=value" fields for the RESULT line */
#endif
#ifndef BT_THREAD_ENTER
#define BT_THREAD_ENTER()      /* a worker thread starts (gm_thread_attach) */
#define BT_THREAD_EXIT()
#define BT_WAIT_BEGIN()        /* the main thread waits for workers (gm_blocking_begin) */
#define BT_WAIT_END()
#endif

/* Environment:
 *   BT_DEPTH=n        max depth (default 20)
 *   BT_THREADS=n      mutator threads sharing each depth's trees (default 2)
 *   BT_LIVE_DEPTH=n   one more long-lived tree of depth n, built first and
 *                     kept to the end (a large live heap: 22 ~ 128 MiB of
 *                     16-byte nodes, 25 ~ 1 GiB) */
typedef struct bt_job { int d; long iters; uint64_t chk; } bt_job;

#include <pthread.h>
static void *bt_worker(void *arg)
{
    bt_job *j = arg;
    BT_THREAD_ENTER();
    for (long i = 0; i < j->iters; i++) {
        node_t *t = make(j->d);
        j->chk += check(t);
        drop(t);
    }
    BT_THREAD_EXIT();
    return NULL;
}

static uint64_t bt_depth_round(int d, long iters, int nthreads)
{
    bt_job jobs[16];
    pthread_t th[16];
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 16) nthreads = 16;
    for (int k = 0; k < nthreads; k++) {
        jobs[k].d = d;
        jobs[k].iters = iters / nthreads + (k < iters % nthreads);
        jobs[k].chk = 0;
    }
    if (nthreads == 1) {
        bt_worker(&jobs[0]);
        return jobs[0].chk;
    }
    for (int k = 0; k < nthreads; k++)
        if (pthread_create(&th[k], NULL, bt_worker, &jobs[k]) != 0) abort();
    BT_WAIT_BEGIN();
    for (int k = 0; k < nthreads; k++) pthread_join(th[k], NULL);
    BT_WAIT_END();
    uint64_t c = 0;
    for (int k = 0; k < nthreads; k++) c += jobs[k].chk;
    return c;
}

/* Runs the workload and prints the RESULT line; gc_cpu is the fraction of
 * the processors' time spent collecting (0 where the peer cannot tell). */
#define BT_RUN(peer, make_, check_, drop_, gcs_expr, pause_fn, gc_cpu_expr)           \
    do {                                                                         \
        int maxd = BT_MAX_DEPTH;                                                 \
        if (getenv("BT_DEPTH")) maxd = atoi(getenv("BT_DEPTH"));                 \
        int nth = getenv("BT_THREADS") ? atoi(getenv("BT_THREADS")) : 2;         \
        int lived = getenv("BT_LIVE_DEPTH") ? atoi(getenv("BT_LIVE_DEPTH")) : 0; \
        double t0 = bt_now();                                                    \
        uint64_t total = 0;                                                      \
        node_t *volatile ballast = lived > 0 ? make_(lived) : NULL;              \
        node_t *long_lived = make_(maxd);                                        \
        for (int d = BT_MIN_DEPTH; d <= maxd; d += 2) {                          \
            long iters = 1L << (maxd - d + BT_MIN_DEPTH);                        \
            uint64_t chk = bt_depth_round(d, iters, nth);                        \
            printf("%ld\t trees of depth %d\t check: %llu\n", iters, d,          \
                   (unsigned long long)chk);                                     \
            total += chk;                                                        \
        }                                                                        \
        uint64_t ll = check_(long_lived);                                        \
        printf("long lived tree of depth %d\t check: %llu\n", maxd,             \
               (unsigned long long)ll);                                          \
        total += ll;                                                             \
        if (ballast) total += check_(ballast);                                   \
        drop_(long_lived);                                                       \
        if (ballast) drop_(ballast);                                             \
        double secs = bt_now() - t0;                                             \
        double maxp, p99;                                                        \
        pause_fn(&maxp, &p99);                                                   \
        printf("RESULT %s time_s=%.3f gcs=%llu max_pause_ms=%.3f p99_pause_ms=%.3f " \
               "gc_cpu=%.3f rss_mb=%.1f cpu_s=%.3f check=%llu", peer, secs,                 \
               (unsigned long long)(gcs_expr), maxp, p99, (double)(gc_cpu_expr), \
               bt_rss_mb(), bt_cpu_s(), (unsigned long long)total);                          \
        BT_EXTRA_FIELDS();                                                       \
        printf("\n");                                                            \
    } while (0)

#endif /* BT_HELPERS_ONLY */

#endif
