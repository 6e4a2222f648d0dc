/* ebr.c - epoch-based reclamation (Fraser's scheme, as crossbeam-epoch runs it).
 *
 * gm_syncmap's readers take no lock, so memory they may be reading (a value
 * box replaced by a Store, an entry deleted from the dirty map, a read-only
 * map replaced by a promotion) cannot be freed when it is unlinked.  Go's GC
 * keeps it alive; on malloc this file does.
 *
 * STATE.  A global epoch E (gm_ebr_global.epoch_a, only ever changed by CAS;
 * the hot paths only read it).  One record per thread (gm_ebr_rec, in a
 * global list that only grows; a record is reused by a later thread once its
 * owner has exited).  A record's state_a is 0 when its thread is quiescent,
 * or 2e+1 when it is pinned in epoch e.  Each record keeps three bags of
 * garbage, bag t%3 holding what the thread retired with tag t.
 *
 * PROTOCOL.
 *   pin:     e = E (acquire); state_a = 2e+1; full fence; re-read E and
 *            repeat if it moved.  After pin, the thread is pinned in the
 *            epoch E had at a moment when its pin was already visible.
 *   unpin:   state_a = 0 (release).
 *   advance: E -> E+1 only if every pinned record is pinned in E (acquire
 *            loads of every state_a, then a CAS on E).
 *
 * ASYMMETRIC FENCE.  The fence in pin (store then load: the one ordering x86
 * does not give for free) would cost every Load an xchg, about 13 ns here.
 * Where the kernel offers membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) (the
 * trick of liburcu's memb flavour), pin uses a plain store and a compiler
 * barrier, and advance pays instead: it calls membarrier, which runs a full
 * fence on every thread of the process, between a first scan and the scan
 * that decides.  A pin not visible to that second scan was therefore made
 * after the barrier, and its loads see everything that happened before it.
 * Advances are rare (one per ADVANCE_EVERY retirements of a thread) and a
 * membarrier costs a few microseconds.  Without membarrier, or with
 * GMDEBUG=syncfence=xchg, pin uses the seq_cst exchange.
 *   retire:  only while pinned, after the object was unlinked: t = E + 1
 *            (acquire load: no write to the shared line), put the object in
 *            bag t%3.  An object with tag t is freed once E >= t+2.
 * INVARIANT.  Say the retirer read E = t-1.  It is pinned in t-2 or t-1,
 * so E cannot reach t+1 before it unpins; the unpin (release) is seen by the
 * scan that allows E -> t+1, so the unlink happens-before every pin in an
 * epoch >= t+1, and such a reader cannot reach the object.  A reader pinned
 * in an epoch <= t keeps E <= t+1 while it stays pinned.  So when
 * E >= t+2, nobody can hold the object.  (Tagging with E+1 rather than E
 * is what lets retire get by with a plain load: no cache line that every
 * reader reads is ever written by a Store.)
 *
 * BOX CACHE.  An item retired with fn NULL is an 8-byte gm_syncmap value
 * box: once safe it goes to the freeing record's box_cache (at most
 * GM_EBR_BOX_CACHE, twice ADVANCE_EVERY, so a whole bag fits) and
 * gm_ebr_box8_alloc reuses it.  Callgrind, 90% Loads / 10% Stores: a Store
 * 452 -> 287 instructions (no malloc, no free).  Memory: a record keeps at
 * most 1024 boxes (8 KiB of slots, 32 KiB of malloc chunks) for its next
 * owner; records, like before, are never freed.
 *
 * BOUNDS.  A thread tries to advance E every ADVANCE_EVERY (512) retirements and
 * then frees its bags that became safe; a bag slot about to be reused for tag
 * t held tag <= t-3, safe since E >= t-1.  Counters (retired, freed) are
 * per record, written by the owner only, summed by gm_sync_stats_get.  Garbage is unbounded
 * only while some thread stays pinned (a long gm_syncmap_range callback).
 * A record whose thread exited keeps its garbage until a new thread adopts
 * the record or gm_sync_reclaim() is called.
 */
#include "sync/ebr.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>

#define ADVANCE_EVERY 512

gm_ebr_globals gm_ebr_global = { 1, GM_EBR_FENCE_UNKNOWN };
_Thread_local gm_ebr_rec *gm_ebr_self;
static gm_ebr_rec *records_a;          /* list head, push-only */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

/* Owner-only counter bump, readable by gm_sync_stats_get at any time. */
static void count(uint64_t *c, uint64_t n)
{
    at_store_relaxed(c, at_load_relaxed(c) + n);
}

static void bag_free_all(gm_ebr_rec *r, ebr_bag *b)
{
    for (size_t i = 0; i < b->n; i++) {
        ebr_item *it = &b->items[i];
        if (it->fn != NULL) it->fn(it->p);
        else if (r->nbox < GM_EBR_BOX_CACHE) r->box_cache[r->nbox++] = it->p;
        else free(it->p);
    }
    count(&r->freed_a, b->n);
    b->n = 0;
}

/* Frees the bags of r (owned by the caller) that are safe under epoch e. */
static void collect(gm_ebr_rec *r, uint64_t e)
{
    for (int i = 0; i < 3; i++)
        if (r->bags[i].n != 0 && r->bags[i].epoch + 2 <= e) bag_free_all(r, &r->bags[i]);
}

void gm_ebr_counts(uint64_t *retired, uint64_t *freed)
{
    *retired = *freed = 0;
    for (gm_ebr_rec *r = at_load_acquire(&records_a); r != NULL; r = r->next) {
        *retired += at_load_relaxed(&r->retired_a);
        *freed += at_load_relaxed(&r->freed_a);
    }
}

static long membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

static void choose_fence(void)
{
    if (at_load_acquire(&gm_ebr_global.fence_mode_a) != GM_EBR_FENCE_UNKNOWN) return;
    int mode = GM_EBR_FENCE_XCHG;
    long q = membarrier(MEMBARRIER_CMD_QUERY);
    const char *dbg = getenv("GMDEBUG");
    bool force_xchg = dbg != NULL && strstr(dbg, "syncfence=xchg") != NULL;
    if (!force_xchg && q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        mode = GM_EBR_FENCE_MEMBARRIER;
    int unknown = GM_EBR_FENCE_UNKNOWN;
    at_cas_acqrel(&gm_ebr_global.fence_mode_a, &unknown, mode);
}

/* A full fence on every thread of the process. */
static void fence_all_threads(void)
{
    if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
    /* A forked child may need to register again. */
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 ||
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
        gm_fatal("gomap: membarrier failed");
}

/* True when no record is pinned in an epoch other than e. */
static bool all_in(uint64_t e)
{
    for (gm_ebr_rec *r = at_load_acquire(&records_a); r != NULL; r = r->next) {
        uint64_t s = at_load_acquire(&r->state_a);
        if ((s & 1) != 0 && (s >> 1) != e) return false;
    }
    return true;
}

static bool try_advance(void)
{
    uint64_t e = at_load_acquire(&gm_ebr_global.epoch_a);
    if (!all_in(e)) return false;
    if (at_load_relaxed(&gm_ebr_global.fence_mode_a) == GM_EBR_FENCE_MEMBARRIER) {
        fence_all_threads();
        if (!all_in(e)) return false;
    }
    if (!at_cas_acqrel(&gm_ebr_global.epoch_a, &e, e + 1)) return false;
    GM_SYNC_COUNT(ebr_epochs);
    if (at_load_relaxed(&gm_ebr_global.fence_mode_a) == GM_EBR_FENCE_MEMBARRIER)
        GM_SYNC_COUNT(ebr_membarriers);
    return true;
}

static void release_record(void *p)
{
    gm_ebr_rec *r = p;
    try_advance();
    collect(r, at_load_acquire(&gm_ebr_global.epoch_a));
    r->nest = 0;
    at_store_release(&r->owned_a, 0);
}

static void make_exit_key(void)
{
    if (pthread_key_create(&exit_key, release_record) != 0)
        gm_fatal("gomap: pthread_key_create failed");
}

static gm_ebr_rec *adopt_record(void)
{
    pthread_once(&exit_key_once, make_exit_key);
    choose_fence();
    gm_ebr_rec *r;
    for (r = at_load_acquire(&records_a); r != NULL; r = r->next) {
        uint32_t zero = 0;
        if (at_load_relaxed(&r->owned_a) == 0 && at_cas_acqrel(&r->owned_a, &zero, 1))
            break;
    }
    if (r == NULL) {
        r = aligned_alloc(64, sizeof *r);
        if (r == NULL) gm_fatal("runtime: out of memory");
        memset(r, 0, sizeof *r);
        r->owned_a = 1;
        gm_ebr_rec *head = at_load_relaxed(&records_a);
        do r->next = head;
        while (!__atomic_compare_exchange_n(&records_a, &head, r, false,
                                            __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    }
    pthread_setspecific(exit_key, r);
    gm_ebr_self = r;
    return r;
}

gm_ebr_rec *gm_ebr_adopt(void)
{
    return adopt_record();
}

void gm_ebr_pin_slow(gm_ebr_rec *r)
{
    uint64_t e = at_load_acquire(&gm_ebr_global.epoch_a);
    bool asym = at_load_relaxed(&gm_ebr_global.fence_mode_a) == GM_EBR_FENCE_MEMBARRIER;
    for (;;) {
        if (asym) {
            at_store_relaxed(&r->state_a, 2 * e + 1);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
        } else {
            at_xchg_seqcst(&r->state_a, 2 * e + 1);
        }
        uint64_t now = at_load_seqcst(&gm_ebr_global.epoch_a);
        if (now == e) return;
        e = now;
    }
}

void gm_ebr_retire(void *p, void (*fn)(void *))
{
    gm_ebr_rec *r = gm_ebr_self;
    if (r == NULL || r->nest == 0) gm_fatal("gomap: gm_ebr_retire while not pinned");
    uint64_t t = at_load_acquire(&gm_ebr_global.epoch_a) + 1;
    ebr_bag *b = &r->bags[t % 3];
    if (b->epoch != t) {
        if (b->n != 0) bag_free_all(r, b);   /* tag <= t-3: safe */
        b->epoch = t;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        ebr_item *items = realloc(b->items, cap * sizeof *items);
        if (items == NULL) gm_fatal("runtime: out of memory");
        b->items = items;
        b->cap = cap;
    }
    b->items[b->n++] = (ebr_item){ p, fn };
    count(&r->retired_a, 1);
    if (++r->since_advance >= ADVANCE_EVERY) {
        r->since_advance = 0;
        try_advance();
        collect(r, at_load_acquire(&gm_ebr_global.epoch_a));
    }
}

void gm_sync_reclaim(void)
{
    /* Three advances make everything retired before this call safe, unless
     * some thread is pinned. */
    try_advance();
    try_advance();
    try_advance();
    uint64_t e = at_load_acquire(&gm_ebr_global.epoch_a);
    gm_ebr_rec *self = gm_ebr_self;
    if (self != NULL && self->nest == 0) collect(self, e);
    for (gm_ebr_rec *r = at_load_acquire(&records_a); r != NULL; r = r->next) {
        uint32_t zero = 0;
        if (r == self || !at_cas_acqrel(&r->owned_a, &zero, 1)) continue;
        collect(r, e);                    /* an exited thread's garbage */
        at_store_release(&r->owned_a, 0);
    }
}
