/* test_trace.c - the Chrome trace writer (gomap/trace.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gomap/gomap.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    fclose(f);
    return s;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

static void *emitter(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5000; i++) gm_trace_counter("test", "ticks", i);
    return NULL;
}

TEST(trace_records_events_from_threads_and_map_resizes)
{
    char path[] = "/tmp/gomap-trace-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    CHECK(!gm_trace_on());
    REQUIRE(gm_trace_start(path));
    CHECK(gm_trace_on());
    CHECK(!gm_trace_start(path)); /* already on */
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, emitter, NULL);
    gm_trace_begin("test", "span \"quoted\"");
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t k = 0; k < 20000; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    for (uint64_t k = 100; k < 20000; k++) gm_map_delete_u64(m, k);
    for (int round = 0; round < 100; round++) /* used while sparse: it shrinks */
        for (uint64_t k = 0; k < 100; k++) *(uint64_t *)gm_map_assign_u64(m, k) = k;
    gm_map_free(m);
    gm_trace_end("test", "span \"quoted\"");
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(gm_trace_stop());
    CHECK(!gm_trace_on());
    gm_trace_counter("test", "after stop", 1); /* ignored */
    char *s = slurp(path);
    REQUIRE(s);
    CHECK(strncmp(s, "{\"displayTimeUnit\"", 18) == 0);
    CHECK_EQ_U(count(s, "\"name\":\"ticks\""), 10000);
    /* begin + end per resize: classic doubles its array, Swiss grows a
     * table to 1024 slots and then splits it */
    CHECK(count(s, "\"name\":\"map grow\"") + count(s, "\"name\":\"map split\"") >= 2 * 10);
    CHECK(count(s, "\"name\":\"map shrink\"") >= 2);
    CHECK_EQ_U(count(s, "span \\\"quoted\\\""), 2);
    CHECK_EQ_U(count(s, "after stop"), 0);
    free(s);
    /* A second trace works too. */
    REQUIRE(gm_trace_start(path));
    gm_trace_instant("test", "again", "n", 7);
    CHECK(gm_trace_stop());
    s = slurp(path);
    CHECK(s && count(s, "\"again\"") == 1 && count(s, "ticks") == 0);
    free(s);
    unlink(path);
}

TEST(trace_start_reports_a_bad_path)
{
    CHECK(!gm_trace_start("/nonexistent-dir/x/trace.json"));
    CHECK(!gm_trace_on());
    CHECK(!gm_trace_stop());
}
