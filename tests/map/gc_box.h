/* gc_box.h - the value the GC-map tests store: a pointer-free GC object
 * holding a number and a checksum of it, so that a box freed too early and
 * reused (or clobbered) reads back as wrong. */
#ifndef GOMAP_TEST_GC_BOX_H
#define GOMAP_TEST_GC_BOX_H

#include <stdbool.h>
#include <stdint.h>

#include "gomap/gc.h"

typedef struct box { uint64_t v, check; } box;

static inline uint64_t box_sum(uint64_t v) { return v * 0x9e3779b97f4a7c15ull + 1; }

static inline box *new_box(uint64_t v)
{
    box *b = gm_alloc_noscan(sizeof *b);
    b->v = v;
    b->check = box_sum(v);
    return b;
}

static inline bool box_ok(const box *b, uint64_t v) { return b && b->v == v && b->check == box_sum(v); }

#endif
