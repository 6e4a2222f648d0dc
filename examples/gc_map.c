/* gc_map.c - a map on the GC heap holding pointers to GC objects.
 *   GMDEBUG=gctrace=1 ./example_gc_map       (one trace line per collection) */
#include <stdio.h>
#include <string.h>

#include <gomap/gomap.h>

typedef struct user { gm_str name; uint64_t visits; } user;
/* word 0 (name.ptr) is a GC pointer; the rest is plain data */
static const uint8_t user_mask[] = { 0x1 };
static const gm_type user_type = { sizeof(user), 8, NULL, NULL, user_mask, 0, "user" };

int main(void)
{
    /* map[uint64]*user: values are GC pointers, so the buckets are scanned */
    gm_map *users = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    for (uint64_t id = 0; id < 200000; id++) {
        user *u = gm_new(&user_type);
        char buf[32];
        int n = snprintf(buf, sizeof buf, "user-%llu", (unsigned long long)id);
        char *bytes = gm_alloc_noscan((size_t)n);
        memcpy(bytes, buf, (size_t)n);
        gm_store((void *)&u->name.ptr, bytes);  /* a pointer store into a GC object */
        u->name.len = (size_t)n;
        gm_map_put(users, &id, &u);             /* the map barriers its own writes */
    }
    for (uint64_t id = 0; id < 200000; id += 2) gm_map_delete(users, &id);  /* garbage now */
    gm_gc();

    uint64_t id = 4243;
    user **u = gm_map_get(users, &id);
    gm_memstats ms;
    gm_read_memstats(&ms);
    printf("%zu users; user %llu is %.*s; heap %.1f MiB after %u collections\n",
           gm_map_len(users), (unsigned long long)id, (int)(*u)->name.len, (*u)->name.ptr,
           ms.heap_alloc / 1048576.0, ms.num_gc);
    return 0;
}
