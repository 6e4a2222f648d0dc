/* bt_gomap.c - binary-trees on gomap's GC heap (typed nodes, scanned
 * precisely; pointers stored through gm_store, as issue 5's barrier needs). */
#include "bt_common.h"

#include "gomap/gc.h"

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

static void pauses(double *max_ms, double *p99_ms)
{
    static gm_memstats m;
    gm_read_memstats(&m);
    if (m.num_gc <= 256) {
        uint64_t p[256];
        for (uint32_t i = 0; i < m.num_gc; i++) p[i] = m.pause_ns[i];
        bt_pause_stats(p, m.num_gc, max_ms, p99_ms);
    } else {                      /* histogram: 1/16 resolution */
        *p99_ms = gm_pause_quantile_ns(0.99) / 1e6;
        *max_ms = gm_pause_quantile_ns(1.0) / 1e6;
        uint64_t mx = 0;
        for (int i = 0; i < 256; i++) if (m.pause_ns[i] > mx) mx = m.pause_ns[i];
        if (mx / 1e6 > *max_ms) *max_ms = mx / 1e6;
    }
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
    BT_RUN("gomap", make, check, drop, gcs(), pauses);
    return 0;
}
