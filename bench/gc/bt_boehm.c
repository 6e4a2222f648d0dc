/* bt_boehm.c - binary-trees on the Boehm-Demers-Weiser collector (GC_MALLOC).
 * A pause is the time from GC_EVENT_START to GC_EVENT_END (Boehm's default
 * collection stops the world for all of it; sweeping is lazy). */
#include "bt_common.h"

#include <gc/gc.h>

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

static uint64_t *samples;
static size_t nsamples, capsamples;
static double started;

static void on_event(GC_EventType e)
{
    if (e == GC_EVENT_START) started = bt_now();
    else if (e == GC_EVENT_END) {
        if (nsamples == capsamples) {
            capsamples = capsamples ? capsamples * 2 : 1024;
            samples = realloc(samples, capsamples * sizeof *samples);
        }
        samples[nsamples++] = (uint64_t)((bt_now() - started) * 1e9);
    }
}

static void pauses(double *max_ms, double *p99_ms) { bt_pause_stats(samples, nsamples, max_ms, p99_ms); }

int main(void)
{
    GC_INIT();
    GC_set_on_collection_event(on_event);
    BT_RUN("boehm", make, check, drop, GC_get_gc_no(), pauses);
    return 0;
}
