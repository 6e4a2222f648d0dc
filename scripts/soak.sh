#!/usr/bin/env bash
# soak.sh - the long run of the GC stress tests: threads mutating maps on the
# GC heap (and, once present, the collector's own mutation stress) while
# cycles run back to back, every cycle verified by GMDEBUG=gccheckmark=1.
#
#   scripts/soak.sh            # 10 minutes
#   scripts/soak.sh 30         # 30 minutes
#
# Builds an optimised build with assertions and fault switches
# (build/soak) and runs each stress program for the given minutes; prints one
# summary line per program and exits non-zero on the first failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"
MINUTES="${1:-10}"
case "$MINUTES" in ''|*[!0-9]*) echo "soak.sh: minutes must be a positive integer, got '$MINUTES'" >&2; exit 2;; esac
[ "$MINUTES" -gt 0 ] || { echo "soak.sh: minutes must be > 0" >&2; exit 2; }
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}"
DIR="$ROOT/build/soak"
configure_and_build "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOMAP_DEV=ON -DGOMAP_TESTS=ON

# program  test-case  (each gets an equal share of the time)
PROGRAMS=(
  "tests/map/test_map_gc_stress threads_mutate_maps_while_collections_run"
)
SHARE=$(( MINUTES * 60 / ${#PROGRAMS[@]} ))
start=$(date +%s)
for p in "${PROGRAMS[@]}"; do
  set -- $p
  echo "soak: $1 $2 for ${SHARE}s with GMDEBUG=gccheckmark=1" >&2
  if ! out=$(GMDEBUG=gccheckmark=1 GOMAP_SOAK_SECONDS="$SHARE" "$DIR/$1" "$2" 2>&1); then
    echo "$out" | tail -40
    echo "soak: FAILED: $1 $2" >&2
    exit 1
  fi
  echo "$out" | grep -v '^ok \|passed,' || true
done
echo "soak: all passed in $(( $(date +%s) - start ))s"
