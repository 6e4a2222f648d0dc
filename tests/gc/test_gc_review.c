/* test_gc_review.c - the review's findings B1..B11 (issue 13), one or more
 * cases each.  Every case reproduces the finding: it failed before the fix
 * (the commit that fixed it quotes the failure).  A finding whose failure is
 * fatal (a lost object found by gccheckmark, a deadlock, an abort) runs in a
 * forked child; the child prints "child: ok" and aborts on purpose when all
 * went well, so the parent can tell success from a fatal error or a hang
 * (alarm).  Run with GMDEBUG=gccheckmark=1,clobberfree=1 (CMakeLists.txt).
 * Not labelled tsan as a whole: most cases fork. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "gc/gc_fault.h"
#include "gc/gc_internal.h"
#include "gc_util.h"
#include "gomap/map.h"

/* ---- helpers: a held concurrent mark ------------------------------------------------ */

static pthread_t gc_starter;

static void hold_and_start_mark(void)
{
    gm_gc_fault_hold_mark(1);
    pthread_create(&gc_starter, NULL, start_gc, NULL);
    wait_marking();
}

static void release_mark(void)
{
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(gc_starter, NULL);
    gm_blocking_end();
}

/* holder: a root range.  [0] the parent P (white, not yet scanned) whose
 * left child W (val 4242) is reachable only through it; [1] a black object
 * B that W moves into. */
static node *holder[2];

__attribute__((noinline)) static void setup_white_child(void)
{
    node *p = new_node(NULL, NULL, 1);
    gm_store(&p->left, new_node(NULL, NULL, 4242));
    gm_store(&holder[0], p);
}

/* ---- B1: fork flushes the vanished threads' barrier buffers -------------------------- */

static pthread_mutex_t b1_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t b1_cv = PTHREAD_COND_INITIALIZER;
static int b1_stage;

/* Another mutator moves W from P into a fresh (black) B, with the barrier:
 * W is recorded in this thread's barrier buffer only.  Then it blocks. */
__attribute__((noinline)) static void b1_move(void)
{
    node *b = new_node(NULL, NULL, 2);
    gm_store(&holder[1], b);
    gm_store(&b->left, holder[0]->left);
    gm_store(&holder[0]->left, NULL);
}

static void *b1_mover(void *arg)
{
    (void)arg;
    gm_thread_attach();
    b1_move();
    scrub_stack();
    gm_blocking_begin();
    pthread_mutex_lock(&b1_mu);
    b1_stage = 1;
    pthread_cond_broadcast(&b1_cv);
    while (b1_stage != 2) pthread_cond_wait(&b1_cv, &b1_mu);
    pthread_mutex_unlock(&b1_mu);
    gm_blocking_end();
    gm_thread_detach();
    return NULL;
}

static void child_finish_cycle_and_check(void *arg)
{
    (void)arg;
    alarm(60);
    gm_gc_fault_hold_mark(0);       /* the switch is inherited */
    collect();                      /* ends the inherited cycle (checkmark), then one more */
    collect();
    node *b = holder[1];
    bool ok = b && b->left && b->left->val == 4242 && holder[0]->left == NULL;
    fprintf(stderr, "child: %s, verify %zu\n", ok ? "ok" : "BAD (W lost)", gm_heap_verify());
    abort();
}

TEST(b1_fork_keeps_values_in_lost_threads_barrier_buffers)
{
    gm_root_add(holder, sizeof holder);
    setup_white_child();
    scrub_stack();
    hold_and_start_mark();
    pthread_t th;
    pthread_create(&th, NULL, b1_mover, NULL);
    pthread_mutex_lock(&b1_mu);
    while (b1_stage != 1) pthread_cond_wait(&b1_cv, &b1_mu);
    pthread_mutex_unlock(&b1_mu);
    scrub_stack();
    /* the child has only this thread: the mover and its buffer are gone */
    CHECK(expect_abort_with(child_finish_cycle_and_check, NULL, "child: ok, verify 0"));
    pthread_mutex_lock(&b1_mu);
    b1_stage = 2;
    pthread_cond_broadcast(&b1_cv);
    pthread_mutex_unlock(&b1_mu);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    release_mark();
    collect();
    CHECK(holder[1] && holder[1]->left && holder[1]->left->val == 4242);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(holder);
    holder[0] = holder[1] = NULL;
}

/* ---- B2: a child forked mid-mark finishes the cycle by itself ----------------------- */

__attribute__((noinline)) static void make_garbage(long bytes)
{
    for (long i = 0; i < bytes / (long)sizeof(node); i++) new_node(NULL, NULL, (uint64_t)i);
}

static void b2_child(void *arg)
{
    (void)arg;
    alarm(60);
    gm_gc_fault_hold_mark(0);
    uint32_t gc0 = stats()->num_gc;
    make_garbage(128L << 20);           /* no gm_gc: the pacer must do it */
    gm_memstats *m = stats();
    bool ok = m->num_gc > gc0 && m->heap_alloc < (64u << 20);
    fprintf(stderr, "child: %s (cycles %u, heap %llu MiB)\n", ok ? "ok" : "BAD",
            m->num_gc - gc0, (unsigned long long)(m->heap_alloc >> 20));
    abort();
}

TEST(b2_child_forked_mid_mark_finishes_the_cycle)
{
    hold_and_start_mark();
    CHECK(expect_abort_with(b2_child, NULL, "child: ok"));
    release_mark();
}

/* ---- B3: fork while another thread holds the roots lock ------------------------------ */

static atomic_int b3_stop;
static uintptr_t b3_ranges[512];

static void *b3_roots_churn(void *arg)
{
    (void)arg;                          /* never attached: not stopped by the fork */
    while (!atomic_load(&b3_stop)) {
        for (int i = 0; i < 512; i++) gm_root_add(&b3_ranges[i], sizeof b3_ranges[i]);
        for (int i = 512; i-- > 0;) gm_root_remove(&b3_ranges[i]);
    }
    return NULL;
}

static void b3_child(void *arg)
{
    (void)arg;
    alarm(5);                           /* a lock left held: the child hangs */
    static void *slot;
    gm_root_add(&slot, sizeof slot);
    gm_root_remove(&slot);
    gm_gc();
    fprintf(stderr, "child: ok\n");
    abort();
}

TEST(b3_fork_with_roots_lock_held)
{
    gm_gc();
    pthread_t th;
    pthread_create(&th, NULL, b3_roots_churn, NULL);
    usleep(1000);
    int ok = 0;
    for (int i = 0; i < 10; i++) ok += expect_abort_with(b3_child, NULL, "child: ok");
    atomic_store(&b3_stop, 1);
    pthread_join(th, NULL);
    CHECK_EQ_U(ok, 10);
}

/* The pacer's and the statistics' locks, held by a thread that never
 * attached (gm_gc_percent, gm_pause_quantile_ns do not attach). */
static atomic_int b3_pacer_stop;

static void *b3_pacer_churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&b3_pacer_stop)) {
        gm_gc_percent(100);
        gm_pause_quantile_ns(0.5);
    }
    return NULL;
}

static void b3_pacer_child(void *arg)
{
    (void)arg;
    alarm(5);
    gm_gc_percent(100);
    gm_pause_quantile_ns(0.5);
    gm_gc();
    fprintf(stderr, "child: ok\n");
    abort();
}

TEST(b3_fork_with_pacer_and_stats_locks_held)
{
    gm_gc();
    pthread_t th;
    pthread_create(&th, NULL, b3_pacer_churn, NULL);
    usleep(1000);
    int ok = 0;
    for (int i = 0; i < 10; i++) ok += expect_abort_with(b3_pacer_child, NULL, "child: ok");
    atomic_store(&b3_pacer_stop, 1);
    pthread_join(th, NULL);
    CHECK_EQ_U(ok, 10);
}

/* ---- B4: gm_store from a thread that never attached --------------------------------- */

static void *b4_slots[8];
static atomic_int b4_stop, b4_attached, b4_stores;

static void *b4_unattached_storer(void *arg)
{
    node **keep = arg;
    for (unsigned i = 0; !atomic_load(&b4_stop); i++) {
        gm_store(&b4_slots[i & 7], keep[i & 3]);
        atomic_fetch_add(&b4_stores, 1);
        if (gc_self) gm_safepoint();    /* attached now: it must poll like any mutator */
    }
    /* a store made while marking attached this thread (as an allocation does) */
    atomic_store(&b4_attached, gc_self != NULL);
    return NULL;
}

TEST(b4_store_from_unattached_thread_attaches)
{
    static node *keep[4];
    gm_root_add(keep, sizeof keep);
    gm_root_add(b4_slots, sizeof b4_slots);
    for (int i = 0; i < 4; i++) gm_store(&keep[i], new_node(NULL, NULL, (uint64_t)i));
    hold_and_start_mark();              /* the barrier is on from here */
    pthread_t th;
    pthread_create(&th, NULL, b4_unattached_storer, keep);
    while (atomic_load(&b4_stores) < 100) {   /* stores while the held mark runs */
        gm_safepoint();
        usleep(100);
    }
    release_mark();
    for (int c = 0; c < 20; c++) gm_gc();  /* stops of the world while it stores */
    atomic_store(&b4_stop, 1);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    CHECK(atomic_load(&b4_attached));
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(b4_slots);
    gm_root_remove(keep);
}

/* The same for the other calls that shade while marking: gm_weak_get (a
 * weak-to-strong conversion) and gm_root_remove (a deletion).  Unattached,
 * they pushed into gc_work even while mark termination drained it. */
static void *b4_other_entry_points(void *arg)
{
    gm_weak *w = arg;
    static uintptr_t range[2];
    gm_root_add(range, sizeof range);   /* not a heap access: does not attach */
    bool before = gc_self != NULL;
    gm_root_remove(range);              /* while marking: shades, so attaches */
    bool after_remove = gc_self != NULL;
    gm_thread_detach();
    gm_weak_get(w);
    bool after_get = gc_self != NULL;
    return (void *)(uintptr_t)(!before && after_remove && after_get);
}

TEST(b4_weak_get_and_root_remove_attach)
{
    static node *keep[1];
    static gm_weak *wk[1];
    gm_root_add(keep, sizeof keep);
    gm_root_add(wk, sizeof wk);
    gm_store(&keep[0], new_node(NULL, NULL, 5));
    gm_store(&wk[0], gm_weak_make(keep[0]));
    hold_and_start_mark();
    pthread_t th;
    void *ok = NULL;
    pthread_create(&th, NULL, b4_other_entry_points, wk[0]);
    gm_blocking_begin();
    pthread_join(th, &ok);
    gm_blocking_end();
    release_mark();
    CHECK(ok != NULL);
    gm_root_remove(wk);
    gm_root_remove(keep);
}

/* ---- B5: the key-update store of a GC map is barriered ------------------------------- */

typedef struct pkey { node *p; uint64_t id; } pkey;
static const uint8_t pkey_mask[] = { 0x1 };
static uint64_t pkey_hash(const void *v, uint64_t seed)
{
    return gm_hash_bytes(&((const pkey *)v)->id, sizeof(uint64_t), seed);
}
static bool pkey_equal(const void *a, const void *b) { return ((const pkey *)a)->id == ((const pkey *)b)->id; }
static const gm_type pkey_type = { sizeof(pkey), 8, pkey_hash, pkey_equal, pkey_mask,
                                   GM_TYPE_KEY_UPDATE, "pkey" };
static gm_map *b5_map[1];

/* Marking, this stack scanned: a map made now is black.  Its key {K, 1} is
 * replaced by the equal key {W, 1} (GM_TYPE_KEY_UPDATE rewrites the key);
 * then P lets go of W without the barrier's deletion half (dropped), so the
 * key update's own barrier is all that can save W. */
__attribute__((noinline)) static void b5_update_key(void)
{
    gm_map *m = gm_map_new_gc(&pkey_type, &gm_type_u64, 0);
    gm_store(&b5_map[0], m);
    uint64_t v = 7;
    pkey k1 = { new_node(NULL, NULL, 1), 1 };
    gm_map_put(m, &k1, &v);
    pkey k2 = { holder[0]->left, 1 };
    gm_map_put(m, &k2, &v);
    int old = gm_gc_fault_drop_barrier(1);
    gm_store(&holder[0]->left, NULL);
    gm_gc_fault_drop_barrier(old);
}

static void b5_child(void *arg)
{
    (void)arg;
    alarm(60);
    gm_root_add(holder, sizeof holder);
    gm_root_add(b5_map, sizeof b5_map);
    setup_white_child();
    scrub_stack();
    hold_and_start_mark();
    b5_update_key();
    scrub_stack();
    release_mark();                     /* the cycle ends: checkmark */
    collect();
    gm_map_iter it;
    gm_map_iter_init(&it, b5_map[0]);
    const void *k;
    void *val;
    bool ok = gm_map_iter_next(&it, &k, &val) && ((const pkey *)k)->p->val == 4242;
    fprintf(stderr, "child: %s\n", ok ? "ok" : "BAD");
    abort();
}

TEST(b5_gc_map_key_update_has_barrier)
{
    CHECK(expect_abort_with(b5_child, NULL, "child: ok"));
}

/* ---- B6: typed allocations honour the type's alignment ------------------------------- */

static size_t misaligned(size_t align, bool scan)
{
    static const uint8_t mask[40000 / 64 + 8] = { 0x1 };   /* covers every word */
    size_t bad = 0, step = align < 64 ? 64 : align;
    for (size_t size = step; size <= 40000; size += step) {
        gm_type t = { size, align, NULL, NULL, scan ? mask : NULL, 0, "aligned" };
        for (int k = 0; k < 3; k++) {
            uintptr_t a = (uintptr_t)gm_new(&t), b = (uintptr_t)gm_new_array(&t, 2);
            if (a % align || b % align) {
                if (bad < 4)
                    fprintf(stderr, "size %zu align %zu: %#lx %#lx\n", size, align,
                            (unsigned long)a, (unsigned long)b);
                bad++;
            }
        }
    }
    return bad;
}

TEST(b6_new_honours_alignment)
{
    for (size_t align = 16; align <= 4096; align *= 2) {
        CHECK_MSG(misaligned(align, false) == 0, "noscan, align %zu", align);
        CHECK_MSG(misaligned(align, true) == 0, "scan, align %zu", align);
    }
    /* the sizes the review named */
    gm_type t640 = { 640, 128, NULL, NULL, NULL, 0, "a640" };
    for (int i = 0; i < 50; i++) CHECK((uintptr_t)gm_new(&t640) % 128 == 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* A large object allocated with a descriptor that is later overwritten
 * (a gm_type on the stack, reused for another type) is still scanned as
 * what it was allocated as.  The object and the one it points to are made
 * by a thread that exits, so no stale stack word keeps the target alive. */
static const uint8_t word0_ptr[(64 << 10) / 64] = { 0x1 }, no_ptrs[(64 << 10) / 64];  /* a bit per word */
static gm_type reused_type;
static void **big_holder;
static gm_weak *big_target;

static void *make_big_pointing_at_target(void *arg)
{
    (void)arg;
    reused_type = (gm_type){ 64 << 10, 8, NULL, NULL, word0_ptr, 0, "big" };
    void **big = gm_new(&reused_type);              /* large: 64 KiB */
    void *target = gm_alloc_noscan(64);
    gm_store(&big[0], target);
    big_target = gm_weak_make(target);
    big_holder = big;
    return NULL;
}

TEST(b6_large_object_keeps_its_type_when_the_descriptor_is_reused)
{
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, make_big_pointing_at_target, NULL) == 0);
    REQUIRE(pthread_join(th, NULL) == 0);
    /* the descriptor's memory now says "no pointers" */
    reused_type = (gm_type){ 64 << 10, 8, NULL, NULL, no_ptrs, 0, "other" };
    gm_gc();
    gm_gc();
    CHECK(gm_weak_get(big_target) != NULL);          /* reached through big[0] */
    CHECK(big_holder[0] != NULL && gm_weak_get(big_target) == big_holder[0]);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

typedef struct { uint8_t b[128]; } __attribute__((aligned(128))) val128;
GM_TYPE_DEFINE_VALUE(val128_type, val128);
typedef struct { uint8_t b[64]; } __attribute__((aligned(64))) val64;
GM_TYPE_DEFINE_VALUE(val64_type, val64);
typedef struct { void *p; uint64_t pad[7]; } __attribute__((aligned(64))) ptr_val;
static const uint8_t ptr_val_mask[] = { 0x1 };
static const gm_type ptr_val_type = { sizeof(ptr_val), 64, NULL, NULL, ptr_val_mask, 0, "ptr_val" };

/* Value slots of a GC map are aligned for the value type: the bucket array
 * (one bucket for a small map, pointer-free or scanned) is aligned to the
 * bucket's alignment. */
TEST(b6_gc_map_slots_honour_alignment)
{
    const gm_type *keys[] = { &gm_type_u32, &gm_type_u64 };
    const gm_type *vals[] = { &val64_type, &ptr_val_type, &val128_type };
    size_t bad = 0, n = 0;
    for (int k = 0; k < 2; k++)
        for (int v = 0; v < 3; v++)
            for (int rep = 0; rep < 40; rep++) {
                gm_map *m = gm_map_new_gc(keys[k], vals[v], 0);
                for (uint64_t key = 0; key < 6; key++) {
                    uint32_t k32 = (uint32_t)key;
                    void *e = gm_map_assign(m, k ? (const void *)&key : (const void *)&k32);
                    n++;
                    if ((uintptr_t)e % vals[v]->align) bad++;
                }
                gm_keep_alive(m);
            }
    CHECK_MSG(bad == 0, "%zu of %zu value slots misaligned", bad, n);
}

/* ---- B7: misuse of the blocking contract ------------------------------------------- */

static void b7_alloc_in_blocking(void *arg)
{
    (void)arg;
    gm_thread_attach();
    gm_blocking_begin();
    gm_new(&node_type);
}

TEST(b7_allocation_inside_blocking_section_is_fatal)
{
    CHECK(expect_fatal(b7_alloc_in_blocking, NULL,
                       "gm_new or gm_alloc_* inside gm_blocking_begin/end (a missing gm_blocking_end, or a "
                       "longjmp out of the section): a blocking thread must not touch the GC heap"));
}

static void b7_gc_in_blocking(void *arg)
{
    (void)arg;
    gm_thread_attach();
    gm_blocking_begin();
    gm_gc();
}

TEST(b7_gc_inside_blocking_section_is_fatal)
{
    CHECK(expect_abort_with(b7_gc_in_blocking, NULL, "fatal error: gm_gc inside gm_blocking_begin/end"));
}

static jmp_buf b7_jb;
__attribute__((noinline)) static void b7_blocking_then_jump(void)
{
    gm_blocking_begin();
    longjmp(b7_jb, 1);
}

static void b7_longjmp_out(void *arg)
{
    (void)arg;
    gm_thread_attach();
    if (setjmp(b7_jb) == 0) b7_blocking_then_jump();
    gm_new(&node_type);                 /* still "blocking": caught, not a torn heap */
}

TEST(b7_longjmp_out_of_blocking_section_is_fatal)
{
    CHECK(expect_abort_with(b7_longjmp_out, NULL, "fatal error: gm_new or gm_alloc_* inside "
                                                  "gm_blocking_begin/end (a missing gm_blocking_end, "
                                                  "or a longjmp out of the section)"));
}

/* A store while marking, inside a blocking section: the collector may be
 * scanning this stack or have stopped the world around it. */
static void b7_store_in_blocking(void *arg)
{
    (void)arg;
    static node *slot[1];
    gm_root_add(slot, sizeof slot);
    node *n = new_node(NULL, NULL, 1);
    hold_and_start_mark();
    gm_blocking_begin();
    gm_store(&slot[0], n);
}

TEST(b7_store_inside_blocking_section_while_marking_is_fatal)
{
    CHECK(expect_abort_with(b7_store_in_blocking, NULL,
                            "fatal error: gm_store or another write barrier inside gm_blocking_begin/end"));
}

/* gm_safepoint inside a blocking section while the world is being stopped:
 * park() used to leave the thread RUNNING, and the next stop of the world
 * then waited for a thread blocked in a call, until the stop timeout killed
 * the process.  Now the misuse is named at once. */
static atomic_int b7_stage;

static void *b7_safepoint_in_blocking(void *arg)
{
    (void)arg;
    gm_thread_attach();
    gm_blocking_begin();
    for (int i = 0; i < 200; i++) {
        while (!(atomic_load(&gc_poll_a) & POLL_STW)) {}   /* a stop is in progress */
        gm_safepoint();
        if (atomic_load(&gc_self->state_a) == TH_RUNNING) break;  /* the bug: no longer BLOCKING */
    }
    atomic_store(&b7_stage, 1);
    sleep(3);                            /* a blocking call, as promised */
    gm_blocking_end();
    gm_thread_detach();
    return NULL;
}

static void b7_safepoint_child(void *arg)
{
    (void)arg;
    alarm(30);
    gc_opt.stoptimeout_ms = 1000;
    gc_opt.gcstoptheworld = 1;           /* long pauses: the thread's safepoint lands in one */
    static node *live[1];
    gm_root_add(live, sizeof live);
    for (int i = 0; i < 50000; i++) gm_store(&live[0], new_node(live[0], NULL, (uint64_t)i));
    pthread_t th;
    pthread_create(&th, NULL, b7_safepoint_in_blocking, NULL);
    while (!atomic_load(&b7_stage)) gm_gc();
    gm_gc();                             /* must not wait for the sleeping thread */
    fprintf(stderr, "child: ok\n");
    abort();
}

TEST(b7_safepoint_inside_blocking_section_is_fatal)
{
    CHECK(expect_abort_with(b7_safepoint_child, NULL,
                            "fatal error: gm_safepoint inside gm_blocking_begin/end"));
}

/* ---- B8: AArch64's callee-saved d8-d15 are roots ---------------------------------------- */

/* The register save that roots a parked or blocking thread's registers
 * keeps every callee-saved register a pointer can live in across calls:
 * on AArch64 x19-x28 and d8-d15 (a compiler may keep a pointer in a d
 * register); on x86-64 rbx, r12-r15 (every vector register is caller-saved
 * there).  The registers get known values, gc_save_regs runs, and each
 * value must be in the saved set.  (An end-to-end AArch64 version -- a
 * pointer only in d8 across gm_gc -- cannot fail reliably: glibc's
 * __sigsetjmp, reached from the thread's waits, stores d8 on the scanned
 * stack.)  Run on AArch64 with scripts/aarch64.sh (qemu-user). */
static bool saved_has(const uintptr_t *regs, uintptr_t v)
{
    for (unsigned i = 0; i < GC_NREGS; i++)
        if (regs[i] == v) return true;
    return false;
}

TEST(b8_callee_saved_registers_are_saved)
{
    uintptr_t regs[GC_NREGS];
    memset(regs, 0, sizeof regs);
#if defined(__aarch64__)
    register uintptr_t *r __asm__("x0") = regs;
    __asm__ volatile("mov x9, #0x1d08\n\tfmov d8, x9\n\t"
                     "mov x9, #0x1d09\n\tfmov d9, x9\n\t"
                     "mov x9, #0x1d0a\n\tfmov d10, x9\n\t"
                     "mov x9, #0x1d0b\n\tfmov d11, x9\n\t"
                     "mov x9, #0x1d0c\n\tfmov d12, x9\n\t"
                     "mov x9, #0x1d0d\n\tfmov d13, x9\n\t"
                     "mov x9, #0x1d0e\n\tfmov d14, x9\n\t"
                     "mov x9, #0x1d0f\n\tfmov d15, x9\n\t"
                     "mov x19, #0x1c13\n\tmov x20, #0x1c14\n\tmov x21, #0x1c15\n\t"
                     "mov x22, #0x1c16\n\tmov x23, #0x1c17\n\tmov x24, #0x1c18\n\t"
                     "mov x25, #0x1c19\n\tmov x26, #0x1c1a\n\tmov x27, #0x1c1b\n\t"
                     "mov x28, #0x1c1c\n\t"
                     "bl gc_save_regs"
                     : "+r"(r)
                     :
                     : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12",
                       "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23",
                       "x24", "x25", "x26", "x27", "x28", "x30", "d8", "d9", "d10", "d11",
                       "d12", "d13", "d14", "d15", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7",
                       "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26",
                       "v27", "v28", "v29", "v30", "v31", "cc", "memory");
    for (unsigned k = 8; k <= 15; k++) CHECK_MSG(saved_has(regs, 0x1d00u + k), "d%u not saved", k);
    for (unsigned k = 19; k <= 28; k++) CHECK_MSG(saved_has(regs, 0x1c00u + k), "x%u not saved", k);
#elif defined(__x86_64__)
    uintptr_t *rdi = regs;
    __asm__ volatile("movq $0x1b0b, %%rbx\n\tmovq $0x1b0c, %%r12\n\tmovq $0x1b0d, %%r13\n\t"
                     "movq $0x1b0e, %%r14\n\tmovq $0x1b0f, %%r15\n\t"
                     "subq $128, %%rsp\n\tcall gc_save_regs\n\taddq $128, %%rsp"  /* past the red zone */
                     : "+D"(rdi)
                     :
                     : "rax", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "rbx", "r12",
                       "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
                       "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
                       "cc", "memory");
    for (unsigned k = 0xb; k <= 0xf; k++) CHECK_MSG(saved_has(regs, 0x1b00u + k), "register %#x not saved", k);
#else
    fprintf(stderr, "(no register check for this architecture: gc_save_regs uses __builtin_unwind_init)\n");
#endif
}

/* ---- B9: weak handles of interior pointers past 4 GiB ------------------------------- */

static gm_weak *b9_handles[2];          /* a root range */

__attribute__((noinline)) static bool b9_make(void)
{
    size_t big = ((size_t)4 << 30) + 65536;
    char *p = gm_alloc_noscan(big);     /* pages are committed but never touched */
    if (!p) return false;
    gm_store(&b9_handles[0], gm_weak_make(p + 8));
    gm_store(&b9_handles[1], gm_weak_make(p + ((size_t)4 << 30) + 8));
    bool ok = b9_handles[0] != b9_handles[1] && gm_weak_get(b9_handles[0]) == p + 8 &&
              gm_weak_get(b9_handles[1]) == p + ((size_t)4 << 30) + 8;
    gm_keep_alive(p);
    return ok;
}

TEST(b9_weak_handle_offsets_past_4GiB)
{
    gm_root_add(b9_handles, sizeof b9_handles);
    CHECK(b9_make());
    collect();                          /* the object is gone: both handles read NULL */
    CHECK(gm_weak_get(b9_handles[0]) == NULL && gm_weak_get(b9_handles[1]) == NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(b9_handles);
    gm_free_os_memory();
}

/* ---- B10: the pacer's goal does not overflow ------------------------------------------ */

TEST(b10_pacer_goal_does_not_overflow)
{
    size_t big = (size_t)16 << 30;      /* 16 GiB live, GMGC at INT_MAX percent */
    char *p = gm_alloc_noscan(big);
    REQUIRE(p != NULL);
    int old = gm_gc_percent(INT_MAX);
    collect();
    uint64_t marked = stats()->heap_alloc, goal = stats()->next_gc;
    unsigned __int128 want = (unsigned __int128)big + (unsigned __int128)big * INT_MAX / 100;
    if (want > UINT64_MAX) want = UINT64_MAX;
    CHECK_MSG(marked >= big, "marked %llu", (unsigned long long)marked);
    CHECK_MSG(goal >= (uint64_t)want, "goal %llu < %llu", (unsigned long long)goal,
              (unsigned long long)(uint64_t)want);
    gm_gc_percent(old);
    gm_keep_alive(p);
    p = NULL;
    collect();
    gm_free_os_memory();
}

/* ---- B11: gm_root_add reports running out of memory -------------------------------------- */

static void b11_root_add_oom(void *arg)
{
    (void)arg;
    static uintptr_t r[4096];           /* more than the table holds: it must grow */
    gm_gc_fault_fail_alloc(1);          /* the next internal allocation fails */
    for (int i = 0; i < 4096; i++) gm_root_add(&r[i], sizeof r[i]);
    fprintf(stderr, "child: returned\n");
}

TEST(b11_root_add_out_of_memory_is_fatal)
{
    CHECK(expect_abort_with(b11_root_add_oom, NULL, "fatal error: gm_root_add: out of memory"));
}

TEST(b11_root_try_add_reports_enomem)
{
    static uintptr_t r[4096];           /* more than the table holds: it must grow */
    static bool added[4096];
    int fails = 0;
    gm_gc_fault_fail_alloc(1);
    for (int i = 0; i < 4096; i++) {
        errno = 0;
        int rc = gm_root_try_add(&r[i], sizeof r[i]);
        added[i] = rc == 0;
        if (rc) {
            CHECK_EQ_U(rc, ENOMEM);
            CHECK_EQ_U(errno, ENOMEM);
            fails++;
        }
    }
    gm_gc_fault_fail_alloc(0);
    CHECK_EQ_U(fails, 1);               /* exactly the one growth that was refused */
    CHECK_EQ_U(gm_root_try_add(NULL, 8), EINVAL);
    CHECK_EQ_U(gm_root_try_add(r, 0), EINVAL);
    for (int i = 0; i < 4096; i++)
        if (added[i]) gm_root_remove(&r[i]);
}

/* gm_heap_verify checks the span mark queue's state: outside a cycle no span
 * may be left queued (a drain that forgot to release one would leave it out
 * of every later mark's queue).  The state is set by hand here. */
TEST(verify_reports_a_span_left_queued)
{
    node *n = new_node(NULL, NULL, 1);
    collect();
    CHECK_EQ_U(gm_heap_verify(), 0);
    gc_span *s = gc_span_of((uintptr_t)n);
    CHECK(s != NULL);
    __atomic_store_n(&s->queued, 1, __ATOMIC_RELAXED);
    CHECK(gm_heap_verify() >= 1);
    __atomic_store_n(&s->queued, 0, __ATOMIC_RELAXED);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_keep_alive(n);
}
