#include <gomap/gomap.h>
#include <stdio.h>

int main(void)
{
    gm_map *m = gm_map_new(&gm_type_u64, &gm_type_u64, 0);
    for (uint64_t i = 0; i < 1000; i++) *(uint64_t *)gm_map_assign_u64(m, i) = i * 2;
    uint64_t *v = gm_map_get_u64(m, 500);
    int ok = v && *v == 1000 && gm_map_len(m) == 1000 && gm_map_check(m) == NULL;
    gm_map_free(m);
    printf("consumer: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
