#!/usr/bin/env bash
# run.sh [--quick] [--runs N] [--impls gomap-swiss,gomap-classic,gomap-classic-gc,go,boost,absl,khash]
#
# The map benchmark, from a bare Debian machine to the table: installs what
# it needs, builds gomap's static library in release mode and the peer
# drivers with the same flags, builds the Go 1.19 driver offline, runs
# everything interleaved and writes bench/out/map.{json,txt,svg} and
# docs/bench-map.svg.  Progress goes to stderr, the table to stdout.
#   --quick   1K and 100K only, 3 runs each, fewer repetitions (~2 minutes)
#   --runs N  N runs per size instead of 5/5/3
#   --nice N  run the drivers at this niceness (e.g. -5: less preempted by
#             other work on a shared machine; recorded in the JSON)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/common.sh
source "$HERE/../../scripts/common.sh"
OUT_BIN="$ROOT/build/bench-map"
OUT="$ROOT/bench/out"
OPT="${BENCH_OPT:--O2 -DNDEBUG}"
export BENCH_OPT="$OPT"
args=()
nice_n=0
impls="gomap-swiss,gomap-classic,gomap-classic-gc,go,boost,absl,khash"
docs=("--docs-svg" "$ROOT/docs/bench-map.svg")   # only a full run of all five updates the README's chart
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) args+=(--quick); docs=() ;;
    --runs) args+=(--runs "$2"); shift ;;
    --nice) nice_n="$2"; shift ;;
    --impls) impls="$2"; docs=(); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }

say "installing what is missing (Debian packages)"
# libhts-dev ships klib's khash.h (htslib/khash.h): no Debian package ships klib alone.
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}" g++ python3 golang-go \
  libboost1.81-dev libabsl-dev libhts-dev

note=""
say "building gomap (Release, $OPT) in build/bench"
if cmake -S "$ROOT" -B "$ROOT/build/bench" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS_RELEASE="$OPT" -DGOMAP_DEV=OFF -DGOMAP_TESTS=OFF \
      -DGOMAP_TOOLS=OFF -DGOMAP_FAULT_INJECTION=OFF >"$OUT_BIN.cmake.log" 2>&1 \
   && cmake --build "$ROOT/build/bench" --target gomap_static -j "$JOBS" >>"$OUT_BIN.cmake.log" 2>&1; then
  :
else
  note="gomap's library did not build (see build/bench-map.cmake.log); peers only"
fi

say "building the drivers ($OPT)"
mkdir -p "$OUT_BIN"
make -s -C "$HERE" OUT="$OUT_BIN" OPT="$OPT" peers >&2
if [ -z "$note" ]; then
  if ! make -s -C "$HERE" OUT="$OUT_BIN" OPT="$OPT" gomap >"$OUT_BIN.gomap.log" 2>&1; then
    note="gomap's driver did not link (see build/bench-map.gomap.log); peers only"
  elif ! timeout 120 "$OUT_BIN/drv_gomap" --mode phases --keys u64 --n 1000 --reps 3 >/dev/null 2>"$OUT_BIN.gomap.log" \
    || ! timeout 120 "$OUT_BIN/drv_gomap" --mode phases --keys str --n 1000 --reps 3 >/dev/null 2>>"$OUT_BIN.gomap.log"; then
    note="gomap failed its smoke test: $(head -c 300 "$OUT_BIN.gomap.log" | tr '\n' ' '); peers only"
  fi
fi
if [ -n "$note" ]; then
  say "NOTE: $note"
  rm -f "$OUT_BIN/drv_gomap"
else
  # One driver, two engines: gm_map_new follows GMDEBUG=mapengine.
  for e in swiss classic; do
    printf '#!/bin/sh\nGMDEBUG=mapengine=%s exec "%s" "$@"\n' "$e" "$OUT_BIN/drv_gomap" >"$OUT_BIN/drv_gomap-$e"
    chmod +x "$OUT_BIN/drv_gomap-$e"
  done
  # the classic engine's maps on the GC heap (gm_map_new_gc)
  printf '#!/bin/sh\nGOMAP_BENCH_GC=1 GMDEBUG=mapengine=classic exec "%s" "$@"\n' "$OUT_BIN/drv_gomap" \
    >"$OUT_BIN/drv_gomap-classic-gc"
  chmod +x "$OUT_BIN/drv_gomap-classic-gc"
fi

say "building the Go 1.19 driver (offline)"
# no module to download; the build cache lives under build/ (works without $HOME)
(cd "$HERE/go" && GOFLAGS=-mod=mod GOPROXY=off GOCACHE="$OUT_BIN/go-cache" GOPATH="$OUT_BIN/gopath" \
   go build -o "$OUT_BIN/drv_go" .)

say "running"
mkdir -p "$OUT" "$ROOT/docs"
nice -n "$nice_n" python3 "$HERE/runner.py" --bin "$OUT_BIN" --out "$OUT" "${docs[@]}" \
  --impls "$impls" --note "$note" --nice "$nice_n" "${args[@]}"
