#!/usr/bin/env bash
# profile.sh - count one phase of workload W for the map engineer.
#
#   bench/map/profile.sh [--phase insert|hit|miss|iter|delete|all] [--keys u64|str]
#                        [--n N] [--reps R] [--impl gomap|boost|absl|khash|go]
#                        [--tool callgrind|perf|time]
#
# callgrind (the default) counts instructions only inside the chosen phase
# (--toggle-collect on the harness's noinline phase_<phase>_<keys>): the
# count is the same on every run of the same binary, however busy the shared
# machine is, so a change to src/map shows as an exact difference.  It prints
# Ir per operation, the change since the last run with the same arguments,
# and the top functions (callgrind_annotate).  perf stat is used with
# --tool perf when the machine exposes hardware counters; --tool time just
# runs the phases natively.  gomap is built with -O2 -DNDEBUG -g (the
# benchmark's flags plus symbols) in build/bench-prof.
# gomap runs with GMDEBUG=mapseed=1,mapbg=0 unless GMDEBUG is set: fixed
# hash seeds and iterator starts, and no helper thread (whose progress
# against the inserts depends on scheduling), so the count is exact: the
# same binary gives the same count to the instruction.
# Defaults: --phase hit --keys u64 --n 100000 --reps 1 --impl gomap.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/common.sh
source "$HERE/../../scripts/common.sh"
phase=hit keys=u64 n=100000 reps=1 impl=gomap tool=callgrind
while [ $# -gt 0 ]; do
  case "$1" in
    --phase) phase="$2"; shift ;;
    --keys) keys="$2"; shift ;;
    --n) n="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --impl) impl="$2"; shift ;;
    --tool) tool="$2"; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$phase" in insert|hit|miss|iter|delete|all) ;; *) echo "profile.sh: bad --phase" >&2; exit 2 ;; esac
OPT="-O2 -DNDEBUG -g"
BIN="$ROOT/build/bench-map-prof"
mkdir -p "$BIN"
deps=("${BUILD_DEPS[@]}" g++ valgrind)
case "$impl" in
  go) deps+=(golang-go) ;; boost) deps+=(libboost1.81-dev) ;;
  absl) deps+=(libabsl-dev) ;; khash) deps+=(libhts-dev) ;;
esac
bash "$ROOT/scripts/deps.sh" "${deps[@]}"

if [ "$impl" = gomap ]; then
  cmake -S "$ROOT" -B "$ROOT/build/bench-prof" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="$OPT" -DGOMAP_DEV=OFF -DGOMAP_TESTS=OFF \
    -DGOMAP_TOOLS=OFF -DGOMAP_FAULT_INJECTION=OFF >"$BIN/build.log" 2>&1 || { cat "$BIN/build.log" >&2; exit 1; }
  cmake --build "$ROOT/build/bench-prof" --target gomap_static -j "$JOBS" >>"$BIN/build.log" 2>&1 \
    || { cat "$BIN/build.log" >&2; exit 1; }
  make -s -C "$HERE" OUT="$BIN" OPT="$OPT" LIBGOMAP="$ROOT/build/bench-prof/libgomap.a" "$BIN/drv_gomap"
elif [ "$impl" = go ]; then
  (cd "$HERE/go" && GOFLAGS=-mod=mod GOPROXY=off GOCACHE="$BIN/go-cache" GOPATH="$BIN/gopath" \
     go build -o "$BIN/drv_go" .)
else
  make -s -C "$HERE" OUT="$BIN" OPT="$OPT" "$BIN/drv_$impl"
fi
export GMDEBUG="${GMDEBUG:-mapseed=1,mapbg=0}"
drv=("$BIN/drv_$impl" --mode phases --keys "$keys" --n "$n" --reps "$reps")
ops=$((n * reps))

if [ "$tool" = perf ]; then
  if perf stat -e instructions true 2>&1 | grep -q "not supported"; then
    echo "profile.sh: this machine exposes no hardware counters to perf; use --tool callgrind" >&2
    exit 1
  fi
  perf stat -e task-clock,cycles,instructions,branch-misses,cache-misses,L1-dcache-load-misses "${drv[@]}"
  exit 0
fi
if [ "$tool" = time ]; then
  "${drv[@]}"
  exit 0
fi
[ "$impl" = go ] && { echo "profile.sh: callgrind on the Go driver is not supported; use --tool time" >&2; exit 2; }

out="$BIN/callgrind.$impl.$phase.$keys.$n.$reps.out"
collect=(--collect-atstart=yes)
[ "$phase" != all ] && collect=(--collect-atstart=no "--toggle-collect=phase_${phase}_${keys}*")
echo "callgrind: GMDEBUG=$GMDEBUG ${drv[*]} (counting ${phase})" >&2
valgrind --tool=callgrind --callgrind-out-file="$out" "${collect[@]}" "${drv[@]}" >/dev/null 2>"$out.log" || {
  cat "$out.log" >&2; exit 1; }
ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }')
per=$(awk -v ir="$ir" -v ops="$ops" 'BEGIN { printf "%.1f", ir / ops }')
last="$out.last"
if [ -f "$last" ]; then
  prev=$(cat "$last")
  delta=$(awk -v a="$per" -v b="$prev" 'BEGIN { printf "%+.1f%%", (a - b) / b * 100 }')
  echo "$impl $phase $keys N=$n reps=$reps: $ir Ir, $per Ir/op (previous $prev Ir/op, $delta)"
else
  echo "$impl $phase $keys N=$n reps=$reps: $ir Ir, $per Ir/op"
fi
echo "$per" >"$last"
callgrind_annotate --auto=no "$out" 2>/dev/null | awk '/file:function/ { on = 1 } on && n++ < 22' || true
echo "(full profile: callgrind_annotate $out)"
