/* profile.h - the allocator's hooks into heap profiling (profile.c).
 *
 * The allocation fast path pays one subtraction and one branch: each thread
 * counts down the bytes left until its next sample (gc_prof_left); when the
 * count goes below zero the allocation is sampled.  Sweeping calls
 * gc_prof_sweep for a span only while some sampled object is live
 * (gc_prof_live_a), so a program that samples nothing pays one relaxed load
 * per swept span. */
#ifndef GOMAP_GC_PROFILE_H
#define GOMAP_GC_PROFILE_H

#include "gc/gc_internal.h"

extern _Thread_local int64_t gc_prof_left __attribute__((tls_model("initial-exec")));
extern _Atomic size_t gc_prof_live_a;   /* sampled objects not yet seen freed */

/* Records a sampled allocation of size bytes at p in span s and draws the
 * next countdown.  Called by the allocating thread, no lock held. */
GM_INTERNAL void gc_prof_sample(gc_span *s, uintptr_t p, size_t size);
/* Sweep of s (by its owner, before its mark bits become its alloc bits):
 * every sampled object of s that is allocated and unmarked is being freed. */
GM_INTERNAL void gc_prof_sweep(gc_span *s);
GM_INTERNAL void gc_prof_exclude_globals(void);   /* the bucket hash is not a root (globals.c) */

/* The hook on the allocation path: a cheap countdown, the rest out of line. */
static inline void gc_prof_account(gc_span *s, uintptr_t p, size_t size)
{
    if (GM_UNLIKELY((gc_prof_left -= (int64_t)size) < 0)) gc_prof_sample(s, p, size);
}

#endif
