/* charts.c - gomap-lab --svg: the run's pauses and map evacuation progress,
 * drawn from the GC's pause histogram and the trace events (tracing is on
 * whenever --svg is given). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace_internal.h"
#include "gomap/gomap.h"
#include "lab.h"

struct pts { double *x, *y; size_t n, cap; const char *name; };

static void pts_add(struct pts *p, double x, double y)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->x = realloc(p->x, p->cap * sizeof *p->x);
        p->y = realloc(p->y, p->cap * sizeof *p->y);
        if (!p->x || !p->y) abort();
    }
    p->x[p->n] = x;
    p->y[p->n] = y;
    p->n++;
}

static void collect_counter(const gm_trace_event *e, void *arg)
{
    struct pts *p = arg;
    if (e->ph == 'C' && e->name && strcmp(e->name, p->name) == 0) pts_add(p, e->ts / 1e9, (double)e->val);
}

static int cmp_x(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Counter samples sorted by time (threads record into separate chunks). */
static void sorted_counter(struct pts *p, const char *name)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    gm_trace_visit(collect_counter, p);
    double *pairs = malloc(2 * (p->n ? p->n : 1) * sizeof *pairs);
    for (size_t i = 0; i < p->n; i++) {
        pairs[2 * i] = p->x[i];
        pairs[2 * i + 1] = p->y[i];
    }
    qsort(pairs, p->n, 2 * sizeof *pairs, cmp_x);
    for (size_t i = 0; i < p->n; i++) {
        p->x[i] = pairs[2 * i];
        p->y[i] = pairs[2 * i + 1];
    }
    free(pairs);
}

int lab_write_charts(const char *dir)
{
    char path[4096];
    int bad = 0;

    /* 1. GC pause histogram, folded into power-of-two bins. */
    uint64_t counts[GM_PAUSE_BUCKETS];
    gm_read_pause_histogram(counts);
    double v[64] = { 0 };
    char lbl[64][24];
    const char *labels[64];
    int lo = 64, hi = -1;
    for (unsigned b = 0; b < GM_PAUSE_BUCKETS; b++) {
        if (!counts[b]) continue;
        uint64_t ns = gm_pause_bucket_lower_ns(b);
        int p2 = ns ? 63 - __builtin_clzll(ns) : 0;
        v[p2] += (double)counts[b];
        if (p2 < lo) lo = p2;
        if (p2 > hi) hi = p2;
    }
    size_t nb = 0;
    for (int p2 = lo; p2 <= hi; p2++, nb++) {
        double us = (double)(1ull << p2) / 1e3;
        snprintf(lbl[nb], sizeof lbl[nb], us < 1000 ? "%.3gus" : "%.3gms", us < 1000 ? us : us / 1e3);
        labels[nb] = lbl[nb];
        v[nb] = v[p2];
    }
    snprintf(path, sizeof path, "%s/gc-pauses.svg", dir);
    if (!lab_svg_bars(path, "GC stop-the-world pauses (every stop of the world)", "pause (lower bound of bin)", "pauses", labels, v, nb)) bad++;
    else printf("  wrote %s\n", path);

    /* 2. Evacuation progress of map grows and shrinks over the run. */
    struct pts ev, heap;
    sorted_counter(&ev, "old buckets evacuated (%)");
    lab_series s = { "old buckets evacuated (%), one line per grow/shrink", ev.x, ev.y, ev.n, true };
    snprintf(path, sizeof path, "%s/map-evacuation.svg", dir);
    if (!lab_svg_lines(path, "Map grow/shrink: evacuation progress", "time (s)", "% of old buckets", &s, 1)) bad++;
    else printf("  wrote %s\n", path);

    /* 3. The heap over the run, as the collector reported it at every phase
     * change: bytes in live objects and the goal the pacer set. */
    struct pts goal;
    sorted_counter(&heap, "heap live");
    sorted_counter(&goal, "heap goal");
    for (size_t i = 0; i < heap.n; i++) heap.y[i] /= 1 << 20;
    for (size_t i = 0; i < goal.n; i++) goal.y[i] /= 1 << 20;
    lab_series h[2] = { { "heap in use (MB)", heap.x, heap.y, heap.n, false },
                        { "heap goal (MB)", goal.x, goal.y, goal.n, false } };
    snprintf(path, sizeof path, "%s/gc-heap.svg", dir);
    if (!lab_svg_lines(path, "GC heap over the run (collector's counters at each phase change)", "time (s)", "MB",
                       h, 2)) bad++;
    else printf("  wrote %s\n", path);
    free(goal.x);
    free(goal.y);
    free(ev.x);
    free(ev.y);
    free(heap.x);
    free(heap.y);
    return bad;
}
