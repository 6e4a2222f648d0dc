/* scn_sync.c - gomap-lab scenario: sync.Map against a mutex around a map. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "gomap/gomap.h"
#include "lab.h"

enum { KEYS = 1 << 14 };

struct load {
    int kind;            /* 0: sync.Map, 1: gm_mutex + gm_map */
    gm_syncmap *sm;
    gm_map *m;
    gm_mutex mu;
    uint64_t ops_per_thread;
    int store_permille;  /* 10 = 99% loads */
};

struct worker { struct load *l; uint64_t seed, hits, ns; };

static void *work(void *arg)
{
    struct worker *w = arg;
    struct load *l = w->l;
    uint64_t s = w->seed, hits = 0;
    uint64_t t0 = lab_now_ns();
    for (uint64_t i = 0; i < l->ops_per_thread; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t k = (s >> 33) % KEYS, v = s;
        bool store = (s >> 20) % 1000 < (uint64_t)l->store_permille;
        if (l->kind == 0) {
            if (store) gm_syncmap_store(l->sm, &k, &v);
            else hits += gm_syncmap_load(l->sm, &k, &v);
        } else {
            gm_mutex_lock(&l->mu);
            if (store) *(uint64_t *)gm_map_assign_u64(l->m, k) = v;
            else hits += gm_map_get_u64(l->m, k) != NULL;
            gm_mutex_unlock(&l->mu);
        }
    }
    w->ns = lab_now_ns() - t0;
    w->hits = hits;
    return NULL;
}

/* ns per operation, averaged over threads */
static double measure(int kind, int threads, int store_permille, uint64_t ops, uint64_t *hits)
{
    struct load l = { .kind = kind, .ops_per_thread = ops, .store_permille = store_permille };
    l.sm = gm_syncmap_new(&gm_type_u64, &gm_type_u64);
    l.m = gm_map_new(&gm_type_u64, &gm_type_u64, KEYS);
    for (uint64_t k = 0; k < KEYS; k++) {
        gm_syncmap_store(l.sm, &k, &k);
        *(uint64_t *)gm_map_assign_u64(l.m, k) = k;
    }
    for (uint64_t k = 0; k < KEYS; k++) gm_syncmap_load(l.sm, &k, NULL); /* promote to read-only */
    pthread_t t[8];
    struct worker w[8];
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){ &l, (uint64_t)i * 7919 + 1, 0, 0 };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    double ns = 0;
    *hits = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        ns += (double)w[i].ns / (double)ops;
        *hits += w[i].hits;
    }
    gm_syncmap_free(l.sm);
    gm_map_free(l.m);
    return ns / threads;
}

static int run_syncmap(const lab_opts *o)
{
    uint64_t ops = o->quick ? 300000 : 3000000, hits;
    static const char *hdr[] = { "load", "threads", "sync.Map ns/op", "mutex+map ns/op", "mutex/sync.Map" };
    lab_table_begin(5, hdr);
    double best_ratio_rm2 = 0;
    int permille[2] = { 10, 100 };
    for (int p = 0; p < 2; p++) {
        for (int th = 1; th <= 2; th++) {
            lab_progress("sync.Map: %d threads", th);
            double a = 1e30, b = 1e30;
            for (int rep = 0; rep < 3; rep++) { /* best of 3: the machine is shared */
                double x = measure(0, th, permille[p], ops, &hits);
                double y = measure(1, th, permille[p], ops, &hits);
                if (x < a) a = x;
                if (y < b) b = y;
            }
            if (p == 0 && th == 2) best_ratio_rm2 = b / a;
            lab_table_row("%s|%d|%.1f|%.1f|%.2fx", p ? "90% load / 10% store" : "99% load / 1% store",
                          th, a, b, b / a);
        }
    }
    lab_table_end();
    lab_say("  Loads of keys already in sync.Map's read-only map take no lock, so they do");
    lab_say("  not queue behind each other; a mutex makes every load wait its turn.");
    lab_say("  Measured here: with 2 threads on the read-mostly load, sync.Map is %.2fx %s than mutex+map.",
            best_ratio_rm2 >= 1 ? best_ratio_rm2 : 1 / best_ratio_rm2, best_ratio_rm2 >= 1 ? "faster" : "slower");
    lab_say("  (best of 3 wall-clock runs; timings are no verdict here: bench/sync/run.sh");
    lab_say("   measures with peers, medians and pinned runs)");
    return 0;
}

static const lab_scenario syncmap = { 7, "syncmap-read-mostly", "sync.Map vs a mutex around a map",
    "Read-mostly and mixed loads from 1 and 2 threads over 16K keys: what sync.Map's lock-free loads buy.",
    run_syncmap };
LAB_SCENARIO(syncmap)
