/* scn_map.c - gomap-lab scenarios about the map itself. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include "gomap/gomap.h"
#include "lab.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- growth */

/* Minor page faults of the calling thread so far (the helper thread's own
 * faults are not counted: they are not in any insert). */
static long thread_faults(long *csw)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    *csw = ru.ru_nivcsw + ru.ru_nvcsw;
    return ru.ru_minflt;
}

/* Share of [p, p+len) resident in memory, in percent. */
static double resident_pct(const void *p, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(page - 1);
    size_t span = (uintptr_t)p + len - lo, pages = (span + (size_t)page - 1) / (size_t)page;
    unsigned char *vec = malloc(pages);
    if (vec == NULL || mincore((void *)lo, span, vec) != 0) {
        free(vec);
        return -1;
    }
    size_t r = 0;
    for (size_t i = 0; i < pages; i++) r += vec[i] & 1;
    free(vec);
    return 100.0 * (double)r / (double)pages;
}

struct grow_row {
    size_t start, nb_from, nb_to, faults, max_faults;
    bool start_switched;       /* the thread was switched out during the start insert */
    uint64_t start_ns, max_ns, max_clean_ns;
    long start_faults;
    double resident;
    size_t release_writes;     /* writes that returned the old array in steps */
};

static int run_growth(const lab_opts *o)
{
    size_t n = o->quick ? 1000000 : 10000000;
    const char *dbg = getenv("GMDEBUG");
    bool helper = !(dbg && strstr(dbg, "mapbg=0"));
    gm_map *m = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &(gm_map_opts){ GM_MAP_CLASSIC, false, 0 });
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!m || !lat) return 1;
    static const char *hdr[] = { "grow", "at len", "buckets", "new array resident at start",
                                 "start insert", "its faults", "slowest insert", "slowest not preempted",
                                 "faults in inserts (max in one)", "old array returned" };
    lab_table_begin(10, hdr);
    gm_map_stats st, prev;
    gm_map_stats_get(m, &prev);
    size_t grows = 0, max_evac_per_write = 0, big_unprepared = 0, big = 0;
    long max_faults_any = 0, max_release_steps = 0;
    uint64_t max_clean_any = 0;
    double max_start_resident = 0;
    struct grow_row g = { 0 };
    bool in_grow = false, releasing = false;
    long csw;
    long flt = thread_faults(&csw);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = i * 0x9e3779b97f4a7c15ull;
        long csw0 = csw, f0 = flt;
        uint64_t t0 = lab_now_ns();
        *(uint64_t *)gm_map_assign_u64(m, k) = i;
        uint64_t dt = lab_now_ns() - t0;
        flt = thread_faults(&csw);
        long df = flt - f0;
        bool preempted = csw != csw0;
        lat[i] = dt;
        if (df > max_faults_any) max_faults_any = df;
        if (!preempted && dt > max_clean_any) max_clean_any = dt;
        gm_map_stats_get(m, &st);
        size_t ev = st.evacuated_buckets - prev.evacuated_buckets;
        if (ev > max_evac_per_write) max_evac_per_write = ev;
        if (releasing) {
            g.release_writes++;
            if (st.retired_pending == 0) {
                releasing = false;
                if ((long)g.release_writes > max_release_steps) max_release_steps = (long)g.release_writes;
            }
        }
        if (!in_grow && st.growing) {
            in_grow = true;
            memset(&g, 0, sizeof g);
            g.start = i;
            g.nb_from = prev.nbuckets;
            g.nb_to = st.nbuckets;
            g.start_ns = g.max_ns = dt;
            g.start_switched = preempted;
            g.max_clean_ns = preempted ? 0 : dt;
            g.start_faults = df;
            g.faults = (size_t)df;
            g.max_faults = (size_t)df;
            /* what the first insert left resident, the evacuated buckets
             * included: a prepared array is all there already */
            g.resident = resident_pct(st.array, st.array_bytes);
            if (st.array_bytes >= (1u << 20)) {
                big++;
                if (g.resident > max_start_resident) max_start_resident = g.resident;
                if (g.resident < 99.0) big_unprepared++;
            }
        } else if (in_grow) {
            if (dt > g.max_ns) g.max_ns = dt;
            if (!preempted && dt > g.max_clean_ns) g.max_clean_ns = dt;
            g.faults += (size_t)df;
            if ((size_t)df > g.max_faults) g.max_faults = (size_t)df;
            if (!st.growing) {
                in_grow = false;
                grows++;
                releasing = st.retired_pending > 0;
                char rel[48];
                if (releasing) snprintf(rel, sizeof rel, "by writes, in steps");
                else snprintf(rel, sizeof rel, st.nbuckets >= 4096 && helper ? "by the helper" : "freed at once");
                if (st.nbuckets >= 1024)
                    lab_table_row("%zu|%zu|%zu -> %zu|%.0f%%|%.1f us%s|%ld|%.1f us|%.1f us|%zu (%zu)|%s", grows, g.start,
                                  g.nb_from, g.nb_to, g.resident, g.start_ns / 1e3,
                                  g.start_switched ? " (switched out)" : "", g.start_faults,
                                  g.max_ns / 1e3, g.max_clean_ns / 1e3, g.faults, g.max_faults, rel);
            }
        }
        prev = st;
        if (i % 500000 == 0) lab_progress("growth: %llu / %zu", (unsigned long long)i, n);
    }
    lab_table_end();
    qsort(lat, n, sizeof *lat, cmp_u64);
    char b1[32];
    lab_say("  %zu inserts: median %.0f ns, p99.99 %.1f us, max %.1f us (%.1f us among inserts not preempted); "
            "table %s (%.1f bytes/entry)",
            n, (double)lat[n / 2], lat[(size_t)(n * 0.9999)] / 1e3, lat[n - 1] / 1e3, max_clean_any / 1e3,
            lab_bytes((double)st.bytes, b1, sizeof b1), (double)st.bytes / (double)n);
    lab_say("  (rows for tables of 1024+ buckets.  \"new array resident\": share of the new array in memory after");
    lab_say("  the insert that started the grow -- 100%% when the helper thread populated it beforehand, near 0 when");
    lab_say("  the inserts fault it in 4 KiB at a time.  Faults are the inserting thread's own (getrusage); times are");
    lab_say("  wall clock on this machine: an insert during which the thread was switched out is \"preempted\".)");
    lab_verdict(max_evac_per_write <= 2, "no write evacuated more than 2 old buckets (max %zu)", max_evac_per_write);
    /* a sanitizer's shadow memory takes faults of its own beside the map's */
    long fault_bound = lab_sanitized() ? 32 : 16;
    lab_verdict(max_faults_any <= fault_bound,
                "no insert took more than %ld page faults (max %ld): no insert zeroes or first-touches a new array",
                fault_bound, max_faults_any);
    if (helper)
        lab_say("  %zu of %zu new arrays of 1 MiB or more were populated by the helper before their grow; the rest "
                "(the helper starved of CPU for a quarter more entries) were faulted in by inserts 4 KiB at a time.",
                big - big_unprepared, big);
    else
        lab_verdict(max_start_resident < 5.0, "GMDEBUG=mapbg=0 (no helper): the insert that starts a grow touches a few "
                    "pages of the new array, not the array (at most %.1f%% resident); old arrays went back in steps "
                    "over at most %ld writes", max_start_resident, max_release_steps);
    const char *e = gm_map_check(m);
    lab_verdict(e == NULL, "gm_map_check after %zu inserts: %s", n, e ? e : "all invariants hold");
    free(lat);
    gm_map_free(m);
    return 0;
}

static const lab_scenario growth = { 1, "growth", "Map growth: incremental evacuation, one insert at a time",
    "Inserts N keys and shows every doubling: when it starts, whether its new array was populated beforehand, what "
    "the insert that started it cost, the slowest insert, the page faults inserts took, and how the old array went back.",
    run_growth };
LAB_SCENARIO(growth)

/* ------------------------------------------------- iteration during growth */

static int run_iterate(const lab_opts *o)
{
    size_t base = o->quick ? 20000 : 200000;
    gm_map *m = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &(gm_map_opts){ GM_MAP_CLASSIC, false, 0 });
    for (uint64_t i = 0; i < base; i++) *(uint64_t *)gm_map_assign_u64(m, i) = i;
    size_t total = base * 4;
    uint8_t *seen = calloc(total, 1), *deleted = calloc(total, 1);
    gm_map_iter it;
    const void *k;
    void *v;
    uint64_t next = base, s = 12345;
    size_t returned = 0, twice = 0, deleted_returned = 0, inserted_returned = 0, dels = 0, grows_seen = 0;
    gm_map_stats st;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, &k, &v)) {
        uint64_t key = *(const uint64_t *)k;
        returned++;
        if (seen[key]) twice++;
        seen[key] = 1;
        if (deleted[key]) deleted_returned++;
        if (key >= base) inserted_returned++;
        for (int j = 0; j < 2 && next < total; j++, next++) *(uint64_t *)gm_map_assign_u64(m, next) = next;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t d = (s >> 33) % base;
        if (!deleted[d] && gm_map_delete_u64(m, d)) { deleted[d] = 1; dels++; }
        gm_map_stats_get(m, &st);
        grows_seen += st.growing;
    }
    size_t missed = 0;
    for (size_t i = 0; i < base; i++) missed += !deleted[i] && !seen[i];
    static const char *hdr[] = { "what", "count" };
    lab_table_begin(2, hdr);
    lab_table_row("keys at start|%zu", base);
    lab_table_row("inserted during iteration|%zu", (size_t)(next - base));
    lab_table_row("deleted during iteration|%zu", dels);
    lab_table_row("steps taken while growing|%zu", grows_seen);
    lab_table_row("entries returned|%zu", returned);
    lab_table_row("returned twice|%zu", twice);
    lab_table_row("deleted before reached, returned|%zu", deleted_returned);
    lab_table_row("kept keys never returned|%zu", missed);
    lab_table_row("new keys returned (allowed)|%zu", inserted_returned);
    lab_table_end();
    lab_verdict(twice == 0, "no entry returned twice");
    lab_verdict(deleted_returned == 0, "no entry returned after its delete");
    lab_verdict(missed == 0, "every key present throughout was returned");
    free(seen);
    free(deleted);
    gm_map_free(m);
    return 0;
}

static const lab_scenario iterate = { 2, "iterate-while-growing",
    "Iteration while the map grows, with inserts and deletes",
    "Iterates a map while inserting two keys and deleting one per step, so it grows under the iterator; counts what the iterator returns.",
    run_iterate };
LAB_SCENARIO(iterate)

/* ------------------------------------------------------ concurrent writers */

static gm_map *shared;
static void *writer(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg << 40;
    for (uint64_t i = 0;; i++) *(uint64_t *)gm_map_assign_u64(shared, base | (i % 4096)) = i;
    return NULL;
}

/* One child: two writers race until the detector stops it.  Returns the
 * first line it printed on stderr in buf and its wait status. */
static int race_child(char *buf, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        alarm(20);                      /* an undetected race never ends by itself */
        shared = gm_map_new(&gm_type_u64, &gm_type_u64, 8192);
        pthread_t a, b;
        pthread_create(&a, NULL, writer, (void *)1);
        pthread_create(&b, NULL, writer, (void *)2);
        pthread_join(a, NULL);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fds[0], buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    return status;
}

static int run_racers(const lab_opts *o)
{
    (void)o;
    /* Detection is best effort (as Go's): an unlucky child may corrupt the
     * map before a writer sees the other's flag and die of another signal.
     * Up to five children; each outcome is shown. */
    char buf[4096], first[4096] = "";
    int caught = 0, tries = 0;
    for (; tries < 5 && !caught; tries++) {
        int status = race_child(buf, sizeof buf);
        bool aborted = status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
        if (aborted && strcmp(buf, "fatal error: concurrent map writes") == 0) {
            caught = 1;
            snprintf(first, sizeof first, "%s", buf);
        } else {
            lab_say("  a child ended otherwise: %s%s%s", buf[0] ? buf : "(nothing printed)",
                    status != -1 && WIFSIGNALED(status) ? ", signal " : ", exit ",
                    status == -1 ? "?" : WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "status");
        }
    }
    lab_say("  a child process ran two threads writing one map with no lock; %s:", caught ? "it printed" : "none was caught");
    lab_say("      %s", first);
    lab_say("  and %s (%d of %d children)", caught ? "died of SIGABRT, as Go's runtime throws (not a panic: it cannot be recovered)"
                                               : "did not abort", caught, tries);
    lab_verdict(caught, "the race was caught with Go's exact message");
    return 0;
}

static const lab_scenario racers = { 5, "concurrent-writers", "Two writers, no lock",
    "Two threads write one map without a lock, in a child process: Go's detector stops the program with its fatal message.",
    run_racers };
LAB_SCENARIO(racers)

/* ---------------------------------------------------------- sparse map */

static double iterate_ms(gm_map *m, size_t *count)
{
    gm_map_iter it;
    uint64_t t0 = lab_now_ns();
    *count = 0;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, NULL, NULL)) (*count)++;
    return (lab_now_ns() - t0) / 1e6;
}

static int run_sparse(const lab_opts *o)
{
    size_t n = o->quick ? 1000000 : 4000000, keep = n / 100;
    char b1[32];
    gm_map *m = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &(gm_map_opts){ GM_MAP_CLASSIC, false, 0 });
    for (uint64_t i = 0; i < n; i++) *(uint64_t *)gm_map_assign_u64(m, i) = i;
    gm_map_stats full, sparse, settled, ds;
    gm_map_stats_get(m, &full);
    size_t c;
    double it_full = iterate_ms(m, &c);
    for (uint64_t i = 0; i < n; i++)
        if (i % 100) gm_map_delete_u64(m, i);
    gm_map_stats_get(m, &sparse);
    double it_sparse = iterate_ms(m, &c);
    /* Ordinary updates of the surviving keys: each write drains a few old
     * buckets and returns a slice of the retired memory. */
    int rounds = 12;
    for (int round = 0; round < rounds; round++)
        for (uint64_t i = 0; i < n; i += 100) *(uint64_t *)gm_map_assign_u64(m, i) = i + 1;
    gm_map_stats_get(m, &settled);
    size_t c1;
    double it_settled = iterate_ms(m, &c1);
    gm_map *dense = gm_map_new_opts(&gm_type_u64, &gm_type_u64, &(gm_map_opts){ GM_MAP_CLASSIC, false, 0 });
    for (uint64_t i = 0; i < keep; i++) *(uint64_t *)gm_map_assign_u64(dense, i) = i;
    gm_map_stats_get(dense, &ds);
    size_t c2;
    double it_dense = iterate_ms(dense, &c2);
    static const char *hdr[] = { "map", "len", "buckets", "bytes held", "full iteration" };
    lab_table_begin(5, hdr);
    lab_table_row("after %zu inserts|%zu|%zu|%s|%.2f ms", n, full.count, full.nbuckets,
                  lab_bytes((double)full.bytes, b1, sizeof b1), it_full);
    lab_table_row("right after deleting 99%%|%zu|%zu%s|%s|%.2f ms", sparse.count, sparse.nbuckets,
                  sparse.shrinking ? " (shrinking)" : "", lab_bytes((double)sparse.bytes, b1, sizeof b1), it_sparse);
    lab_table_row("after %zu updates of them|%zu|%zu|%s|%.2f ms", rounds * keep, settled.count, settled.nbuckets,
                  lab_bytes((double)settled.bytes, b1, sizeof b1), it_settled);
    lab_table_row("a map built with %zu keys|%zu|%zu|%s|%.2f ms", keep, ds.count, ds.nbuckets,
                  lab_bytes((double)ds.bytes, b1, sizeof b1), it_dense);
    lab_table_end();
    uint64_t t3 = lab_now_ns();
    gm_map_clear(m);
    uint64_t t4 = lab_now_ns();
    lab_say("  %llu halvings.  Go's classic map keeps every bucket after deletes (Go issue 20135):",
            (unsigned long long)settled.shrinks);
    lab_say("  its sparse map would still hold the first row's memory and iterate as slowly.");
    lab_say("  gomap halves a map that stays under a quarter entry per bucket while it is used;");
    lab_say("  each halving is drained by later writes, like a grow.");
    lab_say("  clear() then took %.2f ms.", (t4 - t3) / 1e6);
    lab_verdict(settled.bytes * 5 < full.bytes, "the sparse map gave back over 80%% of its memory (%.1f%% left)",
                100.0 * (double)settled.bytes / (double)full.bytes);
    lab_verdict(c1 == keep && c2 == keep, "iterations returned all %zu entries", keep);
    gm_map_free(m);
    gm_map_free(dense);
    return 0;
}

static const lab_scenario sparse = { 6, "sparse-after-delete", "A sparse map after deleting 99% of it",
    "Fills a map, deletes 99%, and follows its memory and iteration cost as it shrinks (Go issue 20135).",
    run_sparse };
LAB_SCENARIO(sparse)

/* -------------------------------------------------------------- NaN keys */

static int run_nan(const lab_opts *o)
{
    (void)o;
    gm_map *m = gm_map_new(&gm_type_f64, &gm_type_i64, 0);
    double nan = NAN, pz = 0.0, nz = -0.0;
    int64_t v = 1;
    for (int i = 0; i < 3; i++) gm_map_put(m, &nan, &v);
    size_t after_put = gm_map_len(m);
    bool found = gm_map_get(m, &nan) != NULL;
    bool deleted = gm_map_delete(m, &nan);
    size_t iterated = 0;
    gm_map_iter it;
    gm_map_iter_init(&it, m);
    while (gm_map_iter_next(&it, NULL, NULL)) iterated++;
    gm_map_put(m, &pz, &v);
    gm_map_put(m, &nz, &v);
    size_t with_zeros = gm_map_len(m);
    gm_map_clear(m);
    size_t after_clear = gm_map_len(m);
    static const char *hdr[] = { "operation", "result" };
    lab_table_begin(2, hdr);
    lab_table_row("m[NaN] = 1, three times; len(m)|%zu", after_put);
    lab_table_row("m[NaN] found?|%s", found ? "yes" : "no");
    lab_table_row("delete(m, NaN) removed one?|%s", deleted ? "yes" : "no");
    lab_table_row("range over m yields|%zu entries", iterated);
    lab_table_row("then m[+0] = 1, m[-0] = 1; len(m)|%zu", with_zeros);
    lab_table_row("clear(m); len(m)|%zu", after_clear);
    lab_table_end();
    lab_verdict(after_put == 3 && !found && !deleted && iterated == 3 && with_zeros == 4 && after_clear == 0,
                "NaN and signed-zero keys behave exactly as in Go");
    gm_map_free(m);
    return 0;
}

static const lab_scenario nankeys = { 3, "nan-keys", "NaN and -0 as map keys",
    "NaN is never equal to itself: every insert adds an entry, no lookup or delete finds one, only clear removes them.",
    run_nan };
LAB_SCENARIO(nankeys)

/* ------------------------------------------------------------ seeds */

static int run_seeds(const lab_opts *o)
{
    (void)o;
    enum { N = 64 };
    /* classic maps: the clustering claim is about buckets and overflow chains */
    gm_map *a = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    gm_map *b = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    for (uint64_t i = 0; i < N; i++) {
        *(uint64_t *)gm_map_assign_u64(a, i) = i;
        *(uint64_t *)gm_map_assign_u64(b, i) = i;
    }
    uint64_t oa[N], ob[N];
    size_t na = 0, nb = 0, same_pos = 0;
    gm_map_iter it;
    const void *k;
    gm_map_iter_init(&it, a);
    while (gm_map_iter_next(&it, &k, NULL)) oa[na++] = *(const uint64_t *)k;
    gm_map_iter_init(&it, b);
    while (gm_map_iter_next(&it, &k, NULL)) ob[nb++] = *(const uint64_t *)k;
    for (size_t i = 0; i < N; i++) same_pos += oa[i] == ob[i];
    /* Copy a into c in a's iteration order: with one shared seed this is the
     * pattern that clusters keys (Go issue 58263's family); with per-map
     * seeds it is just another insert order. */
    gm_map *c = lab_classic_map(&gm_type_u64, &gm_type_u64, 0, false);
    size_t big = 200000;
    for (uint64_t i = 0; i < big; i++) *(uint64_t *)gm_map_assign_u64(a, i) = i;
    gm_map_iter_init(&it, a);
    while (gm_map_iter_next(&it, &k, NULL)) *(uint64_t *)gm_map_assign_u64(c, *(const uint64_t *)k) = 1;
    gm_map_stats sc;
    gm_map_stats_get(c, &sc);
    lab_say("  two maps holding the same %d keys, iterated once each: %zu of %d positions agree", N, same_pos, N);
    lab_say("  copying a %zu-entry map into a new one in iteration order: %zu overflow buckets for %zu buckets",
            big, sc.noverflow, sc.nbuckets);
    lab_say("  hash: XXH3 (libxxhash) keyed by the map's own 64-bit seed from getrandom");
    lab_verdict(same_pos < N / 2, "iteration orders of equal maps differ");
    lab_verdict(sc.noverflow < sc.nbuckets / 2, "copying in iteration order does not cluster");
    gm_map_free(a);
    gm_map_free(b);
    gm_map_free(c);
    return 0;
}

static const lab_scenario seeds = { 4, "seeds", "Per-map hash seeds",
    "Each map has its own random seed, drawn again when it empties: orders differ and copying one map into another cannot cluster.",
    run_seeds };
LAB_SCENARIO(seeds)
