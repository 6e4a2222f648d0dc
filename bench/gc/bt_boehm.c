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

/* Pauses: stop-the-world intervals (PRE_STOP_WORLD .. POST_START_WORLD)
 * when Boehm reports them (it does with threads), else whole collections
 * (START .. END).  GC time: whole collections (incremental slices included). */
static uint64_t *samples;
static size_t nsamples, capsamples;
static double started, stopped, gc_ns;
static int have_stw;

static void add_sample(double secs)
{
    if (nsamples == capsamples) {
        capsamples = capsamples ? capsamples * 2 : 1024;
        samples = realloc(samples, capsamples * sizeof *samples);
        if (!samples) abort();
    }
    samples[nsamples++] = (uint64_t)(secs * 1e9);
}

static void on_event(GC_EventType e)
{
    if (e == GC_EVENT_START) started = bt_now();
    else if (e == GC_EVENT_END) {
        gc_ns += (bt_now() - started) * 1e9;
        if (!have_stw) add_sample(bt_now() - started);
    } else if (e == GC_EVENT_PRE_STOP_WORLD) {
        stopped = bt_now();
    } else if (e == GC_EVENT_POST_START_WORLD) {
        if (!have_stw) nsamples = 0;       /* from now on, stop-the-world intervals */
        have_stw = 1;
        add_sample(bt_now() - stopped);
    }
}

static void pauses(double *max_ms, double *p99_ms) { bt_pause_stats(samples, nsamples, max_ms, p99_ms); }

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
