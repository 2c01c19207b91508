#!/usr/bin/env bash
# `vxtap report` against `vxtap replay` writing JSON lines, on the same input in the same run
# (interleaved rounds, medians): issue 19 asks that the report be at least as fast.
#
#   bash bench/report.sh [PCAP]     # default: /work/bench-data/vx1g.pcap or the generated 1 GB workload
#
# Env: RUNS (default 3), OUT (work dir, default /tmp/vxtap-bench-report).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=${OUT:-/tmp/vxtap-bench-report}
mkdir -p "$OUT"
GEN=../shared/bench/gen_vxlan_http.py
PCAP=${1:-/work/bench-data/vx1g.pcap}
if [ ! -s "$PCAP" ]; then
  PCAP=$OUT/vx1g.pcap
  [ -s "$PCAP" ] || python3 "$GEN" -o "$PCAP" --connections 6200 --seed 1 --manifest
fi
cargo build --release --quiet
VX=${CARGO_TARGET_DIR:-target}/release/vxtap
cat "$PCAP" >/dev/null
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
declare -a replay report
for i in $(seq "$RUNS"); do
  replay+=("$(secs "$VX" replay -q --no-progress "$PCAP" -o "$OUT/x.jsonl")")
  report+=("$(secs "$VX" report "$PCAP" -o "$OUT/report.html")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
r=$(median "${replay[@]}")
p=$(median "${report[@]}")
echo "input: $PCAP ($(stat -c %s "$PCAP") bytes), $RUNS rounds, one worker each (replay's default)"
echo "replay -> JSON lines: median ${r}s (${replay[*]})"
echo "report -> HTML:       median ${p}s (${report[*]})"
awk -v r="$r" -v p="$p" 'BEGIN { printf "report/replay time: %.2f (%s)\n", p / r, (p <= r ? "report at least as fast" : "report SLOWER") }'
rm -f "$OUT/x.jsonl"
