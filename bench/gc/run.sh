#!/usr/bin/env bash
# run.sh - binary-trees (max depth 20, BT_THREADS=2 mutator threads) on
# gomap's GC heap (concurrent mark, and gomap-stw: GMDEBUG=gcstoptheworld=1)
# vs Boehm GC (default, and boehm-inc: GC_enable_incremental) vs Go vs
# malloc/free.  Installs what it needs (Debian packages), builds gomap in
# Release mode and the peers, runs them interleaved RUNS times (default 5),
# and prints the median of each figure and the ratios to Boehm.  Then a
# map-heavy workload (run_maps.sh: GC maps of pointers vs Boehm and Go;
# MAPS_RUNS / MAPS_SIZES).  Then the mt-gcbench and quads shapes
# (run_shapes.sh, SHAPES_RUNS rounds).  Then the
# checkmark soak: the concurrent-mutation stress test under
# GMDEBUG=gccheckmark=1 for SOAK_SCALE*40 cycles (default 25: 1000 cycles;
# SOAK_SCALE=0 skips it).
#
#   bench/gc/run.sh                         # depth 20, 5 rounds
#   RUNS=3 BT_DEPTH=18 bench/gc/run.sh
#   BT_LIVE_DEPTH=22 bench/gc/run.sh        # + a ~128 MiB live tree
#   BT_LIVE_DEPTH=25 PEERS="gomap boehm go" bench/gc/run.sh   # ~1 GiB live
#
# Figures: total time (wall, s), GC count, max and p99 stop-the-world pause
# (ms), GC CPU fraction, peak RSS (MB).  Pause sources: gomap's pause
# histogram (every stop-the-world pause, 1/16 resolution), Boehm's
# stop-world events (PRE_STOP_WORLD..POST_START_WORLD), Go MemStats.PauseNs
# (both pauses of a cycle summed; last 256 cycles).  GC CPU: gomap and Go
# MemStats GCCPUFraction; Boehm: time inside collections / (wall * CPUs).
# The output checksums of all peers must agree.
set -euo pipefail
RUNS="${RUNS:-5}"
export BT_DEPTH="${BT_DEPTH:-20}"
source "$(dirname "$0")/common.sh"
cc "${CFLAGS[@]}" "$HERE/bt_gomap.c" "${GOMAP_LIBS[@]}" -o "$OUT/bt_gomap"
cc "${CFLAGS[@]}" "$HERE/bt_boehm.c" -lgc -o "$OUT/bt_boehm"
cc "${CFLAGS[@]}" "$HERE/bt_malloc.c" -o "$OUT/bt_malloc"
(cd "$HERE" && GOCACHE="$OUT/gocache" GO111MODULE=off go build -o "$OUT/bt_go" bt_go.go)

read -r -a PEERS <<<"${PEERS:-gomap gomap-obj gomap-stw boehm boehm-inc go malloc}"
RES="$OUT/results.txt"
: >"$RES"
echo "binary-trees depth $BT_DEPTH, ${BT_THREADS:-2} threads, live depth ${BT_LIVE_DEPTH:-none}, $RUNS interleaved rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  for p in "${PEERS[@]}"; do
    case $p in
      gomap-stw) line=$(BT_PEER=gomap-stw GMDEBUG=gcstoptheworld=1 "$OUT/bt_gomap" | grep '^RESULT') ;;
      gomap-obj) line=$(BT_PEER=gomap-obj GMDEBUG=gcmarkqueue=object "$OUT/bt_gomap" | grep '^RESULT') ;;
      boehm-inc) line=$(BOEHM_INCREMENTAL=1 "$OUT/bt_boehm" | grep '^RESULT') ;;
      *) line=$("$OUT/bt_$p" | grep '^RESULT') ;;
    esac
    echo "$line" >>"$RES"
    echo "  round $r: $line"
  done
done

checks=$(awk '{for(i=3;i<=NF;i++) if ($i ~ /^check=/) print $i}' "$RES" | sort -u | wc -l)
[ "$checks" -eq 1 ] || { echo "checksums differ between peers!"; exit 1; }


table "$RES" "${PEERS[@]}"
echo "(over $RUNS interleaved rounds; load at the end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M) UTC)"

# The map-heavy workload (mh_*.c / mh_go.go, bench/gc/run_maps.sh): GC maps
# of pointers churned by 2 threads on gomap (concurrent and stop-the-world),
# Boehm (default and incremental, with a GC_MALLOC'd table) and Go maps.
# MAPS_RUNS rounds (default RUNS), MAPS_SIZES records per thread.
echo
RUNS="${MAPS_RUNS:-$RUNS}" SIZES="${MAPS_SIZES:-550000}" bash "$HERE/run_maps.sh"

# The mt-gcbench and quads shapes (sh_*.c, sh_go.go, run_shapes.sh) on 1 and
# 2 mutator threads, with the mark's CPU per cycle for gomap and gomap-stw.
echo
RUNS="${SHAPES_RUNS:-$RUNS}" bash "$HERE/run_shapes.sh"

# The checkmark soak: >= 1000 concurrent cycles under gccheckmark (fatal if
# the concurrent mark ever leaves a reachable object white).
SOAK_SCALE="${SOAK_SCALE:-25}"
if [ "$SOAK_SCALE" != 0 ]; then
  cmake -S "$ROOT" -B "$OUT/soak" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOMAP_TESTS=ON \
        -DGOMAP_TOOLS=OFF -DGOMAP_DEV=OFF >/dev/null
  cmake --build "$OUT/soak" -j "$(nproc)" --target test_gc_concurrent >/dev/null
  echo
  echo "checkmark soak: $((SOAK_SCALE * 40)) forced cycles (+ triggered ones) with 2 mutating threads"
  t0=$(date +%s.%N)
  GMDEBUG=gccheckmark=1,clobberfree=1 GOMAP_TEST_SCALE="$SOAK_SCALE" \
    "$OUT/soak/tests/gc/test_gc_concurrent" concurrent_mutation_stress
  echo "soak: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s, no checkmark failure"
fi
