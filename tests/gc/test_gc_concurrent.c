/* test_gc_concurrent.c - the concurrent mark: mutators rewriting a graph
 * while marking runs, under gccheckmark (set for this file in
 * CMakeLists.txt); the write barrier's fault switch proving that checkmark
 * catches a missing barrier; mark assists counted in bytes.
 *
 * concurrent_mutation_stress is also the soak: bench/gc/run.sh runs it with
 * GOMAP_TEST_SCALE=25 (1000 cycles and more). */
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "gc/gc_fault.h"
#include "gc_util.h"

/* ---- the mutation stress ------------------------------------------------------------ */

#define NMUT 2
#define NSLOTS 256
#define NXCHG 16
#define CHAIN 40
#define NBALLAST 20000    /* per mutator: enough objects that marking takes a while */
#define MAGIC 0x6a09e667f3bcc908ull

/* Each mutator owns its graph; nodes change owner only through xchg. */
static node **slots[NMUT];         /* each mutator's GC array of NSLOTS pointers */
static node *xchg[NXCHG];          /* shared between mutators; a root range */
static atomic_int stop_mutators, bad_nodes;
static atomic_long mutations;

static inline uint64_t sum_of(const node *n) { return (uint64_t)(uintptr_t)n ^ MAGIC; }

static node *fresh(void)
{
    node *n = new_node(NULL, NULL, 0);
    n->val = sum_of(n);
    return n;
}

/* A node is intact if its checksum matches its address: a node freed too
 * early is clobbered (clobberfree=1) or reused with different contents. */
static bool intact(const node *n) { return n == NULL || n->val == sum_of(n); }

/* Walks a few edges from n, checking every node on the way. */
static void walk(node *n, uint64_t *seed)
{
    for (int k = 0; n && k < 12; k++) {
        if (!intact(n)) {
            atomic_fetch_add(&bad_nodes, 1);
            return;
        }
        n = test_rand(seed) & 1 ? n->left : n->right;
    }
}

static void *mutator(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t seed = 0x1234 + (uint64_t)me * 7919;
    gm_thread_attach();
    node **mine = gm_new_array(&ptr_type, NSLOTS);
    gm_store(&slots[me], mine);
    for (int i = 0; i < NSLOTS; i++) {            /* chains of CHAIN nodes: marking takes a while */
        node *head = NULL;
        for (int k = 0; k < CHAIN; k++) {
            node *n = fresh();
            gm_store(&n->left, head);
            head = n;
        }
        gm_store(&mine[i], head);
    }
    node **ballast = gm_new_array(&ptr_type, NBALLAST);
    /* the ballast array is held only by this stack (conservatively scanned) */
    for (int i = 0; i < NBALLAST; i++) gm_store(&ballast[i], fresh());
    node *held[8] = { 0 };         /* objects that live only on this stack for a while */
    while (!atomic_load_explicit(&stop_mutators, memory_order_relaxed)) {
        uint64_t r = test_rand(&seed);
        node *a = mine[r % NSLOTS], *b = mine[(r >> 8) % NSLOTS];
        switch ((r >> 16) % 9) {
        case 0: {                                  /* a new head; or drop two nodes */
            node **slot = &mine[(r >> 24) % NSLOTS], *n = fresh(), *rest = *slot;
            if ((r >> 50) & 1)
                for (int k = 0; k < 3 && rest; k++) rest = rest->left;
            gm_store(&n->left, rest);
            gm_store(slot, n);
            break;
        }
        case 1:                                    /* rewire an edge */
            if (a) gm_store(r & (1u << 30) ? &a->left : &a->right, b);
            break;
        case 2: {                                  /* heap -> stack: only this stack holds it */
            int h = (int)((r >> 24) % 8);
            if (!held[h]) {
                held[h] = a;
                gm_store(&mine[r % NSLOTS], NULL);
            }
            break;
        }
        case 3: {                                  /* stack -> heap (a black or white object) */
            int h = (int)((r >> 24) % 8);
            if (held[h] && b) {
                gm_store(&b->left, held[h]);
                held[h] = NULL;
            }
            break;
        }
        case 4: {                                  /* to the other thread, through a root range */
            /* a fresh node changes hands whole: once swapped in, only the
             * receiver will touch it (no data race between the mutators) */
            node *old = gm_atomic_swap(&xchg[(r >> 24) % NXCHG], fresh());
            if (old) {
                gm_store(&old->left, a);
                gm_store(&mine[(r >> 40) % NSLOTS], old);
            }
            break;
        }
        case 5:                                    /* cut an edge (the deletion half) */
            if (a) gm_store(&a->right, NULL);
            break;
        case 6: {                                  /* bulk copy of a node's pointers */
            node tmp;
            if (a && b) {
                gm_typed_memmove(&node_type, &tmp, b);
                tmp.val = sum_of(a);        /* a never shows b's checksum: a walker */
                gm_typed_memmove(&node_type, a, &tmp); /* on the other thread may read it */
            }
            break;
        }
        case 7: {                                  /* swap two ballast entries via the stack */
            size_t i = (r >> 24) % NBALLAST, j = (r >> 40) % NBALLAST;
            node *x = ballast[i];
            gm_store(&ballast[i], ballast[j]);
            gm_store(&ballast[j], x);
            if (!intact(x)) atomic_fetch_add(&bad_nodes, 1);
            break;
        }
        default:
            walk(a, &seed);
            break;
        }
        atomic_fetch_add_explicit(&mutations, 1, memory_order_relaxed);
        gm_safepoint();
    }
    for (int h = 0; h < 8; h++) walk(held[h], &seed);
    for (int i = 0; i < NBALLAST; i++)
        if (!intact(ballast[i])) atomic_fetch_add(&bad_nodes, 1);
    gm_thread_detach();
    return NULL;
}

/* Every node reachable from the roots, checked; returns how many. */
static long check_all(node *n, long budget)
{
    long c = 0;
    while (n && budget-- > 0) {
        if (!intact(n)) {
            atomic_fetch_add(&bad_nodes, 1);
            return c;
        }
        c++;
        n = n->left;                 /* a chain; cycles are cut by the budget */
    }
    return c;
}

TEST(concurrent_mutation_stress)
{
    gm_root_add(slots, sizeof slots);
    gm_root_add(xchg, sizeof xchg);
    pthread_t th[NMUT];
    for (int i = 0; i < NMUT; i++) pthread_create(&th[i], NULL, mutator, (void *)(uintptr_t)i);
    long cycles = scaled(40);
    uint32_t gc0 = stats()->num_gc;
    for (long c = 0; c < cycles; c++) {
        for (int k = 0; k < 200; k++) new_node(NULL, NULL, 1);   /* garbage of our own */
        gm_gc();                           /* the mutators run through its concurrent mark */
    }
    atomic_store(&stop_mutators, 1);
    gm_blocking_begin();
    for (int i = 0; i < NMUT; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    gm_gc();
    long reachable = 0;
    for (int t = 0; t < NMUT; t++)
        for (int i = 0; i < NSLOTS; i++) reachable += check_all(slots[t][i], 64);
    for (int i = 0; i < NXCHG; i++) reachable += check_all(xchg[i], 64);
    CHECK_EQ_U(atomic_load(&bad_nodes), 0);
    CHECK(reachable > 0);
    CHECK_MSG(stats()->num_gc - gc0 >= (uint32_t)cycles, "%u cycles", stats()->num_gc - gc0);
    CHECK_MSG(atomic_load(&mutations) >= cycles, "%ld mutations", atomic_load(&mutations));
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(slots);
    gm_root_remove(xchg);
}

/* ---- a dropped barrier is caught by checkmark ------------------------------------------- */

static node *holder[2];          /* a root range: [0] the parent P, [1] the black object B */

__attribute__((noinline)) static void setup_white_child(void)
{
    node *p = new_node(NULL, NULL, 1);
    gm_store(&p->left, new_node(NULL, NULL, 4242));   /* W: reachable only through P */
    gm_store(&holder[0], p);
}

/* The interleaving the barrier exists for, forced with the hold switch:
 * marking has started, this thread's stack is already scanned, nothing else
 * is marked.  B is allocated (black); W is moved from P (white, not yet
 * scanned) into B: insertion into a black object, deletion from a white
 * one.  Without the barrier W is reachable only from B and is never marked. */
__attribute__((noinline)) static void move_child(bool drop)
{
    node *b = new_node(NULL, NULL, 2);
    gm_store(&holder[1], b);
    int old = gm_gc_fault_drop_barrier(drop);
    gm_store(&b->left, holder[0]->left);
    gm_store(&holder[0]->left, NULL);
    gm_gc_fault_drop_barrier(old);
}

static void hidden_move(bool drop)
{
    gm_root_add(holder, sizeof holder);
    setup_white_child();
    scrub_stack();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    move_child(drop);
    scrub_stack();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);               /* the cycle ends: checkmark runs */
    gm_blocking_end();
    collect();
}

static void dropped_barrier_child(void *arg)
{
    (void)arg;
    hidden_move(true);
    _exit(0);                             /* not reached if checkmark fires */
}

TEST(dropped_barrier_fires_checkmark)
{
    CHECK(expect_abort_with(dropped_barrier_child, NULL, "fatal error: checkmark found unmarked object"));
    CHECK(expect_abort_with(dropped_barrier_child, NULL, "runtime: reached "));
}

TEST(barrier_saves_moved_object)
{
    hidden_move(false);
    CHECK(holder[1] && holder[1]->left);
    CHECK_EQ_U(holder[1]->left->val, 4242);
    CHECK(holder[0]->left == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(holder);
}

/* ---- assists ------------------------------------------------------------------------------ */

__attribute__((noinline)) static node *build_chain(long n)
{
    node *head = NULL;
    for (long i = 0; i < n; i++) head = new_node(head, NULL, (uint64_t)i);
    return head;
}

static bool chain_ok(node *head, long n)
{
    for (long i = n - 1; i >= 0; i--, head = head->left)
        if (!head || head->val != (uint64_t)i) return false;
    return head == NULL;
}

/* With the background worker held, a thread that allocates while a cycle
 * marks does the marking itself: its assists scan the live chain.  Bytes
 * are counted, not time. */
TEST(assists_do_the_marking_when_the_worker_cannot)
{
    long n = scaled(100000);                          /* 3.2 MB of 32-byte nodes */
    node *volatile keep = build_chain(n);
    gm_gc();
    gm_memstats m0 = *stats();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    /* allocate fast: each refill in debt must pay with scan work */
    for (long i = 0; i < 8 * n && gm_gc_fault_marking(); i++) new_node(NULL, NULL, 0);
    gm_memstats m1 = *stats();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    uint64_t assisted = m1.gc_assist_work - m0.gc_assist_work;
    CHECK_MSG(assisted >= (uint64_t)n * sizeof(node) * 9 / 10,
              "assists scanned %llu bytes of a %llu-byte live chain",
              (unsigned long long)assisted, (unsigned long long)((uint64_t)n * sizeof(node)));
    CHECK(m1.gc_num_assists > m0.gc_num_assists);
    CHECK_EQ_U(m1.gc_bg_work, m0.gc_bg_work);          /* the worker did nothing */
    CHECK(chain_ok(keep, n));
}

/* The barrier does not record the object its thread allocated last during
 * the mark (black already: barrier.c), so linking each new node into its
 * parent records nothing; storing an older object records it.  Counts the
 * records (MemStats gc_wb_shades, counted as the buffers are flushed: all
 * of them by mark termination). */
TEST(barrier_skips_the_last_allocation)
{
    long n = 1000;
    node *volatile keep = new_node(NULL, NULL, 7);
    scrub_stack();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    uint64_t s0 = stats()->gc_wb_shades;
    node *head = gm_new(&node_type), *prev = head;
    for (long i = 0; i < n; i++) {
        node *c = gm_new(&node_type);
        gm_store(&prev->left, c);              /* the last allocation: not recorded */
        gm_store(&c->right, keep);             /* an older object: recorded */
        c->val = (uint64_t)i;
        prev = c;
    }
    CHECK(gm_gc_fault_marking());              /* every store above ran while marking */
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);                    /* termination flushes every buffer */
    gm_blocking_end();
    uint64_t recorded = stats()->gc_wb_shades - s0;
    CHECK_MSG(recorded >= (uint64_t)n && recorded < (uint64_t)n + (uint64_t)n / 2,
              "%llu barrier records for %ld stores of older objects and %ld of the last allocation",
              (unsigned long long)recorded, n, n);
    collect();
    long i = 0;
    for (node *c = head->left; c; c = c->left, i++) {
        CHECK_EQ_U(c->val, (uint64_t)i);
        CHECK(c->right == keep);
    }
    CHECK_EQ_U(i, n);
}

/* Without the hold: a thread allocating fast keeps the heap near its goal
 * (the pacer starts cycles early and assists slow the allocator down). */
TEST(heap_stays_near_goal_under_fast_allocation)
{
    long n = scaled(100000);
    node *volatile keep = build_chain(n);
    gm_gc();
    uint64_t peak_over = 0;
    for (int round = 0; round < 40; round++) {
        for (long i = 0; i < n / 2; i++) new_node(NULL, NULL, 0);
        gm_memstats *m = stats();
        if (m->heap_alloc > m->next_gc && m->heap_alloc - m->next_gc > peak_over)
            peak_over = m->heap_alloc - m->next_gc;
    }
    gm_memstats *m = stats();
    CHECK(m->gc_num_assists + m->gc_bg_work > 0);
    CHECK_MSG(peak_over <= m->next_gc / 2, "heap went %llu bytes past a %llu-byte goal",
              (unsigned long long)peak_over, (unsigned long long)m->next_gc);
    CHECK(chain_ok(keep, n));
}

/* ---- bounded steps: large objects in pieces, capped assists ------------------------------- */

/* A typed array and a conservative block of 4 MiB each, their slots the only
 * references to their nodes.  With the worker held, this thread's assists do
 * the marking: no work item of a large object scans more than a 128 KiB
 * piece, and while the heap is below its goal no assist scans more than its
 * cap (256 KiB) plus the one item that crossed it (at most a piece).  The
 * nodes behind the last pieces survive (checkmark runs on this file too).
 * Scan work is counted, not time. */
TEST(large_objects_are_marked_in_pieces_and_assists_are_capped)
{
    size_t n = 512 * 1024;                                  /* 4 MiB of slots each */
    node **typed = gm_new_array(&ptr_type, n);
    void **cons = gm_alloc_conservative(n * sizeof(void *));
    gm_root_add(&typed, sizeof typed);
    gm_root_add(&cons, sizeof cons);
    size_t step = n / 64;
    for (size_t i = 0; i < n; i += step) {
        gm_store(&typed[i], new_node(NULL, NULL, i));
        gm_store(&cons[i], new_node(NULL, NULL, ~i));
    }
    gm_gc();
    (void)gm_gc_fault_max_piece_scan();
    (void)gm_gc_fault_max_capped_assist();
    gm_memstats m0 = *stats();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    /* a large allocation while marking: a debt of many times the cap */
    void *big = gm_alloc_noscan(8u << 20);
    CHECK(big != NULL);
    for (long i = 0; i < 400000 && gm_gc_fault_marking(); i++) new_node(NULL, NULL, 0);
    gm_memstats m1 = *stats();
    uint64_t piece = gm_gc_fault_max_piece_scan(), capped = gm_gc_fault_max_capped_assist();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    CHECK(m1.gc_num_assists > m0.gc_num_assists);
    CHECK_MSG(piece > 0 && piece <= (128u << 10), "a work item scanned %llu bytes of a large object",
              (unsigned long long)piece);
    CHECK_MSG(capped > 0 && capped <= (256u << 10) + (128u << 10), "a capped assist did %llu bytes of scan work",
              (unsigned long long)capped);
    for (size_t i = 0; i < n; i += step) {
        CHECK(typed[i] && typed[i]->val == i);
        CHECK(cons[i] && ((node *)cons[i])->val == ~i);
    }
    gm_root_remove(&typed);
    gm_root_remove(&cons);
}

/* ---- trace events ---------------------------------------------------------------------- */

#include "common/trace_internal.h"

struct gc_events { int sweepterm, markterm, mark_b, mark_e, sweep_b, live, goal, assist_b, assist_e; };

static void count_gc_event(const gm_trace_event *ev, void *arg)
{
    struct gc_events *c = arg;
    if (strcmp(ev->cat, "gc") != 0) return;
    if (!strcmp(ev->name, "STW sweep termination") && ev->ph == 'B') c->sweepterm++;
    if (!strcmp(ev->name, "STW mark termination") && ev->ph == 'B') c->markterm++;
    if (!strcmp(ev->name, "concurrent mark") && ev->ph == 'b') c->mark_b++;
    if (!strcmp(ev->name, "concurrent mark") && ev->ph == 'e') c->mark_e++;
    if (!strcmp(ev->name, "sweep") && ev->ph == 'b') c->sweep_b++;
    if (!strcmp(ev->name, "heap live") && ev->ph == 'C') c->live++;
    if (!strcmp(ev->name, "heap goal") && ev->ph == 'C') c->goal++;
    if (!strcmp(ev->name, "assist") && ev->ph == 'B') c->assist_b++;
    if (!strcmp(ev->name, "assist") && ev->ph == 'E') c->assist_e++;
}

/* Every phase of a cycle shows up in a trace: the pauses as spans on the
 * thread that ran them, the concurrent mark and the sweep as async spans,
 * heap live / goal counters, and assists on the assisting thread. */
TEST(trace_shows_cycle_phases_and_assists)
{
    char path[] = "/tmp/gomap-gctrace-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    long n = scaled(50000);
    node *volatile keep = build_chain(n);
    REQUIRE(gm_trace_start(path));
    gm_gc();
    gm_gc();
    /* an assist: hold the worker and allocate while marking */
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    for (long i = 0; i < 8 * n && gm_gc_fault_marking(); i++) new_node(NULL, NULL, 0);
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    struct gc_events c = { 0 };
    gm_trace_visit(count_gc_event, &c);
    CHECK(gm_trace_stop());
    unlink(path);
    CHECK_MSG(c.sweepterm >= 3 && c.mark_b >= 3 && c.mark_e >= 3 && c.markterm >= 3,
              "sweepterm %d mark %d/%d markterm %d", c.sweepterm, c.mark_b, c.mark_e, c.markterm);
    CHECK(c.sweep_b >= 3);
    CHECK(c.live >= 6 && c.goal >= 6);
    CHECK_MSG(c.assist_b >= 1 && c.assist_b == c.assist_e, "assists %d/%d", c.assist_b, c.assist_e);
    CHECK(chain_ok(keep, n));
}

/* ThreadSanitizer reads its shadow of an address before writing it, so its
 * own shadow pages take two faults each: the count below means nothing there. */
#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#ifdef TSAN_BUILD
static const bool tsan_build = true;
#else
static const bool tsan_build = false;
#endif

TEST(stores_into_fresh_objects_during_a_mark_fault_each_page_once)
{
    /* The barrier reads the slot's old value before the store.  In a span
     * cut from pages the OS never gave (or took back), that read maps the
     * shared zero page and the store then faults again to replace it -- a
     * second fault per page, and a TLB shootdown of every CPU running the
     * process.  binary-trees with ~1 GiB live took 1.29 M faults and 1.32 M
     * TLB flushes concurrently against 0.62 M and 28 K stop-the-world, a
     * fifth of its CPU in the IPIs.  Counted: minor faults per page that
     * became resident while fresh nodes are linked during a held mark. */
    if (tsan_build || stats()->debug_gc) return;
    gm_gc();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, start_gc, NULL) == 0);
    wait_marking();
    long f0 = test_minor_faults(false), r0 = test_resident_pages();
    node *head = NULL;
    long i;
    for (i = 0; i < 600000 && gm_gc_fault_marking(); i++) head = new_node(head, NULL, (uint64_t)i);
    long faults = test_minor_faults(false) - f0, grown = test_resident_pages() - r0;
    bool marking = gm_gc_fault_marking();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    REQUIRE(marking);                     /* every node was linked during the mark */
    REQUIRE(grown > 1000);                /* fresh pages: the nodes did not all fit in dirty ones */
    CHECK_MSG(faults <= grown + grown / 4 + 100, "%ld minor faults for %ld pages that became resident",
              faults, grown);
    long n = 0;
    for (node *p = head; p; p = p->left) n++;
    CHECK_EQ_U(n, i);
}
