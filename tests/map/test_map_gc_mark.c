/* test_map_gc_mark.c - GC maps while the collector marks concurrently, with
 * the interleavings forced rather than hoped for.
 *
 * The fault switch gm_gc_fault_hold_mark (src/gc/gc_fault.h) lets a cycle
 * start -- barrier on, allocation black, stacks scanned at safepoints -- and
 * then holds the background mark before it scans any root.  Within that
 * window the map (reachable only from a registered root, not from this
 * stack) is still white: nothing in it is marked.  Each case does its map
 * work inside the window, then lets the cycle finish; GMDEBUG=gccheckmark=1
 * (set by CMake) re-marks the heap with the world stopped and dies if the
 * concurrent mark missed anything.
 *
 *   growth: the map starts growing and is evacuated completely inside the
 *     window: every entry moves from the white old array into the new one,
 *     which was allocated black and is never scanned this cycle.  Only the
 *     barrier in evacuation (typed memmove / memclr) marks the moved values.
 *   delete: values are moved out of the map into a holder allocated in the
 *     window (black, never scanned this cycle) and their entries deleted.
 *     Only the barrier on that move marks them.  Moved onto a stack instead,
 *     they survive even without it: stacks are scanned again at mark
 *     termination.
 *   iteration: an iterator started before the cycle walks the map while it
 *     grows inside the window.
 *
 * Each fault case runs the same work with the barrier dropped around the
 * one kind of operation, in a forked child, and must see checkmark fire:
 * the proof that the correct cases could fail. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../gc/gc_util.h"
#include "gc/gc_fault.h"
#include "gomap/gomap.h"
#include "map/map_internal.h"
#include "engine.h"
#include "gc_box.h"

static gm_map *gmap;            /* a root: the map is not on any stack */

static void *run_gc(void *arg)
{
    (void)arg;
    gm_gc();
    return NULL;
}

/* Starts a cycle on another thread and returns inside the window: marking
 * has begun, this thread's stack is scanned, the background mark is held. */
static pthread_t window_open(void)
{
    scrub_stack();
    gm_gc_fault_hold_mark(1);
    pthread_t t;
    if (pthread_create(&t, NULL, run_gc, NULL) != 0) abort();
    while (!gm_gc_fault_marking()) {
        gm_safepoint();
        usleep(100);
    }
    for (int i = 0; i < 10; i++) gm_safepoint();
    return t;
}

/* Lets the cycle finish (mark termination; checkmark runs there). */
static void window_close(pthread_t t)
{
    scrub_stack();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(t, NULL);
    gm_blocking_end();
}

enum { N = 3000 };

__attribute__((noinline)) static void fill(uint64_t n)
{
    gmap = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    for (uint64_t k = 0; k < n; k++) {
        box *b = new_box(k);
        gm_map_put(gmap, &k, &b);
    }
}

/* Fills the map to just below its next growth (a collection in between
 * makes every box old and white for the next cycle). */
__attribute__((noinline)) static uint64_t fill_to_edge(void)
{
    if (default_engine_is_swiss()) {
        /* A Swiss write moves at most one table, and which insert fills a
         * table is not predictable: grow_in_window inserts until one does. */
        fill(N);
        return N;
    }
    fill(0);
    uint64_t k = 0;
    for (;; k++) {
        uint8_t B = gmap->B;
        box *b = new_box(k);
        gm_map_put(gmap, &k, &b);
        if (gmap->B != B && k >= N) break;
    }
    /* grown just now: finish it, then fill to the edge of the next one */
    for (uint64_t j = 0; gmap->oldbuckets; j++) gm_map_assign(gmap, &j);
    uint64_t edge = (uint64_t)(6.5 * (double)(1u << gmap->B));
    for (k++; k < edge; k++) {
        box *b = new_box(k);
        gm_map_put(gmap, &k, &b);
    }
    return k;
}

/* Inside the window: one insert starts the grow, then writes to existing
 * keys evacuate every old bucket.  drop: without the barrier for the
 * evacuating writes. */
static uint64_t moved_in_window;    /* entries the growth in the window moved */

static uint64_t moved_so_far(void)
{
    gm_map_stats st;
    gm_map_stats_get(gmap, &st);
    return st.moved_entries;
}

__attribute__((noinline)) static void grow_in_window(uint64_t n, bool drop)
{
    if (gm_map_engine_of(gmap) == GM_MAP_SWISS) {
        /* New keys until a table is rebuilt or split (hundreds of moves),
         * the moving writes without the barrier when `drop`. */
        uint64_t m0 = moved_so_far();
        int old = gm_gc_fault_drop_barrier(drop);
        for (uint64_t k = n; moved_so_far() - m0 < 400; k++) {
            box *b = new_box(k);
            gm_map_put(gmap, &k, &b);
        }
        gm_gc_fault_drop_barrier(old);
        moved_in_window = moved_so_far() - m0;
        return;
    }
    box *b = new_box(n);
    gm_map_put(gmap, &n, &b);
    if (!gmap->oldbuckets) abort();   /* fill_to_edge put it at the edge */
    int old = gm_gc_fault_drop_barrier(drop);
    for (uint64_t j = 0; gmap->oldbuckets; j = (j + 1) % n) gm_map_assign(gmap, &j);
    gm_gc_fault_drop_barrier(old);
    moved_in_window = gm_map_len(gmap);
}

static bool all_ok(uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        box **p = gm_map_get(gmap, &k);
        if (!p || !box_ok(*p, k)) return false;
    }
    return true;
}

static uint64_t shades_in_window;   /* pointers the barrier recorded during the grow */

static void growth_case(bool drop)
{
    gm_root_add(&gmap, sizeof gmap);
    uint64_t n = fill_to_edge();
    collect();
    pthread_t t = window_open();
    gm_memstats a, b;
    gm_read_memstats(&a);
    grow_in_window(n, drop);
    gm_read_memstats(&b);
    shades_in_window = b.gc_wb_shades - a.gc_wb_shades;
    window_close(t);
    collect();
    if (!all_ok(n + 1)) {
        fprintf(stderr, "a value moved by evacuation was lost\n");
        abort();
    }
}

TEST(growth_inside_the_mark_keeps_every_value)
{
    growth_case(false);
    CHECK(gm_map_len(gmap) > N);
    /* every moved value was shaded at least once, by the copy into the new
     * array and the clear of the old slot (flushed buffers are counted,
     * so allow one buffer still unflushed) */
    CHECK_MSG(shades_in_window + 256 >= moved_in_window, "%llu shades for %llu entries moved",
              (unsigned long long)shades_in_window, (unsigned long long)moved_in_window);
    CHECK(moved_in_window >= 400);
    const char *e = gm_map_check(gmap);
    CHECK_MSG(e == NULL, "%s", e);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gmap = NULL;
    gm_root_remove(&gmap);
}

static void growth_child(void *arg)
{
    (void)arg;
    growth_case(true);
    _exit(0);
}

TEST(evacuation_without_the_barrier_is_caught_by_checkmark)
{
    CHECK(expect_abort_with(growth_child, NULL, "fatal error: checkmark found unmarked object"));
}

/* Inside the window: K values move out of the map -- into a holder array
 * allocated in the window (black: never scanned this cycle), or onto this
 * thread's stack -- and their entries are deleted.  drop: without the
 * barrier for the move (the store into the holder and the delete). */
enum { K = 64 };
static const uint8_t ptrs_mask[K / 8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const gm_type holder_type = { K * sizeof(void *), 8, NULL, NULL, ptrs_mask, 0, "holder" };
static box **holder;            /* a root */

__attribute__((noinline)) static void take_out(box **held, bool drop)
{
    if (!held) gm_store(&holder, gm_new(&holder_type));
    for (uint64_t k = 0; k < K; k++) {
        box *b = *(box **)gm_map_get(gmap, &k);
        int old = gm_gc_fault_drop_barrier(drop);
        if (held) held[k] = b;
        else gm_store(&holder[k], b);
        gm_map_delete(gmap, &k);
        gm_gc_fault_drop_barrier(old);
    }
}

static void delete_case(bool to_stack, bool drop)
{
    gm_root_add(&gmap, sizeof gmap);
    gm_root_add(&holder, sizeof holder);
    fill(N);
    collect();
    box *stack[K];
    pthread_t t = window_open();
    take_out(to_stack ? stack : NULL, drop);
    window_close(t);
    collect();
    box **from = to_stack ? stack : holder;
    for (uint64_t k = 0; k < K; k++) {
        if (!box_ok(from[k], k)) {
            fprintf(stderr, "a deleted value moved out of the map was lost\n");
            abort();
        }
        gm_map_put(gmap, &k, &from[k]);
    }
    if (!all_ok(N)) abort();
    gm_store(&holder, NULL);
    gm_root_remove(&holder);
}

TEST(delete_inside_the_mark_keeps_values_moved_out)
{
    delete_case(false, false);
    CHECK_EQ_U(gm_map_len(gmap), N);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gmap = NULL;
    gm_root_remove(&gmap);
}

/* Stacks are scanned again at mark termination (src/gc/thread.c), so a
 * value moved from the map onto a stack survives even without the deletion
 * half of the barrier: checkmark stays quiet and the value is intact. */
TEST(delete_to_the_stack_survives_without_the_deletion_barrier)
{
    delete_case(true, true);
    CHECK_EQ_U(gm_map_len(gmap), N);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gmap = NULL;
    gm_root_remove(&gmap);
}

static void delete_child(void *arg)
{
    (void)arg;
    delete_case(false, true);
    _exit(0);
}

TEST(delete_without_the_barrier_is_caught_by_checkmark)
{
    CHECK(expect_abort_with(delete_child, NULL, "fatal error: checkmark found unmarked object"));
}

/* An iterator opened before the cycle, half done, finishes while the map
 * grows inside the window and after it: every key present throughout is
 * returned exactly once, with its value intact. */
TEST(iteration_across_a_concurrent_cycle_with_growth)
{
    gm_root_add(&gmap, sizeof gmap);
    uint64_t n = fill_to_edge();
    collect();
    static uint8_t seen[1 << 16];
    REQUIRE(n < sizeof seen);
    memset(seen, 0, sizeof seen);
    gm_map_iter it;
    const void *kp;
    void *vp;
    size_t got = 0, bad = 0;
    gm_map_iter_init(&it, gmap);
    for (uint64_t i = 0; i < n / 2 && gm_map_iter_next(&it, &kp, &vp); i++) {
        uint64_t k = *(const uint64_t *)kp;
        if (k >= n || seen[k]++ || !box_ok(*(box **)vp, k)) bad++;
        got++;
    }
    pthread_t t = window_open();
    grow_in_window(n, false);
    for (uint64_t i = 0; i < n / 4 && gm_map_iter_next(&it, &kp, &vp); i++) {
        uint64_t k = *(const uint64_t *)kp;
        if (k < n && (seen[k]++ || !box_ok(*(box **)vp, k))) bad++;
        if (k < n) got++;
    }
    window_close(t);
    collect();
    while (gm_map_iter_next(&it, &kp, &vp)) {
        uint64_t k = *(const uint64_t *)kp;
        if (k < n && (seen[k]++ || !box_ok(*(box **)vp, k))) bad++;
        if (k < n) got++;
    }
    CHECK_EQ_U(bad, 0);
    CHECK_EQ_U(got, n);
    CHECK(all_ok(n + 1));
    CHECK_EQ_U(gm_heap_verify(), 0);
    gmap = NULL;
    gm_root_remove(&gmap);
}
