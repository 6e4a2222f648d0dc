/* test_rwmutex.c - gm_rwmutex exclusion and writer preference, gm_once under
 * a race of threads, gm_waitgroup with several waiters and reuse. */
#include "check.h"
#include "gomap/sync.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)

static int scaled(int n)
{
    int v = (int)(n * test_scale());
    return v < 1 ? 1 : v;
}

/* ---- RWMutex ------------------------------------------------------------- */

typedef struct {
    gm_rwmutex rw;
    uint64_t a, b;        /* written by writers only; a == b outside */
    int readers_in, writers_in, violations;   /* atomic */
    int rounds;
} rw_shared;

static void *rw_reader(void *p)
{
    rw_shared *s = p;
    for (int i = 0; i < s->rounds; i++) {
        gm_rwmutex_rlock(&s->rw);
        ADD(&s->readers_in, 1);
        if (LOAD(&s->writers_in) != 0 || s->a != s->b) ADD(&s->violations, 1);
        ADD(&s->readers_in, -1);
        gm_rwmutex_runlock(&s->rw);
    }
    return NULL;
}

static void *rw_writer(void *p)
{
    rw_shared *s = p;
    for (int i = 0; i < s->rounds / 4; i++) {
        if (i % 2 == 0 || !gm_rwmutex_trylock(&s->rw)) gm_rwmutex_lock(&s->rw);
        if (ADD(&s->writers_in, 1) != 1 || LOAD(&s->readers_in) != 0)
            ADD(&s->violations, 1);
        s->a++;
        s->b++;
        ADD(&s->writers_in, -1);
        gm_rwmutex_unlock(&s->rw);
    }
    return NULL;
}

TEST(rwmutex_readers_and_writers_exclude)
{
    enum { R = 3, W = 2 };
    rw_shared s;
    memset(&s, 0, sizeof s);
    s.rounds = scaled(40000);
    pthread_t th[R + W];
    for (int i = 0; i < R; i++) pthread_create(&th[i], NULL, rw_reader, &s);
    for (int i = 0; i < W; i++) pthread_create(&th[R + i], NULL, rw_writer, &s);
    for (int i = 0; i < R + W; i++) pthread_join(th[i], NULL);
    CHECK_EQ_U(s.violations, 0);
    CHECK_EQ_U(s.a, (uint64_t)W * (s.rounds / 4));
    CHECK_EQ_U(s.rw.reader_count_a, 0);
    CHECK_EQ_U(s.rw.w.state_a, 0);
}

TEST(rwmutex_try_variants)
{
    gm_rwmutex rw = GM_RWMUTEX_INIT;
    CHECK(gm_rwmutex_tryrlock(&rw));
    CHECK(gm_rwmutex_tryrlock(&rw));
    CHECK(!gm_rwmutex_trylock(&rw));
    gm_rwmutex_runlock(&rw);
    gm_rwmutex_runlock(&rw);
    CHECK(gm_rwmutex_trylock(&rw));
    CHECK(!gm_rwmutex_tryrlock(&rw));
    CHECK(!gm_rwmutex_trylock(&rw));
    gm_rwmutex_unlock(&rw);
    gm_rwmutex_rlock(&rw);
    gm_rwmutex_runlock(&rw);
    CHECK_EQ_U(rw.reader_count_a, 0);
}

/* A pending writer blocks new readers: R1 reads, W waits for R1, R2 arrives
 * and must wait for W, not slip in beside R1. */
typedef struct { gm_rwmutex rw; int order[4]; int seq; } pref_t;

static void *pref_writer(void *p)
{
    pref_t *s = p;
    gm_rwmutex_lock(&s->rw);
    s->order[s->seq++] = 1;
    gm_rwmutex_unlock(&s->rw);
    return NULL;
}

static void *pref_reader(void *p)
{
    pref_t *s = p;
    gm_rwmutex_rlock(&s->rw);
    s->order[ADD(&s->seq, 1) - 1] = 2;
    gm_rwmutex_runlock(&s->rw);
    return NULL;
}

TEST(rwmutex_pending_writer_blocks_new_readers)
{
    pref_t s;
    memset(&s, 0, sizeof s);
    pthread_t w, r2;
    gm_rwmutex_rlock(&s.rw);                       /* R1 */
    pthread_create(&w, NULL, pref_writer, &s);
    while (gm_sema_waiters(&s.rw.writer_sem_a) < 1) sched_yield();
    CHECK(!gm_rwmutex_tryrlock(&s.rw));
    pthread_create(&r2, NULL, pref_reader, &s);
    while (gm_sema_waiters(&s.rw.reader_sem_a) < 1) sched_yield();
    gm_rwmutex_runlock(&s.rw);                     /* R1 leaves: W goes */
    pthread_join(w, NULL);
    pthread_join(r2, NULL);
    CHECK_EQ_U(s.seq, 2);
    CHECK_EQ_U(s.order[0], 1);
    CHECK_EQ_U(s.order[1], 2);
}

/* Readers that never stop cannot keep a writer out: the writer completes
 * all its locks while they keep reading (the test ends only if it does). */
typedef struct { gm_rwmutex rw; int writer_done; uint64_t reads; } flood_t;

static void *flood_reader(void *p)
{
    flood_t *f = p;
    while (!LOAD(&f->writer_done)) {
        gm_rwmutex_rlock(&f->rw);
        ADD(&f->reads, 1);
        gm_rwmutex_runlock(&f->rw);
    }
    return NULL;
}

TEST(rwmutex_writer_gets_in_despite_a_flood_of_readers)
{
    enum { R = 3 };
    flood_t f;
    memset(&f, 0, sizeof f);
    pthread_t th[R];
    for (int i = 0; i < R; i++) pthread_create(&th[i], NULL, flood_reader, &f);
    while (LOAD(&f.reads) < 1000) sched_yield();
    for (int i = 0; i < 200; i++) {
        gm_rwmutex_lock(&f.rw);
        gm_rwmutex_unlock(&f.rw);
    }
    STORE(&f.writer_done, 1);
    for (int i = 0; i < R; i++) pthread_join(th[i], NULL);
    CHECK(LOAD(&f.reads) >= 1000);
    CHECK_EQ_U(f.rw.reader_count_a, 0);
    CHECK_EQ_U(f.rw.reader_wait_a, 0);
}

/* ---- Once ---------------------------------------------------------------- */

typedef struct {
    gm_once once;
    int calls;          /* written by fn only */
    uint64_t payload;   /* written by fn, read by everyone after do */
    int start;          /* atomic */
    int bad;            /* atomic */
} once_t;

static void once_fn(void *p)
{
    once_t *o = p;
    o->calls++;
    for (volatile int i = 0; i < 10000; i++) {}
    o->payload = 0xfeedface;
}

static void *once_racer(void *p)
{
    once_t *o = p;
    while (!LOAD(&o->start)) {}
    gm_once_do(&o->once, once_fn, o);
    if (o->payload != 0xfeedface) ADD(&o->bad, 1);
    return NULL;
}

TEST(once_runs_once_under_a_race)
{
    enum { T = 8 };
    for (int round = 0; round < scaled(40); round++) {
        once_t o;
        memset(&o, 0, sizeof o);
        pthread_t th[T];
        for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, once_racer, &o);
        STORE(&o.start, 1);
        for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
        CHECK_EQ_U(o.calls, 1);
        CHECK_EQ_U(o.bad, 0);
        gm_once_do(&o.once, once_fn, &o);
        CHECK_EQ_U(o.calls, 1);
    }
}

/* ---- WaitGroup ----------------------------------------------------------- */

TEST(waitgroup_wait_on_zero_returns)
{
    gm_waitgroup wg = GM_WAITGROUP_INIT;
    gm_waitgroup_wait(&wg);
    gm_waitgroup_add(&wg, 3);
    gm_waitgroup_add(&wg, -2);
    gm_waitgroup_done(&wg);
    gm_waitgroup_wait(&wg);
    CHECK_EQ_U(wg.state_a, 0);
}

typedef struct {
    gm_waitgroup wg;
    uint64_t slots[16];   /* slot i written by worker i before Done */
    int waiters_ok;       /* atomic */
    int n;
} wg_t;

typedef struct { wg_t *g; int id; } wg_arg;

static void *wg_worker(void *p)
{
    wg_arg *a = p;
    for (volatile int i = 0; i < 1000 * (a->id + 1); i++) {}
    a->g->slots[a->id] = (uint64_t)a->id + 100;
    gm_waitgroup_done(&a->g->wg);
    return NULL;
}

static void *wg_waiter(void *p)
{
    wg_t *g = p;
    gm_waitgroup_wait(&g->wg);
    int ok = 1;
    for (int i = 0; i < g->n; i++) ok &= g->slots[i] == (uint64_t)i + 100;
    ADD(&g->waiters_ok, ok);
    return NULL;
}

TEST(waitgroup_releases_every_waiter_after_all_done_and_is_reusable)
{
    enum { N = 8, WAITERS = 3 };
    for (int round = 0; round < scaled(40); round++) {
        wg_t g;
        memset(&g, 0, sizeof g);
        g.n = N;
        gm_waitgroup_add(&g.wg, N);
        pthread_t w[WAITERS], t[N];
        wg_arg args[N];
        for (int i = 0; i < WAITERS; i++) pthread_create(&w[i], NULL, wg_waiter, &g);
        for (int i = 0; i < N; i++) {
            args[i] = (wg_arg){ &g, i };
            pthread_create(&t[i], NULL, wg_worker, &args[i]);
        }
        gm_waitgroup_wait(&g.wg);
        for (int i = 0; i < N; i++) CHECK_EQ_U(g.slots[i], (uint64_t)i + 100);
        for (int i = 0; i < WAITERS; i++) pthread_join(w[i], NULL);
        for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
        CHECK_EQ_U(g.waiters_ok, WAITERS);
        /* reuse after every Wait returned */
        gm_waitgroup_add(&g.wg, 1);
        gm_waitgroup_done(&g.wg);
        gm_waitgroup_wait(&g.wg);
        CHECK_EQ_U(g.wg.state_a, 0);
    }
}
