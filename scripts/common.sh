# common.sh - shared settings for the scripts (sourced).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DEPS=(build-essential cmake pkg-config libxxhash-dev zlib1g-dev)
JOBS="$(nproc 2>/dev/null || echo 2)"
configure_and_build() { # dir [cmake args...]
  local dir="$1"; shift
  cmake -S "$ROOT" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS" >/dev/null
}
