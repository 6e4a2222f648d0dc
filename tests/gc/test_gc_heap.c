/* test_gc_heap.c - allocation, reachability, freeing, statistics, pacing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc_util.h"

/* ---- allocation ---------------------------------------------------------- */

TEST(alloc_zeroed_sizes)
{
    /* every size up to 40000 (small classes and large), step over classes */
    uint8_t *prev = NULL;
    for (size_t size = 1; size <= 40000; size += size < 1100 ? 7 : 301) {
        uint8_t *p = gm_alloc_noscan(size);
        REQUIRE(p != NULL);
        for (size_t i = 0; i < size; i++)
            if (p[i] != 0) { CHECK_MSG(false, "size %zu byte %zu not zero", size, i); break; }
        memset(p, 0xAB, size);
        CHECK(p != prev);
        prev = p;
    }
    CHECK_EQ_U(gm_heap_verify(), 0);
}

TEST(alloc_reuse_is_zeroed)
{
    /* memory freed and reallocated comes back zeroed */
    for (int round = 0; round < 4; round++) {
        for (long i = 0; i < scaled(20000); i++) {
            uint64_t *p = gm_alloc_noscan(48);
            for (int k = 0; k < 6; k++)
                if (p[k]) { CHECK_MSG(false, "reused object not zeroed"); return; }
            for (int k = 0; k < 6; k++) p[k] = ~(uint64_t)0;
        }
        collect();
    }
}

TEST(zero_size)
{
    void *a = gm_alloc_noscan(0), *b = gm_new_array(&node_type, 0);
    CHECK(a != NULL && b != NULL);
}

static void overflow_child(void *arg)
{
    (void)arg;
    gm_new_array(&node_type, SIZE_MAX / 8);
}

TEST(new_array_overflow_is_fatal)
{
    CHECK(expect_fatal(overflow_child, NULL, "makeslice: len out of range"));
}

/* ---- reachability -------------------------------------------------------- */

__attribute__((noinline)) static node *build_list(long n)
{
    node *head = NULL;
    for (long i = 0; i < n; i++) head = new_node(head, NULL, (uint64_t)i);
    return head;
}

__attribute__((noinline)) static void garbage(long n)
{
    for (long i = 0; i < n; i++) new_node(NULL, NULL, 7);
}

static bool list_ok(node *head, long n)
{
    for (long i = n - 1; i >= 0; i--, head = head->left)
        if (!head || head->val != (uint64_t)i) return false;
    return head == NULL;
}

TEST(list_survives)
{
    long n = scaled(100000);
    node *head = build_list(n);
    for (int i = 0; i < 3; i++) {
        garbage(scaled(200000));
        collect();
    }
    CHECK(list_ok(head, n));
    CHECK_EQ_U(gm_heap_verify(), 0);
}

static node *tree(int depth, uint64_t *id)
{
    if (depth == 0) return NULL;
    node *l = tree(depth - 1, id);
    node *r = tree(depth - 1, id);
    return new_node(l, r, (*id)++);
}

static uint64_t tree_sum(node *t, long *count)
{
    if (!t) return 0;
    (*count)++;
    return t->val + tree_sum(t->left, count) + tree_sum(t->right, count);
}

TEST(tree_survives)
{
    int depth = test_scale() < 0.5 ? 10 : 16;
    uint64_t id = 0;
    node *t = tree(depth, &id);
    long count = 0;
    uint64_t sum = tree_sum(t, &count);
    for (int i = 0; i < 3; i++) {
        garbage(scaled(100000));
        collect();
    }
    long count2 = 0;
    CHECK_EQ_U(tree_sum(t, &count2), sum);
    CHECK_EQ_U(count2, count);
    CHECK_EQ_U(count, (1L << depth) - 1);
}

TEST(parallel_mark_big_graph)
{
    /* a live heap over 8 MiB: marked by several workers under GMDEBUG=gcworkers=2
     * (the test_gc_heap.parallel_mark_2workers variant) */
    bool stress = stats()->debug_gc;            /* gcstress: a small graph will do */
    int depth = stress ? 8 : test_scale() < 0.5 ? 15 : 18, n = stress ? 500 : 50000;
    uint64_t id = 0;
    node *t = tree(depth, &id);
    node **arr = gm_new_array(&ptr_type, (size_t)n);
    for (int i = 0; i < n; i++) gm_store(&arr[i], new_node(t, NULL, (uint64_t)i));
    long count = 0;
    uint64_t sum = tree_sum(t, &count);
    for (int i = 0; i < 3; i++) {
        garbage(scaled(300000));
        collect();
    }
    long count2 = 0;
    CHECK_EQ_U(tree_sum(t, &count2), sum);
    CHECK_EQ_U(count2, (1L << depth) - 1);
    bool ok = true;
    for (int i = 0; i < n; i++) ok &= arr[i]->val == (uint64_t)i && arr[i]->left == t;
    CHECK(ok);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

TEST(array_of_pointers_survives)
{
    long n = scaled(20000);
    node **arr = gm_new_array(&ptr_type, (size_t)n);   /* a large typed array */
    for (long i = 0; i < n; i++) gm_store(&arr[i], new_node(NULL, NULL, (uint64_t)i * 3));
    node **small = gm_new_array(&ptr_type, 100);     /* a small typed array */
    for (int i = 0; i < 100; i++) gm_store(&small[i], new_node(NULL, NULL, (uint64_t)i));
    for (int r = 0; r < 3; r++) {
        garbage(scaled(100000));
        collect();
    }
    bool ok = true;
    for (long i = 0; i < n; i++) ok &= arr[i]->val == (uint64_t)i * 3;
    for (int i = 0; i < 100; i++) ok &= small[i]->val == (uint64_t)i;
    CHECK(ok);
}

TEST(struct_with_mixed_words)
{
    /* a 5-word type where words 1 and 3 are pointers, in arrays of 3 */
    static const uint8_t mask[] = { 0x0A };
    static const gm_type t = { 40, 8, NULL, NULL, mask, 0, "mixed" };
    enum { N = 200 };
    uintptr_t *objs[N];
    for (int i = 0; i < N; i++) {
        uintptr_t *o = gm_new_array(&t, 3);
        for (int e = 0; e < 3; e++) {
            o[e * 5 + 0] = 0xdead;   /* not a pointer: must be left alone */
            gm_store(&o[e * 5 + 1], new_node(NULL, NULL, (uint64_t)(i * 3 + e)));
            gm_store(&o[e * 5 + 3], new_node(NULL, NULL, (uint64_t)(i * 3 + e + 1000000)));
        }
        objs[i] = o;
    }
    garbage(scaled(100000));
    collect();
    bool ok = true;
    for (int i = 0; i < N; i++)
        for (int e = 0; e < 3; e++) {
            ok &= ((node *)objs[i][e * 5 + 1])->val == (uint64_t)(i * 3 + e);
            ok &= ((node *)objs[i][e * 5 + 3])->val == (uint64_t)(i * 3 + e + 1000000);
            ok &= objs[i][e * 5] == 0xdead;
        }
    CHECK(ok);
}

/* Three-word objects with their one pointer in word 0 or (b) word 2, each
 * to node i; word 1 a non-pointer that must stay. */
static void put_three(uintptr_t **objs, int i, uintptr_t *o, bool b)
{
    o[1] = 0xdead;
    gm_store(&o[b ? 2 : 0], new_node(NULL, NULL, (uint64_t)i));
    gm_store(&objs[i], o);
}

/* Verify, collect, verify; every referent kept?  which(i, arg): word 2. */
static bool three_survive(uintptr_t **objs, int n, bool (*which)(int, int), int arg)
{
    CHECK_EQ_U(gm_heap_verify(), 0);
    garbage(scaled(50000));
    collect();
    CHECK_EQ_U(gm_heap_verify(), 0);
    bool ok = true;
    for (int i = 0; i < n; i++)
        ok &= ((node *)objs[i][which(i, arg) ? 2 : 0])->val == (uint64_t)i && objs[i][1] == 0xdead;
    return ok;
}

static uintptr_t **three_roots(int n)
{
    uintptr_t **objs = calloc((size_t)n, sizeof *objs);
    if (objs) gm_root_add(objs, (size_t)n * sizeof *objs);
    return objs;
}

/* of 3000 objects, round 0: runs of one type (a span filled for each);
 * later rounds: single switches */
static bool mixed_b(int i, int round) { return round == 0 ? i >= 1500 : (i % (round + 1)) == 0; }

TEST(same_class_types_keep_their_own_heap_bits)
{
    /* Two 3-word types of one size class, their pointer in different words
     * (A: word 0, B: word 2), interleaved in the same spans, before and
     * after sweeps: a span that writes the heap bits once (alloc.c, HEAP
     * BITS) must not give B's slots A's bits, or B's referents are freed
     * (clobberfree, the values) and gm_heap_verify reports the promise
     * broken. */
    static const uint8_t ma[] = { 0x1 }, mb[] = { 0x4 };
    static const gm_type ta = { 24, 8, NULL, NULL, ma, 0, "three_a" };
    static const gm_type tb = { 24, 8, NULL, NULL, mb, 0, "three_b" };
    enum { N = 3000 };
    uintptr_t **objs = three_roots(N);
    REQUIRE(objs != NULL);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) put_three(objs, i, gm_new(mixed_b(i, round) ? &tb : &ta), mixed_b(i, round));
        CHECK(three_survive(objs, N, mixed_b, round));
        for (int i = 0; i < N; i += 2) gm_store(&objs[i], NULL);   /* half free for reuse */
        collect();
    }
    gm_root_remove(objs);
    free(objs);
}

__attribute__((noinline)) static uintptr_t *new_with_stack_type(uint8_t mask_byte)
{
    /* one stack slot, another type each call: the same address */
    uint8_t mask[1] = { mask_byte };
    gm_type t = { 24, 8, NULL, NULL, mask, 0, "stack_type" };
    return gm_new(&t);
}

static bool runs_b(int i, int unused) { (void)unused; return (i / 300) % 2; }

TEST(stack_types_at_one_address_keep_their_own_heap_bits)
{
    /* A gm_type on the stack is another type at the same address next call:
     * a span that records which bits its slots carry must compare the bits,
     * not the type's address (b6_new_honours_alignment found it). */
    enum { N = 2000 };
    uintptr_t **objs = three_roots(N);
    REQUIRE(objs != NULL);
    for (int i = 0; i < N; i++) put_three(objs, i, new_with_stack_type(runs_b(i, 0) ? 0x4 : 0x1), runs_b(i, 0));
    CHECK(three_survive(objs, N, runs_b, 0));
    gm_root_remove(objs);
    free(objs);
}

TEST(stack_only_survives)
{
    node *volatile keep = new_node(NULL, NULL, 42);
    node *reg = new_node(NULL, NULL, 43);      /* likely in a register */
    garbage(scaled(100000));
    collect();
    CHECK_EQ_U(keep->val, 42);
    CHECK_EQ_U(reg->val, 43);
    gm_keep_alive(reg);
}

static node *global_root;

__attribute__((noinline)) static gm_weak *set_global(void)
{
    global_root = new_node(NULL, NULL, 99);
    return gm_weak_make(global_root);
}

/* Checks in their own frame: the test's frame keeps no copy of the object. */
__attribute__((noinline)) static bool global_ok(gm_weak *w)
{
    return global_root && global_root->val == 99 && gm_weak_get(w) == global_root;
}

TEST(root_only_survives_then_freed)
{
    gm_root_add(&global_root, sizeof global_root);
    gm_weak *w = set_global();
    gm_root_add(&w, sizeof w);               /* the handle itself must stay reachable */
    garbage(scaled(100000));
    collect();
    CHECK(global_ok(w));
    global_root = NULL;
    collect();
    CHECK(gm_weak_get(w) == NULL);
    gm_root_remove(&global_root);
    gm_root_remove(&w);
}

TEST(malloc_root_range)
{
    node **block = calloc(64, sizeof *block);
    REQUIRE(block);
    gm_root_add(block, 64 * sizeof *block);
    for (int i = 0; i < 64; i++) gm_store(&block[i], new_node(NULL, NULL, (uint64_t)i + 500));
    garbage(scaled(100000));
    collect();
    bool ok = true;
    for (int i = 0; i < 64; i++) ok &= block[i]->val == (uint64_t)i + 500;
    CHECK(ok);
    gm_root_remove(block);
    free(block);
}

TEST(interior_pointer_only)
{
    uint64_t *big = gm_alloc_conservative(4096);
    for (int i = 0; i < 512; i++) big[i] = (uint64_t)i;
    char *volatile inner = (char *)big + 2000;          /* only an interior pointer */
    uint64_t *lg = gm_alloc_noscan(100000);              /* large object */
    lg[12000] = 77;
    char *volatile inner2 = (char *)lg + 96000;
    big = NULL;
    lg = NULL;
    garbage(scaled(100000));
    collect();
    uint64_t *b = (uint64_t *)(inner - 2000);
    bool ok = true;
    for (int i = 0; i < 512; i++) ok &= b[i] == (uint64_t)i;
    CHECK(ok);
    CHECK_EQ_U(((uint64_t *)(inner2 - 96000))[12000], 77);
}

__attribute__((noinline)) static gm_weak *noscan_holder(void ***holder)
{
    node *target = new_node(NULL, NULL, 5);
    void **h = gm_alloc_noscan(sizeof(void *));
    *h = target;                  /* a noscan object never keeps anything alive */
    *holder = h;
    return gm_weak_make(target);
}

TEST(noscan_is_not_scanned)
{
    void **holder;
    gm_weak *w = noscan_holder(&holder);
    collect();
    CHECK(gm_weak_get(w) == NULL);
    gm_keep_alive(holder);
}

__attribute__((noinline)) static gm_weak *conservative_holder(void ***holder)
{
    node *target = new_node(NULL, NULL, 6);
    void **h = gm_alloc_conservative(3 * sizeof(void *));
    gm_store(&h[2], target);
    *holder = h;
    return gm_weak_make(target);
}

TEST(conservative_is_scanned)
{
    void **holder;
    gm_weak *w = conservative_holder(&holder);
    collect();
    CHECK(gm_weak_get(w) != NULL);
    CHECK_EQ_U(((node *)holder[2])->val, 6);
}

/* ---- freeing and bounds ------------------------------------------------------ */

TEST(unreachable_freed_heap_bounded)
{
    gm_memstats *m = stats();
    uint64_t frees0 = m->frees, gc0 = m->num_gc;
    /* allocate 50x the 4 MiB minimum goal, keeping nothing */
    long n = scaled(200000);
    for (int round = 0; round < 10; round++) garbage(n);   /* 24 bytes -> class 24 */
    for (long i = 0; i < scaled(20000); i++) gm_alloc_noscan(1000);
    m = stats();
    if (test_scale() >= 1) CHECK(m->num_gc > gc0 + 3);
    CHECK_MSG(m->heap_sys <= ((uint64_t)128 << 20), "heap_sys %llu", (unsigned long long)m->heap_sys);
    CHECK(m->heap_alloc <= m->heap_inuse);
    /* frees are counted when spans are swept: the background sweeper may
     * lag on a loaded machine (5 of 12 ASan runs at load 7 read too few) */
    collect();
    m = stats();
    CHECK(m->frees > frees0 + (uint64_t)n);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

TEST(large_objects_freed)
{
    gm_memstats *m = stats();
    uint64_t frees0 = m->frees;
    for (long i = 0; i < scaled(400); i++) {
        uint8_t *p = gm_alloc_noscan(1 << 20);
        p[0] = p[(1 << 20) - 1] = 1;
    }
    collect();
    m = stats();
    CHECK(m->frees + 8 >= frees0 + (uint64_t)scaled(400));
    CHECK(m->heap_inuse < ((uint64_t)64 << 20));
    CHECK_EQ_U(gm_heap_verify(), 0);
}

TEST(shrinking_heap_returns_memory)
{
    /* a 64 MiB live peak, then dropped: a collection returns what lies
     * beyond goal + 10% to the OS (gm_gc scavenges once everything is swept) */
    bool stress = stats()->debug_gc;      /* gcstress: a small peak will do */
    int n = stress ? 1024 : 1 << 16;
    node **arr = gm_new_array(&ptr_type, (size_t)n);
    for (int i = 0; i < n; i++) gm_store(&arr[i], gm_alloc_noscan(1000));
    arr = NULL;
    collect();
    collect();
    gm_memstats *m = stats();
    CHECK_MSG(m->heap_sys - m->heap_released <= m->next_gc + m->next_gc / 10 + (1 << 20),
              "retained %llu, goal %llu", (unsigned long long)(m->heap_sys - m->heap_released),
              (unsigned long long)m->next_gc);
    if (!stress) CHECK(m->heap_released >= ((uint64_t)32 << 20));
    CHECK_EQ_U(gm_heap_verify(), 0);
}

TEST(free_os_memory_releases)
{
    for (int i = 0; i < 64; i++) gm_alloc_noscan(1 << 20);
    scrub_stack();
    gm_free_os_memory();
    gm_memstats *m = stats();
    CHECK(m->heap_released > 0);
    CHECK(m->heap_released <= m->heap_idle);
    CHECK_EQ_U(m->heap_idle + m->heap_inuse, m->heap_sys);
    /* released pages come back zeroed */
    uint8_t *p = gm_alloc_noscan(1 << 20);
    bool zero = true;
    for (int i = 0; i < (1 << 20); i += 512) zero &= p[i] == 0;
    CHECK(zero);
}

/* ---- statistics and pacing ------------------------------------------------------ */

TEST(memstats_counts)
{
    gm_memstats *m = stats();
    uint64_t mallocs0 = m->mallocs, total0 = m->total_alloc;
    uint32_t gc0 = m->num_gc, forced0 = m->num_forced_gc;
    for (int i = 0; i < 1000; i++) gm_alloc_noscan(64);
    m = stats();
    CHECK_EQ_U(m->mallocs - mallocs0, 1000);
    CHECK_EQ_U(m->total_alloc - total0, 64000);
    CHECK(m->heap_objects == m->mallocs - m->frees);
    CHECK(m->heap_alloc == m->alloc);
    gm_gc();
    m = stats();
    CHECK(m->num_gc >= gc0 + 1);
    CHECK(m->num_forced_gc >= forced0 + 1);
    CHECK(m->last_gc > 0);
    CHECK(m->pause_total_ns > 0);
    CHECK(m->pause_ns[(m->num_gc + 255) % 256] > 0);
    CHECK(m->next_gc >= ((uint64_t)4 << 20));
    CHECK(m->sys >= m->heap_sys);
    CHECK(m->gc_cpu_fraction >= 0 && m->gc_cpu_fraction < 1);
    CHECK(m->by_size[1].size == 8);
    CHECK(m->enable_gc);
}

TEST(pause_histogram)
{
    gm_gc();
    gm_gc();
    uint64_t h[GM_PAUSE_BUCKETS], total = 0;
    gm_read_pause_histogram(h);
    for (int i = 0; i < GM_PAUSE_BUCKETS; i++) total += h[i];
    /* every stop-the-world pause: two or more per concurrent cycle */
    uint32_t ngc = stats()->num_gc;
    CHECK_MSG(total >= ngc && total <= 16 * (uint64_t)ngc, "%llu pauses, %u cycles",
              (unsigned long long)total, ngc);
    CHECK(gm_pause_quantile_ns(0.99) > 0);
    for (unsigned i = 1; i < GM_PAUSE_BUCKETS; i++)
        if (gm_pause_bucket_lower_ns(i) <= gm_pause_bucket_lower_ns(i - 1)) {
            CHECK_MSG(false, "bucket bounds not increasing at %u", i);
            break;
        }
}

TEST(gc_percent_off_and_on)
{
    int old = gm_gc_percent(-1);
    CHECK_EQ_U(old, 100);
    uint32_t gc0 = stats()->num_gc;
    for (long i = 0; i < scaled(400000); i++) gm_alloc_noscan(64);   /* 25 MB */
    if (!stats()->debug_gc) CHECK_EQ_U(stats()->num_gc, gc0);   /* gcstress collects anyway */
    CHECK_EQ_U(stats()->next_gc, UINT64_MAX);
    CHECK(gm_gc_percent(50) == -1);
    /* a concurrent cycle ends some time after its trigger, when the mark
     * worker gets a CPU: allocate past the trigger, then slowly (a bounded
     * amount, whatever the machine's load) until one has completed */
    for (long i = 0; i < scaled(400000); i++) gm_alloc_noscan(64);
    for (int ms = 0; ms < 30000 && stats()->num_gc == gc0; ms++) {
        for (int k = 0; k < 100; k++) gm_alloc_noscan(64);
        gm_blocking_begin();
        usleep(1000);
        gm_blocking_end();
    }
    if (test_scale() >= 1) CHECK(stats()->num_gc > gc0);
    gm_gc_percent(100);
}

TEST(memory_limit_lowers_goal)
{
    CHECK(gm_memory_limit(-1) == INT64_MAX);
    node *volatile keep = build_list(scaled(200000));          /* ~5 MB live */
    gm_gc();
    uint64_t goal_free = stats()->next_gc;
    int64_t lim = (int64_t)(goal_free * 3 / 4);   /* ~1.5x live: below the goal, above live */
    int64_t old = gm_memory_limit(lim);
    CHECK(old == INT64_MAX);
    gm_gc();
    CHECK_MSG(stats()->next_gc <= (uint64_t)lim, "goal %llu limit %lld",
              (unsigned long long)stats()->next_gc, (long long)lim);
    CHECK(gm_memory_limit(-1) == lim);
    gm_memory_limit(INT64_MAX);
    CHECK(list_ok(keep, scaled(200000)));
}

TEST(store_and_typed_copy)
{
    node *a = new_node(NULL, NULL, 1), *b = new_node(NULL, NULL, 2);
    gm_store(&a->left, b);
    CHECK(a->left == b);
    node *c = gm_new(&node_type);
    gm_typed_memmove(&node_type, c, a);
    CHECK(c->left == b && c->val == 1);
    gm_typed_memclr(&node_type, a);
    CHECK(a->left == NULL && a->val == 0);
    b = NULL;
    garbage(scaled(50000));
    collect();
    CHECK_EQ_U(c->left->val, 2);
}

TEST(atomic_slots)
{
    node *a = new_node(NULL, NULL, 1), *b = new_node(NULL, NULL, 2), *c = new_node(NULL, NULL, 3);
    gm_atomic_store(&a->left, b);
    CHECK(a->left == b);
    CHECK(gm_atomic_swap(&a->left, c) == b);
    CHECK(!gm_atomic_cas(&a->left, b, b));
    CHECK(a->left == c);
    CHECK(gm_atomic_cas(&a->right, NULL, b));
    b = c = NULL;
    garbage(scaled(50000));
    collect();
    CHECK_EQ_U(a->left->val, 3);
    CHECK_EQ_U(a->right->val, 2);
}

TEST(verify_after_mixed_workload)
{
    uint64_t seed = 1;
    node *keep[256] = { 0 };
    for (long i = 0; i < scaled(100000); i++) {
        uint64_t r = test_rand(&seed);
        size_t sz = (size_t)(r % 3000) + 1;
        void *p = (r >> 20) & 1 ? gm_alloc_noscan(sz) : gm_alloc_conservative(sz);
        if ((r >> 21) % 16 == 0) keep[(r >> 30) % 256] = p;
        if (i % 20000 == 0) CHECK_EQ_U(gm_heap_verify(), 0);
    }
    collect();
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_keep_alive(keep);
}

#ifdef GOMAP_FAULT_INJECTION
static bool object_queue(void)
{
    const char *d = getenv("GMDEBUG");
    return d && strstr(d, "gcmarkqueue=object");
}

/* The span mark queue (mark.c): a span that yields one grey object per
 * visit is scanned as that object alone (Go's single-object case), a span
 * whose objects turn grey one after another while it is scanned as one span
 * visit.  Counts, after one collection: a list with one node per span (its
 * nodes lie SPARSE_GAP objects apart; the garbage between them is freed)
 * and a list of consecutive nodes. */
#define SPARSE_GAP 600   /* more objects than a span of the node's size class holds */

/* n nodes with SPARSE_GAP garbage nodes after each; the garbage stays
 * reachable until the list is built (a collection in between would hand
 * its slots to the list) */
__attribute__((noinline)) static node *sparse_list(long n)
{
    node *list = NULL, *gap = NULL;
    for (long i = 0; i < n; i++) {
        list = new_node(list, NULL, (uint64_t)i);
        for (int k = 0; k < SPARSE_GAP; k++) gap = new_node(gap, NULL, 0);
    }
    gm_keep_alive(gap);
    return list;
}

TEST(span_queue_single_object_case)
{
    long n = scaled(300), m = scaled(20000);
    node *sparse = sparse_list(n);
    collect();                       /* the gaps freed: the list's spans hold one object each */
    uint64_t one, many;
    gm_gc_fault_span_scans(&one, &many);
    collect();
    gm_gc_fault_span_scans(&one, &many);
    /* a collection at every allocation (gcstress) hands each allocation a
     * span of its own choosing: the layout, and so the counts, are not the
     * test's there */
    const char *d = getenv("GMDEBUG");
    bool stress = d && strstr(d, "gcstress");
    if (object_queue()) {
        CHECK_EQ_U(one + many, 0);
    } else if (!stress) {
        CHECK(one >= (uint64_t)n);       /* every node of the list, alone */
        CHECK(many < (uint64_t)n / 4 + 16);  /* the few spans of other objects */
    }
    node *dense = NULL;
    for (long i = 0; i < m; i++) dense = new_node(dense, NULL, (uint64_t)i);
    uint64_t one2, many2;
    gm_gc_fault_span_scans(&one2, &many2);   /* reset */
    collect();
    gm_gc_fault_span_scans(&one2, &many2);
    if (getenv("SPAN_TEST_VERBOSE"))
        fprintf(stderr, "sparse: one %llu many %llu; with dense: one %llu many %llu\n", (unsigned long long)one,
                (unsigned long long)many, (unsigned long long)one2, (unsigned long long)many2);
    if (!object_queue() && !stress) {
        /* one item per span of the dense list, scanned as a span: each node
         * greys the next, in the same span, while the span is held */
        CHECK(many2 >= many + (uint64_t)m / 1024);
        CHECK(one2 < one + (uint64_t)m / 16);
    }
    for (long i = n - 1; i >= 0; i--, sparse = sparse->left) CHECK_EQ_U(sparse->val, (uint64_t)i);
    for (long i = m - 1; i >= 0; i--, dense = dense->left) CHECK_EQ_U(dense->val, (uint64_t)i);
    CHECK_EQ_U(gm_heap_verify(), 0);
}
#endif
