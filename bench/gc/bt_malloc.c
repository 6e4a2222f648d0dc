/* bt_malloc.c - binary-trees with malloc/free (glibc), the no-GC baseline. */
#include "bt_common.h"

typedef struct node_t { struct node_t *left, *right; } node_t;

static node_t *make(int d)
{
    node_t *n = malloc(sizeof *n);
    if (!n) abort();
    n->left = d > 0 ? make(d - 1) : NULL;
    n->right = d > 0 ? make(d - 1) : NULL;
    return n;
}

static uint64_t check(const node_t *t)
{
    return t->left ? 1 + check(t->left) + check(t->right) : 1;
}

static void drop(node_t *t)
{
    if (t->left) {
        drop(t->left);
        drop(t->right);
    }
    free(t);
}

static void pauses(double *max_ms, double *p99_ms) { *max_ms = *p99_ms = 0; }

int main(void)
{
    BT_RUN("malloc", make, check, drop, 0, pauses, 0);
    return 0;
}
