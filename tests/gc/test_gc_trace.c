/* test_gc_trace.c - types with a trace function (gm_type.trace) and
 * gm_barrier: NaN-boxed pointers, which no ptrmask can describe and no
 * conservative scan can see, kept alive by their trace function in small
 * objects, small and large arrays and large objects; under a concurrent
 * mutation stress with gccheckmark (set for this file in CMakeLists.txt);
 * gm_barrier tested against a forced interleaving, and its fault switch and
 * a trace function that hides a pointer both caught by checkmark. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "gc/gc_fault.h"
#include "gc_util.h"

/* ---- NaN boxing: a pointer is the low 48 bits under the tag 0xfffc ------------------ */

#define TAG_PTR 0xfffc000000000000ull
#define MAGIC 0x3c6ef372fe94f82bull

static inline uint64_t enc(const void *p) { return p ? (uint64_t)(uintptr_t)p | TAG_PTR : 0; }
static inline void *dec(uint64_t w)
{
    return (w & 0xffff000000000000ull) == TAG_PTR ? (void *)(uintptr_t)(w & 0xffffffffffffull) : NULL;
}
static inline uint64_t ld(const uint64_t *slot) { return __atomic_load_n(slot, __ATOMIC_RELAXED); }

/* A store into a slot the collector cannot decode: the barrier, then the word. */
static inline void tstore(uint64_t *slot, const void *p)
{
    gm_barrier(dec(ld(slot)), p);
    __atomic_store_n(slot, enc(p), __ATOMIC_RELAXED);
}

/* cell: two boxed pointers and a checksum of its own address */
typedef struct cell { uint64_t l, r, sum, pad; } cell;
static void cell_trace(const void *obj, gm_visit_fn *visit, void *ctx)
{
    const cell *c = obj;
    visit(dec(ld(&c->l)), ctx);
    visit(dec(ld(&c->r)), ctx);
}
static const gm_type cell_type = { sizeof(cell), 8, NULL, NULL, NULL, 0, "cell", cell_trace };
/* the same layout without a trace function: pointer-free to the collector */
static const gm_type opaque_type = { sizeof(cell), 8, NULL, NULL, NULL, 0, "opaque" };

/* one boxed word: arrays of it */
static void word_trace(const void *obj, gm_visit_fn *visit, void *ctx) { visit(dec(ld(obj)), ctx); }
static const gm_type word_type = { 8, 8, NULL, NULL, NULL, 0, "boxed word", word_trace };

/* a large object (48 KiB) with boxed pointers at both ends */
typedef struct big { uint64_t w[6144]; } big;
static void big_trace(const void *obj, gm_visit_fn *visit, void *ctx)
{
    const big *b = obj;
    visit(dec(ld(&b->w[0])), ctx);
    visit(dec(ld(&b->w[6143])), ctx);
}
static const gm_type big_type = { sizeof(big), 8, NULL, NULL, NULL, 0, "big", big_trace };

static inline uint64_t sum_of(const void *c) { return (uint64_t)(uintptr_t)c ^ MAGIC; }

static cell *new_cell(void)
{
    cell *c = gm_new(&cell_type);
    c->sum = sum_of(c);
    return c;
}

static bool intact(const cell *c) { return c == NULL || ld(&c->sum) == sum_of(c); }

/* Holders in a root range: raw pointers, so the holders themselves live. */
static void *hold[4];
static gm_weak *weak[4];

/* Builds holder -> (boxed) child, keeping only a weak handle on the child. */
__attribute__((noinline)) static void build(int k, const gm_type *holder_type)
{
    cell *h = gm_new(holder_type);
    cell *child = new_cell();
    tstore(&h->r, child);
    gm_store(&hold[k], h);
    weak[k] = gm_weak_make(child);
    gm_root_add(&weak[k], sizeof weak[k]);
}

TEST(traced_small_object_keeps_boxed_referent)
{
    gm_root_add(hold, sizeof hold);
    build(0, &cell_type);
    build(1, &opaque_type);
    collect();
    collect();
    cell *kept = gm_weak_get(weak[0]);
    CHECK(kept != NULL);
    CHECK(kept == dec(((cell *)hold[0])->r));
    CHECK(intact(kept));
    /* without a trace function the boxed pointer is invisible: the child goes */
    CHECK(gm_weak_get(weak[1]) == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    for (int k = 0; k < 2; k++) gm_root_remove(&weak[k]);
    gm_root_remove(hold);
}

/* n boxed words; element i points to a fresh cell; every 7th is a fixnum. */
__attribute__((noinline)) static uint64_t *build_array(size_t n)
{
    uint64_t *a = gm_new_array(&word_type, n);
    for (size_t i = 0; i < n; i++) {
        if (i % 7 == 3) a[i] = (uint64_t)i << 1;            /* not a pointer: never decoded */
        else tstore(&a[i], new_cell());
    }
    return a;
}

static long check_array(const uint64_t *a, size_t n)
{
    long bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 7 == 3) bad += a[i] != (uint64_t)i << 1;
        else bad += !dec(a[i]) || !intact(dec(a[i]));
    }
    return bad;
}

static void churn(long n)
{
    for (long i = 0; i < n; i++) new_cell();
}

TEST(traced_arrays_small_and_large)
{
    gm_root_add(hold, sizeof hold);
    size_t sizes[] = { 1, 3, 100, 4000, 20000 };   /* 8 B .. 160 KiB: small and large spans */
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        gm_store(&hold[0], build_array(sizes[k]));
        for (int c = 0; c < 3; c++) {
            churn(scaled(20000));   /* reuse the memory the children would have had */
            collect();
        }
        CHECK_MSG(check_array(hold[0], sizes[k]) == 0, "n=%zu", sizes[k]);
        CHECK(gm_size(hold[0]) >= (size_t)sizes[k] * 8);
    }
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(hold);
}

TEST(traced_large_object)
{
    gm_root_add(hold, sizeof hold);
    big *b = gm_new(&big_type);
    gm_store(&hold[0], b);
    tstore(&b->w[0], new_cell());
    tstore(&b->w[6143], new_cell());
    b->w[100] = enc(new_cell());   /* not reported by big_trace: a plain word */
    b = NULL;
    for (int c = 0; c < 3; c++) {
        churn(scaled(20000));
        collect();
    }
    big *h = hold[0];
    CHECK(intact(dec(h->w[0])) && dec(h->w[0]));
    CHECK(intact(dec(h->w[6143])) && dec(h->w[6143]));
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(hold);
}

/* A slot reused by an untraced object reads its heap bits again: quad has
 * cell's size (one size class) and a ptrmask. */
typedef struct quad { struct quad *a, *b; uint64_t x, y; } quad;
static const uint8_t quad_mask[] = { 0x3 };
static const gm_type quad_type = { sizeof(quad), 8, NULL, NULL, quad_mask, 0, "quad" };

TEST(traced_and_masked_objects_share_spans)
{
    gm_root_add(hold, sizeof hold);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 2000; i++) {
            if (i & 1) (void)new_cell();
            else (void)gm_new(&quad_type);
        }
        collect();
    }
    for (int i = 0; i < 50; i++) {        /* masked quads in slots traced cells had */
        quad *q = gm_new(&quad_type), *child = gm_new(&quad_type);
        child->x = 77 + (uint64_t)i;
        gm_store(&q->a, child);
        gm_store(&q->b, hold[0]);
        gm_store(&hold[0], q);
    }
    churn(scaled(20000));
    collect();
    long n = 0;
    for (quad *q = hold[0]; q; q = q->b, n++) CHECK(q->a && q->a->x == 77 + (uint64_t)(49 - n));
    CHECK_EQ_U(n, 50);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(hold);
}

/* ---- the concurrent mutation stress, traced --------------------------------------------- */

#define NMUT 2
#define NSLOTS 256
#define NBALLAST 20000
#define CHAIN 30

static uint64_t *tslots[NMUT];      /* each mutator's traced array (raw pointers: a root range) */
static atomic_int stop_mut, bad_cells;
static atomic_long nmut;

static void walk(cell *c, uint64_t *seed)
{
    for (int k = 0; c && k < 12; k++) {
        if (!intact(c)) {
            atomic_fetch_add(&bad_cells, 1);
            return;
        }
        c = dec(ld(test_rand(seed) & 1 ? &c->l : &c->r));
    }
}

static void *tmutator(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t seed = 0x9876 + (uint64_t)me * 104729;
    gm_thread_attach();
    uint64_t *mine = gm_new_array(&word_type, NSLOTS);
    gm_store(&tslots[me], mine);
    for (int i = 0; i < NSLOTS; i++) {
        cell *head = NULL;
        for (int k = 0; k < CHAIN; k++) {
            cell *c = new_cell();
            tstore(&c->l, head);
            head = c;
        }
        tstore(&mine[i], head);
    }
    uint64_t *ballast = gm_new_array(&word_type, NBALLAST);   /* large, traced, stack-held */
    for (int i = 0; i < NBALLAST; i++) tstore(&ballast[i], new_cell());
    cell *held[8] = { 0 };
    while (!atomic_load_explicit(&stop_mut, memory_order_relaxed)) {
        uint64_t r = test_rand(&seed);
        cell *a = dec(ld(&mine[r % NSLOTS])), *b = dec(ld(&mine[(r >> 8) % NSLOTS]));
        switch ((r >> 16) % 8) {
        case 0: {                                          /* new head, maybe dropping some */
            uint64_t *slot = &mine[(r >> 24) % NSLOTS];
            cell *c = new_cell(), *rest = dec(ld(slot));
            if ((r >> 50) & 1)
                for (int k = 0; k < 3 && rest; k++) rest = dec(ld(&rest->l));
            tstore(&c->l, rest);
            tstore(slot, c);
            break;
        }
        case 1:
            if (a) tstore(r & (1u << 30) ? &a->l : &a->r, b);
            break;
        case 2: {                                          /* heap -> stack */
            int h = (int)((r >> 24) % 8);
            if (!held[h]) {
                held[h] = a;
                tstore(&mine[r % NSLOTS], NULL);
            }
            break;
        }
        case 3: {                                          /* stack -> heap */
            int h = (int)((r >> 24) % 8);
            if (held[h] && b) {
                tstore(&b->l, held[h]);
                held[h] = NULL;
            }
            break;
        }
        case 4:
            if (a) tstore(&a->r, NULL);
            break;
        case 5: {                                          /* swap ballast entries */
            size_t i = (r >> 24) % NBALLAST, j = (r >> 40) % NBALLAST;
            cell *x = dec(ld(&ballast[i]));
            tstore(&ballast[i], dec(ld(&ballast[j])));
            tstore(&ballast[j], x);
            if (!intact(x)) atomic_fetch_add(&bad_cells, 1);
            break;
        }
        default:
            walk(a, &seed);
            break;
        }
        atomic_fetch_add_explicit(&nmut, 1, memory_order_relaxed);
        gm_safepoint();
    }
    for (int h = 0; h < 8; h++) walk(held[h], &seed);
    for (int i = 0; i < NBALLAST; i++)
        if (!intact(dec(ballast[i]))) atomic_fetch_add(&bad_cells, 1);
    gm_thread_detach();
    return NULL;
}

TEST(traced_concurrent_mutation_stress)
{
    gm_root_add(tslots, sizeof tslots);
    pthread_t th[NMUT];
    for (int i = 0; i < NMUT; i++) pthread_create(&th[i], NULL, tmutator, (void *)(uintptr_t)i);
    while (atomic_load(&nmut) < 100) {      /* both set up and mutating (slow under sanitizers) */
        gm_blocking_begin();
        usleep(1000);
        gm_blocking_end();
    }
    long cycles = scaled(30);
    gm_memstats *st = stats();
    uint32_t gc0 = st->num_gc;
    for (long c = 0; c < cycles; c++) {
        churn(200);
        gm_gc();
    }
    atomic_store(&stop_mut, 1);
    gm_blocking_begin();
    for (int i = 0; i < NMUT; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    gm_gc();
    long reach = 0;
    for (int t = 0; t < NMUT; t++)
        for (int i = 0; i < NSLOTS; i++) {
            cell *c = dec(tslots[t][i]);
            for (int k = 0; c && k < 64; k++, c = dec(c->l)) {
                if (!intact(c)) atomic_fetch_add(&bad_cells, 1);
                reach++;
            }
        }
    CHECK_EQ_U(atomic_load(&bad_cells), 0);
    CHECK(reach > 0);
    CHECK(stats()->num_gc - gc0 >= (uint32_t)cycles);
    CHECK(atomic_load(&nmut) > 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(tslots);
}

/* ---- gm_barrier against a forced interleaving --------------------------------------------- */

static cell *bholder[2];   /* root range: [0] P (white), [1] B (black, allocated while marking) */

__attribute__((noinline)) static void setup_white(void)
{
    cell *p = new_cell();
    cell *w = new_cell();
    w->pad = 4242;
    tstore(&p->l, w);
    gm_store(&bholder[0], p);
}

/* Marking has started and this stack is scanned; W moves from P's boxed
 * slot (white) into B's (black).  Only gm_barrier saves it. */
__attribute__((noinline)) static void move_boxed(bool drop)
{
    cell *b = new_cell();
    gm_store(&bholder[1], b);
    int old = gm_gc_fault_drop_barrier(drop);
    tstore(&b->l, dec(bholder[0]->l));
    tstore(&bholder[0]->l, NULL);
    gm_gc_fault_drop_barrier(old);
}

static void boxed_move(bool drop)
{
    gm_root_add(bholder, sizeof bholder);
    setup_white();
    scrub_stack();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    move_boxed(drop);
    scrub_stack();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    collect();
}

TEST(gm_barrier_saves_moved_boxed_pointer)
{
    boxed_move(false);
    cell *w = dec(bholder[1]->l);
    CHECK(w && intact(w) && w->pad == 4242);
    CHECK(dec(bholder[0]->l) == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(bholder);
}

static void dropped_child(void *arg)
{
    (void)arg;
    boxed_move(true);
    _exit(0);
}

TEST(dropped_gm_barrier_fires_checkmark)
{
    CHECK(expect_abort_with(dropped_child, NULL, "fatal error: checkmark found unmarked object"));
}

/* ---- a trace function that hides a pointer ------------------------------------------------- */

static void hiding_trace(const void *obj, gm_visit_fn *visit, void *ctx)
{
    const cell *c = obj;
    visit(dec(ld(&c->l)), ctx);
    if (gm_gc_fault_checkmarking()) visit(dec(ld(&c->r)), ctx);   /* the real mark never sees r */
}
static const gm_type hiding_type = { sizeof(cell), 8, NULL, NULL, NULL, 0, "hiding cell", hiding_trace };

__attribute__((noinline)) static void build_hiding(void)
{
    cell *p = gm_new(&hiding_type);
    tstore(&p->r, new_cell());
    gm_store(&hold[0], p);
}

static void hiding_child(void *arg)
{
    (void)arg;
    gm_root_add(hold, sizeof hold);
    build_hiding();
    collect();
    _exit(0);
}

TEST(hiding_trace_fires_checkmark)
{
    CHECK(expect_abort_with(hiding_child, NULL, "fatal error: checkmark found unmarked object"));
    CHECK(expect_abort_with(hiding_child, NULL, "reached from object"));
    CHECK(expect_abort_with(hiding_child, NULL, "type=hiding cell"));
}
