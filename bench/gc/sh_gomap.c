/* sh_gomap.c - the mt-gcbench and quads shapes (sh_common.h) on gomap's GC
 * heap: typed nodes scanned precisely, stores through gm_store, the array
 * pointer-free.  SH_PEER names the RESULT line (run_shapes.sh runs gomap-stw
 * with GMDEBUG=gcstoptheworld=1). */
#include "gomap/gc.h"

#define SH_THREAD_ENTER() gm_thread_attach()
#define SH_THREAD_EXIT()  gm_thread_detach()
#define SH_WAIT_BEGIN()   gm_blocking_begin()
#define SH_WAIT_END()     gm_blocking_end()
#include "gm_bench.h"
#define SH_EXTRA_FIELDS() gm_bench_mark_fields()
#include "sh_common.h"

static const uint8_t bmask[] = { 0x3 }, qmask[] = { 0xf };
static const gm_type btype = { sizeof(bnode), 8, NULL, NULL, bmask, 0, "bnode" };
static const gm_type qtype = { sizeof(qnode), 8, NULL, NULL, qmask, 0, "qnode" };

static bnode *bnew(void) { return gm_new(&btype); }
static void bset(bnode **slot, bnode *v) { gm_store(slot, v); }
static qnode *qnew(void) { return gm_new(&qtype); }
static void qset(qnode **slot, qnode *v) { gm_store(slot, v); }
static double *dnew(size_t n) { return gm_alloc_noscan(n * sizeof(double)); }

static void pauses(double *max_ms, double *p99_ms)
{
    *p99_ms = gm_pause_quantile_ns(0.99) / 1e6;
    *max_ms = gm_pause_quantile_ns(1.0) / 1e6;
}

static gm_memstats ms;

static uint64_t gcs(void)
{
    gm_read_memstats(&ms);
    return ms.num_gc;
}

static double gc_cpu(void)
{
    gm_read_memstats(&ms);
    return ms.gc_cpu_fraction;
}


int main(void)
{
    gm_thread_attach();
    const char *peer = getenv("SH_PEER") ? getenv("SH_PEER") : "gomap";
    SH_MAIN(peer, gcs(), pauses, gc_cpu());
    return 0;
}
