/* ebr.h - epoch-based reclamation for the lock-free readers of src/sync.
 * See the essay in ebr.c. */
#ifndef GOMAP_SYNC_EBR_H
#define GOMAP_SYNC_EBR_H

#include "sync/sync_internal.h"

typedef struct gm_ebr_rec gm_ebr_rec;

/* Enter / leave a read-side critical section (nestable).  While pinned, no
 * object retired by anyone after this thread pinned is freed. */
GM_INTERNAL gm_ebr_rec *gm_ebr_pin(void);
GM_INTERNAL void gm_ebr_unpin(gm_ebr_rec *r);
/* Frees fn(p) once no thread can still hold p: p must already be unreachable
 * for threads that pin from now on. */
GM_INTERNAL void gm_ebr_retire(void *p, void (*fn)(void *));

#endif
