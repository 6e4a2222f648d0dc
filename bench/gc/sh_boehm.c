/* sh_boehm.c - the mt-gcbench and quads shapes (sh_common.h) on the
 * Boehm-Demers-Weiser collector: GC_MALLOC nodes, GC_MALLOC_ATOMIC array;
 * BOEHM_INCREMENTAL=1 turns on GC_enable_incremental (peer boehm-inc).
 * Pauses and GC time are read from Boehm's collection events as in
 * bt_boehm.c. */
#define GC_THREADS
#include <gc/gc.h>

/* GC_THREADS redirects pthread_create: Boehm registers the threads itself */
#define SH_THREAD_ENTER()
#define SH_THREAD_EXIT()
#define SH_WAIT_BEGIN()
#define SH_WAIT_END()
#include <unistd.h>
#include "sh_common.h"

static bnode *bnew(void) { return GC_MALLOC(sizeof(bnode)); }
static void bset(bnode **slot, bnode *v) { *slot = v; }
static qnode *qnew(void) { return GC_MALLOC(sizeof(qnode)); }
static void qset(qnode **slot, qnode *v) { *slot = v; }
static double *dnew(size_t n) { return GC_MALLOC_ATOMIC(n * sizeof(double)); }

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
        if (!have_stw) nsamples = 0;
        have_stw = 1;
        add_sample(bt_now() - stopped);
    }
}

static void pauses(double *max_ms, double *p99_ms) { bt_pause_stats(samples, nsamples, max_ms, p99_ms); }

int main(void)
{
    GC_INIT();
    int inc = getenv("BOEHM_INCREMENTAL") && atoi(getenv("BOEHM_INCREMENTAL"));
    if (inc) GC_enable_incremental();
    GC_set_on_collection_event(on_event);
    double t_start = bt_now();
    SH_MAIN(inc ? "boehm-inc" : "boehm", GC_get_gc_no(), pauses,
            gc_ns / 1e9 / ((bt_now() - t_start) * (double)sysconf(_SC_NPROCESSORS_ONLN)));
    return 0;
}
