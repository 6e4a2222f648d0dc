/* gomap/sync.h - (being written) */
#ifndef GOMAP_SYNC_H
#define GOMAP_SYNC_H
#include "gomap/config.h"
#endif
