/* swiss.c - Go 1.24's Swiss-table map (internal/runtime/maps), in C: the
 * second engine behind gomap/map.h.
 *
 * GROUPS AND LAYOUT.  Entries live in groups of SW_SLOTS = 16 slots, as
 * in abseil and boost (Go has 8).  Each slot has a control byte: EMPTY
 * (0x80), DELETED (0xFE, a tombstone) or, for a full slot, h2: the low 7
 * bits of the key's hash.  A table keeps all its control bytes in one array
 * and all its slots in another (a slot is a key followed by its value; keys
 * or values above 128 bytes live in their own allocation and the slot holds
 * a pointer: "indirect").  A lookup loads a group's 16 control bytes and
 * compares h2 against all of them at once -- one SSE2 compare and movemask
 * on x86-64, or exact SWAR arithmetic on two 64-bit words on any CPU (both
 * are compiled and tested against a byte loop: swiss_internal.h) -- and
 * reads a slot only when its h2 matches (1/128 per non-matching full slot).
 * Why 16 and why apart, measured at 100K u64 keys (callgrind's cache and
 * branch simulation, GMDEBUG=mapseed=1; docs/map.md has the runs): with 8
 * slots interleaved with their control word (Go's layout), a miss cost 1.85
 * D1 misses and 0.82 branch mispredictions, because at up to 7/8 load one
 * group in three has no EMPTY byte and the probe goes on to the next group,
 * on another cache line; 16-wide groups cut that to 1.51 misses and 0.50
 * mispredictions (wall time of a miss 30.6 -> 11 ns); moving the control
 * bytes out of the slots cut it to 1.13 misses (the control bytes are a
 * seventeenth of a u64 map, 150 KB at 100K entries, and stay in L2; a miss
 * mostly touches no slot at all).  A hit reads one control line and one
 * slot line.
 *
 * TABLES.  A table is a power-of-two number of groups, at most
 * SW_MAX_TABLE = 1024 slots.  h1 = hash >> 7 picks the first group; probing
 * visits groups triangularly (offsets 0, 1, 3, 6, ... masked), which reaches
 * every group of a power-of-two table, and stops at the first group that has
 * an EMPTY byte.  Inserts may fill a table to 7/8 of its slots: growth_left
 * counts the EMPTY slots still allowed to fill, so at least 1/8 stay EMPTY
 * and every probe ends.  A table that runs out of growth_left is first
 * pruned of tombstones (below), else rebuilt: doubled while below 1024
 * slots, split in two beyond.  Either way one write moves at most one
 * table's entries (1024), never the whole map: no growth stall.
 *
 * DIRECTORY (extendible hashing).  A map with a table has a directory of
 * 2^gd entries (gd, the global depth), indexed by the top gd bits of the
 * hash.  An entry is its table's pointer plus copies of the table's ctrl,
 * slots and mask (which never change for a table's lifetime), so a probe
 * goes from the directory straight to the control bytes: the table header,
 * a cache line of its own (a miss at 10M entries), is read only by writes
 * that change its counters.  A table of local depth ld <= gd fills 2^(gd-ld) consecutive
 * entries starting at a multiple of that count: prefix << (gd-ld), where
 * its `prefix` is the top ld bits its keys' hashes share (so a directory
 * doubling rewrites no table header: at 10M entries it wrote 15K of them,
 * each a cache and TLB miss).  A full
 * 1024-slot table splits into two of local depth ld+1 by hash bit 63-ld;
 * only when ld == gd does the directory double first (every entry becomes
 * two), so the directory grows only when needed.  n_at_gd counts tables with
 * ld == gd.  If a split could not separate the keys at all (a degenerate
 * hash), the table doubles beyond 1024 slots instead of deepening the
 * directory forever.
 *
 * SMALL MAPS.  A map of at most 8 entries is one group with no table and no
 * directory (m->small, a table struct with small = true: the control bytes
 * of a whole group, of which only the first SW_SMALL = 8 are ever used, and
 * 8 slots, all of which may be full).  Lookups of u32, u64 and string
 * keys compare the full slots directly without hashing; delete writes
 * EMPTY (no tombstones); the 9th entry moves the 8 into a 16-slot table.
 *
 * DELETE AND TOMBSTONES.  A deleted slot becomes EMPTY if its group still
 * has an EMPTY byte (no probe can have passed through the group), else
 * DELETED.  Inserts reuse the first EMPTY or DELETED slot of their probe
 * sequence; DELETED slots count against growth_left.  Go 1.24 removed
 * tombstones only by growing, so delete/insert churn at a constant size
 * grew a table up to 1024 slots (Go issue 70886).  Here, on every insert
 * path (generic and fast: they share assign_impl), a table out of
 * growth_left with tombstones >= 10% of its slots is pruned first: a
 * tombstone can become EMPTY unless some live key's probe sequence passes
 * through its group before reaching the key's own group; prune marks those
 * groups by walking each live key's probe sequence, and empties the
 * tombstones of every other group.  If that frees too little (< 1/32 of the
 * slots) and the table is less than 7/16 live, it is rebuilt at the same
 * size.  The deleted value is zeroed when its slot is filled again (Go's
 * "m[k]++ after delete starts from 0"); on GC maps whose slots hold
 * pointers delete clears key and value with the write barrier at once.
 *
 * SHRINKING (beyond Go, issue 20135).  A delete that leaves a table at most
 * 1/16 live (SW_SHRINK_AT; above one group) rebuilds it smaller: merged with its buddy
 * (the table of the same local depth that differs in the last directory
 * bit) into one table of local depth ld-1 when both fit in 1024 slots at
 * half load, else alone at half load.  When no table has ld == gd any more,
 * the directory halves.  A rebuilt table is at most half full, far from the
 * 7/8 that grows it and the 1/16 that shrinks it: no sequence of writes
 * makes it alternate.  The threshold was 1/8: draining a map then moved
 * 0.34 entries per delete through cascades of merges (each merged table is
 * half full and shrinks again after losing 3/4 of its entries); at 1/16 it
 * moves half as many, and a drained map holds under 16 slots per entry.  Shrinking waits while an iterator is open (the
 * iteration order below relies on directory boundaries only ever being
 * added) and never goes below the capacity the creation hint asked for.
 *
 * CLEAR (Go issue 70617: Go's clear is O(capacity)).  clear frees the
 * directory and the tables and leaves an empty small map: O(tables), plus,
 * for malloc maps whose entries own memory (owned strings, indirect keys or
 * values), one pass over the control words to free it.  It bumps clear_seq,
 * which stops running iterators, and draws a new seed.  Unlike Go, the
 * capacity is not kept: refilling grows again, one table at a time.
 *
 * ITERATION (swiss_iter.c) keeps Go's guarantees across splits, growth and
 * directory doubling; see that file.
 *
 * MEMORY.  Malloc maps: a table is one block (header, control bytes,
 * slots).  Below SW_SLAB_MIN_TABLES (256) tables it comes from malloc; from
 * then on every 1024-slot table is a block of one of the map's 2 MiB chunks
 * (mmap'd, aligned to 2 MiB, MADV_HUGEPAGE): at 10M entries the tables are
 * 200 MB, and on 4 KiB pages a lookup's directory entry, control bytes and
 * slot were three TLB misses.  A chunk is found from a block by masking its
 * address; its header counts blocks carved and live and chains returned
 * ones; chunks with a block to give are on m->chunks.  A chunk whose blocks
 * are all free again becomes the map's one spare (already faulted in) or is
 * unmapped, so a shrinking map gives its chunks back: a uniformly drained
 * map's 1024-slot tables shrink (to malloc'd smaller ones) once 1/16 live,
 * emptying the chunks.  bytes_held counts a chunk whole.  If mmap fails the
 * table comes from malloc.  A
 * table replaced while an iterator is open waits on m->retired, and entry
 * storage freed while an iterator is open waits on m->deferred, until a
 * later write finds no iterator open (an iterator may read a replaced
 * table's slots, and the keys they point to, to look them up again).  GC
 * maps: the header, directory and table headers are conservatively scanned
 * objects; control bytes are pointer-free; the slot array is typed (an
 * array of one slot type whose mask marks the key's and value's pointer
 * words) when keys or values hold pointers, else pointer-free.  Every
 * pointer write into a GC map's memory goes through the write barrier
 * (gm_store, gm_typed_memmove, gm_typed_memclr), as in the classic engine.
 *
 * INVARIANTS (checked by gm_sw_check, swiss_check.c):
 *  1. Per table: used, tombstones and growth_left agree with its control
 *     bytes (growth_left = 7/8 capacity - used - tombstones; small: 8 -
 *     used); capacity is a power of two >= 8; no table of a directory is
 *     small.
 *  2. Directory: 2^gd entries; a table of local depth ld <= gd fills exactly
 *     the 2^(gd-ld) consecutive entries starting at prefix << (gd-ld), a multiple of
 *     that count, and each entry's ctrl, slots and mask are its table's; n_at_gd, ntables and cap_total are exact; count is the sum
 *     of used.
 *  3. Every live key (NaN excepted) hashes into its table's directory range
 *     and its h2 is its control byte; lookup finds that very slot.
 *  4. Every table keeps at least one EMPTY slot (probes end).
 *
 * CONCURRENCY.  As the classic engine: any number of readers or one writer;
 * SWF_WRITING is toggled around writes, and reads, writes and iterators that
 * see it set die with Go's messages.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "common/trace_internal.h"
#include "map/map_internal.h"
#include "map/swiss_internal.h"

/* The shared prefix of the two engines' headers (map_engine.h). */
_Static_assert(offsetof(sw_map, count) == offsetof(struct gm_map, count), "count");
_Static_assert(offsetof(sw_map, flags) == offsetof(struct gm_map, flags), "flags");
_Static_assert(offsetof(sw_map, engine) == offsetof(struct gm_map, engine), "engine");
_Static_assert(offsetof(sw_map, engine) == GM_MAP_ENGINE_OFFSET, "engine offset");
_Static_assert(offsetof(sw_map, seed) == offsetof(struct gm_map, seed), "seed");
_Static_assert((int)SWF_WRITING == (int)F_WRITING, "writing flag");

extern const gm_type gm_type_u32, gm_type_u64, gm_type_str, gm_type_str_owned;

static const uint8_t sw_zero_buf[SW_ZERO_BUF];

static size_t round_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------ engine choice */

static _Atomic int default_engine_cache; /* 0: not read yet */

/* GMDEBUG=mapengine=classic|swiss (Go's GODEBUG syntax; the last one wins). */
gm_map_engine gm_map_default_engine(void)
{
    int e = atomic_load_explicit(&default_engine_cache, memory_order_relaxed);
    if (GM_LIKELY(e != 0)) return (gm_map_engine)e;
    /* The built-in default is Swiss, as in Go 1.24; GMDEBUG=mapengine=classic
     * (or gm_map_new_opts) selects the classic engine. */
    e = GM_MAP_SWISS;
    const char *d = getenv("GMDEBUG");
    while (d && *d) {
        const char *c = strchr(d, ',');
        size_t n = c ? (size_t)(c - d) : strlen(d);
        static const char key[] = "mapengine=";
        if (n >= sizeof key - 1 && memcmp(d, key, sizeof key - 1) == 0) {
            const char *v = d + sizeof key - 1;
            size_t vl = n - (sizeof key - 1);
            if (vl == 7 && memcmp(v, "classic", 7) == 0) e = GM_MAP_CLASSIC;
            else if (vl == 5 && memcmp(v, "swiss", 5) == 0) e = GM_MAP_SWISS;
            else gm_errorf("GMDEBUG: bad value \"%.*s\" for mapengine (want classic or swiss); ignored",
                           (int)vl, v);
        }
        if (!c) break;
        d = c + 1;
    }
    atomic_store_explicit(&default_engine_cache, e, memory_order_relaxed);
    return (gm_map_engine)e;
}

gm_map *gm_map_new_opts(const gm_type *key, const gm_type *val, const gm_map_opts *opts)
{
    gm_map_opts o = opts ? *opts : (gm_map_opts){ GM_MAP_ENGINE_DEFAULT, false, 0 };
    gm_map_engine e = o.engine;
    if (e == GM_MAP_ENGINE_DEFAULT) e = gm_map_default_engine();
    if (e == GM_MAP_SWISS) return gm_sw_new(key, val, o.hint, o.gc);
    if (e == GM_MAP_CLASSIC) return gm_classic_new(key, val, o.hint, o.gc);
    gm_errorf("gm_map_new_opts: unknown engine %d", (int)o.engine);
    errno = EINVAL;
    return NULL;
}

gm_map_engine gm_map_engine_of(const gm_map *m)
{
    if (m == NULL) return GM_MAP_ENGINE_DEFAULT;
    return gm_map_is_swiss(m) ? GM_MAP_SWISS : GM_MAP_CLASSIC;
}

/* ------------------------------------------------------------ memory */

static inline sw_map *SW(const gm_map *m) { return (sw_map *)(void *)m; }

/* A pointer field of the map's own memory (header, directory, table). */
static inline void sw_pstore(const sw_map *m, void *field, void *p)
{
    if (m->gc) gm_store(field, p);
    else memcpy(field, &p, sizeof p);
}

/* Directory entry e becomes t's (its probe fields copied). */
static void dent_set(const sw_map *m, sw_dent *e, sw_table *t)
{
    sw_pstore(m, &e->t, t);
    sw_pstore(m, &e->ctrl, t->ctrl);
    sw_pstore(m, &e->slots, t->slots);
    e->mask = t->mask;
}

/* Entries [from, to) of the directory, each written twice into d, the next
 * doubling's directory. */
static void dir_mirror(const sw_map *m, sw_dent *d, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        dent_set(m, &d[2 * j], m->dir[j].t);
        dent_set(m, &d[2 * j + 1], m->dir[j].t);
    }
}

/* Directory entry i becomes t's, and so do its two entries in the next
 * doubling's directory if that far is prepared already. */
static void dir_set(sw_map *m, size_t i, sw_table *t)
{
    dent_set(m, &m->dir[i], t);
    if (m->dir_next && i < m->dir_next_done) dir_mirror(m, m->dir_next, i, i + 1);
}

/* Slot copies with the barrier where the slots hold pointers. */
static inline void sw_wkey(const sw_map *m, void *dst, const void *src)
{
    if (m->bscan && (m->indirectkey || m->kt->ptrmask)) {
        if (m->indirectkey) gm_store(dst, sw_deref(src));
        else gm_typed_memmove(m->kt, dst, src);
    } else {
        memcpy(dst, src, m->keysize);
    }
}
static inline void sw_welem(const sw_map *m, void *dst, const void *src)
{
    if (m->bscan && (m->indirectelem || m->vt->ptrmask)) {
        if (m->indirectelem) gm_store(dst, sw_deref(src));
        else gm_typed_memmove(m->vt, dst, src);
    } else {
        memcpy(dst, src, m->elemsize);
    }
}
/* GM_TYPE_KEY_UPDATE: an equal key overwrites the stored one; the new key
 * may hold GC pointers, so on a GC map the copy is barriered. */
static void sw_update_key(const sw_map *m, void *k, const void *key)
{
    if (m->gc && m->kt->ptrmask) gm_typed_memmove(m->kt, k, key);
    else memcpy(k, key, m->kt->size);
}
static inline void sw_clear_slot(const sw_map *m, uint8_t *slot)
{
    if (m->indirectkey) gm_store(slot, NULL);
    else if (m->kt->ptrmask) gm_typed_memclr(m->kt, slot);
    uint8_t *e = slot + m->elemoff;
    if (m->indirectelem) gm_store(e, NULL);
    else if (m->vt->ptrmask) gm_typed_memclr(m->vt, e);
    else memset(e, 0, m->elemsize);
}

#define OWN_HDR(align) ((align) > 16 ? (align) : 16)

static void *own_alloc(sw_map *m, size_t n, const gm_type *t)
{
    if (m->gc) return t ? gm_new(t) : gm_alloc_noscan(n);
    size_t align = t ? t->align : 1;
    uint8_t *base = gm_map_malloc(OWN_HDR(align) + n, align);
    return base ? base + OWN_HDR(align) : NULL;
}

/* `published` storage may still be read by an open iterator through a
 * replaced table: it waits on m->deferred. */
static void own_free(sw_map *m, void *p, size_t align, bool published)
{
    if (p == NULL || m->gc) return;
    uint8_t *base = (uint8_t *)p - OWN_HDR(align);
    if (published && atomic_load_explicit(&m->iters_open, memory_order_acquire) > 0) {
        memcpy(base, &m->deferred, sizeof(void *));
        m->deferred = base;
        return;
    }
    gm_map_mfree(base);
}

static void deferred_release(sw_map *m)
{
    while (m->deferred) {
        void *next;
        memcpy(&next, m->deferred, sizeof next);
        gm_map_mfree(m->deferred);
        m->deferred = next;
    }
}

/* ---- chunks: table memory of big malloc maps (MEMORY above) ---- */

static void chunk_link(sw_map *m, sw_chunk *c)
{
    c->prev = NULL;
    c->next = m->chunks;
    if (m->chunks) m->chunks->prev = c;
    m->chunks = c;
    c->listed = true;
}

static void chunk_unlink(sw_map *m, sw_chunk *c)
{
    if (c->prev) c->prev->next = c->next;
    else m->chunks = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
    c->listed = false;
}

/* SW_CHUNK bytes aligned to SW_CHUNK (so that a block finds its chunk by
 * masking its address), or NULL. */
static void *chunk_mmap(void)
{
    uint8_t *p = mmap(NULL, 2 * SW_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)p + SW_CHUNK - 1) & ~(uintptr_t)(SW_CHUNK - 1);
    size_t head = a - (uintptr_t)p;
    if (head) munmap(p, head);
    munmap((uint8_t *)a + SW_CHUNK, SW_CHUNK - head);
    return (void *)a;
}

/* PREPARED CHUNKS.  A huge page is faulted in whole: its first touch zeroes
 * 2 MiB and, with THP defrag "madvise", may compact memory first (the
 * classic engine's map_mem.c measured 1-10 ms).  So no insert touches a
 * huge chunk first: one process-wide helper thread (gomap-sw-bg; started on
 * the first need; GMDEBUG=mapbg=0 turns it off with the classic engine's
 * helper) maps chunks with MADV_HUGEPAGE, writes them once and keeps up to
 * SW_PREP_MAX ready; a map takes one with a trylock (never waiting: a
 * forked child whose helper is gone, or a busy lock, just falls back) and
 * asks for the next.  Without a ready chunk a map maps its own, on 4 KiB
 * pages (faulted in a page at a time by the splits that carve it). */
#define SW_PREP_MAX 2
static pthread_mutex_t prep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t prep_cv = PTHREAD_COND_INITIALIZER;
static void *prep_ready[SW_PREP_MAX]; /* under prep_mu: kept for the process's next big map too */
static int prep_n, prep_want;         /* under prep_mu: ready; how many the helper keeps ready */
static bool prep_started, prep_failed; /* under prep_mu */

static void *prep_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&prep_mu);
    for (;;) {
        while (prep_n >= prep_want) pthread_cond_wait(&prep_cv, &prep_mu);
        pthread_mutex_unlock(&prep_mu);
        uint8_t *c = chunk_mmap();
        if (c) {
#ifdef MADV_HUGEPAGE
            (void)madvise(c, SW_CHUNK, MADV_HUGEPAGE);
#endif
            for (size_t o = 0; o < SW_CHUNK; o += 4096) ((volatile uint8_t *)c)[o] = 0;
        }
        pthread_mutex_lock(&prep_mu);
        if (c == NULL) prep_want = prep_n; /* no memory: until asked again */
        else prep_ready[prep_n++] = c;
    }
    return NULL;
}

/* Called with prep_mu held: wants one more ready chunk (starting the helper). */
static void prep_ask(void)
{
    if (prep_failed || !gm_map_bg_enabled()) return;
    if (!prep_started) {
        prep_started = true;
        if (!gm_map_start_helper(prep_main, "gomap-sw-bg")) {
            prep_failed = true;
            return;
        }
    }
    prep_want = SW_PREP_MAX;
    pthread_cond_signal(&prep_cv);
}

/* A ready chunk, or NULL; asks for the next either way. */
static void *prep_take(void)
{
    if (!gm_map_bg_enabled() || pthread_mutex_trylock(&prep_mu) != 0) return NULL;
    void *c = prep_n > 0 ? prep_ready[--prep_n] : NULL;
    prep_ask();
    pthread_mutex_unlock(&prep_mu);
    return c;
}

/* A new chunk for blocks of `block` bytes, or NULL. */
static sw_chunk *chunk_map(sw_map *m, size_t block)
{
    void *a = prep_take();
    if (a) {
        m->n_chunks_prepared++;
    } else if ((a = chunk_mmap()) == NULL) {
        return NULL;
    }
    sw_chunk *c = (sw_chunk *)a;
    memset(c, 0, sizeof *c);
    c->block = block;
    c->nblocks = (uint32_t)((SW_CHUNK - SW_CHUNK_HDR) / block);
    m->nchunks++;
    m->bytes_held += SW_CHUNK;
    return c;
}

static void chunk_unmap(sw_map *m, sw_chunk *c)
{
    munmap(c, SW_CHUNK);
    m->nchunks--;
    m->bytes_held -= SW_CHUNK;
}

/* Whether a table of `cap` slots and `bytes` bytes comes from a chunk. */
static bool slab_wanted(const sw_map *m, size_t cap, size_t bytes)
{
    return !m->gc && cap == SW_MAX_TABLE && m->ntables >= SW_SLAB_MIN_TABLES && m->galign <= SW_CHUNK_HDR &&
           round_up(bytes, SW_CHUNK_HDR) <= (SW_CHUNK - SW_CHUNK_HDR) / 8;
}

/* A block of `bytes` from the map's chunks, or NULL. */
static void *slab_alloc(sw_map *m, size_t bytes)
{
    size_t b = round_up(bytes, SW_CHUNK_HDR);
    sw_chunk *c = m->chunks;
    if (c == NULL) {
        c = m->spare;
        m->spare = NULL;
        if (c == NULL && (c = chunk_map(m, b)) == NULL) return NULL;
        chunk_link(m, c);
    }
    void *p;
    if (c->free) {
        p = c->free;
        memcpy(&c->free, p, sizeof p);
    } else {
        p = (uint8_t *)c + SW_CHUNK_HDR + (size_t)c->carved++ * c->block;
    }
    c->live++;
    if (c->free == NULL && c->carved == c->nblocks) chunk_unlink(m, c);
    return p;
}

static sw_chunk *chunk_of(const void *p) { return (sw_chunk *)((uintptr_t)p & ~(uintptr_t)(SW_CHUNK - 1)); }

/* An empty chunk becomes the spare (faulted in already: the next chunk
 * costs no page faults) or, if there is one, goes back to the system. */
static void slab_free(sw_map *m, void *p)
{
    sw_chunk *c = chunk_of(p);
    memcpy(p, &c->free, sizeof p);
    c->free = p;
    c->live--;
    if (!c->listed) chunk_link(m, c);
    if (c->live > 0) return;
    chunk_unlink(m, c);
    if (m->spare == NULL) {
        c->free = NULL;
        c->carved = 0;
        m->spare = c;
    } else {
        chunk_unmap(m, c);
    }
}

static void slab_release_spare(sw_map *m)
{
    if (m->spare) chunk_unmap(m, m->spare);
    m->spare = NULL;
}

/* The block a table is in: for gm_sw_check. */
bool gm_sw_slab_table_ok(const sw_map *m, const sw_table *t)
{
    const sw_chunk *c = chunk_of(t);
    size_t off = (size_t)((const uint8_t *)t - (const uint8_t *)c);
    (void)m;
    return c->block >= t->bytes && off >= SW_CHUNK_HDR && (off - SW_CHUNK_HDR) % c->block == 0 &&
           (off - SW_CHUNK_HDR) / c->block < c->carved && c->live > 0 && c->live <= c->carved &&
           c->carved <= c->nblocks;
}

static void table_free_now(sw_map *m, sw_table *t)
{
    if (t->slab) {
        slab_free(m, t);
        return;
    }
    m->bytes_held -= t->bytes;
    if (!m->gc) gm_map_mfree(t);
}

/* A table that is no longer the map's (replaced, merged, or cleared). */
static void table_retire(sw_map *m, sw_table *t)
{
    t->prefix = -1;
    if (m->gc) {
        m->bytes_held -= t->bytes;
        return; /* the collector's, once no iterator holds it */
    }
    if (atomic_load_explicit(&m->iters_open, memory_order_acquire) > 0) {
        t->next = m->retired;
        m->retired = t;
        return;
    }
    table_free_now(m, t);
}

static void retired_release(sw_map *m)
{
    while (m->retired) {
        sw_table *t = m->retired;
        m->retired = t->next;
        table_free_now(m, t);
    }
}

static void table_reset_ctrl(sw_map *m, sw_table *t)
{
    for (size_t g = 0; g <= t->mask; g++) sw_ctrl_fill(sw_group(m, t, g), SW_EMPTY);
    t->used = t->tombstones = 0;
    t->growth_left = t->small ? SW_SMALL : t->capacity - t->capacity / 8;
}

/* A new empty table of `cap` slots, or NULL (nothing changed).  Its
 * control bytes come first and its slots after them; a small table has the
 * control bytes of a whole group (the matchers read SW_SLOTS of them) but
 * only SW_SMALL slots. */
static sw_table *table_new(sw_map *m, size_t cap, unsigned ld, bool small)
{
    size_t ng = small ? 1 : cap / SW_SLOTS;
    size_t cbytes = ng * SW_SLOTS, sbytes = cap * (size_t)m->slotsize;
    sw_table *t;
    if (m->gc) {
        t = gm_alloc_conservative(sizeof *t);
        if (t == NULL) return NULL;
        uint8_t *c = gm_alloc_noscan(cbytes);
        if (c == NULL) return NULL;
        gm_store(&t->ctrl, c);
        uint8_t *sl = c; /* zero-size slots: any valid address */
        if (sbytes) {
            sl = m->bscan ? gm_new_array(m->gtype, cap) : gm_alloc_noscan(sbytes);
            if (sl == NULL) return NULL;
        }
        gm_store(&t->slots, sl);
        t->bytes = cbytes + sbytes + sizeof *t;
    } else {
        size_t hdr = round_up(sizeof *t, 16), soff = round_up(hdr + cbytes, m->galign);
        bool slab = slab_wanted(m, cap, soff + sbytes);
#ifdef GOMAP_FAULT_INJECTION
        if (slab) { /* a block counts as a map allocation for gm_map_fault_alloc_after */
            void *probe = gm_map_malloc(1, 1);
            if (probe == NULL) return NULL;
            gm_map_mfree(probe);
        }
#endif
        uint8_t *base = slab ? slab_alloc(m, soff + sbytes) : NULL;
        if (base == NULL) {
            slab = false; /* no chunk: malloc */
            base = gm_map_malloc(soff + sbytes, m->galign > 16 ? m->galign : 16);
        }
        if (base == NULL) return NULL;
        t = (sw_table *)(void *)base;
        memset(t, 0, sizeof *t);
        t->ctrl = base + hdr;
        t->slots = base + soff;
        t->bytes = slab ? round_up(soff + sbytes, SW_CHUNK_HDR) : soff + sbytes;
        t->slab = slab;
    }
    t->mask = ng - 1;
    t->capacity = (uint32_t)cap;
    t->prefix = -1;
    t->local_depth = (uint8_t)ld;
    t->small = small;
    table_reset_ctrl(m, t);
    if (!t->slab) m->bytes_held += t->bytes; /* a chunk is counted whole */
    return t;
}

static sw_dent *dir_alloc(sw_map *m, size_t n)
{
    if (m->gc) return gm_alloc_conservative(n * sizeof(sw_dent));
    return gm_map_malloc(n * sizeof(sw_dent), _Alignof(sw_dent));
}

static void dir_free(sw_map *m, sw_dent *d)
{
    if (d && !m->gc) gm_map_mfree(d);
}

static void dir_next_drop(sw_map *m)
{
    sw_dent *d = m->dir_next;
    sw_pstore(m, &m->dir_next, NULL);
    m->dir_next_done = 0;
    dir_free(m, d);
}

/* A split's share of the next directory doubling: SW_DIR_STEP entries
 * mirrored into dir_next (allocated on the first step, untouched pages:
 * each step faults at most one in).  Between two doublings the tables,
 * and so the splits, about double in number (n splits for n entries), so
 * by the doubling most or all of the copy is done and the insert that
 * doubles copies the rest: at 10M entries it copied (and faulted in) a
 * whole 1 MiB directory.  Without memory it simply waits for a later split. */
static void dir_prepare(sw_map *m)
{
    size_t n = m->dir_len;
    if (m->gd >= 48 || m->dir_next_done >= n) return;
    if (m->dir_next == NULL) {
        sw_dent *d = dir_alloc(m, 2 * n);
        if (d == NULL) return;
        sw_pstore(m, &m->dir_next, d);
        m->dir_next_done = 0;
    }
    size_t end = m->dir_next_done + SW_DIR_STEP < n ? m->dir_next_done + SW_DIR_STEP : n;
    dir_mirror(m, m->dir_next, m->dir_next_done, end);
    m->dir_next_done = end;
}

/* Slots for n entries at 7/8 load: a power of two, at least 8. */
size_t gm_sw_cap_for(size_t n)
{
    size_t c = SW_SLOTS;
    if (n > SW_SMALL && c < 2 * SW_SMALL) c = 2 * SW_SMALL;
    while (c - c / 8 < n) c *= 2;
    return c;
}

/* ------------------------------------------------------------ creation */

/* The group type of a GC map whose keys or values hold pointers: interned
 * per (key, value) pair and never freed, like the classic bucket types. */
struct gtype_rec {
    struct gtype_rec *next;
    const gm_type *kt, *vt;
    gm_type t;
    uint8_t mask[];
};
static struct gtype_rec *gtypes;
static pthread_mutex_t gtypes_mu = PTHREAD_MUTEX_INITIALIZER;

static bool has_pointers(const gm_type *t)
{
    if (t->ptrmask == NULL) return false;
    for (size_t w = 0; w < t->size / sizeof(void *); w++)
        if (t->ptrmask[w / 8] & (1u << (w % 8))) return true;
    return false;
}

static void mask_set(uint8_t *mask, size_t word) { mask[word / 8] |= (uint8_t)(1u << (word % 8)); }

static void mask_field(uint8_t *mask, size_t off, const gm_type *t, bool indirect)
{
    size_t base = off / sizeof(void *);
    if (indirect) {
        mask_set(mask, base);
        return;
    }
    for (size_t w = 0; w < t->size / sizeof(void *); w++)
        if (t->ptrmask && (t->ptrmask[w / 8] & (1u << (w % 8)))) mask_set(mask, base + w);
}

static bool gc_layout(sw_map *m)
{
    m->bscan = m->indirectkey || m->indirectelem || has_pointers(m->kt) || has_pointers(m->vt);
    if (!m->bscan) return true;
    pthread_mutex_lock(&gtypes_mu);
    struct gtype_rec *r;
    for (r = gtypes; r; r = r->next)
        if (r->kt == m->kt && r->vt == m->vt) break;
    if (r == NULL) {
        size_t words = m->slotsize / sizeof(void *);
        r = calloc(1, sizeof *r + (words + 7) / 8);
        if (r == NULL) {
            pthread_mutex_unlock(&gtypes_mu);
            return false;
        }
        r->kt = m->kt;
        r->vt = m->vt;
        mask_field(r->mask, 0, m->kt, m->indirectkey);
        mask_field(r->mask, m->elemoff, m->vt, m->indirectelem);
        r->t = (gm_type){ m->slotsize, m->galign, NULL, NULL, r->mask, 0, "map.slot" };
        r->next = gtypes;
        gtypes = r;
    }
    pthread_mutex_unlock(&gtypes_mu);
    m->gtype = &r->t;
    return true;
}

static void layout(sw_map *m)
{
    size_t ks = m->kt->size, ka = m->kt->align;
    size_t es = m->vt->size, ea = m->vt->align;
    if (ks > SW_MAX_INLINE) {
        m->indirectkey = true;
        ks = sizeof(void *);
        ka = _Alignof(void *);
    }
    if (es > SW_MAX_INLINE) {
        m->indirectelem = true;
        es = sizeof(void *);
        ea = _Alignof(void *);
    }
    size_t align = max_sz(max_sz(ka, ea), 8);
    m->keysize = (uint32_t)ks;
    m->elemsize = (uint32_t)es;
    m->elemoff = (uint32_t)round_up(ks, ea);
    m->slotsize = (uint32_t)round_up(m->elemoff + es, max_sz(ka, ea));
    m->galign = (uint32_t)align;
    m->reflexive = !(m->kt->flags & GM_TYPE_IRREFLEXIVE);
    m->keyupdate = (m->kt->flags & GM_TYPE_KEY_UPDATE) != 0;
    m->ownedkey = (m->kt->flags & GM_TYPE_OWNED_STR) != 0;
    m->owns_storage = m->indirectkey || m->indirectelem || m->ownedkey;
}

gm_map *gm_sw_new(const gm_type *key, const gm_type *val, size_t hint, bool gc)
{
    const char *fn = gc ? "gm_map_new_gc" : "gm_map_new";
    if (!gm_map_types_ok(fn, key, val, gc)) return NULL;
    sw_map *m = gc ? gm_alloc_conservative(sizeof *m) : gm_map_malloc(sizeof *m, _Alignof(sw_map));
    if (m == NULL) goto oom;
    if (!gc) memset(m, 0, sizeof *m);
    m->engine = GM_ENGINE_TAG_SWISS;
    m->gc = gc;
    m->kt = key;
    m->vt = val;
    m->kind = key == &gm_type_u64 ? SK_U64 : key == &gm_type_u32 ? SK_U32
            : (key == &gm_type_str || key == &gm_type_str_owned) ? SK_STR : SK_GENERIC;
    m->hasher = key->hash;
    m->keyeq = key->equal;
    layout(m);
    if (gc && !gc_layout(m)) goto oom;
    m->seed = gm_map_seed();
    if (val->size > SW_ZERO_BUF) {
        uint8_t *z = gc ? gm_alloc_noscan(val->size) : gm_map_malloc(val->size, val->align);
        if (z == NULL) goto oom;
        memset(z, 0, val->size);
        sw_pstore(m, &m->zero, z);
    }
    if (hint > ((size_t)1 << 40) / (m->slotsize + 1)) hint = 0; /* as makemap: ignored */
    if (hint > SW_SMALL) {
        size_t cap = gm_sw_cap_for(hint);
        size_t ntab = cap > SW_MAX_TABLE ? cap / SW_MAX_TABLE : 1;
        size_t tcap = cap > SW_MAX_TABLE ? SW_MAX_TABLE : cap;
        unsigned gd = 0;
        while (((size_t)1 << gd) < ntab) gd++;
        sw_dent *d = dir_alloc(m, ntab);
        if (d == NULL) goto oom_hint;
        sw_pstore(m, &m->dir, d);
        m->dir_len = ntab;
        m->gd = (uint8_t)gd;
        m->ntables = ntab; /* before the tables: a big map's come from chunks */
        for (size_t i = 0; i < ntab; i++) {
            sw_table *t = table_new(m, tcap, gd, false);
            if (t == NULL) {
                for (size_t j = 0; j < i; j++) table_free_now(m, m->dir[j].t);
                slab_release_spare(m);
                dir_free(m, d);
                goto oom_hint;
            }
            t->prefix = (int64_t)i; /* local depth gd */
            dir_set(m, i, t);
        }
        m->ntables = ntab;
        m->n_at_gd = (uint32_t)ntab;
        m->cap_total = ntab * tcap;
        m->min_cap = m->cap_total;
    }
    return (gm_map *)(void *)m;
oom_hint:
    gm_errorf("%s: cannot allocate tables for hint %zu", fn, hint);
oom:
    if (m && !gc) gm_map_mfree(m->zero);
    if (!gc) gm_map_mfree(m);
    errno = ENOMEM;
    return NULL;
}

/* ------------------------------------------------------------ writes */

/* moved_this_write is 0 between writes: a write that moved entries
 * resets it in end_write, so plain writes neither store nor compare it. */
SW_INLINE void begin_write(sw_map *m)
{
    uint8_t f = sw_flags_load(m);
    if (f & SWF_WRITING) gm_fatal("concurrent map writes");
    sw_flags_store(m, f ^ SWF_WRITING);
}

static void end_write_slow(sw_map *m)
{
    if (m->moved_this_write > m->max_moved_write) m->max_moved_write = m->moved_this_write;
    m->moved_this_write = 0;
    if ((m->retired || m->deferred) && atomic_load_explicit(&m->iters_open, memory_order_acquire) == 0) {
        retired_release(m);
        deferred_release(m);
    }
}

SW_INLINE void end_write(sw_map *m)
{
    if (GM_UNLIKELY(m->moved_this_write | (uintptr_t)m->retired | (uintptr_t)m->deferred)) end_write_slow(m);
    uint8_t f = sw_flags_load(m);
    if (!(f & SWF_WRITING)) gm_fatal("concurrent map writes");
    sw_flags_store(m, f & (uint8_t)~SWF_WRITING);
}

/* Copies slot (sg, si) of another table into an empty slot of t chosen by
 * hash h.  The entry's storage moves with it (pointers are copied). */
static void move_slot(sw_map *m, sw_table *t, uint64_t h, const sw_table *st, uint8_t *sg, unsigned si)
{
    size_t off = sw_h1(h) & t->mask, step = 0;
    for (;;) {
        uint8_t *g = sw_group(m, t, off);
        sw_bits free_ = sw_match_empty_or_deleted(sw_ctrl(g));
        if (free_) {
            unsigned i = sw_first(free_);
            uint8_t *src = sw_slot(m, st, sg, si), *dst = sw_slot(m, t, g, i);
            if (m->bscan) {
                sw_wkey(m, dst, src);
                sw_welem(m, dst + m->elemoff, src + m->elemoff);
            } else if (m->slotsize == 16) { /* u64 -> u64, string -> pointer, ... */
                memcpy(dst, src, 16);
            } else {
                memcpy(dst, src, m->slotsize);
            }
            if (g[i] == SW_DELETED) t->tombstones--;
            else t->growth_left--;
            sw_ctrl_set(g, i, sw_h2(h));
            t->used++;
            m->n_moved++;
            m->moved_this_write++;
            return;
        }
        off = (off + ++step) & t->mask;
    }
}

/* The hash of the key in a slot (random for NaN). */
static inline uint64_t slot_hash(const sw_map *m, const sw_table *t, uint8_t *g, unsigned i)
{
    return sw_hash(m, sw_key(m, t, g, i));
}

/* Makes nt the table of every directory entry old had. */
static void dir_replace(sw_map *m, sw_table *old, sw_table *nt)
{
    size_t span = (size_t)1 << (m->gd - old->local_depth);
    size_t idx = sw_tindex(m, old);
    for (size_t j = idx; j < idx + span; j++) dir_set(m, j, nt);
    nt->prefix = old->prefix; /* same local depth */
    m->cap_total += nt->capacity;
    m->cap_total -= old->capacity;
    table_retire(m, old);
}

/* A resize as a trace span (it starts and ends inside one write). */
static void trace_resize(const sw_map *m, const char *name, bool begin, size_t slots)
{
    if (GM_LIKELY(!gm_tracing_on())) return;
    if (begin) gm_trace_async_begin("map", name, (uint64_t)(uintptr_t)m, "slots", (int64_t)slots);
    else gm_trace_async_end("map", name, (uint64_t)(uintptr_t)m);
}

/* Rebuilds t with `cap` slots (bigger, the same, or smaller). */
static bool table_rebuild(sw_map *m, sw_table *t, size_t cap)
{
    sw_table *nt = table_new(m, cap, t->local_depth, false);
    if (nt == NULL) return false;
    const char *tn = cap > t->capacity ? "map grow" : cap < t->capacity ? "map shrink" : "map rehash";
    trace_resize(m, tn, true, cap);
    for (size_t gi = 0; gi <= t->mask; gi++) {
        uint8_t *g = sw_group(m, t, gi);
        for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1) {
            unsigned i = sw_first(f);
            move_slot(m, nt, slot_hash(m, t, g, i), t, g, i);
        }
    }
    if (cap > t->capacity) m->n_grows++;
    else if (cap < t->capacity) m->n_shrinks++;
    else m->n_rehashes++;
    dir_replace(m, t, nt);
    trace_resize(m, tn, false, cap);
    return true;
}

/* Every directory entry becomes two. */
static bool dir_double(sw_map *m)
{
    size_t n = m->dir_len;
    if (m->gd >= 48) return false;
    sw_dent *d = m->dir_next;
    size_t from = m->dir_next_done;
    if (d == NULL) {
        d = dir_alloc(m, 2 * n);
        if (d == NULL) return false;
        from = 0;
    }
    dir_mirror(m, d, from, n);
    if (n - from > m->max_dir_copied) m->max_dir_copied = n - from;
    sw_pstore(m, &m->dir_next, NULL);
    m->dir_next_done = 0;
    sw_dent *old = m->dir;
    sw_pstore(m, &m->dir, d);
    m->dir_len = 2 * n;
    m->gd++;
    m->n_at_gd = 0;
    m->n_doublings++;
    dir_free(m, old);
    return true;
}

/* Every pair of directory entries becomes one (no table has ld == gd). */
static void dir_halve(sw_map *m)
{
    size_t n = m->dir_len / 2;
    sw_dent *d = dir_alloc(m, n);
    if (d == NULL) return; /* stays as it is: still valid */
    dir_next_drop(m);
    for (size_t j = 0; j < n; j++) dent_set(m, &d[j], m->dir[2 * j].t);
    sw_dent *old = m->dir;
    sw_pstore(m, &m->dir, d);
    m->dir_len = n;
    m->gd--;
    m->n_at_gd = 0;
    for (size_t j = 0; j < n; j++)
        if ((j == 0 || d[j - 1].t != d[j].t) && d[j].t->local_depth == m->gd) m->n_at_gd++;
    m->n_halvings++;
    dir_free(m, old);
}

/* A full 1024-slot table becomes two by hash bit 63 - ld. */
static bool table_split(sw_map *m, sw_table *t)
{
    unsigned ld = t->local_depth;
    uint64_t hs[SW_MAX_TABLE];
    size_t right = 0;
    if (t->capacity <= SW_MAX_TABLE && ld < 48) {
        for (size_t gi = 0; gi <= t->mask; gi++) {
            uint8_t *g = sw_group(m, t, gi);
            for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1) {
                unsigned i = sw_first(f);
                uint64_t h = slot_hash(m, t, g, i);
                hs[gi * SW_SLOTS + i] = h;
                right += (h >> (63 - ld)) & 1;
            }
        }
    }
    if (t->capacity > SW_MAX_TABLE || ld >= 48 || right == 0 || right == t->used)
        return table_rebuild(m, t, (size_t)t->capacity * 2); /* the keys do not split: grow past the cap */
    /* Both tables first: a doubling from the prepared directory allocates
     * nothing, and a failed insert must leave the directory as it was. */
    sw_table *l = table_new(m, SW_MAX_TABLE, ld + 1, false);
    if (l == NULL) return false;
    sw_table *r = table_new(m, SW_MAX_TABLE, ld + 1, false);
    if (r == NULL || (ld == m->gd && !dir_double(m))) {
        table_free_now(m, l);
        if (r) table_free_now(m, r);
        return false;
    }
    trace_resize(m, "map split", true, 2 * SW_MAX_TABLE);
    for (size_t gi = 0; gi <= t->mask; gi++) {
        uint8_t *g = sw_group(m, t, gi);
        for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1) {
            unsigned i = sw_first(f);
            uint64_t h = hs[gi * SW_SLOTS + i];
            move_slot(m, (h >> (63 - ld)) & 1 ? r : l, h, t, g, i);
        }
    }
    size_t span = (size_t)1 << (m->gd - ld), idx = sw_tindex(m, t);
    for (size_t j = idx; j < idx + span / 2; j++) dir_set(m, j, l);
    for (size_t j = idx + span / 2; j < idx + span; j++) dir_set(m, j, r);
    l->prefix = 2 * t->prefix;
    r->prefix = 2 * t->prefix + 1;
    if (ld + 1 == m->gd) m->n_at_gd += 2;
    m->ntables++;
    m->cap_total += SW_MAX_TABLE;
    m->n_splits++;
    table_retire(m, t);
    dir_prepare(m);
    trace_resize(m, "map split", false, 2 * SW_MAX_TABLE);
    return true;
}

/* Go issue 70886: empties the tombstones that no probe sequence needs. */
static void table_prune(sw_map *m, sw_table *t)
{
    uint64_t needed[SW_MAX_TABLE / SW_SLOTS / 64 + 1];
    size_t ng = t->mask + 1;
    if (ng > SW_MAX_TABLE / SW_SLOTS) return; /* fat tables (degenerate hashes) are not pruned */
    memset(needed, 0, sizeof needed);
    for (size_t gi = 0; gi < ng; gi++) {
        uint8_t *g = sw_group(m, t, gi);
        for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1) {
            unsigned i = sw_first(f);
            uint8_t *k = sw_key(m, t, g, i);
            if (!m->reflexive && !m->keyeq(k, k)) continue; /* NaN: no lookup needs a path */
            uint64_t h = sw_hash(m, k);
            size_t off = sw_h1(h) & t->mask, step = 0;
            while (off != gi) {
                needed[off / 64] |= 1ull << (off % 64);
                off = (off + ++step) & t->mask;
            }
        }
    }
    uint32_t freed = 0;
    for (size_t gi = 0; gi < ng; gi++) {
        if (needed[gi / 64] & (1ull << (gi % 64))) continue;
        uint8_t *g = sw_group(m, t, gi);
        for (unsigned i = 0; i < SW_SLOTS; i++) {
            if (g[i] == SW_DELETED) {
                g[i] = SW_EMPTY;
                freed++;
            }
        }
    }
    t->tombstones -= freed;
    t->growth_left += freed;
    m->n_prunes++;
    m->n_pruned += freed;
}

/* t has no growth_left: prune, rebuild, grow or split.  False: no memory. */
static bool make_room(sw_map *m, sw_table *t)
{
    size_t cap = t->capacity;
    if (t->tombstones && t->tombstones >= cap / 10) {
        table_prune(m, t);
        size_t enough = cap / 32 ? cap / 32 : 1;
        if (t->growth_left >= enough) return true;
    }
    if (t->tombstones && (size_t)t->used * 16 < cap * 7) return table_rebuild(m, t, cap);
    if (cap < SW_MAX_TABLE) return table_rebuild(m, t, cap * 2);
    return table_split(m, t);
}

/* The 9th entry: the small group's 8 entries move into a 16-slot table. */
static bool small_to_table(sw_map *m)
{
    sw_dent *d = dir_alloc(m, 1);
    if (d == NULL) return false;
    sw_table *t = table_new(m, gm_sw_cap_for(SW_SMALL + 1), 0, false);
    if (t == NULL) {
        dir_free(m, d);
        return false;
    }
    sw_table *s = m->small;
    uint8_t *g = s->ctrl;
    for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1) {
        unsigned i = sw_first(f);
        move_slot(m, t, slot_hash(m, s, g, i), s, g, i);
    }
    t->prefix = 0;
    dent_set(m, &d[0], t);
    sw_pstore(m, &m->dir, d);
    m->dir_len = 1;
    m->gd = 0;
    m->n_at_gd = 1;
    m->ntables = 1;
    m->cap_total = t->capacity;
    sw_pstore(m, &m->small, NULL);
    table_retire(m, s);
    m->n_grows++;
    return true;
}

/* Storage a new entry needs besides its slot, allocated before anything
 * changes so that running out of memory leaves the map as it was. */
struct new_entry {
    void *kmem, *emem;
    char *sbytes;
};

static void ne_free(sw_map *m, struct new_entry *ne)
{
    own_free(m, ne->kmem, m->kt->align, false);
    own_free(m, ne->emem, m->vt->align, false);
    own_free(m, ne->sbytes, 1, false);
}

static bool ne_alloc(sw_map *m, const void *key, struct new_entry *ne)
{
    memset(ne, 0, sizeof *ne);
    if (m->indirectkey && !(ne->kmem = own_alloc(m, m->kt->size, m->kt))) return false;
    if (m->indirectelem) {
        if (!(ne->emem = own_alloc(m, m->vt->size, m->vt))) goto fail;
        memset(ne->emem, 0, m->vt->size);
    }
    if (m->ownedkey) {
        const gm_str *s = key;
        if (s->len && !(ne->sbytes = own_alloc(m, s->len, NULL))) goto fail;
        if (s->len) memcpy(ne->sbytes, s->ptr, s->len);
    }
    return true;
fail:
    ne_free(m, ne);
    return false;
}

/* Writes a new entry into the free slot (g, i); returns its value slot.
 * The caller has updated the table's counters. */
static void *store_entry(sw_map *m, const sw_table *t, uint8_t *g, unsigned i, uint8_t h2, const void *key,
                         struct new_entry *ne)
{
    uint8_t *kslot = sw_slot(m, t, g, i), *eslot = kslot + m->elemoff;
    if (m->indirectkey) {
        sw_pstore(m, kslot, ne->kmem); /* bscan whenever indirect on GC maps */
        kslot = ne->kmem;
    }
    if (m->indirectelem) {
        sw_pstore(m, eslot, ne->emem);
        eslot = ne->emem;
    }
    gm_str owned;
    if (m->ownedkey) {
        owned = (gm_str){ ne->sbytes, ((const gm_str *)key)->len };
        key = &owned;
    }
    if (m->gc && m->kt->ptrmask) gm_typed_memmove(m->kt, kslot, key);
    else if (m->kt->size) memcpy(kslot, key, m->kt->size);
    if (!m->indirectelem && !m->bscan) memset(eslot, 0, m->elemsize);
    sw_ctrl_set(g, i, h2);
    m->count++;
    return eslot;
}

static void *insert_slow(sw_map *m, const sw_table *t, const void *key, uint8_t *g, unsigned i, uint8_t h2)
{
    struct new_entry ne;
    if (m->owns_storage && !ne_alloc(m, key, &ne)) return NULL;
    if (!m->owns_storage) memset(&ne, 0, sizeof ne);
    return store_entry(m, t, g, i, h2, key, &ne);
}

/* Inline store for maps without storage or barriers. */
SW_INLINE void *store_plain(sw_map *m, const sw_table *t, int kind, const void *key, uint8_t *g, unsigned i,
                            uint8_t h2)
{
    uint8_t *k = sw_slot(m, t, g, i);
    switch (kind) {
    case SK_U32: memcpy(k, key, 4); break;
    case SK_U64: memcpy(k, key, 8); break;
    case SK_STR: memcpy(k, key, sizeof(gm_str)); break;
    default: if (m->kt->size) memcpy(k, key, m->kt->size);
    }
    uint8_t *e = k + m->elemoff;
    switch (m->elemsize) {
    case 0: break;
    case 8: memset(e, 0, 8); break;
    default: memset(e, 0, m->elemsize);
    }
    sw_ctrl_set(g, i, h2);
    m->count++;
    return e;
}

static bool small_new(sw_map *m)
{
    sw_table *s = table_new(m, SW_SMALL, 0, true);
    if (s == NULL) return false;
    sw_pstore(m, &m->small, s);
    return true;
}

/* The small map's slot of key, or -1.  Fast kinds compare without hashing. */
SW_INLINE int small_find(const sw_map *m, int kind, const void *key, uint64_t h)
{
    const sw_table *t = m->small;
    uint8_t *g = t->ctrl;
    sw_cw w = sw_ctrl(g);
    sw_bits cand = kind == SK_GENERIC ? sw_match_h2(w, sw_h2(h)) : sw_match_full(w);
    for (; cand; cand &= cand - 1) {
        unsigned i = sw_first(cand);
        uint8_t *k = kind == SK_GENERIC ? sw_key(m, t, g, i) : sw_slot(m, t, g, i);
        if (sw_equal_kind(m, kind, key, k)) return (int)i;
    }
    return -1;
}

SW_INLINE void *assign_impl(sw_map *m, int kind, const void *key)
{
    uint64_t h = 0;
    if (m->dir == NULL) {
        if (m->small == NULL && !small_new(m)) return NULL;
        if (kind == SK_GENERIC) h = sw_hash_kind(m, kind, key);
        int i = small_find(m, kind, key, h);
        sw_table *t = m->small;
        uint8_t *g = t->ctrl;
        if (i >= 0) {
            if (kind == SK_GENERIC && m->keyupdate) sw_update_key(m, sw_key(m, t, g, (unsigned)i), key);
            return sw_elem(m, t, g, (unsigned)i);
        }
        if (kind != SK_GENERIC) h = sw_hash_kind(m, kind, key);
        sw_bits e = sw_match_empty(sw_ctrl(g)) & ((1u << SW_SMALL) - 1);
        if (e) {
            unsigned s = sw_first(e);
            void *r = (!m->owns_storage && !m->gc) ? store_plain(m, t, kind, key, g, s, sw_h2(h))
                                                   : insert_slow(m, t, key, g, s, sw_h2(h));
            if (r) {
                t->used++;
                t->growth_left--;
            }
            return r;
        }
        if (!small_to_table(m)) return NULL;
    } else {
        h = sw_hash_kind(m, kind, key);
    }
    uint8_t h2 = sw_h2(h);
    for (;;) {
        const sw_dent *d = sw_dent_for(m, h);
        __builtin_prefetch(d->t, 1); /* a new entry updates the header's counters */
        size_t mask = d->mask, off = sw_h1(h) & mask, step = 0;
        uint8_t *ig = NULL;
        unsigned ii = 0;
        for (;;) {
            uint8_t *g = sw_group(m, d, off);
            sw_cw w = sw_ctrl(g);
            for (sw_bits mt = sw_match_h2(w, h2); mt; mt &= mt - 1) {
                unsigned i = sw_first(mt);
                uint8_t *k = kind == SK_GENERIC ? sw_key(m, d, g, i) : sw_slot(m, d, g, i);
                if (!sw_equal_kind(m, kind, key, k)) continue;
                if (kind == SK_GENERIC && m->keyupdate) sw_update_key(m, k, key);
                return sw_elem(m, d, g, i);
            }
            if (ig == NULL) {
                sw_bits f = sw_match_empty_or_deleted(w);
                if (f) {
                    ig = g;
                    ii = sw_first(f);
                }
            }
            if (sw_match_empty(w)) break;
            off = (off + ++step) & mask;
        }
        sw_table *t = d->t;
        bool reuse = ig[ii] == SW_DELETED;
        if (!reuse && t->growth_left == 0) {
            if (!make_room(m, t)) return NULL;
            continue; /* the table changed: probe again */
        }
        void *r = (!m->owns_storage && !m->gc) ? store_plain(m, t, kind, key, ig, ii, h2)
                                               : insert_slow(m, t, key, ig, ii, h2);
        if (r == NULL) return NULL;
        if (reuse) t->tombstones--;
        else t->growth_left--;
        t->used++;
        return r;
    }
}

/* ------------------------------------------------------------ lookup */

SW_INLINE uint8_t *find_impl(const sw_map *m, int kind, const void *key, uint8_t **elem)
{
    if (m == NULL || m->count == 0) return NULL;
    if (sw_flags_load(m) & SWF_WRITING) gm_fatal("concurrent map read and map write");
    if (m->dir == NULL) {
        uint64_t h = kind == SK_GENERIC ? sw_hash_kind(m, kind, key) : 0;
        int i = small_find(m, kind, key, h);
        if (i < 0) return NULL;
        const sw_table *t = m->small;
        uint8_t *g = t->ctrl;
        *elem = sw_elem(m, t, g, (unsigned)i);
        return kind == SK_GENERIC ? sw_key(m, t, g, (unsigned)i) : sw_slot(m, t, g, (unsigned)i);
    }
    uint64_t h = sw_hash_kind(m, kind, key);
    const sw_dent *t = sw_dent_for(m, h);
    uint8_t h2 = sw_h2(h);
    size_t mask = t->mask, off = sw_h1(h) & mask, step = 0;
#ifndef SW_NO_SLOT_PREFETCH
    sw_prefetch_slots(m, t->slots, off);
#endif
    for (;;) {
        uint8_t *g = sw_group(m, t, off);
        sw_cw w = sw_ctrl(g);
        for (sw_bits mt = sw_match_h2(w, h2); mt; mt &= mt - 1) {
            unsigned i = sw_first(mt);
            uint8_t *k = kind == SK_GENERIC ? sw_key(m, t, g, i) : sw_slot(m, t, g, i);
            if (sw_equal_kind(m, kind, key, k)) {
                *elem = sw_elem(m, t, g, i);
                return k;
            }
        }
        if (sw_match_empty(w)) return NULL;
        off = (off + ++step) & mask;
    }
}

uint8_t *gm_sw_find(const sw_map *m, const void *key, uint8_t **elem)
{
    return find_impl(m, SK_GENERIC, key, elem);
}

void *gm_sw_get(const gm_map *m, const void *key)
{
    uint8_t *e;
    return find_impl(SW(m), SK_GENERIC, key, &e) ? e : NULL;
}

const void *gm_sw_get_or_zero(const gm_map *m, const void *key)
{
    void *e = gm_sw_get(m, key);
    if (e) return e;
    return SW(m)->zero ? SW(m)->zero : sw_zero_buf;
}

const gm_type *gm_sw_key_type(const gm_map *m) { return SW(m)->kt; }
const gm_type *gm_sw_val_type(const gm_map *m) { return SW(m)->vt; }

/* ------------------------------------------------------------ delete */

static void free_entry_storage(sw_map *m, const sw_table *t, uint8_t *g, unsigned i, bool published)
{
    if (!m->owns_storage || m->gc) return;
    uint8_t *s = sw_slot(m, t, g, i);
    if (m->ownedkey) own_free(m, (void *)((const gm_str *)sw_key(m, t, g, i))->ptr, 1, published);
    if (m->indirectkey) own_free(m, sw_deref(s), m->kt->align, published);
    if (m->indirectelem) own_free(m, sw_deref(s + m->elemoff), m->vt->align, published);
}

/* Merges t with its buddy, or rebuilds it alone, at half load. */
static void table_shrink(sw_map *m, sw_table *t)
{
    size_t want = gm_sw_cap_for(2 * (size_t)t->used);
    if (t->local_depth > 0) {
        size_t span = (size_t)1 << (m->gd - t->local_depth);
        sw_table *b = m->dir[sw_tindex(m, t) ^ span].t;
        size_t both = gm_sw_cap_for(2 * ((size_t)t->used + b->used));
        if (b->local_depth == t->local_depth && both <= SW_MAX_TABLE &&
            m->cap_total - t->capacity - b->capacity + both >= m->min_cap) {
            sw_table *nt = table_new(m, both, t->local_depth - 1u, false);
            if (nt == NULL) return;
            trace_resize(m, "map shrink", true, both);
            sw_table *src[2] = { t, b };
            for (int s = 0; s < 2; s++) {
                sw_table *x = src[s];
                for (size_t gi = 0; gi <= x->mask; gi++) {
                    uint8_t *g = sw_group(m, x, gi);
                    for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1) {
                        unsigned i = sw_first(f);
                        move_slot(m, nt, slot_hash(m, x, g, i), x, g, i);
                    }
                }
            }
            size_t lo = sw_tindex(m, t) & ~span;
            for (size_t j = lo; j < lo + 2 * span; j++) dir_set(m, j, nt);
            nt->prefix = t->prefix >> 1;
            if (t->local_depth == m->gd) m->n_at_gd -= 2;
            m->cap_total = m->cap_total - t->capacity - b->capacity + nt->capacity;
            m->ntables--;
            m->n_merges++;
            table_retire(m, t);
            table_retire(m, b);
            trace_resize(m, "map shrink", false, both);
            while (m->gd > 0 && m->n_at_gd == 0) {
                size_t before = m->dir_len;
                dir_halve(m);
                if (m->dir_len == before) break;
            }
            return;
        }
    }
    if (want < t->capacity && m->cap_total - t->capacity + want >= m->min_cap) (void)table_rebuild(m, t, want);
}

SW_INLINE bool delete_impl(sw_map *m, int kind, const void *key)
{
    if (m->dir == NULL) {
        uint64_t h = kind == SK_GENERIC ? sw_hash_kind(m, kind, key) : 0;
        int i = small_find(m, kind, key, h);
        if (i < 0) return false;
        sw_table *t = m->small;
        uint8_t *g = t->ctrl;
        free_entry_storage(m, t, g, (unsigned)i, true);
        if (m->bscan) sw_clear_slot(m, sw_slot(m, t, g, (unsigned)i));
        sw_ctrl_set(g, (unsigned)i, SW_EMPTY);
        m->small->used--;
        m->small->growth_left++;
        if (--m->count == 0) m->seed = gm_map_rand();
        return true;
    }
    uint64_t h = sw_hash_kind(m, kind, key);
    const sw_dent *d = sw_dent_for(m, h);
    /* The header's counters change below: its line loads while the probe
     * waits for the control bytes and the slot (a big map misses all three). */
    __builtin_prefetch(d->t, 1);
    uint8_t h2 = sw_h2(h);
    size_t mask = d->mask, off = sw_h1(h) & mask, step = 0;
#ifndef SW_NO_SLOT_PREFETCH
    sw_prefetch_slots(m, d->slots, off);
#endif
    for (;;) {
        uint8_t *g = sw_group(m, d, off);
        sw_cw w = sw_ctrl(g);
        for (sw_bits mt = sw_match_h2(w, h2); mt; mt &= mt - 1) {
            unsigned i = sw_first(mt);
            uint8_t *k = kind == SK_GENERIC ? sw_key(m, d, g, i) : sw_slot(m, d, g, i);
            if (!sw_equal_kind(m, kind, key, k)) continue;
            sw_table *t = d->t;
            if (m->owns_storage) free_entry_storage(m, t, g, i, true);
            if (m->bscan) sw_clear_slot(m, sw_slot(m, t, g, i));
            if (sw_match_empty(w)) {
                sw_ctrl_set(g, i, SW_EMPTY);
                t->growth_left++;
            } else {
                sw_ctrl_set(g, i, SW_DELETED);
                t->tombstones++;
            }
            t->used--;
            if (--m->count == 0) m->seed = gm_map_rand();
            if (GM_UNLIKELY((size_t)t->used * SW_SHRINK_AT <= t->capacity && t->capacity > SW_SLOTS) &&
                atomic_load_explicit(&m->iters_open, memory_order_acquire) == 0)
                table_shrink(m, t);
            return true;
        }
        if (sw_match_empty(w)) return false;
        off = (off + ++step) & mask;
    }
}

/* ------------------------------------------------------------ entry points */

SW_INLINE void *assign_entry(sw_map *m, int kind, const void *key)
{
    if (m == NULL) gm_fatal("assignment to entry in nil map");
    begin_write(m);
    void *e = assign_impl(m, kind, key);
    end_write(m);
    return e;
}

SW_INLINE bool delete_entry(sw_map *m, int kind, const void *key)
{
    if (m == NULL || m->count == 0) return false;
    begin_write(m);
    bool found = delete_impl(m, kind, key);
    end_write(m);
    return found;
}

void *gm_sw_assign(gm_map *m, const void *key) { return assign_entry(SW(m), SK_GENERIC, key); }

void gm_sw_put(gm_map *gm, const void *key, const void *val)
{
    sw_map *m = SW(gm);
    void *e = gm_sw_assign(gm, key);
    if (e == NULL) gm_fatal("runtime: out of memory");
    if (m->gc && m->vt->ptrmask) gm_typed_memmove(m->vt, e, val);
    else if (m->vt->size) memcpy(e, val, m->vt->size);
}

bool gm_sw_delete(gm_map *m, const void *key) { return delete_entry(SW(m), SK_GENERIC, key); }

static void require_kind(const sw_map *m, int kind, const char *fn)
{
    if (GM_LIKELY(m == NULL || m->kind == kind)) return;
    gm_fatalf("%s: map key type is %s", fn, m->kt->name ? m->kt->name : "?");
}

void *gm_sw_get_u32(const gm_map *m, uint32_t key)
{
    require_kind(SW(m), SK_U32, "gm_map_get_u32");
    uint8_t *e;
    return find_impl(SW(m), SK_U32, &key, &e) ? e : NULL;
}
void *gm_sw_assign_u32(gm_map *m, uint32_t key)
{
    require_kind(SW(m), SK_U32, "gm_map_assign_u32");
    return assign_entry(SW(m), SK_U32, &key);
}
bool gm_sw_delete_u32(gm_map *m, uint32_t key)
{
    require_kind(SW(m), SK_U32, "gm_map_delete_u32");
    return delete_entry(SW(m), SK_U32, &key);
}
void *gm_sw_get_u64(const gm_map *m, uint64_t key)
{
    require_kind(SW(m), SK_U64, "gm_map_get_u64");
    uint8_t *e;
    return find_impl(SW(m), SK_U64, &key, &e) ? e : NULL;
}
void *gm_sw_assign_u64(gm_map *m, uint64_t key)
{
    require_kind(SW(m), SK_U64, "gm_map_assign_u64");
    return assign_entry(SW(m), SK_U64, &key);
}
bool gm_sw_delete_u64(gm_map *m, uint64_t key)
{
    require_kind(SW(m), SK_U64, "gm_map_delete_u64");
    return delete_entry(SW(m), SK_U64, &key);
}
void *gm_sw_get_str(const gm_map *m, const char *key, size_t len)
{
    require_kind(SW(m), SK_STR, "gm_map_get_str");
    gm_str s = { key, len };
    uint8_t *e;
    return find_impl(SW(m), SK_STR, &s, &e) ? e : NULL;
}
void *gm_sw_assign_str(gm_map *m, const char *key, size_t len)
{
    require_kind(SW(m), SK_STR, "gm_map_assign_str");
    gm_str s = { key, len };
    return assign_entry(SW(m), SK_STR, &s);
}
bool gm_sw_delete_str(gm_map *m, const char *key, size_t len)
{
    require_kind(SW(m), SK_STR, "gm_map_delete_str");
    gm_str s = { key, len };
    return delete_entry(SW(m), SK_STR, &s);
}

/* ------------------------------------------------------------ clear, free, clone */

static void table_free_storage(sw_map *m, sw_table *t)
{
    for (size_t gi = 0; gi <= t->mask; gi++) {
        uint8_t *g = sw_group(m, t, gi);
        for (sw_bits f = sw_match_full(sw_ctrl(g)); f; f &= f - 1)
            free_entry_storage(m, t, g, sw_first(f), false);
    }
}

/* Drops every table (freeing what entries own when `storage`). */
static void drop_all(sw_map *m, bool storage)
{
    storage = storage && m->owns_storage && !m->gc;
    if (m->small) {
        if (storage) table_free_storage(m, m->small);
        sw_table *s = m->small;
        sw_pstore(m, &m->small, NULL);
        table_retire(m, s);
    }
    if (m->dir) {
        for (size_t j = 0; j < m->dir_len;) {
            sw_table *t = m->dir[j].t;
            j += (size_t)1 << (m->gd - t->local_depth); /* past its entries: it may be freed now */
            if (storage) table_free_storage(m, t);
            table_retire(m, t);
        }
        sw_dent *d = m->dir;
        sw_pstore(m, &m->dir, NULL);
        dir_free(m, d);
    }
    dir_next_drop(m);
    m->dir_len = 0;
    m->gd = 0;
    m->n_at_gd = 0;
    m->ntables = 0;
    m->cap_total = 0;
    m->min_cap = 0;
}

void gm_sw_clear(gm_map *gm)
{
    sw_map *m = SW(gm);
    if (m == NULL || m->count == 0) return;
    begin_write(m);
    /* Every running iterator stops (Go issue 59411): they check clear_seq
     * before touching any table, so nothing is pinned any more. */
    m->clear_seq++;
    atomic_store_explicit(&m->iters_open, 0, memory_order_release);
    drop_all(m, true);
    m->count = 0;
    m->seed = gm_map_rand();
    end_write(m);
}

void gm_sw_free(gm_map *gm)
{
    sw_map *m = SW(gm);
    if (m == NULL || m->gc) return;
    if (sw_flags_load(m) & SWF_WRITING) gm_fatal("concurrent map writes");
    atomic_store_explicit(&m->iters_open, 0, memory_order_relaxed);
    drop_all(m, true);
    retired_release(m);
    deferred_release(m);
    slab_release_spare(m);
    gm_map_mfree(m->zero);
    gm_map_mfree(m);
}

gm_map *gm_sw_clone(const gm_map *gsrc)
{
    const sw_map *src = SW(gsrc);
    if (src == NULL) return NULL;
    gm_map *c = gm_sw_new(src->kt, src->vt, src->count, src->gc);
    if (c == NULL) return NULL;
    sw_map *m = SW(c);
    gm_map_iter it;
    const void *k;
    void *v;
    gm_sw_iter_init(&it, (gm_map *)gsrc);
    while (gm_sw_iter_next(&it, &k, &v)) {
        void *e = gm_sw_assign(c, k);
        if (e == NULL) {
            gm_sw_iter_done(&it);
            gm_sw_free(c);
            errno = ENOMEM;
            return NULL;
        }
        if (m->gc && m->vt->ptrmask) gm_typed_memmove(m->vt, e, v);
        else if (m->vt->size) memcpy(e, v, m->vt->size);
    }
    return c;
}

/* ------------------------------------------------------------ stats */

void gm_sw_stats_get(const gm_map *gm, gm_map_stats *out)
{
    const sw_map *m = SW(gm);
    memset(out, 0, sizeof *out);
    out->engine = GM_MAP_SWISS;
    out->count = m->count;
    out->b = m->gd;
    out->global_depth = m->gd;
    out->dir_len = m->dir_len;
    out->small = m->dir == NULL;
    out->bytes = m->bytes_held + (m->dir ? m->dir_len * sizeof(sw_dent) : 0);
    for (sw_table *t = m->retired; t; t = t->next) out->retired_pending++;
    if (m->small) {
        out->slots = SW_SMALL;
        out->nbuckets = 1;
        out->array = m->small->ctrl;
        out->array_bytes = SW_SLOTS + SW_SMALL * (size_t)m->slotsize;
    }
    if (m->dir) {
        for (size_t j = 0; j < m->dir_len; j++) {
            sw_table *t = m->dir[j].t;
            if (sw_tindex(m, t) != j) continue;
            out->tables++;
            out->slots += t->capacity;
            out->tombstones += t->tombstones;
            out->array_bytes += t->capacity * ((size_t)m->slotsize + 1);
        }
        out->nbuckets = out->slots / SW_SLOTS;
        out->array = m->dir;
    }
    out->grows = m->n_grows;
    out->shrinks = m->n_shrinks + m->n_merges;
    out->moved_entries = m->n_moved;
    out->splits = m->n_splits;
    out->merges = m->n_merges;
    out->dir_doublings = m->n_doublings;
    out->dir_halvings = m->n_halvings;
    out->prunes = m->n_prunes;
    out->pruned = m->n_pruned;
    out->rehashes = m->n_rehashes;
    out->max_moved_per_write = m->max_moved_write;
    out->indirect_key = m->indirectkey;
    out->indirect_val = m->indirectelem;
    out->scanned = m->bscan;
}
