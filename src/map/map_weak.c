/* map_weak.c - weak-keyed GC maps (gm_map_new_weak): JavaScript's WeakMap,
 * Lua's weak-keyed tables, Scheme's weak hash tables.
 *
 * SEMANTICS.  Keys are GC pointers compared by address.  An entry lives
 * exactly while its key is reachable from outside the map's values (a value
 * that points back at its key, or at another entry's key, does not keep it);
 * once a cycle found the key unreachable the entry is gone: get and delete
 * miss it, iteration never returns it, and len no longer counts it.
 *
 * DESIGN: PER-ENTRY EPHEMERONS OVER AN ORDINARY GC TABLE, engine-neutral.
 * The header the user holds is a FRONT: a gm_map with only kt, vt, gc and
 * weak set; the public entry points of the map (map.c, map_iter.c,
 * map_check.c) hand it here (WEAK_FRONT).  Behind it, `inner` is a plain
 * GC map made by gm_map_new_gc:
 *     key   = the key's address as a 64-bit integer (no GC pointer: the
 *             table does not keep the key alive),
 *     value = a pointer to an ephemeron (gc/ephemeron.c) whose key is the
 *             key and whose value is a BOX: a GC object of the user's value
 *             type holding the value (gm_map_get returns the box).
 * The collector knows nothing of maps: the ephemeron gives the value its
 * lifetime, and the ephemeron fixpoint in the mark makes back pointers and
 * chains between entries right.  A dead key's ephemeron reads NULL from the
 * end of that cycle's mark; its entry stays in `inner` until the next
 * operation PURGES: when the ephemeron epoch (bumped by every mark
 * termination that cleared an ephemeron) differs from the one the map last
 * purged at, one pass over `inner` deletes every entry whose ephemeron is
 * dead (O(entries), once per such cycle per map).  Lookups also treat a dead
 * ephemeron as absent, so an entry never reappears even if the address is
 * reused for a new object before the purge (the purge always comes first).
 * So any engine that offers gm_map_new_gc with a 64-bit integer key and a
 * pointer value (get, put, delete, clear, iterate with deletion allowed
 * during iteration) runs weak maps unchanged: a second engine provides
 * nothing else.
 *
 * LOCKING.  A purge is a write hidden inside a read (len, get), so every
 * operation takes the front's mutex (uncontended: one atomic; contended: the
 * waiter waits inside gm_blocking_begin/end, so a collection never waits for
 * it).  Readers may thus run concurrently as with any map, and a writer is
 * serialised rather than reported.  Iteration locks per step; an iterator
 * may observe deletions made by purges between its steps (as Go allows).
 *
 * READS WHILE MARKING.  Skipping dead entries reads the ephemeron without
 * shading its key (gc_ephemeron_dead); only what is handed out (a value's
 * box, an iterated key) is shaded: a purge or a lookup must not keep every
 * key of the map alive for the cycle.
 */
#include "map/map_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "gc/gc_internal.h"

struct gm_wmap {
    gm_map *inner;                 /* the table (GC pointer) */
    void *zero;                    /* a zero value of vt, for get_or_zero (GC pointer) */
    const gm_type *kt, *vt;
    uint64_t epoch;                /* ephemeron epoch of the last purge (under mu) */
    pthread_mutex_t mu;
};

static uint64_t addr_hash(const void *v, uint64_t seed) { return gm_hash_bytes(v, sizeof(uint64_t), seed); }
static bool addr_equal(const void *a, const void *b) { return memcmp(a, b, sizeof(uint64_t)) == 0; }
static const gm_type addr_type = { sizeof(uint64_t), _Alignof(uint64_t), addr_hash, addr_equal, NULL, 0,
                                   "weak map key (an address)" };
static const uint8_t ptr_mask[] = { 1 };
static const gm_type eph_ptr_type = { sizeof(void *), _Alignof(void *), NULL, NULL, ptr_mask, 0,
                                      "*gm_ephemeron" };

static struct gm_wmap *front(const gm_map *m) { return m->weak; }

static void wlock(struct gm_wmap *w)
{
    if (pthread_mutex_trylock(&w->mu) == 0) return;
    gm_blocking_begin();
    pthread_mutex_lock(&w->mu);
    gm_blocking_end();
}

static void wunlock(struct gm_wmap *w) { pthread_mutex_unlock(&w->mu); }

static uint64_t key_bits(const void *key)
{
    uint64_t k;
    memcpy(&k, key, sizeof k);
    return k;
}

static gm_ephemeron *slot_eph(const void *slot)
{
    gm_ephemeron *e;
    memcpy(&e, slot, sizeof e);
    return e;
}

/* Deletes the entries of dead keys if a cycle cleared ephemerons since the
 * last purge (mu held). */
static void purge(struct gm_wmap *w)
{
    uint64_t ep = gc_ephemeron_epoch();
    if (ep == w->epoch) return;
    w->epoch = ep;
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, w->inner);
    while (gm_map_iter_next_raw(&it, &k, &v)) {
        if (!gc_ephemeron_dead(slot_eph(v))) continue;
        uint64_t kk = key_bits(k);
        gm_map_delete(w->inner, &kk);
    }
}

/* The box of a live entry, or NULL (mu held). */
static void *find(struct gm_wmap *w, const void *key)
{
    uint64_t k = key_bits(key);
    void *slot = gm_map_get(w->inner, &k);
    if (slot == NULL) return NULL;
    gm_ephemeron *e = slot_eph(slot);
    if (gc_ephemeron_dead(e)) return NULL;
    return gm_ephemeron_value(e);
}

/* Copies a value into a box with the barrier its type needs: a traced
 * type's pointers are shaded through its trace function. */
static void barrier_visit(void *p, void *ctx)
{
    (void)ctx;
    gm_barrier(p, NULL);
}

static void box_write(const gm_type *vt, void *box, const void *val)
{
    if (vt->size == 0) return;
    if (vt->trace) {
        if (atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)) {
            vt->trace(box, barrier_visit, NULL);
            if (val) vt->trace(val, barrier_visit, NULL);
        }
        if (val) memmove(box, val, vt->size);
        else memset(box, 0, vt->size);
        return;
    }
    if (val) gm_typed_memmove(vt, box, val);
    else gm_typed_memclr(vt, box);
}

/* The box for key, made (zeroed) if absent (mu held). */
static void *find_or_add(struct gm_wmap *w, const void *key)
{
    void *box = find(w, key);
    if (box) return box;
    void *k;
    memcpy(&k, key, sizeof k);
    if (gm_base(k) == NULL)
        gm_fatalf("gm_map_new_weak: key %p is not a pointer into a GC object", k);
    box = gm_new(w->vt);
    gm_ephemeron *e = gm_ephemeron_new(k, box);
    uint64_t kb = key_bits(key);
    gm_map_put(w->inner, &kb, &e);
    return box;
}

gm_map *gm_map_new_weak(const gm_type *key, const gm_type *val, size_t hint)
{
    const char *why = key == NULL ? "type is NULL"
                      : key->size != sizeof(void *) ? "a weak map's key is a GC pointer (pointer-sized)"
                                                    : NULL;
    if (why || (why = gm_type_validate(val, false)) != NULL) {
        gm_errorf("gm_map_new_weak: %s type: %s", why && key && key->size != sizeof(void *) ? "key" : "value",
                  why);
        errno = EINVAL;
        return NULL;
    }
    /* the table is a classic map whatever the default engine: weak_back,
     * which iterators use to find the front, is a field of its header */
    gm_map *inner = gm_map_new_opts(&addr_type, &eph_ptr_type, &(gm_map_opts){ GM_MAP_CLASSIC, true, hint });
    if (inner == NULL) return NULL;
    struct gm_wmap *w = gm_alloc_conservative(sizeof *w);
    gm_map *m = gm_alloc_conservative(sizeof *m);
    pthread_mutex_init(&w->mu, NULL);
    w->kt = key;
    w->vt = val;
    w->epoch = gc_ephemeron_epoch();
    gm_store(&w->inner, inner);
    gm_store(&w->zero, gm_new(val));
    gm_store(&inner->weak_back, w);
    m->gc = true;
    m->kt = key;
    m->vt = val;
    gm_store(&m->weak, w);
    return m;
}

size_t gm_wmap_len(const gm_map *m)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    size_t n = gm_map_len(w->inner);
    wunlock(w);
    return n;
}

void *gm_wmap_get(const gm_map *m, const void *key)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    void *box = find(w, key);
    wunlock(w);
    return box;
}

const void *gm_wmap_get_or_zero(const gm_map *m, const void *key)
{
    void *box = gm_wmap_get(m, key);
    return box ? box : front(m)->zero;
}

void *gm_wmap_assign(gm_map *m, const void *key)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    void *box = find_or_add(w, key);
    wunlock(w);
    return box;
}

void gm_wmap_put(gm_map *m, const void *key, const void *val)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    void *box = find_or_add(w, key);
    box_write(w->vt, box, val);
    wunlock(w);
}

bool gm_wmap_delete(gm_map *m, const void *key)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    bool live = find(w, key) != NULL;
    uint64_t k = key_bits(key);
    gm_map_delete(w->inner, &k);
    wunlock(w);
    return live;
}

void gm_wmap_clear(gm_map *m)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    gm_map_clear(w->inner);
    wunlock(w);
}

gm_map *gm_wmap_clone(const gm_map *m)
{
    struct gm_wmap *w = front(m);
    gm_map *c = gm_map_new_weak(w->kt, w->vt, gm_wmap_len(m));
    if (c == NULL) return NULL;
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, (gm_map *)m);
    while (gm_map_iter_next(&it, &k, &v)) gm_wmap_put(c, k, v);
    return c;
}

void gm_wmap_iter_init(gm_map_iter *it, gm_map *m)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    gm_map_iter_init(it, w->inner);
    wunlock(w);
}

bool gm_wmap_iter_next(gm_map_iter *it, const void **keyp, void **valp)
{
    struct gm_wmap *w = it->m->weak_back;
    wlock(w);
    const void *k;
    void *v;
    bool found = false;
    while (gm_map_iter_next_raw(it, &k, &v)) {
        gm_ephemeron *e = slot_eph(v);
        if (gc_ephemeron_dead(e)) continue;
        (void)gm_ephemeron_key(e);          /* handed out: shaded while marking */
        if (keyp) *keyp = k;
        if (valp) *valp = gm_ephemeron_value(e);
        found = true;
        break;
    }
    wunlock(w);
    return found;
}

const char *gm_wmap_check(const gm_map *m)
{
    struct gm_wmap *w = front(m);
    static _Thread_local char msg[160];
    wlock(w);
    const char *why = gm_map_check(w->inner);
    gm_map_iter it;
    const void *k;
    void *v;
    if (why == NULL) {
        gm_map_iter_init(&it, w->inner);
        while (gm_map_iter_next_raw(&it, &k, &v)) {
            gm_ephemeron *e = slot_eph(v);
            if (e == NULL) {
                why = "weak map: an entry without its ephemeron";
            } else if (!gc_ephemeron_dead(e) && (uint64_t)(uintptr_t)gm_ephemeron_key(e) != key_bits(k)) {
                snprintf(msg, sizeof msg, "weak map: entry %#llx holds the ephemeron of key %p",
                         (unsigned long long)key_bits(k), gm_ephemeron_key(e));
                why = msg;
            }
            if (why) {
                gm_map_iter_done(&it);
                break;
            }
        }
    }
    wunlock(w);
    return why;
}

void gm_wmap_stats(const gm_map *m, gm_map_stats *out)
{
    struct gm_wmap *w = front(m);
    wlock(w);
    purge(w);
    gm_map_stats_get(w->inner, out);
    wunlock(w);
}
