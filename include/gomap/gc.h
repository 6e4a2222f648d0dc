/* gomap/gc.h - (being written) */
#ifndef GOMAP_GC_H
#define GOMAP_GC_H
#include "gomap/config.h"
#endif
