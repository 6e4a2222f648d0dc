#!/usr/bin/env bash
# Runs every gomap-lab scenario and the claims table in quick mode with
# --trace, --svg, --pprof and --gctrace; fails if a scenario's claim or a
# claim's measured verdict fails, an output file is missing, the trace is
# not valid JSON with the map's events in it, a heap profile is not gzip'd,
# or no gctrace line was printed.
set -euo pipefail
lab="$1"; out="$2"
rm -rf "$out"; mkdir -p "$out"
"$lab" --quick --gctrace --trace "$out/trace.json" --svg "$out/svg" --pprof "$out/pprof" \
  > "$out/stdout.txt" 2> "$out/stderr.txt" || { tail -n 60 "$out/stdout.txt"; exit 1; }
grep -q "every claim checked held" "$out/stdout.txt"
grep -q "36 claims: .*every verdict as expected" "$out/stdout.txt"
for f in gc-pauses.svg gc-heap.svg map-evacuation.svg who-evacuates.svg; do
  grep -q "</svg>" "$out/svg/$f"
done
grep -q '"name":"map grow"' "$out/trace.json"
grep -q '"name":"map shrink"' "$out/trace.json"
if command -v python3 >/dev/null; then
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['traceEvents']) > 10" "$out/trace.json"
fi
# one profile per scenario, gzip'd
n=0
for name in $("$lab" list | awk '/^[a-z]/{print $1}'); do
  f="$out/pprof/$name.pb.gz"
  [ "$(head -c 2 "$f" | od -An -tx1 | tr -d ' ')" = "1f8b" ] || { echo "no profile $f"; exit 1; }
  n=$((n + 1))
done
# gctrace lines in Go's format, attributed to scenarios
grep -qE '^gc [0-9]+ @[0-9.]+s [0-9]+%: ' "$out/stderr.txt"
grep -q '^gomap-lab: scenario delete-and-the-gc' "$out/stderr.txt"
echo "lab run ok: $(grep -c '^== ' "$out/stdout.txt") sections, $n profiles"
