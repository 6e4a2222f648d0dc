#!/usr/bin/env bash
# demo.sh - build gomap (release) and run gomap-lab, the main demo.
# Extra arguments go to gomap-lab (try: scripts/demo.sh list).
set -euo pipefail
source "$(dirname "$0")/common.sh"
bash "$ROOT/scripts/deps.sh" "${BUILD_DEPS[@]}"
configure_and_build "$ROOT/build/release" -DCMAKE_BUILD_TYPE=Release -DGOMAP_DEV=OFF \
  -DGOMAP_TESTS=OFF -DGOMAP_FAULT_INJECTION=OFF
exec "$ROOT/build/release/tools/gomap-lab" "$@"
