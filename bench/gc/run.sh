#!/usr/bin/env bash
# run.sh - binary-trees (max depth 20) on gomap's GC heap vs Boehm GC vs Go vs
# malloc/free.  Installs what it needs (Debian packages), builds gomap in
# Release mode and the four peers, runs them interleaved RUNS times (default
# 5), and prints the median of each figure and the ratios to Boehm.
#
#   bench/gc/run.sh                 # depth 20, 5 rounds
#   RUNS=3 BT_DEPTH=18 bench/gc/run.sh
#
# Figures: total time (wall, s), GC count, max and p99 stop-the-world pause
# (ms), peak RSS (MB).  Pause sources: gomap MemStats.pause_ns (or its pause
# histogram past 256 cycles), Boehm GC_EVENT_START..END, Go MemStats.PauseNs
# (last 256 cycles).  The output checksums of all peers must agree.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RUNS="${RUNS:-5}"
export BT_DEPTH="${BT_DEPTH:-20}"
OUT="$ROOT/build/bench-gc"

bash "$ROOT/scripts/deps.sh" build-essential cmake pkg-config libxxhash-dev libgc-dev golang-go

mkdir -p "$OUT"
cmake -S "$ROOT" -B "$OUT/gomap" -DCMAKE_BUILD_TYPE=Release -DGOMAP_TESTS=OFF \
      -DGOMAP_TOOLS=OFF -DGOMAP_DEV=OFF >/dev/null
cmake --build "$OUT/gomap" -j "$(nproc)" --target gomap_static >/dev/null
CFLAGS=(-O2 -march=native -I"$ROOT/include" -I"$HERE")
cc "${CFLAGS[@]}" "$HERE/bt_gomap.c" "$OUT/gomap/libgomap.a" -lpthread -lm -o "$OUT/bt_gomap"
cc "${CFLAGS[@]}" "$HERE/bt_boehm.c" -lgc -o "$OUT/bt_boehm"
cc "${CFLAGS[@]}" "$HERE/bt_malloc.c" -o "$OUT/bt_malloc"
(cd "$HERE" && GOCACHE="$OUT/gocache" GO111MODULE=off go build -o "$OUT/bt_go" bt_go.go)

PEERS=(gomap boehm go malloc)
RES="$OUT/results.txt"
: >"$RES"
echo "binary-trees depth $BT_DEPTH, $RUNS interleaved rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
  for p in "${PEERS[@]}"; do
    line=$("$OUT/bt_$p" | grep '^RESULT')
    echo "$line" >>"$RES"
    echo "  round $r: $line"
  done
done

checks=$(awk '{for(i=3;i<=NF;i++) if ($i ~ /^check=/) print $i}' "$RES" | sort -u | wc -l)
[ "$checks" -eq 1 ] || { echo "checksums differ between peers!"; exit 1; }

# median of field F for peer P
median() {
  awk -v p="$1" -v f="$2" '$2==p { for(i=3;i<=NF;i++){ split($i,kv,"="); if (kv[1]==f) print kv[2] } }' "$RES" |
    sort -g | awk '{a[NR]=$1} END { if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}

printf "\n%-8s %10s %7s %13s %13s %9s %10s\n" peer time_s gcs max_pause_ms p99_pause_ms rss_mb vs_boehm
bt=$(median boehm time_s)
for p in "${PEERS[@]}"; do
  t=$(median "$p" time_s)
  printf "%-8s %10.2f %7.0f %13.2f %13.2f %9.1f %9.2fx\n" "$p" "$t" "$(median "$p" gcs)" \
    "$(median "$p" max_pause_ms)" "$(median "$p" p99_pause_ms)" "$(median "$p" rss_mb)" \
    "$(awk -v a="$t" -v b="$bt" 'BEGIN{print a/b}')"
done
echo "(medians over $RUNS rounds; vs_boehm = time / Boehm's time; target for gomap: <= 1.20x)"
