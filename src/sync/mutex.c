/* mutex.c - sync.Mutex, as Go has it.
 *
 * STATE WORD (state_a, int32):
 *     bit 0  LOCKED    someone holds the mutex
 *     bit 1  WOKEN     a waiter is awake and competing: unlock need not wake one
 *     bit 2  STARVING  starvation mode (below)
 *     3..31  the number of threads queued on sema_a
 * The zero value is an unlocked mutex in normal mode with no waiters.
 *
 * NORMAL MODE.  Waiters queue FIFO on the semaphore, but a woken waiter does
 * not own the mutex: it competes with threads arriving right now, which are
 * already on a CPU and usually win.  A waiter that loses is queued again at
 * the front.  Arrivals may spin a little (SPIN_ITERS rounds of SPIN_PAUSES
 * pauses, only on a multi-core machine and only while the holder is not a
 * handoff target) before queueing.  Throughput is high; a waiter can lose
 * repeatedly.
 *
 * STARVATION MODE.  A waiter that has waited longer than STARVE_NS (1 ms, as
 * Go) sets STARVING.  From then on unlock hands the mutex directly to the
 * waiter at the front of the queue (gm_sema_release_ex(handoff=true));
 * arrivals neither spin nor try to take it, and queue at the tail.  The
 * woken waiter owns the mutex: it sets LOCKED and drops itself from the
 * waiter count in one atomic add.  It switches the mutex back to normal mode
 * when it waited less than 1 ms or was the last waiter.
 *
 * STATE MACHINE (per state word):
 *     unlocked --lock fast path CAS 0->LOCKED--> locked
 *     locked --waiter waited >1ms, CAS sets STARVING--> locked+starving
 *     locked+starving --unlock: handoff--> (LOCKED clear, owner = front waiter)
 *     handoff target: adds LOCKED - 1 waiter [- STARVING if last or fast]
 *     unlock in normal mode with waiters and nobody WOKEN: sets WOKEN,
 *         removes one waiter from the count, wakes it.
 * Invariant: when STARVING is set, LOCKED and WOKEN are clear at the moment a
 * handoff target wakes, and the waiter count is >= 1 (violations are the
 * "sync: inconsistent mutex state" throw).
 *
 * Memory order: every successful transition is an acq_rel CAS or add on
 * state_a, so unlock's release synchronises with the next lock's acquire.
 */
#include "sync/sync_internal.h"

enum {
    MUTEX_LOCKED = 1,
    MUTEX_WOKEN = 2,
    MUTEX_STARVING = 4,
    MUTEX_WAITER_SHIFT = 3,
};
#define STARVE_NS 1000000        /* starvation threshold, 1 ms */
#define SPIN_ITERS 4             /* Go's active_spin */
#define SPIN_PAUSES 30           /* Go's active_spin_cnt */

static bool can_spin(int iter)
{
    return iter < SPIN_ITERS && gm_ncpu() > 1;
}

static void spin(void)
{
    for (int i = 0; i < SPIN_PAUSES; i++) gm_cpu_relax();
}

static GM_NORETURN void inconsistent(void)
{
    gm_fatal("sync: inconsistent mutex state");
}

static void lock_slow(gm_mutex *m)
{
    int64_t wait_start = 0;
    bool starving = false, awoke = false;
    int iter = 0;
    int32_t old = at_load_relaxed(&m->state_a);
    for (;;) {
        /* Spin while it is locked in normal mode, announcing ourselves as
         * WOKEN so that unlock does not wake a sleeper needlessly. */
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED && can_spin(iter)) {
            if (!awoke && (old & MUTEX_WOKEN) == 0 && (old >> MUTEX_WAITER_SHIFT) != 0 &&
                at_cas_acqrel(&m->state_a, &old, old | MUTEX_WOKEN))
                awoke = true;
            spin();
            iter++;
            old = at_load_relaxed(&m->state_a);
            continue;
        }
        int32_t new_ = old;
        if ((old & MUTEX_STARVING) == 0) new_ |= MUTEX_LOCKED;   /* try to take it */
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) != 0)
            new_ += 1 << MUTEX_WAITER_SHIFT;                       /* or queue */
        if (starving && (old & MUTEX_LOCKED) != 0) new_ |= MUTEX_STARVING;
        if (awoke) {
            if ((new_ & MUTEX_WOKEN) == 0) inconsistent();
            new_ &= ~MUTEX_WOKEN;
        }
        int32_t seen = old;
        if (!at_cas_acqrel(&m->state_a, &seen, new_)) {
            old = seen;
            continue;
        }
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == 0) return;  /* took it */
        if ((new_ & MUTEX_STARVING) != 0 && (old & MUTEX_STARVING) == 0)
            GM_SYNC_COUNT(mutex_starving_enter);
        bool lifo = wait_start != 0;
        if (wait_start == 0) wait_start = gm_nanotime();
        gm_sema_acquire_ex(&m->sema_a, lifo);
        starving = starving || gm_nanotime() - wait_start > STARVE_NS;
        old = at_load_relaxed(&m->state_a);
        if ((old & MUTEX_STARVING) != 0) {
            /* Handed to us: nobody else may hold or be woken. */
            if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) != 0 ||
                (old >> MUTEX_WAITER_SHIFT) == 0)
                inconsistent();
            int32_t delta = MUTEX_LOCKED - (1 << MUTEX_WAITER_SHIFT);
            if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1) {
                delta -= MUTEX_STARVING;
                GM_SYNC_COUNT(mutex_starving_exit);
            }
            at_add_acqrel(&m->state_a, delta);
            GM_SYNC_COUNT(mutex_handoff_acquires);
            return;
        }
        awoke = true;
        iter = 0;
    }
}

void gm_mutex_lock(gm_mutex *m)
{
    int32_t zero = 0;
    if (GM_LIKELY(at_cas_acqrel(&m->state_a, &zero, MUTEX_LOCKED))) return;
    lock_slow(m);
}

bool gm_mutex_trylock(gm_mutex *m)
{
    int32_t old = at_load_relaxed(&m->state_a);
    if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) != 0) return false;
    /* A waiter may be WOKEN and competing; taking it anyway is what normal
     * mode allows. */
    return at_cas_acqrel(&m->state_a, &old, old | MUTEX_LOCKED);
}

static void unlock_slow(gm_mutex *m, int32_t new_)
{
    if (((new_ + MUTEX_LOCKED) & MUTEX_LOCKED) == 0)
        gm_fatal("sync: unlock of unlocked mutex");
    if ((new_ & MUTEX_STARVING) != 0) {
        /* Hand ownership to the front waiter.  LOCKED stays clear; the
         * waiter sets it.  Arrivals see STARVING and keep off meanwhile. */
        gm_sema_release_ex(&m->sema_a, true);
        return;
    }
    int32_t old = new_;
    for (;;) {
        /* Nobody to wake, or someone else already deals with it. */
        if ((old >> MUTEX_WAITER_SHIFT) == 0 ||
            (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)) != 0)
            return;
        int32_t next = (old - (1 << MUTEX_WAITER_SHIFT)) | MUTEX_WOKEN;
        if (at_cas_acqrel(&m->state_a, &old, next)) {
            gm_sema_release_ex(&m->sema_a, false);
            return;
        }
    }
}

void gm_mutex_unlock(gm_mutex *m)
{
    int32_t new_ = __atomic_sub_fetch(&m->state_a, MUTEX_LOCKED, __ATOMIC_RELEASE);
    if (GM_UNLIKELY(new_ != 0)) unlock_slow(m, new_);
}
