/* bt_boehm.c - binary-trees on the Boehm-Demers-Weiser collector (GC_MALLOC),
 * by default (a stop-the-world mark, lazy sweep) or with BOEHM_INCREMENTAL=1
 * (GC_enable_incremental: mark in slices, peer "boehm-inc"). */
#define GC_THREADS
#include <gc/gc.h>

#define BT_THREAD_ENTER()
#define BT_THREAD_EXIT()
#define BT_WAIT_BEGIN()
#define BT_WAIT_END()
#include <unistd.h>
#include "bt_common.h"

typedef struct node_t { struct node_t *left, *right; } node_t;

static node_t *make(int d)
{
    node_t *n = GC_MALLOC(sizeof *n);
    if (d > 0) {
        n->left = make(d - 1);
        n->right = make(d - 1);
    }
    return n;
}

static uint64_t check(const node_t *t)
{
    return t->left ? 1 + check(t->left) + check(t->right) : 1;
}

static void drop(node_t *t) { (void)t; }

#include "boehm_events.h"

static double t_start;

int main(void)
{
    GC_INIT();
    int inc = getenv("BOEHM_INCREMENTAL") && atoi(getenv("BOEHM_INCREMENTAL"));
    if (inc) GC_enable_incremental();
    GC_set_on_collection_event(on_event);
    t_start = bt_now();
    BT_RUN(inc ? "boehm-inc" : "boehm", make, check, drop, GC_get_gc_no(), pauses,
           gc_ns / 1e9 / ((bt_now() - t_start) * (double)sysconf(_SC_NPROCESSORS_ONLN)));
    return 0;
}
