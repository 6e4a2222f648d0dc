/* test_syncmap_xchg.c - the concurrent gm_syncmap checks again, with
 * GMDEBUG=syncfence=xchg: readers pin with a seq_cst exchange instead of
 * relying on membarrier (the path taken where the kernel lacks it). */
#include "check.h"
#include "gomap/map.h"
#include "gomap/sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "syncmap_stress.h"

/* Also when the binary is run by hand: the fence is chosen at the first
 * gm_syncmap call, after this runs. */
__attribute__((constructor)) static void force_xchg_fence(void)
{
    setenv("GMDEBUG", "syncfence=xchg", 1);
}

TEST(xchg_readers_see_only_whole_current_values_during_writes)
{
    stress_readers_and_writers();
}

TEST(xchg_reclaims_replaced_values_and_dead_entries)
{
    stress_reclaim();
    gm_sync_stats st;
    gm_sync_stats_get(&st);
    CHECK(st.ebr_epochs > 0);
    CHECK_EQ_U(st.ebr_membarriers, 0);
}
