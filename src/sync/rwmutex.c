/* rwmutex.c - sync.RWMutex, as Go has it: writer preference.
 *
 * reader_count_a counts readers that hold or wait for the lock.  A writer
 * first takes w (so writers queue among themselves), then subtracts
 * RW_MAX_READERS (2^30) from reader_count_a: from then on the count is
 * negative and every arriving reader waits on reader_sem_a, even though the
 * writer itself may still be waiting.  That is the writer preference: a
 * stream of readers cannot starve a writer.  The readers that were inside
 * when the writer announced itself (r) are added to reader_wait_a; each of
 * them, on RUnlock, sees a negative count and decrements reader_wait_a; the
 * one that brings it to zero wakes the writer on writer_sem_a.  Unlock adds
 * RW_MAX_READERS back and releases reader_sem_a once per reader that queued
 * meanwhile, then releases w.
 *
 * Invariants: -RW_MAX_READERS <= reader_count_a < RW_MAX_READERS; the count
 * is negative iff a writer holds w and has announced itself; reader_wait_a
 * > 0 only while that writer waits.  RUnlock that finds the count at 0 or at
 * -RW_MAX_READERS has no reader to release: fatal, as Go.
 */
#include "sync/sync_internal.h"

#define RW_MAX_READERS (1 << 30)

void gm_rwmutex_rlock(gm_rwmutex *rw)
{
    if (GM_UNLIKELY(at_add_acqrel(&rw->reader_count_a, 1) < 0))
        gm_sema_acquire_ex(&rw->reader_sem_a, false);   /* a writer is pending */
}

bool gm_rwmutex_tryrlock(gm_rwmutex *rw)
{
    int32_t c = at_load_relaxed(&rw->reader_count_a);
    for (;;) {
        if (c < 0) return false;
        if (at_cas_acqrel(&rw->reader_count_a, &c, c + 1)) return true;
    }
}

static void runlock_slow(gm_rwmutex *rw, int32_t r)
{
    if (r + 1 == 0 || r + 1 == -RW_MAX_READERS)
        gm_fatal("sync: RUnlock of unlocked RWMutex");
    /* A writer waits: the last departing reader wakes it. */
    if (at_add_acqrel(&rw->reader_wait_a, -1) == 0)
        gm_sema_release_ex(&rw->writer_sem_a, false);
}

void gm_rwmutex_runlock(gm_rwmutex *rw)
{
    int32_t r = at_add_acqrel(&rw->reader_count_a, -1);
    if (GM_UNLIKELY(r < 0)) runlock_slow(rw, r);
}

void gm_rwmutex_lock(gm_rwmutex *rw)
{
    gm_mutex_lock(&rw->w);
    int32_t r = at_add_acqrel(&rw->reader_count_a, -RW_MAX_READERS) + RW_MAX_READERS;
    if (r != 0 && at_add_acqrel(&rw->reader_wait_a, r) != 0)
        gm_sema_acquire_ex(&rw->writer_sem_a, false);
}

bool gm_rwmutex_trylock(gm_rwmutex *rw)
{
    if (!gm_mutex_trylock(&rw->w)) return false;
    int32_t zero = 0;
    if (!at_cas_acqrel(&rw->reader_count_a, &zero, -RW_MAX_READERS)) {
        gm_mutex_unlock(&rw->w);
        return false;
    }
    return true;
}

void gm_rwmutex_unlock(gm_rwmutex *rw)
{
    int32_t r = at_add_acqrel(&rw->reader_count_a, RW_MAX_READERS);
    if (r >= RW_MAX_READERS) gm_fatal("sync: Unlock of unlocked RWMutex");
    for (int32_t i = 0; i < r; i++)
        gm_sema_release_ex(&rw->reader_sem_a, false);
    gm_mutex_unlock(&rw->w);
}
