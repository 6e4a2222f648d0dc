/* trace_fn.c - types with a trace function, gm_barrier, and the object
 * queries a language runtime asks (gm_base, gm_size, gm_heap_live).
 *
 * WHY.  A ptrmask fixes at allocation which words are pointers.  A tagged
 * value (a Scheme fixnum-or-pointer word, a NaN-boxed double, a pointer
 * with a tag in its high bits) is a pointer only when its tag says so, and
 * a high-bit-tagged pointer does not even point into the heap.  A type with
 * a trace function hands the decoding to its owner: the collector calls
 * trace(elem, visit, ctx) and trace reports each pointer it decodes.
 *
 * WHERE THE TYPE IS KEPT.  Large objects already record type and length in
 * their span (alloc.c); scan_object calls gc_trace_object for them when the
 * type has a trace function.  Small objects share spans across types, and
 * their heap bits can only say "pointer / not pointer" per word.  So a small
 * traced object gets all-zero heap bits, and its span a per-object array of
 * 16-bit type ids (otypes, GC_MAX_OBJS entries = 2 KiB, made the first time
 * a traced object lands in the span and kept with the span structure, as
 * heap bits are).  Id 0 means "not traced: read the heap bits".  Ids index
 * gc_traced_types, filled once per type at its first allocation (a
 * registry: an open-addressing table of 2^17 slots, written under reg_mu,
 * read without a lock; a one-entry per-thread cache in front).  At most
 * GC_MAX_TRACED_TYPES types can have a trace function (fatal beyond).  The
 * id arrays survive the reuse of a span structure (pageheap.c keeps them,
 * span_init_small zeroes them); they are not yet counted in MemStats'
 * gc_sys.
 * Invariant: for every allocated object i of a small scan span,
 * otypes == NULL or otypes[i] is the id of its type if traced, else 0; the
 * allocating thread writes it before the object's address leaves
 * mallocgc, and a span's ids are zeroed when it is (re)initialised.
 *
 * CONCURRENT MARKING.  A marker reads otypes[i] of an object allocated
 * before the mark began (written before the stop that started it), or of
 * one allocated black during the mark (never scanned).  The trace function
 * reads the object while mutators write it, exactly as the mask scanner
 * does; what makes that safe is the barrier: a store the collector cannot
 * decode (the caller encodes the word itself) is announced with
 * gm_barrier(old, new), which shades both while marking (the same buffered
 * hybrid barrier gm_store uses, so the weak tri-colour argument of mark.c
 * carries over word for word).  Arrays: small ones are traced over
 * elemsize / size elements (the tail beyond n is zeroed memory: trace must
 * accept zeroed elements); large ones over the recorded length.  The
 * checkmark re-mark scans through the same path, so it verifies traced
 * objects as precisely as masked ones.
 */
#include "gc/gc_internal.h"
#include "gc/gc_fault.h"

#include <stdlib.h>
#include <string.h>

const gm_type *gc_traced_types[GC_MAX_TRACED_TYPES + 1];
_Atomic int gc_checkmarking_a;

#define REG_BITS 17
#define REG_SLOTS ((size_t)1 << REG_BITS)
static _Atomic(const gm_type *) reg_type[REG_SLOTS];
static uint16_t reg_id[REG_SLOTS];
static uint32_t ntraced;                      /* under reg_mu */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const gm_type *cache_t;
static _Thread_local uint16_t cache_id;

/* The registry holds type descriptors, never heap objects: not a root (1.8 MiB
 * of bss that every cycle would otherwise scan and diff, globals.c). */
void gc_trace_fn_exclude_globals(void)
{
    gc_globals_exclude(gc_traced_types, sizeof gc_traced_types);
    gc_globals_exclude(reg_type, sizeof reg_type);
    gc_globals_exclude(reg_id, sizeof reg_id);
}

static size_t reg_hash(const gm_type *t)
{
    return (size_t)(((uint64_t)(uintptr_t)t * 0x9e3779b97f4a7c15ull) >> (64 - REG_BITS));
}

__attribute__((noinline)) static uint16_t type_id_slow(const gm_type *t)
{
    size_t i = reg_hash(t);
    for (;; i = (i + 1) & (REG_SLOTS - 1)) {
        const gm_type *p = atomic_load_explicit(&reg_type[i], memory_order_acquire);
        if (p == t) return reg_id[i];
        if (p == NULL) break;
    }
    pthread_mutex_lock(&reg_mu);
    for (i = reg_hash(t);; i = (i + 1) & (REG_SLOTS - 1)) {
        const gm_type *p = atomic_load_explicit(&reg_type[i], memory_order_relaxed);
        if (p == t) break;                   /* registered meanwhile */
        if (p != NULL) continue;
        if (ntraced == GC_MAX_TRACED_TYPES) {
            pthread_mutex_unlock(&reg_mu);
            gm_fatal("gm_new: more than 65535 types with a trace function");
        }
        uint16_t id = (uint16_t)++ntraced;
        __atomic_store_n(&gc_traced_types[id], t, __ATOMIC_RELEASE);
        reg_id[i] = id;
        atomic_store_explicit(&reg_type[i], t, memory_order_release);
        break;
    }
    uint16_t id = reg_id[i];
    pthread_mutex_unlock(&reg_mu);
    return id;
}

static inline uint16_t type_id(const gm_type *t)
{
    if (t == cache_t) return cache_id;
    uint16_t id = type_id_slow(t);
    cache_t = t;
    cache_id = id;
    return id;
}

void gc_otype_note(gc_span *s, uint32_t idx, const gm_type *t)
{
    uint16_t id = t ? type_id(t) : 0;
    uint16_t *o = s->otypes;
    if (o == NULL) {
        if (id == 0) return;
        o = calloc(GC_MAX_OBJS, sizeof *o);
        if (o == NULL) gm_fatal("runtime: out of memory (traced type ids)");
        s->otypes_cap = GC_MAX_OBJS;
        __atomic_store_n(&s->otypes, o, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&o[idx], id, __ATOMIC_RELAXED);
}

void gc_otypes_reset(gc_span *s)
{
    if (s->otypes) memset(s->otypes, 0, (size_t)s->otypes_cap * sizeof *s->otypes);
}

static void visit(void *p, void *ctx) { gc_shade_into(ctx, (uintptr_t)p); }

void gc_trace_object(gc_workbuf *w, uintptr_t base, const gm_type *t, size_t count)
{
    for (size_t e = 0; e < count; e++) t->trace((const void *)(base + e * t->size), visit, w);
}

/* The barrier for a slot the collector cannot decode: gm_store on a slot
 * that holds old gives the hybrid barrier's two shades (and honours the
 * fault switch that drops it). */
void gm_barrier(const void *old_ptr, const void *new_ptr)
{
    if (GM_UNLIKELY(atomic_load_explicit(&gc_wb_enabled_a, memory_order_relaxed))) {
        void *slot = (void *)old_ptr;
        gm_store(&slot, (void *)new_ptr);
    }
}

#ifdef GOMAP_FAULT_INJECTION
int gm_gc_fault_checkmarking(void) { return atomic_load_explicit(&gc_checkmarking_a, memory_order_relaxed); }
#endif

/* ---- object queries --------------------------------------------------------------- */

/* The allocated object holding p: its span is swept first (the sweeper may
 * be rewriting its alloc bits), as special.c's lookups do. */
static uintptr_t object_of(const void *p, gc_span **sp)
{
    if (!atomic_load_explicit(&gc_inited_a, memory_order_acquire)) return 0;
    gc_span *s = gc_span_of((uintptr_t)p);
    if (s == NULL) return 0;
    gc_ensure_swept(s);
    uint32_t i;
    uintptr_t base = gc_find_object((uintptr_t)p, &s, &i);
    *sp = s;
    return base;
}

void *gm_base(const void *p)
{
    gc_span *s;
    return (void *)object_of(p, &s);
}

size_t gm_size(const void *p)
{
    gc_span *s;
    if (!object_of(p, &s)) return 0;
    return s->sizeclass ? s->elemsize : s->npages * GC_PAGE_SIZE;
}

uint64_t gm_heap_live(void)
{
    gc_ensure_init();
    return atomic_load_explicit(&gc_heap_live_a, memory_order_relaxed);
}
