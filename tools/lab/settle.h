/* settle.h - the measurements behind the scenarios that settle claims about
 * Go's map and GC (scn_settle.c), shared with the claims table (claims.c).
 *
 * Each m_* function runs its experiment once per process (sizes from
 * o->quick) and returns the cached result afterwards, so the claims table
 * after a full run reuses what the scenarios measured. */
#ifndef GOMAP_LAB_SETTLE_H
#define GOMAP_LAB_SETTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lab.h"

/* delete-and-the-gc */
typedef struct delgc_row {
    size_t n;
    bool alloc;                 /* the delete loop also allocates */
    uint64_t deletes;
    long cycles;                /* GC cycles that ran during the loop */
    uint64_t assists, assist_work, bg_work;
    uint64_t max_pause_ns, med_pause_ns;
    uint64_t mallocs_before, mallocs_after;
} delgc_row;
typedef struct delgc_result {
    delgc_row rows[6];
    int nrows;
    bool mallocs_monotone;      /* Mallocs never fell across the deletes */
    uint64_t shades;            /* write-barrier shades during the checkmark child's deletes */
    bool ck_ok;                 /* checkmark child: deletes with the barrier, no loss */
    char ck_line[160];
    int fault;                  /* -1: not a fault build; 1: barrier dropped, checkmark caught it; 0: not */
    char fault_line[160];
} delgc_result;
const delgc_result *m_delete_gc(const lab_opts *o);

/* who-evacuates */
typedef struct evac_result {
    size_t old_nbuckets, nbuckets, keys;
    size_t nevac_start, nevac_after_cycles, nevac_after_reads;
    uint64_t evac_start, evac_after_cycles, evac_after_reads;
    int cycles;
    uint64_t reads;
    uint64_t writes;            /* writes until the grow finished */
    uint64_t max_per_write;     /* most old buckets one write evacuated */
    size_t bytes_before, bytes_peak, bytes_after;   /* old + new held */
    uint64_t scan_growing, scan_done;               /* mark work per cycle, pointer-free map */
    uint64_t scan_base;                             /* the same cycle without that map */
    size_t pf_bytes;                                /* the pointer-free map's buckets while growing */
} evac_result;
const evac_result *m_who_evacuates(const lab_opts *o);

/* size-hint */
typedef struct hint_row {
    size_t hint, n;
    uint64_t grows, evacuated;
    long cycles;
    uint64_t mark_work;
    uint64_t med_pause_ns, max_pause_ns;
    uint64_t min_pause_ns;      /* the shortest: what load on the machine cannot lengthen */
    uint64_t hist[4];           /* pauses < 50 us, < 200 us, < 1 ms, >= 1 ms */
    double fill_ms;
} hint_row;
typedef struct hint_result { hint_row rows[2]; } hint_result;
const hint_result *m_size_hint(const lab_opts *o);

/* misuse-matrix */
enum { MIS_DEL_DEL, MIS_DEL_READ, MIS_DEL_ITER, MIS_DEL_LEN, MIS_ASSIGN_DEL, MIS_ASSIGN_ASSIGN, MIS_N };
typedef struct mis_row {
    const char *pair;
    int runs, fatal, sigabrt, undetected, corrupt;
    int overlapped;             /* undetected runs whose two threads were inside the map at once */
    int at_end;                 /* fatal only at the end of a write: both writers had passed the check */
    char message[96];           /* the first fatal message seen */
} mis_row;
typedef struct misuse_result {
    mis_row rows[MIS_N];
    int races, races_fatal, races_at_end, races_undetected, races_overlapped;   /* misuse-races */
    int check_races, check_both;   /* misuse-check-races: attempts, both writers passed the check */
    double hold_ms;             /* how long thread A held its write */
    double len_ns;              /* len() called meanwhile by B: its duration */
    double writer_wait_ms;      /* B's write until B's process died */
    char writer_msg[96];
    bool hash_escape_ok;        /* a write abandoned inside the hash leaves the map usable */
    bool eq_escape_fatal;       /* one abandoned inside key comparison: later writers die, none hangs */
    char eq_escape_msg[96];
} misuse_result;
const misuse_result *m_misuse(const lab_opts *o);

/* gc-returns-swept */
typedef struct swept_result {
    int forced;                 /* forced cycles measured */
    size_t max_unswept_forced;  /* spans unswept right after gm_gc() returned */
    int paced;                  /* pacer-started cycles observed */
    size_t max_unswept_paced;   /* spans left to sweep just after such a cycle */
} swept_result;
const swept_result *m_gc_returns_swept(const lab_opts *o);

/* syncmap-delete */
typedef struct smdel_result {
    size_t n;                   /* keys stored */
    size_t read_before, read_after_delete, read_after_promote;
    size_t dirty_after_delete;
    size_t deleted_alive_1, deleted_alive_2;   /* after 1 and 2 cycles */
    size_t kept_alive;
    bool promoted;
} smdel_result;
const smdel_result *m_syncmap_delete(const lab_opts *o);

/* helpers shared with claims.c */
typedef struct lab_collector { void *thread; } lab_collector;
void lab_collector_start(lab_collector *c);   /* gm_gc() back to back on another thread */
long lab_collector_stop(lab_collector *c);    /* returns the cycles it ran */
uint64_t lab_pauses(uint32_t from_gc, uint64_t *max_ns);   /* median of the pauses since cycle from_gc */

#endif
