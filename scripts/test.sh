#!/usr/bin/env bash
# test.sh - build and run every test, the way CI does:
#   1. dev build (-Werror), the whole ctest suite;
#   2. ASan+UBSan build, the whole suite again;
#   3. TSan build, the tests labelled "tsan" (multithreaded ones the GC allows);
#   4. libFuzzer targets, each for GOMAP_FUZZ_SECONDS (default 60);
#   and the demo's release configuration built with -Werror (no warnings).
# Prints one closing line "tests: N passed, M failed" over all stages.
# Options: --quick runs stage 1 only.
set -uo pipefail
source "$(dirname "$0")/common.sh"
# golang-go: tests/tools/pprof_run.sh opens a heap profile with go tool pprof
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}" clang libclang-rt-14-dev golang-go || exit 1

quick=0
[ "${1:-}" = "--quick" ] && quick=1
FUZZ_SECONDS="${GOMAP_FUZZ_SECONDS:-60}"
total_pass=0; total_fail=0; failed_stages=()

run_ctest() { # stage-name build-dir [ctest args...]
  local name="$1" dir="$2"; shift 2
  echo "== $name: ctest $*"
  local log="$dir/ctest.log"
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" "$@") >"$log" 2>&1
  local rc=$?
  grep -E "tests passed, [0-9]+ tests failed out of" "$log" | tail -n 1
  grep -E "^Total Test time" "$log" | tail -n 1
  if [ $rc -ne 0 ]; then
    grep -E "^\s*[0-9]+ - |Failed|\*\*\*" "$log" | tail -n 40
    # each failed test's own output (ctest --output-on-failure), 30 lines
    awk '/\*\*\*(Failed|Timeout|Exception)/ {n = 31} n > 0 {print "  | " $0; n--}' "$log" | head -n 200
  fi
  local line n f
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -n 1)
  n=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
  f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/')
  if [ -z "$line" ]; then n=0; f=1; fi
  total_pass=$((total_pass + n - f)); total_fail=$((total_fail + f))
  [ $rc -eq 0 ] || failed_stages+=("$name")
}

build() { # stage-name dir cmake-args...
  local name="$1" dir="$2"; shift 2
  echo "== $name: building in $dir"
  if ! configure_and_build "$dir" "$@"; then
    echo "build failed: $name"; cmake --build "$dir" 2>&1 | tail -n 40
    failed_stages+=("$name-build"); total_fail=$((total_fail + 1)); return 1
  fi
}

build dev "$ROOT/build/dev" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOMAP_DEV=ON &&
  run_ctest dev "$ROOT/build/dev"

if [ $quick -eq 0 ]; then
  # The demo's configuration (release, fault switches off) with -Werror: a
  # warning in any configuration fails the run.
  build release-werror "$ROOT/build/release-werror" -DCMAKE_BUILD_TYPE=Release -DGOMAP_DEV=ON \
      -DGOMAP_TESTS=OFF -DGOMAP_FAULT_INJECTION=OFF && total_pass=$((total_pass + 1))

  build asan "$ROOT/build/asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 -DCMAKE_C_COMPILER=clang \
      -DCMAKE_CXX_COMPILER=clang++ -DGOMAP_SANITIZE=address,undefined &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
      run_ctest asan "$ROOT/build/asan"

  build tsan "$ROOT/build/tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
      -DCMAKE_CXX_COMPILER=clang++ -DGOMAP_SANITIZE=thread -DGOMAP_TOOLS=OFF &&
    TSAN_OPTIONS="halt_on_error=1 suppressions=$ROOT/tests/tsan.supp" \
      run_ctest tsan "$ROOT/build/tsan" -L tsan

  if build fuzz "$ROOT/build/fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
      -DCMAKE_CXX_COMPILER=clang++ -DGOMAP_FUZZ=ON -DGOMAP_TESTS=OFF -DGOMAP_TOOLS=OFF; then
    for f in "$ROOT"/build/fuzz/fuzz/fuzz_*; do
      [ -x "$f" ] || continue
      echo "== fuzz: $(basename "$f") for ${FUZZ_SECONDS}s"
      mkdir -p "$ROOT/build/fuzz/corpus-$(basename "$f")"
      if "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
          "$ROOT/build/fuzz/corpus-$(basename "$f")" >"$ROOT/build/fuzz/$(basename "$f").log" 2>&1; then
        grep -E "stat::number_of_executed_units" "$ROOT/build/fuzz/$(basename "$f").log"
        total_pass=$((total_pass + 1))
      else
        tail -n 40 "$ROOT/build/fuzz/$(basename "$f").log"
        total_fail=$((total_fail + 1)); failed_stages+=("fuzz-$(basename "$f")")
      fi
    done
  fi
fi

[ ${#failed_stages[@]} -eq 0 ] || echo "failed stages: ${failed_stages[*]}"
echo "tests: $total_pass passed, $total_fail failed"
[ $total_fail -eq 0 ] && [ ${#failed_stages[@]} -eq 0 ]
