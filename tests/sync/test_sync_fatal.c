/* test_sync_fatal.c - misuse is fatal with Go's message (each case forks). */
#include "check.h"
#include "gomap/sync.h"

#include <pthread.h>
#include <sched.h>

static void unlock_unlocked(void *p)
{
    (void)p;
    gm_mutex m = GM_MUTEX_INIT;
    gm_mutex_unlock(&m);
}

static void unlock_twice(void *p)
{
    (void)p;
    gm_mutex m = GM_MUTEX_INIT;
    gm_mutex_lock(&m);
    gm_mutex_unlock(&m);
    gm_mutex_unlock(&m);
}

TEST(fatal_unlock_of_unlocked_mutex)
{
    CHECK(expect_fatal(unlock_unlocked, NULL, "sync: unlock of unlocked mutex"));
    CHECK(expect_fatal(unlock_twice, NULL, "sync: unlock of unlocked mutex"));
}

static void runlock_unlocked(void *p)
{
    (void)p;
    gm_rwmutex rw = GM_RWMUTEX_INIT;
    gm_rwmutex_runlock(&rw);
}

static void runlock_while_writer_holds(void *p)
{
    (void)p;
    gm_rwmutex rw = GM_RWMUTEX_INIT;
    gm_rwmutex_lock(&rw);
    gm_rwmutex_runlock(&rw);
}

TEST(fatal_runlock_of_unlocked_rwmutex)
{
    CHECK(expect_fatal(runlock_unlocked, NULL, "sync: RUnlock of unlocked RWMutex"));
    CHECK(expect_fatal(runlock_while_writer_holds, NULL, "sync: RUnlock of unlocked RWMutex"));
}

static void rw_unlock_unlocked(void *p)
{
    (void)p;
    gm_rwmutex rw = GM_RWMUTEX_INIT;
    gm_rwmutex_unlock(&rw);
}

static void rw_unlock_while_reading(void *p)
{
    (void)p;
    gm_rwmutex rw = GM_RWMUTEX_INIT;
    gm_rwmutex_rlock(&rw);
    gm_rwmutex_unlock(&rw);
}

TEST(fatal_unlock_of_unlocked_rwmutex)
{
    CHECK(expect_fatal(rw_unlock_unlocked, NULL, "sync: Unlock of unlocked RWMutex"));
    CHECK(expect_fatal(rw_unlock_while_reading, NULL, "sync: Unlock of unlocked RWMutex"));
}

static void wg_negative_add(void *p)
{
    (void)p;
    gm_waitgroup wg = GM_WAITGROUP_INIT;
    gm_waitgroup_add(&wg, 2);
    gm_waitgroup_add(&wg, -3);
}

static void wg_done_too_often(void *p)
{
    (void)p;
    gm_waitgroup wg = GM_WAITGROUP_INIT;
    gm_waitgroup_add(&wg, 1);
    gm_waitgroup_done(&wg);
    gm_waitgroup_done(&wg);
}

TEST(fatal_negative_waitgroup_counter)
{
    CHECK(expect_fatal(wg_negative_add, NULL, "sync: negative WaitGroup counter"));
    CHECK(expect_fatal(wg_done_too_often, NULL, "sync: negative WaitGroup counter"));
}

/* The state a racing Add leaves behind (counter 0, one waiter registered),
 * made by hand: the next positive Add must report the race. */
static void wg_add_races_wait(void *p)
{
    (void)p;
    gm_waitgroup wg = GM_WAITGROUP_INIT;
    wg.state_a = 1;
    gm_waitgroup_add(&wg, 1);
}

TEST(fatal_waitgroup_add_concurrent_with_wait)
{
    CHECK(expect_fatal(wg_add_races_wait, NULL,
                       "sync: WaitGroup misuse: Add called concurrently with Wait"));
}

/* A corrupted mutex: a waiter woken in starvation mode finds the mutex held. */
static gm_mutex corrupt_m;

static void *corrupt_waiter(void *p)
{
    (void)p;
    gm_mutex_lock(&corrupt_m);
    return NULL;
}

static void inconsistent_state(void *p)
{
    (void)p;
    pthread_t t;
    gm_mutex_lock(&corrupt_m);
    pthread_create(&t, NULL, corrupt_waiter, NULL);
    while (gm_sema_waiters(&corrupt_m.sema_a) < 1) sched_yield();
    __atomic_store_n(&corrupt_m.state_a, 1 | 4 | (1 << 3), __ATOMIC_RELEASE);
    gm_sema_release(&corrupt_m.sema_a);
    pthread_join(t, NULL);
}

TEST(fatal_inconsistent_mutex_state)
{
    CHECK(expect_fatal(inconsistent_state, NULL, "sync: inconsistent mutex state"));
}

/* The state a too-early reuse leaves (a new count started before the woken
 * waiter returned), made by hand: the waiter must report it. */
static gm_waitgroup reuse_wg;

static void *reuse_waiter(void *p)
{
    (void)p;
    gm_waitgroup_wait(&reuse_wg);
    return NULL;
}

static void wg_reused_early(void *p)
{
    (void)p;
    pthread_t t;
    gm_waitgroup_add(&reuse_wg, 1);
    pthread_create(&t, NULL, reuse_waiter, NULL);
    while (gm_sema_waiters(&reuse_wg.sema_a) < 1) sched_yield();
    /* What Done then Add(1) would leave if the Add won the race. */
    __atomic_store_n(&reuse_wg.state_a, (uint64_t)1 << 32, __ATOMIC_RELEASE);
    gm_sema_release(&reuse_wg.sema_a);
    pthread_join(t, NULL);
}

TEST(fatal_waitgroup_reused_before_wait_returned)
{
    CHECK(expect_fatal(wg_reused_early, NULL,
                       "sync: WaitGroup is reused before previous Wait has returned"));
}
