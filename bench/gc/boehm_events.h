#ifndef BOEHM_EVENTS_H
#define BOEHM_EVENTS_H

/* boehm_events.h - Boehm GC's collection events, for bt_boehm.c and
 * sh_boehm.c: pause samples and GC time (include after gc.h and
 * bt_common.h; install with GC_set_on_collection_event(on_event)).
 *
 * Pauses: stop-the-world intervals (PRE_STOP_WORLD .. POST_START_WORLD)
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

#endif
