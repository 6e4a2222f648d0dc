/* gomap/gomap.h - the umbrella header: everything gomap offers. */
#ifndef GOMAP_GOMAP_H
#define GOMAP_GOMAP_H

#include "gomap/config.h"
#include "gomap/type.h"
#include "gomap/map.h"
#include "gomap/gc.h"
#include "gomap/sync.h"
#include "gomap/trace.h"

#endif
