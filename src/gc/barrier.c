/* barrier.c - the write barrier's entry points.
 *
 * Every store of a GC pointer into the heap that the library or a user makes
 * through gomap goes through gm_store, gm_typed_memmove or gm_typed_memclr.
 * With the world stopped for the whole mark (this version) no barrier is
 * needed and gc_wb_enabled_a is always false, so each is a plain store plus
 * one relaxed load.  Issue 5 turns the flag on during concurrent mark and
 * fills in wb_slot / wb_bulk with Go's hybrid barrier: shade(*slot) and
 * shade(ptr) before the store (bulk: every pointer word being overwritten
 * and every one being copied), through gc_shade, keeping "a black object
 * never points to a white one".
 */
#include "gc/gc_internal.h"
#include "gc/gc_fault.h"

#include <string.h>

#ifdef GOMAP_FAULT_INJECTION
static _Thread_local int wb_dropped;
int gm_gc_fault_drop_barrier(int on)
{
    int old = wb_dropped;
    wb_dropped = on;
    return old;
}
#define WB_DROPPED() GM_UNLIKELY(wb_dropped)
#else
#define WB_DROPPED() 0
#endif

static void wb_slot(void *slot, void *ptr)
{
    if (WB_DROPPED()) return;
    gc_shade(*(uintptr_t *)slot);
    gc_shade((uintptr_t)ptr);
}

static void wb_bulk(const gm_type *t, void *dst, const void *src)
{
    if (WB_DROPPED()) return;
    size_t tw = t->size / WORD_SIZE;
    for (size_t j = 0; j < tw; j++) {
        if (!((t->ptrmask[j / 8] >> (j % 8)) & 1)) continue;
        gc_shade(((uintptr_t *)dst)[j]);
        if (src) gc_shade(((const uintptr_t *)src)[j]);
    }
}

void gm_store(void *slot, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_slot(slot, ptr);
    *(void **)slot = ptr;
}

void gm_typed_memmove(const gm_type *t, void *dst, const void *src)
{
    if (dst == src || t->size == 0) return;
    if (t->ptrmask && GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_bulk(t, dst, src);
    memmove(dst, src, t->size);
}

void gm_typed_memclr(const gm_type *t, void *dst)
{
    if (t->size == 0) return;
    if (t->ptrmask && GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_bulk(t, dst, NULL);
    memset(dst, 0, t->size);
}

/* The atomic variants read the old value atomically for the barrier: another
 * thread may be storing into the slot at the same time.  Shading a value that
 * a racing store then replaces is harmless (one more object kept this cycle). */
static void wb_atomic(void *slot, void *ptr)
{
    if (WB_DROPPED()) return;
    gc_shade((uintptr_t)atomic_load_explicit((_Atomic(void *) *)slot, memory_order_relaxed));
    gc_shade((uintptr_t)ptr);
}

void gm_atomic_store(void *slot, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_atomic(slot, ptr);
    atomic_store((_Atomic(void *) *)slot, ptr);
}

void *gm_atomic_swap(void *slot, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_atomic(slot, ptr);
    return atomic_exchange((_Atomic(void *) *)slot, ptr);
}

bool gm_atomic_cas(void *slot, void *old, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_atomic(slot, ptr);
    return atomic_compare_exchange_strong((_Atomic(void *) *)slot, &old, ptr);
}
