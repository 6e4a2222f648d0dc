#!/usr/bin/env bash
# run.sh - every GC workload with its peers, in one command.  Binary-trees
# (max depth 20, BT_THREADS=2 mutator threads) on gomap's GC heap
# (concurrent mark with the span queue; gomap-obj: the object queue,
# GMDEBUG=gcmarkqueue=object; gomap-stw: GMDEBUG=gcstoptheworld=1) vs Boehm
# GC (default, and boehm-inc: GC_enable_incremental) vs Go vs malloc/free;
# then the same with one mutator thread and with ~1 GiB live (a long-lived
# tree of depth BT_BIG_DEPTH=25; 0 skips it; BIG_PEERS, BIG_RUNS).
# Installs what it needs (Debian packages), builds gomap in Release mode and
# the peers, runs them interleaved RUNS times (default 5), and prints the
# median of each figure and the ratios to Boehm.  Then the map-heavy
# workload at ~100 MiB and ~1 GiB live (run_maps.sh: GC maps of pointers vs
# Boehm and Go; MAPS_RUNS / MAPS_SIZES).  Then the mt-gcbench and quads
# shapes on 1 and 2 threads (run_shapes.sh, SHAPES_RUNS rounds).  Then the
# checkmark soak: the concurrent-mutation stress test under
# GMDEBUG=gccheckmark=1 for SOAK_SCALE*40 cycles (default 25: 1000 cycles;
# SOAK_SCALE=0 skips it).  About 45 minutes with RUNS=3 on 2 CPUs.
#
#   bench/gc/run.sh                         # everything, 5 rounds
#   RUNS=3 bench/gc/run.sh
#   RUNS=3 BT_DEPTH=18 BT_BIG_DEPTH=0 MAPS_SIZES=550000 bench/gc/run.sh   # no ~1 GiB heaps
#   BT_LIVE_DEPTH=22 bench/gc/run.sh        # the first passes with a ~128 MiB live tree
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

# bt_pass threads live-depth rounds peer...: one binary-trees table.
bt_pass() {
  local threads="$1" live="$2" rounds="$3"; shift 3
  local res="$OUT/results-t$threads-l$live.txt" r p line
  : >"$res"
  echo "binary-trees depth $BT_DEPTH, $threads threads, live depth ${live/#0/none}, $rounds interleaved rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq 1 "$rounds"); do
    for p in "$@"; do
      local cmd=(env BT_THREADS="$threads" BT_LIVE_DEPTH="$live")
      case $p in
        gomap-stw) cmd+=(BT_PEER=gomap-stw GMDEBUG=gcstoptheworld=1 "$OUT/bt_gomap") ;;
        gomap-obj) cmd+=(BT_PEER=gomap-obj GMDEBUG=gcmarkqueue=object "$OUT/bt_gomap") ;;
        boehm-inc) cmd+=(BOEHM_INCREMENTAL=1 "$OUT/bt_boehm") ;;
        *) cmd+=("$OUT/bt_$p") ;;
      esac
      line=$(peer_result "$p" "${cmd[@]}") || continue
      echo "$line" >>"$res"
      echo "  round $r: $line"
    done
  done
  local checks
  checks=$(awk '{for(i=3;i<=NF;i++) if ($i ~ /^check=/) print $i}' "$res" | sort -u | wc -l)
  [ "$checks" -eq 1 ] || { echo "checksums differ between peers!"; exit 1; }
  table "$res" "$@"
  echo "(over $rounds interleaved rounds; load at the end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M) UTC)"
  echo
}

read -r -a PEERS <<<"${PEERS:-gomap gomap-obj gomap-stw boehm boehm-inc go malloc}"
bt_pass "${BT_THREADS:-2}" "${BT_LIVE_DEPTH:-0}" "$RUNS" "${PEERS[@]}"
# One mutator thread, and ~1 GiB live (a long-lived tree of depth
# BT_BIG_DEPTH, default 25; 0 skips it): the targets hold for both thread
# counts and both heap sizes.  Peers: BIG_PEERS (malloc/free and Boehm's
# incremental mode left out by default: minutes per round at 1 GiB).
read -r -a BIG_PEERS <<<"${BIG_PEERS:-gomap gomap-obj gomap-stw boehm go}"
[ "${BT_ONE_THREAD:-1}" = 0 ] || bt_pass 1 "${BT_LIVE_DEPTH:-0}" "$RUNS" "${BIG_PEERS[@]}"
BT_BIG_DEPTH="${BT_BIG_DEPTH:-25}"
[ "$BT_BIG_DEPTH" = 0 ] || bt_pass "${BT_THREADS:-2}" "$BT_BIG_DEPTH" "${BIG_RUNS:-$RUNS}" "${BIG_PEERS[@]}"

# The map-heavy workload (mh_*.c / mh_go.go, bench/gc/run_maps.sh): GC maps
# of pointers churned by 2 threads on gomap (concurrent and stop-the-world),
# Boehm (default and incremental, with a GC_MALLOC'd table) and Go maps.
# MAPS_RUNS rounds (default RUNS), MAPS_SIZES records per thread.
echo
RUNS="${MAPS_RUNS:-$RUNS}" SIZES="${MAPS_SIZES:-550000 5500000}" bash "$HERE/run_maps.sh"

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
