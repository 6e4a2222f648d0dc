/* syncmap.c - sync.Map (Go 1.9-1.23 design) over gomap's own map.
 *
 * LAYOUT.
 *     read_a  -> sm_read { gm_map *m; bool amended }   published atomically,
 *                never modified after publication (so any number of threads
 *                may gm_map_get / iterate it with no lock);
 *     dirty   -> gm_map, or NULL                       only under mu;
 *     both map a key to an sm_entry *, one entry per key shared by the two
 *     maps; an entry holds p_a, a pointer to an immutable box holding the
 *     value bytes, so Load copies a value out with no lock.  The first value
 *     of a key is stored in the entry itself (sm_entry.first), later ones in
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
 * (gm_ebr_pin), so it may use anything it reached.  An entry is freed with
 * its current box.
 *
 * GC VARIANT (hook for the GC issue).  All memory comes from sm_alloc and is
 * released through sm_retire/sm_free_now.  A GC-heap sync.Map would allocate
 * boxes, entries and sm_read from the GC heap (gm_new, entries and sm_read
 * having ptrmasks), create its maps with gm_map_new_gc, store pointers with
 * gm_store, and make sm_retire a no-op: the collector then does what EBR
 * does here.  Not built yet: there is deliberately no gm_syncmap_new_gc.
 *
 * LOCK ORDER: mu is the only lock here; the semaphores under it are leaves.
 */
#include "sync/ebr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap/map.h"

typedef struct sm_read { gm_map *m; bool amended; } sm_read;
/* An entry, and room for the value it was created with: a key that is
 * written once and read many times (sync.Map's first use case) keeps its
 * value on the entry's own cache line.  p_a == first means that value;
 * first is never written again, and lives as long as the entry. */
typedef struct sm_entry {
    void *p_a;
    _Alignas(16) unsigned char first[];
} sm_entry;

struct gm_syncmap {
    gm_mutex mu;
    sm_read *read_a;          /* never NULL */
    gm_map *dirty;            /* under mu */
    size_t misses;            /* under mu */
    size_t expunged_n;        /* under mu */
    const gm_type *ktype, *vtype;
    size_t vsize;
    int kind;                 /* enum key_kind */
};

/* The EXPUNGED sentinel: an address no box can have. */
static char expunged_sentinel;
#define EXPUNGED ((void *)&expunged_sentinel)

static inline bool is_box(const void *p) { return p != NULL && p != EXPUNGED; }

/* ---- memory ------------------------------------------------------------- */

static void *sm_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) gm_fatal("runtime: out of memory");
    return p;
}

static void *new_box(gm_syncmap *m, const void *val)
{
    void *b = sm_alloc(m->vsize);
    if (m->vsize) memcpy(b, val, m->vsize);
    return b;
}

static sm_entry *new_entry(gm_syncmap *m, const void *val)
{
    if (m->vtype->align > 16) {          /* too strict for first[]: a box */
        sm_entry *e = sm_alloc(sizeof *e);
        e->p_a = new_box(m, val);
        return e;
    }
    sm_entry *e = sm_alloc(sizeof *e + m->vsize);
    if (m->vsize) memcpy(e->first, val, m->vsize);
    e->p_a = e->first;
    return e;
}

static void free_entry(void *p)
{
    sm_entry *e = p;
    void *box = at_load_relaxed(&e->p_a);   /* nobody else can reach e now */
    if (is_box(box) && box != (void *)e->first) free(box);
    free(e);
}

static void free_read(void *p)
{
    sm_read *r = p;
    gm_map_free(r->m);
    free(r);
}

/* A value box of e that was just replaced; e's own first value goes with e. */
static void sm_retire_box(sm_entry *e, void *box)
{
    if (box != (void *)e->first) gm_ebr_retire(box, free);
}
static void sm_retire_entry(sm_entry *e) { gm_ebr_retire(e, free_entry); }
static void sm_retire_read(sm_read *r) { gm_ebr_retire(r, free_read); }

static sm_read *new_read(gm_map *mp, bool amended)
{
    sm_read *r = sm_alloc(sizeof *r);
    r->m = mp;
    r->amended = amended;
    return r;
}

/* ---- map helpers: key -> sm_entry * --------------------------------------- */

/* Which of gm_map's key fast paths the key type allows. */
enum key_kind { KEY_GENERIC, KEY_U32, KEY_U64 };

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

static void copy_out(gm_syncmap *m, void *dst, const void *box)
{
    if (dst == NULL) return;
    if (m->vsize == 8) memcpy(dst, box, 8);   /* the common case, inlined */
    else if (m->vsize) memcpy(dst, box, m->vsize);
}

static void zero_out(gm_syncmap *m, void *dst)
{
    if (dst != NULL && m->vsize) memset(dst, 0, m->vsize);
}

/* ---- entry operations (lock-free unless named _locked) ----------------- */

/* The box, or NULL when deleted or expunged. */
static void *entry_load(sm_entry *e)
{
    void *p = at_load_acquire(&e->p_a);
    return is_box(p) ? p : NULL;
}

/* Replaces the value unless expunged; *old gets the previous p (box or NULL). */
static bool entry_try_swap(sm_entry *e, void *box, void **old)
{
    void *p = at_load_acquire(&e->p_a);
    for (;;) {
        if (p == EXPUNGED) return false;
        if (at_cas_acqrel(&e->p_a, &p, box)) {
            *old = p;
            return true;
        }
    }
}

static bool entry_unexpunge_locked(sm_entry *e)
{
    void *p = EXPUNGED;
    return at_cas_acqrel(&e->p_a, &p, NULL);
}

/* NULL -> EXPUNGED; true if the entry is (now) expunged. */
static bool entry_try_expunge_locked(sm_entry *e)
{
    void *p = at_load_acquire(&e->p_a);
    while (p == NULL)
        if (at_cas_acqrel(&e->p_a, &p, EXPUNGED)) return true;
    return p == EXPUNGED;
}

/* Deletes; returns the removed box (retired already) or NULL. */
static void *entry_delete(sm_entry *e)
{
    void *p = at_load_acquire(&e->p_a);
    for (;;) {
        if (!is_box(p)) return NULL;
        if (at_cas_acqrel(&e->p_a, &p, NULL)) {
            sm_retire_box(e, p);   /* still readable by us: we are pinned */
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
        if (at_cas_acqrel(&e->p_a, &p, *newbox)) {
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
            if (at_load_relaxed(&e->p_a) == EXPUNGED) sm_retire_entry(e);
        }
        m->expunged_n = 0;
    }
    at_store_release(&m->read_a, new_read(m->dirty, false));
    sm_retire_read(old);
    m->dirty = NULL;
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
    gm_map *d = gm_map_new(m->ktype, &gm_type_ptr, gm_map_len(read->m));
    if (d == NULL) gm_fatal("runtime: out of memory");
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
        if (entry_try_expunge_locked(e)) m->expunged_n++;
        else map_insert(d, k, e);
    }
    m->dirty = d;
    GM_SYNC_COUNT(syncmap_dirty_builds);
}

/* A new key: into dirty, marking read amended if it was not. */
static void add_new_locked(gm_syncmap *m, const void *key, const void *val)
{
    sm_read *read = load_read(m);
    if (!read->amended) {
        dirty_locked(m);
        at_store_release(&m->read_a, new_read(read->m, true));
        /* The old sm_read shares its map with the new one: free the shell
         * only. */
        gm_ebr_retire(read, free);
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
    sm_entry *e = map_find(m, read->m, key);
    if (e == NULL && read->amended) {
        e = map_find(m, m->dirty, key);
        if (e != NULL && remove) {
            gm_map_delete(m->dirty, key);
            sm_retire_entry(e);   /* unreachable now; we stay pinned */
        }
        miss_locked(m);
    }
    gm_mutex_unlock(&m->mu);
    return e;
}

static inline sm_entry *find_entry(gm_syncmap *m, const void *key, bool remove)
{
    sm_read *read = load_read(m);
    sm_entry *e = map_find(m, read->m, key);
    if (GM_LIKELY(e != NULL || !read->amended)) return e;
    return find_entry_locked(m, key, remove);
}

/* ---- the API ------------------------------------------------------------ */

gm_syncmap *gm_syncmap_new(const gm_type *key, const gm_type *val)
{
    const char *why = gm_type_validate(key, true);
    if (why == NULL) why = gm_type_validate(val, false);
    if (why != NULL) {
        gm_errorf("gm_syncmap_new: %s", why);
        errno = EINVAL;
        return NULL;
    }
    gm_syncmap *m = calloc(1, sizeof *m);
    sm_read *r = m ? malloc(sizeof *r) : NULL;
    if (r == NULL) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    r->m = NULL;               /* a nil map: reads find nothing */
    r->amended = false;
    m->read_a = r;
    m->ktype = key;
    m->vtype = val;
    m->vsize = val->size;
    m->kind = key == &gm_type_u64 ? KEY_U64 : key == &gm_type_u32 ? KEY_U32 : KEY_GENERIC;
    return m;
}

void gm_syncmap_free(gm_syncmap *m)
{
    if (m == NULL) return;
    sm_read *read = load_read(m);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) free_entry(*(sm_entry **)v);
    gm_map_iter_init(&it, m->dirty);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
        if (map_find(m, read->m, k) != e) free_entry(e);   /* dirty-only */
    }
    gm_map_free(m->dirty);
    free_read(read);
    free(m);
}

bool gm_syncmap_load(gm_syncmap *m, const void *key, void *val_out)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    sm_entry *e = find_entry(m, key, false);
    void *box = e ? entry_load(e) : NULL;
    if (box) copy_out(m, val_out, box);
    else zero_out(m, val_out);
    gm_ebr_unpin(pin);
    return box != NULL;
}

/* Swap, and Store (prev_out NULL, result unused). */
bool gm_syncmap_swap(gm_syncmap *m, const void *key, const void *val, void *prev_out)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    void *box = NULL, *old = NULL;
    sm_read *read = load_read(m);
    sm_entry *e = map_find(m, read->m, key);
    bool done = false;
    if (e != NULL) {
        box = new_box(m, val);
        done = entry_try_swap(e, box, &old);
    }
    if (!done) {
        gm_mutex_lock(&m->mu);
        read = load_read(m);
        if ((e = map_find(m, read->m, key)) != NULL) {
            if (entry_unexpunge_locked(e)) {
                map_insert(m->dirty, key, e);
                m->expunged_n--;
            }
            if (box == NULL) box = new_box(m, val);
            old = at_xchg_acqrel(&e->p_a, box);
        } else if ((e = map_find(m, m->dirty, key)) != NULL) {
            if (box == NULL) box = new_box(m, val);
            old = at_xchg_acqrel(&e->p_a, box);
        } else {
            free(box);                   /* a new key keeps its value inline */
            add_new_locked(m, key, val);
            old = NULL;
        }
        gm_mutex_unlock(&m->mu);
    }
    bool loaded = is_box(old);
    if (loaded) {
        copy_out(m, prev_out, old);
        sm_retire_box(e, old);
    } else {
        zero_out(m, prev_out);
    }
    gm_ebr_unpin(pin);
    return loaded;
}

void gm_syncmap_store(gm_syncmap *m, const void *key, const void *val)
{
    (void)gm_syncmap_swap(m, key, val, NULL);
}

bool gm_syncmap_load_or_store(gm_syncmap *m, const void *key, const void *val,
                              void *actual_out)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    void *newbox = NULL, *loaded = NULL;
    enum lo_result res = LO_EXPUNGED;
    sm_read *read = load_read(m);
    sm_entry *e = map_find(m, read->m, key);
    if (e != NULL) res = entry_try_load_or_store(m, e, val, &newbox, &loaded);
    if (res == LO_EXPUNGED) {
        gm_mutex_lock(&m->mu);
        read = load_read(m);
        if ((e = map_find(m, read->m, key)) != NULL) {
            if (entry_unexpunge_locked(e)) {
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
    free(newbox);   /* made but never published */
    if (res == LO_LOADED) copy_out(m, actual_out, loaded);
    else if (actual_out != NULL && m->vsize) memcpy(actual_out, val, m->vsize);
    gm_ebr_unpin(pin);
    return res == LO_LOADED;
}

bool gm_syncmap_load_and_delete(gm_syncmap *m, const void *key, void *val_out)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    sm_entry *e = find_entry(m, key, true);
    void *box = e ? entry_delete(e) : NULL;
    if (box) copy_out(m, val_out, box);
    else zero_out(m, val_out);
    gm_ebr_unpin(pin);
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
            free(box);
            return false;
        }
        if (box == NULL) box = new_box(m, new_);
        if (at_cas_acqrel(&e->p_a, &p, box)) {
            sm_retire_box(e, p);
            return true;
        }
    }
}

bool gm_syncmap_compare_and_swap(gm_syncmap *m, const void *key, const void *old,
                                 const void *new_)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    bool swapped = false;
    sm_read *read = load_read(m);
    sm_entry *e = map_find(m, read->m, key);
    if (e != NULL) {
        swapped = entry_try_cas(m, e, old, new_);
    } else if (read->amended) {
        gm_mutex_lock(&m->mu);
        read = load_read(m);
        if ((e = map_find(m, read->m, key)) != NULL) {
            swapped = entry_try_cas(m, e, old, new_);
        } else if ((e = map_find(m, m->dirty, key)) != NULL) {
            swapped = entry_try_cas(m, e, old, new_);
            miss_locked(m);
        }
        gm_mutex_unlock(&m->mu);
    }
    gm_ebr_unpin(pin);
    return swapped;
}

bool gm_syncmap_compare_and_delete(gm_syncmap *m, const void *key, const void *old)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    bool deleted = false;
    sm_entry *e = find_entry(m, key, false);
    if (e != NULL) {
        void *p = at_load_acquire(&e->p_a);
        while (is_box(p) && values_equal(m, p, old)) {
            if (at_cas_acqrel(&e->p_a, &p, NULL)) {
                sm_retire_box(e, p);
                deleted = true;
                break;
            }
        }
    }
    gm_ebr_unpin(pin);
    return deleted;
}

void gm_syncmap_range(gm_syncmap *m, bool (*fn)(const void *key, const void *val, void *arg),
                      void *arg)
{
    gm_ebr_rec *pin = gm_ebr_pin();
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
    gm_ebr_unpin(pin);
}

void gm_syncmap_clear(gm_syncmap *m)
{
    gm_ebr_rec *pin = gm_ebr_pin();
    sm_read *read = load_read(m);
    if (gm_map_len(read->m) == 0 && !read->amended) {
        gm_ebr_unpin(pin);
        return;
    }
    gm_mutex_lock(&m->mu);
    read = load_read(m);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) sm_retire_entry(*(sm_entry **)v);
    gm_map_iter_init(&it, m->dirty);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
        if (map_find(m, read->m, k) != e) sm_retire_entry(e);
    }
    gm_map_free(m->dirty);     /* only ever read under mu */
    m->dirty = NULL;
    m->misses = 0;
    m->expunged_n = 0;
    at_store_release(&m->read_a, new_read(NULL, false));
    sm_retire_read(read);
    gm_mutex_unlock(&m->mu);
    gm_ebr_unpin(pin);
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
    size_t expunged = 0;
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, read->m);
    while (gm_map_iter_next(&it, &k, &v)) {
        sm_entry *e = *(sm_entry **)v;
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
