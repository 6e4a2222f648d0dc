/* map_mem.c - where the map's memory comes from and how it goes back.
 *
 * BUCKET ARRAYS.  An array is one allocation: a header (gm_barray), then 2^B
 * buckets, then for B >= 4 another 2^(B-4) buckets set aside for overflow
 * (Go's preallocated overflow buckets).  Arrays of MMAP_THRESHOLD bytes or
 * more come straight from mmap: the kernel hands out zeroed pages on first
 * touch, so the insert that starts a grow neither clears nor touches the new
 * array (Go 1.19 stalled one insert 32 ms at 10M entries doing exactly
 * that; calloc would clear a reused chunk in full).  Such mappings are
 * MADV_NOHUGEPAGE: the inserts that first touch them must only ever take
 * 4 KiB faults (a huge-page fault zeroes 2 MiB and, with THP defrag
 * "always" or "madvise", compacts memory synchronously: 1-10 ms each on the
 * VM this was measured on).
 *
 * PREPARED ARRAYS.  Huge pages are still worth having for big tables (random
 * lookups miss the TLB far less), so they are faulted in off the insert path
 * by one helper thread per process (bg_main; started on first need, blocks
 * every signal, GMDEBUG=mapbg=0 turns it off).  When a malloc map's next
 * (doubled) array would be PREP_MIN_BYTES or more, the map maps it
 * (gm_arr_prepare; HUGE_THRESHOLD or more: 2 MiB aligned and MADV_HUGEPAGE,
 * asked for at 3/4 of the grow point, smaller ones at the grow point) and
 * queues it; the helper writes one byte per page, then sets MADV_NOHUGEPAGE
 * (huge pages in place stay) and marks it ready.  The grow takes it only
 * when ready (gm_arr_prepared), waiting meanwhile (the table runs fuller);
 * see gm_map_hash_grow for how long.  Invariants: the map never touches a
 * prepared array before it is ready, and the helper never touches it after
 * setting owner_a to 0 or seeing cancel_a; who frees a given-up preparation
 * is decided under bg_mu (prep_drop).  A big table's next overflow block is
 * prepared the same way (m->spare).  Nothing here ever waits for the helper.
 *
 * OVERFLOW BUCKETS.  Taken first from the preallocated tail, then from
 * overflow blocks that the array owns; block sizes double from 8 buckets to
 * OVF_BLOCK_MAX (a table of HUGE_THRESHOLD or more: one huge page each).
 * Overflow buckets are never freed one by one (neither are Go's while an
 * array is live); they go with their array.
 *
 * RETIREMENT.  When a grow completes, the old array is retired.  An iterator
 * may still be walking it (Go keeps it alive through the GC; a malloc map has
 * no GC), so while any iterator is open (m->iters_open > 0) retired arrays
 * wait on m->retired.  Once no iterator is open, an array all from malloc is
 * freed at once; one with mapped memory goes to the helper, which unmaps it
 * 2 MiB at a time (munmap of 4 KiB pages costs ~0.28 us a page here: a
 * 256 MiB array, 18 ms).  Without the helper it waits on m->release, from
 * which every write returns at most RELEASE_STEP bytes.  All list surgery
 * on the map happens inside writes (which exclude every reader and
 * iterator, by the map's contract), never inside iterators.
 *
 * ENTRY STORAGE.  Indirect keys and values and the bytes of owned strings are
 * allocated one per entry, behind a small header.  An evacuated slot of an old
 * array still points at that storage, and an iterator whose snapshot is that
 * array reads the key through it to look the entry up again.  So storage of
 * an entry deleted while iterators are open is not freed at once: it is
 * chained through its header onto m->deferred and freed by later writes once
 * no iterator is open (DEFERRED_STEP per write), or by clear and free.
 *
 * GC MAPS (gm_map_new_gc).  The same structures live on the GC heap and none
 * of the above bookkeeping is needed: the collector frees what nothing
 * reaches.  An array is one object: precisely scanned through the bucket
 * type's mask when keys or values hold pointers, else pointer-free.  Its
 * header is a separate conservatively scanned object (a mask cannot describe
 * a header followed by buckets) that lists every overflow block: for
 * pointer-free buckets the chains are invisible to the collector, and the
 * list is what keeps overflow buckets alive (Go's extra.overflow).  Iterators
 * hold their snapshot's header for the same reason (Go's hiter.overflow).
 * Retiring an array just drops the map's references; entry storage comes
 * from gm_new / gm_alloc_noscan and is never freed by hand.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "map/map_internal.h"

static bool bg_release(gm_map *m, gm_barray *a);
static uint8_t *spare_block(gm_map *m, size_t bytes, bool huge);


#ifdef GOMAP_FAULT_INJECTION
static _Atomic long fault_countdown;
void gm_map_fault_alloc_after(long n) { atomic_store(&fault_countdown, n); }
static _Atomic int hold_release_a, held_release_a;
int gm_map_fault_hold_after_release(int hold)
{
    atomic_store(&hold_release_a, hold);
    return atomic_load(&held_release_a);
}
static void hold_after_release(void)
{
    if (!atomic_load(&hold_release_a)) return;
    atomic_store(&held_release_a, 1);
    while (atomic_load(&hold_release_a)) usleep(1000);
    atomic_store(&held_release_a, 0);
}
static bool fault_now(void)
{
    long v = atomic_load(&fault_countdown);
    if (v <= 0) return false;
    if (atomic_fetch_sub(&fault_countdown, 1) == 1) return true;
    return false;
}
#else
static bool fault_now(void) { return false; }
static void hold_after_release(void) {}
#endif

void *gm_map_malloc(size_t n, size_t align)
{
    if (fault_now()) return NULL;
    if (n == 0) n = 1;
    if (align <= 16) return malloc(n);
    void *p = NULL;
    if (posix_memalign(&p, align, n) != 0) return NULL;
    return p;
}

void gm_map_mfree(void *p) { free(p); }

#define DEFERRED_STEP 256

static size_t own_hdr(size_t align) { return align > 16 ? align : 16; }

void *gm_own_alloc(gm_map *m, size_t n, const gm_type *t)
{
    if (m->gc) return t ? gm_new(t) : gm_alloc_noscan(n);
    size_t align = t ? t->align : 1;
    size_t h = own_hdr(align);
    uint8_t *base = gm_map_malloc(h + n, align);
    return base ? base + h : NULL;
}

/* Frees entry storage; `published` storage may still be read through an
 * evacuated slot by an open iterator, so it waits (see ENTRY STORAGE). */
void gm_own_free(gm_map *m, void *p, size_t align, bool published)
{
    if (p == NULL || m->gc) return;
    uint8_t *base = (uint8_t *)p - own_hdr(align);
    if (published && atomic_load_explicit(&m->iters_open, memory_order_acquire) > 0) {
        memcpy(base, &m->deferred, sizeof(void *));
        m->deferred = base;
        return;
    }
    free(base);
}

static void deferred_release(gm_map *m, size_t max)
{
    while (m->deferred && max--) {
        void *next;
        memcpy(&next, m->deferred, sizeof next);
        free(m->deferred);
        m->deferred = next;
    }
}

/* Zeroed memory of at least `bytes`, aligned to `align`; *mmapped says how.
 * A mapping comes with MADV_NOHUGEPAGE: the writes that first touch it run
 * inside inserts, and one huge-page fault there is 2 MiB of zeroing plus,
 * with THP defrag "always" or "madvise", synchronous compaction (measured on
 * the 2-core VM this was written on: 1-10 ms per huge fault, against
 * 1.4 us mean for a 4 KiB one).  Huge pages come only through the helper
 * (PREPARED ARRAYS), which takes those faults off the insert path. */
static void *zalloc(size_t bytes, size_t align, bool *mmapped)
{
    if (fault_now()) return NULL;
    if (bytes >= MMAP_THRESHOLD && align <= 4096) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        (void)madvise(p, bytes, MADV_NOHUGEPAGE); /* advisory: absent without THP */
        *mmapped = true;
        return p;
    }
    *mmapped = false;
    void *p;
    if (align <= 16) return calloc(1, bytes);
    if (posix_memalign(&p, align, bytes) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static void zfree(void *p, size_t bytes, bool mmapped)
{
    if (mmapped) munmap(p, bytes);
    else free(p);
}

gm_barray *gm_arr_hdr(const gm_map *m, uint8_t *buckets)
{
    if (m->gc) return buckets == m->buckets ? m->hdr_cur : m->hdr_old;
    return (gm_barray *)(void *)(buckets - m->hdrsize);
}

/* n buckets of GC memory: typed (precisely scanned) or pointer-free. */
static uint8_t *gc_buckets(gm_map *m, size_t n)
{
    if (m->bscan) return gm_new_array(m->btype, n);
    /* pointer-free buckets: a type only for the alignment (gm_new_array
     * keeps no reference to a noscan type) */
    const gm_type t = { m->bucketsize, m->balign, NULL, NULL, NULL, 0, "map.bucket" };
    return gm_new_array(&t, n);
}

/* A GC map's new array and its separate header (*hdr). */
static uint8_t *gc_arr_new(gm_map *m, unsigned B, gm_barray **hdr)
{
    size_t nb = (size_t)1 << B;
    size_t extra = B >= 4 ? (size_t)1 << (B - 4) : 0;
    gm_barray *a = gm_alloc_conservative(sizeof *a);
    if (a == NULL) return NULL;
    uint8_t *buckets = gc_buckets(m, nb + extra);
    if (buckets == NULL) return NULL;
    a->nbuckets = nb;
    a->bytes = (nb + extra) * (size_t)m->bucketsize;
    gm_store(&a->gc_buckets, buckets);
    gm_store(&a->ovf_next, buckets + nb * m->bucketsize);
    gm_store(&a->ovf_end, buckets + (nb + extra) * m->bucketsize);
    m->bytes_held += a->bytes;
    *hdr = a;
    return buckets;
}

/* A new zeroed array of 2^B buckets; *hdr receives its header (on a GC map
 * a separate object, to be installed with the array: gm_arr_install). */
uint8_t *gm_arr_new(gm_map *m, unsigned B, gm_barray **hdr)
{
    size_t nb = (size_t)1 << B;
    size_t extra = B >= 4 ? (size_t)1 << (B - 4) : 0;
    if (B >= 48) return NULL;
    if (m->gc) return gc_arr_new(m, B, hdr);
    size_t bytes = m->hdrsize + (nb + extra) * (size_t)m->bucketsize;
    bool mm;
    uint8_t *base = zalloc(bytes, m->balign, &mm);
    if (base == NULL) return NULL;
    gm_barray *a = (gm_barray *)(void *)base;
    a->bytes = bytes;
    a->mmapped = mm;
    a->nbuckets = nb;
    uint8_t *buckets = base + m->hdrsize;
    a->ovf_next = buckets + nb * m->bucketsize;
    a->ovf_end = a->ovf_next + extra * m->bucketsize;
    m->bytes_held += bytes;
    *hdr = a;
    return buckets;
}

/* Makes (buckets, hdr) the map's current array; the previous one becomes
 * the old array when `grow`, else it is forgotten (the caller retires it). */
void gm_arr_install(gm_map *m, uint8_t *buckets, gm_barray *hdr, bool grow)
{
    if (grow) {
        hdr_store(m, &m->oldbuckets, m->buckets);
        if (m->gc) hdr_store(m, &m->hdr_old, m->hdr_cur);
    }
    hdr_store(m, &m->buckets, buckets);
    if (m->gc) hdr_store(m, &m->hdr_cur, hdr);
    m->prefetch = hdr->nbuckets * (size_t)m->bucketsize >= PREFETCH_MIN_BYTES;
}

/* GC map: a new overflow block, recorded in the header's block list. */
static bool gc_ovf_block(gm_map *m, gm_barray *a, size_t cnt)
{
    if (a->gc_nblocks == a->gc_cap) {
        size_t cap = a->gc_cap ? 2 * a->gc_cap : 8;
        void **v = gm_alloc_conservative(cap * sizeof *v);
        if (v == NULL) return false;
        for (size_t i = 0; i < a->gc_nblocks; i++) v[i] = a->gc_blocks[i]; /* v is new: no barrier needed */
        gm_store(&a->gc_blocks, v);
        a->gc_cap = cap;
    }
    uint8_t *blk = gc_buckets(m, cnt);
    if (blk == NULL) return false;
    gm_store(&a->gc_blocks[a->gc_nblocks], blk);
    a->gc_nblocks++;
    a->ovf_blocks_made++;
    gm_store(&a->ovf_next, blk);
    gm_store(&a->ovf_end, blk + cnt * m->bucketsize);
    m->bytes_held += cnt * (size_t)m->bucketsize;
    a->bytes += cnt * (size_t)m->bucketsize;
    return true;
}

/* Makes sure `n` overflow buckets can be had from arr without allocating. */
bool gm_ovf_reserve(gm_map *m, uint8_t *arr, size_t n)
{
    gm_barray *a = gm_arr_hdr(m, arr);
    size_t have = (size_t)(a->ovf_end - a->ovf_next) / m->bucketsize;
    if (have >= n) return true;
    size_t cnt = (size_t)8 << (a->ovf_blocks_made < 9 ? a->ovf_blocks_made : 9);
    if (cnt > OVF_BLOCK_MAX) cnt = OVF_BLOCK_MAX;
    if (cnt < n) cnt = n;
    if (m->gc) return gc_ovf_block(m, a, cnt);
    /* A table of HUGE_THRESHOLD or more takes its overflow blocks a huge
     * page at a time, prepared by the helper (TLB reach for chains too). */
    size_t huge_cnt = (HUGE_PAGE - m->hdrsize) / m->bucketsize;
    bool huge = ((size_t)1 << m->B) * (size_t)m->bucketsize >= HUGE_THRESHOLD && n <= huge_cnt;
    if (huge) cnt = huge_cnt;
    size_t bytes = m->hdrsize + cnt * (size_t)m->bucketsize;
    bool mm = true;
    uint8_t *base = huge || cnt == OVF_BLOCK_MAX ? spare_block(m, bytes, huge) : NULL;
    if (base == NULL) base = zalloc(bytes, m->balign, &mm);
    if (base == NULL) return false;
    gm_ovf_block *blk = (gm_ovf_block *)(void *)base;
    blk->bytes = bytes;
    blk->mmapped = mm;
    blk->next = a->blocks;
    a->blocks = blk;
    a->ovf_blocks_made++;
    a->ovf_next = base + m->hdrsize;
    a->ovf_end = a->ovf_next + cnt * m->bucketsize;
    m->bytes_held += bytes;
    return true;
}

/* A zeroed overflow bucket belonging to arr, or NULL if memory ran out. */
uint8_t *gm_ovf_new(gm_map *m, uint8_t *arr)
{
    if (!gm_ovf_reserve(m, arr, 1)) return NULL;
    gm_barray *a = gm_arr_hdr(m, arr);
    uint8_t *b = a->ovf_next;
    if (m->gc) gm_store(&a->ovf_next, b + m->bucketsize);
    else a->ovf_next += m->bucketsize;
    m->n_ovf++;
    return b;
}

void gm_arr_free_now(gm_map *m, gm_barray *a)
{
    if (m->gc) return; /* the collector's job */
    gm_ovf_block *blk = a->blocks;
    while (blk) {
        gm_ovf_block *next = blk->next;
        m->bytes_held -= blk->bytes;
        zfree(blk, blk->bytes, blk->mmapped);
        blk = next;
    }
    m->bytes_held -= a->bytes;
    zfree(a, a->bytes, a->mmapped);
}

/* Called from inserting threads and the helper: a relaxed atomic cache (a
 * plain static was a data race TSan reported on the first concurrent call). */
static size_t page_size(void)
{
    static _Atomic size_t ps;
    size_t v = atomic_load_explicit(&ps, memory_order_relaxed);
    if (v == 0) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&ps, v, memory_order_relaxed);
    }
    return v;
}

/* Whether any of an array's memory is mapped (else it all came from malloc
 * and free() returns it at once: no need to wake the helper). */
static bool arr_mapped(const gm_barray *a)
{
    if (a->mmapped) return true;
    for (const gm_ovf_block *b = a->blocks; b; b = b->next)
        if (b->mmapped) return true;
    return false;
}

/* Called when an array is no longer the map's: see RETIREMENT above. */
void gm_arr_retire(gm_map *m, uint8_t *arr)
{
    gm_barray *a = gm_arr_hdr(m, arr);
    if (m->gc) {
        /* Only ever the old array: iterators that still walk it hold it. */
        m->bytes_held -= a->bytes;
        hdr_store(m, &m->hdr_old, NULL);
        return;
    }
    if (atomic_load_explicit(&m->iters_open, memory_order_acquire) > 0) {
        a->next = m->retired;
        m->retired = a;
        return;
    }
    if (!arr_mapped(a)) {
        gm_arr_free_now(m, a);
        return;
    }
    if (bg_release(m, a)) return;
    a->next = m->release;
    m->release = a;
}

/* Unmaps up to RELEASE_STEP bytes from the tail of a mapping whose header
 * (its first page) stays; false when only that page is left. */
static bool unmap_tail_step(void *base, size_t *bytes, size_t *held)
{
    if (*bytes <= RELEASE_STEP) return false;
    size_t page = page_size();
    size_t keep = *bytes - RELEASE_STEP;
    keep = (keep + page - 1) & ~(page - 1);
    if (keep >= *bytes) return false;
    munmap((uint8_t *)base + keep, *bytes - keep);
    *held -= *bytes - keep;
    *bytes = keep;
    return true;
}

/* Returns at most RELEASE_STEP bytes of the first released array to the OS
 * (no helper thread: GMDEBUG=mapbg=0, or it could not be started). */
static void release_step(gm_map *m)
{
    gm_barray *a = m->release;
    if (a->blocks) {
        gm_ovf_block *blk = a->blocks;
        if (blk->mmapped && unmap_tail_step(blk, &blk->bytes, &m->bytes_held)) return;
        a->blocks = blk->next;
        m->bytes_held -= blk->bytes;
        zfree(blk, blk->bytes, blk->mmapped);
        return;
    }
    if (a->mmapped && unmap_tail_step(a, &a->bytes, &m->bytes_held)) return;
    m->release = a->next;
    m->bytes_held -= a->bytes;
    zfree(a, a->bytes, a->mmapped);
}

/* No iterator can read the retired arrays any more: queue them for release. */
void gm_mem_unpin_retired(gm_map *m)
{
    while (m->retired) {
        gm_barray *a = m->retired;
        m->retired = a->next;
        if (!arr_mapped(a)) {
            gm_arr_free_now(m, a);
            continue;
        }
        if (bg_release(m, a)) continue;
        a->next = m->release;
        m->release = a;
    }
}

/* Runs at the end of every write: bounded work. */
void gm_mem_maintain(gm_map *m)
{
    if (m->retired && atomic_load_explicit(&m->iters_open, memory_order_acquire) == 0)
        gm_mem_unpin_retired(m);
    if (m->release) release_step(m);
    if (m->deferred && atomic_load_explicit(&m->iters_open, memory_order_acquire) == 0)
        deferred_release(m, DEFERRED_STEP);
}

void gm_mem_release_all(gm_map *m)
{
    gm_barray *lists[2] = { m->retired, m->release };
    for (int l = 0; l < 2; l++) {
        gm_barray *a = lists[l];
        while (a) {
            gm_barray *next = a->next;
            gm_arr_free_now(m, a);
            a = next;
        }
    }
    m->retired = m->release = NULL;
    deferred_release(m, SIZE_MAX);
}

/* Empties an array in place for clear: overflow blocks go, buckets are zeroed
 * (large arrays by giving the pages back, so clear touches no memory). */
void gm_arr_reset(gm_map *m, uint8_t *arr)
{
    gm_barray *a = gm_arr_hdr(m, arr);
    if (m->gc) {
        /* A fresh array; the old one goes with the stopped iterators. */
        gm_barray *h;
        uint8_t *fresh = gm_arr_new(m, m->B, &h);
        if (fresh == NULL) gm_fatal("runtime: out of memory");
        m->bytes_held -= a->bytes;
        gm_arr_install(m, fresh, h, false);
        return;
    }
    gm_ovf_block *blk = a->blocks;
    while (blk) {
        gm_ovf_block *next = blk->next;
        m->bytes_held -= blk->bytes;
        zfree(blk, blk->bytes, blk->mmapped);
        blk = next;
    }
    a->blocks = NULL;
    a->ovf_blocks_made = 0;
    size_t nb = a->nbuckets;
    size_t extra = nb >= 16 ? nb / 16 : 0;
    size_t len = (nb + extra) * (size_t)m->bucketsize;
    a->ovf_next = arr + nb * m->bucketsize;
    a->ovf_end = a->ovf_next + extra * m->bucketsize;
    if (a->mmapped) {
        size_t page = page_size();
        uintptr_t lo = ((uintptr_t)arr + page - 1) & ~(uintptr_t)(page - 1);
        uintptr_t hi = ((uintptr_t)arr + len) & ~(uintptr_t)(page - 1);
        if (hi > lo) {
            memset(arr, 0, lo - (uintptr_t)arr);
            if (madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0)
                memset((void *)lo, 0, hi - lo);
            memset((void *)hi, 0, (uintptr_t)arr + len - hi);
            return;
        }
    }
    memset(arr, 0, len);
}

/* ------------------------------------------------------------ GMDEBUG */

/* The map's GMDEBUG settings, read once:
 *   mapseed=N  every map's hash seed, every reseed and every iterator start
 *              come from a splitmix64 stream started at N (per thread), so
 *              a benchmark or a callgrind profile is the same run after run;
 *              never in production: the seeds are guessable (hash flooding);
 *   mapbg=0    no helper thread (PREPARED ARRAYS): growth of large arrays
 *              takes 4 KiB faults in inserts and returns memory in steps. */
static struct {
    bool seeded;
    uint64_t seed;
    int bg;
} mopt = { false, 0, 1 };
static pthread_once_t mopt_once = PTHREAD_ONCE_INIT;

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    char buf[40];
    if (n == 0 || n >= sizeof buf || s[0] == '-' || s[0] == '+') return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 0);
    if (errno || *end || end == buf) return false;
    *out = v;
    return true;
}

static void mopt_pair(const char *p, size_t n)
{
    const char *eq = memchr(p, '=', n);
    if (eq == NULL) return; /* the GC's parser reports malformed pairs */
    size_t nl = (size_t)(eq - p), vl = n - nl - 1;
    const char *v = eq + 1;
    uint64_t x;
    if (nl == 7 && memcmp(p, "mapseed", 7) == 0) {
        if (!parse_u64(v, vl, &x)) {
            gm_errorf("GMDEBUG: bad value \"%.*s\" for mapseed (want an unsigned 64-bit "
                      "integer, decimal or 0x hex); map seeds stay random", (int)vl, v);
            return;
        }
        mopt.seeded = true;
        mopt.seed = x;
    } else if (nl == 5 && memcmp(p, "mapbg", 5) == 0) {
        if (!parse_u64(v, vl, &x) || x > 1) {
            gm_errorf("GMDEBUG: bad value \"%.*s\" for mapbg (want 0 or 1); using 1", (int)vl, v);
            return;
        }
        mopt.bg = (int)x;
    }
}

static _Thread_local uint64_t fixed_state;
static _Thread_local bool fixed_started;

static void mopt_parse_str(const char *s)
{
    while (s && *s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n) mopt_pair(s, n);
        if (!c) break;
        s = c + 1;
    }
}

static void mopt_parse(void) { mopt_parse_str(getenv("GMDEBUG")); }
static void mopt_init(void) { pthread_once(&mopt_once, mopt_parse); }

/* Test hook: the settings as if GMDEBUG were `s` (this thread's fixed
 * stream starts over). */
void gm_map_options_set(const char *s)
{
    mopt_init();
    mopt.seeded = false;
    mopt.seed = 0;
    mopt.bg = 1;
    fixed_started = false;
    mopt_parse_str(s);
}

static uint64_t fixed_next(void)
{
    if (!fixed_started) {
        fixed_state = mopt.seed;
        fixed_started = true;
    }
    uint64_t z = (fixed_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A new map's hash seed: from the kernel, or the fixed stream (mapseed). */
uint64_t gm_map_seed(void)
{
    mopt_init();
    return mopt.seeded ? fixed_next() : gm_rand_seed64();
}

/* Randomness that only has to differ (reseeds, iterator starts, the
 * sampled overflow count): Go's fastrand, or the fixed stream. */
uint64_t gm_map_rand(void)
{
    mopt_init();
    return mopt.seeded ? fixed_next() : gm_rand64();
}

/* ------------------------------------------------------ the helper thread */

static pthread_mutex_t bg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t bg_idle_cv = PTHREAD_COND_INITIALIZER;
static gm_prep *bg_preps;               /* FIFO of arrays to populate */
static gm_barray *bg_rels;              /* FIFO of retired arrays to unmap */
static gm_prep *bg_cur_prep;            /* being populated (under bg_mu) */
static gm_barray *bg_cur_rel;           /* being unmapped */
static bool bg_started, bg_busy;
static _Atomic bool bg_failed;           /* pthread_create failed: no helper */
static bool bg_paused;                  /* test hook: take no new job */
static bool bg_atfork_set;

/* Unmaps [p, p+bytes) a huge page at a time from the end: one munmap holds
 * the address-space lock for at most 2 MiB of page tables. */
static void unmap_chunks(void *p, size_t bytes)
{
    uintptr_t lo = (uintptr_t)p;
    uintptr_t end = lo + ((bytes + page_size() - 1) & ~(page_size() - 1));
    while (end > lo) {
        uintptr_t start = (end - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        if (start < lo) start = lo;
        munmap((void *)start, end - start);
        end = start;
    }
}

static void release_now(gm_barray *a)
{
    gm_ovf_block *blk = a->blocks;
    while (blk) {
        gm_ovf_block *next = blk->next;
        if (blk->mmapped) unmap_chunks(blk, blk->bytes);
        else free(blk);
        blk = next;
    }
    if (a->mmapped) unmap_chunks(a, a->bytes);
    else free(a);
}

/* Touches every page of the prepared array, checking at each huge page
 * for cancellation (false) or for the map asking for the array as it is
 * (finish_a): the rest then becomes MADV_NOHUGEPAGE, so the inserts that
 * first touch it take 4 KiB faults, and the populated part keeps its huge
 * pages. */
static bool populate(gm_prep *p)
{
    size_t ps = page_size();
    for (size_t off = 0; off < p->bytes; off += ps) {
        if ((off & (HUGE_PAGE - 1)) == 0) {
            if (atomic_load_explicit(&p->cancel_a, memory_order_relaxed)) return false;
            if (atomic_load_explicit(&p->finish_a, memory_order_relaxed)) break;
        }
        ((volatile uint8_t *)p->base)[off] = 0;
    }
    /* From now on any fault in it (after clear gave pages back) is a
     * 4 KiB one; the huge pages already there stay. */
    (void)madvise(p->base, p->bytes, MADV_NOHUGEPAGE);
    return true;
}

static void *bg_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bg_mu);
    for (;;) {
        while (bg_paused || (bg_preps == NULL && bg_rels == NULL)) {
            bg_busy = false;
            pthread_cond_broadcast(&bg_idle_cv);
            pthread_cond_wait(&bg_work_cv, &bg_mu);
        }
        bg_busy = true;
        if (bg_preps) {
            gm_prep *p = bg_preps;
            bg_preps = p->qnext;
            bg_cur_prep = p;
            pthread_mutex_unlock(&bg_mu);
            bool ok = populate(p);
            pthread_mutex_lock(&bg_mu);
            bg_cur_prep = NULL;
            if (!atomic_load_explicit(&p->cancel_a, memory_order_relaxed)) {
                if (ok) atomic_store_explicit(&p->ready_a, 1, memory_order_release);
                atomic_store_explicit(&p->owner_a, 0, memory_order_release); /* last touch of p */
            } else {
                /* Cancelled while in flight: the map forgot it; ours to undo. */
                pthread_mutex_unlock(&bg_mu);
                unmap_chunks(p->base, p->bytes);
                free(p);
                pthread_mutex_lock(&bg_mu);
            }
        } else {
            gm_barray *a = bg_rels;
            bg_rels = a->next;
            bg_cur_rel = a;
            pthread_mutex_unlock(&bg_mu);
            release_now(a);
            hold_after_release();
            pthread_mutex_lock(&bg_mu);
            bg_cur_rel = NULL;
        }
    }
    return NULL;
}

static void bg_fork_prepare(void) { pthread_mutex_lock(&bg_mu); }
static void bg_fork_parent(void) { pthread_mutex_unlock(&bg_mu); }
/* The child has no helper: what it was doing is handed back (an array
 * being populated counts as not ready).  An array it was releasing is
 * forgotten: release_now is not restartable (blocks freed, the header
 * unmapped last or freed), so in the child what is left of it leaks --
 * never touched, never freed twice. */
static void bg_fork_child(void)
{
    pthread_mutex_init(&bg_mu, NULL);
    pthread_cond_init(&bg_work_cv, NULL);
    pthread_cond_init(&bg_idle_cv, NULL);
    if (bg_cur_prep) {
        if (atomic_load_explicit(&bg_cur_prep->cancel_a, memory_order_relaxed)) {
            unmap_chunks(bg_cur_prep->base, bg_cur_prep->bytes);
            free(bg_cur_prep);
        } else {
            atomic_store_explicit(&bg_cur_prep->owner_a, 0, memory_order_relaxed);
        }
        bg_cur_prep = NULL;
    }
    bg_cur_rel = NULL;
    bg_started = bg_busy = false;
}

/* Starts a detached helper thread running fn, named name, with every
 * signal blocked (a helper takes no signal); false if it cannot start.
 * The classic engine's array helper and the Swiss chunk helper. */
bool gm_map_start_helper(void *(*fn)(void *), const char *name)
{
    pthread_attr_t at;
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, &at, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc != 0) return false;
#ifdef __GLIBC__
    pthread_setname_np(t, name);
#else
    (void)name;
#endif
    return true;
}

/* Starts the helper if needed; under bg_mu.  False if it cannot run. */
static bool bg_start_locked(void)
{
    if (bg_started) return true;
    if (bg_failed) return false;
    if (!bg_atfork_set) {
        pthread_atfork(bg_fork_prepare, bg_fork_parent, bg_fork_child);
        bg_atfork_set = true;
    }
    if (!gm_map_start_helper(bg_main, "gomap-map-bg")) {
        bg_failed = true;
        return false;
    }
    bg_started = true;
    return true;
}

bool gm_map_bg_enabled(void)
{
    mopt_init();
    return mopt.bg && !bg_failed;
}

/* Hands a retired array (and its overflow blocks) to the helper. */
static bool bg_release(gm_map *m, gm_barray *a)
{
    if (!gm_map_bg_enabled()) return false;
    /* Blocks from malloc go at once (free is cheap; and a leak checker
     * could not see them through a mapped array's header). */
    for (gm_ovf_block **bp = &a->blocks; *bp;) {
        gm_ovf_block *b = *bp;
        if (b->mmapped) {
            bp = &b->next;
            continue;
        }
        *bp = b->next;
        m->bytes_held -= b->bytes;
        free(b);
    }
    size_t bytes = a->bytes;
    for (gm_ovf_block *b = a->blocks; b; b = b->next) bytes += b->bytes;
    pthread_mutex_lock(&bg_mu);
    if (!bg_start_locked()) {
        pthread_mutex_unlock(&bg_mu);
        return false;
    }
    a->next = NULL;
    gm_barray **t = &bg_rels;
    while (*t) t = &(*t)->next;
    *t = a;
    pthread_cond_signal(&bg_work_cv);
    pthread_mutex_unlock(&bg_mu);
    m->bytes_held -= bytes;
    return true;
}

/* Test hook: waits until the helper has nothing queued or in hand.
 * True if it had any work. */
bool gm_map_bg_quiesce(void)
{
    pthread_mutex_lock(&bg_mu);
    bool had = bg_busy || bg_preps || bg_rels;
    while (bg_started && !bg_paused && (bg_busy || bg_preps || bg_rels))
        pthread_cond_wait(&bg_idle_cv, &bg_mu);
    pthread_mutex_unlock(&bg_mu);
    return had;
}

/* Test hook: a paused helper finishes the job in hand and takes no other. */
void gm_map_bg_pause(bool on)
{
    pthread_mutex_lock(&bg_mu);
    bg_paused = on;
    pthread_cond_broadcast(&bg_work_cv);
    pthread_mutex_unlock(&bg_mu);
}

/* ------------------------------------------------------ prepared arrays */

static size_t arr_bytes(const gm_map *m, unsigned B)
{
    size_t nb = (size_t)1 << B;
    size_t extra = B >= 4 ? (size_t)1 << (B - 4) : 0;
    return m->hdrsize + (nb + extra) * (size_t)m->bucketsize;
}

/* Whether the next (doubled) array should be prepared by the helper. */
bool gm_prep_wanted(const gm_map *m)
{
    return !m->gc && m->buckets != NULL && m->B + 1u < 48 && m->balign <= 4096 &&
           arr_bytes(m, m->B + 1u) >= PREP_MIN_BYTES && gm_map_bg_enabled();
}

/* Whether the next array is big enough to be prepared early (huge pages). */
bool gm_prep_early(const gm_map *m)
{
    return gm_prep_wanted(m) && arr_bytes(m, m->B + 1u) >= HUGE_THRESHOLD;
}

/* Maps `bytes` (huge-page aligned when `huge`, with MADV_HUGEPAGE) and
 * queues it for the helper to populate; NULL if that cannot be done. */
static gm_prep *prep_new(size_t bytes, bool huge)
{
    if (fault_now()) return NULL;
    size_t len = (bytes + page_size() - 1) & ~(page_size() - 1);
    size_t slack = huge ? HUGE_PAGE : 0;
    gm_prep *p = malloc(sizeof *p);
    if (p == NULL) return NULL;
    uint8_t *raw = mmap(NULL, len + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        free(p);
        return NULL;
    }
    /* Huge-page aligned (no partial huge page at the front); slack goes. */
    uint8_t *base = huge ? (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1)) : raw;
    if (base > raw) munmap(raw, (size_t)(base - raw));
    if (raw + len + slack > base + len) munmap(base + len, (size_t)(raw + len + slack - (base + len)));
    /* One 4 KiB fault here, before the advice, gives the mapping its
     * anon_vma, so the helper's faults can take the per-VMA lock and never
     * hold the whole address space's lock while a huge page is zeroed. */
    (void)madvise(base, len, MADV_NOHUGEPAGE);
    ((volatile uint8_t *)base)[len - 1] = 0;
    if (huge) (void)madvise(base, len, MADV_HUGEPAGE);
    p->qnext = NULL;
    p->base = base;
    p->bytes = bytes;
    p->B = 0;
    atomic_init(&p->cancel_a, 0);
    atomic_init(&p->finish_a, 0);
    atomic_init(&p->ready_a, 0);
    atomic_init(&p->owner_a, 1);
    pthread_mutex_lock(&bg_mu);
    if (!bg_start_locked()) {
        pthread_mutex_unlock(&bg_mu);
        munmap(base, len);
        free(p);
        return NULL;
    }
    gm_prep **t = &bg_preps;
    while (*t) t = &(*t)->qnext;
    *t = p;
    pthread_cond_signal(&bg_work_cv);
    pthread_mutex_unlock(&bg_mu);
    return p;
}

/* Gives up a preparation (*slot).  Never waits for the helper. */
static void prep_drop(gm_map *m, gm_prep **slot)
{
    gm_prep *p = *slot;
    if (p == NULL) return;
    *slot = NULL;
    m->bytes_held -= p->bytes;
    pthread_mutex_lock(&bg_mu);
    for (gm_prep **q = &bg_preps; *q; q = &(*q)->qnext) {
        if (*q != p) continue;
        *q = p->qnext; /* never started: nothing was faulted */
        pthread_mutex_unlock(&bg_mu);
        munmap(p->base, p->bytes);
        free(p);
        return;
    }
    if (bg_cur_prep == p) {
        atomic_store_explicit(&p->cancel_a, 1, memory_order_relaxed);
        pthread_mutex_unlock(&bg_mu); /* the helper undoes it */
        return;
    }
    pthread_mutex_unlock(&bg_mu);
    /* Finished (owner_a 0): populated memory, returned by the helper. */
    gm_barray *a = (gm_barray *)(void *)p->base;
    bool ready = atomic_load_explicit(&p->ready_a, memory_order_acquire);
    size_t bytes = p->bytes;
    free(p);
    if (!ready) {
        munmap(a, bytes);
        return;
    }
    memset(a, 0, sizeof *a);
    a->bytes = bytes;
    a->mmapped = true;
    m->bytes_held += bytes; /* bg_release takes it off again */
    if (!bg_release(m, a)) {
        m->bytes_held -= bytes;
        unmap_chunks(a, bytes);
    }
}

/* The prepared memory of *slot if the helper has populated it (the
 * preparation is consumed); NULL while it is still at work. */
static uint8_t *prep_take(gm_map *m, gm_prep **slot)
{
    gm_prep *p = *slot;
    if (atomic_load_explicit(&p->owner_a, memory_order_acquire)) return NULL;
    if (!atomic_load_explicit(&p->ready_a, memory_order_acquire)) {
        prep_drop(m, slot); /* a forked child's: never finished */
        return NULL;
    }
    uint8_t *base = p->base;
    *slot = NULL;
    free(p);
    return base;
}

/* Maps the array of 2^B buckets and queues it for the helper. */
bool gm_arr_prepare(gm_map *m, unsigned B)
{
    if (m->prep) return false;
    size_t bytes = arr_bytes(m, B);
    gm_prep *p = prep_new(bytes, bytes >= HUGE_THRESHOLD);
    if (p == NULL) return false;
    p->B = B;
    m->prep = p;
    m->bytes_held += bytes;
    m->n_prep_made++;
    return true;
}

/* The map no longer wants what is being prepared for it. */
void gm_prep_cancel(gm_map *m)
{
    prep_drop(m, &m->prep);
    prep_drop(m, &m->spare);
}

/* The grow has waited long enough: the helper is asked to stop and hand
 * the array over as it is (see populate).  Never waits. */
void gm_prep_hurry(gm_map *m)
{
    if (m->prep) atomic_store_explicit(&m->prep->finish_a, 1, memory_order_relaxed);
}

/* The array of 2^B buckets for a grow, if the helper prepared it:
 * 1 (*buckets, *hdr set), 0 still being populated, -1 none prepared. */
int gm_arr_prepared(gm_map *m, unsigned B, uint8_t **buckets, gm_barray **hdr)
{
    if (m->prep == NULL || m->prep->B != B) return -1;
    size_t bytes = m->prep->bytes;
    uint8_t *base = prep_take(m, &m->prep);
    if (base == NULL) return m->prep ? 0 : -1;
    size_t nb = (size_t)1 << B;
    size_t extra = B >= 4 ? (size_t)1 << (B - 4) : 0;
    gm_barray *a = (gm_barray *)(void *)base;
    memset(a, 0, sizeof *a);
    a->bytes = bytes;
    a->mmapped = true;
    a->nbuckets = nb;
    uint8_t *b = base + m->hdrsize;
    a->ovf_next = b + nb * m->bucketsize;
    a->ovf_end = a->ovf_next + extra * m->bucketsize;
    *buckets = b;
    *hdr = a;
    m->n_prep_taken++;
    return 1;
}

/* Overflow blocks of full size (or of a huge page) for a big table: the next one is prepared
 * while the current one is used, so overflow buckets are not faulted in by
 * inserts either.  NULL: none ready (the caller maps one itself). */
static uint8_t *spare_block(gm_map *m, size_t bytes, bool huge)
{
    if (m->gc || !gm_prep_wanted(m)) return NULL;
    uint8_t *base = NULL;
    if (m->spare && m->spare->bytes != bytes) prep_drop(m, &m->spare);
    if (m->spare) {
        base = prep_take(m, &m->spare);
        if (base) m->bytes_held -= bytes; /* the caller counts the block */
    }
    if (m->spare == NULL && (m->spare = prep_new(bytes, huge)) != NULL) m->bytes_held += bytes;
    return base;
}
