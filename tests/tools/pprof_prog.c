/* pprof_prog.c - writes a heap profile for tests/tools/pprof_run.sh: one
 * site allocates 8x the bytes of the other, at the default sampling rate. */
#include <stdio.h>

#include "gomap/gc.h"

static void *keep[1024];

__attribute__((noinline)) void pprof_big_site(void)
{
    for (int i = 0; i < 200000; i++) keep[i % 1024] = gm_alloc_noscan(512);
}

__attribute__((noinline)) void pprof_small_site(void)
{
    for (int i = 0; i < 25000; i++) keep[i % 1024] = gm_alloc_noscan(512);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pprof_prog OUT.pb.gz\n");
        return 2;
    }
    gm_root_add(keep, sizeof keep);
    pprof_small_site();
    pprof_big_site();
    return gm_write_heap_profile(argv[1]) ? 0 : 1;
}
