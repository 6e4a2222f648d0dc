/* mark.c - roots, the mark work queue and object scanning.
 *
 * TRI-COLOUR.  White: mark bit clear.  Grey: mark bit set and the object is
 * on the work queue (or noscan, which is grey and black at once).  Black:
 * mark bit set and scanned.  The invariant the collector keeps is the strong
 * one: a black object never points to a white object.  Under stop-the-world
 * it holds trivially (nothing writes while the queue drains); issue 5 keeps
 * it with the hybrid barrier in barrier.c, which shades through gc_shade,
 * the single entry that turns white into grey.  Marking ends when the queue
 * is empty: every object reachable from a root is then black.
 *
 * PRECISION.  Stacks, saved registers and registered root ranges are scanned
 * conservatively: any aligned word that points into an allocated object
 * (interior pointers included) marks that object.  Heap objects are scanned
 * through their heap bits (typed small objects), their span's type (typed
 * large objects), or word by word (conservative objects).  A word marked as
 * a pointer may still hold a non-heap address; gc_find_object filters it.
 *
 * The scanners read stacks and user ranges that sanitizers consider off
 * limits (redzones, other threads' frames): they are built without ASan and
 * TSan instrumentation.
 */
#include "gc/gc_internal.h"

#include <stdlib.h>
#include <string.h>

#define GC_NO_SANITIZE __attribute__((no_sanitize("address", "thread")))

gc_workbuf gc_work;
uint64_t gc_marked_bytes;
uint64_t gc_scan_roots_bytes, gc_scan_stack_bytes, gc_scan_global_bytes;

/* ---- registered root ranges ------------------------------------------------ */
typedef struct root_range { uintptr_t start; size_t len; } root_range;
static pthread_mutex_t roots_mu = PTHREAD_MUTEX_INITIALIZER;
static root_range *roots;
static size_t nroots, caproots;

void gm_root_add(void *start, size_t len)
{
    gc_ensure_init();
    if (!start || len == 0) return;
    pthread_mutex_lock(&roots_mu);
    if (nroots == caproots) {
        size_t nc = caproots ? caproots * 2 : 16;
        root_range *nr = realloc(roots, nc * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&roots_mu);
            gm_errorf("gm_root_add: out of memory; range not registered");
            return;
        }
        roots = nr;
        caproots = nc;
    }
    roots[nroots++] = (root_range){(uintptr_t)start, len};
    pthread_mutex_unlock(&roots_mu);
}

void gm_root_remove(void *start)
{
    gc_ensure_init();
    pthread_mutex_lock(&roots_mu);
    for (size_t i = nroots; i-- > 0;)
        if (roots[i].start == (uintptr_t)start) {
            roots[i] = roots[--nroots];
            pthread_mutex_unlock(&roots_mu);
            return;
        }
    pthread_mutex_unlock(&roots_mu);
    gm_errorf("gm_root_remove: %p is not a registered root", start);
}

uint64_t gc_roots_bytes(void)
{
    uint64_t b = 0;
    pthread_mutex_lock(&roots_mu);
    for (size_t i = 0; i < nroots; i++) b += roots[i].len;
    pthread_mutex_unlock(&roots_mu);
    return b;
}

/* ---- the work queue ---------------------------------------------------------- */

void gc_mark_init(void)
{
    gc_work.cap = 4096;
    gc_work.buf = malloc(gc_work.cap * sizeof(uintptr_t));
    if (!gc_work.buf) gm_fatal("runtime: out of memory (mark queue)");
}

__attribute__((noinline)) static void work_grow(gc_workbuf *w)
{
    size_t nc = w->cap ? w->cap * 2 : 4096;
    uintptr_t *nb = realloc(w->buf, nc * sizeof *nb);
    if (!nb) gm_fatal("runtime: out of memory (mark queue)");
    w->buf = nb;
    w->cap = nc;
}

static inline void work_push(gc_workbuf *w, uintptr_t p)
{
    if (GM_UNLIKELY(w->n == w->cap)) work_grow(w);
    w->buf[w->n++] = p;
}

static inline uint64_t span_obj_bytes(const gc_span *s)
{
    return s->sizeclass ? s->elemsize : (uint64_t)s->npages * GC_PAGE_SIZE;
}

/* white -> grey.  With several mark workers the bit is set with an atomic
 * OR and only the worker that flipped it queues the object. */
__attribute__((always_inline)) static inline void grey_object(gc_workbuf *w, gc_span *s, uint32_t idx,
                                                              uintptr_t base)
{
    uint64_t *word = &s->mark_bits[idx >> 6];
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (__atomic_load_n(word, __ATOMIC_RELAXED) & bit) return;
    if (w->shared) {
        if (__atomic_fetch_or(word, bit, __ATOMIC_RELAXED) & bit) return;
    } else {
        __atomic_store_n(word, __atomic_load_n(word, __ATOMIC_RELAXED) | bit, __ATOMIC_RELAXED);
    }
    w->marked += span_obj_bytes(s);
    if (!s->noscan) work_push(w, base);
}

__attribute__((always_inline)) static inline void shade_word(gc_workbuf *w, uintptr_t p)
{
    gc_span *s;
    uint32_t i;
    uintptr_t base = gc_find_object(p, &s, &i);
    if (base) grey_object(w, s, i, base);
}

/* Single-threaded contexts (roots, specials, the barrier): the collector's
 * own buffer. */
void gc_shade(uintptr_t p) { shade_word(&gc_work, p); }

/* Roots: stacks and user ranges (uninstrumented; calls the out-of-line
 * gc_shade, since sanitizer attributes forbid inlining across them). */
GC_NO_SANITIZE void gc_scan_range_conservative(uintptr_t lo, uintptr_t hi)
{
    lo = (lo + WORD_SIZE - 1) & ~(uintptr_t)(WORD_SIZE - 1);
    for (uintptr_t a = lo; a + WORD_SIZE <= hi; a += WORD_SIZE)
        gc_shade(*(const volatile uintptr_t *)a);
}

/* ---- scanning heap objects ------------------------------------------------------ */

/* Heap objects allocated conservative: heap memory is never poisoned. */
static void scan_heap_conservative(gc_workbuf *w, uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t a = lo; a + WORD_SIZE <= hi; a += WORD_SIZE) shade_word(w, *(const uintptr_t *)a);
}

static void scan_large_typed(gc_workbuf *w, uintptr_t base, const gm_type *t, size_t count)
{
    size_t tw = t->size / WORD_SIZE;
    for (size_t e = 0; e < count; e++) {
        const uintptr_t *elem = (const uintptr_t *)(base + e * t->size);
        for (size_t j = 0; j < tw; j++)
            if ((t->ptrmask[j / 8] >> (j % 8)) & 1) shade_word(w, elem[j]);
    }
}

__attribute__((always_inline)) static inline void scan_small(gc_workbuf *w, uintptr_t base,
                                                             const gc_span *s)
{
    size_t wo = (base - s->base) / WORD_SIZE, n = s->elemsize / WORD_SIZE;
    const uint64_t *hb = s->heap_bits;
    const uintptr_t *obj = (const uintptr_t *)base;
    for (size_t i = 0; i < n;) {
        size_t b = wo + i, sh = b & 63;
        uint64_t bits = hb[b >> 6] >> sh;
        size_t take = 64 - sh;
        if (take > n - i) take = n - i;
        if (take < 64) bits &= ((uint64_t)1 << take) - 1;
        while (bits) {
            unsigned tz = (unsigned)__builtin_ctzll(bits);
            shade_word(w, obj[i + tz]);
            bits &= bits - 1;
        }
        i += take;
    }
}

__attribute__((always_inline)) static inline void scan_object(gc_workbuf *w, uintptr_t base, gc_span *s)
{
    if (s->noscan) return;
    if (GM_UNLIKELY(s->sizeclass == 0)) {
        if (s->conservative) scan_heap_conservative(w, base, s->limit);
        else if (s->type) scan_large_typed(w, base, s->type, s->count);
        return;
    }
    scan_small(w, base, s);
}

void gc_scan_object_referents(uintptr_t base, gc_span *s) { scan_object(&gc_work, base, s); }

/* ---- draining ------------------------------------------------------------------- */

/* Objects popped from the work stack pass through a small FIFO before they
 * are scanned; each is prefetched on entry, so its memory is (more likely)
 * in cache by the time it leaves.  The depth-first stack alone would scan an
 * object right after discovering it, with no time for the load. */
#define PREFETCH_RING 16

/* Parallel marking (the world is stopped).  Workers share grey objects
 * through a pool of chunks under pool.mu: a worker that sees an idle worker
 * (checked every 16 objects) gives away part of its stack (donate); a
 * worker that runs dry takes a chunk or, if none is left, goes idle.  Marking is over when every worker is idle and the pool
 * is empty (then no grey object exists anywhere). */
#define CHUNK 512
typedef struct chunk { struct chunk *next; size_t n; uintptr_t p[CHUNK]; } chunk;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* chunks arrived, or done */
    chunk *full, *spare;        /* under mu */
    int nworkers;
    _Atomic int nidle;          /* written under mu; read without it as a hint */
    bool done;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 1, 0, false };

/* Gives part of w's stack to the pool.  A short stack gives its older half
 * (for a tree, the roots of the biggest unexplored subtrees); a long one
 * gives CHUNK of its newest entries (O(CHUNK), no shifting). */
static void donate(gc_workbuf *w)
{
    if (w->n < 2) return;
    pthread_mutex_lock(&pool.mu);
    chunk *c = pool.spare;
    if (c) pool.spare = c->next;
    else if (!(c = malloc(sizeof *c))) { pthread_mutex_unlock(&pool.mu); return; }
    if (w->n > 4 * CHUNK) {
        w->n -= CHUNK;
        memcpy(c->p, w->buf + w->n, CHUNK * sizeof(uintptr_t));
        c->n = CHUNK;
    } else {
        size_t k = w->n / 2 < CHUNK ? w->n / 2 : CHUNK;
        memcpy(c->p, w->buf, k * sizeof(uintptr_t));
        memmove(w->buf, w->buf + k, (w->n - k) * sizeof(uintptr_t));
        w->n -= k;
        c->n = k;
    }
    c->next = pool.full;
    pool.full = c;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
}

/* Refills w from the pool; false when marking is over. */
static bool take(gc_workbuf *w)
{
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        if (pool.full) {
            chunk *c = pool.full;
            pool.full = c->next;
            while (w->cap < c->n) work_grow(w);
            memcpy(w->buf, c->p, c->n * sizeof(uintptr_t));
            w->n = c->n;
            c->next = pool.spare;
            pool.spare = c;
            pthread_mutex_unlock(&pool.mu);
            return true;
        }
        if (pool.done) break;
        atomic_fetch_add_explicit(&pool.nidle, 1, memory_order_relaxed);
        if (atomic_load_explicit(&pool.nidle, memory_order_relaxed) == pool.nworkers) {
            pool.done = true;
            pthread_cond_broadcast(&pool.cv);
            break;
        }
        pthread_cond_wait(&pool.cv, &pool.mu);
        atomic_fetch_sub_explicit(&pool.nidle, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool.mu);
    return false;
}

static void drain(gc_workbuf *w)
{
    uintptr_t ring[PREFETCH_RING];
    unsigned head = 0, n = 0, polls = 0;
    for (;;) {
        while (n < PREFETCH_RING && w->n) {
            uintptr_t q = w->buf[--w->n];
            __builtin_prefetch((const void *)q);
            ring[(head + n) & (PREFETCH_RING - 1)] = q;
            n++;
        }
        if (n == 0) {
            if (!w->shared || !take(w)) break;
            continue;
        }
        uintptr_t p = ring[head];
        head = (head + 1) & (PREFETCH_RING - 1);
        n--;
        gc_span *s = gc_span_of(p);
        if (GM_UNLIKELY(!s)) gm_fatal("gc: grey object outside the heap");
        scan_object(w, p, s);
        if (w->shared && (++polls & 15) == 0 && w->n >= 2 &&
            atomic_load_explicit(&pool.nidle, memory_order_relaxed) > 0)
            donate(w);
    }
}

void gc_mark_drain(void)
{
    drain(&gc_work);
    gc_marked_bytes += gc_work.marked;
    gc_work.marked = 0;
}

/* ---- mark helper threads ------------------------------------------------------------ */

#define MAX_HELPERS 7
static pthread_mutex_t helpers_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helpers_cv = PTHREAD_COND_INITIALIZER;   /* a new phase */
static pthread_cond_t helpers_done_cv = PTHREAD_COND_INITIALIZER;
static int nhelpers_started, helpers_running;
static uint64_t helpers_gen;                 /* under helpers_mu */
static gc_workbuf helper_work[MAX_HELPERS];

static void *helper_main(void *arg)
{
    gc_workbuf *w = arg;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&helpers_mu);
        while (helpers_gen == seen) pthread_cond_wait(&helpers_cv, &helpers_mu);
        seen = helpers_gen;
        pthread_mutex_unlock(&helpers_mu);
        w->shared = true;
        w->marked = 0;
        if (take(w)) drain(w);
        pthread_mutex_lock(&helpers_mu);
        if (--helpers_running == 0) pthread_cond_broadcast(&helpers_done_cv);
        pthread_mutex_unlock(&helpers_mu);
    }
    return NULL;
}

/* fork: the helpers do not exist in the child */
void gc_mark_fork_child(void)
{
    nhelpers_started = 0;
    helpers_running = 0;
    pthread_cond_init(&helpers_cv, NULL);
    pthread_cond_init(&helpers_done_cv, NULL);
}

static int start_helpers(int want)
{
    if (want > MAX_HELPERS) want = MAX_HELPERS;
    while (nhelpers_started < want) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &a, helper_main, &helper_work[nhelpers_started]);
        pthread_attr_destroy(&a);
        if (rc != 0) break;
        nhelpers_started++;
    }
    return nhelpers_started < want ? nhelpers_started : want;
}

/* The main drain of a cycle (the world is stopped): on gc_opt.gcworkers
 * threads once the heap is big enough for sharing to pay (8 MiB live or
 * cached); the helpers sleep until the collector has work to give away. */
#define PARALLEL_MIN_HEAP ((uint64_t)8 << 20)

void gc_mark_drain_parallel(void)
{
    int want = gc_opt.gcworkers - 1;
    if (want <= 0 || atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed) < PARALLEL_MIN_HEAP) {
        gc_mark_drain();
        return;
    }
    int helpers = start_helpers(want);
    if (helpers < nhelpers_started) helpers = nhelpers_started;  /* every started one wakes */
    if (helpers == 0) {
        gc_mark_drain();
        return;
    }
    pool.nworkers = helpers + 1;
    atomic_store_explicit(&pool.nidle, 0, memory_order_relaxed);
    pool.done = false;
    gc_work.shared = true;
    for (int k = 0; k < 2 * helpers && gc_work.n >= 2; k++) donate(&gc_work); /* seed */
    pthread_mutex_lock(&helpers_mu);
    helpers_running = helpers;
    helpers_gen++;
    pthread_cond_broadcast(&helpers_cv);
    pthread_mutex_unlock(&helpers_mu);
    drain(&gc_work);
    pthread_mutex_lock(&helpers_mu);
    while (helpers_running > 0) pthread_cond_wait(&helpers_done_cv, &helpers_mu);
    pthread_mutex_unlock(&helpers_mu);
    gc_work.shared = false;
    uint64_t marked = gc_work.marked;
    for (int i = 0; i < helpers; i++) marked += helper_work[i].marked;
    gc_marked_bytes += marked;
    gc_work.marked = 0;
}

/* ---- roots ------------------------------------------------------------------------ */

static void scan_thread(gc_thread *t, void *arg)
{
    (void)arg;
    uintptr_t lo = t->saved_sp, hi = t->stack_hi;
    if (lo < t->stack_lo || lo > hi) lo = t->stack_lo;   /* never happens; be safe */
    gc_scan_range_conservative(lo, hi);
    gc_scan_range_conservative((uintptr_t)t->regs, (uintptr_t)(t->regs + GC_NREGS));
    gc_scan_stack_bytes += hi - lo;
}

void gc_mark_roots(void)
{
    gc_scan_stack_bytes = gc_scan_global_bytes = 0;
    gc_for_each_thread(scan_thread, NULL);
    pthread_mutex_lock(&roots_mu);
    for (size_t i = 0; i < nroots; i++) {
        gc_scan_range_conservative(roots[i].start, roots[i].start + roots[i].len);
        gc_scan_global_bytes += roots[i].len;
    }
    pthread_mutex_unlock(&roots_mu);
    gc_special_mark_roots();
    gc_scan_roots_bytes = gc_scan_stack_bytes + gc_scan_global_bytes;
}
