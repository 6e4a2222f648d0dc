/* test_profile.c - heap profiling (src/gc/profile.c): sampling at
 * MemProfileRate, sampled objects moving from inuse to alloc-only when swept
 * free, and the written file being gzip'd profile.proto naming the
 * allocation sites.  (tests/tools/pprof_run.sh opens one with go tool pprof.) */
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../gc/gc_util.h"

static void *sink[4096];        /* a root: what the tests keep alive */

__attribute__((noinline)) void profile_test_hot_site(size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++) sink[i % 4096] = gm_alloc_noscan(size);
}

__attribute__((noinline)) static void cold_static_site(size_t n)
{
    for (size_t i = 0; i < n; i++) sink[i % 4096] = gm_alloc_noscan(32);
}

static gm_heap_profile_totals totals(void)
{
    gm_heap_profile_totals t;
    gm_heap_profile_read(&t);
    return t;
}

TEST(rate_1_samples_every_allocation)
{
    gm_root_add(sink, sizeof sink);
    gm_mem_profile_rate(1);
    gm_heap_profile_reset();
    gm_heap_profile_totals a = totals();
    profile_test_hot_site(1000, 48);
    gm_heap_profile_totals b = totals();
    CHECK_EQ_U(b.rate, 1);
    CHECK_MSG(b.alloc_objects - a.alloc_objects >= 1000 && b.alloc_objects - a.alloc_objects <= 1010,
              "%llu sampled", (unsigned long long)(b.alloc_objects - a.alloc_objects));
    CHECK(b.alloc_bytes - a.alloc_bytes >= 48000);
    CHECK(b.inuse_objects - a.inuse_objects >= 1000);
    gm_root_remove(sink);
}

TEST(freed_samples_leave_inuse_but_stay_in_alloc)
{
    gm_mem_profile_rate(1);
    collect();
    gm_heap_profile_totals a = totals();
    memset(sink, 0, sizeof sink);
    profile_test_hot_site(3000, 64);       /* sink is not a root: all garbage */
    memset(sink, 0, sizeof sink);
    gm_heap_profile_totals b = totals();
    CHECK(b.inuse_objects - a.inuse_objects >= 3000);
    collect();
    collect();
    gm_heap_profile_totals c = totals();
    CHECK(c.alloc_objects >= b.alloc_objects);      /* freed samples stay in alloc_* */
    /* every one of the 3000 was swept free (a stale stack word may pin a few) */
    CHECK_MSG(c.inuse_objects <= a.inuse_objects + 16,
              "inuse %llu before, %llu after", (unsigned long long)a.inuse_objects,
              (unsigned long long)c.inuse_objects);
    CHECK_EQ_U(c.records, c.inuse_objects);
}

TEST(default_rate_samples_about_one_per_512_KiB)
{
    gm_root_add(sink, sizeof sink);
    CHECK_EQ_U(gm_mem_profile_rate(-1), 512 * 1024);   /* Go's default (ctest: a fresh process) */
    gm_mem_profile_rate(512 * 1024);
    gm_heap_profile_reset();
    profile_test_hot_site(1 << 20, 64);     /* 64 MiB: about 128 samples */
    gm_heap_profile_totals t = totals();
    CHECK_MSG(t.alloc_objects >= 70 && t.alloc_objects <= 200, "%llu samples for 64 MiB",
              (unsigned long long)t.alloc_objects);
    gm_root_remove(sink);
}

TEST(rate_0_samples_nothing)
{
    gm_mem_profile_rate(0);
    gm_heap_profile_reset();
    profile_test_hot_site(100000, 64);
    CHECK_EQ_U(totals().alloc_objects, 0);
}

/* The whole file, gunzipped. */
static size_t gunzip(const char *path, char *buf, size_t cap)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) return 0;
    int n = gzread(gz, buf, (unsigned)cap);
    gzclose(gz);
    return n > 0 ? (size_t)n : 0;
}

static bool has(const char *buf, size_t n, const char *s)
{
    return memmem(buf, n, s, strlen(s)) != NULL;
}

TEST(written_profile_is_gzipped_and_names_the_sites)
{
    gm_root_add(sink, sizeof sink);
    gm_mem_profile_rate(1);
    profile_test_hot_site(2000, 256);
    cold_static_site(100);
    char path[] = "/tmp/gomap-profile-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(gm_write_heap_profile(path));
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    unsigned char magic[2] = { 0, 0 };
    CHECK(fread(magic, 1, 2, f) == 2);
    fclose(f);
    CHECK(magic[0] == 0x1f && magic[1] == 0x8b);
    static char buf[4 << 20];
    size_t n = gunzip(path, buf, sizeof buf);
    CHECK(n > 100);
    CHECK(has(buf, n, "profile_test_hot_site"));
    CHECK(has(buf, n, "cold_static_site"));        /* static: found in .symtab */
    CHECK(has(buf, n, "inuse_space") && has(buf, n, "alloc_objects"));
    CHECK(!has(buf, n, "gm_alloc_noscan"));        /* the allocator's frames are dropped */
    unlink(path);
    CHECK(!gm_write_heap_profile("/nonexistent-dir/x.pb.gz"));
    gm_root_remove(sink);
}

/* Threads sample (every allocation) while collections sweep samples free
 * and profiles are written: no lost or double-counted record (TSan runs it). */
static void *alloc_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        void *p = gm_alloc_noscan(48);
        (void)p;
        if (i % 1000 == 0) gm_safepoint();
    }
    return NULL;
}

TEST(threads_sample_while_cycles_sweep_and_profiles_are_written)
{
    gm_mem_profile_rate(1);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, alloc_worker, NULL);
    char path[] = "/tmp/gomap-profile-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    for (int i = 0; i < 5; i++) {
        gm_gc();
        CHECK(gm_write_heap_profile(path));
    }
    gm_blocking_begin();
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    gm_blocking_end();
    collect();
    collect();
    gm_heap_profile_totals c = totals();
    CHECK_EQ_U(c.records, c.inuse_objects);
    CHECK(c.alloc_objects >= 40000);
    CHECK_MSG(c.inuse_objects < 1000, "%llu sampled objects still in use", (unsigned long long)c.inuse_objects);
    unlink(path);
}
