/* alloc.c - allocation (Go's mallocgc, mcache, mcentral) and span sweeping.
 *
 * PATH OF AN ALLOCATION.  size <= 32 KiB: the size class and the scan/noscan
 * kind give a span class; the thread's mcache holds one span per span class
 * and hands out its next free slot with a count-trailing-zeros over a cached
 * 64-bit word of inverted alloc bits (no lock, no atomic).  When the span is
 * full the mcache returns it to its mcentral and takes another: a partial
 * swept span, else an unswept span swept on the spot (at most GC_SWEEP_BOUND
 * of them per refill), else a fresh span from the page heap.  Larger objects
 * get their own span straight from the page heap.
 *
 * ALIGNMENT.  An object starts at span base + index * class size, and span
 * bases are page (8 KiB) aligned, so an object is aligned to the largest
 * power of two dividing its class size.  gm_new / gm_new_array honour the
 * type's align (at most 4096, gm_type_validate) by picking the smallest
 * class at least the size that is a multiple of align (aligned_size), or a
 * large object (page aligned).  Untyped allocations (gm_alloc_*) are 8-byte
 * aligned, 16 from 16 bytes on.
 *
 * BLOCKING SECTIONS.  A thread inside gm_blocking_begin/end is treated by
 * the collector as stopped (its cached spans may be taken back, its stack
 * scanned): an allocation there is fatal, never a torn heap.
 *
 * OUT OF MEMORY.  When the page heap refuses a span (the hard heap limit,
 * the end of the reservation, or the system: pageheap.c), the allocation
 * runs a full collection and tries once more; then the program's handler
 * (gm_set_oom_handler), and if it asks for it, one more collection and try.
 * Still nothing: gm_try_* return NULL with errno ENOMEM, the others stop
 * the process with the reason.  Nothing was allocated and nothing the
 * failed attempt touched is left half done: the thread's cache slot is
 * empty (a refill released the old span first), the heap verifies.
 *
 * TYPES.  Small scan spans carry one heap bit per word (1 = this word holds
 * a pointer), written at allocation from the type's ptrmask, repeated for
 * arrays; conservative objects get every bit set; objects of a type with a
 * trace function get none, and their type id in the span (trace_fn.c).
 * Large objects record the type and the array length in their span.  Noscan spans have no bits.
 * HEAP BITS written once per span: the first object allocated in a span
 * that holds none writes its slot's bit pattern into every slot and records
 * the pattern (hb_mask, hb_uniform); later objects with the same pattern,
 * in this span's life and after its sweeps (free slots keep their bits),
 * write nothing.  The pattern, not the type's address, is compared: a
 * gm_type on the stack may be another type at the same address next time.
 * Any other write of a slot's bits (another pattern, a traced object)
 * clears hb_uniform first.  Invariant (checked by gm_heap_verify):
 * hb_uniform => every slot's bits equal hb_mask.
 *
 * FAST PATH.  The common allocation (gm_new, gm_new_array, gm_alloc_noscan
 * of a small object with a free slot in the cached span, nothing pending)
 * is straight-line code in the no-preempt section (GC_NOPREEMPT): the
 * preemption signal never stops a thread inside it, so it needs neither
 * the in-runtime depth counter nor a call; it checks everything before it
 * changes anything, and any other case goes to the general path
 * (mallocgc_rt), which counts the depth as before.  Sanitizer builds count
 * the depth on the fast path too (their runtimes run outside the section).
 *
 * ACCOUNTING (as Go).  gc_heap_live_a counts a span's free slots as used as
 * soon as an mcache takes it (so the fast path updates no counter) and gives
 * the unused part back when the span is released; objects allocated are
 * counted per class when the span leaves the cache (alloc_count -
 * cache_count), or at ReadMemStats.
 *
 * SWEEPING.  A span swept this cycle has sweepgen == heap sweepgen.  The
 * collector moves every in-use span to an unswept list at the end of mark
 * (gc_sweep_prepare, O(1) per list: the spans keep their old list tag, and
 * gc_span_unswept reads tag + sweepgen); a span on an unswept list is owned
 * by whoever pops it,
 * sweeps it without a lock, and puts it on a partial/full list or frees it.
 * Unswept spans are never allocated from, so the mark bits they carry stay
 * valid until swept.  All spans are swept before the next cycle marks.
 */
#include "gc/gc_internal.h"
#include "gc/profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gc_central gc_centrals[GC_NUM_SPANCLASSES];
pthread_mutex_t gc_large_lock = PTHREAD_MUTEX_INITIALIZER;
gc_spanlist gc_large, gc_large_unswept;
gc_span gc_empty_span;                 /* nelems 0: every fast path fails */
static uint8_t zerobase[16] __attribute__((aligned(4096)));  /* zero-size objects, any align */

/* ---- span lists ----------------------------------------------------------- */

void gc_list_push(gc_spanlist *l, gc_span *s, uint8_t which)
{
    s->prev = NULL;
    s->next = l->first;
    if (l->first) l->first->prev = s;
    else l->last = s;
    l->first = s;
    l->n++;
    s->list = which;
}

void gc_list_push_tail(gc_spanlist *l, gc_span *s, uint8_t which)
{
    s->next = NULL;
    s->prev = l->last;
    if (l->last) l->last->next = s;
    else l->first = s;
    l->last = s;
    l->n++;
    s->list = which;
}

void gc_list_remove(gc_spanlist *l, gc_span *s)
{
    if (s->prev) s->prev->next = s->next;
    else l->first = s->next;
    if (s->next) s->next->prev = s->prev;
    else l->last = s->prev;
    s->next = s->prev = NULL;
    s->list = LIST_NONE;
    l->n--;
}

gc_span *gc_list_pop(gc_spanlist *l)
{
    gc_span *s = l->first;
    if (s) gc_list_remove(l, s);
    return s;
}


/* Moves all of src to the front of dst in O(1), leaving the spans' list
 * tags alone (see gc_span_unswept): the mark termination pause must not
 * grow with the number of spans. */
static void list_concat(gc_spanlist *dst, gc_spanlist *src)
{
    gc_span *first = src->first;
    if (!first) return;
    gc_span *last = src->last;
    last->next = dst->first;
    if (dst->first) dst->first->prev = last;
    else dst->last = last;
    dst->first = first;
    dst->n += src->n;
    src->first = src->last = NULL;
    src->n = 0;
}

void gc_alloc_init(void)
{
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++)
        pthread_mutex_init(&gc_centrals[i].lock, NULL);
    gc_empty_span.alloc_bits = gc_empty_span.bits[0];
    gc_empty_span.mark_bits = gc_empty_span.bits[1];
}

void gc_mcache_init(gc_mcache *c)
{
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) c->alloc[i] = &gc_empty_span;
}

/* ---- free-slot search ------------------------------------------------------ */

static GC_ALWAYS_INLINE void refresh_cache(gc_span *s)
{
    uint32_t fi = s->freeindex;
    s->alloc_cache = (fi < s->nelems) ? ~s->alloc_bits[fi >> 6] >> (fi & 63) : 0;
}

/* Next free index or -1; the span is owned by the caller. */
static inline int64_t next_free_fast(gc_span *s)
{
    uint64_t c = s->alloc_cache;
    if (GM_UNLIKELY(c == 0)) return -1;
    unsigned tz = (unsigned)__builtin_ctzll(c);
    uint32_t idx = s->freeindex + tz;
    if (GM_UNLIKELY(idx >= s->nelems)) return -1;
    s->freeindex = idx + 1;
    if ((s->freeindex & 63) == 0) refresh_cache(s);
    else s->alloc_cache = c >> (tz + 1);
    s->alloc_count++;
    return idx;
}

static int64_t next_free(gc_span *s)
{
    for (;;) {
        int64_t i = next_free_fast(s);
        if (i >= 0) return i;
        if (s->freeindex >= s->nelems) return -1;
        /* the cached word is exhausted: move to the next 64-bit word */
        uint32_t fi = (s->freeindex + 64) & ~63u;
        s->freeindex = fi < s->nelems ? fi : s->nelems;
        refresh_cache(s);
    }
}

/* ---- spans -------------------------------------------------------------- */

static void span_init_small(gc_span *s, unsigned spc)
{
    unsigned cl = spc >> 1;
    s->sizeclass = (uint8_t)cl;
    s->noscan = spc & 1;
    s->elemsize = gc_classes[cl].size;
    memset(s->scan_bits, 0, sizeof s->scan_bits);
    s->nelems = gc_classes[cl].nelems;
    s->divmul = gc_classes[cl].divmul;
    s->sweepgen = atomic_load_explicit(&gc_sweepgen_a, memory_order_relaxed);
    if (!s->noscan) gc_heap_bits_reserve(s);
    gc_otypes_reset(s);
    s->hb_uniform = 0;
    refresh_cache(s);
    /* a concurrent marker that looks the span up sees limit 0 (no object)
     * until the geometry and the heap bits are in place: limit publishes
     * the span (release; gc_span_of loads it with acquire) */
    __atomic_store_n(&s->limit, s->base + (uintptr_t)s->nelems * s->elemsize, __ATOMIC_RELEASE);
}

typedef enum { SWEPT_FREED, SWEPT_PARTIAL, SWEPT_FULL } sweep_result;

/* Sweep a span the caller owns (popped from an unswept list). */
static sweep_result sweep_span(gc_span *s)
{
    uint32_t nwords = (s->nelems + 63) / 64, marked = 0;
    for (uint32_t w = 0; w < nwords; w++) {
        uint64_t m = s->mark_bits[w];
        if (w == nwords - 1 && (s->nelems & 63)) m &= ((uint64_t)1 << (s->nelems & 63)) - 1;
        s->mark_bits[w] = m;
        marked += (uint32_t)__builtin_popcountll(m);
    }
    uint32_t freed = s->alloc_count - marked;
    if (GM_UNLIKELY(freed && atomic_load_explicit(&gc_prof_live_a, memory_order_relaxed))) gc_prof_sweep(s);
    if (freed && gc_opt.clobberfree) {
        for (uint32_t i = 0; i < s->nelems; i++) {
            if (!gc_obj_allocated(s, i) || gc_bit(s->mark_bits, i)) continue;
            uint64_t *p = (uint64_t *)(s->base + (uintptr_t)i * s->elemsize);
            for (uint32_t k = 0; k < s->elemsize / 8; k++) p[k] = CLOBBER_PATTERN;
        }
    }
    if (s->alloc_count < marked) gm_fatalf("gc: span %#lx marked %u objects but holds %u",
                                           (unsigned long)s->base, marked, s->alloc_count);
    atomic_fetch_add_explicit(&gc_stats.nfree[s->sizeclass], freed, memory_order_relaxed);
    if (s->sizeclass == 0 && freed)
        atomic_fetch_add_explicit(&gc_stats.large_free_bytes, s->npages * GC_PAGE_SIZE,
                                  memory_order_relaxed);
    uint64_t *t = s->alloc_bits;
    s->alloc_bits = s->mark_bits;
    s->mark_bits = t;
    memset(t, 0, nwords * 8);
    memset(s->scan_bits, 0, nwords * 8);
    s->freeindex = 0;
    s->alloc_count = marked;
    if (freed) s->needzero = 1;
    refresh_cache(s);
    atomic_store_explicit(&s->sweepgen, atomic_load_explicit(&gc_sweepgen_a, memory_order_relaxed),
                          memory_order_release);
    if (marked == 0) {
        if (s->specials) gm_fatal("gc: freeing a span with specials");
        if (s->sizeclass == 0) {
            free((void *)s->type);        /* large_type_copy */
            s->type = NULL;
        }
        gc_heap_free_span(s);
        return SWEPT_FREED;
    }
    return marked == s->nelems ? SWEPT_FULL : SWEPT_PARTIAL;
}

static void central_put(gc_central *c, gc_span *s, sweep_result r)
{
    pthread_mutex_lock(&c->lock);
    if (r == SWEPT_FULL) gc_list_push(&c->full, s, LIST_FULL);
    else gc_list_push(&c->partial, s, LIST_PARTIAL);
    pthread_mutex_unlock(&c->lock);
}

/* Sweeps in progress (popped, not yet put back): gm_gc waits for them, so
 * that "returns when swept" holds for the span another thread (the
 * background sweeper) took just before the list ran empty. */
static _Atomic int sweeps_in_flight_a;

static bool sweep_one(void);

bool gc_sweep_one(void)
{
    atomic_fetch_add_explicit(&sweeps_in_flight_a, 1, memory_order_acq_rel);
    bool r = sweep_one();
    atomic_fetch_sub_explicit(&sweeps_in_flight_a, 1, memory_order_release);
    return r;
}

bool gc_sweep_idle(void) { return atomic_load_explicit(&sweeps_in_flight_a, memory_order_acquire) == 0; }

static bool sweep_one(void)
{
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) {
        gc_central *c = &gc_centrals[i];
        if (!atomic_load_explicit(&c->nunswept_a, memory_order_relaxed)) continue; /* a hint */
        pthread_mutex_lock(&c->lock);
        gc_span *s = gc_list_pop(&c->unswept);
        if (s) atomic_fetch_sub_explicit(&c->nunswept_a, 1, memory_order_relaxed);
        pthread_mutex_unlock(&c->lock);
        if (!s) continue;
        sweep_result r = sweep_span(s);
        if (r != SWEPT_FREED) central_put(c, s, r);
        return true;
    }
    pthread_mutex_lock(&gc_large_lock);
    gc_span *s = gc_list_pop(&gc_large_unswept);
    pthread_mutex_unlock(&gc_large_lock);
    if (!s) return false;
    if (sweep_span(s) != SWEPT_FREED) {
        pthread_mutex_lock(&gc_large_lock);
        gc_list_push(&gc_large, s, LIST_LARGE);
        pthread_mutex_unlock(&gc_large_lock);
    }
    return true;
}

void gc_ensure_swept(gc_span *s)
{
    uint32_t sg = atomic_load_explicit(&gc_sweepgen_a, memory_order_relaxed);
    if (atomic_load_explicit(&s->sweepgen, memory_order_acquire) == sg) return;
    bool large = s->sizeclass == 0;
    gc_central *c = large ? NULL : &gc_centrals[s->sizeclass * 2u + s->noscan];
    pthread_mutex_t *mu = large ? &gc_large_lock : &c->lock;
    pthread_mutex_lock(mu);
    if (gc_span_unswept(s, sg)) {
        if (large) {
            gc_list_remove(&gc_large_unswept, s);
        } else {
            gc_list_remove(&c->unswept, s);
            atomic_fetch_sub_explicit(&c->nunswept_a, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(mu);
        sweep_result r = sweep_span(s);
        if (r == SWEPT_FREED) return;
        if (large) {
            pthread_mutex_lock(&gc_large_lock);
            gc_list_push(&gc_large, s, LIST_LARGE);
            pthread_mutex_unlock(&gc_large_lock);
        } else {
            central_put(c, s, r);
        }
        return;
    }
    pthread_mutex_unlock(mu);
    /* someone else is sweeping it; it may even free it (then the caller's
     * pointer was to a dead object, and its lookup will fail) */
    while (atomic_load_explicit(&s->sweepgen, memory_order_acquire) != sg &&
           __atomic_load_n(&s->state, __ATOMIC_RELAXED) == SPAN_INUSE)
        sched_yield();
}

size_t gc_unswept_count(void)
{
    size_t n = 0;
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++)
        n += atomic_load_explicit(&gc_centrals[i].nunswept_a, memory_order_relaxed);
    return n + gc_large_unswept.n;
}

/* World stopped, every mcache released: all in-use spans become unswept. */
void gc_sweep_prepare(void)
{
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) {
        gc_central *c = &gc_centrals[i];
        if (c->unswept.n) gm_fatal("gc: sweep_prepare with unswept spans");
        list_concat(&c->unswept, &c->partial);
        list_concat(&c->unswept, &c->full);
        atomic_store_explicit(&c->nunswept_a, c->unswept.n, memory_order_relaxed);
    }
    list_concat(&gc_large_unswept, &gc_large);
}

/* ---- mcache ---------------------------------------------------------------- */

static void cache_release(gc_span *s)
{
    atomic_fetch_add_explicit(&gc_stats.nmalloc[s->sizeclass], s->alloc_count - s->cache_count,
                              memory_order_relaxed);
    atomic_fetch_sub_explicit(&gc_heap_live_a, (uint64_t)(s->nelems - s->alloc_count) * s->elemsize,
                              memory_order_relaxed);
    unsigned spc = s->sizeclass * 2u + s->noscan;
    central_put(&gc_centrals[spc], s, s->alloc_count == s->nelems ? SWEPT_FULL : SWEPT_PARTIAL);
}

void gc_mcache_release_all(gc_mcache *c)
{
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) {
        if (c->alloc[i] != &gc_empty_span) cache_release(c->alloc[i]);
        c->alloc[i] = &gc_empty_span;
    }
}

void gc_mcache_flush_stats(gc_mcache *c)
{
    for (int i = 0; i < GC_NUM_SPANCLASSES; i++) {
        gc_span *s = c->alloc[i];
        if (s == &gc_empty_span) continue;
        atomic_fetch_add_explicit(&gc_stats.nmalloc[s->sizeclass], s->alloc_count - s->cache_count,
                                  memory_order_relaxed);
        s->cache_count = s->alloc_count;
    }
}

/* A new scan span whose pages all came back from the OS (or never left it)
 * is written once per 4 KiB page before use.  Otherwise the first access to
 * such a page is often the write barrier's read of a slot's old value
 * (gm_store during a mark): the read maps the shared zero page and the
 * store right after faults again to replace it, with a TLB shootdown of
 * every CPU the process runs on.  Written, each page takes one fault, as it
 * would at the program's first store anyway.  Noscan spans are never read
 * by the barrier; large objects may be used sparsely and are left alone. */
static void touch_fresh_pages(gc_span *s)
{
    for (uintptr_t p = s->base; p < s->base + s->npages * GC_PAGE_SIZE; p += 4096)
        *(volatile uint8_t *)p = 0;
}

/* A span with a free slot for span class spc, owned by the caller. */
static gc_span *central_take(unsigned spc)
{
    gc_central *c = &gc_centrals[spc];
    pthread_mutex_lock(&c->lock);
    gc_span *s = gc_list_pop(&c->partial);
    for (int k = 0; !s && k < GC_SWEEP_BOUND; k++) {
        gc_span *u = gc_list_pop(&c->unswept);
        if (!u) break;
        atomic_fetch_sub_explicit(&c->nunswept_a, 1, memory_order_relaxed);
        pthread_mutex_unlock(&c->lock);
        sweep_result r = sweep_span(u);
        pthread_mutex_lock(&c->lock);
        if (r == SWEPT_PARTIAL) s = u;
        else if (r == SWEPT_FULL) gc_list_push(&c->full, u, LIST_FULL);
    }
    pthread_mutex_unlock(&c->lock);
    if (!s) {
        s = gc_heap_alloc_span(gc_classes[spc >> 1].npages);
        if (!s) return NULL;
        if (!(spc & 1) && !s->needzero) touch_fresh_pages(s);
        span_init_small(s, spc);
    }
    return s;
}

static gc_span *refill(gc_thread *th, unsigned spc)
{
    gc_span *old = th->cache.alloc[spc];
    th->cache.alloc[spc] = &gc_empty_span;
    if (old != &gc_empty_span) cache_release(old);
    gc_maybe_collect();
    gc_span *s = central_take(spc);
    if (GM_UNLIKELY(!s)) return NULL;
    if (GM_UNLIKELY(atomic_load_explicit(&gc_phase_a, memory_order_relaxed) == GC_MARK))
        gc_assist_alloc(th, (uint64_t)(s->nelems - s->alloc_count) * s->elemsize);
    s->list = LIST_CACHE;
    s->cache_count = s->alloc_count;
    atomic_fetch_add_explicit(&gc_heap_live_a, (uint64_t)(s->nelems - s->alloc_count) * s->elemsize,
                              memory_order_relaxed);
    th->cache.alloc[spc] = s;
    return s;
}

/* ---- heap bits -------------------------------------------------------------- */

/* Pointer mask of one element of t (tw words, tw <= 64). */
static uint64_t type_mask64(const gm_type *t, size_t tw)
{
    uint64_t m = 0;
    for (size_t i = 0; i < tw; i += 8) m |= (uint64_t)t->ptrmask[i / 8] << i;
    if (tw < 64) m &= ((uint64_t)1 << tw) - 1;
    return m;
}

static GC_ALWAYS_INLINE void write_bits_word(uint64_t *hb, size_t wo, size_t nwords, uint64_t m)
{
    size_t w = wo >> 6, sh = wo & 63;
    uint64_t keep = nwords == 64 ? 0 : ~(((uint64_t)1 << nwords) - 1);
    hb[w] = (hb[w] & ~(~keep << sh)) | (m << sh);
    if (sh && sh + nwords > 64) {
        size_t hi = sh + nwords - 64;
        uint64_t hmask = ((uint64_t)1 << hi) - 1;
        hb[w + 1] = (hb[w + 1] & ~hmask) | (m >> (64 - sh));
    }
}

/* The first object of a span that holds none (alloc_count was 0): every
 * slot gets its bit pattern m (nw words per slot), so the next objects with
 * that pattern in this span, and after sweeps, write none.  Nothing
 * else in the span is allocated, so no marker reads these words but for
 * the object being allocated, which is not published yet.  In the section
 * (called from the fast path, the span still in hand). */
__attribute__((noinline)) GC_NOPREEMPT static void fill_heap_bits(gc_span *s, size_t nw, uint64_t m)
{
    /* 64 slots take nw words exactly: write the first 64 slot by slot,
     * then repeat those nw words */
    size_t n = s->nelems < 64 ? s->nelems : 64, words = ((size_t)s->nelems * nw + 63) / 64;
    for (size_t i = 0, wo = 0; i < n; i++, wo += nw) write_bits_word(s->heap_bits, wo, nw, m);
    for (size_t w = nw; w < words; w++) s->heap_bits[w] = s->heap_bits[w - nw];
    s->hb_mask = m;
    s->hb_uniform = 1;
}

static void write_heap_bits(gc_span *s, uintptr_t p, const gm_type *t, size_t count, size_t size)
{
    size_t wo = (p - s->base) / WORD_SIZE, nwords = s->elemsize / WORD_SIZE;
    uint64_t *hb = s->heap_bits;
    size_t tw = t ? t->size / WORD_SIZE : 0;
    if (nwords <= 64 && tw <= 64) {
        uint64_t m;
        if (!t) {                               /* conservative */
            size_t n = (size + WORD_SIZE - 1) / WORD_SIZE;
            m = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
        } else {
            uint64_t tm = type_mask64(t, tw);
            m = 0;
            for (size_t e = 0; e < count; e++) m |= tm << (e * tw);
        }
        if (s->hb_uniform && s->hb_mask == m) return;     /* in place (HEAP BITS) */
        if (s->alloc_count == 1) {                        /* the span's first object */
            fill_heap_bits(s, nwords, m);
            return;
        }
        s->hb_uniform = 0;
        write_bits_word(hb, wo, nwords, m);
        return;
    }
    s->hb_uniform = 0;
    for (size_t i = 0; i < nwords; i++) {
        bool ptr;
        if (!t) ptr = i * WORD_SIZE < size;
        else if (i >= tw * count) ptr = false;
        else {
            size_t j = i % tw;
            ptr = (t->ptrmask[j / 8] >> (j % 8)) & 1;
        }
        size_t b = wo + i;
        if (ptr) hb[b >> 6] |= (uint64_t)1 << (b & 63);
        else hb[b >> 6] &= ~((uint64_t)1 << (b & 63));
    }
}

/* A traced object's words: no pointer bits (its type id says how to scan
 * it, trace_fn.c). */
static void clear_heap_bits(gc_span *s, uintptr_t p)
{
    s->hb_uniform = 0;
    size_t wo = (p - s->base) / WORD_SIZE, nwords = s->elemsize / WORD_SIZE;
    if (nwords <= 64) {
        write_bits_word(s->heap_bits, wo, nwords, 0);
        return;
    }
    for (size_t i = 0; i < nwords; i++) s->heap_bits[(wo + i) >> 6] &= ~((uint64_t)1 << ((wo + i) & 63));
}

/* ---- mallocgc --------------------------------------------------------------- */

enum { K_NOSCAN, K_TYPED, K_CONSERVATIVE, K_TRACED };

/* Small objects are zeroed with plain stores: a memset call (or the
 * "rep stos" a compiler makes of a loop) costs more than the stores. */
#define FALLTHROUGH __attribute__((fallthrough))
static GC_ALWAYS_INLINE void zero_object(uintptr_t p, size_t n)
{
    uint64_t *w = (uint64_t *)p;
    switch (n >> 3) {
    case 8: w[7] = 0; FALLTHROUGH;
    case 7: w[6] = 0; FALLTHROUGH;
    case 6: w[5] = 0; FALLTHROUGH;
    case 5: w[4] = 0; FALLTHROUGH;
    case 4: w[3] = 0; FALLTHROUGH;
    case 3: w[2] = 0; FALLTHROUGH;
    case 2: w[1] = 0; FALLTHROUGH;
    case 1: w[0] = 0; break;
    default: memset(w, 0, n);
    }
}

static _Thread_local bool oom_size_too_big;   /* the last failure: no heap could hold it */

/* A large typed object scans through its own copy of its type (ptrmask and
 * name included), freed with its span: a gm_type may live on the stack, and
 * by the time the object is scanned another type can sit at that address
 * (test_gc_review.b6_new_honours_alignment crashed in a Debug build reading
 * a later, larger type's mask over an earlier object).  Small objects copy
 * their heap bits for the same reason (HEAP BITS). */
static const gm_type *large_type_copy(const gm_type *t)
{
    size_t mlen = t->ptrmask ? (t->size / WORD_SIZE + 7) / 8 : 0;
    size_t nlen = t->name ? strlen(t->name) + 1 : 0;
    gm_type *c = malloc(sizeof *c + mlen + nlen);
    if (!c) return NULL;
    *c = *t;
    uint8_t *tail = (uint8_t *)(c + 1);
    if (mlen) c->ptrmask = memcpy(tail, t->ptrmask, mlen);
    if (nlen) c->name = memcpy(tail + mlen, t->name, nlen);
    return c;
}

static void *alloc_large(size_t size, int kind, const gm_type *t, size_t count)
{
    gc_maybe_collect();
    size_t npages = (size + GC_PAGE_SIZE - 1) >> GC_PAGE_SHIFT;
    if (npages == 0 || npages > ((size_t)1 << 40)) {
        oom_size_too_big = true;
        return NULL;
    }
    if (GM_UNLIKELY(atomic_load_explicit(&gc_phase_a, memory_order_relaxed) == GC_MARK) && gc_self)
        gc_assist_alloc(gc_self, npages * GC_PAGE_SIZE);
    if (t && !(t = large_type_copy(t))) return NULL;
    gc_dirty_runs dirty;
    gc_span *s = gc_heap_alloc_span_dirty(npages, &dirty);
    if (!s) {
        free((void *)t);
        return NULL;
    }
    s->sizeclass = 0;
    s->noscan = kind == K_NOSCAN;
    s->conservative = kind == K_CONSERVATIVE;
    s->type = t;
    s->count = count;
    s->elemsize = (uint32_t)(npages * GC_PAGE_SIZE > UINT32_MAX ? 0 : npages * GC_PAGE_SIZE);
    s->nelems = 1;
    s->divmul = 0;                      /* every offset is object 0 */
    __atomic_store_n(&s->limit, s->base + npages * GC_PAGE_SIZE, __ATOMIC_RELEASE); /* see span_init_small */
    s->sweepgen = atomic_load_explicit(&gc_sweepgen_a, memory_order_relaxed);
    /* the dirty pages only (the tail too: it is scanned); the returned ones
     * read as zero, and writing them would fault them in */
    for (uint32_t i = 0; i < dirty.n; i++)
        memset((void *)(s->base + dirty.first[i] * GC_PAGE_SIZE), 0, dirty.npages[i] * GC_PAGE_SIZE);
    s->freeindex = 1;
    s->alloc_count = 1;
    if (atomic_load_explicit(&gc_phase_a, memory_order_relaxed) != GC_OFF)
        __atomic_fetch_or(&s->mark_bits[0], (uint64_t)1, __ATOMIC_RELAXED);   /* black */
    atomic_fetch_add_explicit(&gc_heap_live_a, npages * GC_PAGE_SIZE, memory_order_relaxed);
    atomic_fetch_add_explicit(&gc_stats.nmalloc[0], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&gc_stats.large_alloc_bytes, npages * GC_PAGE_SIZE, memory_order_relaxed);
    pthread_mutex_lock(&gc_large_lock);
    gc_list_push(&gc_large, s, LIST_LARGE);
    pthread_mutex_unlock(&gc_large_lock);
    gc_prof_account(s, s->base, npages * GC_PAGE_SIZE);
    return (void *)s->base;
}

enum { M_FATAL, M_TRY };   /* after the OOM path failed: stop, or NULL */
static void *alloc_failed(size_t size, int kind, const gm_type *t, size_t count, int mode);

/* NULL if the page heap refused (the callers run the OOM path: keeping it
 * out of here keeps the fast path's registers free) */
static void *mallocgc(size_t size, int kind, const gm_type *t, size_t count)
{
    gc_thread *th = gc_self;
    if (GM_UNLIKELY(th == NULL)) th = gc_thread_auto();
    if (GM_UNLIKELY(th->blocking_depth)) gc_blocking_misuse("gm_new or gm_alloc_*");
    if (GM_UNLIKELY(atomic_load_explicit(&gc_poll_a, memory_order_relaxed))) gc_poll_slow(th);
    if (GM_UNLIKELY(size == 0)) return zerobase;
    if (GM_UNLIKELY(size > GC_MAX_SMALL)) {
        void *p = alloc_large(size, kind, t, count);
        return p;
    }
    unsigned spc = gc_size_to_class(size) * 2u + (kind == K_NOSCAN);
    gc_span *s = th->cache.alloc[spc];
    int64_t idx = next_free_fast(s);
    if (GM_UNLIKELY(idx < 0)) {
        s = refill(th, spc);
        if (GM_UNLIKELY(s == NULL)) return NULL;
        idx = next_free(s);
        if (idx < 0) gm_fatal("gc: refilled span has no free slot");
    }
    uintptr_t p = s->base + (uintptr_t)idx * s->elemsize;
    if (s->needzero) zero_object(p, s->elemsize);
    if (kind == K_TRACED) {
        clear_heap_bits(s, p);
        gc_otype_note(s, (uint32_t)idx, t);
    } else if (kind != K_NOSCAN) {
        write_heap_bits(s, p, kind == K_TYPED ? t : NULL, count, size);
        if (GM_UNLIKELY(s->otypes != NULL)) gc_otype_note(s, (uint32_t)idx, NULL);   /* a traced one's slot */
    }
    /* allocate black while a mark is running: markers set bits in the same
     * word at the same time, hence the atomic OR */
    if (GM_UNLIKELY(atomic_load_explicit(&gc_phase_a, memory_order_relaxed) != GC_OFF)) {
        __atomic_fetch_or(&s->mark_bits[idx >> 6], (uint64_t)1 << (idx & 63), __ATOMIC_RELAXED);
        if (kind != K_NOSCAN && gc_opt.gcmarkqueue == GC_MARKQ_SPAN)   /* born scanned (mark.c) */
            __atomic_fetch_or(&s->scan_bits[idx >> 6], (uint64_t)1 << (idx & 63), __ATOMIC_RELAXED);
        th->last_black = p;                                            /* barrier.c */
    }
    gc_prof_account(s, p, s->elemsize);
    return (void *)p;
}

/* mallocgc inside an in-runtime section: a preemption signal (preempt.c)
 * does not stop a thread halfway through an allocation. */
static void *mallocgc_rt(size_t size, int kind, const gm_type *t, size_t count)
{
    gm_rt_enter();
    void *p = mallocgc(size, kind, t, count);
    gm_rt_leave_safepoint();
    return p;
}

/* ---- out of memory ------------------------------------------------------------ */

/* the handler and its argument, read together under oom_mu (held for two
 * loads or stores: never with another lock but in a fork) */
static pthread_mutex_t oom_mu = PTHREAD_MUTEX_INITIALIZER;
static gm_oom_handler oom_fn;
static void *oom_arg;
static _Thread_local bool in_oom_handler;

void gm_set_oom_handler(gm_oom_handler fn, void *arg)
{
    pthread_mutex_lock(&oom_mu);
    oom_fn = fn;
    oom_arg = fn ? arg : NULL;
    pthread_mutex_unlock(&oom_mu);
}

void gc_alloc_fork(int phase)
{
    if (phase == 0) pthread_mutex_lock(&oom_mu);
    else pthread_mutex_unlock(&oom_mu);
}

__attribute__((noinline, cold)) static void *alloc_failed(size_t size, int kind, const gm_type *t,
                                                          size_t count, int mode)
{
    void *p = NULL;
    if (!oom_size_too_big) {
        gc_collect(true);                    /* a full cycle, swept: free pages come back */
        p = mallocgc_rt(size, kind, t, count);
        pthread_mutex_lock(&oom_mu);
        gm_oom_handler fn = oom_fn;
        void *arg = oom_arg;
        pthread_mutex_unlock(&oom_mu);
        if (!p && fn && !in_oom_handler) {
            in_oom_handler = true;           /* an allocation inside the handler fails plainly */
            int again = fn(size, arg);
            in_oom_handler = false;
            if (again) {
                gc_collect(true);
                p = mallocgc_rt(size, kind, t, count);
            }
        }
    }
    if (p) return p;
    bool huge = oom_size_too_big;
    oom_size_too_big = false;
    if (mode == M_TRY) {
        errno = ENOMEM;
        return NULL;
    }
    gc_heapstats hs;
    gc_heap_stats(&hs);
    if (huge) gm_fatalf("runtime: out of memory: cannot allocate %zu bytes", size);
    switch (gc_heap_oom_reason()) {
    case GC_OOM_LIMIT:
        gm_fatalf("runtime: out of memory: allocating %zu bytes would take the heap in use (%llu "
                  "bytes) past its limit of %llu bytes (GMDEBUG=heaplimit, gm_set_max_heap)",
                  size, (unsigned long long)hs.inuse, (unsigned long long)gc_heap_max());
    case GC_OOM_RESERVE:
        gm_fatalf("runtime: out of memory: allocating %zu bytes: the heap's address-space "
                  "reservation of %zu MiB is exhausted (raise it with GMDEBUG=heapreserve=<size> "
                  "or gm_set_heap_reserve before the first allocation)",
                  size, gc_heap_reserve_bytes() >> 20);
    default:
        gm_fatalf("runtime: out of memory: allocating %zu bytes: the system refused to commit "
                  "more memory (heap %llu MiB)", size, (unsigned long long)(hs.sys >> 20));
    }
}

/* The size to ask mallocgc for so that the object is aligned to `align`
 * (see ALIGNMENT): size itself when its class is aligned enough. */
__attribute__((noinline)) static size_t aligned_size_slow(size_t size, size_t align)
{
    if (align > GC_PAGE_SIZE) gm_fatalf("gm_new: alignment %zu is above the page size (8192)", align);
    if (size == 0 || size > GC_MAX_SMALL) return size;       /* zerobase / pages */
    for (unsigned cl = gc_size_to_class(size); cl < (unsigned)gc_nclasses; cl++)
        if ((gc_classes[cl].size & (align - 1)) == 0) return gc_classes[cl].size;
    return GC_MAX_SMALL + 1;                                   /* a large object */
}

static inline size_t aligned_size(size_t size, size_t align)
{
    if (GM_LIKELY(align <= 8)) return size;
    /* align is a power of two (gm_type_validate) */
    if (size - 1 < GC_MAX_SMALL && (gc_classes[gc_size_to_class(size)].size & (align - 1)) == 0)
        return size;
    return aligned_size_slow(size, align);
}

static inline void *new_typed(const gm_type *t, size_t n, int mode)
{
    gc_ensure_init();
    if (t->size && n > SIZE_MAX / t->size) {
        if (mode == M_TRY) {
            errno = ENOMEM;
            return NULL;
        }
        gm_fatal("makeslice: len out of range");
    }
    size_t size = aligned_size(t->size * n, t->align);
    int kind = GM_UNLIKELY(t->trace != NULL) ? K_TRACED : t->ptrmask == NULL ? K_NOSCAN : K_TYPED;
    const gm_type *tt = kind == K_NOSCAN ? NULL : t;
    void *p = mallocgc_rt(size, kind, tt, n);
    return GM_LIKELY(p != NULL) ? p : alloc_failed(size, kind, tt, n, mode);
}

/* ---- the fast path ------------------------------------------------------------ */


/* The common allocation, whole, in straight-line code of the no-preempt
 * section (see FAST PATH in the essay): a small typed (pointer words within
 * one 64-bit heap-bit word, no trace function, no traced neighbour in the
 * span) or pointer-free object from the thread's cached span, by an
 * attached thread that is not blocking, with no poll pending and no profile
 * sample due.  NULL: none of the state was touched, take the general path.
 * Nothing here is called out of line. */
GC_NOPREEMPT static GC_ALWAYS_INLINE void *alloc_fast(size_t size, int kind, const gm_type *t,
                                                      size_t count)
{
    gc_thread *th = gc_self;
    if (GM_UNLIKELY(th == NULL) || GM_UNLIKELY(size - 1 >= GC_MAX_SMALL)) return NULL;
    if (GM_UNLIKELY(th->blocking_depth | (int)atomic_load_explicit(&gc_poll_a, memory_order_relaxed)))
        return NULL;
    gc_span *s = th->cache.alloc[gc_size_to_class(size) * 2u + (kind == K_NOSCAN)];
    uint64_t c = s->alloc_cache;
    if (GM_UNLIKELY(c == 0)) return NULL;          /* also the empty span */
    unsigned tz = (unsigned)__builtin_ctzll(c);
    uint32_t idx = s->freeindex + tz;
    if (GM_UNLIKELY(idx >= s->nelems)) return NULL;
    size_t esz = s->elemsize, nw = esz / WORD_SIZE;
    int64_t left = gc_prof_left - (int64_t)esz;
    if (GM_UNLIKELY(left < 0)) return NULL;        /* a sample is due (gc_prof_account) */
    uint64_t m = 0;
    if (kind == K_TYPED) {
        if (GM_UNLIKELY(nw > 64) || GM_UNLIKELY(s->otypes != NULL)) return NULL;
        size_t tw = t->size / WORD_SIZE;           /* tw * count <= nw <= 64 */
        uint64_t tm = t->ptrmask[0];
        for (size_t i = 8; i < tw; i += 8) tm |= (uint64_t)t->ptrmask[i / 8] << i;
        if (tw < 64) tm &= ((uint64_t)1 << tw) - 1;
        m = tm;
        for (size_t e = 1; e < count; e++) m |= tm << (e * tw);
    }
    /* commit: nothing below can fail */
    gc_prof_left = left;
    s->freeindex = idx + 1;
    if (((idx + 1) & 63) == 0) refresh_cache(s);
    else s->alloc_cache = c >> (tz + 1);
    s->alloc_count++;
    uintptr_t p = s->base + (uintptr_t)idx * esz;
    if (s->needzero) zero_object(p, esz);
    if (kind == K_TYPED && !(s->hb_uniform && s->hb_mask == m)) {   /* else in place */
        if (s->alloc_count == 1) fill_heap_bits(s, nw, m);
        else {
            s->hb_uniform = 0;
            write_bits_word(s->heap_bits, (p - s->base) / WORD_SIZE, nw, m);
        }
    }
    if (GM_UNLIKELY(atomic_load_explicit(&gc_phase_a, memory_order_relaxed) != GC_OFF)) {
        /* allocate black, as mallocgc */
        __atomic_fetch_or(&s->mark_bits[idx >> 6], (uint64_t)1 << (idx & 63), __ATOMIC_RELAXED);
        if (kind != K_NOSCAN && gc_opt.gcmarkqueue == GC_MARKQ_SPAN)
            __atomic_fetch_or(&s->scan_bits[idx >> 6], (uint64_t)1 << (idx & 63), __ATOMIC_RELAXED);
        th->last_black = p;
    }
    return (void *)p;
}

/* Under a sanitizer the fast path calls the sanitizer's runtime: it counts
 * the in-runtime depth there, as the general path. */
GC_NOPREEMPT static GC_ALWAYS_INLINE void *alloc_fast_rt(size_t size, int kind, const gm_type *t,
                                                         size_t count)
{
    if (!GC_SANITIZED) return alloc_fast(size, kind, t, count);
    gm_rt_enter();
    void *p = alloc_fast(size, kind, t, count);
    gm_rt_leave_safepoint();
    return p;
}

__attribute__((noinline)) static void *new_typed_slow(const gm_type *t, size_t n, int mode)
{
    return new_typed(t, n, mode);
}

__attribute__((noinline)) static void *alloc_noscan_slow(size_t size, int mode)
{
    gc_ensure_init();
    void *p = mallocgc_rt(size, K_NOSCAN, NULL, 1);
    return GM_LIKELY(p != NULL) ? p : alloc_failed(size, K_NOSCAN, NULL, 1, mode);
}

/* gm_new and gm_new_array with a count whose size cannot overflow */
GC_NOPREEMPT static GC_ALWAYS_INLINE void *new_fast(const gm_type *t, size_t n, int mode)
{
    if (GM_LIKELY(t->align <= 8) && GM_LIKELY(t->trace == NULL) && GM_LIKELY(n <= GC_MAX_SMALL) &&
        GM_LIKELY(t->size <= GC_MAX_SMALL)) {
        void *p = alloc_fast_rt(t->size * n, t->ptrmask ? K_TYPED : K_NOSCAN, t, n);
        if (GM_LIKELY(p != NULL)) return p;
    }
    return new_typed_slow(t, n, mode);
}

GC_NOPREEMPT void *gm_new(const gm_type *t) { return new_fast(t, 1, M_FATAL); }
GC_NOPREEMPT void *gm_new_array(const gm_type *t, size_t n) { return new_fast(t, n, M_FATAL); }
GC_NOPREEMPT void *gm_try_new(const gm_type *t) { return new_fast(t, 1, M_TRY); }
GC_NOPREEMPT void *gm_try_new_array(const gm_type *t, size_t n) { return new_fast(t, n, M_TRY); }

GC_NOPREEMPT void *gm_alloc_noscan(size_t size)
{
    void *p = alloc_fast_rt(size, K_NOSCAN, NULL, 1);
    return GM_LIKELY(p != NULL) ? p : alloc_noscan_slow(size, M_FATAL);
}

void *gm_alloc_conservative(size_t size)
{
    gc_ensure_init();
    void *p = mallocgc_rt(size, K_CONSERVATIVE, NULL, 1);
    return GM_LIKELY(p != NULL) ? p : alloc_failed(size, K_CONSERVATIVE, NULL, 1, M_FATAL);
}

GC_NOPREEMPT void *gm_try_alloc_noscan(size_t size)
{
    void *p = alloc_fast_rt(size, K_NOSCAN, NULL, 1);
    return GM_LIKELY(p != NULL) ? p : alloc_noscan_slow(size, M_TRY);
}

void *gm_try_alloc_conservative(size_t size)
{
    gc_ensure_init();
    void *p = mallocgc_rt(size, K_CONSERVATIVE, NULL, 1);
    return GM_LIKELY(p != NULL) ? p : alloc_failed(size, K_CONSERVATIVE, NULL, 1, M_TRY);
}
