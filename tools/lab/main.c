/* gomap-lab - runs the scenarios people argue about for Go's map (and, as
 * gomap grows, its GC) in this runtime, and reports what actually happens.
 *
 *   gomap-lab               run every scenario
 *   gomap-lab list          describe them
 *   gomap-lab NAME...       run some
 *   gomap-lab claims        the claims table (docs/claims.md), measured
 *   --quick                 a few seconds each
 *   --gctrace               Go's gctrace lines on stderr
 *   --pprof DIR             a heap profile per scenario (go tool pprof)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "gomap/gc.h"
#include "gomap/trace.h"
#include "lab.h"

#define MAX_SCN 32
static const lab_scenario *scns[MAX_SCN];
static int nscn;

void lab_register(const lab_scenario *s)
{
    if (nscn < MAX_SCN) scns[nscn++] = s;
}

#define MAX_CHILD 32
static const lab_child *childs[MAX_CHILD];
static int nchild;

void lab_register_child(const lab_child *c)
{
    if (nchild < MAX_CHILD) childs[nchild++] = c;
}

bool lab_run_child(const char *name, const char *gmdebug, char *buf, size_t n, int *status)
{
    int fds[2];
    if (n == 0 || pipe(fds) != 0) return false;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (gmdebug) setenv("GMDEBUG", gmdebug, 1);
        else unsetenv("GMDEBUG");
        execl("/proc/self/exe", "gomap-lab", "--child", name, (char *)NULL);
        fprintf(stderr, "gomap-lab: cannot re-execute itself: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    char sink[512];
    while ((r = read(fds[0], got < n - 1 ? buf + got : sink, got < n - 1 ? n - 1 - got : sizeof sink)) > 0)
        if (got < n - 1) got += (size_t)r;
    buf[got] = 0;
    close(fds[0]);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
    return true;
}

static int cmp_scn(const void *a, const void *b)
{
    const lab_scenario *x = *(const lab_scenario *const *)a, *y = *(const lab_scenario *const *)b;
    return x->order != y->order ? x->order - y->order : strcmp(x->name, y->name);
}

uint64_t lab_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t lab_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

const char *lab_bytes(double b, char *buf, size_t n)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB" };
    int i = 0;
    while (b >= 1024 && i < 3) {
        b /= 1024;
        i++;
    }
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
    return buf;
}

void lab_heading(const char *title)
{
    printf("\n== %s ==\n", title);
}

void lab_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void lab_progress(const char *fmt, ...)
{
    if (!isatty(2)) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\r  ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\033[K");
    va_end(ap);
}

/* Tables: rows are buffered so column widths fit the widest cell. */
#define MAX_ROWS 64
#define MAX_COLS 10
static char cells[MAX_ROWS + 1][MAX_COLS][48];
static int trows, tcols;

void lab_table_begin(int ncols, const char *const *headers)
{
    tcols = ncols < MAX_COLS ? ncols : MAX_COLS;
    trows = 1;
    for (int c = 0; c < tcols; c++) snprintf(cells[0][c], sizeof cells[0][c], "%s", headers[c]);
}

void lab_table_row(const char *fmt, ...)
{
    if (trows > MAX_ROWS) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *p = line;
    for (int c = 0; c < tcols; c++) {
        char *bar = strchr(p, '|');
        if (bar) *bar = 0;
        size_t l = strlen(p);
        if (l >= sizeof cells[trows][c]) l = sizeof cells[trows][c] - 1;
        memcpy(cells[trows][c], p, l);
        cells[trows][c][l] = 0;
        p = bar ? bar + 1 : p + strlen(p);
    }
    trows++;
}

void lab_table_end(void)
{
    int w[MAX_COLS] = { 0 };
    for (int r = 0; r < trows; r++)
        for (int c = 0; c < tcols; c++) {
            int l = (int)strlen(cells[r][c]);
            if (l > w[c]) w[c] = l;
        }
    for (int r = 0; r < trows; r++) {
        printf("  ");
        for (int c = 0; c < tcols; c++) printf(c ? "  %*s" : "%-*s", w[c], cells[r][c]);
        printf("\n");
        if (r == 0) {
            printf("  ");
            int tot = 0;
            for (int c = 0; c < tcols; c++) tot += w[c] + (c ? 2 : 0);
            for (int i = 0; i < tot; i++) putchar('-');
            printf("\n");
        }
    }
    if (isatty(2)) fprintf(stderr, "\r\033[K");
}

static int verdict_failures;

void lab_verdict(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s ", ok ? "[ok]  " : "[FAIL]");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!ok) verdict_failures++;
}

const char *lab_line_with(char *buf, const char *needle)
{
    char *p = strstr(buf, needle);
    if (!p) return NULL;
    while (p > buf && p[-1] != '\n') p--;
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    return p;
}

bool lab_sanitized(void)
{
#ifdef GOMAP_SANITIZED
    return true;
#else
    return false;
#endif
}

void lab_verdict_stat(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool skip = !ok && lab_sanitized();
    printf("  %s ", ok ? "[ok]  " : skip ? "[skip]" : "[FAIL]");
    vprintf(fmt, ap);
    if (skip) printf(" (sanitizer build: timing and interleavings are not representative)");
    printf("\n");
    va_end(ap);
    if (!ok && !skip) verdict_failures++;
}

static void usage(void)
{
    printf("usage: gomap-lab [--quick] [--gctrace] [--pprof DIR] [--trace FILE.json] [--svg DIR]\n"
           "                 [list | claims | NAME...]\n"
           "Runs gomap's scenarios and reports what happens; with no NAME, all of them and\n"
           "then the claims table.\n"
           "  claims           one row per claim about Go's map and GC (docs/claims.md),\n"
           "                   each verdict measured in this run\n"
           "  --quick          a few seconds per scenario\n"
           "  --gctrace        Go's gctrace lines on stderr (GMDEBUG=gctrace=1)\n"
           "  --pprof DIR      DIR/NAME.pb.gz: a heap profile per scenario (go tool pprof)\n"
           "  --trace F.json   Chrome trace events (chrome://tracing, ui.perfetto.dev)\n"
           "  --svg DIR        charts: GC pauses, heap over time, map evacuation progress\n");
}

/* --gctrace: GMDEBUG is read when the heap starts, which is later (no
 * scenario has allocated yet); an existing GMDEBUG is kept. */
static void enable_gctrace(void)
{
    const char *old = getenv("GMDEBUG");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%sgctrace=1", old && *old ? old : "", old && *old ? "," : "");
    setenv("GMDEBUG", buf, 1);
}

static int write_profile(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.pb.gz", dir, name);
    if (!gm_write_heap_profile(path)) {
        fprintf(stderr, "gomap-lab: cannot write %s\n", path);
        return 1;
    }
    printf("  heap profile: %s (go tool pprof -top %s)\n", path, path);
    gm_heap_profile_reset();
    return 0;
}

int main(int argc, char **argv)
{
    lab_opts o = { 0 };
    const char *names[MAX_SCN];
    int nnames = 0;
    bool list = false;
    qsort(scns, (size_t)nscn, sizeof scns[0], cmp_scn);
    if (argc == 3 && !strcmp(argv[1], "--child")) {
        for (int i = 0; i < nchild; i++)
            if (!strcmp(childs[i]->name, argv[2])) return childs[i]->run();
        fprintf(stderr, "gomap-lab: no child part named '%s'\n", argv[2]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) o.quick = true;
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc) o.trace = argv[++i];
        else if (!strcmp(argv[i], "--svg") && i + 1 < argc) o.svgdir = argv[++i];
        else if (!strcmp(argv[i], "--pprof") && i + 1 < argc) o.pprof = argv[++i];
        else if (!strcmp(argv[i], "--gctrace")) o.gctrace = true;
        else if (!strcmp(argv[i], "list")) list = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
        else if (argv[i][0] == '-') { fprintf(stderr, "gomap-lab: unknown option %s\n", argv[i]); usage(); return 2; }
        else if (nnames < MAX_SCN) names[nnames++] = argv[i];
    }
    if (list) {
        for (int i = 0; i < nscn; i++) printf("%-22s %s\n%-22s   %s\n", scns[i]->name, scns[i]->title, "", scns[i]->about);
        return 0;
    }
    if (o.gctrace) enable_gctrace();
    bool claims = nnames == 0;
    for (int n = 0; n < nnames; n++) {
        if (!strcmp(names[n], "claims")) {
            claims = true;
            continue;
        }
        bool found = false;
        for (int i = 0; i < nscn; i++) found |= !strcmp(names[n], scns[i]->name);
        if (!found) {
            fprintf(stderr, "gomap-lab: no scenario named '%s' (see: gomap-lab list)\n", names[n]);
            return 2;
        }
    }
    char trace_path[4096];
    const char *tp = o.trace;
    if (o.svgdir) {
        if (mkdir(o.svgdir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "gomap-lab: cannot create %s: %s\n", o.svgdir, strerror(errno));
            return 2;
        }
        if (!tp) {
            snprintf(trace_path, sizeof trace_path, "%s/trace.json", o.svgdir);
            tp = trace_path;
        }
    }
    if (o.pprof && mkdir(o.pprof, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "gomap-lab: cannot create %s: %s\n", o.pprof, strerror(errno));
        return 2;
    }
    if (tp && !gm_trace_start(tp)) return 2;
    printf("gomap-lab: Go's map and garbage collector in C, measured here.%s\n", o.quick ? " (quick mode)" : "");
    int ran = 0;
    for (int i = 0; i < nscn; i++) {
        bool sel = nnames == 0;
        for (int n = 0; n < nnames; n++) sel |= !strcmp(names[n], scns[i]->name);
        if (!sel) continue;
        lab_heading(scns[i]->title);
        printf("  %s\n\n", scns[i]->about);
        if (o.gctrace) {
            fflush(stdout);
            fprintf(stderr, "gomap-lab: scenario %s\n", scns[i]->name);
        }
        if (o.pprof) gm_heap_profile_reset();
        if (scns[i]->run(&o) != 0) verdict_failures++;
        if (o.pprof) verdict_failures += write_profile(o.pprof, scns[i]->name);
        ran++;
    }
    if (claims) {
        if (o.gctrace) {
            fflush(stdout);
            fprintf(stderr, "gomap-lab: claims\n");
        }
        if (o.pprof) gm_heap_profile_reset();
        if (lab_run_claims(&o) != 0) verdict_failures++;
        if (o.pprof) verdict_failures += write_profile(o.pprof, "claims");
    }
    if (o.svgdir) {
        printf("\ncharts:\n");
        if (lab_write_charts(o.svgdir) != 0) verdict_failures++;
    }
    if (tp) {
        if (gm_trace_stop()) printf("  wrote %s (open in chrome://tracing or ui.perfetto.dev)\n", tp);
        else verdict_failures++;
    }
    printf("\n%d scenario%s run%s; %s\n", ran, ran == 1 ? "" : "s", claims ? " and the claims table" : "",
           verdict_failures ? "SOME CLAIMS DID NOT HOLD (see [FAIL] above)" : "every claim checked held.");
    return verdict_failures ? 1 : 0;
}
