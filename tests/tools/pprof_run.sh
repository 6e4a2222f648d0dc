#!/usr/bin/env bash
# Writes a heap profile with pprof_prog and opens it with `go tool pprof
# -top`: the top allocation site must be pprof_big_site.  Skips (exit 77)
# only when no Go toolchain is installed (scripts/test.sh installs Debian's
# golang-go, so in CI it runs).
set -euo pipefail
prog="$1"; out="$2"
rm -rf "$out"; mkdir -p "$out"
# GMDEBUG=memprofilerate: a bad value is named and ignored
GMDEBUG=memprofilerate=abc "$prog" "$out/bad.pb.gz" 2> "$out/bad.txt"
grep -q 'bad value "abc" for memprofilerate' "$out/bad.txt"
if ! command -v go >/dev/null; then
  echo "SKIP: go is not installed (apt-get install golang-go); pprof was not run"
  exit 77
fi
"$prog" "$out/heap.pb.gz"
export HOME="${HOME:-$out}" GOCACHE="$out/gocache" GOPATH="$out/gopath"
go tool pprof -top -sample_index=alloc_space "$out/heap.pb.gz" > "$out/top.txt" 2>&1
cat "$out/top.txt"
# the first row after the header names the site with the most bytes
top=$(awk '/flat%/{getline; print $NF; exit}' "$out/top.txt")
[ "$top" = "pprof_big_site" ] || { echo "top allocation site: '$top', want pprof_big_site"; exit 1; }
go tool pprof -top -sample_index=inuse_objects "$out/heap.pb.gz" > "$out/inuse.txt" 2>&1
grep -q "pprof_big_site" "$out/inuse.txt"
# memprofilerate=1: every allocation sampled, counts exact (no scaling)
GMDEBUG=memprofilerate=1 "$prog" "$out/all.pb.gz"
go tool pprof -top -sample_index=alloc_objects "$out/all.pb.gz" > "$out/all.txt" 2>&1
grep -qE '^ +200000 .* pprof_big_site$' "$out/all.txt" || { cat "$out/all.txt"; echo "want 200000 objects at pprof_big_site"; exit 1; }
grep -qE '^ +25000 .* pprof_small_site$' "$out/all.txt"
echo "pprof ok: top allocation site $top"
