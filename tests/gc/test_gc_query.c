/* test_gc_query.c - object queries for language runtimes: gm_base and
 * gm_size from interior pointers of small and large objects and for
 * pointers that are not in the heap; gm_heap_live without a stop. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gc_util.h"

static uint8_t a_static[64];

TEST(base_and_size_of_small_objects)
{
    size_t sizes[] = { 8, 16, 24, 48, 100, 1000, 4000, 32768 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *p = gm_alloc_noscan(sizes[k]);
        size_t n = gm_size(p);
        CHECK_MSG(n >= sizes[k] && n < sizes[k] + sizes[k] / 4 + 16, "asked %zu got %zu", sizes[k], n);
        for (size_t off = 0; off < n; off += (n / 17) | 1) {
            CHECK_MSG(gm_base(p + off) == p, "size %zu off %zu", sizes[k], off);
            CHECK_EQ_U(gm_size(p + off), n);
        }
        CHECK(gm_base(p + n - 1) == p);
        /* one past the end is the next object, or nothing */
        CHECK(gm_base(p + n) != p);
    }
    node *t = new_node(NULL, NULL, 5);
    CHECK(gm_base(&t->val) == t);
    CHECK(gm_base((char *)t + 1) == t);
}

TEST(base_and_size_of_large_objects)
{
    size_t sizes[] = { 32769, 100000, 1 << 20 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *p = gm_alloc_conservative(sizes[k]);
        size_t n = gm_size(p);
        CHECK(n >= sizes[k] && n % 8192 == 0 && n < sizes[k] + 8192);
        CHECK(gm_base(p + sizes[k] / 2) == p);
        CHECK(gm_base(p + n - 1) == p);
        CHECK_EQ_U(gm_size(p + sizes[k] - 1), n);
    }
}

TEST(base_of_non_heap_pointers_is_null)
{
    int local = 0;
    void *m = malloc(64);
    CHECK(gm_base(NULL) == NULL && gm_size(NULL) == 0);
    CHECK(gm_base(&local) == NULL && gm_size(&local) == 0);
    CHECK(gm_base(a_static + 3) == NULL && gm_size(a_static) == 0);
    CHECK(gm_base(m) == NULL && gm_size(m) == 0);
    CHECK(gm_base((void *)(uintptr_t)0x10) == NULL);
    CHECK(gm_base((void *)~(uintptr_t)0) == NULL);
    CHECK(gm_base(gm_alloc_noscan(0)) == NULL);           /* zero-size objects are not in the heap */
    free(m);
}

/* A free slot of a span is not an object. */
TEST(base_of_a_free_slot_is_null)
{
    /* a fresh span of this class: the slots after the first are free */
    uint8_t *first = NULL;
    for (int i = 0; i < 4; i++) first = gm_alloc_noscan(3072);
    size_t n = gm_size(first);
    uint8_t *next = first + n;
    CHECK(gm_base(first) == first);
    /* next is free until allocated: either NULL, or (if the span was
     * reused) an object starting exactly there */
    void *b = gm_base(next + 5);
    CHECK(b == NULL || b == next);
}

static atomic_int spin_stop, spinning;

/* Attached and running, never at a safepoint: a stop-the-world would wait
 * for it (and abort after stoptimeout). */
static void *spinner(void *arg)
{
    (void)arg;
    gm_thread_attach();
    atomic_store(&spinning, 1);
    while (!atomic_load(&spin_stop)) {}
    gm_thread_detach();
    return NULL;
}

static uint8_t *big_root[1];

TEST(heap_live_reads_without_stopping_the_world)
{
    gm_root_add(big_root, sizeof big_root);
    collect();
    uint64_t before = gm_heap_live();
    gm_store(&big_root[0], gm_alloc_noscan(8 << 20));
    uint64_t with = gm_heap_live();
    CHECK_MSG(with >= before + (8 << 20), "%llu -> %llu", (unsigned long long)before, (unsigned long long)with);
    pthread_t th;
    pthread_create(&th, NULL, spinner, NULL);
    while (!atomic_load(&spinning)) {}
    uint64_t during = 0;
    for (int i = 0; i < 1000; i++) during = gm_heap_live();   /* returns with the spinner running */
    atomic_store(&spin_stop, 1);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    CHECK(during >= with);
    gm_store(&big_root[0], NULL);
    collect();
    uint64_t after = gm_heap_live();
    CHECK_MSG(after + (8 << 20) <= with + (1 << 20), "%llu -> %llu", (unsigned long long)with,
              (unsigned long long)after);
    gm_root_remove(big_root);
}
