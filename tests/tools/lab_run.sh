#!/usr/bin/env bash
# Runs every gomap-lab scenario in quick mode with --trace and --svg; fails if
# a scenario's claim fails, an output file is missing, or the trace is not
# valid JSON with the map's events in it.
set -euo pipefail
lab="$1"; out="$2"
rm -rf "$out"; mkdir -p "$out"
"$lab" --quick --trace "$out/trace.json" --svg "$out/svg" > "$out/stdout.txt"
grep -q "every claim checked held" "$out/stdout.txt"
for f in gc-pauses.svg gc-heap.svg map-evacuation.svg; do
  grep -q "</svg>" "$out/svg/$f"
done
grep -q '"name":"map grow"' "$out/trace.json"
grep -q '"name":"map shrink"' "$out/trace.json"
if command -v python3 >/dev/null; then
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['traceEvents']) > 10" "$out/trace.json"
fi
echo "lab run ok: $(grep -c '^== ' "$out/stdout.txt") scenarios"
