/* gomap/map.h - Go's runtime map for C, with two engines: the classic hmap
 * (Go 1.19-1.23) and Go 1.24's Swiss table (see "Engines" below).
 *
 * Keys and values are copied into the map by value, as Go does; their types
 * are described by gm_type (gomap/type.h).  Slot pointers returned by get and
 * assign stay valid until the next write (assign, put, delete, clear) to the
 * same map.  A NULL map behaves as Go's nil map.
 *
 * Errors: gm_map_new returns NULL (errno ENOMEM or EINVAL, and a message on
 * stderr for a bad type) when it cannot build the map; gm_map_assign returns
 * NULL when memory for the new entry cannot be had, leaving the map exactly as
 * it was; gm_map_put, which cannot report, aborts with
 * "fatal error: runtime: out of memory".  Misuse that Go makes fatal is fatal
 * here with Go's message.
 */
#ifndef GOMAP_MAP_H
#define GOMAP_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gomap/config.h"
#include "gomap/type.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gm_map gm_map;

GM_API gm_map *gm_map_new(const gm_type *key, const gm_type *val, size_t hint); /* makemap, on malloc */
/* makemap on the GC heap: header, buckets, overflow buckets and indirect
 * keys/values are GC objects, and the map is collected when unreachable
 * (gm_map_free does nothing for it).  Keys and values may hold GC pointers
 * (their types' ptrmask says where): the map keeps what they point to alive.
 * The map writes its slots with the write barrier; a caller writing a
 * pointer into a value slot returned by gm_map_assign must do the same
 * (gm_store, gm_typed_memmove) -- or use gm_map_put. */
GM_API gm_map *gm_map_new_gc(const gm_type *key, const gm_type *val, size_t hint);
/* Engines.  Both run every call in this header with the same behaviour.
 * GM_MAP_ENGINE_DEFAULT is what gm_map_new and gm_map_new_gc use:
 * GMDEBUG=mapengine=classic|swiss chooses, else Swiss (as in Go 1.24).
 * GM_MAP_CLASSIC selects the classic engine for one map. */
typedef enum gm_map_engine {
    GM_MAP_ENGINE_DEFAULT = 0,
    GM_MAP_CLASSIC,             /* Go 1.19-1.23 hmap: buckets, overflow chains, incremental evacuation */
    GM_MAP_SWISS,               /* Go 1.24: groups with control words, tables, extendible hashing */
} gm_map_engine;
typedef struct gm_map_opts {
    gm_map_engine engine;
    bool gc;                    /* on the GC heap, as gm_map_new_gc */
    size_t hint;
} gm_map_opts;
/* NULL opts: the defaults (default engine, malloc, no hint). */
GM_API gm_map *gm_map_new_opts(const gm_type *key, const gm_type *val, const gm_map_opts *opts);
/* The engine of m: never GM_MAP_ENGINE_DEFAULT for a map; NULL map -> DEFAULT. */
GM_API gm_map_engine gm_map_engine_of(const gm_map *m);

/* A weak-keyed GC map (JavaScript WeakMap, Lua weak-keyed tables): keys are
 * GC pointers (key->size == sizeof(void *); compared by address, key's
 * hash/equal unused), a key that is not inside a GC object is fatal.  An
 * entry lives exactly while its key is reachable from outside the map's
 * values: a value pointing back at its key (or at another entry's key) does
 * not keep it.  After a cycle that found a key unreachable its entry is
 * gone: len drops, get/delete miss it, iteration never returns it.  Values
 * are held in boxes (GC objects of type val, which may have a trace
 * function): get and assign return the box, stable for the entry's life; a
 * caller writing pointers into it uses the write barrier as for any GC
 * object.  All the gm_map_* calls apply except the _u32/_u64/_str fast
 * paths; operations take a lock, so readers and writers may share it. */
GM_API gm_map *gm_map_new_weak(const gm_type *key, const gm_type *val, size_t hint);
GM_API void    gm_map_free(gm_map *m);               /* malloc maps; NULL is fine */
GM_API size_t  gm_map_len(const gm_map *m);          /* len(m); NULL map -> 0 */
GM_API void   *gm_map_get(const gm_map *m, const void *key);   /* mapaccess2: value slot or NULL */
/* mapaccess1: the value slot, or a pointer to a zero value when absent. */
GM_API const void *gm_map_get_or_zero(const gm_map *m, const void *key);
GM_API void   *gm_map_assign(gm_map *m, const void *key);      /* mapassign */
GM_API void    gm_map_put(gm_map *m, const void *key, const void *val); /* m[k] = v */
GM_API bool    gm_map_delete(gm_map *m, const void *key);      /* mapdelete */
GM_API void    gm_map_clear(gm_map *m);                        /* clear(m), NaN keys too */
GM_API gm_map *gm_map_clone(const gm_map *m);                  /* maps.Clone */
GM_API const gm_type *gm_map_key_type(const gm_map *m);
GM_API const gm_type *gm_map_val_type(const gm_map *m);

/* Iteration.  The iterator lives wherever the caller puts it (the stack is
 * fine) and is private; read nothing from it.  Go's guarantees hold: random
 * start, every entry present for the whole iteration returned exactly once,
 * entries deleted before they are reached never returned, correct while the
 * map grows.  An iterator that runs to the end releases itself.  One that is
 * abandoned early should be passed to gm_map_iter_done: until then bucket
 * arrays retired by growth are kept for it (never unsafe; only memory, and
 * only until the map is cleared or freed). */
typedef struct gm_map_iter {
    /* private */
    gm_map *m;
    void *buckets;          /* the bucket array snapshot at init */
    void *keep;             /* GC maps: the snapshot's header (keeps its overflow alive) */
    void *keep_old;         /* GC maps: the header of an old array being walked */
    void *shrink_new, *keep_new; /* shrinking: the new array of phase 3, and its header */
    void *bptr;             /* current bucket */
    size_t start_bucket, bucket, check_bucket;
    uint64_t clear_seq;
    size_t cur;             /* the iterator bucket being walked (shrink phases) */
    uint8_t offset, b, i, wrapped, counted, done, phase, walked;
    uint64_t slots;         /* bptr's live slots not yet visited, rotated by offset (one bit a slot) */
    void *fast;             /* == the map's array while the simple walk applies (classic engine) */
    /* Swiss engine */
    void *sw_tab;           /* the table (or small group) being walked */
    size_t sw_dir_idx, sw_dir_off, sw_ent;
    uint32_t sw_ent_off;
    uint8_t sw_gd, sw_small;
} gm_map_iter;

GM_API void gm_map_iter_init(gm_map_iter *it, gm_map *m);      /* mapiterinit */
GM_API bool gm_map_iter_next(gm_map_iter *it, const void **key, void **val); /* mapiternext */
GM_API void gm_map_iter_done(gm_map_iter *it);                 /* early stop (optional) */

/* fast paths: the map's key type must be gm_type_u32 / gm_type_u64 /
 * gm_type_str (or gm_type_str_owned); otherwise they are fatal. */
GM_API void *gm_map_get_u32(const gm_map *m, uint32_t key);
GM_API void *gm_map_assign_u32(gm_map *m, uint32_t key);
GM_API bool  gm_map_delete_u32(gm_map *m, uint32_t key);
GM_API void *gm_map_get_u64(const gm_map *m, uint64_t key);
GM_API void *gm_map_assign_u64(gm_map *m, uint64_t key);
GM_API bool  gm_map_delete_u64(gm_map *m, uint64_t key);
GM_API void *gm_map_get_str(const gm_map *m, const char *key, size_t len);
GM_API void *gm_map_assign_str(gm_map *m, const char *key, size_t len);
GM_API bool  gm_map_delete_str(gm_map *m, const char *key, size_t len);

/* Introspection: the shape of the table right now. */
typedef struct gm_map_stats {
    size_t count;          /* len(m) */
    unsigned b;            /* log2 of the bucket count */
    size_t nbuckets;       /* 2^b */
    size_t noverflow;      /* overflow buckets in use by the current array (Go's estimate above b=15) */
    bool growing;          /* an old array is being evacuated */
    bool same_size_grow;
    bool shrinking;        /* the table is being halved (beyond Go: see docs/map.md) */
    size_t old_nbuckets;   /* 0 unless growing */
    size_t nevacuate;      /* old buckets below this are evacuated */
    size_t bytes;          /* bucket arrays and overflow blocks held, retired ones included */
    size_t retired_pending;/* retired arrays kept for open iterators or not yet released */
    const void *array;     /* current bucket array and its size in bytes */
    size_t array_bytes;
    /* work counters since creation */
    uint64_t grows, same_size_grows, shrinks, evacuated_buckets, moved_entries, overflow_allocs;
    /* Swiss engine (zero for classic maps): nbuckets counts groups of 8
     * slots, b is the directory's global depth; grows counts table doublings,
     * shrinks table halvings and merges. */
    gm_map_engine engine;
    bool small;            /* a single group: no table, no directory */
    size_t tables, dir_len, slots, tombstones;
    unsigned global_depth;
    uint64_t splits, merges, dir_doublings, dir_halvings, prunes, pruned, rehashes;
    uint64_t max_moved_per_write; /* most entries moved by one write since creation */
    /* both engines: the layout */
    bool indirect_key, indirect_val; /* stored out of line (over 128 bytes) */
    bool scanned;          /* GC map whose tables/buckets hold pointers (typed, barriered) */
} gm_map_stats;
GM_API void gm_map_stats_get(const gm_map *m, gm_map_stats *out);

/* Verifies every invariant of the map (see the essay in src/map/map.c).
 * Returns NULL when all hold, else a description of the first violation
 * (thread-local storage, valid until the next call on this thread). */
GM_API const char *gm_map_check(const gm_map *m);

/* ------------------------------------------------------------------------
 * Type-safe layer.
 *
 *   GM_MAP_DEFINE(wordcount, gm_str, int64_t, gm_type_str)
 *
 * declares `wordcount` (an opaque map of gm_str -> int64_t) and
 *   wordcount *wordcount_new(size_t hint);      void wordcount_free(wordcount *);
 *   int64_t  wordcount_get(wordcount *, gm_str k);          m[k] (zero if absent)
 *   bool     wordcount_lookup(wordcount *, gm_str k, int64_t *out);  v, ok := m[k]
 *   void     wordcount_put(wordcount *, gm_str k, int64_t v);
 *   int64_t *wordcount_ref(wordcount *, gm_str k);          &m[k], for m[k]++
 *   bool     wordcount_delete(wordcount *, gm_str k);
 *   size_t   wordcount_len(wordcount *);   void wordcount_clear(wordcount *);
 *   wordcount *wordcount_clone(wordcount *);  gm_map *wordcount_map(wordcount *);
 *   wordcount_iter it; wordcount_iter_init(&it, m);
 *   while (wordcount_iter_next(&it, &k, &v)) ...;  wordcount_iter_done(&it);
 * The value type must be pointer-free (malloc maps).
 * ------------------------------------------------------------------------ */
#define GM_MAP_DEFINE(name, K, V, keytype)                                      \
    typedef struct name name;                                                  \
    typedef struct name##_iter { gm_map_iter it; } name##_iter;                \
    static const gm_type name##_val_type_ = { sizeof(V), _Alignof(V), NULL,    \
        NULL, NULL, 0, #V, NULL };                                             \
    static inline GM_MAYBE_UNUSED gm_map *name##_map(name *m) { return (gm_map *)(void *)m; }  \
    static inline GM_MAYBE_UNUSED name *name##_new(size_t hint)                                \
    { return (name *)(void *)gm_map_new(&(keytype), &name##_val_type_, hint); }\
    static inline GM_MAYBE_UNUSED void name##_free(name *m) { gm_map_free(name##_map(m)); }    \
    static inline GM_MAYBE_UNUSED size_t name##_len(name *m) { return gm_map_len(name##_map(m)); } \
    static inline GM_MAYBE_UNUSED void name##_clear(name *m) { gm_map_clear(name##_map(m)); }  \
    static inline GM_MAYBE_UNUSED name *name##_clone(name *m)                                  \
    { return (name *)(void *)gm_map_clone(name##_map(m)); }                    \
    static inline GM_MAYBE_UNUSED bool name##_lookup(name *m, K key, V *out)                   \
    {                                                                          \
        const V *p = (const V *)gm_map_get(name##_map(m), &key);               \
        if (p == NULL) { if (out) memset(out, 0, sizeof(V)); return false; }   \
        if (out) memcpy(out, p, sizeof(V));                                    \
        return true;                                                           \
    }                                                                          \
    static inline GM_MAYBE_UNUSED V name##_get(name *m, K key)                                 \
    { V v; name##_lookup(m, key, &v); return v; }                              \
    static inline GM_MAYBE_UNUSED void name##_put(name *m, K key, V val)                       \
    { gm_map_put(name##_map(m), &key, &val); }                                 \
    static inline GM_MAYBE_UNUSED V *name##_ref(name *m, K key)                                \
    { return (V *)gm_map_assign(name##_map(m), &key); }                        \
    static inline GM_MAYBE_UNUSED bool name##_delete(name *m, K key)                           \
    { return gm_map_delete(name##_map(m), &key); }                             \
    static inline GM_MAYBE_UNUSED void name##_iter_init(name##_iter *it, name *m)              \
    { gm_map_iter_init(&it->it, name##_map(m)); }                              \
    static inline GM_MAYBE_UNUSED bool name##_iter_next(name##_iter *it, K *key, V *val)       \
    {                                                                          \
        const void *kp; void *vp;                                              \
        if (!gm_map_iter_next(&it->it, &kp, &vp)) return false;                \
        if (key) memcpy(key, kp, sizeof(K));                                   \
        if (val) memcpy(val, vp, sizeof(V));                                   \
        return true;                                                           \
    }                                                                          \
    static inline GM_MAYBE_UNUSED void name##_iter_done(name##_iter *it)                       \
    { gm_map_iter_done(&it->it); }                                             \
    typedef int name##_define_ends_here_

#ifdef __cplusplus
}
#endif
#endif
