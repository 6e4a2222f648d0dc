/* globals.c - the program's data and bss segments as roots (as Boehm).
 *
 * WHAT IS SCANNED.  Every writable PT_LOAD segment of the executable and of
 * every loaded shared object (dl_iterate_phdr: libraries dlopen'd later
 * too), minus its PT_GNU_RELRO part (read-only once relocated: it cannot
 * receive a pointer to an object allocated afterwards), minus gomap's own
 * segments when gomap is a shared library, minus gomap's largest tables when
 * it is linked statically (gc_globals_exclude: the central lists, the
 * statistics, the traced-type registry, the heap profile's bucket hash --
 * tables that never hold a heap pointer the collector needs).  The segments are scanned
 * conservatively, as stacks are: any aligned word that points into an
 * allocated object keeps it alive.  GMDEBUG=scanglobals=0 turns this off:
 * then only gm_root_add ranges are roots (the behaviour before).
 *
 * THE SEGMENT LIST is rebuilt with the world running -- at the start of each
 * cycle's mark and again just before mark termination -- and only when the
 * loader's counters (dlpi_adds / dlpi_subs) moved.  dl_iterate_phdr is never
 * called with the world stopped: a stopped thread may hold the loader's lock
 * (an exception unwinding, a dlopen whose constructor allocates).
 *
 * WHY THE CONCURRENT MARK STAYS CORRECT WITHOUT A BARRIER ON GLOBALS.  A
 * store into a global is a plain store.  The mark scans every segment once
 * while the world runs (mark start); a pointer stored into a global after
 * that scan must be found at mark termination, with the world stopped.
 * GMDEBUG=globalsterm picks how:
 *   1 DIFF (default): the mark-start scan copies every segment into a
 *     snapshot (word by word) and scans the copy, so every value in the
 *     snapshot is marked.  Termination compares the segments with the
 *     snapshot (64 bytes at a time: ~20 us per MiB here) and shades only
 *     the words that differ.  Every word then holds either its snapshot
 *     value (marked) or a value shaded now.  Costs a copy of the segments
 *     in memory, and a copy per cycle while the world runs.
 *   2 SOFT-DIRTY (Linux with CONFIG_MEM_SOFT_DIRTY, probed at start; DIFF
 *     otherwise): just before the mark-start scan the worker writes "4" to
 *     /proc/self/clear_refs, which clears the soft-dirty bit of every page
 *     of the process; the kernel sets it again on the first write to a
 *     page.  Termination reads the segments' bits from /proc/self/pagemap
 *     (8 bytes a page) and rescans only the pages written since the clear.
 *     A store before the clear is seen by the scan that follows it; one
 *     after sets the bit.  No copy, but every page of the process takes one
 *     extra minor fault on its first write after each clear.  With it the
 *     mark-start scan also skips pages that are not mapped in (read after
 *     the clear: never written, all zeros; one written later is mapped in
 *     soft-dirty, for termination to see).
 *   0 RESCAN: termination scans every segment again (pause ~ their size).
 * If many words (pages) changed during the mark -- more than
 * TERM_DIFF_WORDS (TERM_DIRTY_PAGES) -- the worker scans everything again
 * the same way while the world runs before it tries to terminate (at most
 * MAX_ROUNDS times), so the pause sees only what changed during that last
 * scan.  Either way, what a global holds at termination is marked; objects
 * loaded from a global into a stack are found by the termination stack
 * rescan (mark.c, rule 3), and ones stored into the heap by the barrier's
 * insertion half.  So a plain store into a global is safe, adding or
 * removing.
 *
 * A library dlopen'd during a mark is picked up before termination (its
 * segments then get a full scan, and the tracking starts over); one
 * dlclose'd during a mark is not read: pages that are no longer mapped read
 * as absent from pagemap, and the full rescan checks each segment with
 * mincore first.  Remaining window: a library loaded between the worker's
 * last look and the termination pause is only scanned from the next cycle.
 *
 * INVARIANT (gc_globals_check): the segment list is sorted, its ranges are
 * disjoint, word-aligned, and none overlaps gomap's excluded ranges.
 */
#include "gc/gc_internal.h"
#include "gc/profile.h"

#include <fcntl.h>
#include <link.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TERM_DIRTY_PAGES 8     /* dirty pages mark termination takes on itself */
#define MAX_ROUNDS 3           /* concurrent re-scans before termination takes them all */
#define TERM_DIFF_WORDS 1024   /* changed words mark termination takes on itself */
#define GC_NO_SANITIZE __attribute__((no_sanitize("address", "thread")))

typedef struct gseg { uintptr_t lo, hi; } gseg;

static gseg *segs;             /* sorted, disjoint; rebuilt by the worker only */
static size_t nsegs, capsegs;
static size_t total_bytes;
static unsigned long long seen_adds, seen_subs;
static bool have_list;

static gseg excl[16];          /* gomap's own tables (static builds) */
static size_t nexcl;

static int sd_avail = -1;      /* soft-dirty: -1 not probed, 0 no, 1 yes */
static pid_t sd_pid;           /* the process the /proc/self files were opened in */
static int pagemap_fd = -1, clear_refs_fd = -1;
static uint64_t *pm_buf;       /* pagemap entries for the largest segment */
static size_t pm_cap;
static size_t page_size;
static bool tracking;          /* this cycle cleared soft-dirty before its scan */
static bool diffing;           /* this cycle's scan read a snapshot; termination diffs */
static int rounds;
static uintptr_t *snap;        /* snapshot of every segment, in list order */
static size_t snap_words;
static uint64_t diff_words_total;

static uint64_t dirty_pages_scanned_total;

/* ---- the segment list ------------------------------------------------------ */

struct build_ctx {
    gseg *v;
    size_t n, cap;
    uintptr_t self_base;       /* load base of the object holding gomap (shared build) */
    bool ok;
};

static void push_seg(struct build_ctx *c, uintptr_t lo, uintptr_t hi)
{
    lo = (lo + WORD_SIZE - 1) & ~(uintptr_t)(WORD_SIZE - 1);
    hi &= ~(uintptr_t)(WORD_SIZE - 1);
    if (hi <= lo) return;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 32;
        gseg *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv) {
            c->ok = false;
            return;
        }
        c->v = nv;
        c->cap = nc;
    }
    c->v[c->n++] = (gseg){lo, hi};
}

/* [lo, hi) minus the excluded ranges (sorted by exclude order; few). */
static void push_minus_excl(struct build_ctx *c, uintptr_t lo, uintptr_t hi, size_t from)
{
    for (size_t k = from; k < nexcl; k++) {
        if (excl[k].hi <= lo || excl[k].lo >= hi) continue;
        if (excl[k].lo > lo) push_minus_excl(c, lo, excl[k].lo, k + 1);
        if (excl[k].hi < hi) push_minus_excl(c, excl[k].hi, hi, k + 1);
        return;
    }
    push_seg(c, lo, hi);
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct build_ctx *c = arg;
    (void)size;
    if (c->self_base && info->dlpi_addr == c->self_base && info->dlpi_name && info->dlpi_name[0])
        return 0;                                    /* gomap's own shared object */
    uintptr_t rlo = 0, rhi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type == PT_GNU_RELRO) {
            rlo = info->dlpi_addr + p->p_vaddr;
            rhi = rlo + p->p_memsz;
        }
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type != PT_LOAD || !(p->p_flags & PF_W) || p->p_memsz == 0) continue;
        uintptr_t lo = info->dlpi_addr + p->p_vaddr, hi = lo + p->p_memsz;
        if (rhi > rlo && rlo < hi && rhi > lo) {     /* cut the RELRO part out */
            if (rlo > lo) push_minus_excl(c, lo, rlo, 0);
            if (rhi < hi) push_minus_excl(c, rhi, hi, 0);
        } else {
            push_minus_excl(c, lo, hi, 0);
        }
    }
    return 0;
}

static int counters_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *v = arg;
    (void)size;
    v[0] = info->dlpi_adds;
    v[1] = info->dlpi_subs;
    return 1;                                        /* the first object is enough */
}

static int cmp_seg(const void *a, const void *b)
{
    const gseg *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void gc_globals_exclude(const void *p, size_t len)
{
    if (nexcl < sizeof excl / sizeof excl[0] && len)
        excl[nexcl++] = (gseg){(uintptr_t)p, (uintptr_t)p + len};
}

static void probe_soft_dirty(void);

/* Rebuilds the list if the loader's counters moved; true if it changed.
 * World running, caller is the only one (the mark worker or the cycle). */
static bool refresh(void)
{
    unsigned long long v[2] = {0, 0};
    dl_iterate_phdr(counters_cb, v);
    if (have_list && v[0] == seen_adds && v[1] == seen_subs) return false;
    if (!page_size) {
        page_size = (size_t)sysconf(_SC_PAGESIZE);
        gc_globals_exclude(gc_centrals, sizeof gc_centrals);
        gc_globals_exclude(&gc_stats, sizeof gc_stats);
        gc_globals_exclude(gc_classes, sizeof gc_classes);
        gc_globals_exclude(&gc_arena_start, sizeof gc_arena_start);  /* points at the first object */
        gc_globals_exclude(&gc_work, sizeof gc_work);   /* checkmark's last parent */
        gc_trace_fn_exclude_globals();
        gc_prof_exclude_globals();
        probe_soft_dirty();
    }
    struct build_ctx c = { .ok = true };
    Dl_info di;
    if (dladdr((void *)&gc_globals_exclude, &di) && di.dli_fbase) {
        /* dlpi_addr is the load bias, dli_fbase the lowest mapped address:
         * the same for a shared object linked at address 0 */
        c.self_base = (uintptr_t)di.dli_fbase;
    }
    dl_iterate_phdr(phdr_cb, &c);
    if (!c.ok) {                                     /* out of memory: keep the old list */
        free(c.v);
        return false;
    }
    qsort(c.v, c.n, sizeof *c.v, cmp_seg);
    size_t total = 0, maxpages = 0;
    for (size_t i = 0; i < c.n; i++) {
        total += c.v[i].hi - c.v[i].lo;
        size_t np = (c.v[i].hi - 1) / page_size - c.v[i].lo / page_size + 1;
        if (np > maxpages) maxpages = np;
    }
    if (sd_avail == 1 && maxpages > pm_cap) {
        uint64_t *nb = realloc(pm_buf, maxpages * sizeof *nb);
        if (nb) {
            pm_buf = nb;
            pm_cap = maxpages;
        } else {
            sd_avail = 0;                            /* no buffer: full rescans */
        }
    }
    if (total / WORD_SIZE > snap_words) {             /* the snapshot for GLOBALS_DIFF */
        free(snap);
        snap = malloc(total);
        snap_words = snap ? total / WORD_SIZE : 0;
    }
    free(segs);
    segs = c.v;
    nsegs = c.n;
    capsegs = c.cap;
    total_bytes = total;
    seen_adds = v[0];
    seen_subs = v[1];
    have_list = true;
    return true;
}

/* ---- soft-dirty ---------------------------------------------------------------------- */

#define PM_SOFT_DIRTY ((uint64_t)1 << 55)
#define PM_SWAPPED    ((uint64_t)1 << 62)
#define PM_PRESENT    ((uint64_t)1 << 63)

static bool clear_soft_dirty(void)
{
    return pwrite(clear_refs_fd, "4", 1, 0) == 1;
}

static bool read_pagemap(uintptr_t lo, uintptr_t hi, size_t *np)
{
    size_t p0 = lo / page_size, p1 = (hi - 1) / page_size + 1;
    size_t bytes = (p1 - p0) * sizeof(uint64_t);
    if (p1 - p0 > pm_cap) return false;
    if (pread(pagemap_fd, pm_buf, bytes, (off_t)(p0 * sizeof(uint64_t))) != (ssize_t)bytes) return false;
    *np = p1 - p0;
    return true;
}

static volatile uintptr_t probe_word;

/* Works here if a clear resets a page's bit and a write sets it again. */
static void probe_soft_dirty(void)
{
    sd_avail = 0;
    clear_refs_fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (clear_refs_fd < 0 || pagemap_fd < 0) goto fail;
    pm_buf = malloc(sizeof *pm_buf);
    if (!pm_buf) goto fail;
    pm_cap = 1;
    uintptr_t a = (uintptr_t)&probe_word;
    probe_word = 1;
    size_t np;
    if (!clear_soft_dirty() || !read_pagemap(a, a + 1, &np)) goto fail;
    bool after_clear = pm_buf[0] & PM_SOFT_DIRTY;
    probe_word = 2;
    if (!read_pagemap(a, a + 1, &np)) goto fail;
    if (after_clear || !(pm_buf[0] & PM_SOFT_DIRTY)) goto fail;
    sd_avail = 1;
    sd_pid = getpid();
    return;
fail:
    if (clear_refs_fd >= 0) close(clear_refs_fd);
    if (pagemap_fd >= 0) close(pagemap_fd);
    clear_refs_fd = pagemap_fd = -1;
}

/* ---- scanning ---------------------------------------------------------------------------- */

static bool seg_mapped(const gseg *s)
{
    uintptr_t lo = s->lo & ~(uintptr_t)(page_size - 1);
    unsigned char v[64];
    for (uintptr_t p = lo; p < s->hi; p += 64 * page_size) {
        size_t len = s->hi - p < 64 * page_size ? s->hi - p : 64 * page_size;
        if (mincore((void *)p, len, v) != 0) return false;
    }
    return true;
}

static void scan_all(gc_workbuf *w, bool check_mapped)
{
    for (size_t i = 0; i < nsegs; i++) {
        if (check_mapped && !seg_mapped(&segs[i])) continue;
        gc_scan_range_into(w, segs[i].lo, segs[i].hi);
    }
}

/* The pages of the segments written since the last clear; false if pagemap
 * could not be read (then everything is rescanned). */
static bool scan_dirty(gc_workbuf *w, bool count_only, size_t *ndirty)
{
    size_t d = 0;
    for (size_t i = 0; i < nsegs; i++) {
        size_t np;
        if (!read_pagemap(segs[i].lo, segs[i].hi, &np)) return false;
        uintptr_t base = segs[i].lo & ~(uintptr_t)(page_size - 1);
        for (size_t k = 0; k < np; k++) {
            uint64_t e = pm_buf[k];
            if (!(e & (PM_PRESENT | PM_SWAPPED)) || !(e & PM_SOFT_DIRTY)) continue;
            d++;
            if (count_only) continue;
            uintptr_t lo = base + k * page_size, hi = lo + page_size;
            if (lo < segs[i].lo) lo = segs[i].lo;
            if (hi > segs[i].hi) hi = segs[i].hi;
            gc_scan_range_into(w, lo, hi);
        }
    }
    *ndirty = d;
    return true;
}

/* A forked child inherits descriptors that name its parent's
 * /proc/<pid>/clear_refs and pagemap: open its own. */
static void check_fork(void)
{
    if (sd_avail != 1 || sd_pid == getpid()) return;
    close(clear_refs_fd);
    close(pagemap_fd);
    free(pm_buf);
    pm_buf = NULL;
    pm_cap = 0;
    probe_soft_dirty();
    have_list = false;               /* and a pagemap buffer sized by refresh */
}

/* Every segment, but not the pages that are not mapped in yet: read after
 * the clear, an absent page has never been written (all zeros), and a write
 * after the read maps it in soft-dirty, for termination to see.  Untouched
 * bss (large static tables, a sanitizer's depots) costs nothing. */
static void scan_present(gc_workbuf *w)
{
    for (size_t i = 0; i < nsegs; i++) {
        size_t np;
        if (!read_pagemap(segs[i].lo, segs[i].hi, &np)) {
            gc_scan_range_into(w, segs[i].lo, segs[i].hi);
            continue;
        }
        uintptr_t base = segs[i].lo & ~(uintptr_t)(page_size - 1);
        for (size_t k = 0; k < np;) {
            if (!(pm_buf[k] & (PM_PRESENT | PM_SWAPPED))) {
                k++;
                continue;
            }
            size_t k1 = k + 1;                       /* a run of present pages */
            while (k1 < np && (pm_buf[k1] & (PM_PRESENT | PM_SWAPPED))) k1++;
            uintptr_t lo = base + k * page_size, hi = base + k1 * page_size;
            if (lo < segs[i].lo) lo = segs[i].lo;
            if (hi > segs[i].hi) hi = segs[i].hi;
            gc_scan_range_into(w, lo, hi);
            k = k1;
        }
    }
}

/* Copies every segment into the snapshot and scans the copy: whatever the
 * copy holds is marked.  Word by word (no word is torn); the segments'
 * redzones and other threads' plain stores are read on purpose. */
GC_NO_SANITIZE static void snapshot_scan(gc_workbuf *w)
{
    size_t off = 0;
    for (size_t i = 0; i < nsegs; i++) {
        const volatile uintptr_t *g = (const volatile uintptr_t *)segs[i].lo;
        size_t n = (segs[i].hi - segs[i].lo) / WORD_SIZE;
        for (size_t k = 0; k < n; k++) snap[off + k] = g[k];
        gc_scan_range_into(w, (uintptr_t)(snap + off), (uintptr_t)(snap + off + n));
        off += n;
    }
}

/* The words that differ from the snapshot now: shaded (scan) or counted. */
GC_NO_SANITIZE static size_t diff_scan(gc_workbuf *w, bool scan)
{
    size_t off = 0, d = 0;
    for (size_t i = 0; i < nsegs; i++) {
        size_t n = (segs[i].hi - segs[i].lo) / WORD_SIZE;
        if (scan && !seg_mapped(&segs[i])) {              /* dlclose'd during the mark */
            off += n;
            continue;
        }
        const uintptr_t *g = (const uintptr_t *)segs[i].lo, *p = snap + off;
        size_t k = 0;
        for (; k + 8 <= n; k += 8) {
            uintptr_t x = 0;                              /* not memcmp: sanitizers intercept it */
            for (size_t j = k; j < k + 8; j++) x |= g[j] ^ p[j];
            if (x == 0) continue;
            for (size_t j = k; j < k + 8; j++)
                if (g[j] != p[j]) {
                    d++;
                    if (scan) gc_scan_range_into(w, (uintptr_t)(g + j), (uintptr_t)(g + j + 1));
                }
        }
        for (; k < n; k++)
            if (g[k] != p[k]) {
                d++;
                if (scan) gc_scan_range_into(w, (uintptr_t)(g + k), (uintptr_t)(g + k + 1));
            }
        off += n;
    }
    return d;
}

/* Mark start (and a re-scan round): scan everything, and arrange for
 * termination to find what changes afterwards, by the method of
 * GMDEBUG=globalsterm: 2 soft-dirty (if the kernel has it), 1 snapshot
 * diff (if the snapshot could be allocated), 0 whole rescan. */
static void full_track_scan(gc_workbuf *w)
{
    int m = gc_opt.globalsterm;
    tracking = diffing = false;
    if (m == 2 && sd_avail == 1 && clear_soft_dirty()) tracking = true;
    else if (m >= 1 && snap && snap_words * WORD_SIZE >= total_bytes) diffing = true;
    if (tracking) scan_present(w);
    else if (diffing) snapshot_scan(w);
    else scan_all(w, false);
}

void gc_globals_mark(gc_workbuf *w, int mode)
{
    if (!gc_opt.scanglobals) return;
    if (w->checkmark) w->root = "a data or bss segment", w->parent = 0;
    switch (mode) {
    case GLOBALS_START:                   /* worker, world running */
        check_fork();
        refresh();
        rounds = 0;
        full_track_scan(w);
        break;
    case GLOBALS_TERM: {                  /* world stopped */
        size_t nd;
        if (diffing) {
            diff_words_total += diff_scan(w, true);
        } else if (!tracking || sd_pid != getpid() || !scan_dirty(w, false, &nd)) {
            scan_all(w, true);
        } else {
            dirty_pages_scanned_total += nd;
        }
        break;
    }
    case GLOBALS_FULL:                    /* world stopped: STW mark, checkmark */
        if (!have_list) return;           /* gc_globals_prepare ran before the stop */
        scan_all(w, true);
        break;
    }
    if (!w->checkmark) gc_scan_global_bytes += total_bytes;
}

/* Worker, world running, before it tries mark termination: a library loaded
 * since mark start, or more changes than the pause should take, mean one
 * more scan of everything now.  Returns true if it scanned (more marking). */
bool gc_globals_before_term(gc_workbuf *w)
{
    if (!gc_opt.scanglobals) return false;
    check_fork();
    if (refresh()) {
        full_track_scan(w);
        return true;
    }
    if (rounds >= MAX_ROUNDS) return false;
    if (diffing) {
        if (diff_scan(w, false) <= TERM_DIFF_WORDS) return false;
    } else {
        size_t nd;
        if (!tracking || !scan_dirty(w, true, &nd) || nd <= TERM_DIRTY_PAGES) return false;
    }
    rounds++;
    full_track_scan(w);
    return true;
}

/* World running: the stop-the-world mark (gcstoptheworld=1) scans the list
 * this builds while the world is stopped. */
void gc_globals_prepare(void)
{
    if (gc_opt.scanglobals) refresh();
}

void gc_globals_stats(gc_globals_info *out)
{
    out->bytes = gc_opt.scanglobals ? total_bytes : 0;
    out->segments = gc_opt.scanglobals ? nsegs : 0;
    out->soft_dirty = sd_avail == 1;
    out->tracking = tracking;
    out->diffing = diffing;
    out->diff_words = diff_words_total;
    out->dirty_pages_scanned = dirty_pages_scanned_total;
}

size_t gc_globals_check(void)
{
    size_t bad = 0;
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i].lo >= segs[i].hi || (segs[i].lo | segs[i].hi) % WORD_SIZE) bad++;
        if (i && segs[i].lo < segs[i - 1].hi) bad++;
        for (size_t k = 0; k < nexcl; k++)
            if (segs[i].lo < excl[k].hi && excl[k].lo < segs[i].hi) bad++;
    }
    return bad;
}
