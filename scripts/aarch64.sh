#!/usr/bin/env bash
# aarch64.sh [TEST-EXE CASE...] - cross-build for AArch64 (Debian's
# gcc-aarch64-linux-gnu) and run GC test cases under qemu-user.  Without
# arguments: the cases of tests/gc/test_gc_review.c that do not fork
# (qemu-user 7.2 aborts in a child forked from a threaded process:
# "qemu_plugin_vcpu_init_hook: assertion failed").
set -uo pipefail
source "$(dirname "$0")/common.sh"
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}" gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
  libc6-dev-arm64-cross qemu-user || exit 1
dir="$ROOT/build/a64"
cmake -S "$ROOT" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOMAP_DEV=ON -DGOMAP_TOOLS=OFF >/dev/null || exit 1
exe="${1:-test_gc_review}"
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(b8_callee_saved_registers_are_saved
  b4_store_from_unattached_thread_attaches b6_new_honours_alignment b6_gc_map_slots_honour_alignment
  b9_weak_handle_offsets_past_4GiB b10_pacer_goal_does_not_overflow b11_root_try_add_reports_enomem)
cmake --build "$dir" -j "$JOBS" --target "$exe" >/dev/null || exit 1
cd "$dir/tests/gc" && GMDEBUG=gccheckmark=1,clobberfree=1 \
  qemu-aarch64 -L /usr/aarch64-linux-gnu "./$exe" "${cases[@]}"
