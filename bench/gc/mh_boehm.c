/* mh_boehm.c - the map-heavy workload (mh_common.h) on the Boehm collector.
 *
 * Boehm has no map of its own, so each thread uses a small open-addressing
 * table (linear probing, backward-shift deletion, doubling at 3/4 load) whose
 * key array is GC_MALLOC_ATOMIC and whose value array is GC_MALLOC: the
 * collector scans the values and the records, as gomap's does.  MH_INCREMENTAL=1
 * turns on GC_enable_incremental (Boehm's mostly-concurrent mode, with
 * virtual-dirty-bit tracking).  A pause is one stop of the world:
 * GC_EVENT_PRE_STOP_WORLD..GC_EVENT_POST_START_WORLD (in the default mode the
 * whole mark runs inside it; incremental mode stops the world many times per
 * collection, for short steps). */
#define GC_THREADS
#include <gc/gc.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mh_common.h"

typedef struct table { uint64_t *keys; rec **vals; size_t cap, count; } table; /* key+1 stored; 0 = empty */

static inline size_t slot_of(const table *t, uint64_t k)
{
    uint64_t h = k * 0x9e3779b97f4a7c15ull;
    return (size_t)(h ^ (h >> 29)) & (t->cap - 1);
}

static void tinit(table *t, size_t cap)
{
    t->cap = cap;
    t->count = 0;
    t->keys = GC_MALLOC_ATOMIC(cap * sizeof *t->keys);
    memset(t->keys, 0, cap * sizeof *t->keys);
    t->vals = GC_MALLOC(cap * sizeof *t->vals);
}

static void tput(table *t, uint64_t k, rec *v);

static void tgrow(table *t)
{
    table old = *t;
    tinit(t, old.cap * 2);
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i]) tput(t, old.keys[i] - 1, old.vals[i]);
}

static void tput(table *t, uint64_t k, rec *v)
{
    if ((t->count + 1) * 4 > t->cap * 3) tgrow(t);
    for (size_t i = slot_of(t, k);; i = (i + 1) & (t->cap - 1)) {
        if (t->keys[i] == k + 1) { t->vals[i] = v; return; }
        if (!t->keys[i]) { t->keys[i] = k + 1; t->vals[i] = v; t->count++; return; }
    }
}

static rec *tget(const table *t, uint64_t k)
{
    for (size_t i = slot_of(t, k);; i = (i + 1) & (t->cap - 1)) {
        if (t->keys[i] == k + 1) return t->vals[i];
        if (!t->keys[i]) return NULL;
    }
}

static void tdel(table *t, uint64_t k)
{
    size_t i = slot_of(t, k);
    while (t->keys[i] != k + 1) {
        if (!t->keys[i]) return;
        i = (i + 1) & (t->cap - 1);
    }
    for (size_t j = (i + 1) & (t->cap - 1); t->keys[j]; j = (j + 1) & (t->cap - 1)) {
        size_t home = slot_of(t, t->keys[j] - 1);
        /* move j back to i if its home is not in (i, j] (cyclically) */
        if (((j - home) & (t->cap - 1)) >= ((j - i) & (t->cap - 1))) {
            t->keys[i] = t->keys[j];
            t->vals[i] = t->vals[j];
            i = j;
        }
    }
    t->keys[i] = 0;
    t->vals[i] = NULL;
    t->count--;
}

static long LIVE, OPS;

static rec *new_rec(uint64_t key, uint64_t ver, rec *link)
{
    rec *r = GC_MALLOC(sizeof *r);
    r->key = key;
    r->ver = ver;
    r->link = link;
    return r;
}

static void *mutator(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg + 1, sum = 0;
    table *m = GC_MALLOC(sizeof *m);
    tinit(m, 8);
    rec *prev = NULL;
    for (long i = 0; i < LIVE; i++) prev = new_rec((uint64_t)i, 0, prev), tput(m, (uint64_t)i, prev);
    for (long n = 0; n < OPS; n++) {
        uint64_t r = mh_next(&s), k = (r & 0xffffffffu) % (uint64_t)LIVE, j = ((r >> 32) & 0xfffffff) % (uint64_t)LIVE;
        unsigned op = (unsigned)(r >> 60);
        rec *x = tget(m, k);
        if (x->key != k) { fprintf(stderr, "mh_boehm: record of %llu damaged\n", (unsigned long long)k); abort(); }
        if (op < 10) sum += x->ver;
        else if (op < 14) tput(m, k, new_rec(k, x->ver + 1, tget(m, j)));
        else if (op == 14) { uint64_t v = x->ver + 1; tdel(m, k); tput(m, k, new_rec(k, v, NULL)); }
        else x->link = tget(m, j);
    }
    for (long i = 0; i < LIVE; i++) sum += tget(m, (uint64_t)i)->ver;
    return (void *)(uintptr_t)sum;
}

static uint64_t *samples;
static size_t nsamples, capsamples;
static double started;

static void on_event(GC_EventType e)
{
    if (e == GC_EVENT_PRE_STOP_WORLD) started = bt_now();
    else if (e == GC_EVENT_POST_START_WORLD) {
        if (nsamples == capsamples) {
            capsamples = capsamples ? capsamples * 2 : 1024;
            samples = realloc(samples, capsamples * sizeof *samples);
        }
        samples[nsamples++] = (uint64_t)((bt_now() - started) * 1e9);
    }
}

int main(void)
{
    LIVE = mh_env("MH_LIVE", 1000000);
    OPS = mh_env("MH_OPS", 8000000);
    int incr = getenv("MH_INCREMENTAL") && atoi(getenv("MH_INCREMENTAL"));
    GC_INIT();
    if (incr) GC_enable_incremental();
    GC_set_on_collection_event(on_event);
    double t0 = bt_now();
    pthread_t t[MH_THREADS];
    for (int i = 0; i < MH_THREADS; i++) pthread_create(&t[i], NULL, mutator, (void *)(uintptr_t)i);
    uint64_t check = 0;
    for (int i = 0; i < MH_THREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        check += (uint64_t)(uintptr_t)ret;
    }
    double secs = bt_now() - t0, maxp, p99;
    bt_pause_stats(samples, nsamples, &maxp, &p99);
    printf("RESULT %s time_s=%.3f gcs=%llu max_pause_ms=%.3f p99_pause_ms=%.3f rss_mb=%.1f cpu_s=%.3f gc_cpu=nan check=%llu\n",
           incr ? "boehm-incr" : "boehm", secs, (unsigned long long)GC_get_gc_no(), maxp, p99, bt_rss_mb(), bt_cpu_s(),
           (unsigned long long)check);
    return 0;
}
