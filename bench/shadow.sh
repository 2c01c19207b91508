#!/usr/bin/env bash
# Shadow replay throughput against a load generator, same server, same run.
#
# A local hyper server (crates/shadow/examples/bench_server.rs) is the candidate. oha drives
# it first for OHA_SECS at OHA_CONC connections (its requests/s is the baseline); then
# `vxtap shadow --speed 0` replays every request of the workload to it (methods widened so
# that everything is sent) and its requests/s is sent / wall time, reading and reassembling
# the capture included. Prints both, the ratio (target >= 0.5), and vxtap's peak RSS.
#
#   bash bench/shadow.sh [PCAP]     # default /work/bench-data/vx1g.pcap
#   OHA=/path/to/oha  (default: oha on PATH, or /work/tools/bin/oha)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vxtap-bench}
mkdir -p "$OUT"
PCAP=${1:-/work/bench-data/vx1g.pcap}
OHA=${OHA:-$(command -v oha || echo /work/tools/bin/oha)}
OHA_SECS=${OHA_SECS:-10}
OHA_CONC=${OHA_CONC:-64}
CONC=${CONC:-64}
THREADS=${THREADS:-1}
cargo build --release --quiet --bin vxtap
cargo build --release --quiet -p vxtap-shadow --example bench_server
T=${CARGO_TARGET_DIR:-target}
VX=$T/release/vxtap
"$T/release/examples/bench_server" 127.0.0.1:0 1 >"$OUT/server.addr" &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$OUT/server.addr" ] && break; sleep 0.1; done
addr=$(head -n1 "$OUT/server.addr")

"$OHA" --no-tui -z "${OHA_SECS}s" -c "$OHA_CONC" "http://$addr/api/v1/items/1?fields=id" >"$OUT/oha.txt"
oha_rps=$(awk '/Requests\/sec:/ { print $2; exit }' "$OUT/oha.txt")

/usr/bin/time -v "$VX" shadow --target "http://$addr" --speed 0 \
  --methods GET,HEAD,OPTIONS,POST,PUT,DELETE,PATCH --concurrency "$CONC" \
  --shadow-threads "$THREADS" -q -o "$OUT/shadow.jsonl" --summary "$OUT/shadow-summary.json" \
  "$PCAP" 2>"$OUT/shadow.time"
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$OUT/shadow.time")
rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$OUT/shadow.time")
sent=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['overall']['sent'])" "$OUT/shadow-summary.json")
records=$(wc -l <"$OUT/shadow.jsonl")
python3 - "$oha_rps" "$sent" "$wall" "$rss_kb" "$records" <<'PY'
import sys
oha, sent, wall, rss, records = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rps = sent / wall
print(f"oha:    {oha:10.0f} requests/s")
print(f"shadow: {rps:10.0f} requests/s ({sent} sent of {records} records in {wall:.2f} s)")
print(f"ratio:  {rps / oha:10.2f} (target >= 0.5)")
print(f"shadow peak RSS: {rss / 1024:.1f} MiB")
PY
