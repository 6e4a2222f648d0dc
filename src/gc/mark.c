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

static void work_push(uintptr_t p)
{
    if (GM_UNLIKELY(gc_work.n == gc_work.cap)) {
        size_t nc = gc_work.cap * 2;
        uintptr_t *nb = realloc(gc_work.buf, nc * sizeof *nb);
        if (!nb) gm_fatal("runtime: out of memory (mark queue)");
        gc_work.buf = nb;
        gc_work.cap = nc;
    }
    gc_work.buf[gc_work.n++] = p;
}

static inline uint64_t span_obj_bytes(const gc_span *s)
{
    return s->sizeclass ? s->elemsize : (uint64_t)s->npages * GC_PAGE_SIZE;
}

/* white -> grey */
__attribute__((always_inline)) static inline void grey_object(gc_span *s, uint32_t idx, uintptr_t base)
{
    uint64_t *w = &s->mark_bits[idx >> 6];
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (*w & bit) return;
    *w |= bit;
    gc_marked_bytes += span_obj_bytes(s);
    if (!s->noscan) work_push(base);
}

__attribute__((always_inline)) static inline void shade_word(uintptr_t p)
{
    gc_span *s;
    uint32_t i;
    uintptr_t base = gc_find_object(p, &s, &i);
    if (base) grey_object(s, i, base);
}

void gc_shade(uintptr_t p) { shade_word(p); }

/* Roots: stacks and user ranges (uninstrumented; calls the out-of-line
 * gc_shade, since sanitizer attributes forbid inlining across them). */
GC_NO_SANITIZE void gc_scan_range_conservative(uintptr_t lo, uintptr_t hi)
{
    lo = (lo + WORD_SIZE - 1) & ~(uintptr_t)(WORD_SIZE - 1);
    for (uintptr_t a = lo; a + WORD_SIZE <= hi; a += WORD_SIZE)
        gc_shade(*(const volatile uintptr_t *)a);
}

/* Heap objects allocated conservative: heap memory is never poisoned. */
static void scan_heap_conservative(uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t a = lo; a + WORD_SIZE <= hi; a += WORD_SIZE) shade_word(*(const uintptr_t *)a);
}

/* ---- scanning heap objects ------------------------------------------------------ */

static void scan_large_typed(uintptr_t base, const gm_type *t, size_t count)
{
    size_t tw = t->size / WORD_SIZE;
    for (size_t e = 0; e < count; e++) {
        const uintptr_t *elem = (const uintptr_t *)(base + e * t->size);
        for (size_t j = 0; j < tw; j++)
            if ((t->ptrmask[j / 8] >> (j % 8)) & 1) shade_word(elem[j]);
    }
}

__attribute__((always_inline)) static inline void scan_small(uintptr_t base, const gc_span *s)
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
            shade_word(obj[i + tz]);
            bits &= bits - 1;
        }
        i += take;
    }
}

__attribute__((always_inline)) static inline void scan_object(uintptr_t base, gc_span *s)
{
    if (s->noscan) return;
    if (GM_UNLIKELY(s->sizeclass == 0)) {
        if (s->conservative) scan_heap_conservative(base, s->limit);
        else if (s->type) scan_large_typed(base, s->type, s->count);
        return;
    }
    scan_small(base, s);
}

void gc_scan_object_referents(uintptr_t base, gc_span *s) { scan_object(base, s); }

/* Objects popped from the work stack pass through a small FIFO before they
 * are scanned; each is prefetched on entry, so its memory is (more likely)
 * in cache by the time it leaves.  The depth-first stack alone would scan an
 * object right after discovering it, with no time for the load. */
#define PREFETCH_RING 16

void gc_mark_drain(void)
{
    uintptr_t ring[PREFETCH_RING];
    unsigned head = 0, n = 0;
    for (;;) {
        while (n < PREFETCH_RING && gc_work.n) {
            uintptr_t q = gc_work.buf[--gc_work.n];
            __builtin_prefetch((const void *)q);
            ring[(head + n) & (PREFETCH_RING - 1)] = q;
            n++;
        }
        if (n == 0) break;
        uintptr_t p = ring[head];
        head = (head + 1) & (PREFETCH_RING - 1);
        n--;
        gc_span *s = gc_span_of(p);
        if (GM_UNLIKELY(!s)) gm_fatal("gc: grey object outside the heap");
        scan_object(p, s);
    }
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
