/* test_gc_fork.c - fork while other mutators run: the child has only the
 * forking thread and can still collect, finalize and verify.  Not labelled
 * tsan: ThreadSanitizer's runtime can hang in a child forked from a
 * multithreaded process. */
#include <pthread.h>
#include <stdatomic.h>

#include "gc_util.h"

static node *build(long n, uint64_t tag)
{
    node *head = NULL;
    for (long i = 0; i < n; i++) head = new_node(head, NULL, tag + (uint64_t)i);
    return head;
}

static bool check_list(node *head, long n, uint64_t tag)
{
    for (long i = n - 1; i >= 0; i--, head = head->left)
        if (!head || head->val != tag + (uint64_t)i) return false;
    return head == NULL;
}

/* After fork only the forking thread exists: the child can still collect,
 * run finalizers and verify (the parent's sweeper, finalizer and other
 * mutators are forgotten, not waited for). */
static atomic_int child_fin;
static void child_fin_fn(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    atomic_fetch_add(&child_fin, 1);
}

__attribute__((noinline)) static void child_garbage(void)
{
    for (int i = 0; i < 100; i++) gm_set_finalizer(new_node(NULL, NULL, 1), child_fin_fn, NULL);
}

static void gc_in_child(void *arg)
{
    (void)arg;
    node *keep = build(1000, 5);
    child_garbage();
    collect();
    gm_finalizers_wait();
    fprintf(stderr, "child: list %s, finalized %d, verify %zu\n",
            check_list(keep, 1000, 5) ? "ok" : "BAD", atomic_load(&child_fin), gm_heap_verify());
    abort();
}

static atomic_int spin_stop;
static void *busy_mutator(void *arg)
{
    (void)arg;
    gm_thread_attach();
    while (!atomic_load(&spin_stop)) build(100, 1);     /* allocates: safepoints */
    gm_thread_detach();
    return NULL;
}

TEST(fork_child_collects)
{
    pthread_t th;
    pthread_create(&th, NULL, busy_mutator, NULL);
    gm_gc();                                            /* sweeper and finalizer exist */
    gm_set_finalizer(new_node(NULL, NULL, 1), child_fin_fn, NULL);
    CHECK(expect_abort_with(gc_in_child, NULL, "child: list ok, finalized "));
    CHECK(expect_abort_with(gc_in_child, NULL, ", verify 0\n"));
    atomic_store(&spin_stop, 1);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
}
