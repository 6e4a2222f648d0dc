#!/usr/bin/env bash
# soak.sh - the long run of the GC stress tests, every cycle verified by
# GMDEBUG=gccheckmark=1: threads mutating maps on the GC heap while cycles run
# back to back (tests/map/test_map_gc_stress.c), and the collector's own
# graph-mutation stress under the concurrent mark (tests/gc/test_gc_concurrent.c).
#
#   scripts/soak.sh            # 10 minutes
#   scripts/soak.sh 30         # 30 minutes
#
# Builds an optimised build with assertions and fault switches
# (build/soak) and gives each stress program an equal share of the minutes;
# prints a summary per program and exits non-zero on the first failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"
MINUTES="${1:-10}"
case "$MINUTES" in ''|*[!0-9]*) echo "soak.sh: minutes must be a positive integer, got '$MINUTES'" >&2; exit 2;; esac
[ "$MINUTES" -gt 0 ] || { echo "soak.sh: minutes must be > 0" >&2; exit 2; }
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}"
DIR="$ROOT/build/soak"
configure_and_build "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOMAP_DEV=ON -DGOMAP_TESTS=ON

# program  test-case  mode  GMDEBUG
#   mode "seconds": the program runs for its share (GOMAP_SOAK_SECONDS);
#   mode "repeat":  it runs again and again (GOMAP_TEST_SCALE=4) until the
#                   share is used up.
PROGRAMS=(
  "tests/map/test_map_gc_stress threads_mutate_maps_while_collections_run seconds gccheckmark=1"
  "tests/gc/test_gc_concurrent concurrent_mutation_stress repeat gccheckmark=1,clobberfree=1"
)
SHARE=$(( MINUTES * 60 / ${#PROGRAMS[@]} ))
start=$(date +%s)
for p in "${PROGRAMS[@]}"; do
  set -- $p
  prog="$1" case="$2" mode="$3" dbg="$4"
  [ -x "$DIR/$prog" ] || { echo "soak: $prog was not built" >&2; exit 1; }
  echo "soak: $prog $case for ${SHARE}s with GMDEBUG=$dbg" >&2
  t0=$(date +%s) runs=0
  while :; do
    if [ "$mode" = seconds ]; then
      out=$(GMDEBUG="$dbg" GOMAP_SOAK_SECONDS="$SHARE" "$DIR/$prog" "$case" 2>&1) || status=$?
    else
      out=$(GMDEBUG="$dbg" GOMAP_TEST_SCALE=4 "$DIR/$prog" "$case" 2>&1) || status=$?
    fi
    if [ "${status:-0}" -ne 0 ]; then
      echo "$out" | tail -40
      echo "soak: FAILED: $prog $case (run $((runs + 1)))" >&2
      exit 1
    fi
    runs=$((runs + 1))
    [ "$mode" = seconds ] && break
    [ $(( $(date +%s) - t0 )) -ge "$SHARE" ] && break
  done
  echo "$out" | grep -v '^ok \|passed,' || true
  echo "soak: $prog $case: $runs run(s) in $(( $(date +%s) - t0 ))s, all passed"
done
echo "soak: all passed in $(( $(date +%s) - start ))s"
