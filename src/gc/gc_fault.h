/* gc_fault.h - test-only fault switches of the collector.
 *
 * Present only in builds with GOMAP_FAULT_INJECTION (development and test
 * builds; release builds leave it out).  They exist so that tests can show
 * that the checks which guard the collector do fire: a test that drops the
 * write barrier while marking runs must see gccheckmark report the object
 * the barrier would have saved. */
#ifndef GOMAP_GC_FAULT_H
#define GOMAP_GC_FAULT_H

#include <stdint.h>

#include "gomap/config.h"

#ifdef GOMAP_FAULT_INJECTION
/* While on (non-zero), gm_store / gm_typed_memmove / gm_typed_memclr and the
 * atomic slot operations called by this thread store without shading
 * anything.  Per thread, so a test can drop the barrier around one kind of
 * operation only.  Returns the previous setting. */
GM_API int gm_gc_fault_drop_barrier(int on);

/* While on, a concurrent mark that has started (the world restarted after
 * mark setup: barrier on, allocation black, stack scans requested) marks
 * nothing in the background: the mark worker waits before scanning any root.
 * Threads still scan their own stacks at safepoints and assists still work.
 * Lets a test force an interleaving.  Returns the previous setting. */
GM_API int gm_gc_fault_hold_mark(int on);
/* 1 while a concurrent mark is in progress (between mark setup and mark
 * termination), else 0. */
GM_API int gm_gc_fault_marking(void);

/* 1 while gccheckmark's re-mark runs (the world stopped, after the real
 * mark), else 0: a test's trace function can hide a pointer from the real
 * mark only, and see checkmark report the object it hid. */
GM_API int gm_gc_fault_checkmarking(void);

/* The next n allocations of the collector's own tables that can report
 * failure (today: the table of root ranges, gm_root_add) fail as if malloc
 * returned NULL.  0 turns it off.  Returns the previous count. */
GM_API int gm_gc_fault_fail_alloc(int n);

/* Counters for tests that bound the work of one step (they read and reset):
 * the most scan work one work item of a large object did (a piece: mark.c,
 * OBLET), and the most one assist did that was capped while the heap was
 * below its goal (collect.c, ASSIST_MAX_WORK).  0: none since the last read. */
GM_API uint64_t gm_gc_fault_max_piece_scan(void);
GM_API uint64_t gm_gc_fault_max_capped_assist(void);
/* Span mark queue (mark.c): the work items scanned as a single object (no
 * other object of the span greyed while the item waited) and as a whole
 * span, since the last read (read and reset). */
GM_API void gm_gc_fault_span_scans(uint64_t *one, uint64_t *many);
#endif

#endif
