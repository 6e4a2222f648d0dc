/* mark.c - roots, the mark work queues, object scanning, and gccheckmark.
 *
 * TRI-COLOUR.  White: mark bit clear.  Grey: mark bit set and the object is
 * on a work queue (or noscan, which is grey and black at once).  Black: mark
 * bit set and scanned.  gc_shade / grey_object is the single entry that
 * turns white into grey.  Marking ends when no grey object is left anywhere
 * (the global queue, every worker's buffer, every thread's write-barrier
 * buffer) and every thread's stack has been scanned.
 *
 * CONCURRENT MARK (collect.c runs the cycle).  While the world runs
 * the collector keeps the WEAK tri-colour invariant of Go's hybrid barrier
 * (design 17503): every white object that a black object or a scanned
 * ("black") stack points to is reachable from a grey object through white
 * objects.  Why it holds, for C:
 *   1. Objects allocated while marking are black (alloc.c), and their
 *      memory is zeroed, so they start with no pointer at all.
 *   2. Every store of a pointer into a heap object or a registered root
 *      range goes through gm_store / gm_typed_memmove / gm_typed_memclr /
 *      gm_atomic_* (the CONTRACT, docs/gc.md), and while gc_wb_enabled_a is
 *      set those shade both the value overwritten (deletion half: a white
 *      object cut off from its grey protector is greyed) and the value
 *      written (insertion half: a pointer taken from a not-yet-scanned stack
 *      into a black object is greyed).  Shading is buffered per thread
 *      (GC_WBBUF entries) and the buffers are flushed when full and, with
 *      the world stopped, at mark termination, before it decides that no
 *      grey object is left.
 *   3. Stacks and registers have no barrier (they are scanned
 *      conservatively).  Each thread's stack is scanned once per cycle, by
 *      the thread itself at a safepoint or by the collector while the
 *      thread is parked or blocking (it cannot resume until the scan ends,
 *      thread.c).  Before its scan a stack is grey: whatever it points to is
 *      found by the scan, or was stored into the heap through the barrier's
 *      insertion half.  After its scan a thread obtains pointers only from
 *      allocation (black) or by loading them from the heap / root ranges,
 *      where rule 2's deletion half greys them before their last heap
 *      reference disappears.  Threads must not pass GC pointers to each
 *      other through memory that is neither GC heap nor a root range (the
 *      same rule as under stop-the-world).  Mark termination then scans
 *      every stack once more with the world stopped (gc_stacks_finish): a
 *      conservative scan cannot tell a stale slot from a live one, and a
 *      frame pushed after a thread's first scan can expose old values in
 *      slots it has not written yet.  Without the rescan such a value is
 *      reachable to checkmark (which scans the same stacks) but unmarked --
 *      a false alarm, found by scripts/soak.sh.  With it, what the stacks
 *      hold at termination is kept this cycle, which also makes a heap-to-
 *      stack move safe without the deletion half; the cost is a pause that
 *      grows with the total depth of the stacks (a few KiB per thread
 *      here: microseconds).
 *   4. Registered root ranges are scanned at mark start and scanned again
 *      with the world stopped at mark termination: a range registered
 *      during the cycle, or a pointer stored into a range with a plain
 *      store, is still found.  The program's data and bss segments are
 *      roots too, with no barrier at all: scanned at mark start, and at
 *      termination again, whole or only the pages written since (soft-dirty
 *      bits); the argument is in globals.c.  With every stack rescanned at
 *      termination (rule 3), a plain store that removes a pointer from a
 *      global or a range is safe as well.
 *   5. Specials (finalizer referents, cleanup args, weak handles, the
 *      finalizer queue) are roots scanned at mark start and again at mark
 *      termination (records made during the mark); gm_weak_get shades its
 *      result while marking (a weak-to-strong conversion is a load).
 * Any thread may grey objects concurrently: mark bits are set with an atomic
 * OR while marking runs concurrently, and only the thread whose OR flipped
 * the bit queues the object.  gccheckmark (below) re-marks from scratch with
 * the world stopped and verifies that nothing reachable was left white.
 *
 * QUEUES.  Each thread greys into its own gc_workbuf (a stack; the thread-
 * local one while the world runs, gc_work while it is stopped) and
 * publishes it to the global queue (chunks of CHUNK entries under wq.mu)
 * after each bounded step: a barrier flush, a stack scan, an assist, a
 * background-worker step.  Drainers take chunks from the global queue.  So
 * at a safepoint no thread holds grey objects of its own.
 *
 * PRECISION.  Stacks, saved registers and registered root ranges are scanned
 * conservatively: any aligned word that points into an allocated object
 * (interior pointers included) marks that object.  Heap objects are scanned
 * through their heap bits (typed small objects), their span's type (typed
 * large objects), or word by word (conservative objects).  A word marked as
 * a pointer may still hold a non-heap address; gc_find_object filters it.
 *
 * The scanners read stacks and user ranges that sanitizers consider off
 * limits (redzones, other threads' frames), and heap words that mutators
 * write at the same time (the race is the design: the barrier makes it
 * safe): they are built without ASan / TSan instrumentation.
 */
#include "gc/gc_internal.h"

#include <stdlib.h>
#include <string.h>

#define GC_NO_SANITIZE __attribute__((no_sanitize("address", "thread")))
#define GC_NO_TSAN __attribute__((no_sanitize("thread")))

gc_workbuf gc_work;
uint64_t gc_marked_bytes;
uint64_t gc_scan_roots_bytes, gc_scan_stack_bytes, gc_scan_global_bytes;

static void scan_range(gc_workbuf *w, uintptr_t lo, uintptr_t hi);

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
            /* while marking, a range that goes away is a deletion: shade it */
            gc_workbuf *w = NULL;
            if (atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)) {
                w = gc_cur_work();
                scan_range(w, roots[i].start, roots[i].start + roots[i].len);
            }
            roots[i] = roots[--nroots];
            pthread_mutex_unlock(&roots_mu);
            if (w && w != &gc_work) gc_work_publish(w);
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

_Atomic bool gc_mark_concurrent_a;
_Atomic uint64_t gc_marked_bytes_a, gc_scan_work_a;
static _Thread_local gc_workbuf tls_work;

gc_workbuf *gc_cur_work(void)
{
    if (atomic_load_explicit(&gc_mark_concurrent_a, memory_order_relaxed)) {
        tls_work.shared = true;
        return &tls_work;
    }
    return &gc_work;
}

__attribute__((noinline)) static void checkmark_unmarked(gc_workbuf *w, gc_span *s, uintptr_t base);

/* white -> grey.  With several mark workers the bit is set with an atomic
 * OR and only the worker that flipped it queues the object.  The checkmark
 * re-mark uses its own bits and reports what the real mark missed. */
__attribute__((always_inline)) GC_NO_TSAN static inline void grey_object(gc_workbuf *w, gc_span *s,
                                                                         uint32_t idx, uintptr_t base)
{
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (GM_UNLIKELY(w->checkmark)) {
        uint64_t *ck = &s->ckbits[idx >> 6];
        if (*ck & bit) return;
        *ck |= bit;
        if (!(__atomic_load_n(&s->mark_bits[idx >> 6], __ATOMIC_RELAXED) & bit))
            checkmark_unmarked(w, s, base);
        if (!s->noscan) work_push(w, base);
        return;
    }
    uint64_t *word = &s->mark_bits[idx >> 6];
    if (__atomic_load_n(word, __ATOMIC_RELAXED) & bit) return;
    if (w->shared) {
        if (__atomic_fetch_or(word, bit, __ATOMIC_RELAXED) & bit) return;
    } else {
        __atomic_store_n(word, __atomic_load_n(word, __ATOMIC_RELAXED) | bit, __ATOMIC_RELAXED);
    }
    w->marked += span_obj_bytes(s);
    if (!s->noscan) work_push(w, base);
}

__attribute__((always_inline)) GC_NO_TSAN static inline void shade_word(gc_workbuf *w, uintptr_t p)
{
    gc_span *s;
    uint32_t i;
    uintptr_t base = gc_find_object(p, &s, &i);
    if (base) grey_object(w, s, i, base);
}

/* Roots, specials, the barrier: the current thread's buffer (see QUEUES);
 * a caller that runs while the world runs publishes it afterwards. */
GC_NO_TSAN void gc_shade(uintptr_t p) { shade_word(gc_cur_work(), p); }
GC_NO_TSAN void gc_shade_into(gc_workbuf *w, uintptr_t p) { shade_word(w, p); }

/* Roots: stacks and user ranges (uninstrumented). */
GC_NO_SANITIZE static void scan_range(gc_workbuf *w, uintptr_t lo, uintptr_t hi)
{
    lo = (lo + WORD_SIZE - 1) & ~(uintptr_t)(WORD_SIZE - 1);
    for (uintptr_t a = lo; a + WORD_SIZE <= hi; a += WORD_SIZE)
        shade_word(w, *(const volatile uintptr_t *)a);
}

void gc_scan_range_conservative(uintptr_t lo, uintptr_t hi) { scan_range(gc_cur_work(), lo, hi); }
void gc_scan_range_into(gc_workbuf *w, uintptr_t lo, uintptr_t hi) { scan_range(w, lo, hi); }

/* ---- scanning heap objects ------------------------------------------------------ */

/* Heap objects allocated conservative: heap memory is never poisoned. */
GC_NO_TSAN static void scan_heap_conservative(gc_workbuf *w, uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t a = lo; a + WORD_SIZE <= hi; a += WORD_SIZE) shade_word(w, *(const uintptr_t *)a);
}

GC_NO_TSAN static void scan_large_typed(gc_workbuf *w, uintptr_t base, const gm_type *t, size_t count)
{
    size_t tw = t->size / WORD_SIZE;
    for (size_t e = 0; e < count; e++) {
        const uintptr_t *elem = (const uintptr_t *)(base + e * t->size);
        for (size_t j = 0; j < tw; j++)
            if ((t->ptrmask[j / 8] >> (j % 8)) & 1) shade_word(w, elem[j]);
    }
}

__attribute__((always_inline)) GC_NO_TSAN static inline void scan_small(gc_workbuf *w, uintptr_t base,
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

__attribute__((always_inline)) GC_NO_TSAN static inline void scan_object(gc_workbuf *w, uintptr_t base,
                                                                         gc_span *s)
{
    if (s->noscan) return;
    w->scanned += span_obj_bytes(s);
    if (GM_UNLIKELY(s->sizeclass == 0)) {
        if (s->conservative) scan_heap_conservative(w, base, s->limit);
        else if (s->type) scan_large_typed(w, base, s->type, s->count);
        return;
    }
    scan_small(w, base, s);
}

GC_NO_TSAN void gc_scan_object_referents(uintptr_t base, gc_span *s)
{
    gc_workbuf *w = gc_cur_work();
    if (w->checkmark) w->parent = base;
    scan_object(w, base, s);
}

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

GC_NO_TSAN static void drain(gc_workbuf *w)
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
        w->parent = p;
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

/* ---- the global queue (concurrent mark) -------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    chunk *full, *spare;        /* under mu */
    _Atomic size_t nfull_a;     /* chunks on full; read without mu as a hint */
} wq = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0 };

/* Moves every grey object of w to the global queue and adds its counters to
 * the cycle's totals; w is empty afterwards. */
void gc_work_publish(gc_workbuf *w)
{
    if (w->marked) atomic_fetch_add_explicit(&gc_marked_bytes_a, w->marked, memory_order_relaxed);
    if (w->scanned) atomic_fetch_add_explicit(&gc_scan_work_a, w->scanned, memory_order_relaxed);
    w->marked = w->scanned = 0;
    if (!w->n) return;
    pthread_mutex_lock(&wq.mu);
    while (w->n) {
        chunk *c = wq.spare;
        if (c) wq.spare = c->next;
        else if (!(c = malloc(sizeof *c))) gm_fatal("runtime: out of memory (mark queue)");
        size_t k = w->n < CHUNK ? w->n : CHUNK;
        w->n -= k;
        memcpy(c->p, w->buf + w->n, k * sizeof(uintptr_t));
        c->n = k;
        c->next = wq.full;
        wq.full = c;
        atomic_fetch_add_explicit(&wq.nfull_a, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&wq.mu);
}

static bool wq_take(gc_workbuf *w)
{
    if (!atomic_load_explicit(&wq.nfull_a, memory_order_relaxed)) return false;
    pthread_mutex_lock(&wq.mu);
    chunk *c = wq.full;
    if (c) {
        wq.full = c->next;
        atomic_fetch_sub_explicit(&wq.nfull_a, 1, memory_order_relaxed);
        while (w->cap - w->n < c->n) work_grow(w);
        memcpy(w->buf + w->n, c->p, c->n * sizeof(uintptr_t));
        w->n += c->n;
        c->next = wq.spare;
        wq.spare = c;
    }
    pthread_mutex_unlock(&wq.mu);
    return c != NULL;
}

bool gc_wq_empty(void) { return atomic_load_explicit(&wq.nfull_a, memory_order_relaxed) == 0; }

/* Scans grey objects from w and the global queue until about `budget` bytes
 * of scan work are done or no grey object is left (or *stop is set), then
 * publishes what is left.  Returns the scan work done. */
_Atomic int gc_mark_drainers_a;

GC_NO_TSAN uint64_t gc_mark_drain_some(gc_workbuf *w, uint64_t budget, _Atomic bool *stop)
{
    uint64_t done = 0;
    atomic_fetch_add_explicit(&gc_mark_drainers_a, 1, memory_order_acq_rel);
    for (;;) {
        if (!w->n && !wq_take(w)) break;
        uint64_t start = w->scanned;
        unsigned k = 0;
        while (w->n) {
            uintptr_t p = w->buf[--w->n];
            if (w->n) __builtin_prefetch((const void *)w->buf[w->n - 1]);
            gc_span *s = gc_span_of(p);
            if (GM_UNLIKELY(!s)) gm_fatal("gc: grey object outside the heap");
            scan_object(w, p, s);
            if ((++k & 63) == 0 && (w->scanned - start + done >= budget ||
                                    (stop && atomic_load_explicit(stop, memory_order_relaxed))))
                break;
        }
        done += w->scanned - start;
        if (done >= budget || (stop && atomic_load_explicit(stop, memory_order_relaxed))) break;
    }
    gc_work_publish(w);
    atomic_fetch_sub_explicit(&gc_mark_drainers_a, 1, memory_order_acq_rel);
    return done;
}

uint64_t gc_mark_drain_some_mine(uint64_t budget)
{
    tls_work.shared = true;
    return gc_mark_drain_some(&tls_work, budget, NULL);
}

void gc_work_publish_mine(void) { gc_work_publish(&tls_work); }

/* The calling thread stops being a mutator: its buffer goes. */
void gc_mark_thread_exit(void)
{
    gc_work_publish(&tls_work);
    free(tls_work.buf);
    tls_work.buf = NULL;
    tls_work.cap = 0;
}

/* ---- the write-barrier buffer ---------------------------------------------------- */

/* Shades every value in t's buffer into w.  The caller is t itself, or the
 * collector with the world stopped. */
_Atomic uint64_t gc_wb_recorded_a;   /* values the barrier recorded (MemStats) */

void gc_wb_flush(gc_thread *t, gc_workbuf *w)
{
    if (t->wbn) atomic_fetch_add_explicit(&gc_wb_recorded_a, t->wbn, memory_order_relaxed);
    for (size_t i = 0; i < t->wbn; i++) gc_shade_into(w, t->wb[i]);
    t->wbn = 0;
}

/* ---- roots ------------------------------------------------------------------------ */

/* The stack above lo and the saved registers of t.  The caller holds t's
 * stack (t is the calling thread, or t cannot run: STK_SCANNING or the world
 * is stopped). */
static void scan_stack(gc_workbuf *w, gc_thread *t, uintptr_t lo)
{
    uintptr_t hi = t->stack_hi;
    if (lo < t->stack_lo || lo > hi) lo = t->stack_lo;   /* never happens; be safe */
    if (w->checkmark) w->root = "a thread stack", w->parent = 0;
    scan_range(w, lo, hi);
    scan_range(w, (uintptr_t)t->regs, (uintptr_t)(t->regs + GC_NREGS));
    if (!w->checkmark) __atomic_fetch_add(&gc_scan_stack_bytes, hi - lo, __ATOMIC_RELAXED);
}

/* A parked or blocking thread's stack (saved_sp and regs are valid). */
void gc_scan_thread_stack(gc_thread *t, gc_workbuf *w) { scan_stack(w, t, t->saved_sp); }

/* The calling thread's own stack, at a safepoint. */
__attribute__((noinline)) void gc_scan_own_stack(gc_thread *t)
{
    gc_save_regs(t->regs);
    tls_work.shared = true;
    scan_stack(&tls_work, t, gc_current_sp());
    gc_work_publish(&tls_work);
}

static void scan_thread(gc_thread *t, void *arg)
{
    scan_stack(arg, t, t->saved_sp);
}

/* Registered root ranges, into w. */
void gc_mark_root_ranges(gc_workbuf *w)
{
    if (!w->checkmark) gc_scan_global_bytes = 0;
    if (w->checkmark) w->root = "a root range (gm_root_add)", w->parent = 0;
    pthread_mutex_lock(&roots_mu);
    for (size_t i = 0; i < nroots; i++) {
        scan_range(w, roots[i].start, roots[i].start + roots[i].len);
        if (!w->checkmark) gc_scan_global_bytes += roots[i].len;
    }
    pthread_mutex_unlock(&roots_mu);
}

/* Stop-the-world mark: everything, into gc_work. */
void gc_mark_roots(void)
{
    gc_scan_stack_bytes = 0;
    gc_for_each_thread(scan_thread, &gc_work);
    gc_mark_root_ranges(&gc_work);
    gc_globals_mark(&gc_work, GLOBALS_FULL);
    gc_special_mark_roots();
    gc_scan_roots_bytes = gc_scan_stack_bytes + gc_scan_global_bytes;
}

/* ---- gccheckmark -------------------------------------------------------------------- */

/* After the mark is complete (world stopped, nothing grey), mark everything
 * again from the roots with the world stopped, into the separate ckbits.
 * Every object reachable now must carry a mark bit; one that does not was
 * missed by the concurrent mark (a barrier or stack-scan bug, or a store
 * that broke the contract): fatal, as Go's gccheckmark. */
static void ck_clear(void)
{
    size_t n;
    gc_span **all = gc_allspans(&n);
    for (size_t k = 0; k < n; k++) memset(all[k]->ckbits, 0, sizeof all[k]->ckbits);
}

__attribute__((noinline)) static void checkmark_unmarked(gc_workbuf *w, gc_span *s, uintptr_t base)
{
    const char *tn = s->sizeclass == 0 && s->type && s->type->name ? s->type->name
                     : s->conservative                             ? "(conservative)"
                     : s->noscan                                   ? "(noscan, type not recorded)"
                                                                   : "(type not recorded for small objects)";
    gm_errorf("runtime: checkmark found unmarked object obj=%#lx size=%llu type=%s span=%#lx class=%u",
              (unsigned long)base, (unsigned long long)span_obj_bytes(s), tn, (unsigned long)s->base,
              s->sizeclass);
    if (w->parent) {
        gc_span *ps = gc_span_of(w->parent);
        gm_errorf("runtime: reached from object %#lx size=%llu type=%s", (unsigned long)w->parent,
                  (unsigned long long)(ps ? span_obj_bytes(ps) : 0),
                  ps && ps->sizeclass == 0 && ps->type && ps->type->name ? ps->type->name : "?");
    } else {
        gm_errorf("runtime: reached directly from %s", w->root ? w->root : "a root");
    }
    gm_fatal("checkmark found unmarked object");
}

static gc_workbuf ck_work;

void gc_checkmark(void)
{
    ck_clear();
    ck_work.checkmark = true;
    ck_work.shared = false;
    gc_for_each_thread(scan_thread, &ck_work);
    gc_mark_root_ranges(&ck_work);
    gc_globals_mark(&ck_work, GLOBALS_FULL);
    gc_workbuf saved = gc_work;       /* specials shade through gc_cur_work() */
    gc_work = ck_work;
    gc_work.root = "a finalizer, cleanup or weak record";
    gc_work.parent = 0;
    gc_special_mark_roots();
    ck_work = gc_work;
    gc_work = saved;
    drain(&ck_work);
    ck_work.n = 0;
    ck_work.parent = 0;               /* no stale heap pointer in a global (globals.c) */
}

