/* special.c - finalizers, cleanups and weak handles (Go's span specials).
 *
 * RECORDS.  Each is a gc_special on the owning span's list, keyed by the
 * object's offset, under special_mu: at most one SP_FINALIZER per object,
 * any number of SP_CLEANUP, at most one SP_WEAK per pointer value (so
 * gm_weak_make is canonical, like weak.Make).
 *
 * AT MARK START (concurrently, or with the world stopped), as Go's markrootSpans:
 *   finalizer: everything the object points to is marked, but not the object
 *              itself; fn's arg is marked.  So if A -> B and both have
 *              finalizers, B is reachable from A and only A's runs this cycle;
 *              a cycle through a finalizable object marks itself and is never
 *              collected.
 *   unordered finalizer (gm_set_finalizer_unordered, Boehm's no-order
 *              finalizers): only fn's arg is marked.  The object is queued
 *              as soon as nothing but finalizable objects reach it, even from
 *              an object whose finalizer runs in the same cycle, so a cycle
 *              of such objects is collected: every member is queued at once,
 *              in one pass of step 2 below (before the drain that resurrects
 *              them), and each fn may see the others already finalized.
 *   cleanup:   arg is marked; the object is not (no resurrection).
 *   weak:      the handle object is marked; the target is not.
 * AFTER THE DRAIN, in this order:
 *   1. ephemerons of unmarked keys and weak handles of unmarked objects are
 *      cleared (before any finalizer resurrects its object, as Go 1.24
 *      documents for weak pointers);
 *   2. each unmarked finalizable object is marked (resurrected), its record
 *      removed, and (obj, fn, arg) queued for the finalizer thread; the queue
 *      is a root until the finalizer has been taken off it;
 *   3. the queue drains (and the ephemeron fixpoint after it: ephemerons
 *      first reached from resurrected objects), then cleanups of objects
 *      still unmarked are queued.
 * A finalized object is freed by the first cycle after its finalizer ran and
 * nothing revived it.
 *
 * The finalizer thread is an attached mutator; it runs the queue one entry
 * at a time, in queue order.  ON DEMAND (gm_finalizers_on_demand(true)) it
 * leaves the queue alone, and the queue runs only when a mutator calls
 * gm_run_finalizers (at its own safe points: an interpreter's __gc or
 * FinalizationRegistry callbacks run on the interpreter's thread).  Several
 * runners may pop entries concurrently (the queue is under finq_mu); an
 * entry is run by exactly one of them, and finq_pending counts entries
 * queued or running, for gm_finalizers_wait.
 */
#include "gc/gc_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pthread_mutex_t gc_special_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_special_id = 1;

struct gm_weak { _Atomic uintptr_t p; };

typedef struct finq_entry {
    struct finq_entry *next;
    void *obj;                                /* NULL for a cleanup */
    void (*fin)(void *obj, void *arg);
    void (*cleanup)(void *arg);
    void *arg;
} finq_entry;

static pthread_mutex_t finq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finq_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t finq_done_cv = PTHREAD_COND_INITIALIZER;
static finq_entry *finq_head, *finq_tail;     /* under finq_mu */
static size_t finq_pending;                   /* queued + running */
static bool finq_thread_started;

/* ---- lookup -------------------------------------------------------------------- */

/* The span of the allocated object p points into (and its base), or NULL.
 * The span is swept first: the background sweeper may be rewriting its
 * alloc bits right now. */
static gc_span *object_span(void *p, uintptr_t *base)
{
    gc_span *s = gc_span_of((uintptr_t)p);
    if (!s) return NULL;
    gc_ensure_swept(s);
    uint32_t i;
    *base = gc_find_object((uintptr_t)p, &s, &i);
    return *base ? s : NULL;
}

static gc_special *new_special(uint8_t kind, uintptr_t offset)
{
    gc_special *sp = calloc(1, sizeof *sp);
    if (!sp) gm_fatal("runtime: out of memory (special)");
    sp->kind = kind;
    sp->offset = offset;
    return sp;
}

/* The spans that hold specials, so that the collector walks them rather
 * than every span (under special_mu).  A span is listed when it gets its
 * first record (in_special_list); the walk drops the ones left without
 * records.  Spans with records are never freed (sweep_span). */
static gc_span **sspans;
static size_t nsspans, capsspans;

static void link_special(gc_span *s, gc_special *sp)
{
    sp->next = s->specials;
    s->specials = sp;
    if (s->in_special_list) return;
    if (nsspans == capsspans) {
        size_t nc = capsspans ? capsspans * 2 : 64;
        gc_span **na = realloc(sspans, nc * sizeof *na);
        if (!na) gm_fatal("runtime: out of memory (specials)");
        sspans = na;
        capsspans = nc;
    }
    sspans[nsspans++] = s;
    s->in_special_list = 1;
}

/* Drops the listed spans that have no record left (special_mu held). */
static void compact_special_spans(void)
{
    size_t j = 0;
    for (size_t i = 0; i < nsspans; i++) {
        gc_span *s = sspans[i];
        if (s->state == SPAN_INUSE && s->specials) sspans[j++] = s;
        else s->in_special_list = 0;
    }
    nsspans = j;
}

static gc_special *find_special(gc_span *s, uintptr_t offset, uint8_t kind)
{
    for (gc_special *sp = s->specials; sp; sp = sp->next)
        if (sp->offset == offset && sp->kind == kind) return sp;
    return NULL;
}

static void unlink_special(gc_span *s, gc_special *x)
{
    for (gc_special **pp = &s->specials; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            return;
        }
}

/* ---- finalizers ------------------------------------------------------------------- */

static void set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg, bool unordered)
{
    gc_ensure_init();
    if (obj == NULL) gm_fatal("runtime.SetFinalizer: first argument is nil");
    uintptr_t base;
    gc_span *s = object_span(obj, &base);
    if (!s) {
        gm_fatal("runtime.SetFinalizer: pointer not in allocated block");
    }
    if (base != (uintptr_t)obj) gm_fatal("runtime.SetFinalizer: pointer not at beginning of allocated block");
    uintptr_t off = base - s->base;
    if (fn) gc_finq_start_thread();
    pthread_mutex_lock(&gc_special_mu);
    gc_special *sp = find_special(s, off, SP_FINALIZER);
    if (!fn) {
        if (sp) {
            unlink_special(s, sp);
            free(sp);
        }
        pthread_mutex_unlock(&gc_special_mu);
        return;
    }
    if (sp) {
        pthread_mutex_unlock(&gc_special_mu);
        gm_fatal("runtime.SetFinalizer: finalizer already set");
    }
    sp = new_special(SP_FINALIZER, off);
    sp->fin = fn;
    sp->arg = arg;
    sp->unordered = unordered;
    link_special(s, sp);
    pthread_mutex_unlock(&gc_special_mu);
}

void gm_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg)
{
    set_finalizer(obj, fn, arg, false);
}

void gm_set_finalizer_unordered(void *obj, void (*fn)(void *obj, void *arg), void *arg)
{
    set_finalizer(obj, fn, arg, true);
}

__attribute__((noinline)) void gm_keep_alive(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- cleanups ---------------------------------------------------------------------- */

gm_cleanup gm_add_cleanup(void *obj, void (*fn)(void *arg), void *arg)
{
    gc_ensure_init();
    if (obj == arg) gm_fatal("runtime.AddCleanup: ptr is equal to arg, cleanup will never run");
    if (!fn) gm_fatal("runtime.AddCleanup: cleanup function is nil");
    uintptr_t base;
    gc_span *s = object_span(obj, &base);
    if (!s) gm_fatal("runtime.AddCleanup: ptr is not in a GC object");
    if (arg && (uintptr_t)arg >= base && (uintptr_t)arg < base + (s->sizeclass ? s->elemsize : s->npages * GC_PAGE_SIZE))
        gm_fatal("runtime.AddCleanup: ptr is equal to arg, cleanup will never run");
    gc_finq_start_thread();
    pthread_mutex_lock(&gc_special_mu);
    gc_special *sp = new_special(SP_CLEANUP, base - s->base);
    sp->cleanup = fn;
    sp->arg = arg;
    sp->id = next_special_id++;
    link_special(s, sp);
    gm_cleanup c = { ~base, sp->id };
    pthread_mutex_unlock(&gc_special_mu);
    return c;
}

void gm_cleanup_stop(gm_cleanup c)
{
    gc_ensure_init();
    if (c.id == 0) return;
    gc_span *s = gc_span_of(~c.hidden_obj);
    if (!s) return;
    pthread_mutex_lock(&gc_special_mu);
    for (gc_special *sp = s->specials; sp; sp = sp->next)
        if (sp->kind == SP_CLEANUP && sp->id == c.id) {
            unlink_special(s, sp);
            free(sp);
            break;
        }
    pthread_mutex_unlock(&gc_special_mu);
}

/* ---- weak handles -------------------------------------------------------------------- */

gm_weak *gm_weak_make(void *p)
{
    gc_ensure_init();
    if (!p) return NULL;
    uintptr_t base;
    if (!object_span(p, &base)) {
        gm_errorf("gm_weak_make: %p is not a pointer into the GC heap", p);
        return NULL;
    }
    /* allocate first: allocation may collect, which takes special_mu */
    gm_weak *w = gm_alloc_noscan(sizeof *w);
    gc_span *s = object_span(p, &base);
    uintptr_t off = (uintptr_t)p - s->base;
    pthread_mutex_lock(&gc_special_mu);
    gc_special *sp = find_special(s, off, SP_WEAK);
    if (sp) {
        w = (gm_weak *)sp->weak_cell;
    } else {
        atomic_store_explicit(&w->p, (uintptr_t)p, memory_order_relaxed);
        sp = new_special(SP_WEAK, off);
        sp->weak_cell = (uintptr_t *)w;
        link_special(s, sp);
    }
    pthread_mutex_unlock(&gc_special_mu);
    return w;
}

void *gm_weak_get(const gm_weak *w)
{
    if (!w) return NULL;
    /* a heap access: the caller must be a mutator the collector can stop
     * (it attaches, as an allocation would): an unattached thread could read
     * the pointer while mark termination clears it, and its shading below
     * would race the termination's drain */
    gc_thread *t = gc_self;
    if (GM_UNLIKELY(t == NULL)) t = gc_thread_auto();
    if (GM_UNLIKELY(t->blocking_depth)) gc_blocking_misuse("gm_weak_get");
    /* Cleared only while the world is stopped.  While marking, the result
     * is shaded: a weak-to-strong conversion creates a reference that no
     * barrier saw (the object may have been white and unreachable). */
    void *p = (void *)atomic_load_explicit(&((gm_weak *)w)->p, memory_order_acquire);
    if (p && GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed))) {
        gm_rt_enter();                    /* not stopped with the grey object unpublished */
        gc_workbuf *wk = gc_cur_work();
        gc_shade_into(wk, (uintptr_t)p);
        if (wk != &gc_work) gc_work_publish(wk);
        gm_rt_leave();
    }
    return p;
}

/* ---- the collector's side (world stopped) ---------------------------------------------- */

/* At mark start: with the world stopped, or (concurrent mark) while other
 * threads allocate: only the listed spans are read, under special_mu, and
 * a span with records is never freed. */
void gc_special_mark_roots(void)
{
    pthread_mutex_lock(&gc_special_mu);
    compact_special_spans();
    for (size_t k = 0; k < nsspans; k++) {
        gc_span *s = sspans[k];
        for (gc_special *sp = s->specials; sp; sp = sp->next) {
            switch (sp->kind) {
            case SP_FINALIZER:
                if (!sp->unordered) gc_scan_object_referents(s->base + sp->offset, s);
                gc_shade((uintptr_t)sp->arg);
                break;
            case SP_CLEANUP:
                gc_shade((uintptr_t)sp->arg);
                break;
            case SP_WEAK:
                gc_shade((uintptr_t)sp->weak_cell);
                break;
            }
        }
    }
    pthread_mutex_unlock(&gc_special_mu);
    pthread_mutex_lock(&finq_mu);
    for (finq_entry *e = finq_head; e; e = e->next) {
        gc_shade((uintptr_t)e->obj);
        gc_shade((uintptr_t)e->arg);
    }
    pthread_mutex_unlock(&finq_mu);
}

static bool obj_marked(gc_span *s, uintptr_t offset)
{
    return gc_is_marked(s, gc_obj_index(s, s->base + offset));
}

static void enqueue(finq_entry *e)
{
    e->next = NULL;
    if (finq_tail) finq_tail->next = e;
    else finq_head = e;
    finq_tail = e;
    finq_pending++;
}

/* One pass over every special of kind `kind` whose object is unmarked. */
static size_t process(uint8_t kind)
{
    size_t queued = 0;
    for (size_t k = 0; k < nsspans; k++) {
        gc_span *s = sspans[k];
        if (s->state != SPAN_INUSE || !s->specials) continue;
        for (gc_special **pp = &s->specials; *pp;) {
            gc_special *sp = *pp;
            if (sp->kind != kind || obj_marked(s, sp->offset)) {
                pp = &sp->next;
                continue;
            }
            *pp = sp->next;
            if (kind == SP_WEAK) {
                atomic_store_explicit((_Atomic uintptr_t *)sp->weak_cell, 0, memory_order_relaxed);
            } else {
                finq_entry *e = malloc(sizeof *e);
                if (!e) gm_fatal("runtime: out of memory (finalizer queue)");
                e->obj = kind == SP_FINALIZER ? (void *)(s->base + sp->offset) : NULL;
                e->fin = sp->fin;
                e->cleanup = sp->cleanup;
                e->arg = sp->arg;
                enqueue(e);
                if (kind == SP_FINALIZER) gc_shade(s->base + sp->offset);
                queued++;
            }
            free(sp);
        }
    }
    return queued;
}

void gc_special_mark_done(void)
{
    pthread_mutex_lock(&gc_special_mu);
    pthread_mutex_lock(&finq_mu);
    gc_ephemeron_finish();     /* dead keys' ephemerons cleared, as weak handles */
    process(SP_WEAK);
    process(SP_FINALIZER);
    gc_mark_drain();
    gc_ephemeron_finish();     /* ephemerons reached from resurrected objects */
    size_t q = process(SP_CLEANUP);
    q += finq_pending;
    if (q) pthread_cond_signal(&finq_cv);
    pthread_mutex_unlock(&finq_mu);
    pthread_mutex_unlock(&gc_special_mu);
    if (q) gc_finq_start_thread();    /* normally running already; not after a fork */
}

size_t gc_special_verify(void)
{
    size_t n, bad = 0;
    gc_span **all = gc_allspans(&n);
    pthread_mutex_lock(&gc_special_mu);
    for (size_t k = 0; k < n; k++) {
        gc_span *s = all[k];
        if (s->state != SPAN_INUSE) {
            if (s->specials) { gm_errorf("verify: free span has specials"); bad++; }
            continue;
        }
        if (s->specials && !s->in_special_list) {
            gm_errorf("verify: span %#lx has specials but is not listed", (unsigned long)s->base);
            bad++;
        }
        for (gc_special *sp = s->specials; sp; sp = sp->next) {
            uint32_t i = gc_obj_index(s, s->base + sp->offset);
            if (i >= s->nelems || !gc_obj_allocated(s, i)) {
                gm_errorf("verify: special on a free object at %#lx", (unsigned long)(s->base + sp->offset));
                bad++;
            }
            if (sp->kind == SP_FINALIZER && sp->offset != (uintptr_t)i * s->elemsize && s->sizeclass) {
                gm_errorf("verify: finalizer not at an object start");
                bad++;
            }
        }
    }
    pthread_mutex_unlock(&gc_special_mu);
    return bad;
}

/* ---- the finalizer thread -------------------------------------------------------------- */

/* Pops and runs one entry.  Separate and not inlined so that no copy of the
 * object's address stays in finalizer_main's frame or registers afterwards:
 * the thread's stack is scanned conservatively while it waits. */
static _Atomic bool on_demand_a;   /* gm_finalizers_on_demand */

/* false if the queue was empty (another runner took the entry) */
__attribute__((noinline)) static bool run_one(void)
{
    pthread_mutex_lock(&finq_mu);
    finq_entry *e = finq_head;
    if (e == NULL) {
        pthread_mutex_unlock(&finq_mu);
        return false;
    }
    finq_head = e->next;
    if (!finq_head) finq_tail = NULL;
    pthread_mutex_unlock(&finq_mu);
    void *obj = e->obj, *a = e->arg;
    void (*fin)(void *, void *) = e->fin;
    void (*cl)(void *) = e->cleanup;
    free(e);
    if (obj) fin(obj, a);
    else cl(a);
    return true;
}

static void ran_one(void)
{
    pthread_mutex_lock(&finq_mu);
    if (--finq_pending == 0) pthread_cond_broadcast(&finq_done_cv);
    pthread_mutex_unlock(&finq_mu);
}

/* Overwrites the dead frames the finalizer just used. */
__attribute__((noinline, no_sanitize("address"))) static void scrub_stack(void)
{
    volatile char buf[16384];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

static void *finalizer_main(void *arg)
{
    (void)arg;
    gc_thread_register_internal(false);
    for (;;) {
        gm_blocking_begin();
        pthread_mutex_lock(&finq_mu);
        while (!finq_head || atomic_load_explicit(&on_demand_a, memory_order_relaxed))
            pthread_cond_wait(&finq_cv, &finq_mu);
        pthread_mutex_unlock(&finq_mu);
        gm_blocking_end();
        /* running: no cycle can start before run_one's first safepoint, and
         * by then the entry's object is in run_one's frame */
        if (!run_one()) continue;
        scrub_stack();
        ran_one();
    }
    return NULL;
}

static pthread_once_t finq_once = PTHREAD_ONCE_INIT;

/* fork: 0 prepare (take the locks), 1 parent, 2 child (the finalizer
 * thread is gone: start a new one when there is work) */
void gc_special_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&gc_special_mu);
        pthread_mutex_lock(&finq_mu);
        gc_ephemeron_fork(0);
        return;
    }
    gc_ephemeron_fork(1);
    pthread_mutex_unlock(&finq_mu);
    pthread_mutex_unlock(&gc_special_mu);
    if (phase == 2 && finq_thread_started) {
        finq_thread_started = false;
        finq_once = (pthread_once_t)PTHREAD_ONCE_INIT;
        pthread_cond_init(&finq_cv, NULL);
        pthread_cond_init(&finq_done_cv, NULL);
    }
}
static void start_thread(void)
{
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    gc_thread_starting(1);
    if (pthread_create(&th, &a, finalizer_main, NULL) != 0)
        gm_fatal("runtime: cannot start the finalizer thread");
    pthread_attr_destroy(&a);
    finq_thread_started = true;
}

void gc_finq_start_thread(void) { pthread_once(&finq_once, start_thread); }

void gm_finalizers_on_demand(bool on)
{
    gc_ensure_init();
    pthread_mutex_lock(&finq_mu);
    atomic_store_explicit(&on_demand_a, on, memory_order_relaxed);
    pthread_cond_broadcast(&finq_cv);          /* off: the thread resumes the queue */
    pthread_mutex_unlock(&finq_mu);
}

size_t gm_run_finalizers(void)
{
    gc_ensure_init();
    (void)gc_thread_auto();                    /* finalizers touch the heap: a mutator */
    size_t n = 0;
    while (run_one()) {
        ran_one();
        n++;
    }
    if (n) scrub_stack();
    return n;
}

void gm_finalizers_wait(void)
{
    gc_ensure_init();
    while (atomic_load_explicit(&on_demand_a, memory_order_relaxed)) {
        gm_run_finalizers();                   /* others may be running entries: wait for them */
        pthread_mutex_lock(&finq_mu);
        bool done = finq_pending == 0;
        pthread_mutex_unlock(&finq_mu);
        if (done) return;
        gm_blocking_begin();
        usleep(1000);
        gm_blocking_end();
    }
    gc_finq_start_thread();
    gm_blocking_begin();
    pthread_mutex_lock(&finq_mu);
    while (finq_pending) pthread_cond_wait(&finq_done_cv, &finq_mu);
    pthread_mutex_unlock(&finq_mu);
    gm_blocking_end();
}
