/* test_gc_finq.c - finalizers for language runtimes: on demand (run by
 * gm_run_finalizers on the caller's thread, never by the library's thread)
 * and unordered (finalizable cycles collected only with this variant). */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "gc_util.h"

static atomic_int ran;
static pthread_t ran_on[64];
static atomic_int nran_on;

static void fin(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    int k = atomic_fetch_add(&nran_on, 1);
    if (k < 64) ran_on[k] = pthread_self();
    atomic_fetch_add(&ran, 1);
}

static void reset(void)
{
    atomic_store(&ran, 0);
    atomic_store(&nran_on, 0);
}

__attribute__((noinline)) static void make_finalizable(int n, bool unordered)
{
    for (int i = 0; i < n; i++) {
        node *o = new_node(NULL, NULL, (uint64_t)i);
        if (unordered) gm_set_finalizer_unordered(o, fin, NULL);
        else gm_set_finalizer(o, fin, NULL);
    }
}

/* a cycle A <-> B of two finalizable nodes, unreachable */
__attribute__((noinline)) static void make_cycle(bool unordered)
{
    node *a = new_node(NULL, NULL, 1), *b = new_node(a, NULL, 2);
    gm_store(&a->left, b);
    if (unordered) {
        gm_set_finalizer_unordered(a, fin, NULL);
        gm_set_finalizer_unordered(b, fin, NULL);
    } else {
        gm_set_finalizer(a, fin, NULL);
        gm_set_finalizer(b, fin, NULL);
    }
}

/* A -> B, both finalizable, unreachable */
__attribute__((noinline)) static void make_chain(bool unordered)
{
    node *b = new_node(NULL, NULL, 2), *a = new_node(b, NULL, 1);
    if (unordered) {
        gm_set_finalizer_unordered(a, fin, NULL);
        gm_set_finalizer_unordered(b, fin, NULL);
    } else {
        gm_set_finalizer(a, fin, NULL);
        gm_set_finalizer(b, fin, NULL);
    }
}

TEST(on_demand_finalizers_run_only_on_the_caller)
{
    gm_finalizers_on_demand(true);
    reset();
    make_finalizable(20, false);
    collect();
    collect();
    usleep(20000);                      /* the library's thread would have run them by now */
    CHECK_EQ_U(atomic_load(&ran), 0);
    size_t n = gm_run_finalizers();
    CHECK_EQ_U(n, 20);
    CHECK_EQ_U(atomic_load(&ran), 20);
    for (int k = 0; k < 20; k++) CHECK(pthread_equal(ran_on[k], pthread_self()));
    CHECK_EQ_U(gm_run_finalizers(), 0);     /* nothing left */
    gm_finalizers_on_demand(false);
}

TEST(on_demand_off_hands_the_queue_back)
{
    gm_finalizers_on_demand(true);
    reset();
    make_finalizable(5, false);
    collect();
    usleep(10000);
    CHECK_EQ_U(atomic_load(&ran), 0);
    gm_finalizers_on_demand(false);
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&ran), 5);
    CHECK(!pthread_equal(ran_on[0], pthread_self()));   /* the finalizer thread ran them */
}

TEST(finalizers_wait_runs_the_queue_in_on_demand_mode)
{
    gm_finalizers_on_demand(true);
    reset();
    make_finalizable(7, true);
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&ran), 7);
    gm_finalizers_on_demand(false);
}

TEST(finalizable_cycle_collected_only_when_unordered)
{
    gm_finalizers_on_demand(true);
    reset();
    make_cycle(false);
    for (int i = 0; i < 3; i++) {
        collect();
        gm_run_finalizers();
    }
    CHECK_EQ_U(atomic_load(&ran), 0);       /* ordered: the cycle keeps itself forever */
    reset();
    make_cycle(true);
    collect();
    CHECK_EQ_U(gm_run_finalizers(), 2);     /* both, in one cycle */
    CHECK_EQ_U(atomic_load(&ran), 2);
    gm_finalizers_on_demand(false);
}

TEST(unordered_finalizer_runs_while_reachable_from_a_finalizable_object)
{
    gm_finalizers_on_demand(true);
    reset();
    make_chain(false);
    collect();
    CHECK_EQ_U(gm_run_finalizers(), 1);     /* ordered: A first, B a cycle later */
    collect();
    CHECK_EQ_U(gm_run_finalizers(), 1);
    reset();
    make_chain(true);
    collect();
    CHECK_EQ_U(gm_run_finalizers(), 2);     /* unordered: both at once */
    gm_finalizers_on_demand(false);
}

static gm_weak *wk;

__attribute__((noinline)) static void make_weakly_watched(void)
{
    node *o = new_node(NULL, NULL, 9);
    gm_set_finalizer_unordered(o, fin, NULL);
    wk = gm_weak_make(o);
}

/* The finalized object is freed by a later cycle (resurrected while its
 * finalizer runs): a second finalizer never runs, and the heap stays sound. */
TEST(unordered_finalized_object_is_freed_later)
{
    gm_finalizers_on_demand(true);
    reset();
    gm_root_add(&wk, sizeof wk);
    make_weakly_watched();
    collect();
    CHECK(gm_weak_get(wk) == NULL);         /* cleared when its finalizer is queued */
    CHECK_EQ_U(gm_run_finalizers(), 1);
    collect();
    collect();
    CHECK_EQ_U(gm_run_finalizers(), 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(&wk);
    gm_finalizers_on_demand(false);
}
