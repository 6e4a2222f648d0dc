/* syncmap.c - sync.Map (Go 1.9-1.23 design) over gomap's own map.
 *
 * LAYOUT.
 *     read_a  -> sm_read { gm_map *m; bool amended; idx }  published
 *                atomically, never modified after publication (so any number
 *                of threads may gm_map_get / iterate it with no lock); idx is
 *                an optional flat index of m's keys (u32/u64 keys; see READ
 *                INDEX), which lookups in read use instead of m;
 *     dirty   -> gm_map, or NULL                       only under mu;
 *     both map a key to an sm_entry *, one entry per key shared by the two
 *     maps; an entry holds p_a, a pointer to an immutable box holding the
 *     value bytes, so Load copies a value out with no lock.  The first value
 *     of a key is stored in the entry itself (at m->first_off), later ones in
 *     boxes of their own.
 *
 * ENTRY STATES (p_a):
 *     box       the key is present with that value;
 *     NULL      deleted; the entry may still sit in read, and is in dirty
 *               too whenever dirty != NULL;
 *     EXPUNGED  deleted, and the entry is in read but NOT in dirty (dirty
 *               != NULL).  Only the builder of a dirty map turns NULL into
 *               EXPUNGED (under mu), and only a writer holding mu turns it
 *               back (EXPUNGED -> NULL, then adds the entry to dirty).
 *     Lock-free transitions (CAS on p_a): box -> box (Store/Swap/CAS of a
 *     present key), NULL -> box (LoadOrStore/Swap), box -> NULL (Delete,
 *     CompareAndDelete).  None of them touches an EXPUNGED entry: a key
 *     whose entry is expunged must be added to dirty first, under mu.
 *
 * INVARIANTS.
 *  1. amended == false  =>  every key present in the map is in read->m.
 *     amended == true   =>  dirty != NULL and holds every non-expunged entry
 *                           of read->m, plus the keys added since.
 *  2. An entry is EXPUNGED iff it is in read->m and not in dirty.
 *  3. expunged_n (under mu) counts the EXPUNGED entries of read->m.
 *
 * MISSES AND PROMOTION.  A lookup that misses read while amended must take
 * mu and look in dirty: a miss.  When misses reach len(dirty), dirty becomes
 * the new read map (amended false, dirty NULL): the cost of copying read into
 * a new dirty map on the next new key is paid for by at least as many slow
 * lookups.  Range promotes at once, so that it can iterate read alone.
 *
 * MEMORY.  An object unlinked while lock-free readers may hold it (a box
 * replaced by a CAS, an entry dropped from dirty, a read map replaced by a
 * promotion or a Clear, with its expunged entries) is passed to
 * gm_ebr_retire, never freed directly.  Every public call runs pinned
 * (gm_ebr_pin; Load's fast path with gm_ebr_pin_flat), so it may use
 * anything it reached.  An entry is freed with its current box.  (Malloc
 * variant; the GC variant below retires nothing.)
 *
 * GC VARIANT (gm_syncmap_new_gc).  The same code with every structure a GC
 * object: the gm_syncmap itself, each sm_read, each entry (an interned type
 * per value type: p_a plus the first value, see entry_type_for), each value
 * box (gm_new of the value type), and both maps (gm_map_new_gc, values of
 * gm_type_ptr, so a map keeps its entries alive).  Nothing is retired: an
 * sm_read, entry or box that no map or entry reaches any more is freed by the
 * collector once no thread holds it, because the stacks and registers of
 * attached threads are roots (scanned conservatively).  That is exactly the
 * guarantee EBR gives the malloc variant, so GC calls neither pin nor retire;
 * instead every call starts at a safepoint (gm_safepoint: attaches the thread
 * on first use, parks it if the world is being stopped), before it holds any
 * pointer of the map.  Every pointer store into a GC object goes through the
 * write barrier: gm_atomic_cas/swap/store for p_a and read_a (they are read
 * with no lock), gm_store for dirty and for initialising fresh objects,
 * gm_typed_memmove/memclr for values that hold pointers; the maps do their
 * own.  That keeps the hybrid barrier's invariant when marking runs
 * concurrently: a pointer a reader loads from p_a or read_a is either still
 * there when the mark reaches it or was shaded by the store that removed it.
 *
 * LOCK ORDER: mu is the only lock here; the semaphores under it are leaves.
 */
#include "sync/ebr.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap/gc.h"
#include "gomap/map.h"

typedef struct sm_entry sm_entry;
/* Which of gm_map's key fast paths (and the read index) the key type allows. */
enum key_kind { KEY_GENERIC, KEY_U32, KEY_U64 };
/* One slot of a read index (see READ INDEX): e NULL means empty. */
typedef struct sm_islot { uint64_t key; sm_entry *e; } sm_islot;
/* The read-only snapshot.  On the GC variant a GC object whose words 0 (m)
 * and 2 (idx) are GC pointers (ptrmask 0x5).  idx, when not NULL, indexes
 * exactly the keys of m (u32/u64 keys only); it and its parameters are
 * immutable like m, and shared by an sm_read copied to set amended. */
typedef struct sm_read {
    gm_map *m;
    bool amended;
    sm_islot *idx;
    uint64_t seed;            /* idx: hash seed */
    uint32_t shift;           /* idx: slot = hash >> shift */
    uint32_t mask;            /* idx: slots - 1 */
} sm_read;
/* An entry, and room for the value it was created with (at m->first_off:
 * 16 on malloc, 8 or 16 on the GC heap; 0: no room, values above that
 * alignment get boxes): a key that is written once and
 * read many times (sync.Map's first use case) keeps its value on the entry's
 * own cache line.  p_a == entry_first(m, e) means that value; it is never
 * written again and lives as long as the entry. */
struct sm_entry { void *p_a; };
#define MALLOC_FIRST_OFF 16

/* The two GC pointers come first: the GC variant's ptrmask is 0x3. */
struct gm_syncmap {
    sm_read *read_a;          /* never NULL */
    gm_map *dirty;            /* under mu */
    gm_mutex mu;
    size_t misses;            /* under mu */
    size_t expunged_n;        /* under mu */
    const gm_type *ktype, *vtype;
    const gm_type *etype;     /* GC variant: the entry type (entry_type_for) */
    size_t vsize;
    uint16_t first_off;       /* offset of an entry's first value */
    uint8_t kind;             /* enum key_kind */
    bool gc;                  /* made by gm_syncmap_new_gc */
    bool vptr;                /* GC variant and the value type holds pointers */
    bool fast_load;           /* malloc: gm_syncmap_load's inline path applies */
    bool fast_load_gc;        /* the same for the GC variant */
};

/* A ptrmask has a bit for every word of its type: 8 bytes cover the
 * structs here (asserted). */
static const uint8_t mask_word0[8] = { 0x1 }, mask_word1[8] = { 0x2 },
                     mask_words01[8] = { 0x3 }, mask_words02[8] = { 0x5 };
_Static_assert(sizeof(gm_syncmap) <= 64 * sizeof(void *) && sizeof(sm_read) <= 64 * sizeof(void *),
               "ptrmask too short");
static const gm_type syncmap_gc_type = { sizeof(gm_syncmap), _Alignof(gm_syncmap), NULL, NULL,
                                         mask_words01, 0, "sync.Map" };
static const gm_type read_gc_type = { sizeof(sm_read), _Alignof(sm_read), NULL, NULL,
                                      mask_words02, 0, "sync.readOnly" };
static const gm_type islot_gc_type = { sizeof(sm_islot), _Alignof(sm_islot), NULL, NULL,
                                       mask_word1, 0, "sync.indexSlot" };

/* The EXPUNGED sentinel: an address no box can have (not in the GC heap,
 * so the collector ignores it). */
static char expunged_sentinel;
#define EXPUNGED ((void *)&expunged_sentinel)

static inline bool is_box(const void *p) { return p != NULL && p != EXPUNGED; }

static inline void *entry_first(const gm_syncmap *m, sm_entry *e)
{
    return (unsigned char *)e + m->first_off;
}

/* ---- memory ------------------------------------------------------------- */

static void *sm_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) gm_fatal("runtime: out of memory");
    return p;
}

/* Copies a value into fresh memory (a box or an entry's first value). */
static void put_value(gm_syncmap *m, void *dst, const void *val)
{
    if (m->vptr) gm_typed_memmove(m->vtype, dst, val);
    else if (m->vsize == 8) memcpy(dst, val, 8);   /* the common case, inlined */
    else if (m->vsize) memcpy(dst, val, m->vsize);
}

static void *new_box(gm_syncmap *m, const void *val)
{
    void *b;
    if (m->gc) {
        b = gm_new(m->vtype);
    } else if (m->vsize == 8) {          /* recycled boxes (ebr.h) */
        b = gm_ebr_box8_alloc();
        if (b == NULL) gm_fatal("runtime: out of memory");
    } else {
        b = sm_alloc(m->vsize);
    }
    put_value(m, b, val);
    return b;
}

/* A box that was never published (lost a race): malloc frees it, the GC
 * variant just drops it. */
static void drop_box(gm_syncmap *m, void *box)
{
    if (!m->gc) free(box);
}

static sm_entry *new_entry(gm_syncmap *m, const void *val)
{
    if (m->first_off == 0) {             /* too strict for first: a box */
        sm_entry *e = m->gc ? gm_new(m->etype) : sm_alloc(sizeof *e);
        void *box = new_box(m, val);
        if (m->gc) gm_store(&e->p_a, box);
        else e->p_a = box;
        return e;
    }
    if (m->gc) {
        sm_entry *e = gm_new(m->etype);
        put_value(m, entry_first(m, e), val);
        gm_store(&e->p_a, entry_first(m, e));   /* interior: keeps e alive */
        return e;
    }
    sm_entry *e = sm_alloc(MALLOC_FIRST_OFF + m->vsize);
    if (m->vsize) memcpy(entry_first(m, e), val, m->vsize);
    e->p_a = entry_first(m, e);
    return e;
}

/* Malloc variant only, from here to sm_retire_read: freeing and retiring.
 * Malloc entries keep their first value at MALLOC_FIRST_OFF (or have none,
 * first_off 0, and are then smaller than that offset, so no other block can
 * start there): free_entry needs no map to tell an own value from a box. */
static void free_entry(void *p)
{
    sm_entry *e = p;
    void *box = at_load_relaxed(&e->p_a);   /* nobody else can reach e now */
    if (is_box(box) && box != (void *)((unsigned char *)e + MALLOC_FIRST_OFF)) free(box);
    free(e);
}

static void free_read(void *p)
{
    sm_read *r = p;
    gm_map_free(r->m);
    free(r->idx);
    free(r);
}

/* A value box of e that was just replaced; e's own first value goes with e. */
static void sm_retire_box(gm_syncmap *m, sm_entry *e, void *box)
{
    if (m->gc || (m->first_off != 0 && box == entry_first(m, e))) return;
    gm_ebr_retire(box, m->vsize == 8 ? NULL : free);   /* NULL: recycle */
}
static void sm_retire_entry(gm_syncmap *m, sm_entry *e)
{
    if (!m->gc) gm_ebr_retire(e, free_entry);
}
static void sm_retire_read(gm_syncmap *m, sm_read *r)
{
    if (!m->gc) gm_ebr_retire(r, free_read);
}

/* ---- READ INDEX -------------------------------------------------------------
 * For u32 and u64 keys, each read-only map built by a promotion gets a flat
 * open-addressing table of (key, entry) pairs beside it, which Load searches
 * instead of the gm_map.  Both are immutable once published, so the index
 * needs nothing the map does not: no lock, no tophash, no overflow chains,
 * one cache line per hit in the common case (a gm_map hit reads the tophash
 * byte, the key and the value, three lines of a bucket; callgrind: 76
 * instructions per gm_map_get_u64 hit against about 20 here).  Linear
 * probing at a load of at most 1/2 (slots: the power of two >= 2 * len).
 * The hash is seeded per index (gm_rand64), so nobody outside can aim keys
 * at one probe run; should one run still exceed IDX_MAX_PROBE slots the
 * index is dropped and Load uses the map.  Cost: 16 bytes per slot, built
 * in O(len) at promotion, which the misses that trigger a promotion already
 * pay for (len(dirty) of them, each taking the lock).  The gm_map stays the
 * read map of record: Range, dirty rebuilds and the locked paths use it. */
#define IDX_MAX_PROBE 32

static inline uint64_t idx_hash(uint64_t k, uint64_t seed)
{
    uint64_t h = (k ^ seed) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ull;
}

static inline sm_entry *idx_find(const sm_read *r, uint64_t k)
{
    const sm_islot *slots = r->idx;
    uint32_t i = (uint32_t)(idx_hash(k, r->seed) >> r->shift);
    for (;;) {
        const sm_islot *s = &slots[i];
        if (GM_LIKELY(s->key == k && s->e != NULL)) return s->e;
        if (s->e == NULL) return NULL;
        i = (i + 1) & r->mask;
    }
}

static inline uint64_t key_u64(int kind, const void *key)
{
    if (kind == KEY_U32) {
        uint32_t k;
        memcpy(&k, key, 4);
        return k;
    }
    uint64_t k;
    memcpy(&k, key, 8);
    return k;
}

/* Builds r's index from r->m; leaves r->idx NULL if the keys do not suit. */
static void idx_build(gm_syncmap *m, sm_read *r)
{
    size_t n = gm_map_len(r->m);
    if (n == 0 || m->kind == KEY_GENERIC || n > ((size_t)1 << 30)) return;
    uint32_t bits = 1;
    while (((size_t)1 << bits) < 2 * n) bits++;
    size_t cap = (size_t)1 << bits;
    sm_islot *slots = m->gc ? gm_new_array(&islot_gc_type, cap) : calloc(cap, sizeof *slots);
    if (slots == NULL) return;          /* malloc: Load uses the map */
    uint64_t seed = gm_rand64();
    uint32_t shift = 64 - bits, mask = (uint32_t)(cap - 1);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, r->m);
    while (gm_map_iter_next(&it, &k, &v)) {
        uint64_t key = key_u64(m->kind, k);
        uint32_t i = (uint32_t)(idx_hash(key, seed) >> shift), probe = 0;
        while (slots[i].e != NULL) {
            i = (i + 1) & mask;
            if (++probe > IDX_MAX_PROBE) {   /* a pathological run: no index */
                gm_map_iter_done(&it);
                if (!m->gc) free(slots);
                return;
            }
        }
        slots[i].key = key;
        if (m->gc) gm_store(&slots[i].e, *(sm_entry **)v);
        else slots[i].e = *(sm_entry **)v;
    }
    if (m->gc) gm_store(&r->idx, slots);
    else r->idx = slots;
    r->seed = seed;
    r->shift = shift;
    r->mask = mask;
}

/* A new snapshot over mp.  share: an sm_read over the same map whose index
 * is reused; NULL: build one. */
static sm_read *new_read(gm_syncmap *m, gm_map *mp, bool amended, const sm_read *share)
{
    sm_read *r = m->gc ? gm_new(&read_gc_type) : sm_alloc(sizeof *r);
    if (!m->gc) memset(r, 0, sizeof *r);
    if (m->gc) gm_store(&r->m, mp);
    else r->m = mp;
    r->amended = amended;
    if (share == NULL) {
        idx_build(m, r);
    } else if (share->idx != NULL) {
        if (m->gc) gm_store(&r->idx, share->idx);
        else r->idx = share->idx;
        r->seed = share->seed;
        r->shift = share->shift;
        r->mask = share->mask;
    }
    return r;
}

/* ---- pointer stores: with the write barrier on the GC variant ----------- */

static inline void set_read(gm_syncmap *m, sm_read *r)
{
    if (m->gc) gm_atomic_store(&m->read_a, r);
    else at_store_release(&m->read_a, r);
}

static inline void set_dirty(gm_syncmap *m, gm_map *d)   /* under mu */
{
    if (m->gc) gm_store(&m->dirty, d);
    else m->dirty = d;
}

/* CAS on p_a; on failure *expected gets the current value. */
static inline bool p_cas(gm_syncmap *m, sm_entry *e, void **expected, void *desired)
{
    if (!m->gc) return at_cas_acqrel(&e->p_a, expected, desired);
    if (gm_atomic_cas(&e->p_a, *expected, desired)) return true;
    *expected = at_load_acquire(&e->p_a);
    return false;
}

static inline void *p_xchg(gm_syncmap *m, sm_entry *e, void *p)
{
    return m->gc ? gm_atomic_swap(&e->p_a, p) : at_xchg_acqrel(&e->p_a, p);
}

/* Every call begins here.  Malloc: enter an EBR critical section.  GC: a
 * safepoint (and attach), before any pointer of the map is held; no pin. */
static inline gm_ebr_rec *sm_enter(gm_syncmap *m)
{
    if (m->gc) {
        gm_safepoint();
        return NULL;
    }
    return gm_ebr_pin();
}

static inline void sm_leave(gm_ebr_rec *pin)
{
    if (pin != NULL) gm_ebr_unpin(pin);
}

/* ---- map helpers: key -> sm_entry * --------------------------------------- */


static inline sm_entry *map_find(const gm_syncmap *m, const gm_map *mp, const void *key)
{
    sm_entry **slot;
    switch ((enum key_kind)m->kind) {
    case KEY_U32: { uint32_t k; memcpy(&k, key, 4); slot = gm_map_get_u32(mp, k); break; }
    case KEY_U64: { uint64_t k; memcpy(&k, key, 8); slot = gm_map_get_u64(mp, k); break; }
    default: slot = gm_map_get(mp, key); break;
    }
    return slot ? *slot : NULL;
}

/* key's entry in a read-only snapshot: through its index if it has one. */
static inline sm_entry *read_find(const gm_syncmap *m, const sm_read *r, const void *key)
{
    if (GM_LIKELY(r->idx != NULL)) return idx_find(r, key_u64(m->kind, key));
    return map_find(m, r->m, key);
}

static void map_insert(gm_map *mp, const void *key, sm_entry *e)
{
    gm_map_put(mp, key, &e);
}

static sm_read *load_read(gm_syncmap *m)
{
    return at_load_acquire(&m->read_a);
}

static bool values_equal(gm_syncmap *m, const void *a, const void *b)
{
    if (m->vtype->equal) return m->vtype->equal(a, b);
    return m->vsize == 0 || memcmp(a, b, m->vsize) == 0;
}

/* To the caller's buffer, which may itself be inside a GC object. */
static void copy_out(gm_syncmap *m, void *dst, const void *box)
{
    if (dst == NULL) return;
    if (m->vptr) gm_typed_memmove(m->vtype, dst, box);
    else if (m->vsize == 8) memcpy(dst, box, 8);   /* the common case, inlined */
    else if (m->vsize) memcpy(dst, box, m->vsize);
}

static void zero_out(gm_syncmap *m, void *dst)
{
    if (dst == NULL || m->vsize == 0) return;
    if (m->vptr) gm_typed_memclr(m->vtype, dst);
    else memset(dst, 0, m->vsize);
}

/* ---- entry operations (lock-free unless named _locked) ----------------- */

/* The box, or NULL when deleted or expunged. */
static void *entry_load(sm_entry *e)
{
    void *p = at_load_acquire(&e->p_a);
    return is_box(p) ? p : NULL;
}

/* Replaces the value unless expunged; *old gets the previous p (box or NULL). */
static bool entry_try_swap(gm_syncmap *m, sm_entry *e, void *box, void **old)
{
    void *p = at_load_acquire(&e->p_a);
    for (;;) {
        if (p == EXPUNGED) return false;
        if (p_cas(m, e, &p, box)) {
            *old = p;
            return true;
        }
    }
}

static bool entry_unexpunge_locked(gm_syncmap *m, sm_entry *e)
{
    void *p = EXPUNGED;
    return p_cas(m, e, &p, NULL);
}

/* NULL -> EXPUNGED; true if the entry is (now) expunged. */
static bool entry_try_expunge_locked(gm_syncmap *m, sm_entry *e)
{
    void *p = at_load_acquire(&e->p_a);
    while (p == NULL)
        if (p_cas(m, e, &p, EXPUNGED)) return true;
    return p == EXPUNGED;
}

/* Deletes; returns the removed box (retired already) or NULL. */
static void *entry_delete(gm_syncmap *m, sm_entry *e)
{
    void *p = at_load_acquire(&e->p_a);
    for (;;) {
        if (!is_box(p)) return NULL;
        if (p_cas(m, e, &p, NULL)) {
            sm_retire_box(m, e, p);   /* still readable by us: we are pinned */
            return p;
        }
    }
}

enum lo_result { LO_EXPUNGED, LO_LOADED, LO_STORED };

/* Loads the value if present, else stores *newbox (allocated on demand from
 * val; set to NULL once published). */
static enum lo_result entry_try_load_or_store(gm_syncmap *m, sm_entry *e,
                                              const void *val, void **newbox,
                                              void **loaded)
{
    void *p = at_load_acquire(&e->p_a);
    for (;;) {
        if (p == EXPUNGED) return LO_EXPUNGED;
        if (p != NULL) {
            *loaded = p;
            return LO_LOADED;
        }
        if (*newbox == NULL) *newbox = new_box(m, val);
        if (p_cas(m, e, &p, *newbox)) {
            *newbox = NULL;
            return LO_STORED;
        }
    }
}

/* ---- dirty map management (under mu) ----------------------------------- */

static const char *check_locked(gm_syncmap *m);
/* Expensive-check builds verify the read/dirty invariants after every
 * structural change. */
#define CHECK_SYNCMAP(m) GM_ASSERT_EXPENSIVE(check_locked(m) == NULL)

static void promote_locked(gm_syncmap *m)
{
    sm_read *old = load_read(m);
    if (m->expunged_n != 0) {
        /* Expunged entries are in old->m only: they die with it. */
        gm_map_iter it;
        const void *k;
        void *v;
        gm_map_iter_init(&it, old->m);
        while (gm_map_iter_next(&it, &k, &v)) {
            sm_entry *e = *(sm_entry **)v;
            if (at_load_relaxed(&e->p_a) == EXPUNGED) sm_retire_entry(m, e);
        }
        m->expunged_n = 0;
    }
    set_read(m, new_read(m, m->dirty, false, NULL));
    sm_retire_read(m, old);
    set_dirty(m, NULL);
    m->misses = 0;
    GM_SYNC_COUNT(syncmap_promotions);
    CHECK_SYNCMAP(m);
}

static void miss_locked(gm_syncmap *m)
{
    m->misses++;
    if (m->misses < gm_map_len(m->dirty)) return;
    promote_locked(m);
}

/* Makes sure dirty exists: a copy of read minus its deleted entries, which
 * become EXPUNGED. */
static void dirty_locked(gm_syncmap *m)
{
    if (m->dirty != NULL) return;
    sm_read *read = load_read(m);
    gm_map *d = m->gc ? gm_map_new_gc(m->ktype, &gm_type_ptr, gm_map_len(read->m))
                      : gm_map_new(m->ktype, &gm_type_ptr, gm_map_len(read->m));
    if (d == NULL) gm_fatal("runtime: out of memory");
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
        if (entry_try_expunge_locked(m, e)) m->expunged_n++;
        else map_insert(d, k, e);
    }
    set_dirty(m, d);
    GM_SYNC_COUNT(syncmap_dirty_builds);
}

/* A new key: into dirty, marking read amended if it was not. */
static void add_new_locked(gm_syncmap *m, const void *key, const void *val)
{
    sm_read *read = load_read(m);
    if (!read->amended) {
        dirty_locked(m);
        set_read(m, new_read(m, read->m, true, read));
        /* The old sm_read shares its map with the new one: free the shell
         * only. */
        if (!m->gc) gm_ebr_retire(read, free);
    }
    map_insert(m->dirty, key, new_entry(m, val));
    CHECK_SYNCMAP(m);
}

/* Finds key's entry: in read without the lock; else, when read is amended,
 * under mu in read again and then in dirty (a miss).  remove: drop a dirty
 * entry from dirty (the caller deletes it; it is retired here). */
static __attribute__((noinline)) sm_entry *find_entry_locked(gm_syncmap *m,
                                                              const void *key,
                                                              bool remove)
{
    gm_mutex_lock(&m->mu);
    sm_read *read = load_read(m);
    sm_entry *e = read_find(m, read, key);
    if (e == NULL && read->amended) {
        e = map_find(m, m->dirty, key);
        if (e != NULL && remove) {
            gm_map_delete(m->dirty, key);
            sm_retire_entry(m, e);   /* unreachable now; we stay pinned */
        }
        miss_locked(m);
    }
    gm_mutex_unlock(&m->mu);
    return e;
}

static inline sm_entry *find_entry(gm_syncmap *m, const void *key, bool remove)
{
    sm_read *read = load_read(m);
    sm_entry *e = read_find(m, read, key);
    if (GM_LIKELY(e != NULL || !read->amended)) return e;
    return find_entry_locked(m, key, remove);
}

/* ---- the API ------------------------------------------------------------ */

static bool type_has_pointers(const gm_type *t)
{
    if (t->ptrmask == NULL) return false;
    for (size_t w = 0; w < t->size / sizeof(void *); w++)
        if (t->ptrmask[w / 8] & (1u << (w % 8))) return true;
    return false;
}

/* The GC variant's entry type for a value type: p_a (word 0), then the first
 * value at first_off with the value type's pointer words.  Interned per
 * (value type, offset) and never freed, like Go's types: a large entry's
 * span refers to its type, and entries may outlive their map. */
struct etype_rec {
    struct etype_rec *next;
    const gm_type *vt;
    size_t first_off;
    gm_type t;
    uint8_t mask[];
};
static struct etype_rec *etypes;
static pthread_mutex_t etypes_mu = PTHREAD_MUTEX_INITIALIZER;
static const gm_type entry_box_only_type = { sizeof(sm_entry), _Alignof(sm_entry), NULL, NULL,
                                             mask_word0, 0, "sync.entry" };

static const gm_type *entry_type_for(const gm_type *vt, size_t first_off)
{
    if (first_off == 0) return &entry_box_only_type;
    size_t align = vt->align > sizeof(void *) ? vt->align : sizeof(void *);
    size_t size = first_off + (vt->size ? vt->size : 1);   /* first stays inside */
    size = (size + align - 1) / align * align;
    size_t words = size / sizeof(void *);
    pthread_mutex_lock(&etypes_mu);
    struct etype_rec *r;
    for (r = etypes; r != NULL; r = r->next)
        if (r->vt == vt && r->first_off == first_off) break;
    if (r == NULL && (r = calloc(1, sizeof *r + (words + 7) / 8)) != NULL) {
        r->vt = vt;
        r->first_off = first_off;
        r->mask[0] = 1;                                   /* p_a */
        size_t base = first_off / sizeof(void *);
        for (size_t w = 0; vt->ptrmask && w < vt->size / sizeof(void *); w++)
            if (vt->ptrmask[w / 8] & (1u << (w % 8)))
                r->mask[(base + w) / 8] |= (uint8_t)(1u << ((base + w) % 8));
        r->t = (gm_type){ size, align, NULL, NULL, r->mask, 0, "sync.entry" };
        r->next = etypes;
        etypes = r;
    }
    pthread_mutex_unlock(&etypes_mu);
    return r ? &r->t : NULL;
}

static const char *validate(const char *fn, const gm_type *key, const gm_type *val)
{
    const char *why = gm_type_validate(key, true);
    if (why == NULL) why = gm_type_validate(val, false);
    if (why != NULL) {
        gm_errorf("%s: %s", fn, why);
        errno = EINVAL;
    }
    return why;
}

static void init_fields(gm_syncmap *m, const gm_type *key, const gm_type *val)
{
    m->ktype = key;
    m->vtype = val;
    m->vsize = val->size;
    m->kind = key == &gm_type_u64 ? KEY_U64 : key == &gm_type_u32 ? KEY_U32 : KEY_GENERIC;
}

gm_syncmap *gm_syncmap_new(const gm_type *key, const gm_type *val)
{
    if (validate("gm_syncmap_new", key, val) != NULL) return NULL;
    gm_syncmap *m = calloc(1, sizeof *m);
    sm_read *r = m ? calloc(1, sizeof *r) : NULL;
    if (r == NULL) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->read_a = r;             /* a nil map: reads find nothing */
    init_fields(m, key, val);
    m->first_off = val->align <= MALLOC_FIRST_OFF ? MALLOC_FIRST_OFF : 0;
    m->fast_load = m->kind != KEY_GENERIC && val->size == 8;
    return m;
}

gm_syncmap *gm_syncmap_new_gc(const gm_type *key, const gm_type *val)
{
    if (validate("gm_syncmap_new_gc", key, val) != NULL) return NULL;
    /* A value holding GC pointers always gets a box of its own: a first
     * value kept inside the entry could not be cleared when it is deleted
     * or replaced (lock-free readers may be copying it), so it would stay
     * reachable as long as the entry -- Go's Delete makes it garbage at
     * once (test: gc_syncmap_deleted_and_replaced_first_values_are_collectable). */
    size_t first_off = type_has_pointers(val) ? 0 : val->align <= 8 ? 8 : val->align <= 16 ? 16 : 0;
    const gm_type *et = entry_type_for(val, first_off);
    if (et == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    gm_syncmap *m = gm_new(&syncmap_gc_type);
    init_fields(m, key, val);
    m->gc = true;
    m->vptr = type_has_pointers(val);
    m->fast_load_gc = m->kind != KEY_GENERIC && val->size == 8 && !m->vptr;
    m->etype = et;
    m->first_off = (uint16_t)first_off;
    sm_read *r = gm_new(&read_gc_type);   /* r->m NULL: a nil map */
    gm_store(&m->read_a, r);
    return m;
}

void gm_syncmap_free(gm_syncmap *m)
{
    if (m == NULL || m->gc) return;   /* the collector frees a GC map */
    sm_read *read = load_read(m);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) free_entry(*(sm_entry **)v);
    gm_map_iter_init(&it, m->dirty);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
        if (read_find(m, read, k) != e) free_entry(e);   /* dirty-only */
    }
    gm_map_free(m->dirty);
    free_read(read);
    free(m);
}

static __attribute__((noinline)) bool load_slow(gm_syncmap *m, const void *key, void *val_out)
{
    gm_ebr_rec *pin = sm_enter(m);
    sm_entry *e = find_entry(m, key, false);
    void *box = e ? entry_load(e) : NULL;
    if (box) copy_out(m, val_out, box);
    else zero_out(m, val_out);
    sm_leave(pin);
    return box != NULL;
}

/* The common Load: a map with u32/u64 keys and 8-byte pointer-free values,
 * a key found in the read index, present.  Malloc: inline and a leaf; it
 * pins without the nesting count (gm_ebr_pin_flat) and writes no line but
 * its own thread's record.  GC: the safepoint, then the same lookups.
 * Anything else: load_slow. */
static inline void *load_hit(gm_syncmap *m, const void *key)
{
    sm_read *read = load_read(m);
    if (GM_UNLIKELY(read->idx == NULL)) return NULL;
    sm_entry *e = idx_find(read, key_u64(m->kind, key));
    if (GM_UNLIKELY(e == NULL)) return NULL;
    void *p = at_load_acquire(&e->p_a);
    return is_box(p) ? p : NULL;
}

bool gm_syncmap_load(gm_syncmap *m, const void *key, void *val_out)
{
    if (GM_LIKELY(m->fast_load)) {
        gm_ebr_rec *r = gm_ebr_self;
        if (GM_LIKELY(r != NULL) && GM_LIKELY(gm_ebr_pin_flat(r))) {
            void *p = load_hit(m, key);
            if (GM_LIKELY(p != NULL) && val_out != NULL) memcpy(val_out, p, 8);
            gm_ebr_unpin_flat(r);
            if (GM_LIKELY(p != NULL)) return true;
        }
    } else if (m->fast_load_gc) {
        gm_safepoint();
        void *p = load_hit(m, key);
        if (GM_LIKELY(p != NULL)) {
            if (val_out != NULL) memcpy(val_out, p, 8);
            return true;
        }
    }
    return load_slow(m, key, val_out);
}

/* Swap, and Store (prev_out NULL, result unused). */
bool gm_syncmap_swap(gm_syncmap *m, const void *key, const void *val, void *prev_out)
{
    gm_ebr_rec *pin = sm_enter(m);
    void *box = NULL, *old = NULL;
    sm_read *read = load_read(m);
    sm_entry *e = read_find(m, read, key);
    bool done = false;
    if (e != NULL) {
        box = new_box(m, val);
        done = entry_try_swap(m, e, box, &old);
    }
    if (!done) {
        gm_mutex_lock(&m->mu);
        read = load_read(m);
        if ((e = read_find(m, read, key)) != NULL) {
            if (entry_unexpunge_locked(m, e)) {
                map_insert(m->dirty, key, e);
                m->expunged_n--;
            }
            if (box == NULL) box = new_box(m, val);
            old = p_xchg(m, e, box);
        } else if ((e = map_find(m, m->dirty, key)) != NULL) {
            if (box == NULL) box = new_box(m, val);
            old = p_xchg(m, e, box);
        } else {
            if (box != NULL) drop_box(m, box);                   /* a new key keeps its value inline */
            add_new_locked(m, key, val);
            old = NULL;
        }
        gm_mutex_unlock(&m->mu);
    }
    bool loaded = is_box(old);
    if (loaded) {
        copy_out(m, prev_out, old);
        sm_retire_box(m, e, old);
    } else {
        zero_out(m, prev_out);
    }
    sm_leave(pin);
    return loaded;
}

void gm_syncmap_store(gm_syncmap *m, const void *key, const void *val)
{
    (void)gm_syncmap_swap(m, key, val, NULL);
}

bool gm_syncmap_load_or_store(gm_syncmap *m, const void *key, const void *val,
                              void *actual_out)
{
    gm_ebr_rec *pin = sm_enter(m);
    void *newbox = NULL, *loaded = NULL;
    enum lo_result res = LO_EXPUNGED;
    sm_read *read = load_read(m);
    sm_entry *e = read_find(m, read, key);
    if (e != NULL) res = entry_try_load_or_store(m, e, val, &newbox, &loaded);
    if (res == LO_EXPUNGED) {
        gm_mutex_lock(&m->mu);
        read = load_read(m);
        if ((e = read_find(m, read, key)) != NULL) {
            if (entry_unexpunge_locked(m, e)) {
                map_insert(m->dirty, key, e);
                m->expunged_n--;
            }
            res = entry_try_load_or_store(m, e, val, &newbox, &loaded);
        } else if ((e = map_find(m, m->dirty, key)) != NULL) {
            res = entry_try_load_or_store(m, e, val, &newbox, &loaded);
            miss_locked(m);
        } else {
            add_new_locked(m, key, val);
            res = LO_STORED;
        }
        gm_mutex_unlock(&m->mu);
    }
    if (newbox != NULL) drop_box(m, newbox);   /* made but never published */
    if (res == LO_LOADED) copy_out(m, actual_out, loaded);
    else copy_out(m, actual_out, val);
    sm_leave(pin);
    return res == LO_LOADED;
}

bool gm_syncmap_load_and_delete(gm_syncmap *m, const void *key, void *val_out)
{
    gm_ebr_rec *pin = sm_enter(m);
    sm_entry *e = find_entry(m, key, true);
    void *box = e ? entry_delete(m, e) : NULL;
    if (box) copy_out(m, val_out, box);
    else zero_out(m, val_out);
    sm_leave(pin);
    return box != NULL;
}

void gm_syncmap_delete(gm_syncmap *m, const void *key)
{
    (void)gm_syncmap_load_and_delete(m, key, NULL);
}

static bool entry_try_cas(gm_syncmap *m, sm_entry *e, const void *old,
                          const void *new_)
{
    void *p = at_load_acquire(&e->p_a), *box = NULL;
    for (;;) {
        if (!is_box(p) || !values_equal(m, p, old)) {
            if (box != NULL) drop_box(m, box);
            return false;
        }
        if (box == NULL) box = new_box(m, new_);
        if (p_cas(m, e, &p, box)) {
            sm_retire_box(m, e, p);
            return true;
        }
    }
}

bool gm_syncmap_compare_and_swap(gm_syncmap *m, const void *key, const void *old,
                                 const void *new_)
{
    gm_ebr_rec *pin = sm_enter(m);
    bool swapped = false;
    sm_read *read = load_read(m);
    sm_entry *e = read_find(m, read, key);
    if (e != NULL) {
        swapped = entry_try_cas(m, e, old, new_);
    } else if (read->amended) {
        gm_mutex_lock(&m->mu);
        read = load_read(m);
        if ((e = read_find(m, read, key)) != NULL) {
            swapped = entry_try_cas(m, e, old, new_);
        } else if ((e = map_find(m, m->dirty, key)) != NULL) {
            swapped = entry_try_cas(m, e, old, new_);
            miss_locked(m);
        }
        gm_mutex_unlock(&m->mu);
    }
    sm_leave(pin);
    return swapped;
}

bool gm_syncmap_compare_and_delete(gm_syncmap *m, const void *key, const void *old)
{
    gm_ebr_rec *pin = sm_enter(m);
    bool deleted = false;
    sm_entry *e = find_entry(m, key, false);
    if (e != NULL) {
        void *p = at_load_acquire(&e->p_a);
        while (is_box(p) && values_equal(m, p, old)) {
            if (p_cas(m, e, &p, NULL)) {
                sm_retire_box(m, e, p);
                deleted = true;
                break;
            }
        }
    }
    sm_leave(pin);
    return deleted;
}

void gm_syncmap_range(gm_syncmap *m, bool (*fn)(const void *key, const void *val, void *arg),
                      void *arg)
{
    gm_ebr_rec *pin = sm_enter(m);
    sm_read *read = load_read(m);
    if (read->amended) {
        gm_mutex_lock(&m->mu);
        if (load_read(m)->amended) promote_locked(m);
        read = load_read(m);
        gm_mutex_unlock(&m->mu);
    }
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) {
        void *box = entry_load(*(sm_entry **)v);
        if (box == NULL) continue;
        if (!fn(k, box, arg)) {
            gm_map_iter_done(&it);
            break;
        }
    }
    sm_leave(pin);
}

void gm_syncmap_clear(gm_syncmap *m)
{
    gm_ebr_rec *pin = sm_enter(m);
    sm_read *read = load_read(m);
    if (gm_map_len(read->m) == 0 && !read->amended) {
        sm_leave(pin);
        return;
    }
    gm_mutex_lock(&m->mu);
    read = load_read(m);
    if (!m->gc) {   /* the GC variant just drops its references */
        gm_map_iter it;
        const void *k;
        void *v;
        gm_map_iter_init(&it, read->m);
        while (gm_map_iter_next(&it, &k, &v)) sm_retire_entry(m, *(sm_entry **)v);
        gm_map_iter_init(&it, m->dirty);
        while (gm_map_iter_next(&it, &k, &v)) {
            sm_entry *e = *(sm_entry **)v;
            if (read_find(m, read, k) != e) sm_retire_entry(m, e);
        }
    }
    gm_map_free(m->dirty);     /* only ever read under mu; nothing on GC */
    set_dirty(m, NULL);
    m->misses = 0;
    m->expunged_n = 0;
    set_read(m, new_read(m, NULL, false, NULL));
    sm_retire_read(m, read);
    gm_mutex_unlock(&m->mu);
    sm_leave(pin);
}

void gm_syncmap_stats_get(gm_syncmap *m, gm_syncmap_stats *out)
{
    gm_mutex_lock(&m->mu);
    sm_read *read = load_read(m);
    out->read_len = gm_map_len(read->m);
    out->amended = read->amended;
    out->has_dirty = m->dirty != NULL;
    out->dirty_len = gm_map_len(m->dirty);
    out->misses = m->misses;
    gm_mutex_unlock(&m->mu);
}

/* ---- gm_syncmap_check ------------------------------------------------------ */

static _Thread_local char check_msg[200];

static const char *check_locked(gm_syncmap *m)
{
    sm_read *read = load_read(m);
    if (read == NULL) return "syncmap: no read map";
    if (read->amended != (m->dirty != NULL)) {
        snprintf(check_msg, sizeof check_msg, "syncmap: amended=%d but dirty %s",
                 read->amended, m->dirty ? "exists" : "is NULL");
        return check_msg;
    }
    const char *err = gm_map_check(read->m);
    if (err == NULL && m->dirty) err = gm_map_check(m->dirty);
    if (err != NULL) {
        snprintf(check_msg, sizeof check_msg, "syncmap: inner map: %s", err);
        return check_msg;
    }
    if (read->idx != NULL) {
        size_t used = 0;
        for (size_t i = 0; i <= read->mask; i++) used += read->idx[i].e != NULL;
        if (used != gm_map_len(read->m)) {
            snprintf(check_msg, sizeof check_msg, "syncmap: read index holds %zu keys, map %zu",
                     used, gm_map_len(read->m));
            return check_msg;
        }
    }
    size_t expunged = 0;
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
        if (read->idx != NULL && idx_find(read, key_u64(m->kind, k)) != e) {
            gm_map_iter_done(&it);
            return "syncmap: the read index disagrees with the read map";
        }
        bool exp = at_load_relaxed(&e->p_a) == EXPUNGED;   /* stable under mu */
        expunged += exp;
        sm_entry *d = m->dirty ? map_find(m, m->dirty, k) : NULL;
        if (m->dirty && (exp ? d != NULL : d != e)) {
            gm_map_iter_done(&it);
            return exp ? "syncmap: an expunged entry is in dirty"
                       : "syncmap: a live read entry is missing from dirty";
        }
        if (!m->dirty && exp) {
            gm_map_iter_done(&it);
            return "syncmap: expunged entry while there is no dirty map";
        }
    }
    if (expunged != m->expunged_n) {
        snprintf(check_msg, sizeof check_msg, "syncmap: %zu expunged entries, counted %zu",
                 expunged, m->expunged_n);
        return check_msg;
    }
    gm_map_iter_init(&it, m->dirty);
    while (gm_map_iter_next(&it, &k, &v))
        if (at_load_relaxed(&(*(sm_entry **)v)->p_a) == EXPUNGED) {
            gm_map_iter_done(&it);
            return "syncmap: an entry of dirty is expunged";
        }
    if (m->dirty ? m->misses >= gm_map_len(m->dirty) && m->misses != 0 : m->misses != 0) {
        snprintf(check_msg, sizeof check_msg, "syncmap: %zu misses against %zu dirty keys",
                 m->misses, gm_map_len(m->dirty));
        return check_msg;
    }
    return NULL;
}

const char *gm_syncmap_check(gm_syncmap *m)
{
    gm_mutex_lock(&m->mu);
    const char *err = check_locked(m);
    gm_mutex_unlock(&m->mu);
    return err;
}
