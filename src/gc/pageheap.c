/* pageheap.c - address space, arenas, the page map and the free-run heap.
 *
 * LAYOUT.  At start-up the heap reserves one large range of address space
 * (PROT_NONE, nothing committed) and commits it from the bottom in 64 MiB
 * arenas (mprotect) as the heap grows.  Because the heap is contiguous, the
 * page map is one flat array: gc_pagemap[(p - start) >> 13] is the span that
 * owns page p, so any address, interior pointers included, finds its span
 * and object in O(1) (gc_span_of, gc_find_object).  The page map itself is a
 * lazily-touched MAP_NORESERVE mapping: 8 bytes per 8 KiB page.
 *
 * FREE RUNS.  Pages not in an in-use span form free runs, each described by
 * a gc_span in state SPAN_FREE.  Invariant: the page map entries of a free
 * run's first and last page point to it and its interior entries are NULL;
 * two free runs are never adjacent (freeing coalesces).  Runs of 1..127 pages
 * sit on exact-size lists, longer ones on one list searched best-fit (Go's
 * mheap before 1.12).
 *
 * SCAVENGING.  A bitmap holds one bit per page: set = the page has been
 * returned to the OS (madvise MADV_DONTNEED), so it reads as zero.  Freshly
 * committed pages count as returned.  Each free run counts its returned
 * pages (nscav, checked against the bitmap by gc_heap_verify_pages); runs
 * with none sit at the head of their list, the others at the tail, and a
 * span is cut from the smallest fitting run with none before any other, so
 * a steady heap reuses its dirty pages instead of faulting returned or
 * never-touched ones in.  Allocating a span clears its bits;
 * if every page was returned the span needs no zeroing, and a large object
 * zeroes only the pages that were not (gc_dirty_runs): zeroing a returned
 * page would fault it in for nothing.  gc_scavenge
 * returns free runs, largest first, until the retained heap fits a target
 * (collect.c: after a cycle the pacer started, the most in use during the
 * last two cycles or the goal, whichever is more, + 10%, and only runs
 * idle for 4 cycles; after gm_gc, the goal + 10%, any run).
 *
 * LIMITS.  The reservation is 64 GiB unless GMDEBUG=heapreserve= or
 * gm_set_heap_reserve (before the heap exists) says otherwise; if the
 * system refuses that much, the largest power-of-two fraction it grants
 * (at least 256 MiB, or the size asked for if smaller), with a message when
 * the size was asked for.  A hard limit (GMDEBUG=heaplimit=,
 * gm_set_max_heap) caps the bytes of in-use spans (HeapInuse).  Neither is
 * fatal here: gc_heap_alloc_span returns NULL and says why
 * (gc_heap_oom_reason); alloc.c collects, calls the program's handler and
 * either fails the allocation (gm_try_*) or stops the process with the
 * reason.  A failed allocation changes nothing in the page heap.
 *
 * All of this is under heap_lock.  Readers of the page map without the lock
 * (marking, gm_set_finalizer on a live object) read entries that cannot
 * change under them: the world is stopped, or the object is alive.
 */
#include "gc/gc_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NFREELISTS 128

uintptr_t gc_arena_start;
_Atomic uintptr_t gc_arena_used_a;
gc_span **gc_pagemap;

static size_t reserve_bytes;
static _Atomic size_t reserve_asked_a;      /* gm_set_heap_reserve; 0: none */
static _Atomic bool reserve_fixed_a;        /* the reservation exists (or is being made) */
static _Atomic uint64_t max_heap_a = UINT64_MAX;  /* hard limit on hs.inuse */
static _Thread_local int oom_reason;        /* why this thread's last alloc_span failed */
static uint64_t *scav_bits;              /* 1 bit per page: returned to the OS */
static pthread_mutex_t heap_mu = PTHREAD_MUTEX_INITIALIZER;
static gc_spanlist freelists[NFREELISTS]; /* [n]: runs of n pages; [0]: >= 128 */
static gc_heapstats hs;
static uint64_t inuse_peak;          /* the most hs.inuse reached since gc_heap_take_inuse_peak */
static gc_span *span_pool;               /* unused span structures */
static gc_span **allspans;
static size_t nallspans, capallspans;

void gc_heap_lock(void) { pthread_mutex_lock(&heap_mu); }
void gc_heap_unlock(void) { pthread_mutex_unlock(&heap_mu); }

gc_span **gc_allspans(size_t *n)
{
    *n = nallspans;
    return allspans;
}

static void *map_noreserve(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int gm_set_heap_reserve(size_t bytes)
{
    if (bytes < GC_HEAP_RESERVE_MIN || bytes > GC_HEAP_RESERVE_MAX) {
        gm_errorf("gm_set_heap_reserve: %zu bytes is outside %zu MiB .. %zu GiB", bytes,
                  (size_t)(GC_HEAP_RESERVE_MIN >> 20), (size_t)(GC_HEAP_RESERVE_MAX >> 30));
        errno = EINVAL;
        return EINVAL;
    }
    if (atomic_load(&reserve_fixed_a)) {
        errno = EBUSY;
        return EBUSY;
    }
    atomic_store(&reserve_asked_a, bytes);
    if (atomic_load(&reserve_fixed_a)) {     /* lost a race with the heap's creation */
        errno = EBUSY;
        return EBUSY;
    }
    return 0;
}

size_t gc_heap_reserve_bytes(void) { return reserve_bytes; }

void gc_pageheap_init(void)
{
    atomic_store(&reserve_fixed_a, true);
    /* asked: by the program, else GMDEBUG=heapreserve, else 64 GiB */
    size_t want = atomic_load(&reserve_asked_a);
    bool asked = want != 0 || gc_opt.heapreserve != 0;
    if (!want) want = gc_opt.heapreserve ? gc_opt.heapreserve : (size_t)64 << 30;
    want = (want + GC_ARENA_BYTES - 1) & ~(GC_ARENA_BYTES - 1);
    size_t floor = want < GC_ARENA_BYTES * 4 ? want : GC_ARENA_BYTES * 4;
    for (size_t r = want; r >= floor; r /= 2) {
        void *p = mmap(NULL, r + GC_ARENA_BYTES, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) continue;
        /* align the start to an arena boundary */
        uintptr_t a = ((uintptr_t)p + GC_ARENA_BYTES - 1) & ~(uintptr_t)(GC_ARENA_BYTES - 1);
        gc_arena_start = a;
        reserve_bytes = r & ~(GC_ARENA_BYTES - 1);
        break;
    }
    if (!gc_arena_start)
        gm_fatalf("runtime: cannot reserve %zu MiB of address space for the heap (see "
                  "GMDEBUG=heapreserve)", floor >> 20);
    if (asked && reserve_bytes != want)
        gm_errorf("heap reservation: asked for %zu MiB, the system granted %zu MiB", want >> 20,
                  reserve_bytes >> 20);
    size_t npages = reserve_bytes >> GC_PAGE_SHIFT;
    gc_pagemap = map_noreserve(npages * sizeof(gc_span *));
    scav_bits = map_noreserve(npages / 8);
    if (!gc_pagemap || !scav_bits) gm_fatal("runtime: cannot map heap metadata");
}

/* ---- span structures ------------------------------------------------------ */

static gc_span *span_struct_new(void)
{
    gc_span *s = span_pool;
    if (s) {
        span_pool = s->next;
    } else {
        s = aligned_alloc(64, sizeof *s);
        if (!s) gm_fatal("runtime: out of memory (span)");
        if (nallspans == capallspans) {
            size_t nc = capallspans ? capallspans * 2 : 1024;
            gc_span **na = realloc(allspans, nc * sizeof *na);
            if (!na) gm_fatal("runtime: out of memory (allspans)");
            allspans = na;
            capallspans = nc;
        }
        allspans[nallspans++] = s;
        s->heap_bits = NULL;
        s->heap_bits_words = 0;
        s->otypes = NULL;
        s->otypes_cap = 0;
        hs.span_structs++;
        hs.span_bytes += sizeof *s;
    }
    uint64_t *hb = s->heap_bits;       /* side arrays stay with the structure */
    size_t hbw = s->heap_bits_words;
    uint16_t *ot = s->otypes;
    uint32_t otc = s->otypes_cap;
    memset(s, 0, sizeof *s);
    s->heap_bits = hb;
    s->heap_bits_words = hbw;
    s->otypes = ot;                     /* zeroed by span_init_small before use */
    s->otypes_cap = otc;
    s->alloc_bits = s->bits[0];
    s->mark_bits = s->bits[1];
    return s;
}

static void span_struct_free(gc_span *s)
{
    s->state = SPAN_DEAD;
    s->list = LIST_NONE;
    s->next = span_pool;
    span_pool = s;
}

void gc_heap_bits_reserve(gc_span *s)
{
    size_t words = (s->npages * GC_PAGE_SIZE / WORD_SIZE + 63) / 64;
    if (s->heap_bits_words < words) {
        free(s->heap_bits);
        s->heap_bits = calloc(words, sizeof(uint64_t));
        if (!s->heap_bits) gm_fatal("runtime: out of memory (heap bits)");
        pthread_mutex_lock(&heap_mu);
        hs.span_bytes += (words - s->heap_bits_words) * 8;
        pthread_mutex_unlock(&heap_mu);
        s->heap_bits_words = words;
    }
}

/* ---- free runs -------------------------------------------------------------- */

static size_t page_index(uintptr_t p) { return (p - gc_arena_start) >> GC_PAGE_SHIFT; }
static gc_spanlist *freelist_for(size_t npages)
{
    return &freelists[npages < NFREELISTS ? npages : 0];
}

static void run_set_ends(gc_span *r)
{
    size_t i = page_index(r->base);
    gc_pagemap[i] = r;
    gc_pagemap[i + r->npages - 1] = r;
}

/* Runs with no returned page go to the head of their list, the others to
 * the tail: find_run looks at a list's head for a dirty run. */
static void run_insert(gc_span *r)
{
    r->state = SPAN_FREE;
    run_set_ends(r);
    if (r->nscav == 0) gc_list_push(freelist_for(r->npages), r, LIST_FREE);
    else gc_list_push_tail(freelist_for(r->npages), r, LIST_FREE);
}

static void run_remove(gc_span *r)
{
    gc_list_remove(freelist_for(r->npages), r);
}

static size_t count_scav(size_t first, size_t n, bool clear)
{
    size_t c = 0;
    for (size_t i = first; i < first + n; i++) {
        uint64_t bit = (uint64_t)1 << (i & 63);
        if (scav_bits[i >> 6] & bit) {
            c++;
            if (clear) scav_bits[i >> 6] &= ~bit;
        }
    }
    return c;
}

/* Clears the returned bits of pages [first, first+n) and counts them; with
 * dirty, records the runs of pages that were not returned. */
static size_t take_scav(size_t first, size_t n, gc_dirty_runs *dirty)
{
    if (!dirty) return count_scav(first, n, true);
    size_t c = 0;
    dirty->n = 0;
    bool in_run = false;
    for (size_t i = first; i < first + n; i++) {
        uint64_t bit = (uint64_t)1 << (i & 63);
        if (scav_bits[i >> 6] & bit) {
            c++;
            scav_bits[i >> 6] &= ~bit;
            in_run = false;
        } else if (in_run) {
            dirty->npages[dirty->n - 1]++;
        } else if (dirty->n < GC_DIRTY_RUNS) {
            dirty->first[dirty->n] = i - first;
            dirty->npages[dirty->n++] = 1;
            in_run = true;
        } else {                          /* out of room: the last run reaches the end */
            dirty->npages[dirty->n - 1] = n - dirty->first[dirty->n - 1];
            return c + count_scav(i, first + n - i, true);
        }
    }
    return c;
}

/* Insert pages [base, base+npages), nscav of them returned, as free,
 * coalescing with neighbours. */
static void free_pages(uintptr_t base, size_t npages, size_t nscav, uint64_t freed_at)
{
    size_t first = page_index(base);
    for (size_t i = first; i < first + npages; i++) gc_pagemap[i] = NULL;
    uintptr_t used = atomic_load_explicit(&gc_arena_used_a, memory_order_relaxed);
    if (first > 0) {
        gc_span *p = gc_pagemap[first - 1];
        if (p && p->state == SPAN_FREE) {
            run_remove(p);
            gc_pagemap[first - 1] = NULL;
            gc_pagemap[page_index(p->base)] = NULL;
            base = p->base;
            npages += p->npages;
            nscav += p->nscav;
            if (p->freed_at > freed_at) freed_at = p->freed_at;
            span_struct_free(p);
        }
    }
    size_t end = page_index(base) + npages;
    if ((end << GC_PAGE_SHIFT) < used) {
        gc_span *n = gc_pagemap[end];
        if (n && n->state == SPAN_FREE) {
            run_remove(n);
            gc_pagemap[end] = NULL;
            gc_pagemap[end + n->npages - 1] = NULL;
            npages += n->npages;
            nscav += n->nscav;
            if (n->freed_at > freed_at) freed_at = n->freed_at;
            span_struct_free(n);
        }
    }
    gc_span *r = span_struct_new();
    r->base = base;
    r->npages = npages;
    r->nscav = nscav;
    r->freed_at = freed_at;
    run_insert(r);
}

static bool grow(size_t npages)
{
    size_t bytes = npages * GC_PAGE_SIZE;
    bytes = (bytes + GC_ARENA_BYTES - 1) & ~(GC_ARENA_BYTES - 1);
    uintptr_t used = atomic_load_explicit(&gc_arena_used_a, memory_order_relaxed);
    if (npages > reserve_bytes / GC_PAGE_SIZE || used + bytes > reserve_bytes) {
        oom_reason = GC_OOM_RESERVE;
        return false;
    }
    if (mprotect((void *)(gc_arena_start + used), bytes, PROT_READ | PROT_WRITE) != 0) {
        oom_reason = GC_OOM_OS;
        return false;
    }
    size_t first = page_index(gc_arena_start + used), n = bytes >> GC_PAGE_SHIFT;
    for (size_t i = first; i < first + n; i++) scav_bits[i >> 6] |= (uint64_t)1 << (i & 63);
    atomic_store_explicit(&gc_arena_used_a, used + bytes, memory_order_release);
    hs.sys += bytes;
    hs.idle += bytes;
    hs.released += bytes;
    free_pages(gc_arena_start + used, n, n, 0);
    return true;
}

/* The run a span of npages is cut from: the smallest that fits among the
 * runs with no page returned to the OS, else the smallest that fits.  Best
 * fit alone took a small returned run over a large dirty one, faulting
 * pages in (the fresh arena's among them) while dirty ones lay idle. */
/* Best fit: fewer pages, then the lower address. */
static bool fits_better(const gc_span *r, const gc_span *than)
{
    return !than || r->npages < than->npages || (r->npages == than->npages && r->base < than->base);
}

static gc_span *find_run(size_t npages)
{
    gc_span *any = NULL;
    for (size_t n = npages; n < NFREELISTS; n++) {
        gc_span *r = freelists[n].first;     /* a dirty run if the list has one */
        if (!r) continue;
        if (r->nscav == 0) return r;
        if (!any) any = r;
    }
    gc_span *best = NULL, *dirty = NULL;
    for (gc_span *r = freelists[0].first; r; r = r->next) {
        if (r->npages < npages) continue;
        if (fits_better(r, best)) best = r;
        if (r->nscav == 0 && fits_better(r, dirty)) dirty = r;
    }
    return dirty ? dirty : any ? any : best;
}

int64_t gm_set_max_heap(int64_t bytes)
{
    gc_ensure_init();
    uint64_t old = atomic_load(&max_heap_a);
    if (bytes >= 0) atomic_store(&max_heap_a, bytes == INT64_MAX ? UINT64_MAX : (uint64_t)bytes);
    return old == UINT64_MAX ? INT64_MAX : (int64_t)old;
}

void gc_heap_set_limit_env(uint64_t bytes) { atomic_store(&max_heap_a, bytes); }

uint64_t gc_heap_max(void) { return atomic_load_explicit(&max_heap_a, memory_order_relaxed); }

int gc_heap_oom_reason(void) { return oom_reason; }

gc_span *gc_heap_alloc_span(size_t npages) { return gc_heap_alloc_span_dirty(npages, NULL); }

gc_span *gc_heap_alloc_span_dirty(size_t npages, gc_dirty_runs *dirty)
{
    pthread_mutex_lock(&heap_mu);
    uint64_t lim = atomic_load_explicit(&max_heap_a, memory_order_relaxed);
    if (GM_UNLIKELY(lim != UINT64_MAX) &&
        (npages > lim / GC_PAGE_SIZE || hs.inuse + npages * GC_PAGE_SIZE > lim)) {
        pthread_mutex_unlock(&heap_mu);
        oom_reason = GC_OOM_LIMIT;
        return NULL;
    }
    gc_span *r = find_run(npages);
    if (!r) {
        if (!grow(npages)) {
            pthread_mutex_unlock(&heap_mu);
            return NULL;                 /* grow set oom_reason */
        }
        r = find_run(npages);
        if (!r) gm_fatal("gc: page heap lost a grown run");
    }
    run_remove(r);
    gc_pagemap[page_index(r->base)] = NULL;
    gc_pagemap[page_index(r->base) + r->npages - 1] = NULL;
    uintptr_t base = r->base;
    size_t first = page_index(base);
    size_t scav = take_scav(first, npages, dirty);
    if (r->npages > npages) {            /* keep the tail free */
        r->base += npages * GC_PAGE_SIZE;
        r->npages -= npages;
        r->nscav -= scav;
        run_insert(r);
    } else {
        span_struct_free(r);
    }
    gc_span *s = span_struct_new();
    s->base = base;
    s->npages = npages;
    s->state = SPAN_INUSE;
    s->needzero = scav != npages;
    for (size_t i = first; i < first + npages; i++) gc_pagemap[i] = s;
    hs.released -= scav * GC_PAGE_SIZE;
    hs.idle -= npages * GC_PAGE_SIZE;
    hs.inuse += npages * GC_PAGE_SIZE;
    if (hs.inuse > inuse_peak) inuse_peak = hs.inuse;
    pthread_mutex_unlock(&heap_mu);
    return s;
}

void gc_heap_free_span(gc_span *s)
{
    pthread_mutex_lock(&heap_mu);
    uintptr_t base = s->base;
    size_t npages = s->npages;
    span_struct_free(s);
    hs.idle += npages * GC_PAGE_SIZE;
    hs.inuse -= npages * GC_PAGE_SIZE;
    free_pages(base, npages, 0, atomic_load_explicit(&gc_sweepgen_a, memory_order_relaxed));
    pthread_mutex_unlock(&heap_mu);
}

void gc_heap_stats(gc_heapstats *out)
{
    pthread_mutex_lock(&heap_mu);
    *out = hs;
    pthread_mutex_unlock(&heap_mu);
}

uint64_t gc_heap_take_inuse_peak(void)
{
    pthread_mutex_lock(&heap_mu);
    uint64_t p = inuse_peak;
    inuse_peak = hs.inuse;
    pthread_mutex_unlock(&heap_mu);
    return p;
}

/* Return free pages to the OS until sys - released <= retain. */
uint64_t gc_scavenge(uint64_t retain, uint32_t min_age_gens)
{
    uint64_t done = 0;
    uint64_t now = atomic_load_explicit(&gc_sweepgen_a, memory_order_relaxed);
    pthread_mutex_lock(&heap_mu);
    for (int pass = 0; pass < NFREELISTS && hs.sys - hs.released > retain; pass++) {
        int li = pass == 0 ? 0 : NFREELISTS - pass;   /* largest first */
        gc_span *next;
        for (gc_span *r = freelists[li].first; r && hs.sys - hs.released > retain; r = next) {
            next = r->next;
            size_t first = page_index(r->base);
            size_t already = r->nscav;
            if (already == r->npages) continue;
            if (now - r->freed_at < min_age_gens) continue;       /* may well be reused soon */
            if (madvise((void *)r->base, r->npages * GC_PAGE_SIZE, MADV_DONTNEED) != 0)
                continue;
            for (size_t i = first; i < first + r->npages; i++)
                scav_bits[i >> 6] |= (uint64_t)1 << (i & 63);
            uint64_t b = (r->npages - already) * GC_PAGE_SIZE;
            hs.released += b;
            done += b;
            run_remove(r);                /* to the tail: returned pages are taken last */
            r->nscav = r->npages;
            run_insert(r);
        }
    }
    pthread_mutex_unlock(&heap_mu);
    return done;
}

/* Checks the page map and free runs; the world is stopped. */
size_t gc_heap_verify_pages(void)
{
    size_t bad = 0;
    pthread_mutex_lock(&heap_mu);
    uintptr_t used = atomic_load_explicit(&gc_arena_used_a, memory_order_relaxed);
    size_t npages = used >> GC_PAGE_SHIFT;
    uint64_t inuse = 0, idle = 0, released = 0;
    for (size_t i = 0; i < npages;) {
        gc_span *s = gc_pagemap[i];
        if (!s) { gm_errorf("verify: page %zu has no span or run", i); bad++; i++; continue; }
        if (s->base != gc_arena_start + (i << GC_PAGE_SHIFT)) {
            gm_errorf("verify: page %zu maps to span at %#lx", i, (unsigned long)s->base);
            bad++;
            i++;
            continue;
        }
        if (s->state == SPAN_INUSE) {
            for (size_t k = i; k < i + s->npages; k++)
                if (gc_pagemap[k] != s) { gm_errorf("verify: in-use span page %zu mismapped", k); bad++; }
            inuse += s->npages * GC_PAGE_SIZE;
        } else if (s->state == SPAN_FREE) {
            if (s->list != LIST_FREE) { gm_errorf("verify: free run not on a free list"); bad++; }
            if (gc_pagemap[i + s->npages - 1] != s) { gm_errorf("verify: free run end unmapped"); bad++; }
            for (size_t k = i + 1; k + 1 < i + s->npages; k++)
                if (gc_pagemap[k]) { gm_errorf("verify: free run interior page %zu mapped", k); bad++; break; }
            if (i + s->npages < npages && gc_pagemap[i + s->npages] &&
                gc_pagemap[i + s->npages]->state == SPAN_FREE) {
                gm_errorf("verify: two adjacent free runs at page %zu", i + s->npages);
                bad++;
            }
            idle += s->npages * GC_PAGE_SIZE;
            size_t nscav = count_scav(i, s->npages, false);
            if (nscav != s->nscav) {
                gm_errorf("verify: free run at page %zu has %zu returned pages, counted %zu", i, nscav, s->nscav);
                bad++;
            }
            released += nscav * GC_PAGE_SIZE;
        } else {
            gm_errorf("verify: page %zu maps to a dead span", i);
            bad++;
        }
        i += s->npages ? s->npages : 1;
    }
    if (inuse != hs.inuse || idle != hs.idle || released != hs.released || inuse + idle != hs.sys) {
        gm_errorf("verify: page stats inuse %llu/%llu idle %llu/%llu released %llu/%llu sys %llu",
                  (unsigned long long)inuse, (unsigned long long)hs.inuse,
                  (unsigned long long)idle, (unsigned long long)hs.idle,
                  (unsigned long long)released, (unsigned long long)hs.released,
                  (unsigned long long)hs.sys);
        bad++;
    }
    size_t listed = 0;
    for (int l = 0; l < NFREELISTS; l++) {
        bool returned_seen = false;
        for (gc_span *r = freelists[l].first; r; r = r->next) {
            listed++;
            if (r->state != SPAN_FREE || freelist_for(r->npages) != &freelists[l]) {
                gm_errorf("verify: bad free list entry");
                bad++;
            }
            if (r->nscav == 0 && returned_seen) {
                gm_errorf("verify: free list %d has a dirty run behind one with returned pages", l);
                bad++;
            }
            returned_seen |= r->nscav != 0;
        }
    }
    (void)listed;
    pthread_mutex_unlock(&heap_mu);
    return bad;
}
