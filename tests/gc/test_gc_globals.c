/* test_gc_globals.c - the data and bss segments as roots (src/gc/globals.c):
 * objects held only by unregistered statics of the test executable or of a
 * dlopen'd library survive concurrent cycles, also while threads move them
 * between globals with plain stores during the mark; GMDEBUG=scanglobals=0
 * restores the old behaviour (such an object is collected).  Run under
 * gccheckmark=1 (CMakeLists.txt) with each way termination finds stores
 * into globals: the snapshot diff (default), whole rescans (globalsterm=0),
 * soft-dirty bits (globalsterm=2, where the kernel has them). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc/gc_internal.h"
#include "gc_util.h"

#define MAGIC 0x510e527fade682d1ull

static inline uint64_t sum_of(const node *n) { return (uint64_t)(uintptr_t)n ^ MAGIC; }
static bool intact(const node *n) { return n == NULL || n->val == sum_of(n); }

/* A node with a child, both checksummed. */
static node *fresh_pair(void)
{
    node *c = new_node(NULL, NULL, 0);
    c->val = sum_of(c);
    node *n = new_node(c, NULL, 0);
    n->val = sum_of(n);
    return n;
}
static bool pair_intact(const node *n) { return intact(n) && (n == NULL || intact(n->left)); }

static bool scanglobals_off(void)
{
    const char *d = getenv("GMDEBUG");
    return d && strstr(d, "scanglobals=0");
}

/* ---- a static of the executable ---------------------------------------------------- */

static node *only_here;            /* never registered with gm_root_add */

__attribute__((noinline)) static gm_weak *park_in_static(void)
{
    node *n = fresh_pair();
    only_here = n;                 /* a plain store, as a Boehm user writes it */
    return gm_weak_make(n);
}

/* With scanglobals on (the default) the object lives; with scanglobals=0
 * it is collected (this case runs under both, see CMakeLists.txt). */
TEST(static_global_is_a_root)
{
    gm_weak *w = park_in_static();
    for (int i = 0; i < 3; i++) collect();
    if (scanglobals_off()) {
        CHECK(gm_weak_get(w) == NULL);
        return;
    }
    CHECK(gm_weak_get(w) == only_here);
    CHECK(pair_intact(only_here));
    only_here = NULL;
    collect();
    collect();
    CHECK(gm_weak_get(w) == NULL);      /* and it is not kept once the global lets go */
}

/* ---- a static of a library loaded after the collector started ------------------------ */

typedef void (*set_fn)(void *);
typedef void *(*get_fn)(void);
typedef void (*set_at_fn)(unsigned, void *);
typedef void *(*get_at_fn)(unsigned);

static void *open_lib(void)
{
    void *h = dlopen(GLOBALS_LIB_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!h) fprintf(stderr, "dlopen: %s\n", dlerror());
    return h;
}

__attribute__((noinline)) static gm_weak *park_in_lib(set_fn set)
{
    node *n = fresh_pair();
    set(n);
    return gm_weak_make(n);
}

TEST(dlopened_library_global_is_a_root)
{
    collect();                          /* the segment list exists before the library */
    void *h = open_lib();
    REQUIRE(h);
    set_fn set = (set_fn)dlsym(h, "globals_lib_set");
    get_fn get = (get_fn)dlsym(h, "globals_lib_get");
    REQUIRE(set && get);
    gm_weak *w = park_in_lib(set);
    for (int i = 0; i < 3; i++) collect();
    if (scanglobals_off()) {
        CHECK(gm_weak_get(w) == NULL);
        return;
    }
    node *n = get();
    CHECK(gm_weak_get(w) == n);
    CHECK(pair_intact(n));
    set(NULL);
}

/* ---- plain stores into globals while the mark runs ------------------------------------ */

#define NG 8192                          /* 64 KiB of pointers in the executable's bss */
static node *gslots[NG];
static atomic_int stop_threads, bad;
static atomic_long moves;

struct mover { int id; set_at_fn lset; get_at_fn lget; };

/* Moves nodes between the executable's globals, the library's globals and
 * the stack with plain stores; replaces some with fresh ones (garbage). */
static void *mover(void *arg)
{
    struct mover *m = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(m->id + 1);
    unsigned lo = (unsigned)m->id * (NG / 2), span = NG / 2;
    node *held[4] = {0};
    gm_thread_attach();
    while (!atomic_load(&stop_threads)) {
        for (int k = 0; k < 256; k++) {
            unsigned a = lo + (unsigned)(test_rand(&seed) % span);
            unsigned b = lo + (unsigned)(test_rand(&seed) % span);
            unsigned r = (unsigned)test_rand(&seed);
            node *t = gslots[a];
            if (!pair_intact(t)) atomic_fetch_add(&bad, 1);
            switch (r % 5) {
            case 0: gslots[a] = gslots[b]; gslots[b] = t; break;           /* swap */
            case 1: {                                                      /* via the stack */
                node *s = held[r % 4];
                held[r % 4] = t;
                gslots[a] = s;
                break;
            }
            case 2:                                                        /* via the library */
                if (m->lset) {
                    unsigned li = (unsigned)m->id * 512 + (r >> 8) % 512;
                    node *l = m->lget(li);
                    if (!pair_intact(l)) atomic_fetch_add(&bad, 1);
                    m->lset(li, t);
                    gslots[a] = l;
                }
                break;
            case 3: gslots[a] = fresh_pair(); break;                       /* t is garbage */
            default: gslots[b] = t; gslots[a] = NULL; break;               /* move */
            }
        }
        for (int i = 0; i < 4; i++)
            if (!pair_intact(held[i])) atomic_fetch_add(&bad, 1);
        atomic_fetch_add(&moves, 256);
        gm_safepoint();
    }
    for (int i = 0; i < 4; i++) {                                          /* back into globals */
        unsigned a = lo + (unsigned)i;
        if (!gslots[a]) gslots[a] = held[i];
    }
    gm_thread_detach();
    return NULL;
}

TEST(plain_stores_into_globals_during_marks)
{
    if (scanglobals_off()) return;      /* the old contract: not roots at all */
    void *h = open_lib();
    REQUIRE(h);
    struct mover ms[2];
    for (int i = 0; i < 2; i++)
        ms[i] = (struct mover){ i, (set_at_fn)dlsym(h, "globals_lib_set_at"),
                                (get_at_fn)dlsym(h, "globals_lib_get_at") };
    REQUIRE(ms[0].lset && ms[0].lget);
    for (unsigned i = 0; i < NG; i += 2) gslots[i] = fresh_pair();
    for (unsigned i = 0; i < 1024; i += 3) ms[0].lset(i, fresh_pair());
    atomic_store(&stop_threads, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, mover, &ms[i]);
    long cycles = scaled(40);
    for (long c = 0; c < cycles; c++) gm_gc();     /* concurrent cycles, checkmark after each */
    atomic_store(&stop_threads, 1);
    gm_blocking_begin();
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    gm_blocking_end();
    collect();
    for (unsigned i = 0; i < NG; i++) CHECK(pair_intact(gslots[i]));
    for (unsigned i = 0; i < 1024; i++) CHECK(pair_intact(ms[0].lget(i)));
    CHECK_EQ_U(atomic_load(&bad), 0);
    CHECK(atomic_load(&moves) > 0);
    gc_globals_info gi;
    gc_globals_stats(&gi);
    CHECK(gi.bytes >= sizeof gslots);
    const char *d = getenv("GMDEBUG");
    if (d && strstr(d, "globalsterm=2") && gi.soft_dirty) {
        CHECK(gi.tracking);                    /* termination took only written pages */
        CHECK(gi.dirty_pages_scanned > 0);
    } else if (!(d && strstr(d, "globalsterm=")) && !scanglobals_off()) {
        CHECK(gi.diffing);                     /* the default: the snapshot diff */
        CHECK(gi.diff_words > 0);              /* which found the movers' stores */
    }
    memset(gslots, 0, sizeof gslots);
}

/* The segment list covers this file's bss and excludes gomap's own tables. */
TEST(segments_cover_bss_not_gomap_tables)
{
    collect();
    gc_globals_info gi;
    gc_globals_stats(&gi);
    if (scanglobals_off()) {
        CHECK_EQ_U(gi.bytes, 0);
        return;
    }
    CHECK(gi.segments > 0);
    CHECK(gi.bytes >= sizeof gslots);
    CHECK_EQ_U(gc_globals_check(), 0);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* gctrace's "MB globals" counts the segments: this file's 64 KiB plus a
 * 3 MiB array of its own. */
static volatile char big_bss[3 << 20];

TEST(gctrace_counts_globals)
{
    if (scanglobals_off()) return;
    big_bss[0] = 1;
    char cmd[512];
    const char *d = getenv("GMDEBUG");
    snprintf(cmd, sizeof cmd, "GMDEBUG=%s%sgctrace=1 /proc/%d/exe gctrace_child 2>&1",
             d ? d : "", d ? "," : "", (int)getpid());
    FILE *f = popen(cmd, "r");
    REQUIRE(f);
    char line[512];
    long mb = -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, " MB globals");
        if (!p) continue;
        while (p > line && p[-1] >= '0' && p[-1] <= '9') p--;
        mb = strtol(p, NULL, 10);
    }
    pclose(f);
    CHECK_MSG(mb >= 3, "MB globals = %ld", mb);
}

TEST(gctrace_child)
{
    big_bss[1] = 1;
    gm_gc();
}
