/* gm_bench.h - what gomap's benchmark drivers add to their RESULT lines:
 * the mark's CPU (MemStats gc_mark_cpu_ns: background worker, assists and
 * the mark inside stops of the world, in thread CPU time) per cycle and per
 * MiB of objects scanned, so the concurrent and the stop-the-world mark, or
 * the two mark queues (GMDEBUG=gcmarkqueue=object|span), compare on the
 * same heap; and the mark's CPU share while marking (mark CPU over the
 * marks' wall time times the CPUs: the "near 25%" for the
 * concurrent mark; one marking thread of the CPUs for the stop-the-world
 * one). */
#ifndef GM_BENCH_H
#define GM_BENCH_H

#include <stdio.h>
#include <unistd.h>

#include "gomap/gc.h"

static inline void gm_bench_mark_fields(void)
{
    static gm_memstats ms;
    gm_read_memstats(&ms);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf(" mark_ms_per_cycle=%.3f mark_ms_per_mib=%.4f mark_cpu_share=%.3f",
           ms.num_gc ? ms.gc_mark_cpu_ns / 1e6 / ms.num_gc : 0.0,
           ms.gc_scan_work ? ms.gc_mark_cpu_ns / 1e6 / (ms.gc_scan_work / 1048576.0) : 0.0,
           ms.gc_mark_wall_ns && ncpu > 0 ? (double)ms.gc_mark_cpu_ns / ((double)ms.gc_mark_wall_ns * ncpu)
                                          : 0.0);
}

#endif
