/* sh_common.h - two more GC benchmark shapes, shared by the C peers
 * (sh_gomap.c, sh_boehm.c; sh_go.go is the same in Go).  Written here from
 * the published descriptions of the classic GCBench and of Whippet's
 * mt-gcbench and quads; no code of theirs.
 *
 * SHAPE=mtgcbench (default): each of SH_THREADS mutator threads (default 1)
 *   builds a stretch tree of depth SH_DEPTH+2 and drops it, keeps a
 *   long-lived binary tree of depth SH_DEPTH (default 16) and a pointer-free
 *   array of 500,000 doubles, then SH_ROUNDS times (default 4), for
 *   d = 4, 6, ..., SH_DEPTH, builds 2 * nodes(SH_DEPTH + 2) / nodes(d) trees
 *   of depth d twice (GCBench's counts): top down (a node
 *   is allocated, stored into its parent, then filled: stores into older
 *   objects, the write barrier's case) and bottom up (children first).
 *   Nodes are 24 bytes: two pointers and two ints.
 * SHAPE=quads: one long-lived quad tree of depth SH_QDEPTH (default 10:
 *   1.4 M nodes of 4 pointers), then rounds that each build and drop a
 *   depth-3 quad tree (85 nodes) until SH_QFACTOR (default 20) times the
 *   long-lived tree's nodes were allocated; every 1000th round walks the
 *   long-lived tree.
 *
 * Each peer defines the node types and these hooks, then calls SH_MAIN:
 *   bnode *bnew(void)                      zeroed binary node
 *   void   bset(bnode **slot, bnode *v)    pointer store (barriered where needed)
 *   qnode *qnew(void)                      zeroed quad node
 *   void   qset(qnode **slot, qnode *v)
 *   double *dnew(size_t n)                 pointer-free array
 *   SH_THREAD_ENTER/EXIT, SH_WAIT_BEGIN/END as in bt_common.h
 *   SH_EXTRA_FIELDS() (optional) prints more " name=value" fields
 * The RESULT line: RESULT <peer> time_s= gcs= max_pause_ms= p99_pause_ms=
 *   gc_cpu= rss_mb= cpu_s= check=  (check: nodes counted; equal for every peer;
 *   cpu_s: user + system CPU seconds of the process). */
#ifndef SH_COMMON_H
#define SH_COMMON_H

#define BT_HELPERS_ONLY
#include "bt_common.h"

#include <pthread.h>
#include <string.h>

typedef struct bnode { struct bnode *left, *right; int i, j; } bnode;
typedef struct qnode { struct qnode *kid[4]; } qnode;

static bnode *bnew(void);
static void bset(bnode **slot, bnode *v);
static qnode *qnew(void);
static void qset(qnode **slot, qnode *v);
static double *dnew(size_t n);

#ifndef SH_EXTRA_FIELDS
#define SH_EXTRA_FIELDS()
#endif

static int sh_env(const char *name, int dflt)
{
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

static long sh_nodes(int d) { return (1L << (d + 1)) - 1; }

static void sh_populate(int d, bnode *n)
{
    if (d <= 0) return;
    bset(&n->left, bnew());
    bset(&n->right, bnew());
    sh_populate(d - 1, n->left);
    sh_populate(d - 1, n->right);
}

static bnode *sh_make(int d)
{
    bnode *n = bnew();
    if (d > 0) {
        bnode *l = sh_make(d - 1);
        bset(&n->left, l);
        bnode *r = sh_make(d - 1);
        bset(&n->right, r);
    }
    return n;
}

static long sh_count(const bnode *n) { return n ? 1 + sh_count(n->left) + sh_count(n->right) : 0; }

typedef struct sh_job { long check; int own_thread; } sh_job;

static void sh_mtgcbench(long *check)
{
    int maxd = sh_env("SH_DEPTH", 16);
    bnode *stretch = sh_make(maxd + 2);
    *check += sh_count(stretch);
    stretch = NULL;
    bnode *long_lived = bnew();
    sh_populate(maxd, long_lived);
    double *arr = dnew(500000);
    for (int k = 0; k < 500000 / 2; k++) arr[k] = 1.0 / (k + 1);
    for (int round = 0, rounds = sh_env("SH_ROUNDS", 4); round < rounds; round++)
    for (int d = 4; d <= maxd; d += 2) {
        long iters = 2 * sh_nodes(maxd + 2) / sh_nodes(d);
        for (long k = 0; k < iters; k++) {
            bnode *t = bnew();
            sh_populate(d, t);
            *check += sh_count(t);
            t = sh_make(d);
            *check += sh_count(t);
        }
    }
    *check += sh_count(long_lived);
    if (arr[1000] != 1.0 / 1001) abort();
}

static qnode *sh_qmake(int d)
{
    qnode *q = qnew();
    if (d > 0)
        for (int k = 0; k < 4; k++) qset(&q->kid[k], sh_qmake(d - 1));
    return q;
}

static long sh_qcount(const qnode *q)
{
    if (!q) return 0;
    long c = 1;
    for (int k = 0; k < 4; k++) c += sh_qcount(q->kid[k]);
    return c;
}

static void sh_quads(long *check)
{
    int d = sh_env("SH_QDEPTH", 10);
    qnode *live = sh_qmake(d);
    long live_nodes = sh_qcount(live), allocated = 0;
    *check += live_nodes;
    for (long round = 0; allocated < (long)sh_env("SH_QFACTOR", 20) * live_nodes; round++) {
        qnode *t = sh_qmake(3);
        *check += sh_qcount(t);
        allocated += 85;
        if (round % 1000 == 999 && sh_qcount(live) != live_nodes) abort();
    }
    *check += sh_qcount(live);
}

static void (*sh_shape)(long *check);

static void *sh_thread(void *arg)
{
    sh_job *j = arg;
    if (j->own_thread) SH_THREAD_ENTER();
    sh_shape(&j->check);
    if (j->own_thread) SH_THREAD_EXIT();
    return NULL;
}

/* Runs SHAPE on SH_THREADS threads (quads: the long-lived tree and the
 * rounds on each thread) and prints the RESULT line. */
#define SH_MAIN(peer, gcs_expr, pause_fn, gc_cpu_expr)                                   \
    do {                                                                                 \
        const char *shape = getenv("SHAPE") ? getenv("SHAPE") : "mtgcbench";             \
        sh_shape = strcmp(shape, "quads") == 0 ? sh_quads : sh_mtgcbench;                \
        int nth = sh_env("SH_THREADS", 1);                                               \
        if (nth < 1) nth = 1;                                                            \
        if (nth > 16) nth = 16;                                                          \
        sh_job jobs[16];                                                                 \
        memset(jobs, 0, sizeof jobs);                                                    \
        pthread_t th[16];                                                                \
        double t0 = bt_now();                                                            \
        if (nth == 1) sh_thread(&jobs[0]);                                               \
        else {                                                                           \
            for (int k = 0; k < nth; k++) {                                              \
                jobs[k].own_thread = 1;                                                  \
                if (pthread_create(&th[k], NULL, sh_thread, &jobs[k]) != 0) abort();     \
            }                                                                            \
            SH_WAIT_BEGIN();                                                             \
            for (int k = 0; k < nth; k++) pthread_join(th[k], NULL);                     \
            SH_WAIT_END();                                                               \
        }                                                                                \
        double secs = bt_now() - t0;                                                     \
        long total = 0;                                                                  \
        for (int k = 0; k < nth; k++) total += jobs[k].check;                                \
        double maxp, p99;                                                                \
        pause_fn(&maxp, &p99);                                                           \
        printf("RESULT %s time_s=%.3f gcs=%llu max_pause_ms=%.3f p99_pause_ms=%.3f "     \
               "gc_cpu=%.3f rss_mb=%.1f cpu_s=%.3f check=%ld", peer, secs,              \
               (unsigned long long)(gcs_expr), maxp, p99, (double)(gc_cpu_expr),         \
               bt_rss_mb(), bt_cpu_s(), total);                                          \
        SH_EXTRA_FIELDS();                                                               \
        printf("\n");                                                                    \
    } while (0)

#endif
