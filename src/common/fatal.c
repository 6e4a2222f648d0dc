/* fatal.c - the two ways gomap reports trouble (see internal.h). */
#include "common/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Written with write(2), not stdio: a fatal error may come from a thread that
 * holds the stdio lock, or from a corrupted heap. */
static void write_all(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

void gm_fatal(const char *msg)
{
    write_all("fatal error: ", 13);
    write_all(msg, strlen(msg));
    write_all("\n", 1);
    abort();
}

void gm_fatalf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    gm_fatal(buf);
}

void gm_errorf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)(sizeof buf - 2);
    buf[n] = '\n';
    write_all("gomap: ", 7);
    write_all(buf, (size_t)n + 1);
}
