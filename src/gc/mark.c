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
 *   6. Ephemerons (ephemeron.c) are the one edge greyed late: a value only
 *      once its key is marked, by a fixpoint that runs whenever the worker
 *      runs dry and in the termination pause; "no grey object left" there
 *      also means "no pending ephemeron with a marked key".  Objects whose
 *      type has a trace function (trace_fn.c) are scanned through it, and
 *      stores into their undecodable slots go through gm_barrier, which is
 *      rule 2's barrier.
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
 * at a safepoint no thread holds grey objects of its own.  A work item is a
 * grey object (object queue, large objects, checkmark), a 128 KiB piece of a
 * large object (an address inside it: see scan_large), or, with the span
 * queue (the default, GMDEBUG=gcmarkqueue=span), a small object tagged with
 * bit 0 that stands for its span: the object alone if it is the only one of
 * the span greyed since the span was queued, else every marked-but-unscanned
 * object of the span, together in address order (see "The span mark queue"
 * below).  Drains take items
 * through a 16-entry FIFO that prefetches each one; a drain clears the FIFO
 * when it returns, and the mark worker's own stack is not a root, so stale
 * slots of mark frames keep nothing alive.
 *
 * PRECISION.  Stacks, saved registers and registered root ranges are scanned
 * conservatively: any aligned word that points into an allocated object
 * (interior pointers included) marks that object.  Heap objects are scanned
 * through their heap bits (typed small objects), their span's type (typed
 * large objects), their type's trace function (types that decode their own
 * pointers: trace_fn.c), or word by word (conservative objects).  A word marked as
 * a pointer may still hold a non-heap address; gc_find_object filters it.
 *
 * The scanners read stacks and user ranges that sanitizers consider off
 * limits (redzones, other threads' frames), and heap words that mutators
 * write at the same time (the race is the design: the barrier makes it
 * safe): they are built without ASan / TSan instrumentation.
 */
#include "gc/gc_internal.h"

#include <errno.h>
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

#ifdef GOMAP_FAULT_INJECTION
#include "gc/gc_fault.h"
static _Atomic int fail_alloc_a;
int gm_gc_fault_fail_alloc(int n) { return atomic_exchange(&fail_alloc_a, n); }
/* true if this allocation is to fail (the switch counts down) */
static bool fault_fail_alloc(void)
{
    int n = atomic_load(&fail_alloc_a);
    while (n > 0)
        if (atomic_compare_exchange_weak(&fail_alloc_a, &n, n - 1)) return true;
    return false;
}
#else
static bool fault_fail_alloc(void) { return false; }
#endif

int gm_root_try_add(void *start, size_t len)
{
    gc_ensure_init();
    if (!start || len == 0 || (uintptr_t)start + len < (uintptr_t)start) {
        errno = EINVAL;
        return EINVAL;
    }
    pthread_mutex_lock(&roots_mu);
    if (nroots == caproots) {
        size_t nc = caproots ? caproots * 2 : 16;
        root_range *nr = fault_fail_alloc() ? NULL : realloc(roots, nc * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&roots_mu);
            errno = ENOMEM;
            return ENOMEM;
        }
        roots = nr;
        caproots = nc;
    }
    roots[nroots++] = (root_range){(uintptr_t)start, len};
    pthread_mutex_unlock(&roots_mu);
    return 0;
}

/* A range that could not be registered would leave the objects it holds
 * unprotected: the program cannot go on as if it had been. */
void gm_root_add(void *start, size_t len)
{
    if (!start || len == 0) return;
    int rc = gm_root_try_add(start, len);
    if (rc == ENOMEM) gm_fatal("gm_root_add: out of memory (use gm_root_try_add to handle it)");
    if (rc == EINVAL) gm_errorf("gm_root_add: range %p + %zu wraps around; not registered", start, len);
}

void gm_root_remove(void *start)
{
    gc_ensure_init();
    /* while marking, the removal shades the range (below): only a thread the
     * collector can stop may push grey objects (barrier.c, WHO MAY STORE) */
    if (atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)) {
        gc_thread *t = gc_self;
        if (!t) t = gc_thread_auto();
        if (t->blocking_depth) gc_blocking_misuse("gm_root_remove");
    }
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

/* The span mark queue (GMDEBUG=gcmarkqueue=span, after Go 1.26's Green
 * Tea).  A small object that turns grey only sets its mark bit; its span
 * goes on the work queue unless it is queued already.  The work item is
 * the address of the object that queued the span, tagged with bit 0 (the
 * drain prefetches the object, as in the object queue).  s->queued says
 * what the span holds while it waits:
 *   SQ_IDLE  not queued;
 *   SQ_ONE   queued by the item's object, and no other object of the span
 *            was greyed since (a marker that greys one moves ONE to MANY);
 *   SQ_MANY  queued, and more objects than the item's may wait.
 * ONE is Go's single-object case: most spans of a long-lived, sparsely
 * connected structure (quads' quad tree, a list) yield one object per visit,
 * and that object is scanned directly, like the object queue does, without
 * a pass over the span's bitmaps.  Its scan bit is claimed first; then
 * ONE -> IDLE releases the span, and if that fails (MANY: objects of the
 * span, often the object's own referents, were greyed while it was
 * scanned) the item goes on as a span scan.  scan_span scans every object
 * of the span that is marked but not yet scanned, in address order, claims
 * them in scan_bits, until none is left (a sparse span object by object:
 * the bit loop skips empty words).  Several markers run at once: a marker
 * sets the mark bit, then reads queued; a scanner, done, releases queued,
 * then reads the mark bits once more (all seq_cst).  So either the scanner
 * sees the new mark bit (and takes the span back as MANY, unless a marker
 * queued it meanwhile), or the marker sees IDLE and queues the span; a
 * marker that sees ONE moves it to MANY by compare-and-swap, so that the
 * ONE -> IDLE release of a single-object scan succeeds only if no object
 * of the span was greyed after the one it scanned: no grey object is left
 * behind.  An object is scanned once per cycle: scan_bits are claimed with
 * an atomic OR.  Objects allocated black get their scan bit with their
 * mark bit (alloc.c): they are born without pointers, as in the object
 * queue. */
#define SPAN_TAG ((uintptr_t)1)
enum { SQ_IDLE = 0, SQ_ONE = 1, SQ_MANY = 2 };

#ifdef GOMAP_FAULT_INJECTION
/* span-queue items scanned as one object / as a span (gm_gc_fault_span_scans) */
static _Atomic uint64_t span_one_a, span_many_a;
#define COUNT_SPAN_SCAN(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
void gm_gc_fault_span_scans(uint64_t *one, uint64_t *many)
{
    *one = atomic_exchange(&span_one_a, 0);
    *many = atomic_exchange(&span_many_a, 0);
}
#else
#define COUNT_SPAN_SCAN(c) ((void)0)
#endif

static inline void enqueue_span(gc_workbuf *w, gc_span *s, uintptr_t base)
{
    if (w->shared) {
        uint8_t q = __atomic_load_n(&s->queued, __ATOMIC_SEQ_CST);
        for (;;) {
            if (q == SQ_MANY) return;
            if (__atomic_compare_exchange_n(&s->queued, &q, q == SQ_ONE ? SQ_MANY : SQ_ONE, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
                if (q == SQ_ONE) return;
                break;
            }
        }
    } else {
        uint8_t q = __atomic_load_n(&s->queued, __ATOMIC_RELAXED);
        if (q != SQ_IDLE) {
            if (q == SQ_ONE) __atomic_store_n(&s->queued, SQ_MANY, __ATOMIC_RELAXED);
            return;
        }
        __atomic_store_n(&s->queued, SQ_ONE, __ATOMIC_RELAXED);
    }
    work_push(w, base | SPAN_TAG);
}

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
        /* seq_cst: ordered before enqueue_span's load of s->queued */
        if (__atomic_fetch_or(word, bit, __ATOMIC_SEQ_CST) & bit) return;
    } else {
        __atomic_store_n(word, __atomic_load_n(word, __ATOMIC_RELAXED) | bit, __ATOMIC_RELAXED);
    }
    w->marked += span_obj_bytes(s);
    if (s->noscan) return;
    if (gc_opt.gcmarkqueue == GC_MARKQ_SPAN && s->sizeclass) enqueue_span(w, s, base);
    else work_push(w, base);
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

/* Words [lo, hi) of a large typed object at base (an array of t). */
GC_NO_TSAN static void scan_large_typed(gc_workbuf *w, uintptr_t base, const gm_type *t, uintptr_t lo, uintptr_t hi)
{
    size_t tw = t->size / WORD_SIZE;
    size_t j = (size_t)((lo - base) % t->size) / WORD_SIZE;   /* word within its element */
    for (const uintptr_t *a = (const uintptr_t *)lo; (uintptr_t)a < hi; a++) {
        if ((t->ptrmask[j / 8] >> (j % 8)) & 1) shade_word(w, *a);
        if (++j == tw) j = 0;
    }
}

/* A large object is scanned in pieces of OBLET bytes (Go's oblets): the work
 * item for its base scans the first piece and queues the start of every
 * other piece as a work item of its own, so no drain -- an assist above
 * all -- scans more than OBLET bytes of it in one go, and the pieces spread
 * over the drainers.  An item inside a large span that is not its base is
 * such a piece.  Objects with a trace function are traced whole. */
#define OBLET ((uintptr_t)128 << 10)
static _Atomic uint64_t max_piece_a;      /* gm_gc_fault_max_piece_scan */

GC_NO_TSAN static void scan_large(gc_workbuf *w, uintptr_t p, gc_span *s)
{
    uintptr_t base = s->base, end;
    if (s->conservative) end = s->limit;
    else if (s->type) end = base + s->count * s->type->size;
    else return;
    if (p == base && end - base > OBLET && !w->checkmark)
        for (uintptr_t q = base + OBLET; q < end; q += OBLET) work_push(w, q);
    uintptr_t hi = (w->checkmark || end - p <= OBLET) ? end : p + OBLET;
    w->scanned += hi - p;
    if (s->conservative) scan_heap_conservative(w, p, hi);
    else scan_large_typed(w, base, s->type, p, hi);
    gc_atomic_max(&max_piece_a, hi - p);
}
#ifdef GOMAP_FAULT_INJECTION
uint64_t gm_gc_fault_max_piece_scan(void) { return atomic_exchange(&max_piece_a, 0); }
#endif

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
    if (GM_UNLIKELY(s->sizeclass == 0)) {
        if (s->type && s->type->trace) {
            w->scanned += span_obj_bytes(s);
            gc_trace_object(w, base, s->type, s->count);
        } else {
            scan_large(w, base, s);
        }
        return;
    }
    w->scanned += span_obj_bytes(s);
    if (GM_UNLIKELY(s->otypes != NULL)) {        /* traced small objects (trace_fn.c) */
        const gm_type *t = gc_otype(s, gc_obj_index(s, base));
        if (t) {
            gc_trace_object(w, base, t, s->elemsize / t->size);
            return;
        }
    }
    scan_small(w, base, s);
}

GC_NO_TSAN void gc_scan_object_referents(uintptr_t base, gc_span *s)
{
    gc_workbuf *w = gc_cur_work();
    if (w->checkmark) w->parent = base;
    scan_object(w, base, s);
}

/* Scans the marked-but-unscanned objects of s until none is left, then lets
 * the span go (see the span mark queue above).  Objects of s greyed while
 * it is being scanned find it still queued and are picked up by the next
 * pass here, in address order, instead of queueing the span again. */
GC_NO_TSAN static void scan_span(gc_workbuf *w, gc_span *s)
{
    uint32_t nw = (s->nelems + 63) / 64;
    int mo = w->shared ? __ATOMIC_SEQ_CST : __ATOMIC_RELAXED;
    for (;;) {
        bool any = false;
        for (uint32_t k = 0; k < nw; k++) {
            /* the same word again until it has nothing new: an object's
             * referents often follow it closely (allocation order) */
            uint64_t m;
            while ((m = __atomic_load_n(&s->mark_bits[k], __ATOMIC_RELAXED) &
                        ~__atomic_load_n(&s->scan_bits[k], __ATOMIC_RELAXED)) != 0) {
            uint64_t pend = m;
            if (w->shared) pend &= ~__atomic_fetch_or(&s->scan_bits[k], pend, __ATOMIC_RELAXED);
            else __atomic_store_n(&s->scan_bits[k], s->scan_bits[k] | pend, __ATOMIC_RELAXED);
            any |= pend != 0;
            while (pend) {
                uintptr_t base = s->base + ((uintptr_t)k * 64 + (unsigned)__builtin_ctzll(pend)) * s->elemsize;
                w->parent = base;
                scan_object(w, base, s);
                pend &= pend - 1;
            }
            }
        }
        if (any) continue;
        /* nothing left: release the span, then look once more (a marker
         * that saw it queued did not queue it again) */
        __atomic_store_n(&s->queued, SQ_IDLE, mo);
        bool more = false;
        for (uint32_t k = 0; k < nw && !more; k++)
            more = (__atomic_load_n(&s->mark_bits[k], mo) & ~__atomic_load_n(&s->scan_bits[k], __ATOMIC_RELAXED)) != 0;
        uint8_t idle = SQ_IDLE;
        if (!more || !__atomic_compare_exchange_n(&s->queued, &idle, SQ_MANY, false, mo, mo)) return;
    }
}

/* A span-queue item: the object that queued its span (see above). */
GC_NO_TSAN static void scan_span_item(gc_workbuf *w, uintptr_t base)
{
    gc_span *s = gc_span_of(base);
    if (GM_UNLIKELY(!s)) gm_fatal("gc: grey object outside the heap");
    if (__atomic_load_n(&s->queued, __ATOMIC_RELAXED) == SQ_ONE) {
        uint32_t idx = gc_obj_index(s, base);
        uint64_t bit = (uint64_t)1 << (idx & 63), *sb = &s->scan_bits[idx >> 6];
        /* while the span is ONE, no marker writes its scan bits (a scanner
         * that released it before only reads them), so no atomic OR: a
         * locked instruction per object is what this case saves.  The one
         * other writer is allocate-black (alloc.c, atomic OR); a bit of its
         * that this store overwrites costs one scan of a zeroed, born-black
         * object later, nothing else.  The bit can be set already: a span
         * scan that took the span back between the mark and the queueing
         * scanned the object. */
        uint64_t sw = __atomic_load_n(sb, __ATOMIC_RELAXED);
        if (!(sw & bit)) {
            __atomic_store_n(sb, sw | bit, __ATOMIC_RELAXED);
            w->parent = base;
            scan_object(w, base, s);
        }
        /* release the span unless an object of it was greyed meanwhile */
        uint8_t one = SQ_ONE;
        bool released;
        if (w->shared) {
            released = __atomic_compare_exchange_n(&s->queued, &one, SQ_IDLE, false, __ATOMIC_SEQ_CST,
                                                   __ATOMIC_SEQ_CST);
        } else {
            released = __atomic_load_n(&s->queued, __ATOMIC_RELAXED) == SQ_ONE;
            if (released) __atomic_store_n(&s->queued, SQ_IDLE, __ATOMIC_RELAXED);
        }
        if (released) {
            COUNT_SPAN_SCAN(span_one_a);
            return;
        }
    }
    COUNT_SPAN_SCAN(span_many_a);
    scan_span(w, s);
}

/* One work item: an object, or (tagged) an item of the span queue. */
__attribute__((always_inline)) GC_NO_TSAN static inline void scan_item(gc_workbuf *w, uintptr_t p)
{
    if (p & SPAN_TAG) {
        scan_span_item(w, p - SPAN_TAG);
        return;
    }
    gc_span *s = gc_span_of(p);
    if (GM_UNLIKELY(!s)) gm_fatal("gc: grey object outside the heap");
    w->parent = p;
    scan_object(w, p, s);
}

/* ---- draining ------------------------------------------------------------------- */

/* Objects popped from the work stack pass through a small FIFO before they
 * are scanned; each is prefetched on entry, so its memory is (more likely)
 * in cache by the time it leaves.  The depth-first stack alone would scan an
 * object right after discovering it, with no time for the load. */
#define PREFETCH_RING 16

typedef struct pf_ring { uintptr_t p[PREFETCH_RING]; unsigned head, n; } pf_ring;

/* Tops the ring up from w's stack, prefetching each object it takes. */
__attribute__((always_inline)) static inline void ring_fill(pf_ring *r, gc_workbuf *w)
{
    while (r->n < PREFETCH_RING && w->n) {
        uintptr_t q = w->buf[--w->n];
        __builtin_prefetch((const void *)(q & ~SPAN_TAG));
        if (q & SPAN_TAG) {
            /* a span-queue item reads its span's header and state too
             * (the page map itself is small and stays in cache) */
            gc_span *s = gc_pagemap[(q - gc_arena_start) >> GC_PAGE_SHIFT];
            if (s) {
                __builtin_prefetch(s);
                __builtin_prefetch(&s->queued);
            }
        }
        r->p[(r->head + r->n) & (PREFETCH_RING - 1)] = q;
        r->n++;
    }
}

__attribute__((always_inline)) static inline uintptr_t ring_pop(pf_ring *r)
{
    uintptr_t p = r->p[r->head];
    r->head = (r->head + 1) & (PREFETCH_RING - 1);
    r->n--;
    return p;
}

/* A drain that stops early gives the ring's objects back to w (still grey). */
static void ring_spill(pf_ring *r, gc_workbuf *w)
{
    while (r->n) work_push(w, ring_pop(r));
}

/* The ring's slots keep the addresses they held; a drain clears them when
 * it returns, or a later frame at the same depth could expose them to the
 * conservative scan of this thread's stack (the next cycle would keep those
 * objects: a test of freeing found it). */
static void ring_clear(pf_ring *r)
{
    memset(r, 0, sizeof *r);
    __asm__ volatile("" : : "r"(r) : "memory");
}

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
    pf_ring r = { .n = 0 };
    unsigned polls = 0;
    for (;;) {
        ring_fill(&r, w);
        if (r.n == 0) {
            if (!w->shared || !take(w)) break;
            continue;
        }
        scan_item(w, ring_pop(&r));
        if (w->shared && (++polls & 15) == 0 && w->n >= 2 &&
            atomic_load_explicit(&pool.nidle, memory_order_relaxed) > 0)
            donate(w);
    }
    ring_clear(&r);
}

void gc_mark_drain(void)
{
    drain(&gc_work);
    gc_marked_bytes += gc_work.marked;
    atomic_fetch_add_explicit(&gc_scan_work_a, gc_work.scanned, memory_order_relaxed);
    gc_work.marked = gc_work.scanned = 0;
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

static void wq_fork_lock(bool lock);

/* fork (thread.c): the locks are taken before the fork, released after it
 * in both processes; the helpers do not exist in the child */
void gc_mark_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&roots_mu);
        wq_fork_lock(true);
        pthread_mutex_lock(&pool.mu);
        pthread_mutex_lock(&helpers_mu);
        return;
    }
    pthread_mutex_unlock(&helpers_mu);
    pthread_mutex_unlock(&pool.mu);
    wq_fork_lock(false);
    pthread_mutex_unlock(&roots_mu);
    if (phase == 2) {
        nhelpers_started = 0;
        helpers_running = 0;
        pthread_cond_init(&helpers_cv, NULL);
        pthread_cond_init(&helpers_done_cv, NULL);
        pthread_cond_init(&pool.cv, NULL);
    }
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
    uint64_t marked = gc_work.marked, scanned = gc_work.scanned;
    for (int i = 0; i < helpers; i++) {
        marked += helper_work[i].marked;
        scanned += helper_work[i].scanned;
        helper_work[i].scanned = 0;
    }
    gc_marked_bytes += marked;
    atomic_fetch_add_explicit(&gc_scan_work_a, scanned, memory_order_relaxed);
    gc_work.marked = gc_work.scanned = 0;
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

static void wq_fork_lock(bool lock)
{
    if (lock) pthread_mutex_lock(&wq.mu);
    else pthread_mutex_unlock(&wq.mu);
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
    pf_ring r = { .n = 0 };
    for (;;) {
        if (!w->n && !wq_take(w)) break;
        uint64_t start = w->scanned;
        unsigned k = 0;
        for (;;) {
            ring_fill(&r, w);
            if (r.n == 0) break;
            scan_item(w, ring_pop(&r));
            /* the budget after every item (a piece of a large object is
             * OBLET bytes); the stop flag, an atomic load, every 64 */
            if (w->scanned - start + done >= budget ||
                ((++k & 63) == 0 && stop && atomic_load_explicit(stop, memory_order_relaxed))) {
                ring_spill(&r, w);
                break;
            }
        }
        done += w->scanned - start;
        if (done >= budget || (stop && atomic_load_explicit(stop, memory_order_relaxed))) break;
    }
    ring_clear(&r);
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
    if (t->no_stack_roots) return;
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

static const char *obj_type_name(const gc_span *s, uintptr_t base)
{
    const gm_type *ot = s->sizeclass && s->otypes ? gc_otype(s, gc_obj_index(s, base)) : NULL;
    return ot && ot->name                                  ? ot->name
           : s->sizeclass == 0 && s->type && s->type->name ? s->type->name
           : s->conservative                               ? "(conservative)"
           : s->noscan                                     ? "(noscan, type not recorded)"
                                                           : "(type not recorded for small objects)";
}

__attribute__((noinline)) static void checkmark_unmarked(gc_workbuf *w, gc_span *s, uintptr_t base)
{
    gm_errorf("runtime: checkmark found unmarked object obj=%#lx size=%llu type=%s span=%#lx class=%u",
              (unsigned long)base, (unsigned long long)span_obj_bytes(s), obj_type_name(s, base),
              (unsigned long)s->base, s->sizeclass);
    if (w->parent) {
        gc_span *ps = gc_span_of(w->parent);
        gm_errorf("runtime: reached from object %#lx size=%llu type=%s", (unsigned long)w->parent,
                  (unsigned long long)(ps ? span_obj_bytes(ps) : 0), ps ? obj_type_name(ps, w->parent) : "?");
    } else {
        gm_errorf("runtime: reached directly from %s", w->root ? w->root : "a root");
    }
    gm_fatal("checkmark found unmarked object");
}

static gc_workbuf ck_work;

void gc_checkmark(void)
{
    atomic_store_explicit(&gc_checkmarking_a, 1, memory_order_relaxed);
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
    atomic_store_explicit(&gc_checkmarking_a, 0, memory_order_relaxed);
    ck_work.parent = 0;               /* no stale heap pointer in a global (globals.c) */
}

