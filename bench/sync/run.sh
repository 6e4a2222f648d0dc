#!/usr/bin/env bash
# run.sh - build and run the sync benchmarks (bench_sync.c says what they
# measure).  Installs its Debian packages first (Concurrency Kit, liburcu).
#   bench/sync/run.sh [--reps R] [--quick]
# gomap is built with -O2 -DNDEBUG, without fault injection, in
# build/bench-sync.  The machine may be shared: run late, quote medians.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/common.sh
source "$HERE/../../scripts/common.sh"
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}" libck-dev liburcu-dev
BUILD="$ROOT/build/bench-sync"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGOMAP_TESTS=OFF \
  -DGOMAP_TOOLS=OFF -DGOMAP_FAULT_INJECTION=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target gomap_static >/dev/null
# shellcheck disable=SC2046
cc -std=c11 -O2 -DNDEBUG -Wall -Wextra -I"$ROOT/include" "$HERE/bench_sync.c" \
  -o "$BUILD/bench_sync" "$BUILD/libgomap.a" -lz -ldl \
  $(pkg-config --cflags --libs liburcu liburcu-cds) -lck -lpthread -lm
echo "bench/sync: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench_sync" "$@"
