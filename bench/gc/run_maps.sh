#!/usr/bin/env bash
# run_maps.sh - the map-heavy GC workload (mh_common.h): two mutator threads
# churning maps of pointers to records, on gomap (GC maps), Boehm GC (default
# and GC_enable_incremental) and Go 1.19, at two live-heap sizes.  Peers run
# interleaved RUNS times (default 3); medians and ratios to Boehm are printed.
#
#   bench/gc/run_maps.sh                      # ~100 MiB and ~1 GiB live
#   RUNS=5 SIZES="550000" bench/gc/run_maps.sh
#
# SIZES: records per thread (550000 ~ 100 MiB live on gomap, 5500000 ~ 1 GiB).
# MH_OPS: operations per thread (default 8,000,000).
# Peers: gomap (concurrent mark), gomap-stw (GMDEBUG=gcstoptheworld=1),
# boehm, boehm-incr (GC_enable_incremental), go.  Figures per peer: wall
# time, GC count, max and p99 pause (gomap and Go: a cycle's stops of the
# world summed, as Go's PauseNs; Boehm: each stop of the world), peak RSS,
# GC CPU fraction (gomap and Go report it; Boehm does not).
set -euo pipefail
RUNS="${RUNS:-3}"
SIZES="${SIZES:-550000 5500000}"
export MH_OPS="${MH_OPS:-8000000}"
source "$(dirname "$0")/common.sh"
cc "${CFLAGS[@]}" "$HERE/mh_gomap.c" "${GOMAP_LIBS[@]}" -o "$OUT/mh_gomap"
cc "${CFLAGS[@]}" "$HERE/mh_boehm.c" -lgc -lpthread -o "$OUT/mh_boehm"
(cd "$HERE" && GOCACHE="$OUT/gocache" GO111MODULE=off go build -o "$OUT/mh_go" mh_go.go)

run_peer() { # peer
  case "$1" in
    gomap) "$OUT/mh_gomap" ;;
    gomap-stw) MH_PEER=gomap-stw GMDEBUG=gcstoptheworld=1 "$OUT/mh_gomap" ;;
    gomap-obj) MH_PEER=gomap-obj GMDEBUG=gcmarkqueue=object "$OUT/mh_gomap" ;;
    boehm) MH_INCREMENTAL=0 "$OUT/mh_boehm" ;;
    boehm-incr) MH_INCREMENTAL=1 "$OUT/mh_boehm" ;;
    go) "$OUT/mh_go" ;;
  esac
}


read -r -a PEERS <<<"${PEERS:-gomap gomap-obj gomap-stw boehm boehm-incr go}"
for live in $SIZES; do
  export MH_LIVE="$live"
  RES="$OUT/maps-$live.txt"
  : >"$RES"
  echo "map-heavy workload: 2 threads x $live live records, $MH_OPS ops each; $RUNS interleaved rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq 1 "$RUNS"); do
    for p in "${PEERS[@]}"; do
      line=$(peer_result "$p" run_peer "$p") || continue
      echo "$line" >>"$RES"
      echo "  round $r: $line"
    done
  done
  checks=$(awk '{for(i=3;i<=NF;i++) if ($i ~ /^check=/) print $i}' "$RES" | sort -u | wc -l)
  [ "$checks" -eq 1 ] || { echo "checksums differ between peers!"; exit 1; }
  table "$RES" "${PEERS[@]}"
  echo "(over $RUNS interleaved rounds; load at the end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M) UTC)"
  echo
done
