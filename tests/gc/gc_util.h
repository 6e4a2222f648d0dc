/* gc_util.h - helpers shared by the GC tests. */
#ifndef GOMAP_TEST_GC_UTIL_H
#define GOMAP_TEST_GC_UTIL_H

#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gc/gc_fault.h"
#include "gomap/gc.h"

typedef struct node { struct node *left, *right; uint64_t val; } node;
static const uint8_t node_mask[] = { 0x3 };
static const gm_type node_type = { sizeof(node), 8, NULL, NULL, node_mask, 0, "node" };
static const uint8_t ptr_mask[] = { 0x1 };
static const gm_type ptr_type = { sizeof(void *), 8, NULL, NULL, ptr_mask, 0, "ptr" };

static inline node *new_node(node *l, node *r, uint64_t v)
{
    /* gm_store even into a fresh object: while marking it is black, and a
     * plain store could hide l or r from the collector (docs/gc.md) */
    node *n = gm_new(&node_type);
    gm_store(&n->left, l);
    gm_store(&n->right, r);
    n->val = v;
    return n;
}

/* Overwrite dead stack below the caller so that stale copies of pointers
 * left by earlier calls do not keep objects alive (the stack is scanned
 * conservatively). */
__attribute__((noinline, unused, no_sanitize("address"))) static void scrub_stack(void)
{
    volatile char buf[64 * 1024];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

/* A full collection from a clean stack.  A macro, so that gm_gc's frame
 * lands on the memory scrub_stack just cleared: a helper function's own
 * frame would hold stale slots of the calls before it (at -O0 above all). */
#define collect() (scrub_stack(), gm_gc())

__attribute__((unused)) static inline gm_memstats *stats(void)
{
    static gm_memstats m;
    gm_read_memstats(&m);
    return &m;
}

static inline long scaled(long n)
{
    long v = (long)(n * test_scale());
    return v < 1 ? 1 : v;
}

#ifdef GOMAP_FAULT_INJECTION
/* A held concurrent mark (gm_gc_fault_hold_mark): start_gc runs the cycle
 * on its own thread; wait_marking waits at safepoints (so this thread's
 * stack is scanned and black) until that mark has started. */
__attribute__((unused)) static void *start_gc(void *arg)
{
    (void)arg;
    gm_gc();
    return NULL;
}

__attribute__((unused)) static void wait_marking(void)
{
    while (!gm_gc_fault_marking()) {
        gm_safepoint();
        usleep(100);
    }
    for (int i = 0; i < 10; i++) gm_safepoint();
}
#endif

#endif
