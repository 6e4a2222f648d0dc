/* sema.c - semaphores keyed by address, as Go's runtime has them (sema.go).
 *
 * A semaphore is any uint32_t in user memory: its value is the count.  A
 * thread that finds the count zero parks; gm_sema_release increments the
 * count and wakes one parked thread.  Nothing is allocated per semaphore:
 * the waiters themselves (a sema_waiter on the waiting thread's stack) are
 * the whole data structure.
 *
 * LAYOUT.  A fixed table of SEMA_ROOTS roots (251, prime, as Go), picked by
 * hashing the address.  A root holds the waiters of every address that hashes
 * to it, as a treap keyed by address: one tree node per address that has
 * waiters (the oldest waiter), and behind it the other waiters of the same
 * address in a FIFO list (head->next ... head->tail).  The treap's priorities
 * are random, so its depth is O(log n) in expectation whatever the addresses.
 *
 * INVARIANTS (checked by gm_sema_check):
 *   1. in-order traversal of a root's tree gives strictly increasing addresses,
 *      and each node's prio is >= its parent's (min-heap);
 *   2. every waiter of a root is in exactly one list, its address's;
 *   3. root.nwait_a >= the number of queued waiters (it also counts threads
 *      between "announce" and "queue" below).
 *
 * THE RACE THAT MATTERS.  Acquire announces itself (nwait_a += 1), then
 * re-tries the count; release adds to the count, then reads nwait_a, and
 * skips the root lock entirely when it is zero.  Both pairs are sequentially
 * consistent, so at least one side sees the other: either the acquirer sees
 * the new count, or the releaser sees the waiter and takes the lock (Dekker).
 * The acquirer queues itself under the root lock, and the releaser dequeues
 * under it, so a waiter is never missed.
 *
 * PARKING.  A waiter sleeps on its own wake_a word with FUTEX_WAIT until the
 * waker stores 1 there (release; the waiter loads with acquire).  After that
 * store the waker touches only the futex address (a stale wake on reused
 * stack memory is a harmless spurious wake-up: every futex wait loops).
 *
 * HANDOFF (starvation mode of gm_mutex).  gm_sema_release_ex(addr, true)
 * takes the count it just added back for the woken waiter (ticket = 1)
 * before waking it, so no running thread can grab it in between.  A woken
 * waiter without a ticket competes for the count like a newcomer and, if it
 * loses, queues again (at the head when lifo).
 *
 * GC.  park() runs between gm_blocking_begin/end, so a thread attached to
 * the collector that sleeps on a semaphore (a gm_mutex, a WaitGroup...) never
 * holds up a stop of the world.  For a thread that is not attached these
 * calls do nothing.
 */
#include "sync/ebr.h"

#include "gomap/gc.h"

#include <errno.h>
#include <stdio.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SEMA_ROOTS 251

gm_sync_stats gm_sync_counters __attribute__((aligned(64)));

/* ---- futex and small helpers -------------------------------------------- */

void gm_futex_wait(uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void gm_futex_wake(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int64_t gm_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int gm_ncpu(void)
{
    static int ncpu_a;
    int n = at_load_relaxed(&ncpu_a);
    if (n == 0) {
        long v = sysconf(_SC_NPROCESSORS_ONLN);
        n = v > 0 ? (int)v : 1;
        at_store_relaxed(&ncpu_a, n);
    }
    return n;
}

void gm_lock_slow(gm_lock *l)
{
    /* A short spin first: root critical sections are tiny. */
    for (int i = 0; i < 100; i++) {
        uint32_t zero = 0;
        if (at_load_relaxed(&l->key_a) == 0 && at_cas_acquire(&l->key_a, &zero, 1))
            return;
        gm_cpu_relax();
    }
    while (__atomic_exchange_n(&l->key_a, 2, __ATOMIC_ACQUIRE) != 0)
        gm_futex_wait(&l->key_a, 2);
}

void gm_sync_stats_get(gm_sync_stats *out)
{
    uint64_t *dst = (uint64_t *)out;
    uint64_t *src = (uint64_t *)&gm_sync_counters;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        dst[i] = at_load_relaxed(&src[i]);
    gm_ebr_counts(&out->ebr_retired, &out->ebr_freed);   /* kept per thread */
}

/* ---- the table ---------------------------------------------------------- */

typedef struct sema_waiter {
    uint32_t *addr;
    struct sema_waiter *parent, *left, *right; /* tree links: list heads only */
    struct sema_waiter *next;                  /* FIFO of the same address */
    struct sema_waiter *tail;                  /* list head only: last waiter */
    uint64_t prio;                             /* treap priority: list heads only */
    uint32_t wake_a;                           /* 0 parked, 1 woken */
    uint32_t ticket;                           /* 1: the count was handed to us */
} sema_waiter;

typedef struct sema_root {
    gm_lock lock;
    uint32_t nwait_a;        /* waiters announced or queued, all addresses */
    sema_waiter *tree;       /* protected by lock */
} __attribute__((aligned(64))) sema_root;

static sema_root roots[SEMA_ROOTS];

static sema_root *root_of(const uint32_t *addr)
{
    return &roots[((uintptr_t)addr >> 3) % SEMA_ROOTS];
}

/* Takes one from the count if it is positive. */
static bool can_acquire(uint32_t *addr)
{
    uint32_t v = at_load_seqcst(addr);
    while (v != 0)
        if (at_cas_seqcst(addr, &v, v - 1)) return true;
    return false;
}

/* ---- treap -------------------------------------------------------------- */

static long check_tree(const sema_waiter *n, const sema_waiter *parent,
                       uintptr_t lo, uintptr_t hi);
/* Expensive-check builds verify a root's treap after every change. */
#define CHECK_ROOT(r) GM_ASSERT_EXPENSIVE(check_tree((r)->tree, NULL, 0, UINTPTR_MAX) >= 0)

static void set_child(sema_root *r, sema_waiter *parent, sema_waiter *old,
                      sema_waiter *new_)
{
    if (parent == NULL) r->tree = new_;
    else if (parent->left == old) parent->left = new_;
    else parent->right = new_;
}

static void rotate_left(sema_root *r, sema_waiter *x)
{
    sema_waiter *y = x->right;
    x->right = y->left;
    if (y->left) y->left->parent = x;
    y->parent = x->parent;
    set_child(r, x->parent, x, y);
    y->left = x;
    x->parent = y;
}

static void rotate_right(sema_root *r, sema_waiter *x)
{
    sema_waiter *y = x->left;
    x->left = y->right;
    if (y->right) y->right->parent = x;
    y->parent = x->parent;
    set_child(r, x->parent, x, y);
    y->right = x;
    x->parent = y;
}

static sema_waiter *find(sema_root *r, const uint32_t *addr)
{
    sema_waiter *n = r->tree;
    while (n != NULL && n->addr != addr)
        n = (uintptr_t)addr < (uintptr_t)n->addr ? n->left : n->right;
    return n;
}

/* Puts w in old's place in the tree (same links, same priority). */
static void replace_node(sema_root *r, sema_waiter *old, sema_waiter *w)
{
    w->parent = old->parent;
    w->left = old->left;
    w->right = old->right;
    w->prio = old->prio;
    if (w->left) w->left->parent = w;
    if (w->right) w->right->parent = w;
    set_child(r, old->parent, old, w);
}

static void queue(sema_root *r, uint32_t *addr, sema_waiter *w, bool lifo)
{
    w->addr = addr;
    w->next = NULL;
    w->tail = NULL;
    sema_waiter *head = find(r, addr);
    if (head != NULL) {
        if (lifo) {                 /* w becomes the head */
            replace_node(r, head, w);
            w->next = head;
            w->tail = head->tail ? head->tail : head;
            head->tail = NULL;
        } else {
            (head->tail ? head->tail : head)->next = w;
            head->tail = w;
        }
        CHECK_ROOT(r);
        return;
    }
    sema_waiter *p = NULL, **link = &r->tree;
    while (*link != NULL) {
        p = *link;
        link = (uintptr_t)addr < (uintptr_t)p->addr ? &p->left : &p->right;
    }
    *link = w;
    w->parent = p;
    w->left = w->right = NULL;
    w->prio = gm_rand64();
    while (w->parent != NULL && w->prio < w->parent->prio) {
        if (w->parent->left == w) rotate_right(r, w->parent);
        else rotate_left(r, w->parent);
    }
    CHECK_ROOT(r);
}

/* Removes and returns the oldest waiter on addr, or NULL. */
static sema_waiter *dequeue(sema_root *r, const uint32_t *addr)
{
    sema_waiter *head = find(r, addr);
    if (head == NULL) return NULL;
    sema_waiter *next = head->next;
    if (next != NULL) {
        replace_node(r, head, next);
        next->tail = head->tail == next ? NULL : head->tail;
    } else {
        while (head->left != NULL || head->right != NULL) {
            if (head->right == NULL ||
                (head->left != NULL && head->left->prio < head->right->prio))
                rotate_right(r, head);
            else
                rotate_left(r, head);
        }
        set_child(r, head->parent, head, NULL);
    }
    head->next = head->tail = head->parent = head->left = head->right = NULL;
    CHECK_ROOT(r);
    return head;
}

/* ---- park / wake -------------------------------------------------------- */

/* A parked thread is "blocking" for the collector (Go's gopark): a stop of
 * the world does not wait for it, and it touches no GC object until it
 * returns (the waiter lives on its stack, not in the GC heap). */
static void park(sema_waiter *w)
{
    GM_SYNC_COUNT(sema_sleeps);
    gm_blocking_begin();
    while (at_load_acquire(&w->wake_a) == 0)
        gm_futex_wait(&w->wake_a, 0);
    gm_blocking_end();
}

static void wake(sema_waiter *w)
{
    uint32_t *word = &w->wake_a;
    at_store_release(word, 1);
    /* w may be gone from here on; only its address is used. */
    gm_futex_wake(word, 1);
}

/* ---- the API ------------------------------------------------------------ */

void gm_sema_acquire_ex(uint32_t *addr, bool lifo)
{
    if (can_acquire(addr)) return;
    sema_root *r = root_of(addr);
    sema_waiter w;
    for (;;) {
        gm_lock_acquire(&r->lock);
        at_add_seqcst(&r->nwait_a, 1);
        if (can_acquire(addr)) {
            at_add_seqcst(&r->nwait_a, (uint32_t)-1);
            gm_lock_release(&r->lock);
            return;
        }
        w.wake_a = 0;
        w.ticket = 0;
        queue(r, addr, &w, lifo);
        gm_lock_release(&r->lock);
        park(&w);
        /* ticket is written before the release store that woke us. */
        if (w.ticket != 0 || can_acquire(addr)) return;
        /* Lost the count to a running thread: queue again, as asked. */
    }
}

void gm_sema_release_ex(uint32_t *addr, bool handoff)
{
    sema_root *r = root_of(addr);
    at_add_seqcst(addr, 1);
    if (at_load_seqcst(&r->nwait_a) == 0) return;
    gm_lock_acquire(&r->lock);
    if (at_load_relaxed(&r->nwait_a) == 0) {
        gm_lock_release(&r->lock);
        return;
    }
    sema_waiter *w = dequeue(r, addr);
    if (w != NULL) at_add_seqcst(&r->nwait_a, (uint32_t)-1);
    gm_lock_release(&r->lock);
    if (w == NULL) return;
    if (handoff && can_acquire(addr)) {
        w->ticket = 1;
        GM_SYNC_COUNT(sema_handoffs);
    }
    wake(w);
}

void gm_sema_acquire(uint32_t *addr) { gm_sema_acquire_ex(addr, false); }
void gm_sema_release(uint32_t *addr) { gm_sema_release_ex(addr, false); }

/* ---- inspection --------------------------------------------------------- */

size_t gm_sema_waiters(const uint32_t *addr)
{
    sema_root *r = root_of(addr);
    size_t n = 0;
    gm_lock_acquire(&r->lock);
    for (sema_waiter *w = find(r, addr); w != NULL; w = w->next) n++;
    gm_lock_release(&r->lock);
    return n;
}

static _Thread_local char check_msg[160];

/* Walks one subtree; returns the number of waiters in it, or -1. */
static long check_tree(const sema_waiter *n, const sema_waiter *parent,
                       uintptr_t lo, uintptr_t hi)
{
    if (n == NULL) return 0;
    uintptr_t a = (uintptr_t)n->addr;
    if (n->parent != parent || a < lo || a > hi ||
        (parent != NULL && n->prio < parent->prio)) {
        snprintf(check_msg, sizeof check_msg,
                 "sema: bad treap node for address %p", (void *)n->addr);
        return -1;
    }
    long count = 0;
    const sema_waiter *last = n;
    for (const sema_waiter *w = n; w != NULL; w = w->next) {
        if (w->addr != n->addr) {
            snprintf(check_msg, sizeof check_msg,
                     "sema: waiter of %p queued under %p", (void *)w->addr,
                     (void *)n->addr);
            return -1;
        }
        last = w;
        count++;
    }
    if ((n->next == NULL) != (n->tail == NULL) || (n->tail && n->tail != last)) {
        snprintf(check_msg, sizeof check_msg, "sema: bad tail for %p",
                 (void *)n->addr);
        return -1;
    }
    long l = check_tree(n->left, n, lo, a - 1);
    if (l < 0) return -1;
    long rr = check_tree(n->right, n, a + 1, hi);
    if (rr < 0) return -1;
    return count + l + rr;
}

const char *gm_sema_check(void)
{
    for (int i = 0; i < SEMA_ROOTS; i++) {
        sema_root *r = &roots[i];
        gm_lock_acquire(&r->lock);
        long n = check_tree(r->tree, NULL, 0, UINTPTR_MAX);
        uint32_t nwait = at_load_relaxed(&r->nwait_a);
        gm_lock_release(&r->lock);
        if (n < 0) return check_msg;
        if ((uint32_t)n > nwait) {
            snprintf(check_msg, sizeof check_msg,
                     "sema: root %d holds %ld waiters but nwait is %u", i, n, nwait);
            return check_msg;
        }
    }
    return NULL;
}
