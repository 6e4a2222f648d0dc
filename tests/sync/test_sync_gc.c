/* test_sync_gc.c - a GC-attached thread asleep in gm_mutex_lock or
 * gm_waitgroup_wait does not hold up a collection: parking counts as
 * blocking for the collector. */
#include "check.h"
#include "gomap/gc.h"
#include "gomap/sync.h"

#include <pthread.h>
#include <sched.h>

typedef struct { gm_mutex m; gm_waitgroup wg; int got; } gc_shared;

static void *attached_locker(void *p)
{
    gc_shared *s = p;
    gm_thread_attach();
    gm_mutex_lock(&s->m);          /* sleeps: the main thread holds it */
    __atomic_store_n(&s->got, 1, __ATOMIC_RELEASE);
    gm_mutex_unlock(&s->m);
    gm_waitgroup_wait(&s->wg);     /* sleeps again until the main thread's Done */
    gm_thread_detach();
    return NULL;
}

TEST(gc_runs_while_an_attached_thread_sleeps_on_a_lock)
{
    gc_shared s = { GM_MUTEX_INIT, GM_WAITGROUP_INIT, 0 };
    gm_waitgroup_add(&s.wg, 1);
    gm_mutex_lock(&s.m);
    pthread_t t;
    pthread_create(&t, NULL, attached_locker, &s);
    while (gm_sema_waiters(&s.m.sema_a) < 1) sched_yield();
    gm_memstats before, after;
    gm_read_memstats(&before);
    gm_gc();                       /* must not wait for the sleeper */
    gm_read_memstats(&after);
    CHECK(after.num_gc > before.num_gc);
    gm_mutex_unlock(&s.m);
    while (gm_sema_waiters(&s.wg.sema_a) < 1) sched_yield();
    gm_gc();
    gm_waitgroup_done(&s.wg);
    pthread_join(t, NULL);
    CHECK_EQ_U(s.got, 1);
}
