#!/usr/bin/env bash
# run_pauses.sh - stop-the-world pauses with 1 MiB of pointers in bss and
# with threads that ignore the safepoint contract (pauses.c).  Run it under
# the shared lock:  flock /tmp/gomap-bench.lock bench/gc/run_pauses.sh
# RUNS (default 3) rounds, the variants interleaved in each; CYCLES (default
# 200) forced cycles per run, two threads churning the heap meanwhile.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RUNS="${RUNS:-3}"
CYCLES="${CYCLES:-200}"
cc "${CFLAGS[@]}" -o "$OUT/pauses" "$HERE/pauses.c" "${GOMAP_LIBS[@]}"
log="$OUT/pauses.log"
: > "$log"
# scenario|label|GMDEBUG
variants=(
  "churn|baseline|"
  "globals-cold|cold-diff|"
  "globals-cold|cold-softdirty|globalsterm=2"
  "globals-cold|cold-rescan|globalsterm=0"
  "globals-cold-registered|cold-registered|scanglobals=0"
  "globals|hot-diff|"
  "globals|hot-rescan|globalsterm=0"
  "noncoop|noncoop-signal|"
)
for r in $(seq "$RUNS"); do
  for v in "${variants[@]}"; do
    IFS='|' read -r scen label dbg <<<"$v"
    GMDEBUG="$dbg" "$OUT/pauses" "$scen" "$label" "$CYCLES" | tee -a "$log"
  done
done
echo "medians over $RUNS runs (microseconds; every single stop of the world):"
printf "%-18s %9s %9s %9s %9s\n" variant p50 p99 max signals
for v in "${variants[@]}"; do
  IFS='|' read -r scen label dbg <<<"$v"
  printf "%-18s %9s %9s %9s %9s\n" "$label" "$(median "$log" "$label" p50_us)" \
    "$(median "$log" "$label" p99_us)" "$(median "$log" "$label" max_us)" "$(median "$log" "$label" preempt_signals)"
done
# The work inside the termination pause, in CPU time of the collector thread
# (immune to descheduling on a loaded machine): gctrace=2, one run each.
echo "mark termination pause, CPU time of the collector thread (max over the run, ms): total / globals part"
for v in "globals-cold|cold-diff|" "globals|hot-diff|" "globals|hot-rescan|globalsterm=0" "churn|baseline|"; do
  IFS='|' read -r scen label dbg <<<"$v"
  GMDEBUG="gctrace=2${dbg:+,$dbg}" "$OUT/pauses" "$scen" "$label" "$CYCLES" 2>&1 >/dev/null |
    awk -v l="$label" '/termination attempt/ { for (i=1;i<=NF;i++) { if ($i=="(cpu") { c=$(i+1)+0; if (c>mc) mc=c }
      if ($i=="globals") { g=$(i+1)+0; if (g>mg) mg=g } } }
      END { printf "%-18s %8.3f %8.3f\n", l, mc, mg }'
done
