/* barrier.c - the write barrier (Go's hybrid barrier, design 17503).
 *
 * Every store of a GC pointer into the heap or into a registered root range
 * goes through gm_store, gm_typed_memmove, gm_typed_memclr or gm_atomic_*
 * (the contract in docs/gc.md).  There is no exception for initialising
 * stores: an object allocated while marking is black, so a pointer written
 * into it with a plain store may become the only reference to a white
 * object that nothing will ever scan.  Outside a mark the barrier is one relaxed load of
 * gc_wb_enabled_a and a predictable branch.  While marking:
 *
 *     shade(*slot); shade(ptr); *slot = ptr
 *
 * shade(*slot), the deletion half, keeps a white object that loses a heap
 * reference grey if a scanned stack may still hold it; shade(ptr), the
 * insertion half, greys a pointer taken from a not-yet-scanned stack into a
 * black object.  mark.c states the whole correctness argument.  Bulk forms
 * shade every pointer word being overwritten and every one being copied.
 *
 * BUFFER.  Shading is deferred: the two values are appended to the calling
 * thread's buffer (GC_WBBUF = 256 entries, as Go's wbBuf), filtered to
 * addresses inside the heap reservation and to values other than the
 * object the thread allocated last (t->last_black: set by the allocation
 * while marking, cleared at each mark's start with the world stopped, so
 * it is always black in the current mark; a newly made object stored into
 * its parent is most of a building program's barrier records, and each
 * flushed record costs an object lookup); a full buffer is flushed (each
 * value greyed, the grey objects published to the global queue).  Mark
 * termination flushes every thread's buffer with the world stopped before it
 * looks for remaining grey objects.  Deferring is safe because the values
 * are themselves a root set until flushed, and the collector never ends the
 * mark before flushing them.
 *
 * WHO MAY STORE.  The barrier's slow path runs only while marking, and
 * there it needs a thread the collector can stop: a thread that is not
 * attached is attached on the spot (as its first allocation would attach
 * it; it is detached when it exits) -- shading from outside the handshake
 * would push into the queue that mark termination drains with the world
 * stopped.  From then on it is a mutator and must reach safepoints.  A
 * thread inside a blocking section must not store GC pointers (fatal).
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

/* The barrier's code lives in its own section: the preemption signal
 * (preempt.c) never stops a thread inside it, so a barrier that read
 * "off" cannot complete its store after a mark started. */
#define NOPREEMPT GC_NOPREEMPT

NOPREEMPT static inline bool in_heap(uintptr_t p)
{
    return p - gc_arena_start < atomic_load_explicit(&gc_arena_used_a, memory_order_relaxed);
}

__attribute__((noinline)) NOPREEMPT static void wb_flush_self(gc_thread *t)
{
    gm_rt_enter();                        /* grey objects in hand until published */
    gc_workbuf *w = gc_cur_work();
    gc_wb_flush(t, w);
    if (w != &gc_work) gc_work_publish(w);
    gm_rt_leave();
}

/* Records the values to shade (before the store happens). */
/* The calling thread, attached (see WHO MAY STORE) before the caller reads
 * the old values: attaching may wait for a stop of the world, during which
 * the slots may change. */
__attribute__((noinline)) static bool wb_attach(void)
{
    gc_thread_auto();                  /* waits while the world is stopped */
    /* the mark may have ended meanwhile: nothing to record then */
    return atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed);
}

/* false: no longer marking (nothing to record) */
static inline bool wb_ensure_attached(void)
{
    gc_thread *t = gc_self;
    if (GM_UNLIKELY(!t)) return wb_attach();
    if (GM_UNLIKELY(t->blocking_depth)) gc_blocking_misuse("gm_store or another write barrier");
    return true;
}

NOPREEMPT static void wb_record(uintptr_t a, uintptr_t b)
{
    gc_thread *t = gc_self;
    if (GM_UNLIKELY(t->wbn + 2 > GC_WBBUF)) wb_flush_self(t);
    /* the object this thread allocated last is black (allocated during
     * this mark): storing it, the commonest store of all (make a node,
     * link it), or overwriting it needs no shade */
    uintptr_t lb = t->last_black;
    if (in_heap(a) && a != lb) t->wb[t->wbn++] = a;
    if (in_heap(b) && b != lb) t->wb[t->wbn++] = b;
}

NOPREEMPT static void wb_slot(void *slot, void *ptr)
{
    if (WB_DROPPED()) return;
    if (!wb_ensure_attached()) return;
    wb_record(*(uintptr_t *)slot, (uintptr_t)ptr);
}

NOPREEMPT static void wb_bulk(const gm_type *t, void *dst, const void *src)
{
    if (WB_DROPPED()) return;
    if (!wb_ensure_attached()) return;
    size_t tw = t->size / WORD_SIZE;
    for (size_t j = 0; j < tw; j++) {
        if (!((t->ptrmask[j / 8] >> (j % 8)) & 1)) continue;
        wb_record(((uintptr_t *)dst)[j], src ? ((const uintptr_t *)src)[j] : 0);
    }
}

/* Out of line, so that the fast path of gm_store saves no register and
 * sets up no frame: a load, a branch, the store. */
__attribute__((noinline)) NOPREEMPT static void store_marking(void *slot, void *ptr)
{
    wb_slot(slot, ptr);
    *(void **)slot = ptr;
}

NOPREEMPT void gm_store(void *slot, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed))) {
        store_marking(slot, ptr);
        return;
    }
    *(void **)slot = ptr;
}

NOPREEMPT void gm_typed_memmove(const gm_type *t, void *dst, const void *src)
{
    if (dst == src || t->size == 0) return;
    if (t->ptrmask && GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_bulk(t, dst, src);
    memmove(dst, src, t->size);
}

NOPREEMPT void gm_typed_memclr(const gm_type *t, void *dst)
{
    if (t->size == 0) return;
    if (t->ptrmask && GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_bulk(t, dst, NULL);
    memset(dst, 0, t->size);
}

/* The atomic variants read the old value atomically for the barrier: another
 * thread may be storing into the slot at the same time.  Shading a value that
 * a racing store then replaces is harmless (one more object kept this cycle). */
NOPREEMPT static void wb_atomic(void *slot, void *ptr)
{
    if (WB_DROPPED()) return;
    if (!wb_ensure_attached()) return;
    wb_record((uintptr_t)atomic_load_explicit((_Atomic(void *) *)slot, memory_order_relaxed),
              (uintptr_t)ptr);
}

NOPREEMPT void gm_atomic_store(void *slot, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_atomic(slot, ptr);
    atomic_store((_Atomic(void *) *)slot, ptr);
}

NOPREEMPT void *gm_atomic_swap(void *slot, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_atomic(slot, ptr);
    return atomic_exchange((_Atomic(void *) *)slot, ptr);
}

NOPREEMPT bool gm_atomic_cas(void *slot, void *old, void *ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed)))
        wb_atomic(slot, ptr);
    return atomic_compare_exchange_strong((_Atomic(void *) *)slot, &old, ptr);
}
