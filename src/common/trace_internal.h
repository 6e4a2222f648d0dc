/* trace_internal.h - the recording side of gomap/trace.h, for subsystems
 * and tools (gomap-lab reads the events back to draw its SVG charts). */
#ifndef GOMAP_TRACE_INTERNAL_H
#define GOMAP_TRACE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "common/internal.h"
#include "gomap/trace.h"

GM_API extern _Atomic bool gm_tracing;
static inline bool gm_tracing_on(void) { return atomic_load_explicit(&gm_tracing, memory_order_relaxed); }

GM_API void gm_trace_emit(char ph, const char *cat, const char *name, uint64_t id, const char *arg, int64_t val);

typedef struct gm_trace_event {
    uint64_t ts, id;
    int64_t val;
    const char *cat, *name, *arg;
    uint32_t tid;
    char ph;
} gm_trace_event;
/* Calls fn for every event of the current trace (while it is on). */
GM_API size_t gm_trace_visit(void (*fn)(const gm_trace_event *ev, void *arg), void *arg);

#endif
