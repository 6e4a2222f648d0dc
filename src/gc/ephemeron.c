/* ephemeron.c - ephemerons (Hayes 1997): a key held weakly and a value held
 * only while the key is reachable from somewhere other than the value.
 *
 * OBJECT.  An ephemeron is a GC object of a type with a trace function
 * (trace_fn.c), {key, value}, both written once by gm_ephemeron_new and
 * cleared together (world stopped) when the key dies.  The key word is never
 * reported to the collector; the value word is reported only when the key
 * is marked.
 *
 * THE MARK (mark.c, collect.c).  When a marker scans an ephemeron whose key
 * is already marked it greys the value, as an ordinary field.  Otherwise it
 * puts the ephemeron on the PENDING list (under eph_mu; each object is
 * scanned at most once per cycle, so at most once there).  An ephemeron
 * allocated while marking is black and is never scanned: gm_ephemeron_new
 * puts it on the list itself.  gc_ephemeron_progress greys the value of
 * every pending ephemeron whose key has become marked and drops it from the
 * list; marks only grow, so it may run concurrently with the mutators:
 *   - the mark worker calls it whenever it runs out of grey objects, before
 *     it tries to terminate, so most of the fixpoint runs concurrently;
 *   - mark termination (world stopped) calls it after its drain; if it
 *     greyed anything the pause ends as for any grey object left and
 *     concurrent marking resumes (after STW_TRIES attempts termination
 *     alternates drain and progress until progress greys nothing).
 * TERMINATION.  Every call that greys something removes at least one entry
 * from the list, and entries are added only by scanning (once per object)
 * or by allocation, which the stopped world excludes; so within one pause
 * the loop runs at most P+1 times for P pending ephemerons.  COST in the
 * pause: each progress call is one pass over the pending list (one
 * gc_find_object and one bit test per entry) plus the drain of what it
 * greyed.  The worst case is a chain of ephemerons whose keys are found
 * one per pass (e1's value is e2's key ...): O(P) passes, O(P^2) tests, if
 * the whole chain lands in the final pause; the concurrent passes normally
 * resolve it first.  An ephemeron whose key never gets marked costs one
 * test per pass.
 * CLEARING.  When no progress is possible and nothing is grey, every key on
 * the list is unreachable: gc_ephemeron_finish clears those ephemerons (key
 * and value NULL) with the world stopped, before any finalizer resurrects
 * its object (special.c calls it before queueing finalizers, and again
 * after the drain of their referents, which may scan more ephemerons).  So
 * a key that is only finalizer-reachable dies for its ephemerons, as for
 * weak handles.  A chain (each value the next key) whose head key is
 * unreachable is cleared whole in that one cycle: no value of the chain is
 * ever greyed.  checkmark re-marks with the same rule (value iff the key
 * carries the real mark bit, the fixpoint being complete by then), so a
 * value reachable only through a live key is verified, and a dead key's
 * value is not required to be marked.
 * READS.  gm_ephemeron_key / _value shade what they return while marking
 * (a weak-to-strong conversion, as gm_weak_get).  A key that is not a GC
 * heap pointer is always alive.
 */
#include "gc/gc_internal.h"

#include <stdlib.h>

struct gm_ephemeron { _Atomic uintptr_t key, value; };

static pthread_mutex_t eph_mu = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t *pend;          /* under eph_mu: ephemerons waiting for their key */
static size_t npend, cappend;
static _Atomic uint64_t epoch_a;

/* Marked this cycle, or not a heap object (then never collected). */
GC_RACY static bool key_marked(uintptr_t k)
{
    gc_span *s;
    uint32_t i;
    if (!gc_find_object(k, &s, &i)) return true;
    return (__atomic_load_n(&s->mark_bits[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1;
}

/* fork (special.c's gc_special_fork): phase 0 takes the lock, 1 releases it
 * (parent and child: the pending list is the child's too). */
void gc_ephemeron_fork(int phase)
{
    if (phase == 0) pthread_mutex_lock(&eph_mu);
    else pthread_mutex_unlock(&eph_mu);
}

static void pending_add(uintptr_t e)
{
    pthread_mutex_lock(&eph_mu);
    if (npend == cappend) {
        size_t nc = cappend ? cappend * 2 : 256;
        uintptr_t *np = realloc(pend, nc * sizeof *np);
        if (np == NULL) gm_fatal("runtime: out of memory (ephemeron list)");
        pend = np;
        cappend = nc;
    }
    pend[npend++] = e;
    pthread_mutex_unlock(&eph_mu);
}

/* The ephemeron type's trace function: ctx is the marker's gc_workbuf
 * (gc_trace_object passes it), so the scan can tell checkmark apart.  Racy
 * as every scanner (mark.c): a stale conservative word can grey a slot that
 * another thread is allocating and clearing at that moment (TSan saw this
 * read beside gm_ephemeron_new's zeroing); what it reads then is an old
 * pointer or zero, which at worst keeps an object a cycle longer. */
GC_RACY static void eph_trace(const void *obj, gm_visit_fn *visit, void *ctx)
{
    const struct gm_ephemeron *e = obj;
    gc_workbuf *w = ctx;
    uintptr_t k = atomic_load_explicit(&e->key, memory_order_relaxed);
    uintptr_t v = atomic_load_explicit(&e->value, memory_order_relaxed);
    if (k == 0 || v == 0) return;
    if (key_marked(k)) visit((void *)v, ctx);
    else if (!w->checkmark) pending_add((uintptr_t)e);
}

static const gm_type eph_type = { sizeof(struct gm_ephemeron), 8, NULL, NULL, NULL, 0, "gm_ephemeron",
                                  eph_trace };

size_t gc_ephemeron_progress(gc_workbuf *w)
{
    size_t n = 0;
    pthread_mutex_lock(&eph_mu);
    for (size_t i = 0; i < npend;) {
        struct gm_ephemeron *e = (struct gm_ephemeron *)pend[i];
        if (!key_marked(atomic_load_explicit(&e->key, memory_order_relaxed))) {
            i++;
            continue;
        }
        gc_shade_into(w, atomic_load_explicit(&e->value, memory_order_relaxed));
        pend[i] = pend[--npend];
        n++;
    }
    pthread_mutex_unlock(&eph_mu);
    return n;
}

void gc_ephemeron_finish(void)
{
    while (gc_ephemeron_progress(&gc_work)) gc_mark_drain();
    pthread_mutex_lock(&eph_mu);
    for (size_t i = 0; i < npend; i++) {
        struct gm_ephemeron *e = (struct gm_ephemeron *)pend[i];
        atomic_store_explicit(&e->key, 0, memory_order_relaxed);
        atomic_store_explicit(&e->value, 0, memory_order_relaxed);
    }
    if (npend) atomic_fetch_add_explicit(&epoch_a, 1, memory_order_relaxed);
    npend = 0;
    pthread_mutex_unlock(&eph_mu);
}

uint64_t gc_ephemeron_epoch(void) { return atomic_load_explicit(&epoch_a, memory_order_relaxed); }

/* ---- the public side ------------------------------------------------------------------ */

static void *read_shaded(const _Atomic uintptr_t *slot);

gm_ephemeron *gm_ephemeron_new(void *key, void *value)
{
    gc_ensure_init();
    struct gm_ephemeron *e = gm_new(&eph_type);
    if (key == NULL) return e;                 /* dead from the start */
    atomic_store_explicit(&e->key, (uintptr_t)key, memory_order_relaxed);
    atomic_store_explicit(&e->value, (uintptr_t)value, memory_order_relaxed);
    /* allocated black (no safepoint since the allocation): never scanned
     * this cycle, so it waits for its key like a scanned one -- unless the
     * key is marked already (a key allocated during this mark is: black),
     * and then its value is shaded now.  Queueing those too made the mark
     * worker's "a key was marked since" round find progress every time a
     * mutator added an entry, so a mark with threads putting into a weak
     * map could go on without end (test_map_weak's shared-by-threads case
     * hung under ASan). */
    if (GM_UNLIKELY(atomic_load_explicit(&gc_phase_a, memory_order_relaxed) != GC_OFF) && value) {
        if (key_marked((uintptr_t)key)) (void)read_shaded(&e->value);
        else pending_add((uintptr_t)e);
    }
    return e;
}

static void *read_shaded(const _Atomic uintptr_t *slot)
{
    uintptr_t p = atomic_load_explicit(slot, memory_order_acquire);
    if (p && GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed))) {
        gc_workbuf *wk = gc_cur_work();
        gc_shade_into(wk, p);
        if (wk != &gc_work) gc_work_publish(wk);
    }
    return (void *)p;
}

bool gc_ephemeron_dead(const gm_ephemeron *e)
{
    return atomic_load_explicit(&e->key, memory_order_acquire) == 0;
}

void *gm_ephemeron_key(const gm_ephemeron *e) { return e ? read_shaded(&e->key) : NULL; }

void *gm_ephemeron_value(const gm_ephemeron *e)
{
    if (e == NULL || atomic_load_explicit(&e->key, memory_order_acquire) == 0) return NULL;
    return read_shaded(&e->value);
}
