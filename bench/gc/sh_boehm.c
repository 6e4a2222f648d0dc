/* sh_boehm.c - the mt-gcbench and quads shapes (sh_common.h) on the
 * Boehm-Demers-Weiser collector: GC_MALLOC nodes, GC_MALLOC_ATOMIC array;
 * BOEHM_INCREMENTAL=1 turns on GC_enable_incremental (peer boehm-inc).
 * Pauses and GC time are read from Boehm's collection events
 * (boehm_events.h). */
#define GC_THREADS
#include <gc/gc.h>

/* GC_THREADS redirects pthread_create: Boehm registers the threads itself */
#define SH_THREAD_ENTER() do { } while (0)
#define SH_THREAD_EXIT()  do { } while (0)
#define SH_WAIT_BEGIN()
#define SH_WAIT_END()
#include <unistd.h>
#include "sh_common.h"

static bnode *bnew(void) { return GC_MALLOC(sizeof(bnode)); }
static void bset(bnode **slot, bnode *v) { *slot = v; }
static qnode *qnew(void) { return GC_MALLOC(sizeof(qnode)); }
static void qset(qnode **slot, qnode *v) { *slot = v; }
static double *dnew(size_t n) { return GC_MALLOC_ATOMIC(n * sizeof(double)); }

#include "boehm_events.h"

int main(void)
{
    GC_INIT();
    int inc = getenv("BOEHM_INCREMENTAL") && atoi(getenv("BOEHM_INCREMENTAL"));
    if (inc) GC_enable_incremental();
    GC_set_on_collection_event(on_event);
    double t_start = bt_now();
    SH_MAIN(inc ? "boehm-inc" : "boehm", GC_get_gc_no(), pauses,
            gc_ns / 1e9 / ((bt_now() - t_start) * (double)sysconf(_SC_NPROCESSORS_ONLN)));
    return 0;
}
