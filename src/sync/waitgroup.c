/* waitgroup.c - sync.WaitGroup.
 *
 * state_a packs the counter (high 32 bits, signed) and the number of waiters
 * (low 32 bits) so that both change in one atomic operation.  Wait registers
 * itself with a CAS that requires the counter to be non-zero, then sleeps on
 * sema_a.  The Add that brings the counter to zero with waiters present owns
 * the state: nobody may touch it until it has reset it to 0 and released
 * sema_a once per waiter.  Hence the misuse checks, with Go's messages:
 *   - the counter going negative;
 *   - an Add of a positive delta that starts a new count (counter was 0)
 *     while waiters are registered: Add raced with Wait;
 *   - the state changing under the zeroing Add;
 *   - a woken waiter finding the state non-zero: the group was reused
 *     before the previous Wait returned.
 */
#include "sync/sync_internal.h"

void gm_waitgroup_add(gm_waitgroup *wg, int64_t delta)
{
    uint64_t state = at_add_acqrel(&wg->state_a, (uint64_t)delta << 32);
    int32_t v = (int32_t)(state >> 32);
    uint32_t w = (uint32_t)state;
    if (v < 0) gm_fatal("sync: negative WaitGroup counter");
    if (w != 0 && delta > 0 && v == (int32_t)delta)
        gm_fatal("sync: WaitGroup misuse: Add called concurrently with Wait");
    if (v > 0 || w == 0) return;
    /* Counter is 0 and there are waiters: only this thread may act now. */
    if (at_load_relaxed(&wg->state_a) != state)
        gm_fatal("sync: WaitGroup misuse: Add called concurrently with Wait");
    at_store_release(&wg->state_a, 0);   /* pairs with Wait's acquire load */
    for (; w != 0; w--) gm_sema_release_ex(&wg->sema_a, false);
}

void gm_waitgroup_done(gm_waitgroup *wg)
{
    gm_waitgroup_add(wg, -1);
}

void gm_waitgroup_wait(gm_waitgroup *wg)
{
    uint64_t state = at_load_acquire(&wg->state_a);
    for (;;) {
        if ((int32_t)(state >> 32) == 0) return;
        if (at_cas_acqrel(&wg->state_a, &state, state + 1)) {
            gm_sema_acquire_ex(&wg->sema_a, false);
            if (at_load_relaxed(&wg->state_a) != 0)
                gm_fatal("sync: WaitGroup is reused before previous Wait has returned");
            return;
        }
    }
}
