#!/usr/bin/env bash
# Installs gomap into a temporary prefix, then builds two consumers: one with
# CMake's find_package(gomap), one with pkg-config.  Run by ctest.
set -euo pipefail
src="$1"; bin="$2"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cmake --install "$bin" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/tests/install" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer"
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -n1)
export PKG_CONFIG_PATH="$libdir"
cc -std=c11 $(pkg-config --cflags gomap) "$src/tests/install/consumer.c" -o "$tmp/pc" \
  $(pkg-config --libs --static gomap)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$tmp/pc"
