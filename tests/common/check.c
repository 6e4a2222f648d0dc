/* check.c - the test harness: registry, runner, fork-based fatal checks. */
#include "check.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct { const char *name; test_fn fn; } tests[MAX_TESTS];
static int ntests;
int check_failures;

void test_register(const char *name, test_fn fn)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "check: too many tests\n");
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void check_fail(const char *file, int line, const char *expr, const char *detail)
{
    check_failures++;
    fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr,
            detail ? " -- " : "", detail ? detail : "");
}

double test_scale(void)
{
    const char *s = getenv("GOMAP_TEST_SCALE");
    double v = s ? atof(s) : 1.0;
    if (v <= 0) v = 1.0;
#ifdef GOMAP_SANITIZED
    v /= 4;
#endif
    return v;
}

long test_minor_faults(bool thread)
{
    struct rusage ru;
    getrusage(thread ? RUSAGE_THREAD : RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

long test_resident_pages(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = -1;
    fclose(f);
    return res;
}

static bool run_child(void (*fn)(void *), void *arg, char *buf, size_t cap,
                      int *status)
{
    int fds[2];
    if (pipe(fds) != 0) return false;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, cap - 1 - n)) > 0) {
        n += (size_t)r;
        if (n == cap - 1) break;
    }
    buf[n] = 0;
    close(fds[0]);
    waitpid(pid, status, 0);
    return true;
}

bool expect_abort_with(void (*fn)(void *), void *arg, const char *needle)
{
    char buf[8192];
    int status = 0;
    if (!run_child(fn, arg, buf, sizeof buf, &status)) return false;
    bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    bool found = strstr(buf, needle) != NULL;
    if (!aborted || !found)
        fprintf(stderr, "expect_abort_with(\"%s\"): aborted=%d, child stderr:\n%s\n",
                needle, aborted, buf);
    return aborted && found;
}

bool expect_fatal(void (*fn)(void *), void *arg, const char *msg)
{
    char needle[512];
    snprintf(needle, sizeof needle, "fatal error: %s\n", msg);
    return expect_abort_with(fn, arg, needle);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        bool selected = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], tests[i].name) == 0) selected = true;
        if (!selected) continue;
        int before = check_failures;
        tests[i].fn();
        if (check_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
    }
    if (passed + failed == 0) {
        fprintf(stderr, "no test matched\n");
        return 2;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
