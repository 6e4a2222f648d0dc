/* once.c - sync.Once.
 *
 * done_a goes 0 -> 1 exactly once, after fn has returned, with a release
 * store; the fast path is one acquire load that sees 1, which also makes
 * everything fn wrote visible.  Callers that see 0 serialise on m; the first
 * to get it runs fn, the rest find done_a == 1 under m and return.
 */
#include "sync/sync_internal.h"

static void once_slow(gm_once *o, void (*fn)(void *), void *arg)
{
    gm_mutex_lock(&o->m);
    if (at_load_relaxed(&o->done_a) == 0) {   /* written only under m */
        fn(arg);
        at_store_release(&o->done_a, 1);
    }
    gm_mutex_unlock(&o->m);
}

void gm_once_do(gm_once *o, void (*fn)(void *), void *arg)
{
    if (GM_LIKELY(at_load_acquire(&o->done_a) != 0)) return;
    once_slow(o, fn, arg);
}
