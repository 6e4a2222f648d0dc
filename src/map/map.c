/* map.c - Go's classic hash map (Go 1.19-1.23 runtime/map.go), in C.
 *
 * LAYOUT.  A map is an array of 2^B buckets.  A bucket holds 8 entries:
 *
 *     tophash[8] | key[8] | elem[8] | overflow pointer
 *
 * Keys are grouped and values grouped, so a uint8 key next to a uint64 value
 * wastes no padding.  Keys or values above 128 bytes live in their own
 * allocation and the slot holds a pointer to it ("indirect").  When a bucket
 * is full, further entries go to an overflow bucket chained behind it.
 * tophash[i] is the top byte of the entry's hash, or one of the small state
 * values (EMPTY_REST, EMPTY_ONE, EVAC_X, EVAC_Y, EVAC_EMPTY, all below
 * MIN_TOPHASH = 5, so a real hash byte below 5 is stored plus 5).  The low
 * B bits of the hash choose the bucket; the tophash byte lets a lookup skip
 * seven of eight slots without touching their keys.
 *
 * LOAD FACTOR 6.5.  When inserting a new key would make count exceed 6.5 per
 * bucket (and 8 in all), the map doubles.  Go measured, for 8-byte keys and
 * values: 20.9% of buckets overflow, 10.79 bytes of overhead per entry, 4.25
 * slots probed per hit and 6.50 per miss; 6.5 balances those.  When deletes
 * have left many overflow buckets (noverflow >= 2^min(B,15)) the map instead
 * grows to the same size, which repacks the chains.
 *
 * INCREMENTAL GROWTH.  Growing allocates the new array and keeps the old one
 * in oldbuckets.  No entry moves then.  Every later insert or delete first
 * evacuates the old bucket its key maps to, then one more (the lowest not yet
 * evacuated, nevacuate): at most two old buckets per write.  Old bucket i
 * splits into new buckets i ("X") and i + 2^oldB ("Y") by hash bit 2^oldB.
 * An evacuated old slot keeps its key and value (an iterator may still read
 * them) with tophash EVAC_X or EVAC_Y.  Lookups during growth look in the old
 * bucket while it is not evacuated.  When every old bucket is evacuated the
 * old array is retired (map_mem.c says when its memory goes back).  A big
 * table's new array is populated beforehand by a helper thread, off the
 * insert path (map_mem.c, PREPARED ARRAYS; gm_map_hash_grow).
 *
 * DELETION.  A deleted slot becomes EMPTY_ONE.  m[k]++ after a delete
 * starts from 0 (Go issue 25936): Go zeroes the value at delete, gomap when
 * the slot is filled again, so a delete touches neither the value's cache
 * line nor, except on GC maps whose buckets hold pointers (cleared with
 * barriers at delete), the key's.  If nothing
 * live follows it in the chain, the trailing run of EMPTY_ONE slots becomes
 * EMPTY_REST, so lookups and inserts stop at the first EMPTY_REST.  When the
 * map becomes empty its hash seed is drawn anew (Go issue 25237).
 *
 * INVARIANTS (checked by gm_map_check, map_check.c):
 *  1. In a chain, every slot after an EMPTY_REST slot is EMPTY_REST, and an
 *     EMPTY_ONE slot is never the last non-EMPTY_REST-free slot: it is always
 *     followed by a live slot somewhere later in the chain.
 *  2. count equals the live slots of the current array plus those of old
 *     buckets not yet evacuated.
 *  3. A live key sits in the bucket its hash selects (NaN keys excepted: their
 *     hash is random), and lookup of it finds that very slot.
 *  4. While growing, old buckets below nevacuate are evacuated, and the new
 *     buckets an unevacuated old bucket feeds are still empty.
 *
 * CONCURRENCY.  Like Go's map, no locking: any number of readers, or one
 * writer.  F_WRITING is toggled around every write; a read or write that
 * sees it set is a detected race and is fatal with Go's message.  The flag
 * word is read and written with relaxed atomics (single instructions), so
 * the detection is best effort, as in Go.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/trace_internal.h"
#include "map/map_impl.h"

static const uint8_t zero_buf[ZERO_BUF_SIZE];
static void limits_update(gm_map *m);

static size_t round_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static void layout(gm_map *m)
{
    size_t ks = m->kt->size, ka = m->kt->align;
    size_t es = m->vt->size, ea = m->vt->align;
    if (ks > MAX_INLINE_KEY) {
        m->indirectkey = true;
        ks = sizeof(void *);
        ka = _Alignof(void *);
    }
    if (es > MAX_INLINE_ELEM) {
        m->indirectelem = true;
        es = sizeof(void *);
        ea = _Alignof(void *);
    }
    size_t align = max_sz(max_sz(ka, ea), _Alignof(void *));
    m->keysize = (uint32_t)ks;
    m->elemsize = (uint32_t)es;
    m->keyoff = (uint32_t)round_up(BUCKET_CNT, ka);
    m->elemoff = (uint32_t)round_up(m->keyoff + BUCKET_CNT * ks, ea);
    m->ovfoff = (uint32_t)round_up(m->elemoff + BUCKET_CNT * es, _Alignof(void *));
    m->bucketsize = (uint32_t)round_up(m->ovfoff + sizeof(void *), align);
    m->balign = (uint32_t)align;
    m->hdrsize = (uint32_t)round_up(max_sz(max_sz(sizeof(gm_barray), sizeof(gm_ovf_block)), 64), align);
    m->reflexive = !(m->kt->flags & GM_TYPE_IRREFLEXIVE);
    m->keyupdate = (m->kt->flags & GM_TYPE_KEY_UPDATE) != 0;
    m->ownedkey = (m->kt->flags & GM_TYPE_OWNED_STR) != 0;
    m->owns_storage = m->indirectkey || m->indirectelem || m->ownedkey;
}

/* The bucket type of a GC map whose keys or values hold pointers: its mask
 * marks every pointer word of the 8 keys, the 8 values and the overflow
 * pointer.  Interned per (key, value) pair and never freed, like Go's types:
 * a bucket array may outlive its map header. */
struct btype_rec {
    struct btype_rec *next;
    const gm_type *kt, *vt;
    gm_type t;
    uint8_t mask[];
};
static struct btype_rec *btypes;
static pthread_mutex_t btypes_mu = PTHREAD_MUTEX_INITIALIZER;

static bool type_has_pointers(const gm_type *t)
{
    if (t->ptrmask == NULL) return false;
    for (size_t w = 0; w < t->size / sizeof(void *); w++)
        if (t->ptrmask[w / 8] & (1u << (w % 8))) return true;
    return false;
}

static void mask_slots(uint8_t *mask, size_t off, size_t slotsize, const gm_type *t, bool indirect)
{
    for (unsigned i = 0; i < BUCKET_CNT; i++) {
        size_t base = (off + i * slotsize) / sizeof(void *);
        if (indirect) {
            mask[base / 8] |= (uint8_t)(1u << (base % 8));
            continue;
        }
        for (size_t w = 0; w < t->size / sizeof(void *); w++)
            if (t->ptrmask && (t->ptrmask[w / 8] & (1u << (w % 8))))
                mask[(base + w) / 8] |= (uint8_t)(1u << ((base + w) % 8));
    }
}

bool gm_map_gc_layout(gm_map *m)
{
    bool kp = m->indirectkey || type_has_pointers(m->kt);
    bool vp = m->indirectelem || type_has_pointers(m->vt);
    m->bscan = kp || vp;
    if (!m->bscan) return true;
    pthread_mutex_lock(&btypes_mu);
    struct btype_rec *r;
    for (r = btypes; r; r = r->next)
        if (r->kt == m->kt && r->vt == m->vt) break;
    if (r == NULL) {
        size_t words = m->bucketsize / sizeof(void *);
        r = calloc(1, sizeof *r + (words + 7) / 8);
        if (r == NULL) {
            pthread_mutex_unlock(&btypes_mu);
            return false;
        }
        r->kt = m->kt;
        r->vt = m->vt;
        mask_slots(r->mask, m->keyoff, m->keysize, m->kt, m->indirectkey);
        mask_slots(r->mask, m->elemoff, m->elemsize, m->vt, m->indirectelem);
        size_t ow = m->ovfoff / sizeof(void *);
        r->mask[ow / 8] |= (uint8_t)(1u << (ow % 8));
        r->t = (gm_type){ m->bucketsize, m->balign, NULL, NULL, r->mask, 0, "map.bucket" };
        r->next = btypes;
        btypes = r;
    }
    pthread_mutex_unlock(&btypes_mu);
    m->btype = &r->t;
    return true;
}

/* The checks both engines' constructors make on the key and value types
 * (map_engine.h): a clear message and EINVAL, or true. */
bool gm_map_types_ok(const char *fn, const gm_type *key, const gm_type *val, bool gc)
{
    const char *why = gm_type_validate(key, true);
    if (why) {
        gm_errorf("%s: key type %s: %s", fn, key && key->name ? key->name : "?", why);
        errno = EINVAL;
        return false;
    }
    if ((why = gm_type_validate(val, false)) != NULL) {
        gm_errorf("%s: value type %s: %s", fn, val && val->name ? val->name : "?", why);
        errno = EINVAL;
        return false;
    }
    if (gc && (key->trace || val->trace)) {   /* slots are scanned by a ptrmask */
        gm_errorf("%s: %s type %s has a trace function: store a pointer to a GC object of it "
                  "instead", fn, key->trace ? "key" : "value",
                  (key->trace ? key : val)->name ? (key->trace ? key : val)->name : "?");
        errno = EINVAL;
        return false;
    }
    return true;
}

static gm_map *map_make(const gm_type *key, const gm_type *val, size_t hint, bool gc)
{
    const char *fn = gc ? "gm_map_new_gc" : "gm_map_new";
    if (!gm_map_types_ok(fn, key, val, gc)) return NULL;
    gm_map *m = gc ? gm_alloc_conservative(sizeof *m) : gm_map_malloc(sizeof *m, _Alignof(gm_map));
    if (m == NULL) goto oom;
    if (!gc) memset(m, 0, sizeof *m);
    m->gc = gc;
    m->kt = key;
    m->vt = val;
    m->kind = key == &gm_type_u64 ? KK_U64 : key == &gm_type_u32 ? KK_U32
            : (key == &gm_type_str || key == &gm_type_str_owned) ? KK_STR : KK_GENERIC;
    m->hasher = key->hash;
    m->keyeq = key->equal;
    layout(m);
    if (gc && !gm_map_gc_layout(m)) goto oom;
    m->seed = gm_map_seed();
    if (val->size > ZERO_BUF_SIZE) {
        uint8_t *z = gc ? gm_alloc_noscan(val->size) : gm_map_malloc(val->size, val->align);
        if (z == NULL) goto oom;
        memset(z, 0, val->size);
        hdr_store(m, &m->zero, z);
    }
    /* A hint whose buckets could not even be addressed is ignored, as Go's
     * makemap ignores it: the map starts small and grows. */
    if (hint > ((size_t)1 << 40) / m->bucketsize) hint = 0;
    while (over_load_factor(hint, m->B)) m->B++;
    m->min_B = m->B;
    if (m->B != 0) {
        gm_barray *h;
        uint8_t *b = gm_arr_new(m, m->B, &h);
        if (b == NULL) {
            gm_errorf("%s: cannot allocate %zu buckets for hint %zu", fn, (size_t)1 << m->B, hint);
            goto oom;
        }
        gm_arr_install(m, b, h, false);
    }
    limits_update(m);
    return m;
oom:
    if (m && !gc) gm_map_mfree(m->zero);
    if (!gc) gm_map_mfree(m);
    errno = ENOMEM;
    return NULL;
}

gm_map *gm_classic_new(const gm_type *key, const gm_type *val, size_t hint, bool gc)
{
    return map_make(key, val, hint, gc);
}

gm_map *gm_map_new(const gm_type *key, const gm_type *val, size_t hint)
{
    if (gm_map_default_engine() == GM_MAP_SWISS) return gm_sw_new(key, val, hint, false);
    return map_make(key, val, hint, false);
}

gm_map *gm_map_new_gc(const gm_type *key, const gm_type *val, size_t hint)
{
    if (gm_map_default_engine() == GM_MAP_SWISS) return gm_sw_new(key, val, hint, true);
    return map_make(key, val, hint, true);
}

/* The first array of a map made without a size hint. */
bool gm_map_first_array(gm_map *m)
{
    gm_barray *h;
    uint8_t *b = gm_arr_new(m, m->B, &h);
    if (b == NULL) return false;
    gm_arr_install(m, b, h, false);
    limits_update(m);
    return true;
}

size_t gm_map_len(const gm_map *m)
{
    if (gm_map_is_swiss(m)) return m->count;
    if (WEAK_FRONT(m)) return gm_wmap_len(m);
    return m ? m->count : 0;
}
const gm_type *gm_map_key_type(const gm_map *m)
{ return gm_map_is_swiss(m) ? gm_sw_key_type(m) : m ? m->kt : NULL; }
const gm_type *gm_map_val_type(const gm_map *m)
{ return gm_map_is_swiss(m) ? gm_sw_val_type(m) : m ? m->vt : NULL; }

void gm_map_begin_write(gm_map *m)
{
    uint8_t f = flags_load(m);
    if (f & F_WRITING) gm_fatal("concurrent map writes");
    flags_store(m, f ^ F_WRITING);
}

/* Shrink policy (beyond Go, Go issue 20135).  A table of more than
 * 2^SHRINK_MIN_B buckets is sparse while it holds fewer than a quarter entry
 * per bucket (1/32 of its slots).  It halves once it has stayed sparse and
 * steady -- its count within 3/4..4/3 of where the streak began -- for an
 * eighth of a bucket-count of writes in a row.  A map being emptied or
 * filled keeps moving out of that band, so its streak keeps starting over:
 * "delete everything, then fill up again" never shrinks and pays nothing for
 * the feature; a map that stays small while it is used does.  After a halving
 * the load is at most 0.5 per bucket, far below the 6.5 that grows it again:
 * no sequence of inserts and deletes makes it grow and shrink alternately.
 * A map never shrinks below the size its creation hint asked for, nor while
 * empty. */
static void shrink_policy(gm_map *m)
{
    if (GM_LIKELY(m->count >= m->sparse_below)) {
        if (m->sparse_writes) m->sparse_writes = 0;
        return;
    }
    if (m->count == 0) {
        m->sparse_writes = 0;
        return;
    }
    if (m->sparse_writes == 0 || m->count * 4 < m->sparse_base * 3 || m->count * 3 > m->sparse_base * 4) {
        m->sparse_base = m->count; /* a new streak: just sparse, or still draining or filling */
        m->sparse_writes = 1;
        return;
    }
    if (++m->sparse_writes >= ((size_t)1 << m->B) / 8) gm_map_shrink_start(m);
}

/* The thresholds every write compares against, kept current wherever B or
 * the resize state changes (make, first array, resize start and end, clear):
 * m->sparse_below, the shrink policy's: a quarter entry per bucket while the
 * table may shrink (not resizing, above 2^SHRINK_MIN_B buckets and above
 * the hinted size), else 0; m->grow_at and m->ovf_limit, should_grow's
 * (over_load_factor and Go's tooManyOverflowBuckets), out of reach while a
 * resize is under way. */
static void limits_update(gm_map *m)
{
    bool resizing = growing(m);
    bool can = m->buckets && !resizing && m->B > SHRINK_MIN_B && m->B > m->min_B;
    m->sparse_below = can ? ((size_t)1 << m->B) / 4 : 0;
    size_t at = LOAD_NUM * (((size_t)1 << m->B) / LOAD_DEN);
    if (at < BUCKET_CNT) at = BUCKET_CNT;
    m->grow_load = resizing || m->B >= 58 ? SIZE_MAX : at;
    m->grow_at = m->grow_load;
    /* A next array of HUGE_THRESHOLD or more takes the helper long (huge
     * pages: 1-5 ms each on the VM measured): it is asked for at 3/4 of
     * the way (gm_map_hash_grow tells the two thresholds apart). */
    if (!resizing && m->prep == NULL && m->grow_load != SIZE_MAX && gm_prep_early(m))
        m->grow_at = at / PREP_AT_DEN * PREP_AT_NUM;
    m->ovf_limit = resizing ? UINT32_MAX : (uint32_t)1 << (m->B < 15 ? m->B : 15);
}

void gm_map_end_write(gm_map *m)
{
    shrink_policy(m);
    if (GM_UNLIKELY(m->retired || m->release || m->deferred)) gm_mem_maintain(m);
    uint8_t f = flags_load(m);
    if (!(f & F_WRITING)) gm_fatal("concurrent map writes");
    flags_store(m, f & (uint8_t)~F_WRITING);
}

/* ---------------------------------------------------------------- lookup */

uint8_t *gm_map_access_k(gm_map *m, const void *key, uint8_t **elem)
{
    return access_impl(m, KK_GENERIC, key, elem);
}

void *gm_map_get(const gm_map *m, const void *key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_get(m, key);
    if (WEAK_FRONT(m)) return gm_wmap_get(m, key);
    uint8_t *e;
    return gm_map_access_k((gm_map *)m, key, &e) ? e : NULL;
}

const void *gm_map_get_or_zero(const gm_map *m, const void *key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_get_or_zero(m, key);
    if (WEAK_FRONT(m)) return gm_wmap_get_or_zero(m, key);
    void *e = gm_map_get(m, key);
    if (e) return e;
    return m && m->zero ? m->zero : zero_buf;
}

/* ---------------------------------------------------------------- growth */

/* Go's incrnoverflow: exact below B=16, then counts each new overflow
 * bucket with probability 2^-(B-15), so the same-size-grow trigger stays at
 * roughly "as many overflow buckets as buckets". */
static void incr_noverflow(gm_map *m)
{
    if (m->B < 16) {
        m->noverflow++;
        return;
    }
    uint64_t mask = ((uint64_t)1 << (m->B - 15)) - 1;
    if ((gm_map_rand() & mask) == 0) m->noverflow++;
}

/* Appends an overflow bucket (of the current array) after b. */
static uint8_t *new_overflow(gm_map *m, uint8_t *b)
{
    uint8_t *o = gm_ovf_new(m, m->buckets);
    if (o == NULL) return NULL;
    incr_noverflow(m);
    b_set_ovf(m, b, o);
    return o;
}

/* The trace name of the resize in progress (begin and end must match). */
static const char *resize_name(const gm_map *m)
{
    uint8_t f = flags_load(m);
    return (f & F_SHRINK) ? "map shrink" : (f & F_SAME_SIZE) ? "map same-size grow" : "map grow";
}

/* Makes (nb, hdr), of 2^newB buckets, the current array and the current one
 * the old array: the start of every grow and shrink.  `kind` is F_SAME_SIZE,
 * F_SHRINK or 0 (doubling).  An iterator on the current array now reads an
 * old one (F_ITERATOR becomes F_OLD_ITERATOR). */
static void begin_resize(gm_map *m, uint8_t *nb, gm_barray *hdr, unsigned newB, uint8_t kind)
{
    uint8_t f = flags_load(m);
    uint8_t nf = f & (uint8_t)~(F_ITERATOR | F_OLD_ITERATOR);
    if (f & F_ITERATOR) nf |= F_OLD_ITERATOR;
    flags_store(m, nf | kind);
    gm_arr_install(m, nb, hdr, true);
    m->B = (uint8_t)newB;
    m->nevacuate = 0;
    m->noverflow = 0;
    m->sparse_writes = 0;
    limits_update(m);
    if (GM_UNLIKELY(gm_tracing_on()))
        gm_trace_async_begin("map", resize_name(m), (uint64_t)(uintptr_t)m, "buckets", (int64_t)1 << m->B);
}

/* Called when should_grow: the load factor or the overflow count calls for
 * a grow.  A big table's doubling (next array PREP_MIN_BYTES or more) asks
 * the helper for the array and waits until it is populated -- the table
 * just runs fuller meanwhile, checking again every PREP_RECHECK inserts.
 * After a quarter more entries it asks the helper to hand the array over
 * as it is (its unpopulated rest turned to 4 KiB pages); only if even that
 * has not happened after half more entries (a helper that gets no CPU) it
 * gives up on it and maps a fresh array that inserts fault in 4 KiB at a
 * time.  Preparing once the load
 * factor is reached costs no memory before the grow would have; only a
 * next array of HUGE_THRESHOLD or more is asked for earlier, at 3/4 of the
 * way (limits_update), because the helper needs longer for it.  True
 * if a resize started; false leaves the insert to the current array. */
bool gm_map_hash_grow(gm_map *m)
{
    bool same = !over_load_factor(m->count + 1, m->B);
    if (same && m->noverflow < m->ovf_limit) {
        /* not a grow yet: the early preparation point of a big table */
        (void)gm_arr_prepare(m, m->B + 1u);
        m->grow_at = m->grow_load;
        return false;
    }
    unsigned newB = m->B + (same ? 0 : 1);
    gm_barray *hdr;
    uint8_t *nb;
    int r = -1;
    if (!same) {
        size_t wait_until = m->grow_load + m->grow_load / PREP_WAIT_DEN * PREP_WAIT_NUM;
        size_t give_up = m->grow_load + m->grow_load / PREP_GIVEUP_DEN * PREP_GIVEUP_NUM;
        if (m->prep == NULL && m->count < wait_until && gm_prep_wanted(m)) (void)gm_arr_prepare(m, newB);
        r = gm_arr_prepared(m, newB, &nb, &hdr);
        if (r == 0) {
            if (m->count < give_up) {
                if (m->count >= wait_until) gm_prep_hurry(m);
                m->grow_at = m->count + PREP_RECHECK;
                return false;
            }
            gm_prep_cancel(m);
            r = -1;
        }
    }
    if (r < 0 && (nb = gm_arr_new(m, newB, &hdr)) == NULL) return false;
    begin_resize(m, nb, hdr, newB, same ? F_SAME_SIZE : 0);
    if (same) m->n_same_grows++;
    else m->n_grows++;
    return true;
}

/* Starts halving the table (see shrink_policy).  The old, larger array is
 * evacuated by later writes exactly as for growth: old buckets j and
 * j + 2^B both drain into new bucket j.  Without memory for the smaller
 * array nothing happens; a later streak of writes tries again. */
void gm_map_shrink_start(gm_map *m)
{
    gm_barray *hdr;
    gm_prep_cancel(m); /* the doubled array will not be wanted soon */
    uint8_t *nb = gm_arr_new(m, m->B - 1u, &hdr);
    m->sparse_writes = 0;
    if (nb == NULL) return;
    begin_resize(m, nb, hdr, m->B - 1u, F_SHRINK);
    m->n_shrinks++;
}


/* The last old bucket is evacuated (or nothing live is left in them). */
static void finish_resize(gm_map *m)
{
    if (GM_UNLIKELY(gm_tracing_on())) gm_trace_async_end("map", resize_name(m), (uint64_t)(uintptr_t)m);
    m->nevacuate = noldbuckets(m);
    uint8_t *old = m->oldbuckets;
    hdr_store(m, &m->oldbuckets, NULL);
    flags_store(m, flags_load(m) & (uint8_t)~(F_SAME_SIZE | F_SHRINK));
    gm_arr_retire(m, old);
    limits_update(m);
}

static void advance_evacuation_mark(gm_map *m, size_t newbit)
{
    m->nevacuate++;
    /* Skip buckets already evacuated out of order, but look at no more
     * than EVAC_SCAN_MAX of them in one write. */
    size_t stop = m->nevacuate + EVAC_SCAN_MAX;
    if (stop > newbit) stop = newbit;
    while (m->nevacuate != stop && evacuated(bucket_at(m, m->oldbuckets, m->nevacuate)))
        m->nevacuate++;
    if (GM_UNLIKELY(gm_tracing_on()) && (m->nevacuate % 1024 == 0 || m->nevacuate == newbit))
        gm_trace_counter("map", "old buckets evacuated (%)", (int64_t)(100 * m->nevacuate / newbit));
    if (m->nevacuate == newbit) finish_resize(m);
}

struct evac_dst { uint8_t *b; unsigned i; };

/* GC maps: unless an iterator may still read an evacuated old bucket, drop
 * its pointers and its overflow chain so the collector can free what only
 * they held (Go does the same). */
static void evacuated_cleanup(gm_map *m, size_t oldbucket)
{
    if (!m->bscan || (flags_load(m) & F_OLD_ITERATOR)) return;
    uint8_t *ob = bucket_at(m, m->oldbuckets, oldbucket);
    for (unsigned i = 0; i < BUCKET_CNT; i++) {
        mw_clear_key(m, b_key(m, ob, i));
        mw_clear_elem(m, b_elem(m, ob, i));
    }
    b_set_ovf(m, ob, NULL);
}

/* evacuate's loop for the common maps: keys and values inline, no
 * pointers to barrier, every key equal to itself (so its hash decides X or
 * Y; newbit 0 for a same-size grow).  Slots are addressed by running
 * offsets and the X/Y choice is an index, not a branch. */
static void evacuate_plain(gm_map *m, uint8_t *b, struct evac_dst d[2], size_t newbit)
{
    const size_t ko = m->keyoff, eo = m->elemoff, ks = m->keysize, es = m->elemsize;
    uint64_t moved = 0;
    for (; b; b = b_ovf(m, b)) {
        for (unsigned i = 0; i < BUCKET_CNT; i++) {
            uint8_t top = b[i];
            if (is_empty(top)) {
                b[i] = EVAC_EMPTY;
                continue;
            }
            if (top < MIN_TOPHASH) gm_fatal("bad map state");
            const uint8_t *k = b + ko + i * ks;
            unsigned use_y = (map_hash(m, k) & newbit) != 0;
            b[i] = (uint8_t)(EVAC_X + use_y);
            struct evac_dst *dd = &d[use_y];
            if (dd->i == BUCKET_CNT) {
                dd->b = new_overflow(m, dd->b); /* reserved: cannot fail */
                dd->i = 0;
            }
            dd->b[dd->i] = top;
            slot_copy(dd->b + ko + dd->i * ks, k, ks);
            slot_copy(dd->b + eo + dd->i * es, b + eo + i * es, es);
            dd->i++;
            moved++;
        }
    }
    m->n_moved += moved;
}

/* Moves every entry of old bucket `oldbucket` (and its chain) to the new
 * array.  False only if overflow buckets for the worst case could not be
 * reserved, in which case nothing was changed. */
static bool evacuate_shrink(gm_map *m, size_t oldbucket);

static bool evacuate(gm_map *m, size_t oldbucket)
{
    if (shrinking(m)) return evacuate_shrink(m, oldbucket);
    uint8_t *b = bucket_at(m, m->oldbuckets, oldbucket);
    size_t newbit = noldbuckets(m);
    bool same = same_size_grow(m);
    if (!evacuated(b)) {
        size_t chain = 0;
        for (uint8_t *c = b_ovf(m, b); c; c = b_ovf(m, c)) chain++;
        if (chain && !gm_ovf_reserve(m, m->buckets, same ? chain : 2 * chain))
            return false;
        struct evac_dst d[2];
        d[0].b = bucket_at(m, m->buckets, oldbucket);
        d[0].i = 0;
        d[1].b = same ? NULL : bucket_at(m, m->buckets, oldbucket + newbit);
        d[1].i = 0;
        if (!m->bscan && !m->indirectkey && !m->indirectelem && m->reflexive) {
            evacuate_plain(m, b, d, same ? 0 : newbit);
            b = NULL;
        }
        for (; b; b = b_ovf(m, b)) {
            for (unsigned i = 0; i < BUCKET_CNT; i++) {
                uint8_t top = b[i];
                if (is_empty(top)) {
                    b[i] = EVAC_EMPTY;
                    continue;
                }
                if (top < MIN_TOPHASH) gm_fatal("bad map state");
                unsigned use_y = 0;
                if (!same) {
                    uint8_t *k = key_of(m, b, i);
                    uint64_t h = map_hash(m, k);
                    if (!m->reflexive && !m->keyeq(k, k)) {
                        /* NaN: its hash is random, so let its stored tophash
                         * decide, the same way iterators will, and draw a
                         * fresh tophash so the next grow splits it anew. */
                        use_y = top & 1;
                        top = tophash(h);
                    } else if (h & newbit) {
                        use_y = 1;
                    }
                }
                b[i] = (uint8_t)(EVAC_X + use_y);
                struct evac_dst *dd = &d[use_y];
                if (dd->i == BUCKET_CNT) {
                    dd->b = new_overflow(m, dd->b); /* reserved: cannot fail */
                    dd->i = 0;
                }
                dd->b[dd->i] = top;
                mw_key(m, b_key(m, dd->b, dd->i), b_key(m, b, i));
                mw_elem(m, b_elem(m, dd->b, dd->i), b_elem(m, b, i));
                dd->i++;
                m->n_moved++;
            }
        }
        m->n_evac_buckets++;
        evacuated_cleanup(m, oldbucket);
    }
    if (oldbucket == m->nevacuate) advance_evacuation_mark(m, newbit);
    return true;
}

/* Shrinking: old bucket j drains into new bucket j mod 2^B, appended after
 * whatever its sibling (j xor 2^B) already put there.  Nothing else can be
 * in that new bucket yet: every write to it evacuates both siblings first,
 * so the new chain is compact (no EMPTY_ONE) and its first EMPTY_REST is
 * where the appending starts.  A NaN key's tophash records which sibling it
 * came from (its low bit), for iterators; any tophash is as good as another
 * for a key that lookups can never find. */
static bool evacuate_shrink(gm_map *m, size_t oldbucket)
{
    uint8_t *b = bucket_at(m, m->oldbuckets, oldbucket);
    size_t nnew = (size_t)1 << m->B;
    if (!evacuated(b)) {
        size_t chain = 0;
        for (uint8_t *c = b_ovf(m, b); c; c = b_ovf(m, c)) chain++;
        if (!gm_ovf_reserve(m, m->buckets, chain + 1)) return false;
        struct evac_dst d;
        d.b = bucket_at(m, m->buckets, oldbucket & (nnew - 1));
        for (uint8_t *o; (o = b_ovf(m, d.b)) != NULL;) d.b = o;
        d.i = 0;
        while (d.i < BUCKET_CNT && d.b[d.i] != EMPTY_REST) d.i++;
        unsigned src = oldbucket >= nnew;
        for (; b; b = b_ovf(m, b)) {
            for (unsigned i = 0; i < BUCKET_CNT; i++) {
                uint8_t top = b[i];
                if (is_empty(top)) {
                    b[i] = EVAC_EMPTY;
                    continue;
                }
                if (top < MIN_TOPHASH) gm_fatal("bad map state");
                uint8_t *k = key_of(m, b, i);
                if (!m->reflexive && !m->keyeq(k, k)) {
                    top = (uint8_t)((top & ~1u) | src);
                    if (top < MIN_TOPHASH) top = (uint8_t)(top + 2);
                }
                b[i] = EVAC_X;
                if (d.i == BUCKET_CNT) {
                    d.b = new_overflow(m, d.b); /* reserved: cannot fail */
                    d.i = 0;
                }
                d.b[d.i] = top;
                mw_key(m, b_key(m, d.b, d.i), b_key(m, b, i));
                mw_elem(m, b_elem(m, d.b, d.i), b_elem(m, b, i));
                d.i++;
                m->n_moved++;
            }
        }
        m->n_evac_buckets++;
        evacuated_cleanup(m, oldbucket);
    }
    if (oldbucket == m->nevacuate) advance_evacuation_mark(m, noldbuckets(m));
    return true;
}

/* Evacuates the old bucket that `bucket` draws from, then one more.  False if
 * the first could not be done (out of memory); the map is unchanged then. */
bool gm_map_grow_work(gm_map *m, size_t bucket)
{
    if (shrinking(m)) {
        /* Both old buckets that drain into `bucket`, then up to
         * SHRINK_EVAC_PER_WRITE more: a sparse table's buckets are mostly
         * empty and cheap to drain, and the memory comes back sooner. */
        if (!evacuate(m, bucket)) return false;
        if (growing(m) && !evacuate(m, bucket + ((size_t)1 << m->B))) return false;
        for (int i = 0; i < SHRINK_EVAC_PER_WRITE && growing(m) && shrinking(m); i++)
            if (!evacuate(m, m->nevacuate)) break;
        return true;
    }
    if (!evacuate(m, bucket & oldbucket_mask(m))) return false;
    if (growing(m)) (void)evacuate(m, m->nevacuate);
    return true;
}

/* ---------------------------------------------------------------- assign */

/* Storage a new entry needs besides its slot, allocated before anything is
 * changed so that running out of memory leaves the map as it was. */
struct new_entry {
    void *kmem, *emem;
    char *sbytes;
};

static void new_entry_free(gm_map *m, struct new_entry *ne)
{
    if (!m->owns_storage) return;
    gm_own_free(m, ne->kmem, m->kt->align, false);
    gm_own_free(m, ne->emem, m->vt->align, false);
    gm_own_free(m, ne->sbytes, 1, false);
}

static bool new_entry_alloc(gm_map *m, const void *key, struct new_entry *ne)
{
    memset(ne, 0, sizeof *ne);
    if (!m->owns_storage) return true;
    if (m->indirectkey && !(ne->kmem = gm_own_alloc(m, m->kt->size, m->kt)))
        return false;
    if (m->indirectelem) {
        if (!(ne->emem = gm_own_alloc(m, m->vt->size, m->vt))) goto fail;
        memset(ne->emem, 0, m->vt->size);
    }
    if (m->ownedkey) {
        const gm_str *s = key;
        if (s->len && !(ne->sbytes = gm_own_alloc(m, s->len, NULL))) goto fail;
        if (s->len) memcpy(ne->sbytes, s->ptr, s->len);
    }
    return true;
fail:
    new_entry_free(m, ne);
    return false;
}

/* Writes a new entry into slot (b, i); returns its value slot. */
static void *store_entry(gm_map *m, uint8_t *b, unsigned i, uint8_t top,
                         const void *key, struct new_entry *ne)
{
    uint8_t *kslot = b_key(m, b, i), *eslot = b_elem(m, b, i);
    if (m->indirectkey) {
        if (m->bscan) gm_store(kslot, ne->kmem);
        else memcpy(kslot, &ne->kmem, sizeof(void *));
        kslot = ne->kmem;
    }
    if (m->indirectelem) {
        if (m->bscan) gm_store(eslot, ne->emem);
        else memcpy(eslot, &ne->emem, sizeof(void *));
        eslot = ne->emem;
    }
    gm_str owned;
    if (m->ownedkey) {
        owned = (gm_str){ ne->sbytes, ((const gm_str *)key)->len };
        key = &owned;
    }
    if (m->gc && m->kt->ptrmask) gm_typed_memmove(m->kt, kslot, key);
    else slot_copy(kslot, key, m->kt->size);
    /* A dead slot's value is not cleared by delete (gm_map_delete_clear). */
    if (!m->indirectelem && !m->bscan) slot_clear(eslot, m->elemsize);
    b[i] = top;
    m->count++;
    return eslot;
}

/* Inserts a key known to be absent, whose chain was scanned: insertb/inserti
 * is the first empty slot seen (insertb NULL if none), last the chain's last
 * bucket.  NULL if out of memory (map unchanged). */
void *gm_map_insert_new(gm_map *m, const void *key, uint8_t top,
                        uint8_t *insertb, unsigned inserti, uint8_t *last)
{
    struct new_entry ne;
    if (!new_entry_alloc(m, key, &ne)) return NULL;
    if (insertb == NULL) {
        insertb = new_overflow(m, last);
        if (insertb == NULL) {
            new_entry_free(m, &ne);
            return NULL;
        }
        inserti = 0;
    }
    return store_entry(m, insertb, inserti, top, key, &ne);
}

void *gm_map_assign(gm_map *m, const void *key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_assign(m, key);
    if (WEAK_FRONT(m)) return gm_wmap_assign(m, key);
    return assign_entry(m, KK_GENERIC, key);
}

void gm_map_put(gm_map *m, const void *key, const void *val)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) {
        gm_sw_put(m, key, val);
        return;
    }
    if (WEAK_FRONT(m)) {
        gm_wmap_put(m, key, val);
        return;
    }
    void *e = gm_map_assign(m, key);
    if (e == NULL) gm_fatal("runtime: out of memory");
    if (m->gc && m->vt->ptrmask) gm_typed_memmove(m->vt, e, val);
    else if (m->vt->size) memcpy(e, val, m->vt->size);
}

/* ---------------------------------------------------------------- delete */

static void free_entry_storage(gm_map *m, uint8_t *b, unsigned i)
{
    if (!m->owns_storage) return;
    if (m->ownedkey) gm_own_free(m, (void *)((const gm_str *)key_of(m, b, i))->ptr, 1, true);
    if (m->indirectkey) gm_own_free(m, deref(b_key(m, b, i)), m->kt->align, true);
    if (m->indirectelem) gm_own_free(m, deref(b_elem(m, b, i)), m->vt->align, true);
}

/* What a delete does besides marking the slot: entry storage goes, and on
 * a GC map whose buckets hold pointers the key and value are cleared (with
 * barriers) so the collector can free what only they reached.  Elsewhere
 * nothing will read a dead slot, so its bytes are left as they are: the
 * value is zeroed when the slot is next filled (store_entry), which keeps
 * Go's "m[k]++ after a delete starts from 0" without the delete touching
 * the value's cache line. */
void gm_map_delete_clear(gm_map *m, uint8_t *b, unsigned i)
{
    free_entry_storage(m, b, i);
    if (m->bscan) {
        mw_clear_key(m, b_key(m, b, i));
        mw_clear_elem(m, b_elem(m, b, i));
    }
}

/* Slot i of bucket b (in the chain starting at borig) has just become
 * EMPTY_ONE and is the last slot of b or followed by EMPTY_REST.  If nothing
 * live follows it in the chain, it and the run of EMPTY_ONE slots before it,
 * back through the buckets before b, become EMPTY_REST (invariant 1). */
void gm_map_delete_tail(gm_map *m, uint8_t *borig, uint8_t *b, unsigned i)
{
    if (i == BUCKET_CNT - 1) {
        uint8_t *o = b_ovf(m, b);
        if (o != NULL && o[0] != EMPTY_REST) return;
    }
    for (;;) {
        b[i] = EMPTY_REST;
        if (i == 0) {
            if (b == borig) return;
            uint8_t *c = b;
            for (b = borig; b_ovf(m, b) != c; b = b_ovf(m, b)) {}
            i = BUCKET_CNT - 1;
        } else {
            i--;
        }
        if (b[i] != EMPTY_ONE) return;
    }
}

/* The last entry was deleted. */
void gm_map_emptied(gm_map *m)
{
    m->seed = gm_map_rand();
    /* Nothing is left in unevacuated old buckets: a resize in progress
     * is over.  (Iterators walking the old array keep it, as ever.) */
    if (growing(m)) finish_resize(m);
}

bool gm_map_delete(gm_map *m, const void *key)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) return gm_sw_delete(m, key);
    if (WEAK_FRONT(m)) return gm_wmap_delete(m, key);
    return delete_entry(m, KK_GENERIC, key);
}

/* ------------------------------------------------------ clear, free, clone */

/* Frees what live entries own (indirect keys/values, owned strings). */
static void free_all_entry_storage(gm_map *m)
{
    if (!m->owns_storage || m->gc) return;
    uint8_t *arrs[2] = { m->buckets, m->oldbuckets };
    size_t ns[2] = { m->buckets ? (size_t)1 << m->B : 0,
                     m->oldbuckets ? noldbuckets(m) : 0 };
    for (int a = 0; a < 2; a++) {
        for (size_t j = 0; j < ns[a]; j++) {
            for (uint8_t *b = bucket_at(m, arrs[a], j); b; b = b_ovf(m, b)) {
                for (unsigned i = 0; i < BUCKET_CNT; i++)
                    if (b[i] >= MIN_TOPHASH) free_entry_storage(m, b, i);
            }
        }
    }
}

void gm_map_clear(gm_map *m)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) {
        gm_sw_clear(m);
        return;
    }
    if (WEAK_FRONT(m)) {
        gm_wmap_clear(m);
        return;
    }
    if (m == NULL || m->count == 0) return;
    gm_map_begin_write(m);
    /* Every running iterator stops (Go issue 59411); they notice the new
     * clear_seq before touching any bucket, so nothing is pinned any more. */
    m->clear_seq++;
    atomic_store_explicit(&m->iters_open, 0, memory_order_release);
    free_all_entry_storage(m);
    if (m->oldbuckets) {
        uint8_t *old = m->oldbuckets;
        hdr_store(m, &m->oldbuckets, NULL);
        gm_arr_retire(m, old);
    }
    gm_mem_unpin_retired(m);
    gm_prep_cancel(m); /* an empty map needs no bigger array soon */
    flags_store(m, flags_load(m) & (uint8_t)~(F_SAME_SIZE | F_SHRINK));
    m->nevacuate = 0;
    m->noverflow = 0;
    m->sparse_writes = 0;
    m->count = 0;
    m->seed = gm_map_rand();
    gm_arr_reset(m, m->buckets);
    limits_update(m);
    gm_map_end_write(m);
}

void gm_map_free(gm_map *m)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) {
        gm_sw_free(m);
        return;
    }
    if (m == NULL || m->gc) return; /* a GC map is freed by the collector */
    if (flags_load(m) & F_WRITING) gm_fatal("concurrent map writes");
    atomic_store_explicit(&m->iters_open, 0, memory_order_relaxed);
    free_all_entry_storage(m);
    gm_prep_cancel(m);
    if (m->buckets) gm_arr_free_now(m, gm_arr_hdr(m, m->buckets));
    if (m->oldbuckets) gm_arr_free_now(m, gm_arr_hdr(m, m->oldbuckets));
    gm_mem_release_all(m);
    gm_map_mfree(m->zero);
    gm_map_mfree(m);
}

gm_map *gm_map_clone(const gm_map *src)
{
    if (GM_UNLIKELY(gm_map_is_swiss(src))) return gm_sw_clone(src);
    if (src == NULL) return NULL;
    if (WEAK_FRONT(src)) return gm_wmap_clone(src);
    gm_map *m = map_make(src->kt, src->vt, src->count, src->gc);
    if (m == NULL) return NULL;
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, (gm_map *)src);
    while (gm_map_iter_next(&it, &k, &v)) {
        void *e = gm_map_assign(m, k);
        if (e == NULL) {
            gm_map_iter_done(&it);
            gm_map_free(m);
            errno = ENOMEM;
            return NULL;
        }
        if (m->gc && m->vt->ptrmask) gm_typed_memmove(m->vt, e, v);
        else if (src->vt->size) memcpy(e, v, src->vt->size);
    }
    return m;
}

/* ---------------------------------------------------------------- stats */

void gm_map_stats_get(const gm_map *m, gm_map_stats *out)
{
    if (GM_UNLIKELY(gm_map_is_swiss(m))) {
        gm_sw_stats_get(m, out);
        return;
    }
    memset(out, 0, sizeof *out);
    if (m == NULL) return;
    if (WEAK_FRONT(m)) {
        gm_wmap_stats(m, out);
        return;
    }
    out->count = m->count;
    out->b = m->B;
    out->nbuckets = (size_t)1 << m->B;
    out->noverflow = m->noverflow;
    out->growing = growing(m);
    out->same_size_grow = growing(m) && same_size_grow(m);
    out->old_nbuckets = growing(m) ? noldbuckets(m) : 0;
    out->nevacuate = m->nevacuate;
    out->bytes = m->bytes_held;
    for (gm_barray *a = m->retired; a; a = a->next) out->retired_pending++;
    for (gm_barray *a = m->release; a; a = a->next) out->retired_pending++;
    out->array = m->buckets;
    out->array_bytes = m->buckets ? out->nbuckets * (size_t)m->bucketsize : 0;
    out->grows = m->n_grows;
    out->same_size_grows = m->n_same_grows;
    out->shrinks = m->n_shrinks;
    out->shrinking = growing(m) && shrinking(m);
    out->evacuated_buckets = m->n_evac_buckets;
    out->moved_entries = m->n_moved;
    out->overflow_allocs = m->n_ovf;
    out->engine = GM_MAP_CLASSIC;
    out->indirect_key = m->indirectkey;
    out->indirect_val = m->indirectelem;
    out->scanned = m->bscan;
}
