/* gomap/config.h - compile-time options and export macros, in one place. */
#ifndef GOMAP_CONFIG_H
#define GOMAP_CONFIG_H

#define GOMAP_VERSION_MAJOR 0
#define GOMAP_VERSION_MINOR 1
#define GOMAP_VERSION_PATCH 0

/* Symbols of the public API are visible; everything else in the shared
 * library is hidden (-fvisibility=hidden). */
#if defined(__GNUC__)
#define GM_API __attribute__((visibility("default")))
#define GM_NORETURN __attribute__((noreturn))
#define GM_MAYBE_UNUSED __attribute__((unused))
#else
#define GM_MAYBE_UNUSED
#define GM_API
#define GM_NORETURN
#endif

#endif
