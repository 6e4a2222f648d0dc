/* alloc_path.c - the allocation fast path, for instruction counts under
 * callgrind (valgrind --tool=callgrind): N typed 16-byte allocations
 * (gm_new), N pointer-free 32-byte ones (gm_alloc_noscan), and N typed
 * 64-byte objects aligned to 64 (gm_new honouring t->align), one thread,
 * default pacing.  Compare two builds of libgomap.a by Ir per allocation:
 *   cc -O2 -Iinclude bench/gc/alloc_path.c build/rel/libgomap.a -lpthread -lm -o ap
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out ./ap 1000000 typed
 *   (typed | noscan | aligned | all; the difference of two builds' totals
 *   divided by N is the change per allocation, GC work included) */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "gomap/gc.h"

typedef struct pair { struct pair *a, *b; } pair;
static const uint8_t pair_mask[] = { 0x3 };
static const gm_type pair_type = { sizeof(pair), 8, NULL, NULL, pair_mask, 0, "pair" };
typedef struct line { void *p; uint64_t pad[7]; } line;
static const uint8_t line_mask[] = { 0x1 };
static const gm_type line_type = { sizeof(line), 64, NULL, NULL, line_mask, 0, "line" };

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    const char *what = argc > 2 ? argv[2] : "all";
    bool all = strcmp(what, "all") == 0;
    uintptr_t sum = 0;
    if (all || strcmp(what, "typed") == 0)
        for (long i = 0; i < n; i++) sum += (uintptr_t)gm_new(&pair_type);
    if (all || strcmp(what, "noscan") == 0)
        for (long i = 0; i < n; i++) sum += (uintptr_t)gm_alloc_noscan(32);
    if (all || strcmp(what, "aligned") == 0)
        for (long i = 0; i < n; i++) sum += (uintptr_t)gm_new(&line_type);
    printf("%lu\n", (unsigned long)(sum & 1));
    return 0;
}
