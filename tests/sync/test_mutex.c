/* test_mutex.c - semaphores and gm_mutex: FIFO wake-up, the treap under many
 * addresses, mutual exclusion and progress under contention, and starvation
 * mode engaging and handing the lock to the starved waiter (checked by the
 * order of acquisitions and the event counters, never by elapsed time). */
#include "check.h"
#include "gomap/sync.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)

static void wait_until_waiters(const uint32_t *addr, size_t n)
{
    while (gm_sema_waiters(addr) < n) sched_yield();
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {}
}

static int scaled(int n)
{
    int v = (int)(n * test_scale());
    return v < 1 ? 1 : v;
}

/* ---- semaphores ---------------------------------------------------------- */

TEST(sema_counts_without_blocking)
{
    uint32_t s = 0;
    gm_sema_release(&s);
    gm_sema_release(&s);
    CHECK_EQ_U(LOAD(&s), 2);
    gm_sema_acquire(&s);
    gm_sema_acquire(&s);
    CHECK_EQ_U(LOAD(&s), 0);
    CHECK(gm_sema_check() == NULL);
}

typedef struct { uint32_t *sem; int id; int *order; int *next; } fifo_arg;

static void *fifo_waiter(void *p)
{
    fifo_arg *a = p;
    gm_sema_acquire(a->sem);
    a->order[ADD(a->next, 1) - 1] = a->id;
    return NULL;
}

TEST(sema_wakes_waiters_of_one_address_in_fifo_order)
{
    enum { N = 6 };
    uint32_t sem = 0;
    int order[N], next = 0;
    pthread_t th[N];
    fifo_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (fifo_arg){ &sem, i, order, &next };
        pthread_create(&th[i], NULL, fifo_waiter, &args[i]);
        wait_until_waiters(&sem, (size_t)i + 1);   /* queued in this order */
    }
    CHECK(gm_sema_check() == NULL);
    for (int i = 0; i < N; i++) {
        gm_sema_release(&sem);
        while (LOAD(&next) < i + 1) sched_yield();
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) CHECK_EQ_U(order[i], i);
    CHECK_EQ_U(gm_sema_waiters(&sem), 0);
}

/* Addresses 251*8 bytes apart share a root: one treap holds them all. */
#define STRIDE (251 * 2)
static uint32_t many_sems[64 * STRIDE];
static int many_woken;

static void *many_waiter(void *p)
{
    gm_sema_acquire(p);
    ADD(&many_woken, 1);
    return NULL;
}

TEST(sema_many_addresses_in_one_root_keep_the_treap_valid)
{
    enum { ADDRS = 24, PER = 2 };
    pthread_t th[ADDRS * PER];
    uint64_t seed = 7;
    int perm[ADDRS];
    for (int i = 0; i < ADDRS; i++) perm[i] = i;
    for (int i = ADDRS - 1; i > 0; i--) {   /* insert in a random order */
        int j = (int)(test_rand(&seed) % (uint64_t)(i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    int n = 0;
    for (int k = 0; k < PER; k++)
        for (int i = 0; i < ADDRS; i++) {
            uint32_t *s = &many_sems[perm[i] * STRIDE];
            pthread_create(&th[n++], NULL, many_waiter, s);
            wait_until_waiters(s, (size_t)k + 1);
            const char *err = gm_sema_check();
            CHECK_MSG(err == NULL, "%s", err);
        }
    for (int i = ADDRS - 1; i >= 0; i--) {   /* wake in another order */
        uint32_t *s = &many_sems[perm[(i * 7) % ADDRS] * STRIDE];
        for (int k = 0; k < PER; k++) gm_sema_release(s);
        const char *err = gm_sema_check();
        CHECK_MSG(err == NULL, "%s", err);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(LOAD(&many_woken), ADDRS * PER);
    for (int i = 0; i < ADDRS; i++) CHECK_EQ_U(LOAD(&many_sems[i * STRIDE]), 0);
}

typedef struct { uint32_t *sem; int rounds; } pc_arg;

static void *consumer(void *p)
{
    pc_arg *a = p;
    for (int i = 0; i < a->rounds; i++) gm_sema_acquire(a->sem);
    return NULL;
}

TEST(sema_producer_consumers_conserve_the_count)
{
    enum { T = 4 };
    uint32_t sem = 0;
    int rounds = scaled(20000);
    pc_arg a = { &sem, rounds };
    pthread_t th[T];
    for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, consumer, &a);
    for (int i = 0; i < T * rounds; i++) {
        gm_sema_release(&sem);
        if (i % 64 == 0) sched_yield();
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(LOAD(&sem), 0);
    CHECK(gm_sema_check() == NULL);
}

/* Threads hammer three semaphores that share one root, with every variant
 * (FIFO or LIFO queueing, plain or handoff release), while a checker walks
 * the treaps.  Each semaphore guards a counter; counts are conserved. */
typedef struct {
    uint32_t *sems[3];
    uint64_t counters[3];   /* counters[i] guarded by sems[i] (a binary semaphore) */
    int rounds, stop, bad;  /* stop, bad: atomic */
} hammer_t;

typedef struct { hammer_t *h; int id; } hammer_arg;

static void *sema_hammer(void *p)
{
    hammer_arg *a = p;
    hammer_t *h = a->h;
    uint64_t seed = (uint64_t)a->id + 17;
    for (int i = 0; i < h->rounds; i++) {
        uint64_t r = test_rand(&seed);
        int j = (int)(r % 3);
        gm_sema_acquire_ex(h->sems[j], (r >> 8) & 1);
        h->counters[j]++;
        gm_sema_release_ex(h->sems[j], (r >> 9) & 1);
    }
    return NULL;
}

static void *sema_checker(void *p)
{
    hammer_t *h = p;
    while (!LOAD(&h->stop))
        if (gm_sema_check() != NULL) ADD(&h->bad, 1);
    return NULL;
}

TEST(sema_all_variants_under_contention_keep_counts_and_treaps)
{
    enum { T = 4 };
    hammer_t h;
    memset(&h, 0, sizeof h);
    for (int j = 0; j < 3; j++) {
        h.sems[j] = &many_sems[(40 + j) * STRIDE];
        *h.sems[j] = 1;                       /* binary semaphores, free */
    }
    h.rounds = scaled(20000);
    pthread_t th[T], chk;
    hammer_arg args[T];
    pthread_create(&chk, NULL, sema_checker, &h);
    for (int i = 0; i < T; i++) {
        args[i] = (hammer_arg){ &h, i };
        pthread_create(&th[i], NULL, sema_hammer, &args[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    STORE(&h.stop, 1);
    pthread_join(chk, NULL);
    CHECK_EQ_U(h.bad, 0);
    CHECK_EQ_U(h.counters[0] + h.counters[1] + h.counters[2], (uint64_t)T * h.rounds);
    for (int j = 0; j < 3; j++) CHECK_EQ_U(LOAD(h.sems[j]), 1);
    CHECK(gm_sema_check() == NULL);
}

/* ---- gm_mutex ------------------------------------------------------------ */

TEST(mutex_zero_value_is_unlocked_and_trylock_works)
{
    gm_mutex m = GM_MUTEX_INIT;
    CHECK(gm_mutex_trylock(&m));
    CHECK(!gm_mutex_trylock(&m));
    gm_mutex_unlock(&m);
    gm_mutex_lock(&m);
    CHECK(!gm_mutex_trylock(&m));
    gm_mutex_unlock(&m);
    CHECK_EQ_U(m.state_a, 0);
}

typedef struct {
    gm_mutex m;
    uint64_t counter, a, b;   /* protected by m; a == b outside it */
    int inside;               /* holders right now (atomic) */
    int violations;           /* atomic */
    int rounds;
} shared_t;

static void critical(shared_t *s)
{
    if (ADD(&s->inside, 1) != 1) ADD(&s->violations, 1);
    if (s->a != s->b) ADD(&s->violations, 1);
    s->a++;
    s->counter++;
    s->b++;
    ADD(&s->inside, -1);
}

static void *locker(void *p)
{
    shared_t *s = p;
    for (int i = 0; i < s->rounds; i++) {
        gm_mutex_lock(&s->m);
        critical(s);
        gm_mutex_unlock(&s->m);
    }
    return NULL;
}

static void *try_locker(void *p)
{
    shared_t *s = p;
    for (int i = 0; i < s->rounds;) {
        if (!gm_mutex_trylock(&s->m)) {
            if (i % 3 != 0) continue;        /* spin on trylock, mostly */
            gm_mutex_lock(&s->m);
        }
        critical(s);
        gm_mutex_unlock(&s->m);
        i++;
    }
    return NULL;
}

TEST(mutex_excludes_and_progresses_under_contention)
{
    enum { T = 4 };
    shared_t s;
    memset(&s, 0, sizeof s);
    s.rounds = scaled(100000);
    pthread_t th[T];
    for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, locker, &s);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(s.counter, (uint64_t)T * s.rounds);
    CHECK_EQ_U(s.violations, 0);
    CHECK_EQ_U(s.m.state_a, 0);
    CHECK(gm_sema_check() == NULL);
}

TEST(mutex_trylock_and_lock_mixed)
{
    enum { T = 4 };
    shared_t s;
    memset(&s, 0, sizeof s);
    s.rounds = scaled(50000);
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, i % 2 ? try_locker : locker, &s);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(s.counter, (uint64_t)T * s.rounds);
    CHECK_EQ_U(s.violations, 0);
    CHECK_EQ_U(s.m.state_a, 0);
}

/* Starvation.  B queues and waits past the 1 ms threshold while the main
 * thread holds the mutex.  The main thread unlocks, which wakes B; C,
 * spinning, steals the mutex with trylock before B gets to run (normal mode
 * allows that).  B
 * finds it held, and having waited over 1 ms switches the mutex to
 * starvation mode.  Three more threads D1..D3 then queue.  When C unlocks,
 * the mutex must go to B, then to D1, D2, D3 in arrival order: no arrival
 * can overtake a starving waiter. */
enum { ST_B = 1, ST_C = 2, ST_D = 3, WOKEN_BIT = 2, STARVING_BIT = 4, WAITER_SHIFT = 3 };
typedef struct {
    gm_mutex m;
    int seq;          /* acquisitions after the main thread's; under m */
    int order[8];     /* under m */
    int b_acquired;   /* atomic: B has held the mutex */
    int c_holds;      /* atomic: C has taken the mutex */
    int release_c;    /* atomic: C may unlock */
} starve_t;

static void record(starve_t *s, int who)
{
    s->order[s->seq++] = who;
}

static void *starve_b(void *p)
{
    starve_t *s = p;
    gm_mutex_lock(&s->m);
    record(s, ST_B);
    STORE(&s->b_acquired, 1);
    gm_mutex_unlock(&s->m);
    return NULL;
}

static void *starve_c(void *p)
{
    starve_t *s = p;
    /* Steal only once the unlock has committed to waking B (WOKEN set):
     * an unlock that finds the mutex already re-taken wakes nobody. */
    while ((LOAD(&s->m.state_a) & WOKEN_BIT) == 0 && !LOAD(&s->b_acquired)) {}
    while (!gm_mutex_trylock(&s->m)) {}
    record(s, ST_C);
    STORE(&s->c_holds, 1);
    if (!LOAD(&s->b_acquired)) {
        /* B was woken by the main thread's unlock and lost to us: it will
         * set STARVING.  Hold on until the main thread has queued the D's. */
        while ((LOAD(&s->m.state_a) & STARVING_BIT) == 0) sched_yield();
        while (!LOAD(&s->release_c)) sched_yield();
    }
    gm_mutex_unlock(&s->m);
    return NULL;
}

typedef struct { starve_t *s; int id; } d_arg;
static void *starve_d(void *p)
{
    d_arg *a = p;
    gm_mutex_lock(&a->s->m);
    record(a->s, ST_D + a->id);
    gm_mutex_unlock(&a->s->m);
    return NULL;
}

/* One attempt; false when B won the race against C (then nothing is checked). */
static bool starvation_round(void)
{
    starve_t s;
    memset(&s, 0, sizeof s);
    gm_sync_stats before, after;
    gm_sync_stats_get(&before);
    pthread_t b, c, d[3];
    d_arg da[3];
    gm_mutex_lock(&s.m);
    pthread_create(&b, NULL, starve_b, &s);
    wait_until_waiters(&s.m.sema_a, 1);
    sleep_ms(3);                  /* B's wait now exceeds the 1 ms threshold */
    pthread_create(&c, NULL, starve_c, &s);
    sleep_ms(1);                  /* let C start spinning */
    gm_mutex_unlock(&s.m);
    while (!LOAD(&s.c_holds) && !LOAD(&s.b_acquired)) {}
    bool c_first = LOAD(&s.c_holds) && !LOAD(&s.b_acquired);
    int nd = 0;
    if (c_first) {
        /* C holds the mutex and keeps it until release_c: deterministic. */
        while ((LOAD(&s.m.state_a) & STARVING_BIT) == 0) sched_yield();
        for (; nd < 3; nd++) {
            da[nd] = (d_arg){ &s, nd };
            pthread_create(&d[nd], NULL, starve_d, &da[nd]);
            while ((LOAD(&s.m.state_a) >> WAITER_SHIFT) < nd + 2) sched_yield();
        }
    }
    STORE(&s.release_c, 1);
    pthread_join(c, NULL);
    pthread_join(b, NULL);
    for (int i = 0; i < nd; i++) pthread_join(d[i], NULL);
    if (!c_first) return false;
    gm_sync_stats_get(&after);
    CHECK_EQ_U(s.seq, 5);
    CHECK_EQ_U(s.order[0], ST_C);
    CHECK_EQ_U(s.order[1], ST_B);        /* the starved waiter goes first */
    CHECK_EQ_U(s.order[2], ST_D + 0);    /* then arrival order */
    CHECK_EQ_U(s.order[3], ST_D + 1);
    CHECK_EQ_U(s.order[4], ST_D + 2);
    CHECK(after.mutex_starving_enter > before.mutex_starving_enter);
    CHECK(after.mutex_handoff_acquires > before.mutex_handoff_acquires);
    CHECK(after.sema_handoffs > before.sema_handoffs);
    CHECK(after.mutex_starving_exit > before.mutex_starving_exit);
    CHECK_EQ_U(s.m.state_a, 0);
    return true;
}

TEST(mutex_starvation_mode_hands_the_lock_to_the_starved_waiter)
{
    bool engaged = false;
    int round = 0;
    while (round < 200 && !engaged) {
        engaged = starvation_round();
        round++;
    }
    printf("starvation engaged after %d round(s)\n", round);
    CHECK_MSG(engaged, "C never stole the mutex from B in 200 rounds");
}

/* Heavy contention with long critical sections drives waiters past 1 ms:
 * starvation mode engages and the lock still reaches every thread. */
typedef struct { shared_t *s; int done; } long_arg;

static void *long_holder(void *p)
{
    long_arg *a = p;
    shared_t *s = a->s;
    for (int i = 0; i < s->rounds; i++) {
        gm_mutex_lock(&s->m);
        critical(s);
        struct timespec ts = { 0, 200000 };   /* 0.2 ms inside */
        nanosleep(&ts, NULL);
        gm_mutex_unlock(&s->m);
    }
    STORE(&a->done, 1);
    return NULL;
}

TEST(mutex_every_thread_progresses_under_long_holds)
{
    enum { T = 6 };
    shared_t s;
    memset(&s, 0, sizeof s);
    s.rounds = 40;
    long_arg args[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        args[i] = (long_arg){ &s, 0 };
        pthread_create(&th[i], NULL, long_holder, &args[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(s.counter, (uint64_t)T * s.rounds);
    CHECK_EQ_U(s.violations, 0);
    CHECK_EQ_U(s.m.state_a, 0);
    CHECK(gm_sema_check() == NULL);
}
