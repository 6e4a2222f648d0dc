/* test_gc_debug.c - GMDEBUG/GMGC/GMMEMLIMIT, gctrace, clobberfree, the
 * stop-the-world bound.  The environment is read once, when the heap starts,
 * so each case runs in a forked child that sets it first and aborts at the
 * end so that expect_abort_with can read what it printed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "gc_util.h"

static void with_env(void *arg)
{
    const char **kv = arg;
    for (; kv[0]; kv += 2) setenv(kv[0], kv[1], 1);
    gm_gc();
    gm_memstats m;
    gm_read_memstats(&m);
    fprintf(stderr, "percent=%d limit=%lld next_gc=%llu\n", gm_gc_percent(100),
            (long long)gm_memory_limit(-1), (unsigned long long)m.next_gc);
    abort();
}

TEST(gmdebug_bad_values_reported_and_ignored)
{
    const char *a[] = { "GMDEBUG", "gctrace=x,nosuch=1,gcstress", NULL };
    CHECK(expect_abort_with(with_env, a, "GMDEBUG: bad value \"x\" for gctrace"));
    CHECK(expect_abort_with(with_env, a, "GMDEBUG: unknown setting \"nosuch\"; ignored"));
    CHECK(expect_abort_with(with_env, a, "GMDEBUG: \"gcstress\" is not name=value; ignored"));
    const char *b[] = { "GMDEBUG", "clobberfree=2", NULL };
    CHECK(expect_abort_with(with_env, b, "bad value \"2\" for clobberfree (want an integer in 0..1)"));
}

TEST(gmgc_and_gmmemlimit)
{
    const char *off[] = { "GMGC", "off", NULL };
    CHECK(expect_abort_with(with_env, off, "percent=-1 "));
    const char *pct[] = { "GMGC", "250", NULL };
    CHECK(expect_abort_with(with_env, pct, "percent=250 "));
    const char *bad[] = { "GMGC", "lots", NULL };
    CHECK(expect_abort_with(with_env, bad, "GMGC: bad value \"lots\""));
    CHECK(expect_abort_with(with_env, bad, "percent=100 "));
    const char *lim[] = { "GMMEMLIMIT", "512MiB", NULL };
    CHECK(expect_abort_with(with_env, lim, "limit=536870912 "));
    const char *lim2[] = { "GMMEMLIMIT", "12XB", NULL };
    CHECK(expect_abort_with(with_env, lim2, "GMMEMLIMIT: bad value \"12XB\""));
    CHECK(expect_abort_with(with_env, lim2, "limit=9223372036854775807 "));
}

TEST(gctrace_line)
{
    const char *a[] = { "GMDEBUG", "gctrace=1", NULL };
    CHECK(expect_abort_with(with_env, a, "gc 1 @"));
    CHECK(expect_abort_with(with_env, a, " ms clock, "));
    CHECK(expect_abort_with(with_env, a, " ms cpu, "));
    CHECK(expect_abort_with(with_env, a, " MB goal, "));
    CHECK(expect_abort_with(with_env, a, " MB stacks, "));
    CHECK(expect_abort_with(with_env, a, " MB globals, "));
    CHECK(expect_abort_with(with_env, a, " P (forced)\n"));
}

/* clobberfree: a freed slot holds the pattern until it is reused. */
__attribute__((noinline)) static uintptr_t hidden_garbage(void)
{
    uint64_t *p = gm_alloc_noscan(48);
    p[0] = 1;
    return ~(uintptr_t)p;
}

static void clobber_child(void *arg)
{
    (void)arg;
    setenv("GMDEBUG", "clobberfree=1", 1);
    uint64_t *keep = gm_alloc_noscan(48);     /* keeps the span in use */
    volatile uintptr_t hidden = hidden_garbage();   /* the compiler must not keep ~hidden */
    scrub_stack();
    gm_gc();
    uint64_t *dead = (uint64_t *)~hidden;
    fprintf(stderr, "word=%llx\n", (unsigned long long)dead[0]);
    gm_keep_alive(keep);
    abort();
}

TEST(clobberfree_fills_freed_objects)
{
    CHECK(expect_abort_with(clobber_child, NULL, "word=deadbeefdeadbeef"));
}

/* With preemption off (preemptsig=0), a thread that never reaches a
 * safepoint is named, then the process stops (test_gc_preempt.c: with it on). */
static atomic_int spin_ready;
static void *spinner(void *arg)
{
    (void)arg;
    gm_thread_attach();
    atomic_store(&spin_ready, 1);
    for (;;) __asm__ volatile("" ::: "memory");
    return NULL;
}

static void stuck_child(void *arg)
{
    (void)arg;
    setenv("GMDEBUG", "stoptimeout=200,preemptsig=0", 1);   /* no signal: the bound applies */
    pthread_t th;
    pthread_create(&th, NULL, spinner, NULL);
    while (!atomic_load(&spin_ready)) usleep(1000);
    gm_gc();
    _exit(0);
}

TEST(stop_the_world_bound_reports_thread)
{
    CHECK(expect_abort_with(stuck_child, NULL, "has not reached a safepoint"));
    CHECK(expect_fatal(stuck_child, NULL, "stop the world: a thread did not reach a safepoint"));
}

TEST(verify_detects_nothing_on_fresh_heap)
{
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_alloc_noscan(10);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

static void gccheckmark_child(void *arg)
{
    (void)arg;
    setenv("GMDEBUG", "gccheckmark=1", 1);
    node *head = NULL;
    for (int i = 0; i < 100000; i++) head = new_node(head, NULL, (uint64_t)i);
    gm_gc();
    fprintf(stderr, "survived %llu\n", (unsigned long long)head->val);
    abort();
}

TEST(gccheckmark_verifies_each_cycle)
{
    CHECK(expect_abort_with(gccheckmark_child, NULL, "survived 99999"));
}
