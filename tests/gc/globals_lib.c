/* globals_lib.c - a library the globals tests dlopen: one static pointer
 * that gomap knows nothing about (no gm_root_add), written with plain stores. */
#include <stdint.h>

static void *held;
static void *held_many[1024];

__attribute__((visibility("default"))) void globals_lib_set(void *p) { held = p; }
__attribute__((visibility("default"))) void *globals_lib_get(void) { return held; }
__attribute__((visibility("default"))) void globals_lib_set_at(unsigned i, void *p) { held_many[i % 1024] = p; }
__attribute__((visibility("default"))) void *globals_lib_get_at(unsigned i) { return held_many[i % 1024]; }
