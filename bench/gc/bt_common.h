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
static void bt_pause_stats(uint64_t *p, size_t n, double *max_ms, double *p99_ms)
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

#define BT_MAX_DEPTH 20
#define BT_MIN_DEPTH 4

/* Runs the workload; make(d) builds a tree, check(t) counts it, drop(t)
 * releases it (a no-op for collected heaps). */
#define BT_RUN(peer, make, check, drop, gcs_expr, pause_fn)                       \
    do {                                                                         \
        int maxd = BT_MAX_DEPTH;                                                 \
        if (getenv("BT_DEPTH")) maxd = atoi(getenv("BT_DEPTH"));                 \
        double t0 = bt_now();                                                    \
        uint64_t total = 0;                                                      \
        node_t *long_lived = make(maxd);                                         \
        for (int d = BT_MIN_DEPTH; d <= maxd; d += 2) {                          \
            long iters = 1L << (maxd - d + BT_MIN_DEPTH);                        \
            uint64_t chk = 0;                                                    \
            for (long i = 0; i < iters; i++) {                                   \
                node_t *t = make(d);                                             \
                chk += check(t);                                                 \
                drop(t);                                                         \
            }                                                                    \
            printf("%ld\t trees of depth %d\t check: %llu\n", iters, d,          \
                   (unsigned long long)chk);                                     \
            total += chk;                                                        \
        }                                                                        \
        uint64_t ll = check(long_lived);                                         \
        printf("long lived tree of depth %d\t check: %llu\n", maxd,             \
               (unsigned long long)ll);                                          \
        total += ll;                                                             \
        drop(long_lived);                                                        \
        double secs = bt_now() - t0;                                             \
        double maxp, p99;                                                        \
        pause_fn(&maxp, &p99);                                                   \
        printf("RESULT %s time_s=%.3f gcs=%llu max_pause_ms=%.3f p99_pause_ms=%.3f " \
               "rss_mb=%.1f check=%llu\n", peer, secs, (unsigned long long)(gcs_expr), \
               maxp, p99, bt_rss_mb(), (unsigned long long)total);               \
    } while (0)

#endif
