/* pauses.c - stop-the-world pauses in two situations the issue-13 work
 * changed (run by run_pauses.sh):
 *   globals   1 MiB of bss holding pointers to GC objects (131072 slots),
 *             two threads storing fresh objects into random slots with plain
 *             stores (every 8th allocation: every page of the table is
 *             written during every mark, the worst case) and allocating
 *             garbage while the main thread runs back-to-back cycles;
 *             globals-cold: the same table, a store every 100000th
 *             allocation (a few pages written per mark).  GMDEBUG picks how termination catches
 *             the stores: soft-dirty (default above 64 KiB of globals), a
 *             whole rescan (globalsrescan=1e9), or scanglobals=0 with the
 *             array registered by gm_root_add (the only way before).
 *   noncoop   the same churn (without the big array), plus one thread that
 *             allocated once and then blocks in read() on a pipe without
 *             gm_blocking_begin, and one spinning without safepoints: the
 *             collector stops them with a signal after preemptgrace ms.
 *             The baseline (coop) has the two threads cooperate.
 * Prints one RESULT line: every pause's max / p99 / p50 (gomap's pause
 * histogram, 1/16 resolution), the cycles, signals sent. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gomap/gc.h>

typedef struct node { struct node *next; uint64_t v; } node;
static const uint8_t node_ptrs[] = { 0x1 };
static const gm_type node_type = { sizeof(node), 8, NULL, NULL, node_ptrs, 0, "node" };

#define NG (1u << 17)                   /* 131072 pointers: 1 MiB */
static node *gtab[NG];
static atomic_int stop;
static int use_globals;
static unsigned store_every = 8;        /* allocations per plain store into gtab */

static void *churn(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    gm_thread_attach();
    unsigned k = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        node *keep = NULL;
        for (int i = 0; i < 64; i++) {
            node *n = gm_new(&node_type);
            gm_store(&n->next, keep);
            keep = n;
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            if (use_globals && ++k % store_every == 0) gtab[s % NG] = n;   /* plain store into bss */
        }
    }
    gm_thread_detach();
    return NULL;
}

static int pipefd[2];
static void *blocked_reader(void *arg)
{
    (void)arg;
    node *mine = gm_new(&node_type);    /* attached by this allocation */
    mine->v = 42;
    char c;
    while (read(pipefd[0], &c, 1) < 0) {}   /* no gm_blocking_begin: not cooperative */
    if (mine->v != 42) abort();
    gm_thread_detach();
    return NULL;
}

static atomic_int spin_stop;
static void *spinner(void *arg)
{
    (void)arg;
    node *mine = gm_new(&node_type);
    mine->v = 7;
    volatile uint64_t x = 0;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) x++;   /* no safepoint */
    if (mine->v != 7) abort();
    gm_thread_detach();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *scen = argc > 1 ? argv[1] : "globals";
    const char *label = argc > 2 ? argv[2] : scen;
    long cycles = argc > 3 ? atol(argv[3]) : 200;
    bool noncoop = strcmp(scen, "noncoop") == 0;
    use_globals = strncmp(scen, "globals", 7) == 0;
    if (strstr(scen, "-cold")) store_every = 100000;   /* a few pages written per mark */
    gm_thread_attach();
    if (strstr(scen, "registered")) gm_root_add(gtab, sizeof gtab);
    if (use_globals)
        for (unsigned i = 0; i < NG; i++) gtab[i] = gm_new(&node_type);
    pthread_t th[4];
    int nth = 0;
    if (noncoop) {
        if (pipe(pipefd) != 0) return 1;
        pthread_create(&th[nth++], NULL, blocked_reader, NULL);
        pthread_create(&th[nth++], NULL, spinner, NULL);
        usleep(20000);
    }
    pthread_t ch[2];
    for (int i = 0; i < 2; i++) pthread_create(&ch[i], NULL, churn, (void *)(uintptr_t)i);
    gm_gc();                              /* warm-up: lists built, threads attached */
    uint64_t base_hist[GM_PAUSE_BUCKETS];
    gm_read_pause_histogram(base_hist);
    for (long c = 0; c < cycles; c++) gm_gc();
    atomic_store(&stop, 1);
    gm_blocking_begin();
    for (int i = 0; i < 2; i++) pthread_join(ch[i], NULL);
    gm_blocking_end();
    if (noncoop) {
        atomic_store(&spin_stop, 1);
        if (write(pipefd[1], "x", 1) != 1) return 1;
        gm_blocking_begin();
        for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
        gm_blocking_end();
    }
    /* quantiles over the measured cycles only */
    uint64_t h[GM_PAUSE_BUCKETS], total = 0;
    gm_read_pause_histogram(h);
    for (unsigned b = 0; b < GM_PAUSE_BUCKETS; b++) total += (h[b] -= base_hist[b]);
    double q[3] = { 0.5, 0.99, 1.0 }, r[3] = { 0, 0, 0 };
    for (int k = 0; k < 3; k++) {
        uint64_t need = (uint64_t)(q[k] * (double)total + 0.999999), acc = 0;
        if (need == 0) need = 1;
        for (unsigned b = 0; b < GM_PAUSE_BUCKETS; b++) {
            acc += h[b];
            if (acc >= need) {
                r[k] = (double)gm_pause_bucket_lower_ns(b + 1 < GM_PAUSE_BUCKETS ? b + 1 : b) / 1e3;
                break;
            }
        }
    }
    gm_memstats ms;
    gm_read_memstats(&ms);
    printf("RESULT %s pauses=%llu p50_us=%.1f p99_us=%.1f max_us=%.1f cycles=%u preempt_signals=%llu\n",
           label, (unsigned long long)total, r[0], r[1], r[2], ms.num_gc,
           (unsigned long long)ms.gc_preempt_signals);
    return 0;
}
