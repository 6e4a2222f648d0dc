/* test_gc_eph.c - ephemerons: the value lives exactly while the key is
 * reachable other than through the value; both read NULL once the key
 * died; chains collected in one cycle; ephemerons made while marking;
 * a key resurrected by its finalizer; a concurrent stress.  Runs under
 * gccheckmark and clobberfree (CMakeLists.txt). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "gc/gc_fault.h"
#include "gc_util.h"

#define MAGIC 0x510e527fade682d1ull

static gm_ephemeron *eroot[64];   /* root range: ephemerons */
static node *kroot[64];           /* root range: keys held from outside */
static gm_weak *wroot[64];        /* root range: weak handles on values */

static void roots_on(void)
{
    memset(eroot, 0, sizeof eroot);
    memset(kroot, 0, sizeof kroot);
    memset(wroot, 0, sizeof wroot);
    gm_root_add(eroot, sizeof eroot);
    gm_root_add(kroot, sizeof kroot);
    gm_root_add(wroot, sizeof wroot);
}

static void roots_off(void)
{
    gm_root_remove(eroot);
    gm_root_remove(kroot);
    gm_root_remove(wroot);
}

/* value V -> key K (a back pointer); V's val is a checksum of K */
__attribute__((noinline)) static void make_pair(int i, bool hold_key)
{
    node *k = new_node(NULL, NULL, 1000 + (uint64_t)i);
    node *v = new_node(k, NULL, (uint64_t)(uintptr_t)k ^ MAGIC);
    gm_store(&eroot[i], gm_ephemeron_new(k, v));
    gm_store(&wroot[i], gm_weak_make(v));
    if (hold_key) gm_store(&kroot[i], k);
}

static bool pair_ok(int i)
{
    node *k = gm_ephemeron_key(eroot[i]);
    node *v = gm_ephemeron_value(eroot[i]);
    return k && v && v->left == k && v->val == ((uint64_t)(uintptr_t)k ^ MAGIC) && k->val == 1000 + (uint64_t)i;
}

TEST(value_lives_while_key_is_reachable)
{
    roots_on();
    make_pair(0, true);
    for (int c = 0; c < 3; c++) collect();
    CHECK(pair_ok(0));
    CHECK(gm_ephemeron_key(eroot[0]) == kroot[0]);
    CHECK(gm_weak_get(wroot[0]) != NULL);
    CHECK_EQ_U(gm_heap_verify(), 0);
    roots_off();
}

TEST(value_pointing_back_does_not_keep_the_key)
{
    roots_on();
    make_pair(0, false);
    collect();
    CHECK(gm_ephemeron_key(eroot[0]) == NULL);
    CHECK(gm_ephemeron_value(eroot[0]) == NULL);
    CHECK(gm_weak_get(wroot[0]) == NULL);      /* the value went with its key */
    CHECK_EQ_U(gm_heap_verify(), 0);
    roots_off();
}

TEST(dropping_the_key_later_clears)
{
    roots_on();
    for (int i = 0; i < 32; i++) make_pair(i, true);
    collect();
    for (int i = 0; i < 32; i++) CHECK(pair_ok(i));
    for (int i = 0; i < 32; i += 2) gm_store(&kroot[i], NULL);
    collect();
    for (int i = 0; i < 32; i++) {
        if (i % 2) CHECK_MSG(pair_ok(i), "i=%d", i);
        else CHECK_MSG(gm_ephemeron_key(eroot[i]) == NULL && gm_ephemeron_value(eroot[i]) == NULL, "i=%d", i);
    }
    roots_off();
}

TEST(null_key_reads_null)
{
    gm_ephemeron *e = gm_ephemeron_new(NULL, new_node(NULL, NULL, 1));
    CHECK(gm_ephemeron_key(e) == NULL && gm_ephemeron_value(e) == NULL);
    CHECK(gm_ephemeron_key(NULL) == NULL && gm_ephemeron_value(NULL) == NULL);
}

/* Chain: ephemeron i has key K[i] and value K[i+1]; the array holds them in
 * reverse order, so the fixpoint finds one more key per pass. */
#define CHAINLEN 40

__attribute__((noinline)) static void make_chain(bool hold_head)
{
    node *k[CHAINLEN + 1];
    for (int i = 0; i <= CHAINLEN; i++) k[i] = new_node(NULL, NULL, 7000 + (uint64_t)i);
    for (int i = 0; i < CHAINLEN; i++) {
        gm_store(&eroot[CHAINLEN - 1 - i], gm_ephemeron_new(k[i], k[i + 1]));
        gm_store(&wroot[i], gm_weak_make(k[i + 1]));
    }
    if (hold_head) gm_store(&kroot[0], k[0]);
    memset(k, 0, sizeof k);
}

TEST(live_chain_survives_through_the_fixpoint)
{
    roots_on();
    make_chain(true);
    collect();
    collect();
    node *k = kroot[0];
    for (int i = 0; i < CHAINLEN; i++) {
        gm_ephemeron *e = eroot[CHAINLEN - 1 - i];
        CHECK_MSG(gm_ephemeron_key(e) == k, "link %d", i);
        node *next = gm_ephemeron_value(e);
        CHECK_MSG(next && next->val == 7000 + (uint64_t)i + 1, "link %d", i);
        k = next;
    }
    CHECK_EQ_U(gm_heap_verify(), 0);
    roots_off();
}

TEST(dead_chain_collected_in_one_cycle)
{
    roots_on();
    make_chain(false);
    collect();                                   /* one cycle */
    int left = 0;
    for (int i = 0; i < CHAINLEN; i++) {
        left += gm_ephemeron_key(eroot[i]) != NULL || gm_ephemeron_value(eroot[i]) != NULL;
        left += gm_weak_get(wroot[i]) != NULL;
    }
    CHECK_EQ_U(left, 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
    roots_off();
}

/* ---- made while marking (black, never scanned) ------------------------------------- */

/* Made while marking (black: never scanned), with keys allocated before the
 * mark (white).  Key 1 is reachable only through a hidden word, so nothing
 * marks it: its ephemeron, waiting on the pending list, must be cleared at
 * the end of this very cycle; key 0 is held, so its value must survive. */
static uintptr_t hidden_key;

__attribute__((noinline)) static void make_white_keys(void)
{
    gm_store(&kroot[0], new_node(NULL, NULL, 1000));
    hidden_key = ~(uintptr_t)new_node(NULL, NULL, 1001);
}

__attribute__((noinline)) static void make_black_ephemerons(void)
{
    for (int i = 0; i < 2; i++) {
        node *k = i == 0 ? kroot[0] : (node *)~hidden_key;
        /* (a back pointer stored while marking would shade key 1: the barrier) */
        node *v = new_node(i == 0 ? k : NULL, NULL, (uint64_t)(uintptr_t)k ^ MAGIC);
        gm_store(&eroot[i], gm_ephemeron_new(k, v));
        gm_store(&wroot[i], gm_weak_make(v));
    }
}

TEST(ephemerons_made_while_marking)
{
    roots_on();
    make_white_keys();
    scrub_stack();
    gm_gc_fault_hold_mark(1);
    pthread_t th;
    pthread_create(&th, NULL, start_gc, NULL);
    wait_marking();
    make_black_ephemerons();
    scrub_stack();
    gm_gc_fault_hold_mark(0);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    CHECK(pair_ok(0));
    CHECK(gm_ephemeron_key(eroot[1]) == NULL && gm_ephemeron_value(eroot[1]) == NULL);
    collect();
    CHECK(pair_ok(0));
    CHECK(gm_weak_get(wroot[1]) == NULL);     /* value 1 (black last cycle) is gone now */
    CHECK_EQ_U(gm_heap_verify(), 0);
    roots_off();
}

/* ---- a key kept only by its own finalizer --------------------------------------------- */

static atomic_int fin_ran;
static void fin(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    atomic_fetch_add(&fin_ran, 1);
}

__attribute__((noinline)) static void make_finalizable_key(void)
{
    node *k = new_node(NULL, NULL, 1000);
    gm_set_finalizer(k, fin, NULL);
    gm_store(&eroot[0], gm_ephemeron_new(k, new_node(k, NULL, 5)));
}

TEST(finalizer_resurrection_does_not_revive_the_ephemeron)
{
    roots_on();
    gm_finalizers_on_demand(true);
    make_finalizable_key();
    collect();
    CHECK(gm_ephemeron_key(eroot[0]) == NULL && gm_ephemeron_value(eroot[0]) == NULL);
    CHECK_EQ_U(gm_run_finalizers(), 1);
    CHECK_EQ_U(atomic_load(&fin_ran), 1);
    gm_finalizers_on_demand(false);
    roots_off();
}

/* ---- concurrent stress ----------------------------------------------------------------- */

#define NE 512
static gm_ephemeron **stress_e;   /* GC arrays, in a root range */
static node **stress_k;
static void *stress_roots[2];
static atomic_int stop, bad;
static atomic_long ops;

static void *churner(void *arg)
{
    uint64_t seed = 77 + (uint64_t)(uintptr_t)arg;
    gm_thread_attach();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = test_rand(&seed);
        size_t i = r % NE;
        switch ((r >> 20) % 4) {
        case 0: {                                   /* a new pair, key held */
            node *k = new_node(NULL, NULL, i);
            node *v = new_node(k, NULL, (uint64_t)(uintptr_t)k ^ MAGIC);
            gm_store(&stress_e[i], gm_ephemeron_new(k, v));
            gm_store(&stress_k[i], k);
            break;
        }
        case 1:                                     /* drop the key */
            gm_store(&stress_k[i], NULL);
            break;
        default: {                                  /* a held key's value must be there */
            gm_ephemeron *e = stress_e[i];
            node *k = stress_k[i];
            if (e && k && gm_ephemeron_key(e) == k) {
                node *v = gm_ephemeron_value(e);
                if (!v || v->left != k || v->val != ((uint64_t)(uintptr_t)k ^ MAGIC))
                    atomic_fetch_add(&bad, 1);
            }
        }
        }
        atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
        gm_safepoint();
    }
    gm_thread_detach();
    return NULL;
}

/* Every surviving pair intact; returns how many keys are still held. */
__attribute__((noinline)) static long check_stress(void)
{
    long live = 0;
    for (size_t i = 0; i < NE; i++) {
        gm_ephemeron *e = stress_e[i];
        node *k = e ? gm_ephemeron_key(e) : NULL;
        if (!k) continue;
        node *v = gm_ephemeron_value(e);
        if (!v || v->left != k || v->val != ((uint64_t)(uintptr_t)k ^ MAGIC)) atomic_fetch_add(&bad, 1);
        live += stress_k[i] == k;
    }
    return live;
}

/* Ephemerons whose key is alive although nothing holds it. */
__attribute__((noinline)) static long count_stale(void)
{
    long stale = 0;
    for (size_t i = 0; i < NE; i++) {
        gm_ephemeron *e = stress_e[i];
        if (e && gm_ephemeron_key(e) && stress_k[i] != gm_ephemeron_key(e)) stale++;
    }
    return stale;
}

TEST(ephemerons_under_concurrent_marking)
{
    gm_root_add(stress_roots, sizeof stress_roots);
    stress_e = gm_new_array(&ptr_type, NE);
    stress_roots[0] = stress_e;
    stress_k = gm_new_array(&ptr_type, NE);
    stress_roots[1] = stress_k;
    pthread_t th;
    pthread_create(&th, NULL, churner, (void *)1);
    /* The churner must be at work during the cycles: on a loaded machine
     * the 40 cycles once ended before it first ran (ops == 0). */
    gm_blocking_begin();
    while (atomic_load(&ops) < 100) sched_yield();
    gm_blocking_end();
    long cycles = scaled(40), ops0 = atomic_load(&ops);
    for (long c = 0; c < cycles || atomic_load(&ops) < ops0 + 1000; c++) {
        for (int k = 0; k < 200; k++) new_node(NULL, NULL, 0);
        gm_gc();
    }
    atomic_store(&stop, 1);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    gm_gc();
    long live = check_stress();
    collect();                 /* keys dropped before the last cycle are gone now */
    long stale = count_stale();
    CHECK_EQ_U(atomic_load(&bad), 0);
    CHECK_EQ_U(stale, 0);
    CHECK(live > 0);
    CHECK(atomic_load(&ops) > 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
    gm_root_remove(stress_roots);
}
