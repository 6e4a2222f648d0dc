/* test_gc_oom.c - running out of memory: gm_try_* return NULL, the hard heap
 * limit (gm_set_max_heap, GMDEBUG=heaplimit=), the out-of-memory handler,
 * the address-space reservation as a setting (gm_set_heap_reserve,
 * GMDEBUG=heapreserve=), and the messages for bad settings.
 *
 * The reservation is fixed when the heap is made, so those cases run this
 * program again (/proc/self/exe) with GOMAP_OOM_SUB naming a scenario that a
 * constructor runs before main, in a fresh process. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gc_util.h"

/* a 1 KiB object whose first word points to the next */
typedef struct blob { struct blob *next; uint64_t pad[127]; } blob;
static const uint8_t blob_mask[128 / 8] = { 0x1 };
static const gm_type blob_type = { sizeof(blob), 8, NULL, NULL, blob_mask, 0, "blob" };

static blob *chain[1];                  /* a root range */

static long fill_until_null(long max)
{
    long n = 0;
    for (; n < max; n++) {
        errno = 0;
        blob *b = gm_try_new(&blob_type);
        if (!b) break;
        gm_store(&b->next, chain[0]);
        b->pad[0] = (uint64_t)n;
        gm_store(&chain[0], b);
    }
    return n;
}

static bool chain_intact(long n)
{
    blob *b = chain[0];
    for (long i = n - 1; i >= 0; i--, b = b->next)
        if (!b || b->pad[0] != (uint64_t)i) return false;
    return b == NULL;
}

TEST(try_new_returns_null_at_the_heap_limit)
{
    gm_root_add(chain, sizeof chain);
    gm_gc();
    uint64_t base = stats()->heap_inuse;
    int64_t limit = (int64_t)base + (32 << 20);
    CHECK_EQ_U(gm_set_max_heap(limit), INT64_MAX);
    CHECK_EQ_U(gm_set_max_heap(-1), limit);
    long n = fill_until_null(1 << 20);
    CHECK_MSG(n > 16000 && n < 40000, "%ld KiB objects under a 32 MiB limit", n);
    CHECK_EQ_U(errno, ENOMEM);
    gm_memstats *m = stats();
    CHECK_MSG(m->heap_inuse <= (uint64_t)limit, "in use %llu, limit %lld",
              (unsigned long long)m->heap_inuse, (long long)limit);
    /* the heap after a NULL: intact, sound, and usable again */
    CHECK(chain_intact(n));
    CHECK_EQ_U(gm_heap_verify(), 0);
    CHECK(gm_try_alloc_noscan(64 << 20) == NULL);         /* large, past the limit */
    CHECK(gm_try_alloc_conservative(64 << 20) == NULL);
    CHECK(gm_try_new_array(&blob_type, SIZE_MAX / 512) == NULL);   /* size overflow */
    gm_store(&chain[0], NULL);
    scrub_stack();                                         /* no stale copy of the head */
    CHECK(gm_try_new(&blob_type) != NULL);                 /* its collection freed the chain */
    CHECK(gm_try_alloc_noscan(16 << 20) != NULL);
    gm_set_max_heap(INT64_MAX);
    CHECK(gm_try_alloc_noscan(64 << 20) != NULL);
    gm_root_remove(chain);
}

static void fill_with_gm_new(void *arg)
{
    (void)arg;
    gm_root_add(chain, sizeof chain);
    gm_set_max_heap((int64_t)stats()->heap_inuse + (16 << 20));
    for (;;) {
        blob *b = gm_new(&blob_type);
        gm_store(&b->next, chain[0]);
        gm_store(&chain[0], b);
    }
}

TEST(new_past_the_heap_limit_is_fatal)
{
    CHECK(expect_abort_with(fill_with_gm_new, NULL,
                            "fatal error: runtime: out of memory: allocating 1024 bytes would take the "
                            "heap in use ("));
    CHECK(expect_abort_with(fill_with_gm_new, NULL, "(GMDEBUG=heaplimit, gm_set_max_heap)\n"));
}

/* The handler lets go of a reserve and asks for a retry. */
static void *reserve_slot[1];
static atomic_int handler_calls;
static size_t handler_request;

static int let_go(size_t request, void *arg)
{
    atomic_fetch_add(&handler_calls, 1);
    handler_request = request;
    gm_store(arg, NULL);
    return 1;
}

__attribute__((noinline)) static void take_reserve(void)
{
    gm_store(&reserve_slot[0], gm_alloc_noscan(32 << 20));
}

TEST(oom_handler_frees_and_the_allocation_succeeds)
{
    gm_root_add(reserve_slot, sizeof reserve_slot);
    gm_gc();
    gm_set_max_heap((int64_t)stats()->heap_inuse + (40 << 20));
    take_reserve();
    scrub_stack();
    gm_set_oom_handler(let_go, &reserve_slot[0]);
    void *p = gm_new_array(&blob_type, 16 << 10);            /* 16 MiB: only after the reserve goes */
    CHECK(p != NULL);
    CHECK_EQ_U(atomic_load(&handler_calls), 1);
    CHECK_EQ_U(handler_request, (size_t)16 << 20);
    CHECK(reserve_slot[0] == NULL);
    /* a handler that cannot help: NULL for try, after one call */
    gm_set_oom_handler(let_go, &reserve_slot[0]);
    CHECK(gm_try_alloc_noscan(64 << 20) == NULL);
    CHECK_EQ_U(atomic_load(&handler_calls), 2);
    gm_set_oom_handler(NULL, NULL);
    CHECK(gm_try_alloc_noscan(64 << 20) == NULL);
    CHECK_EQ_U(atomic_load(&handler_calls), 2);
    gm_keep_alive(p);
    gm_set_max_heap(INT64_MAX);
    gm_root_remove(reserve_slot);
    CHECK_EQ_U(gm_heap_verify(), 0);
}

/* ---- settings that need a fresh process ---------------------------------------------- */

/* Runs this program with GOMAP_OOM_SUB=sub and GMDEBUG=gmdebug; returns its
 * exit status (as waitpid) and its stderr in buf. */
static int run_sub(const char *sub, const char *gmdebug, char *buf, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        setenv("GOMAP_OOM_SUB", sub, 1);
        if (gmdebug) setenv("GMDEBUG", gmdebug, 1);
        else unsetenv("GMDEBUG");
        execl("/proc/self/exe", "test_gc_oom", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static bool sub_ok(const char *sub, const char *gmdebug, const char *needle)
{
    char buf[4096];
    int st = run_sub(sub, gmdebug, buf, sizeof buf);
    bool ok = strstr(buf, needle) != NULL;
    if (!ok) fprintf(stderr, "sub %s (GMDEBUG=%s): status %#x, stderr:\n%s\n", sub,
                     gmdebug ? gmdebug : "", st, buf);
    return ok;
}

/* the scenarios, in the fresh process */
static void sub_reserve_env(void)
{
    void *a = gm_try_alloc_noscan((size_t)192 << 20);       /* fits 256 MiB */
    void *b = gm_try_alloc_noscan((size_t)128 << 20);       /* does not */
    fprintf(stderr, "sub: a %s, b %s\n", a ? "ok" : "NULL", b ? "ok" : "NULL");
    gm_keep_alive(a);
    gm_alloc_noscan((size_t)128 << 20);                      /* fatal, naming the setting */
}

static void sub_reserve_api(void)
{
    int rc = gm_set_heap_reserve((size_t)128 << 20);
    int again = gm_set_heap_reserve((size_t)128 << 20);      /* still before the heap: fine */
    int bad = gm_set_heap_reserve(1 << 20);                  /* below the minimum */
    void *a = gm_try_alloc_noscan((size_t)96 << 20);
    void *b = gm_try_alloc_noscan((size_t)64 << 20);
    int late = gm_set_heap_reserve((size_t)1 << 30);
    fprintf(stderr, "sub: rc %d again %d bad %s late %s a %s b %s\n", rc, again,
            bad == EINVAL ? "EINVAL" : "?", late == EBUSY ? "EBUSY" : "?", a ? "ok" : "NULL",
            b ? "ok" : "NULL");
    gm_keep_alive(a);
}

static void sub_heaplimit_env(void)
{
    void *a = gm_try_alloc_noscan((size_t)48 << 20);
    void *b = gm_try_alloc_noscan((size_t)32 << 20);
    fprintf(stderr, "sub: a %s, b %s, max %lld\n", a ? "ok" : "NULL", b ? "ok" : "NULL",
            (long long)gm_set_max_heap(-1));
    gm_keep_alive(a);
}

static void sub_touch(void) { gm_keep_alive(gm_alloc_noscan(64)); }

__attribute__((constructor)) static void sub_main(void)
{
    const char *s = getenv("GOMAP_OOM_SUB");
    if (!s) return;
    if (strcmp(s, "reserve_env") == 0) sub_reserve_env();
    else if (strcmp(s, "reserve_api") == 0) sub_reserve_api();
    else if (strcmp(s, "heaplimit_env") == 0) sub_heaplimit_env();
    else if (strcmp(s, "touch") == 0) sub_touch();
    exit(0);
}

TEST(heap_reserve_from_the_environment)
{
    CHECK(sub_ok("reserve_env", "heapreserve=256MiB", "sub: a ok, b NULL\n"));
    CHECK(sub_ok("reserve_env", "heapreserve=256MiB",
                 "fatal error: runtime: out of memory: allocating 134217728 bytes: the heap's address-"
                 "space reservation of 256 MiB is exhausted (raise it with GMDEBUG=heapreserve=<size> "
                 "or gm_set_heap_reserve before the first allocation)\n"));
}

TEST(heap_reserve_from_the_api)
{
    CHECK(sub_ok("reserve_api", NULL, "sub: rc 0 again 0 bad EINVAL late EBUSY a ok b NULL\n"));
    CHECK(sub_ok("reserve_api", NULL, "gm_set_heap_reserve: 1048576 bytes is outside 64 MiB .. 16384 GiB"));
    /* the program's call wins over the environment */
    CHECK(sub_ok("reserve_api", "heapreserve=4GiB", "a ok b NULL\n"));
}

TEST(heap_limit_from_the_environment)
{
    CHECK(sub_ok("heaplimit_env", "heaplimit=64MiB", "sub: a ok, b NULL, max 67108864\n"));
    CHECK(sub_ok("heaplimit_env", "heaplimit=off", "sub: a ok, b ok, max 9223372036854775807\n"));
}

TEST(bad_heap_settings_are_named)
{
    CHECK(sub_ok("touch", "heaplimit=lots",
                 "GMDEBUG: bad value \"lots\" for heaplimit (want a size of at least 1MiB such as "
                 "512MiB or 4GiB, or \"off\"); no limit"));
    CHECK(sub_ok("touch", "heaplimit=512", "bad value \"512\" for heaplimit"));
    CHECK(sub_ok("touch", "heapreserve=1MiB",
                 "GMDEBUG: bad value \"1MiB\" for heapreserve (want a size from 64MiB to 16TiB such "
                 "as 256GiB); using 64GiB"));
    CHECK(sub_ok("touch", "heapreserve=", "bad value \"\" for heapreserve"));
}
