/* lab.h - gomap-lab's scenario registry and report helpers. */
#ifndef GOMAP_LAB_H
#define GOMAP_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gomap/map.h"

typedef struct lab_opts {
    bool quick;          /* a few seconds per scenario */
    const char *trace;   /* --trace FILE.json: Chrome trace events */
    const char *svgdir;  /* --svg DIR: charts */
    bool gctrace;        /* --gctrace: Go's gctrace lines on stderr (GMDEBUG=gctrace=1) */
    const char *pprof;   /* --pprof DIR: one heap profile (profile.proto, gzip'd) per scenario */
} lab_opts;

typedef struct lab_scenario {
    int order;           /* position in a full run: the story a newcomer reads */
    const char *name;
    const char *title;
    const char *about;   /* what question it answers, for `gomap-lab list` */
    int (*run)(const lab_opts *o);   /* 0 when every claim it checks holds */
} lab_scenario;

void lab_register(const lab_scenario *s);

/* A piece of a scenario that must run in a fresh process (a fatal error is
 * the expected outcome, or it needs its own GMDEBUG): gomap-lab re-executes
 * itself with a hidden `--child NAME`. */
typedef struct lab_child {
    const char *name;
    int (*run)(void);    /* the child's exit status */
} lab_child;
void lab_register_child(const lab_child *c);
#define LAB_CHILD(var) \
    __attribute__((constructor)) static void lab_regc_##var(void) { lab_register_child(&var); }
/* Runs child NAME with GMDEBUG set to gmdebug (NULL: unset) and collects its
 * stderr into buf; *status gets waitpid's status.  False if it could not
 * be started. */
bool lab_run_child(const char *name, const char *gmdebug, char *buf, size_t n, int *status);
#define LAB_SCENARIO(var) \
    __attribute__((constructor)) static void lab_reg_##var(void) { lab_register(&var); }

/* Reporting. */
void lab_heading(const char *title);
void lab_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lab_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lab_table_begin(int ncols, const char *const *headers);
void lab_table_row(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* cells split by '|' */
void lab_table_end(void);
void lab_verdict(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A verdict that rests on timing or on how threads happen to interleave:
 * in sanitizer builds (which change both) a failure is reported as [skip]
 * and not counted. */
void lab_verdict_stat(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool lab_sanitized(void);

/* The claims table (claims.c): one row per claim of docs/claims.md, each
 * verdict measured in this run; 0 when every verdict is the expected one. */
int lab_run_claims(const lab_opts *o);

/* Scans stderr text for the first line containing needle; NULL if none.
 * The line is cut at its newline (buf is modified). */
const char *lab_line_with(char *buf, const char *needle);

/* SVG charts (svg.c). */
typedef struct lab_series {
    const char *label;
    const double *x, *y;
    size_t n;
    bool restart_on_drop; /* a falling value starts a new line (e.g. a new map resize) */
} lab_series;
bool lab_svg_lines(const char *path, const char *title, const char *xl, const char *yl,
                   const lab_series *s, int ns);
bool lab_svg_bars(const char *path, const char *title, const char *xl, const char *yl,
                  const char *const *labels, const double *v, size_t n);
/* Writes the charts of the run into dir (charts.c). */
int lab_write_charts(const char *dir);

uint64_t lab_now_ns(void);
size_t lab_rss_bytes(void);
const char *lab_bytes(double b, char *buf, size_t n); /* "12.3 MiB" */

/* The classic engine, whatever GMDEBUG=mapengine says: the claims and the
 * scenarios that settle them are about Go's classic map (its buckets,
 * evacuation and write flag; some read its header). */
static inline gm_map *lab_classic_map(const gm_type *k, const gm_type *v, size_t hint, bool gc)
{
    return gm_map_new_opts(k, v, &(gm_map_opts){ GM_MAP_CLASSIC, gc, hint });
}

#endif
