/* internal.h - helpers shared by every subsystem (not installed).
 *
 * Error model (one per layer):
 *   gm_fatal(msg)    misuse that Go makes fatal, or broken internal state:
 *                    prints "fatal error: <msg>" on stderr and abort()s.
 *   gm_errorf(...)   a recoverable problem the caller is told about (bad
 *                    argument, bad environment value): "gomap: ..." on stderr,
 *                    then the API returns NULL/false/-1 as documented.
 */
#ifndef GOMAP_INTERNAL_H
#define GOMAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gomap/config.h"

#define GM_INTERNAL __attribute__((visibility("hidden")))
#define GM_LIKELY(x) __builtin_expect(!!(x), 1)
#define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Fatal with Go's wording.  Exported so tests of every subsystem can see the
 * same function, but not part of the public headers. */
GM_API GM_NORETURN void gm_fatal(const char *msg);
GM_API GM_NORETURN void gm_fatalf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
GM_INTERNAL void gm_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Randomness.  gm_rand_seed64 reads the kernel (getrandom); gm_rand64 is a
 * fast per-thread generator seeded from it (Go's fastrand). */
GM_INTERNAL uint64_t gm_rand_seed64(void);
GM_API uint64_t gm_rand64(void);

/* Assertion levels (mimalloc's three): GM_ASSERT is cheap and on in debug
 * builds; GM_ASSERT_EXPENSIVE only with GOMAP_EXPENSIVE_CHECKS. */
#ifndef NDEBUG
#define GM_ASSERT(c) do { if (GM_UNLIKELY(!(c))) gm_fatalf("assertion failed: %s (%s:%d)", #c, __FILE__, __LINE__); } while (0)
#else
#define GM_ASSERT(c) ((void)0)
#endif
#ifdef GOMAP_EXPENSIVE_CHECKS
#define GM_ASSERT_EXPENSIVE(c) GM_ASSERT(c)
#else
#define GM_ASSERT_EXPENSIVE(c) ((void)0)
#endif

#endif
