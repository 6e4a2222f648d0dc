/* mh_common.h - the map-heavy GC workload shared by the C peers.
 *
 * Two mutator threads, each owning one hash map from uint64 keys to records
 * on the collected heap.  A record is { link, key, ver, pad[3] }: 48 bytes,
 * the first word a pointer (to another record of the same thread), so the
 * collector has real pointer work in the records as well as in the map.
 *
 *   fill:  keys 0..LIVE-1, version 0, link to the previous record
 *   then OPS operations per thread, from a per-thread splitmix64 stream r:
 *     r>>60 in 0..9    lookup: check rec->key, add rec->ver to the checksum
 *           in 10..13  replace: a new record, ver+1, linked to the record of
 *                      another random key; the old one becomes garbage
 *           14         delete, then insert a new record (ver+1, no link)
 *           15         relink: rec->link = the record of another key
 *   end:   every version summed into the checksum
 *
 * The checksum depends only on the operation streams, so every peer (gomap,
 * Boehm, Go) must print the same one.  Sizes: MH_LIVE records per thread
 * (default 1,000,000: about 180 MB live on gomap), MH_OPS operations per
 * thread (default 8,000,000).  Result line, as binary-trees':
 *   RESULT <peer> time_s=.. gcs=.. max_pause_ms=.. p99_pause_ms=.. rss_mb=.. check=..
 */
#ifndef MH_COMMON_H
#define MH_COMMON_H

#include <stdint.h>
#include <stdlib.h>

#define BT_HELPERS_ONLY
#include "bt_common.h"

#define MH_THREADS 2

typedef struct rec { struct rec *link; uint64_t key, ver, pad[3]; } rec;

static inline uint64_t mh_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline long mh_env(const char *name, long dflt)
{
    const char *s = getenv(name);
    long v = s ? atol(s) : dflt;
    return v > 0 ? v : dflt;
}

#endif
