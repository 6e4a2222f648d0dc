/* debug.c - runtime options (GMDEBUG, GMGC, GMMEMLIMIT) and the heap verifier.
 *
 * GMDEBUG uses Go's GODEBUG syntax: comma-separated name=value pairs, later
 * ones override earlier ones.  Every setting is an integer with a range; a
 * malformed pair, an unknown name or an out-of-range value is reported with
 * gm_errorf and ignored (the default stays), never guessed at.
 *
 * The verifier (gm_heap_verify) is the executable statement of the heap's
 * invariants; see the checks below and the essays in alloc.c / pageheap.c.
 */
#include "gc/gc_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

gc_options gc_opt = { .stoptimeout_ms = 20000, .scanglobals = 1, .globalsterm = 1,
                       .preemptsig = SIGURG, .preemptgrace_ms = 10 };
int gc_env_percent = 100;
int64_t gc_env_memlimit = INT64_MAX;

static const struct option {
    const char *name;
    int *dst;
    int min, max;
} options[] = {
    { "gctrace", &gc_opt.gctrace, 0, 2 },
    { "gcstress", &gc_opt.gcstress, 0, INT_MAX },
    { "clobberfree", &gc_opt.clobberfree, 0, 1 },
    { "gccheckmark", &gc_opt.gccheckmark, 0, 1 },
    { "stoptimeout", &gc_opt.stoptimeout_ms, 0, INT_MAX },
    { "gcworkers", &gc_opt.gcworkers, 0, 8 },
    { "gcstoptheworld", &gc_opt.gcstoptheworld, 0, 1 },
    { "scanglobals", &gc_opt.scanglobals, 0, 1 },
    { "globalsterm", &gc_opt.globalsterm, 0, 2 },
    { "preemptsig", &gc_opt.preemptsig, 0, 64 },
    { "preemptgrace", &gc_opt.preemptgrace_ms, 0, 3600000 },
};

/* Settings whose values are words: names[v] sets value v. */
static const struct word_option {
    const char *name;
    int *dst;
    const char *names[3];
} word_options[] = {
    { "gcmarkqueue", &gc_opt.gcmarkqueue, { "object", "span", NULL } },
};

static bool parse_word_option(const char *p, size_t nl, const char *v, size_t vl)
{
    for (size_t i = 0; i < sizeof word_options / sizeof word_options[0]; i++) {
        const struct word_option *o = &word_options[i];
        if (strlen(o->name) != nl || memcmp(o->name, p, nl) != 0) continue;
        for (int k = 0; o->names[k]; k++)
            if (strlen(o->names[k]) == vl && memcmp(o->names[k], v, vl) == 0) {
                *o->dst = k;
                return true;
            }
        gm_errorf("GMDEBUG: bad value \"%.*s\" for %s (want %s or %s); ignored", (int)vl, v, o->name,
                  o->names[0], o->names[1]);
        return true;
    }
    return false;
}

static bool parse_int(const char *s, size_t n, long long *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || end == buf) return false;
    *out = v;
    return true;
}

static bool parse_memlimit(const char *s, int64_t *out);

/* heaplimit= and heapreserve=: sizes in GMMEMLIMIT's syntax ("512MiB"). */
static bool parse_size_option(const char *name, size_t nl, const char *v, size_t vl)
{
    bool limit = nl == 9 && memcmp(name, "heaplimit", 9) == 0;
    bool reserve = nl == 11 && memcmp(name, "heapreserve", 11) == 0;
    if (!limit && !reserve) return false;
    char buf[64];
    int64_t bytes = -1;
    if (vl > 0 && vl < sizeof buf) {
        memcpy(buf, v, vl);
        buf[vl] = 0;
        if (!parse_memlimit(buf, &bytes)) bytes = -1;
    }
    if (limit) {
        if (bytes == INT64_MAX) gc_opt.heaplimit = 0;          /* "off" */
        else if (bytes >= ((int64_t)1 << 20)) gc_opt.heaplimit = (uint64_t)bytes;
        else gm_errorf("GMDEBUG: bad value \"%.*s\" for heaplimit (want a size of at least 1MiB "
                       "such as 512MiB or 4GiB, or \"off\"); no limit", (int)vl, v);
    } else {
        if (bytes >= (int64_t)GC_HEAP_RESERVE_MIN && bytes <= (int64_t)GC_HEAP_RESERVE_MAX)
            gc_opt.heapreserve = (size_t)bytes;
        else gm_errorf("GMDEBUG: bad value \"%.*s\" for heapreserve (want a size from 64MiB to "
                       "16TiB such as 256GiB); using 64GiB", (int)vl, v);
    }
    return true;
}

static void parse_pair(const char *p, size_t n)
{
    const char *eq = memchr(p, '=', n);
    if (!eq) {
        gm_errorf("GMDEBUG: \"%.*s\" is not name=value; ignored", (int)n, p);
        return;
    }
    size_t nl = (size_t)(eq - p), vl = n - nl - 1;
    if (parse_size_option(p, nl, eq + 1, vl)) return;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const struct option *o = &options[i];
        if (strlen(o->name) != nl || memcmp(o->name, p, nl) != 0) continue;
        long long v;
        if (!parse_int(eq + 1, vl, &v) || v < o->min || v > o->max) {
            gm_errorf("GMDEBUG: bad value \"%.*s\" for %s (want an integer in %d..%d); ignored",
                      (int)vl, eq + 1, o->name, o->min, o->max);
            return;
        }
        *o->dst = (int)v;
        return;
    }
    if (parse_word_option(p, nl, eq + 1, vl)) return;
    /* Settings other subsystems read from the same variable. */
    static const char *const foreign[] = { "syncfence", "memprofilerate" /* profile.c */, "mapseed", "mapbg",
                                           "mapengine" /* map */ };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++)
        if (strlen(foreign[i]) == nl && memcmp(foreign[i], p, nl) == 0) return;
    gm_errorf("GMDEBUG: unknown setting \"%.*s\"; ignored", (int)nl, p);
}

static void parse_gmdebug(const char *s)
{
    while (*s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n) parse_pair(s, n);
        if (!c) break;
        s = c + 1;
    }
}

/* GOMEMLIMIT syntax: an integer with an optional unit B, KiB, MiB, GiB, TiB,
 * or "off". */
static bool parse_memlimit(const char *s, int64_t *out)
{
    if (strcmp(s, "off") == 0) {
        *out = INT64_MAX;
        return true;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0) return false;
    static const struct { const char *u; int shift; } units[] = {
        { "", 0 }, { "B", 0 }, { "KiB", 10 }, { "MiB", 20 }, { "GiB", 30 }, { "TiB", 40 } };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].u) == 0) {
            if (units[i].shift && v > (INT64_MAX >> units[i].shift)) return false;
            *out = (int64_t)v << units[i].shift;
            return true;
        }
    return false;
}

void gc_options_init(void)
{
    /* One mark worker by default: on the shared 2-CPU test machine the
     * parallel drain (atomic mark bits, work donation) measured slower than
     * one worker (binary-trees depth 18: 4.2 s vs 3.1 s), so it is opt-in. */
    gc_opt.gcworkers = 1;
    /* The span mark queue by default: it measured 14-17% less mark CPU per
     * MiB scanned than the object queue on binary-trees, mt-gcbench and the
     * map-heavy workload (docs/gc.md, "Mark queues"). */
    gc_opt.gcmarkqueue = GC_MARKQ_SPAN;
    const char *d = getenv("GMDEBUG");
    if (d) parse_gmdebug(d);
    const char *g = getenv("GMGC");
    if (g && *g) {
        long long v;
        if (strcmp(g, "off") == 0) gc_env_percent = -1;
        else if (parse_int(g, strlen(g), &v) && v >= INT_MIN && v <= INT_MAX)
            gc_env_percent = v < 0 ? -1 : (int)v;
        else gm_errorf("GMGC: bad value \"%s\" (want a percentage or \"off\"); using 100", g);
    }
    const char *l = getenv("GMMEMLIMIT");
    if (l && *l && !parse_memlimit(l, &gc_env_memlimit))
        gm_errorf("GMMEMLIMIT: bad value \"%s\" (want e.g. 512MiB or \"off\"); no limit", l);
}

/* ---- the heap verifier ----------------------------------------------------------- */

static size_t verify_span(gc_span *s, uint32_t sweepgen)
{
    size_t bad = 0;
    if (s->sizeclass >= gc_nclasses) { gm_errorf("verify: span class %u", s->sizeclass); return 1; }
    if (s->sizeclass) {
        const gc_class *c = &gc_classes[s->sizeclass];
        if (s->elemsize != c->size || s->nelems != c->nelems || s->npages != c->npages) {
            gm_errorf("verify: span %#lx geometry differs from class %u", (unsigned long)s->base,
                      s->sizeclass);
            bad++;
        }
    } else if (s->nelems != 1) {
        gm_errorf("verify: large span with %u objects", s->nelems);
        bad++;
    }
    if (s->freeindex > s->nelems) { gm_errorf("verify: freeindex beyond nelems"); bad++; }
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->nelems; i++) count += gc_obj_allocated(s, i);
    if (count != s->alloc_count) {
        gm_errorf("verify: span %#lx class %u counts %u objects, bitmap says %u",
                  (unsigned long)s->base, s->sizeclass, s->alloc_count, count);
        bad++;
    }
    bool unswept = gc_span_unswept(s, sweepgen);
    if (unswept ? s->sweepgen != sweepgen - 2 : s->sweepgen != sweepgen) {
        gm_errorf("verify: span %#lx sweepgen %u, heap %u (list %u)", (unsigned long)s->base,
                  s->sweepgen, sweepgen, s->list);
        bad++;
    }
    if (!unswept && atomic_load_explicit(&gc_phase_a, memory_order_relaxed) == GC_OFF) {
        for (uint32_t w = 0; w < (s->nelems + 63) / 64; w++)
            if (s->mark_bits[w]) {
                gm_errorf("verify: swept span %#lx has mark bits set outside a cycle",
                          (unsigned long)s->base);
                bad++;
                break;
            }
    }
    /* span mark queue (mark.c): every span queued during a mark was
     * released by the drain that scanned it */
    if (atomic_load_explicit(&gc_phase_a, memory_order_relaxed) == GC_OFF &&
        __atomic_load_n(&s->queued, __ATOMIC_RELAXED) != 0) {
        gm_errorf("verify: span %#lx still on the span mark queue (state %u) outside a cycle",
                  (unsigned long)s->base, __atomic_load_n(&s->queued, __ATOMIC_RELAXED));
        bad++;
    }
    if (s->sizeclass && s->hb_uniform) {        /* alloc.c, HEAP BITS */
        size_t nw = s->elemsize / WORD_SIZE;
        for (uint32_t i = 0; i < s->nelems; i++) {
            for (size_t j = 0; j < nw; j++) {
                size_t b = (size_t)i * nw + j;
                bool have = (s->heap_bits[b >> 6] >> (b & 63)) & 1;
                bool want = (s->hb_mask >> j) & 1;
                if (have != want) {
                    gm_errorf("verify: span %#lx promises the heap bits %#llx in every slot; "
                              "slot %u word %zu differs", (unsigned long)s->base,
                              (unsigned long long)s->hb_mask, i, j);
                    return bad + 1;
                }
            }
        }
    }
    if (s->list == LIST_FULL && s->alloc_count != s->nelems) { gm_errorf("verify: full span not full"); bad++; }
    if (s->list == LIST_PARTIAL && s->alloc_count == s->nelems) { gm_errorf("verify: partial span full"); bad++; }
    if (s->list == LIST_NONE || s->list == LIST_FREE) { gm_errorf("verify: in-use span on no list"); bad++; }
    return bad;
}

static size_t verify_lists(void)
{
    size_t bad = 0;
    uint32_t sg = atomic_load(&gc_sweepgen_a);
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) {
        gc_central *c = &gc_centrals[i];
        gc_spanlist *ls[3] = { &c->partial, &c->full, &c->unswept };
        uint8_t kinds[3] = { LIST_PARTIAL, LIST_FULL, LIST_UNSWEPT };
        for (int k = 0; k < 3; k++) {
            size_t n = 0;
            for (gc_span *s = ls[k]->first; s; s = s->next, n++)
                if ((k == 2 ? !gc_span_unswept(s, sg) : s->list != kinds[k]) ||
                    s->sizeclass * 2 + s->noscan != i || s->state != SPAN_INUSE) {
                    gm_errorf("verify: central %d list %d holds a foreign span", i, k);
                    bad++;
                }
            if (n != ls[k]->n) { gm_errorf("verify: central %d list %d length", i, k); bad++; }
        }
    }
    return bad;
}

struct cache_check { size_t bad; };
static void verify_cache(gc_thread *t, void *arg)
{
    struct cache_check *cc = arg;
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) {
        gc_span *s = t->cache.alloc[i];
        if (s == &gc_empty_span) continue;
        if (s->list != LIST_CACHE || s->sizeclass * 2 + s->noscan != i) {
            gm_errorf("verify: thread %llu caches a bad span", (unsigned long long)t->id);
            cc->bad++;
        }
    }
    gc_mcache_flush_stats(&t->cache);
}

/* World stopped by the caller. */
size_t gc_verify_stopped(void)
{
    size_t bad = gc_heap_verify_pages();
    bad += verify_lists();
    struct cache_check cc = { 0 };
    gc_for_each_thread(verify_cache, &cc);
    bad += cc.bad;
    uint32_t sg = atomic_load(&gc_sweepgen_a);
    size_t n;
    uint64_t objects = 0;
    gc_heap_lock();
    gc_span **all = gc_allspans(&n);
    for (size_t k = 0; k < n; k++) {
        gc_span *s = all[k];
        if (s->state != SPAN_INUSE) continue;
        bad += verify_span(s, sg);
        objects += s->alloc_count;
    }
    gc_heap_unlock();
    uint64_t mallocs = 0, frees = 0;
    for (int c = 0; c < GC_NUM_CLASSES; c++) {
        mallocs += atomic_load(&gc_stats.nmalloc[c]);
        frees += atomic_load(&gc_stats.nfree[c]);
    }
    if (mallocs - frees != objects) {
        gm_errorf("verify: spans hold %llu objects, counters say %llu - %llu",
                  (unsigned long long)objects, (unsigned long long)mallocs,
                  (unsigned long long)frees);
        bad++;
    }
    bad += gc_special_verify();
    size_t gb = gc_globals_check();
    if (gb) gm_errorf("verify: %zu problems in the list of data/bss segments", gb);
    return bad + gb;
}

size_t gm_heap_verify(void)
{
    gc_ensure_init();
    if (!gc_self) gc_thread_auto();
    while (!gc_stop_the_world("verify")) {}
    size_t bad = gc_verify_stopped();
    gc_start_the_world();
    return bad;
}
