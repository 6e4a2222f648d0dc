/* bt_gomap.c - binary-trees on gomap's GC heap (typed nodes, scanned
 * precisely; pointers stored through gm_store, as the write barrier needs).
 * BT_PEER names the RESULT line (run.sh runs gomap-stw with
 * GMDEBUG=gcstoptheworld=1). */
#include "gomap/gc.h"

#define BT_THREAD_ENTER() gm_thread_attach()
#define BT_THREAD_EXIT()  gm_thread_detach()
#define BT_WAIT_BEGIN()   gm_blocking_begin()
#define BT_WAIT_END()     gm_blocking_end()
#include "gm_bench.h"
#define BT_EXTRA_FIELDS() gm_bench_mark_fields()
#include "bt_common.h"

typedef struct node_t { struct node_t *left, *right; } node_t;
static const uint8_t node_mask[] = { 0x3 };
static const gm_type node_type = { sizeof(node_t), 8, NULL, NULL, node_mask, 0, "node" };

static node_t *make(int d)
{
    node_t *n = gm_new(&node_type);
    if (d > 0) {
        gm_store(&n->left, make(d - 1));
        gm_store(&n->right, make(d - 1));
    }
    return n;
}

static uint64_t check(const node_t *t)
{
    return t->left ? 1 + check(t->left) + check(t->right) : 1;
}

static void drop(node_t *t) { (void)t; }

/* Every stop-the-world pause is in the histogram (1/16 resolution);
 * MemStats.pause_ns holds per-cycle sums, as Go's. */
static void pauses(double *max_ms, double *p99_ms)
{
    *p99_ms = gm_pause_quantile_ns(0.99) / 1e6;
    *max_ms = gm_pause_quantile_ns(1.0) / 1e6;
}

static double gc_cpu(void)
{
    static gm_memstats m;
    gm_read_memstats(&m);
    return m.gc_cpu_fraction;
}

static uint64_t gcs(void)
{
    static gm_memstats m;
    gm_read_memstats(&m);
    return m.num_gc;
}

int main(void)
{
    gm_thread_attach();
    const char *peer = getenv("BT_PEER") ? getenv("BT_PEER") : "gomap";
    BT_RUN(peer, make, check, drop, gcs(), pauses, gc_cpu());
    return 0;
}
