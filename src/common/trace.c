/* trace.c - Chrome trace events (see gomap/trace.h).
 *
 * Each thread appends fixed-size records to its own chunks (no lock on the
 * recording path); chunks are linked into one global list when created, under
 * a mutex, so gm_trace_stop can find them all.  A record holds pointers to
 * the event's names (which must outlive the trace), so recording never
 * allocates more than a new chunk every TRACE_CHUNK events.  Events recorded
 * by a thread racing with gm_trace_stop may be lost, never corrupted: stop
 * turns recording off first and writes only published records (a chunk's
 * count is released after its record is filled).  A stopped trace's chunks
 * are freed by the next gm_trace_start, long after any racing writer.
 */
#include "common/trace_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TRACE_CHUNK 4096

typedef struct trace_rec {
    uint64_t ts;            /* ns since trace start */
    uint64_t id;
    int64_t val;
    const char *cat, *name, *arg;
    uint32_t tid;
    char ph;                /* B E b e C i */
} trace_rec;

typedef struct trace_chunk {
    struct trace_chunk *next;   /* global list */
    uint64_t gen;               /* trace generation it belongs to */
    _Atomic uint32_t n;         /* records published */
    trace_rec rec[TRACE_CHUNK];
} trace_chunk;

_Atomic bool gm_tracing;
static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static trace_chunk *chunks, *stale;
static _Atomic uint64_t trace_gen;
static uint64_t trace_t0;
static FILE *trace_file;
static _Thread_local trace_chunk *my_chunk;
static _Thread_local uint64_t my_gen;
static _Thread_local uint32_t my_tid;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool gm_trace_on(void) { return atomic_load_explicit(&gm_tracing, memory_order_relaxed); }

bool gm_trace_start(const char *path)
{
    pthread_mutex_lock(&trace_mu);
    if (trace_file) {
        pthread_mutex_unlock(&trace_mu);
        gm_errorf("gm_trace_start: tracing is already on");
        return false;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        int e = errno;
        pthread_mutex_unlock(&trace_mu);
        gm_errorf("gm_trace_start: cannot create %s: %s", path, strerror(e));
        return false;
    }
    trace_file = f;
    while (stale) {
        trace_chunk *next = stale->next;
        free(stale);
        stale = next;
    }
    trace_gen++;
    trace_t0 = now_ns();
    atomic_store_explicit(&gm_tracing, true, memory_order_release);
    pthread_mutex_unlock(&trace_mu);
    return true;
}

static trace_rec *reserve(void)
{
    trace_chunk *c = my_chunk;
    if (c == NULL || my_gen != trace_gen || atomic_load_explicit(&c->n, memory_order_relaxed) == TRACE_CHUNK) {
        c = calloc(1, sizeof *c);
        if (c == NULL) return NULL; /* out of memory: the event is dropped */
        if (my_tid == 0) my_tid = (uint32_t)syscall(SYS_gettid);
        pthread_mutex_lock(&trace_mu);
        c->gen = trace_gen;
        c->next = chunks;
        chunks = c;
        pthread_mutex_unlock(&trace_mu);
        my_chunk = c;
        my_gen = c->gen;
    }
    return &c->rec[atomic_load_explicit(&c->n, memory_order_relaxed)];
}

void gm_trace_emit(char ph, const char *cat, const char *name, uint64_t id, const char *arg, int64_t val)
{
    /* acquire: trace_t0 and trace_gen were written before tracing went on */
    if (!atomic_load_explicit(&gm_tracing, memory_order_acquire)) return;
    trace_rec *r = reserve();
    if (r == NULL) return;
    r->ts = now_ns() - trace_t0;
    r->ph = ph;
    r->cat = cat;
    r->name = name;
    r->id = id;
    r->arg = arg;
    r->val = val;
    r->tid = my_tid;
    atomic_fetch_add_explicit(&my_chunk->n, 1, memory_order_release);
}

void gm_trace_begin(const char *cat, const char *name) { gm_trace_emit('B', cat, name, 0, NULL, 0); }
void gm_trace_end(const char *cat, const char *name) { gm_trace_emit('E', cat, name, 0, NULL, 0); }
void gm_trace_async_begin(const char *cat, const char *name, uint64_t id, const char *arg, int64_t val)
{ gm_trace_emit('b', cat, name, id, arg, val); }
void gm_trace_async_end(const char *cat, const char *name, uint64_t id) { gm_trace_emit('e', cat, name, id, NULL, 0); }
void gm_trace_counter(const char *cat, const char *name, int64_t value) { gm_trace_emit('C', cat, name, 0, NULL, value); }
void gm_trace_instant(const char *cat, const char *name, const char *arg, int64_t val)
{ gm_trace_emit('i', cat, name, 0, arg, val); }

static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

size_t gm_trace_visit(void (*fn)(const gm_trace_event *ev, void *arg), void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&trace_mu);
    for (trace_chunk *c = chunks; c; c = c->next) {
        if (c->gen != trace_gen) continue;
        uint32_t cnt = atomic_load_explicit(&c->n, memory_order_acquire);
        for (uint32_t i = 0; i < cnt; i++, n++) {
            const trace_rec *r = &c->rec[i];
            gm_trace_event ev = { r->ts, r->id, r->val, r->cat, r->name, r->arg, r->tid, r->ph };
            fn(&ev, arg);
        }
    }
    pthread_mutex_unlock(&trace_mu);
    return n;
}

struct writer { FILE *f; bool first; };

static void write_event(const gm_trace_event *e, void *arg)
{
    struct writer *w = arg;
    FILE *f = w->f;
    fputs(w->first ? "\n" : ",\n", f);
    w->first = false;
    fprintf(f, "{\"ph\":\"%c\",\"ts\":%.3f,\"pid\":1,\"tid\":%u,\"cat\":", e->ph, e->ts / 1000.0, e->tid);
    put_str(f, e->cat ? e->cat : "gomap");
    fputs(",\"name\":", f);
    put_str(f, e->name ? e->name : "?");
    if (e->ph == 'b' || e->ph == 'e') fprintf(f, ",\"id\":\"0x%llx\"", (unsigned long long)e->id);
    if (e->ph == 'i') fputs(",\"s\":\"t\"", f);
    if (e->ph == 'C') {
        fputs(",\"args\":{", f);
        put_str(f, e->name ? e->name : "value");
        fprintf(f, ":%lld}", (long long)e->val);
    } else if (e->arg) {
        fputs(",\"args\":{", f);
        put_str(f, e->arg);
        fprintf(f, ":%lld}", (long long)e->val);
    }
    fputc('}', f);
}

bool gm_trace_stop(void)
{
    if (!gm_trace_on()) return false;
    atomic_store_explicit(&gm_tracing, false, memory_order_release);
    FILE *f = trace_file;
    fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", f);
    struct writer w = { f, true };
    gm_trace_visit(write_event, &w);
    fputs("\n]}\n", f);
    bool ok = !ferror(f);
    if (fclose(f) != 0) ok = false;
    pthread_mutex_lock(&trace_mu);
    trace_file = NULL;
    trace_chunk *c = chunks;
    chunks = NULL;
    pthread_mutex_unlock(&trace_mu);
    /* A thread still holding one of these as my_chunk notices the new
     * generation and takes a fresh chunk; these are freed by the next start. */
    while (c) {
        trace_chunk *next = c->next;
        pthread_mutex_lock(&trace_mu);
        c->next = stale;
        stale = c;
        pthread_mutex_unlock(&trace_mu);
        c = next;
    }
    if (!ok) gm_errorf("gm_trace_stop: writing the trace failed");
    return ok;
}
