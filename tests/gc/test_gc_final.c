/* test_gc_final.c - finalizers, cleanups and weak pointers (Go semantics). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gc_util.h"

static _Atomic int fin_count;
static _Atomic int fin_running, fin_overlap;
static _Atomic uint64_t fin_sum;
static pthread_t fin_thread;
static _Atomic int fin_threads_seen;

static void count_fin(void *obj, void *arg)
{
    if (atomic_fetch_add(&fin_running, 1) != 0) atomic_store(&fin_overlap, 1);
    node *n = obj;
    atomic_fetch_add(&fin_sum, n->val + (uint64_t)(uintptr_t)arg);
    pthread_t me = pthread_self();
    if (atomic_fetch_add(&fin_threads_seen, 1) == 0) fin_thread = me;
    else if (!pthread_equal(me, fin_thread)) atomic_store(&fin_overlap, 2);
    for (volatile int i = 0; i < 1000; i++) {}
    atomic_fetch_add(&fin_count, 1);
    atomic_fetch_sub(&fin_running, 1);
}

static void alloc_fin(void *obj, void *arg)
{
    for (int i = 0; i < 100; i++) new_node(NULL, NULL, (uint64_t)i);
    count_fin(obj, arg);
}

__attribute__((noinline)) static void make_finalizable(int n, void (*fn)(void *, void *))
{
    for (int i = 0; i < n; i++) {
        node *o = new_node(NULL, NULL, 1);
        gm_set_finalizer(o, fn, (void *)(uintptr_t)2);
    }
}

TEST(finalizers_run_once_sequentially)
{
    int n = (int)scaled(1000);
    if (n < 50) n = 50;
    make_finalizable(n, count_fin);
    collect();
    gm_finalizers_wait();
    collect();
    gm_finalizers_wait();
    int c = atomic_load(&fin_count);
    CHECK_MSG(c >= n - 4 && c <= n, "%d of %d finalized", c, n);
    CHECK_EQ_U(atomic_load(&fin_sum), (uint64_t)c * 3);
    CHECK_EQ_U(atomic_load(&fin_overlap), 0);          /* one thread, one at a time */
    CHECK(!pthread_equal(fin_thread, pthread_self()));
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&fin_count), c);             /* never twice */
}

TEST(reachable_object_not_finalized)
{
    node *volatile keep = new_node(NULL, NULL, 1);
    gm_set_finalizer(keep, count_fin, NULL);
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&fin_count), 0);
    gm_keep_alive(keep);
}

TEST(clear_finalizer)
{
    node *o = new_node(NULL, NULL, 1);
    gm_set_finalizer(o, count_fin, NULL);
    gm_set_finalizer(o, NULL, NULL);
    o = NULL;
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&fin_count), 0);
}

/* The object is reachable again while its finalizer runs, with everything
 * it points to; it is freed by a later cycle (seen through a cleanup). */
static _Atomic int resurrect_ok, cleanup_ran;
static node *resurrected;

static void check_fin(void *obj, void *arg)
{
    (void)arg;
    node *n = obj;
    atomic_store(&resurrect_ok, n->val == 11 && n->left && n->left->val == 12 ? 1 : -1);
    resurrected = n;     /* kept in a root for one more cycle */
}

static void note_cleanup(void *arg) { atomic_fetch_add(&cleanup_ran, (int)(uintptr_t)arg); }

__attribute__((noinline)) static void make_resurrecting(void)
{
    node *child = new_node(NULL, NULL, 12);
    node *o = new_node(child, NULL, 11);
    gm_set_finalizer(o, check_fin, NULL);
    gm_add_cleanup(o, note_cleanup, (void *)(uintptr_t)1);
}

__attribute__((noinline)) static bool resurrected_intact(void)
{
    return resurrected && resurrected->val == 11 && resurrected->left->val == 12;
}

TEST(finalizer_resurrects_then_freed_later)
{
    gm_root_add(&resurrected, sizeof resurrected);
    make_resurrecting();
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&resurrect_ok), 1);
    CHECK_EQ_U(atomic_load(&cleanup_ran), 0);       /* the object lives on */
    CHECK(resurrected_intact());                     /* still intact */
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&cleanup_ran), 0);       /* still rooted */
    resurrected = NULL;
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&cleanup_ran), 1);       /* freed by a later cycle */
    gm_root_remove(&resurrected);
}

/* A -> B, both finalizable: only A's runs in the first cycle. */
static _Atomic int order[4];
static _Atomic int norder;
static void order_fin(void *obj, void *arg)
{
    (void)obj;
    order[atomic_fetch_add(&norder, 1) & 3] = (int)(uintptr_t)arg;
}

__attribute__((noinline)) static void make_chain(void)
{
    node *b = new_node(NULL, NULL, 2);
    node *a = new_node(b, NULL, 1);
    gm_set_finalizer(a, order_fin, (void *)(uintptr_t)1);
    gm_set_finalizer(b, order_fin, (void *)(uintptr_t)2);
}

TEST(finalizer_order_a_before_b)
{
    make_chain();
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&norder), 1);
    CHECK_EQ_U(order[0], 1);
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&norder), 2);
    CHECK_EQ_U(order[1], 2);
}

__attribute__((noinline)) static gm_weak *make_cycle(bool self)
{
    node *a = new_node(NULL, NULL, 1);
    if (self) {
        gm_store(&a->left, a);
    } else {
        node *b = new_node(a, NULL, 2);
        gm_store(&a->left, b);
        gm_set_finalizer(b, count_fin, NULL);
    }
    gm_set_finalizer(a, count_fin, NULL);
    return gm_weak_make(a);
}

TEST(finalizable_cycles_not_collected)
{
    gm_weak *w1 = make_cycle(true), *w2 = make_cycle(false);
    for (int i = 0; i < 3; i++) {
        collect();
        gm_finalizers_wait();
    }
    CHECK_EQ_U(atomic_load(&fin_count), 0);
    CHECK(gm_weak_get(w1) != NULL);       /* still alive: leaked, as in Go */
    CHECK(gm_weak_get(w2) != NULL);
}

static void set_twice(void *arg)
{
    (void)arg;
    node *o = new_node(NULL, NULL, 1);
    gm_set_finalizer(o, count_fin, NULL);
    gm_set_finalizer(o, count_fin, NULL);
}

static void set_interior(void *arg)
{
    (void)arg;
    node *o = new_node(NULL, NULL, 1);
    gm_set_finalizer(&o->right, count_fin, NULL);
}

static void set_not_heap(void *arg)
{
    static node n;
    (void)arg;
    gm_set_finalizer(&n, count_fin, NULL);
}

TEST(finalizer_misuse_is_fatal)
{
    CHECK(expect_fatal(set_twice, NULL, "runtime.SetFinalizer: finalizer already set"));
    CHECK(expect_fatal(set_interior, NULL, "runtime.SetFinalizer: pointer not at beginning of allocated block"));
    CHECK(expect_fatal(set_not_heap, NULL, "runtime.SetFinalizer: pointer not in allocated block"));
}

/* ---- cleanups -------------------------------------------------------------- */

__attribute__((noinline)) static gm_cleanup make_with_cleanups(int n, gm_weak **w)
{
    node *o = new_node(NULL, NULL, 3);
    gm_cleanup c = { 0, 0 };
    for (int i = 0; i < n; i++) c = gm_add_cleanup(o, note_cleanup, (void *)(uintptr_t)10);
    *w = gm_weak_make(o);
    return c;
}

TEST(cleanups_several_per_object)
{
    gm_weak *w;
    make_with_cleanups(3, &w);
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&cleanup_ran), 30);
    CHECK(gm_weak_get(w) == NULL);          /* freed: no resurrection */
}

TEST(cleanup_stop)
{
    gm_weak *w;
    gm_cleanup c = make_with_cleanups(2, &w);
    gm_cleanup_stop(c);
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&cleanup_ran), 10);    /* only the other one */
    gm_cleanup_stop(c);                            /* after it ran: no-op */
}

static void cleanup_self(void *arg)
{
    (void)arg;
    node *o = new_node(NULL, NULL, 1);
    gm_add_cleanup(o, note_cleanup, o);
}

TEST(cleanup_arg_equal_ptr_is_fatal)
{
    CHECK(expect_fatal(cleanup_self, NULL, "runtime.AddCleanup: ptr is equal to arg, cleanup will never run"));
}

/* ---- weak pointers ------------------------------------------------------------ */

__attribute__((noinline)) static gm_weak *weak_to_garbage(void)
{
    node *o = new_node(NULL, NULL, 9);
    gm_weak *w = gm_weak_make(o);
    CHECK(gm_weak_make(o) == w);            /* canonical, like weak.Make */
    CHECK(gm_weak_get(w) == o);
    return w;
}

TEST(weak_pointers)
{
    CHECK(gm_weak_make(NULL) == NULL);
    CHECK(gm_weak_get(NULL) == NULL);
    node *volatile live = new_node(NULL, NULL, 8);
    gm_weak *wl = gm_weak_make(live);
    gm_weak *wd = weak_to_garbage();
    node *inner = new_node(NULL, NULL, 7);
    gm_weak *wi = gm_weak_make(&inner->right);      /* interior pointer */
    CHECK(wi != gm_weak_make(inner));
    collect();
    CHECK(gm_weak_get(wl) == live);
    CHECK(gm_weak_get(wd) == NULL);
    CHECK(gm_weak_get(wi) == &inner->right);
    gm_keep_alive(inner);
}

static gm_weak *fin_weak;
static _Atomic int weak_seen_in_fin;
static void weak_fin(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    atomic_store(&weak_seen_in_fin, gm_weak_get(fin_weak) == NULL ? 1 : -1);
}

__attribute__((noinline)) static void make_weak_fin(void)
{
    node *o = new_node(NULL, NULL, 1);
    fin_weak = gm_weak_make(o);
    gm_set_finalizer(o, weak_fin, NULL);
}

TEST(weak_cleared_before_finalizer_runs)
{
    gm_root_add(&fin_weak, sizeof fin_weak);
    make_weak_fin();
    collect();
    gm_finalizers_wait();
    CHECK_EQ_U(atomic_load(&weak_seen_in_fin), 1);
    gm_root_remove(&fin_weak);
}

TEST(finalizer_allocates_and_collects)
{
    /* finalizers may allocate (the finalizer thread is a mutator) */
    for (int r = 0; r < 3; r++) {
        make_finalizable(200, alloc_fin);
        collect();
    }
    gm_finalizers_wait();
    CHECK(atomic_load(&fin_count) >= 590);
    CHECK_EQ_U(gm_heap_verify(), 0);
}
