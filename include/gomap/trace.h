/* gomap/trace.h - event tracing in Chrome's trace event format.
 *
 * While tracing is on, gomap records what its machinery does -- map grows,
 * shrinks and evacuation progress (and, as they gain hooks, GC phases) --
 * with nanosecond timestamps, per thread.  gm_trace_stop writes the JSON
 * file, which chrome://tracing and https://ui.perfetto.dev open directly.
 * Programs may add their own events.  Off, tracing costs one relaxed load
 * and a predictable branch where an event would be recorded.
 */
#ifndef GOMAP_TRACE_H
#define GOMAP_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "gomap/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Starts recording.  False (with a message on stderr) if tracing is already
 * on or the file cannot be created; nothing is recorded then. */
GM_API bool gm_trace_start(const char *path);
/* Stops recording and writes the file; false if writing failed. */
GM_API bool gm_trace_stop(void);
GM_API bool gm_trace_on(void);

/* Events.  Names and categories must be string literals or otherwise live
 * until gm_trace_stop.  `id` pairs async begin/end events (e.g. one map). */
GM_API void gm_trace_begin(const char *cat, const char *name);        /* "B" */
GM_API void gm_trace_end(const char *cat, const char *name);          /* "E" */
GM_API void gm_trace_async_begin(const char *cat, const char *name, uint64_t id, const char *arg, int64_t val);
GM_API void gm_trace_async_end(const char *cat, const char *name, uint64_t id);
GM_API void gm_trace_counter(const char *cat, const char *name, int64_t value);
GM_API void gm_trace_instant(const char *cat, const char *name, const char *arg, int64_t val);

#ifdef __cplusplus
}
#endif
#endif
