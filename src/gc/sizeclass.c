/* sizeclass.c - the small-object size classes, generated at start-up.
 *
 * Sizes: 8, 16, 24, then steps of 16 up to 128, then 8 steps per doubling
 * up to 512 and 16 steps per doubling up to 32 KiB (step = 2^floor(log2
 * size) / 8 or / 16).  Each class gets the fewest pages whose tail waste is
 * at most 1/8 of the span; a class whose span holds exactly as many objects
 * in as many pages as the next larger class is dropped (the larger class
 * serves it at no cost).  This lands on 65 classes (Go's table has 67) and
 * keeps internal fragmentation under 12.5% (rounding) + 12.5% (tail).
 *
 * Offsets map to object indexes with a multiply: floor(off / size) ==
 * (off * ceil(2^32 / size)) >> 32 for every off < span bytes when size <=
 * 32 KiB; gc_classes_init checks it at every object boundary.
 */
#include "gc/gc_internal.h"

gc_class gc_classes[GC_NUM_CLASSES];
int gc_nclasses;
uint8_t gc_class_by_8[1024 / 8 + 1];            /* size <= 1024 */
uint8_t gc_class_by_128[(GC_MAX_SMALL - 1024) / 128 + 1];

static uint32_t pages_for(uint32_t size)
{
    for (uint32_t np = 1;; np++) {
        size_t span = np * GC_PAGE_SIZE;
        if (span < size) continue;
        if ((span % size) * 8 <= span) return np;
    }
}

static void add_class(uint32_t size, uint32_t *cand, int *n)
{
    cand[(*n)++] = size;
}

void gc_classes_init(void)
{
    uint32_t cand[128];
    int n = 0;
    add_class(8, cand, &n);
    add_class(16, cand, &n);
    add_class(24, cand, &n);
    for (uint32_t s = 32; s <= 128; s += 16) add_class(s, cand, &n);
    for (uint32_t s = 128; s < GC_MAX_SMALL;) {
        uint32_t p2 = 1;
        while (p2 * 2 <= s) p2 *= 2;
        s += p2 / (s < 512 ? 8 : 16);
        add_class(s, cand, &n);
    }
    /* drop classes that the next one serves equally well */
    gc_nclasses = 1;
    gc_classes[0] = (gc_class){0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        uint32_t np = pages_for(cand[i]);
        uint32_t ne = (uint32_t)(np * GC_PAGE_SIZE / cand[i]);
        if (i + 1 < n) {
            uint32_t np2 = pages_for(cand[i + 1]);
            uint32_t ne2 = (uint32_t)(np2 * GC_PAGE_SIZE / cand[i + 1]);
            if (np2 == np && ne2 == ne) continue;
        }
        if (gc_nclasses == GC_NUM_CLASSES) gm_fatal("gc: too many size classes");
        if (ne > GC_MAX_OBJS) gm_fatal("gc: size class has too many objects per span");
        gc_class *c = &gc_classes[gc_nclasses++];
        c->size = cand[i];
        c->npages = np;
        c->nelems = ne;
        c->divmul = (uint32_t)((((uint64_t)1 << 32) + cand[i] - 1) / cand[i]);
        for (uint32_t k = 1; k <= ne; k++) {      /* check the reciprocal */
            uint64_t off = (uint64_t)k * c->size;
            if (((off * c->divmul) >> 32) != k || (((off - 1) * c->divmul) >> 32) != k - 1)
                gm_fatal("gc: size class reciprocal is not exact");
        }
    }
    int c = 1;
    for (uint32_t s = 0; s <= 1024; s += 8) {
        while (gc_classes[c].size < s) c++;
        gc_class_by_8[s / 8] = (uint8_t)c;
    }
    for (uint32_t s = 1024; s <= GC_MAX_SMALL; s += 128) {
        while (gc_classes[c].size < s) c++;
        gc_class_by_128[(s - 1024) / 128] = (uint8_t)c;
    }
    gc_class_by_8[0] = 1;
}
