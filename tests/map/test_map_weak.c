/* test_map_weak.c - weak-keyed GC maps (gm_map_new_weak): entries live
 * exactly while their key is reachable from outside the map's values;
 * values pointing back at their keys, chains between entries, iteration
 * that never returns a dead entry, values of a traced type, misuse, and
 * threads using one map while cycles run.  Under gccheckmark
 * (CMakeLists.txt). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "gomap/gc.h"
#include "gomap/map.h"

typedef struct obj { struct obj *ref; uint64_t id; } obj;
static const uint8_t obj_mask[] = { 0x1 };
static const gm_type obj_type = { sizeof(obj), 8, NULL, NULL, obj_mask, 0, "obj" };

/* the map's value: a pointer (back to a key, or onward) and a tag */
typedef struct val { obj *p; uint64_t tag; } val;
static const uint8_t val_mask[] = { 0x1 };
static const gm_type val_type = { sizeof(val), 8, NULL, NULL, val_mask, 0, "val" };

static obj *new_obj(uint64_t id)
{
    obj *o = gm_new(&obj_type);
    o->id = id;
    return o;
}

__attribute__((noinline, no_sanitize("address"))) static void scrub(void)
{
    volatile char buf[64 * 1024];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}
#define collect() (scrub(), gm_gc())

#define N 100
static gm_map *wm;
static obj *keys[N];          /* root range: the keys held from outside */
static uintptr_t hidden[N];   /* the keys' addresses, hidden from the collector */

static void roots_on(void)
{
    wm = NULL;
    memset(keys, 0, sizeof keys);
    gm_root_add(&wm, sizeof wm);
    gm_root_add(keys, sizeof keys);
}

static void roots_off(void)
{
    gm_root_remove(&wm);
    gm_root_remove(keys);
}

/* N entries: key i -> {back pointer to key i, tag i} */
__attribute__((noinline)) static void fill_back_pointers(void)
{
    gm_store(&wm, gm_map_new_weak(&gm_type_ptr, &val_type, 0));
    for (int i = 0; i < N; i++) {
        obj *k = new_obj((uint64_t)i);
        gm_store(&keys[i], k);
        hidden[i] = ~(uintptr_t)k;
        val v = { k, (uint64_t)i * 3 };
        gm_map_put(wm, &k, &v);
    }
}

__attribute__((noinline)) static bool entry_ok(int i)
{
    obj *k = keys[i];
    val *v = gm_map_get(wm, &k);
    return v && v->p == k && v->tag == (uint64_t)i * 3;
}

TEST(weak_map_basics)
{
    roots_on();
    fill_back_pointers();
    CHECK_EQ_U(gm_map_len(wm), N);
    for (int i = 0; i < N; i++) CHECK(entry_ok(i));
    CHECK(gm_map_check(wm) == NULL);
    /* overwrite, assign, delete, get_or_zero */
    obj *k0 = keys[0];
    val nv = { NULL, 42 };
    gm_map_put(wm, &k0, &nv);
    CHECK(((val *)gm_map_get(wm, &k0))->tag == 42);
    val *slot = gm_map_assign(wm, &k0);
    CHECK(slot && slot->tag == 42);
    CHECK(gm_map_delete(wm, &k0));
    CHECK(!gm_map_delete(wm, &k0));
    CHECK(gm_map_get(wm, &k0) == NULL);
    const val *z = gm_map_get_or_zero(wm, &k0);
    CHECK(z && z->p == NULL && z->tag == 0);
    CHECK_EQ_U(gm_map_len(wm), N - 1);
    CHECK(gm_map_key_type(wm) == &gm_type_ptr && gm_map_val_type(wm) == &val_type);
    gm_map *c = gm_map_clone(wm);
    CHECK_EQ_U(gm_map_len(c), N - 1);
    gm_map_clear(wm);
    CHECK_EQ_U(gm_map_len(wm), 0);
    CHECK(gm_map_get(c, &keys[5]) != NULL);
    roots_off();
}

TEST(entries_whose_values_point_back_die_with_their_keys)
{
    roots_on();
    fill_back_pointers();
    collect();
    CHECK_EQ_U(gm_map_len(wm), N);            /* all keys held */
    for (int i = 0; i < N; i += 2) gm_store(&keys[i], NULL);
    collect();
    CHECK_EQ_U(gm_map_len(wm), N / 2);        /* the back pointers kept nothing */
    for (int i = 1; i < N; i += 2) CHECK_MSG(entry_ok(i), "i=%d", i);
    for (int i = 0; i < N; i += 2) {
        uintptr_t a = ~hidden[i];              /* a dead key's address, maybe reused */
        CHECK(gm_map_get(wm, &a) == NULL);
    }
    /* iteration: exactly the held keys, each once */
    bool seen[N] = { false };
    gm_map_iter it;
    const void *k;
    void *v;
    long n = 0;
    gm_map_iter_init(&it, wm);
    while (gm_map_iter_next(&it, &k, &v)) {
        obj *key = *(obj *const *)k;
        CHECK(key && key->id < N && key->id % 2 == 1 && !seen[key->id]);
        if (key && key->id < N) seen[key->id] = true;
        CHECK(((val *)v)->p == key);
        n++;
    }
    CHECK_EQ_U(n, N / 2);
    CHECK(gm_map_check(wm) == NULL);
    roots_off();
}

/* value of entry i points at key i+1: only key 0 is held from outside */
__attribute__((noinline)) static void fill_chain(void)
{
    gm_store(&wm, gm_map_new_weak(&gm_type_ptr, &val_type, 0));
    obj *prev = NULL;
    for (int i = N - 1; i >= 0; i--) {
        obj *k = new_obj((uint64_t)i);
        val v = { prev, (uint64_t)i };
        gm_map_put(wm, &k, &v);
        prev = k;
    }
    gm_store(&keys[0], prev);
}

/* Follows the chain from key 0; returns its length if every link is right.
 * Not inlined: the keys it touches stay out of the test's own frame, which
 * the collector scans conservatively. */
__attribute__((noinline)) static int walk_chain(void)
{
    obj *k = keys[0];
    for (int i = 0; i < N; i++) {
        val *v = gm_map_get(wm, &k);
        if (v == NULL || k->id != (uint64_t)i) return -1;
        k = v->p;
    }
    return k == NULL ? N : -1;
}

TEST(chain_through_values_lives_and_dies_whole)
{
    roots_on();
    fill_chain();
    collect();
    CHECK_EQ_U(gm_map_len(wm), N);
    CHECK_EQ_U(walk_chain(), N);
    gm_store(&keys[0], NULL);
    collect();                                 /* one cycle */
    CHECK_EQ_U(gm_map_len(wm), 0);
    roots_off();
}

/* ---- values of a traced type ------------------------------------------------------------- */

#define TAG_PTR 0xfffc000000000000ull
typedef struct boxed { uint64_t w; } boxed;   /* a NaN-boxed pointer */
static void boxed_trace(const void *o, gm_visit_fn *visit, void *ctx)
{
    uint64_t w = __atomic_load_n(&((const boxed *)o)->w, __ATOMIC_RELAXED);
    if ((w >> 48) == (TAG_PTR >> 48)) visit((void *)(uintptr_t)(w & 0xffffffffffffull), ctx);
}
static const gm_type boxed_type = { sizeof(boxed), 8, NULL, NULL, NULL, 0, "boxed", boxed_trace };

__attribute__((noinline)) static void fill_boxed(void)
{
    gm_store(&wm, gm_map_new_weak(&gm_type_ptr, &boxed_type, 0));
    for (int i = 0; i < 2; i++) {
        obj *k = new_obj((uint64_t)i);
        gm_store(&keys[i], k);
        obj *payload = new_obj(500 + (uint64_t)i);
        payload->ref = k;                          /* back to the key, through the payload */
        boxed b = { (uint64_t)(uintptr_t)payload | TAG_PTR };
        gm_map_put(wm, &k, &b);
    }
}

TEST(traced_values_keep_payloads_but_not_keys)
{
    roots_on();
    fill_boxed();
    gm_store(&keys[1], NULL);
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < 20000; i++) new_obj(0);   /* reuse freed memory */
        collect();
    }
    CHECK_EQ_U(gm_map_len(wm), 1);
    obj *k = keys[0];
    boxed *b = gm_map_get(wm, &k);
    REQUIRE(b != NULL);
    obj *payload = (obj *)(uintptr_t)(b->w & 0xffffffffffffull);
    CHECK(payload->id == 500 && payload->ref == k);
    roots_off();
}

/* ---- misuse -------------------------------------------------------------------------------- */

static void static_key(void *arg)
{
    (void)arg;
    static obj not_heap;
    gm_map *m = gm_map_new_weak(&gm_type_ptr, &val_type, 0);
    obj *k = &not_heap;
    val v = { 0 };
    gm_map_put(m, &k, &v);
}

TEST(weak_map_misuse)
{
    CHECK(expect_abort_with(static_key, NULL, "is not a pointer into a GC object"));
    errno = 0;
    CHECK(gm_map_new_weak(&gm_type_u32, &val_type, 0) == NULL && errno == EINVAL);
    /* a plain GC map cannot hold a traced type: its buckets are scanned by mask */
    errno = 0;
    CHECK(gm_map_new_gc(&gm_type_u64, &boxed_type, 0) == NULL && errno == EINVAL);
}

/* ---- threads and cycles ------------------------------------------------------------------- */

#define TN 256
static gm_map *shared_wm;
static obj *tkeys[2][TN];
static atomic_int tstop, tbad;
static atomic_long tops;

static void *worker(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t seed = 99 + (uint64_t)me;
    gm_thread_attach();
    while (!atomic_load_explicit(&tstop, memory_order_relaxed)) {
        uint64_t r = test_rand(&seed);
        int i = (int)(r % TN);
        obj **slot = &tkeys[me][i];
        switch ((r >> 16) % 4) {
        case 0: {
            obj *k = new_obj((uint64_t)me << 32 | (uint64_t)i);
            val v = { k, (uint64_t)(uintptr_t)k };
            gm_map_put(shared_wm, &k, &v);
            gm_store(slot, k);
            break;
        }
        case 1:
            gm_store(slot, NULL);
            break;
        default: {
            obj *k = *slot;
            if (!k) break;
            val *v = gm_map_get(shared_wm, &k);
            if (!v || v->p != k || v->tag != (uint64_t)(uintptr_t)k) atomic_fetch_add(&tbad, 1);
        }
        }
        atomic_fetch_add_explicit(&tops, 1, memory_order_relaxed);
        gm_safepoint();
    }
    gm_thread_detach();
    return NULL;
}

__attribute__((noinline)) static long count_held(void)
{
    long n = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < TN; i++) n += tkeys[t][i] != NULL;
    return n;
}

/* The entries whose key no slot holds (for the failure message). */
static const char *extra_entries(void)
{
    static char buf[256];
    size_t o = 0;
    buf[0] = 0;
    gm_map_iter it;
    const void *k;
    void *v;
    gm_map_iter_init(&it, shared_wm);
    while (gm_map_iter_next(&it, &k, &v)) {
        obj *key = *(obj *const *)k;
        bool held = false;
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < TN; i++) held |= tkeys[t][i] == key;
        if (!held && o < sizeof buf - 40)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "[thread %d slot %d] ", (int)(key->id >> 32),
                                  (int)(key->id & 0xffffffff));
    }
    return buf;
}

TEST(weak_map_shared_by_threads_while_collecting)
{
    gm_root_add(&shared_wm, sizeof shared_wm);
    gm_root_add(tkeys, sizeof tkeys);
    gm_store(&shared_wm, gm_map_new_weak(&gm_type_ptr, &val_type, 0));
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
    long cycles = (long)(30 * test_scale()) + 1;
    /* at least `cycles` collections, and until the workers have done some
     * operations (a fast build can finish two cycles before they start) */
    for (long c = 0; c < cycles || (atomic_load(&tops) == 0 && c < 100000); c++) {
        (void)gm_map_len(shared_wm);
        gm_gc();
    }
    atomic_store(&tstop, 1);
    gm_blocking_begin();
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    for (int c = 0; c < 6; c++) collect();
    CHECK_EQ_U(atomic_load(&tbad), 0);
    CHECK(atomic_load(&tops) > 0);
    /* The held keys remain (each put a fresh key: distinct entries), and of
     * the dropped ones at most a couple: stacks and saved registers are
     * scanned conservatively, and a stale word there (a collector thread's
     * register after its last scan, a purge's copy of an address since
     * reused) keeps a dropped key as it would keep any object. */
    size_t len = gm_map_len(shared_wm), held = (size_t)count_held();
    CHECK_MSG(len >= held && len <= held + 2, "%zu entries, %zu keys held; extra: %s", len, held,
              extra_entries());
    CHECK(gm_map_check(shared_wm) == NULL);
    gm_root_remove(&shared_wm);
    gm_root_remove(tkeys);
}
