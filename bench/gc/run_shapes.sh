#!/usr/bin/env bash
# run_shapes.sh - the mt-gcbench and quads shapes (sh_common.h) on 1 and 2
# mutator threads: gomap (concurrent mark), gomap-stw
# (GMDEBUG=gcstoptheworld=1), Boehm (default and boehm-inc:
# GC_enable_incremental) and Go 1.19, interleaved RUNS times (default 3);
# medians and the ratio to Boehm's default mode.  For gomap the RESULT line
# also carries the mark's CPU per cycle and per MiB scanned (thread CPU
# clocks: background worker + assists + the mark inside stops of the
# world), so the concurrent and the stop-the-world mark compare on the same
# heap.
#
#   bench/gc/run_shapes.sh
#   RUNS=5 SHAPES=quads THREADS="1 2" bench/gc/run_shapes.sh
#   PEERS="gomap gomap-stw boehm" SH_DEPTH=18 bench/gc/run_shapes.sh
set -euo pipefail
RUNS="${RUNS:-3}"
SHAPES="${SHAPES:-mtgcbench quads}"
THREADS="${THREADS:-1 2}"
source "$(dirname "$0")/common.sh"
cc "${CFLAGS[@]}" "$HERE/sh_gomap.c" "${GOMAP_LIBS[@]}" -o "$OUT/sh_gomap"
cc "${CFLAGS[@]}" "$HERE/sh_boehm.c" -lgc -lpthread -o "$OUT/sh_boehm"
(cd "$HERE" && GOCACHE="$OUT/gocache" GO111MODULE=off go build -o "$OUT/sh_go" sh_go.go)

run_peer() { # peer
  case "$1" in
    gomap) "$OUT/sh_gomap" ;;
    gomap-stw) SH_PEER=gomap-stw GMDEBUG=gcstoptheworld=1 "$OUT/sh_gomap" ;;
    gomap-obj) SH_PEER=gomap-obj GMDEBUG=gcmarkqueue=object "$OUT/sh_gomap" ;;
    boehm) BOEHM_INCREMENTAL=0 "$OUT/sh_boehm" ;;
    boehm-inc) BOEHM_INCREMENTAL=1 "$OUT/sh_boehm" ;;
    go) "$OUT/sh_go" ;;
  esac
}

read -r -a PEERS <<<"${PEERS:-gomap gomap-obj gomap-stw boehm boehm-inc go}"
for shape in $SHAPES; do
  for nth in $THREADS; do
    export SHAPE="$shape" SH_THREADS="$nth"
    RES="$OUT/shapes-$shape-$nth.txt"
    : >"$RES"
    echo "$shape, $nth mutator thread(s); $RUNS interleaved rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
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
done
