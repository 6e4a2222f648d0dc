/* pprof_prog.c - writes a heap profile for tests/tools/pprof_run.sh: one
 * site allocates 8x the bytes of the other, at the default sampling rate.
 * The last KEEP objects stay reachable: 16 MiB, about 32 samples at the
 * default 512 KiB, so some of the big site's samples are still in use when
 * the profile is written.  With 1024 kept (512 KiB, one sample expected)
 * one CI run found none: every sampled object had been swept. */
#include <stdio.h>

#include "gomap/gc.h"

enum { KEEP = 32768 };
static void *keep[KEEP];

__attribute__((noinline)) void pprof_big_site(void)
{
    for (int i = 0; i < 200000; i++) keep[i % KEEP] = gm_alloc_noscan(512);
}

__attribute__((noinline)) void pprof_small_site(void)
{
    for (int i = 0; i < 25000; i++) keep[i % KEEP] = gm_alloc_noscan(512);
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
