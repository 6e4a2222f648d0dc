/* test_gc_preempt.c - threads that break the safepoint contract are stopped
 * with a signal (src/gc/preempt.c) instead of stalling the collector: they
 * block in pthread_cond_wait, read(), nanosleep without gm_blocking_begin,
 * spin without a safepoint, or spin inside gomap's own locks and libc's
 * malloc (where the handler must not stop them).  Objects reachable only
 * from their stacks and registers survive concurrent cycles under
 * gccheckmark=1, clobberfree=1 (CMakeLists.txt); interrupted calls resume;
 * a program that follows the contract gets no signal at all. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gc_util.h"

#define MAGIC 0x3c6ef372fe94f82bull
static inline uint64_t sum_of(const node *n) { return (uint64_t)(uintptr_t)n ^ MAGIC; }

/* A node and its child, checksummed: freed early, clobberfree breaks them. */
__attribute__((noinline)) static node *fresh_pair(void)
{
    node *c = new_node(NULL, NULL, 0);
    c->val = sum_of(c);
    node *n = new_node(c, NULL, 0);
    n->val = sum_of(n);
    return n;
}
static bool pair_intact(const node *n) { return n->val == sum_of(n) && n->left && n->left->val == sum_of(n->left); }

/* Under ASan (clang links its runtime, malloc included, into the
 * executable) the whole executable counts as the allocator's code, where
 * the handler only stops a thread at a system call: a loop in it is not
 * stopped (docs/gc.md, as in a statically linked program). */
#if defined(__SANITIZE_ADDRESS__)
#define LOOPS_STOPPABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOPS_STOPPABLE 0
#endif
#endif
#ifndef LOOPS_STOPPABLE
#define LOOPS_STOPPABLE 1
#endif
#define SKIP_UNLESS_LOOPS_STOPPABLE()                                                      \
    do {                                                                                   \
        if (!LOOPS_STOPPABLE) {                                                            \
            fprintf(stderr, "skipped: malloc lives in the executable (ASan runtime)\n");  \
            return;                                                                        \
        }                                                                                  \
    } while (0)

static gm_memstats *ms(void)
{
    static gm_memstats m;
    gm_read_memstats(&m);
    return &m;
}

static atomic_int ready, failures;

/* ---- blocked without a blocking section ------------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;                                   /* under mu */
static int pipefd[2];
static atomic_int wake_sleeper;

static void *cond_waiter(void *arg)
{
    (void)arg;
    node *mine = fresh_pair();                   /* attached by this allocation */
    atomic_fetch_add(&ready, 1);
    pthread_mutex_lock(&mu);
    while (!go) pthread_cond_wait(&cv, &mu);     /* no gm_blocking_begin */
    pthread_mutex_unlock(&mu);
    if (!pair_intact(mine)) atomic_fetch_add(&failures, 1);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    node *mine = fresh_pair();
    atomic_fetch_add(&ready, 1);
    char c = 0;
    ssize_t n = read(pipefd[0], &c, 1);          /* SA_RESTART: resumes, no EINTR */
    if (n != 1 || c != 'x') atomic_fetch_add(&failures, 1);
    if (!pair_intact(mine)) atomic_fetch_add(&failures, 1);
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    node *mine = fresh_pair();
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&wake_sleeper)) {
        struct timespec ts = { 0, 50 * 1000000 };
        nanosleep(&ts, NULL);                    /* no gm_blocking_begin */
    }
    if (!pair_intact(mine)) atomic_fetch_add(&failures, 1);
    return NULL;
}

static void run_cycles(long n)
{
    for (long i = 0; i < n; i++) {
        gm_gc();                                 /* concurrent mark, checkmark after it */
        for (int k = 0; k < 200; k++) (void)fresh_pair();   /* garbage */
    }
}

TEST(blocked_threads_do_not_stall_the_collector)
{
    atomic_store(&ready, 0);
    atomic_store(&failures, 0);
    REQUIRE(pipe(pipefd) == 0);
    pthread_t th[3];
    pthread_create(&th[0], NULL, cond_waiter, NULL);
    pthread_create(&th[1], NULL, reader, NULL);
    pthread_create(&th[2], NULL, sleeper, NULL);
    while (atomic_load(&ready) < 3) usleep(1000);
    usleep(20000);                               /* all three asleep in the kernel */
    uint64_t stops0 = ms()->gc_preempt_stops;
    run_cycles(scaled(20));
    CHECK(ms()->gc_preempt_stops > stops0);      /* they were stopped, not waited for */
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    CHECK(write(pipefd[1], "x", 1) == 1);
    atomic_store(&wake_sleeper, 1);
    gm_blocking_begin();
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    CHECK_EQ_U(atomic_load(&failures), 0);
    close(pipefd[0]);
    close(pipefd[1]);
}

/* ---- spinning without a safepoint ------------------------------------------------------ */

static atomic_int stop_spin;

static void *spinner(void *arg)
{
    (void)arg;
    node *mine = fresh_pair();
    atomic_fetch_add(&ready, 1);
    uint64_t x = (uintptr_t)mine;
    while (!atomic_load_explicit(&stop_spin, memory_order_relaxed))
        x = x * 6364136223846793005ull + 1442695040888963407ull;   /* no safepoint */
    if (!pair_intact(mine) || x == 0) atomic_fetch_add(&failures, 1);
    return NULL;
}

TEST(spinning_thread_is_stopped)
{
    SKIP_UNLESS_LOOPS_STOPPABLE();
    atomic_store(&ready, 0);
    atomic_store(&failures, 0);
    atomic_store(&stop_spin, 0);
    pthread_t th;
    pthread_create(&th, NULL, spinner, NULL);
    while (atomic_load(&ready) < 1) usleep(1000);
    uint64_t stops0 = ms()->gc_preempt_stops;
    run_cycles(scaled(10));
    CHECK(ms()->gc_preempt_stops > stops0);
    atomic_store(&stop_spin, 1);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    CHECK_EQ_U(atomic_load(&failures), 0);
}

/* ---- spinning where the handler must not stop: gomap's locks, malloc ---------------- */

static uintptr_t root_area[4];

static void *lock_spinner(void *arg)
{
    (void)arg;
    node *mine = fresh_pair();
    atomic_fetch_add(&ready, 1);
    while (!atomic_load_explicit(&stop_spin, memory_order_relaxed)) {
        gm_root_add(root_area, sizeof root_area);      /* roots_mu, no safepoint */
        gm_root_remove(root_area);
    }
    if (!pair_intact(mine)) atomic_fetch_add(&failures, 1);
    return NULL;
}

static void *malloc_spinner(void *arg)
{
    (void)arg;
    node *mine = fresh_pair();
    atomic_fetch_add(&ready, 1);
    uint64_t s = 88172645463325252ull;
    void *keep[16] = {0};
    while (!atomic_load_explicit(&stop_spin, memory_order_relaxed)) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        unsigned i = (unsigned)(s % 16);
        free(keep[i]);                                 /* the arena lock, no safepoint */
        keep[i] = malloc(16 + (size_t)(s >> 40) % 4096);
    }
    for (int i = 0; i < 16; i++) free(keep[i]);
    if (!pair_intact(mine)) atomic_fetch_add(&failures, 1);
    return NULL;
}

/* If the handler stopped a thread inside roots_mu or inside malloc, the
 * collector would hang on that lock with the world stopped (test timeout). */
TEST(threads_spinning_in_locks_are_stopped_safely)
{
    SKIP_UNLESS_LOOPS_STOPPABLE();
    atomic_store(&ready, 0);
    atomic_store(&failures, 0);
    atomic_store(&stop_spin, 0);
    pthread_t th[2];
    pthread_create(&th[0], NULL, lock_spinner, NULL);
    pthread_create(&th[1], NULL, malloc_spinner, NULL);
    while (atomic_load(&ready) < 2) usleep(1000);
    uint64_t stops0 = ms()->gc_preempt_stops;
    run_cycles(scaled(20));
    CHECK(ms()->gc_preempt_stops > stops0);
    atomic_store(&stop_spin, 1);
    gm_blocking_begin();
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    CHECK_EQ_U(atomic_load(&failures), 0);
}

/* ---- a cooperative program is never signalled ------------------------------------------ */

static atomic_int sigurg_seen;
static void count_sigurg(int sig) { (void)sig; atomic_fetch_add(&sigurg_seen, 1); }

static void *cooperative(void *arg)
{
    (void)arg;
    gm_thread_attach();
    node *keep = fresh_pair();
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&stop_spin)) {
        for (int i = 0; i < 1000; i++) {
            node *n = fresh_pair();                     /* allocations: safepoints */
            if (i % 100 == 0) keep = n;
        }
        uint64_t x = 1;
        for (int i = 0; i < 100000; i++) {
            x = x * 3 + 1;
            if (i % 1000 == 0) gm_safepoint();          /* a long loop polls */
        }
        gm_blocking_begin();
        usleep(200);                                    /* blocking: wrapped */
        gm_blocking_end();
        if (!pair_intact(keep) || x == 0) atomic_fetch_add(&failures, 1);
    }
    gm_thread_detach();
    return NULL;
}

TEST(cooperative_program_gets_no_signal)
{
    struct sigaction sa = { 0 }, old;
    sa.sa_handler = count_sigurg;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, &old);                       /* sees any SIGURG sent */
    atomic_store(&ready, 0);
    atomic_store(&failures, 0);
    atomic_store(&stop_spin, 0);
    uint64_t sig0 = ms()->gc_preempt_signals;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, cooperative, NULL);
    while (atomic_load(&ready) < 2) usleep(1000);
    run_cycles(scaled(30));
    atomic_store(&stop_spin, 1);
    gm_blocking_begin();
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    CHECK_EQ_U(ms()->gc_preempt_signals - sig0, 0);
    CHECK_EQ_U(atomic_load(&sigurg_seen), 0);
    CHECK_EQ_U(atomic_load(&failures), 0);
    sigaction(SIGURG, &old, NULL);
}
