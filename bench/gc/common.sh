# common.sh - sourced by run.sh and run_maps.sh: the paths, the Debian
# packages, one release build of gomap (fault switches off, as a user's
# build) shared by both scripts, and the median of a RESULT field.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/build/bench-gc"
CFLAGS=(-O2 -march=native -I"$ROOT/include" -I"$HERE")

bash "$ROOT/scripts/deps.sh" build-essential cmake pkg-config libxxhash-dev zlib1g-dev libgc-dev golang-go
mkdir -p "$OUT"
cmake -S "$ROOT" -B "$OUT/gomap" -DCMAKE_BUILD_TYPE=Release -DGOMAP_TESTS=OFF \
      -DGOMAP_TOOLS=OFF -DGOMAP_DEV=OFF -DGOMAP_FAULT_INJECTION=OFF >/dev/null
cmake --build "$OUT/gomap" -j "$(nproc)" --target gomap_static >/dev/null
# what a program linked with the static library needs (zlib: heap profiles)
GOMAP_LIBS=("$OUT/gomap/libgomap.a" -lpthread -lm -lz -ldl)

median() { # file peer field: the median of field= over peer's RESULT lines
  awk -v p="$2" -v f="$3" '$2==p { for(i=3;i<=NF;i++){ split($i,kv,"="); if (kv[1]==f) print kv[2] } }' "$1" |
    sort -g | awk '{a[NR]=$1} END { if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
