/* wordcount.c - count words on stdin with a typed gomap map.
 *   echo "the cat the hat" | ./example_wordcount            */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gomap/gomap.h>

/* gm_type_str_owned: the map copies each word's bytes, so the line buffer
 * can be reused at once. */
GM_MAP_DEFINE(wordcount, gm_str, int64_t, gm_type_str_owned);

int main(void)
{
    wordcount *wc = wordcount_new(0);
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        char *p = line;
        for (;;) {
            while (*p && !isalnum((unsigned char)*p)) p++;
            if (!*p) break;
            char *w = p;
            while (isalnum((unsigned char)*p)) p++;
            (*wordcount_ref(wc, (gm_str){ w, (size_t)(p - w) }))++;
        }
    }
    wordcount_iter it;
    gm_str w;
    int64_t n;
    wordcount_iter_init(&it, wc);   /* Go's random order */
    while (wordcount_iter_next(&it, &w, &n)) printf("%7lld %.*s\n", (long long)n, (int)w.len, w.ptr);
    wordcount_free(wc);
    return 0;
}
