/* test_gc_threads.c - several attached threads allocating and mutating while
 * others collect; blocking sections; attach/detach; thread exit. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "gc_util.h"

#define NTHREADS 4

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

static atomic_int failures;

static void *allocator(void *arg)
{
    uint64_t tag = (uint64_t)(uintptr_t)arg << 32;
    gm_thread_attach();
    long n = scaled(2000);
    for (int round = 0; round < 20; round++) {
        node *keep = build(n, tag + (uint64_t)round);
        build(n * 3, 0);                      /* garbage */
        if (round % 5 == 0) gm_gc();
        if (!check_list(keep, n, tag + (uint64_t)round)) atomic_fetch_add(&failures, 1);
    }
    gm_thread_detach();
    return NULL;
}

TEST(threads_allocate_and_collect)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, allocator, (void *)(uintptr_t)(i + 1));
    gm_blocking_begin();                      /* main waits without stopping GCs */
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    CHECK_EQ_U(atomic_load(&failures), 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* Threads swap objects through a shared table under a lock; each object
 * carries a checksum of its own address. */
static node *table[64];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;

static void lock_table(void)
{
    gm_blocking_begin();                      /* the wait may block */
    pthread_mutex_lock(&table_mu);
    gm_blocking_end();
}

static void *mutator(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    gm_thread_attach();
    for (long i = 0; i < scaled(20000); i++) {
        uint64_t r = test_rand(&seed);
        node *n = new_node(NULL, NULL, 0);
        n->val = (uint64_t)(uintptr_t)n ^ 0x5555;
        lock_table();
        node *old = table[r % 64];
        if (old && (old->val != ((uint64_t)(uintptr_t)old ^ 0x5555) ||
                    (old->left && old->left->val != ((uint64_t)(uintptr_t)old->left ^ 0x5555))))
            atomic_fetch_add(&failures, 1);
        gm_store(&n->left, old);
        if (old) gm_store(&old->left, NULL);  /* keep chains short */
        gm_store(&table[r % 64], n);
        pthread_mutex_unlock(&table_mu);
        if (i % 1000 == 0) gm_safepoint();
    }
    gm_thread_detach();
    return NULL;
}

TEST(threads_mutate_shared_table)
{
    gm_root_add(table, sizeof table);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, mutator, (void *)(uintptr_t)(i * 77 + 1));
    for (int k = 0; k < 5; k++) {
        gm_gc();
        gm_blocking_begin();
        usleep(2000);
        gm_blocking_end();
    }
    gm_blocking_begin();
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    CHECK_EQ_U(atomic_load(&failures), 0);
    gm_gc();
    for (int i = 0; i < 64; i++)
        if (table[i]) CHECK(table[i]->val == ((uint64_t)(uintptr_t)table[i] ^ 0x5555));
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(table);
}

/* A thread inside a blocking section keeps its objects (its stack and saved
 * registers are scanned) while others collect. */
static atomic_int phase;

static void *blocker(void *arg)
{
    (void)arg;
    gm_thread_attach();
    node *mine = build(1000, 77);
    gm_blocking_begin();
    atomic_store(&phase, 1);
    while (atomic_load(&phase) != 2) usleep(100);
    gm_blocking_end();
    if (!check_list(mine, 1000, 77)) atomic_fetch_add(&failures, 1);
    gm_thread_detach();
    return NULL;
}

TEST(blocking_thread_roots_survive)
{
    pthread_t th;
    pthread_create(&th, NULL, blocker, NULL);
    while (atomic_load(&phase) != 1) usleep(100);
    for (int i = 0; i < 3; i++) {
        build(scaled(50000), 0);
        collect();
    }
    atomic_store(&phase, 2);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    CHECK_EQ_U(atomic_load(&failures), 0);
}

/* Threads that never attach explicitly are attached on first allocation
 * and detached when they exit. */
static void *auto_thread(void *arg)
{
    node *l = build(500, 9);
    if (!check_list(l, 500, 9)) atomic_fetch_add(&failures, 1);
    (void)arg;
    return NULL;
}

TEST(auto_attach_and_exit)
{
    for (int r = 0; r < 10; r++) {
        pthread_t th[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, auto_thread, NULL);
        gm_blocking_begin();
        for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
        gm_blocking_end();
        gm_gc();           /* would wait forever for an exited thread */
    }
    CHECK_EQ_U(atomic_load(&failures), 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

TEST(nested_attach_detach)
{
    gm_thread_attach();
    gm_thread_attach();
    node *volatile n = new_node(NULL, NULL, 3);
    gm_thread_detach();
    gm_gc();
    CHECK_EQ_U(n->val, 3);
    gm_thread_detach();
}

static atomic_int cleaned;
static void count_clean(void *a)
{
    (void)a;
    atomic_fetch_add(&cleaned, 1);
}

static void *finalizer_from_threads(void *arg)
{
    (void)arg;
    gm_thread_attach();
    for (int i = 0; i < 200; i++) {
        node *o = new_node(NULL, NULL, 1);
        gm_add_cleanup(o, count_clean, NULL);
    }
    gm_thread_detach();
    return NULL;
}

TEST(cleanups_from_many_threads)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, finalizer_from_threads, NULL);
    gm_blocking_begin();
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    collect();
    gm_finalizers_wait();
    CHECK_MSG(atomic_load(&cleaned) >= NTHREADS * 200 - 8, "%d cleanups ran", atomic_load(&cleaned));
    CHECK_EQ_U(gm_heap_verify(), 0);
}
