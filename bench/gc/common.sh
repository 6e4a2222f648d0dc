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

# peer_result peer command...: runs one peer and prints its RESULT line.  A
# peer that fails (Boehm's incremental mode cannot protect a ~1 GiB heap:
# its mprotect'd dirty bits run out of memory mappings) is reported with its
# last message and left out of the medians, and the run goes on.
peer_result() {
  local peer="$1"; shift
  local err="$OUT/peer-stderr.txt" line
  if line=$("$@" 2>"$err" | grep '^RESULT'); then echo "$line"; return 0; fi
  echo "  $peer FAILED: $(grep -v '^$' "$err" | head -n 1)" >&2
  return 1
}

ratio() { # a b: a/b, or n/a when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}

table() { # file peer...: the medians of every peer's RESULT lines, ratios to Boehm's default mode
  local res="$1"; shift
  printf "\n%-10s %7s %6s %5s %11s %11s %6s %8s %8s %7s %8s %7s %7s %8s\n" peer time_s cpu_s gcs max_pause_ms \
    p99_pause_ms gc_cpu peak_rss ms/cycle ms/MiB mark_cpu t/boehm cpu/boe rss/boehm
  local bt bc brss p t c rss
  bt=$(median "$res" boehm time_s); bc=$(median "$res" boehm cpu_s); brss=$(median "$res" boehm rss_mb)
  for p in "$@"; do
    t=$(median "$res" "$p" time_s); c=$(median "$res" "$p" cpu_s); rss=$(median "$res" "$p" rss_mb)
    printf "%-10s %7.2f %6.2f %5.0f %11.3f %11.3f %6.3f %8.1f %8s %7s %8s %6sx %6sx %7sx\n" "$p" "$t" "$c" \
      "$(median "$res" "$p" gcs)" "$(median "$res" "$p" max_pause_ms)" "$(median "$res" "$p" p99_pause_ms)" \
      "$(median "$res" "$p" gc_cpu)" "$rss" "$(median "$res" "$p" mark_ms_per_cycle)" \
      "$(median "$res" "$p" mark_ms_per_mib)" "$(median "$res" "$p" mark_cpu_share)" "$(ratio "$t" "$bt")" \
      "$(ratio "$c" "$bc")" "$(ratio "$rss" "$brss")"
  done
  echo "(medians; cpu_s: user + system CPU of the process; peak_rss MB = ru_maxrss; ms/cycle, ms/MiB: the"
  echo " mark's thread CPU per cycle and per MiB scanned; mark_cpu: the mark's CPU over the marks' wall"
  echo " time x $(nproc) CPUs (gomap peers only))"
  local cm sm om
  cm=$(median "$res" gomap mark_ms_per_mib); sm=$(median "$res" gomap-stw mark_ms_per_mib)
  om=$(median "$res" gomap-obj mark_ms_per_mib)
  echo "mark CPU per MiB: concurrent / stop-the-world = $(ratio "$cm" "$sm") (target <= 1.3);" \
       "span queue / object queue = $(ratio "$cm" "$om") (target <= 0.90)"
}
