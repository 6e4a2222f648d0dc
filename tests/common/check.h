/* check.h - the test suite's small harness.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_U(a, b); }
 *
 * A test binary runs the cases named on its command line (or all of them),
 * prints "N passed, M failed" and exits non-zero if any CHECK failed. */
#ifndef GOMAP_TEST_CHECK_H
#define GOMAP_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
void check_fail(const char *file, int line, const char *expr, const char *detail);
extern int check_failures;

#define TEST(name)                                                             \
    static void test_##name(void);                                             \
    __attribute__((constructor)) static void test_reg_##name(void)             \
    { test_register(#name, test_##name); }                                     \
    static void test_##name(void)

#define CHECK(cond)                                                            \
    do { if (!(cond)) check_fail(__FILE__, __LINE__, #cond, NULL); } while (0)
#define CHECK_MSG(cond, ...)                                                   \
    do { if (!(cond)) { char d_[512]; snprintf(d_, sizeof d_, __VA_ARGS__);    \
         check_fail(__FILE__, __LINE__, #cond, d_); } } while (0)
#define CHECK_EQ_U(a, b)                                                       \
    do { uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                     \
         if (a_ != b_) { char d_[128];                                         \
           snprintf(d_, sizeof d_, "%" PRIu64 " != %" PRIu64, a_, b_);         \
           check_fail(__FILE__, __LINE__, #a " == " #b, d_); } } while (0)
/* Stop the case at once if the condition fails (later checks would crash). */
#define REQUIRE(cond)                                                          \
    do { if (!(cond)) { check_fail(__FILE__, __LINE__, #cond, "(required)");   \
         return; } } while (0)

/* Runs fn(arg) in a forked child; true if the child wrote
 * "fatal error: <msg>" to stderr and died of SIGABRT. */
bool expect_fatal(void (*fn)(void *), void *arg, const char *msg);
/* Like expect_fatal but the stderr text must contain `needle` anywhere. */
bool expect_abort_with(void (*fn)(void *), void *arg, const char *needle);

/* Deterministic PRNG for tests (splitmix64). */
static inline uint64_t test_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Scale for long loops: GOMAP_TEST_SCALE (default 1) multiplies, sanitizer
 * builds divide by 4. */
double test_scale(void);

/* Minor page faults so far, of the calling thread (thread) or the process,
 * and the pages resident now (/proc/self/statm; -1 if unreadable): tests
 * count memory touched, not time. */
long test_minor_faults(bool thread);
long test_resident_pages(void);

#endif
