#!/usr/bin/env bash
# HTTP/2 + gRPC throughput against Suricata 7 (issue #15): both read the same file in the same
# run, alternating, page cache warm; exchanges per second on one core, and peak RSS.
#
#   bash bench/compare_h2.sh [PCAP]   # default: generates the workload with bench/gen_h2_grpc.py
#
# Env: RUNS (default 3, medians), OUT (work dir, default /tmp/vxtap-bench-h2), CONNS (default
# 2000 connections, ~225 MB VXLAN, ~30000 streams), MAX_MEMORY (vxtap --max-memory, default
# 64MiB, the default budget).
#
# Exchanges/s is the workload's HTTP/2 streams (PCAP.truth.json, written by the generator)
# over the median wall time, for both tools: the same work, so the ratio is the wall-time
# ratio. What each tool actually emitted is counted too and set against that truth:
#   Suricata: eve `http` events of HTTP/2 with a stream id other than 0 (Suricata also logs
#             a transaction for stream 0: SETTINGS, PING, GOAWAY);
#   vxtap:    records whose request or response version is "HTTP/2"; with the generator's
#             manifest, each is matched by (client, stream id) and its method, path, status,
#             body lengths and gRPC status compared (bench/check_h2_manifest.py).
# Until vxtap parses HTTP/2 (issue #15), its side emits no HTTP/2 record; the script still
# runs and reports Suricata's side.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=${OUT:-/tmp/vxtap-bench-h2}
CONNS=${CONNS:-2000}
MAX_MEMORY=${MAX_MEMORY:-64MiB}
mkdir -p "$OUT"
PCAP=${1:-$OUT/h2-grpc.pcap}
if [ ! -s "$PCAP" ]; then
  python3 bench/gen_h2_grpc.py -o "$PCAP" --connections "$CONNS" --seed 1 --manifest
fi
cargo build --release --quiet
T=${CARGO_TARGET_DIR:-target}
VX=$T/release/vxtap
command -v suricata >/dev/null || { echo "suricata not installed (see ../shared/bench/install-baselines.sh)" >&2; exit 1; }
python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)" "$PCAP"
cat "$PCAP" >/dev/null
truth=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['streams'])" "$PCAP.truth.json" 2>/dev/null || echo 0)
packets=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['packets'])" "$PCAP.truth.json" 2>/dev/null || echo 0)

: >"$OUT/empty.rules"
mkdir -p "$OUT/suricata"
# HTTP/2 on (the default in 7.0, set explicitly), eve with http events (they carry HTTP/2),
# no rules, one thread, no checksum validation (as bench/compare.sh runs it).
SURI=(suricata -r "$PCAP" -k none --runmode single -S "$OUT/empty.rules" -l "$OUT/suricata"
      --set app-layer.protocols.http2.enabled=yes)
VXR=("$VX" replay -q --no-progress --threads 1 --max-memory "$MAX_MEMORY" -o "$OUT/vxtap.jsonl" "$PCAP")

declare -A WALLS RSS
RSS[suricata]=0
RSS[vxtap]=0
run() {
  local name=$1; shift
  rm -f "$OUT/suricata/eve.json"
  local s e r
  s=$(date +%s%N)
  /usr/bin/time -o "$OUT/time.txt" -f %M "$@" >/dev/null 2>"$OUT/$name.err" || {
    echo "$name failed:" >&2; tail -5 "$OUT/$name.err" >&2; exit 1; }
  e=$(date +%s%N)
  WALLS[$name]+="$(( (e - s) / 1000000 )) "
  r=$(tail -n1 "$OUT/time.txt")
  [ "$r" -gt "${RSS[$name]}" ] && RSS[$name]=$r
  return 0
}
# Warm-up, then RUNS rounds alternating the two, so drift of the machine hits both alike.
"${SURI[@]}" >/dev/null 2>&1 || true
"${VXR[@]}" >/dev/null 2>&1 || true
WALLS[suricata]=""
WALLS[vxtap]=""
for _ in $(seq "$RUNS"); do
  run suricata "${SURI[@]}"
  cp "$OUT/suricata/eve.json" "$OUT/eve.json"
  run vxtap "${VXR[@]}"
done
median() { printf '%s\n' $1 | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
ws=$(median "${WALLS[suricata]}")
wv=$(median "${WALLS[vxtap]}")

suri_h2=$(python3 - "$OUT/eve.json" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event_type") == "http":
        h2 = (e.get("http") or {}).get("http2")
        if h2 is not None and h2.get("stream_id", 0) != 0:
            n += 1
print(n)
PY
)
vx_h2=$(python3 - "$OUT/vxtap.jsonl" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if any(isinstance(r.get(k), dict) and r[k].get("version") == "HTTP/2" for k in ("request", "response")):
        n += 1
print(n)
PY
)

printf '\nworkload: %s (%s packets, %s HTTP/2 streams in its truth)\n' "$PCAP" "$packets" "$truth"
printf '%-10s %9s %14s %16s %9s  %s\n' tool wall_s exchanges/s emitted_h2 rss_MiB "runs (ms)"
for k in suricata vxtap; do
  w=$([ "$k" = suricata ] && echo "$ws" || echo "$wv")
  em=$([ "$k" = suricata ] && echo "$suri_h2" || echo "$vx_h2")
  awk -v k="$k" -v w="$w" -v t="$truth" -v em="$em" -v r="${RSS[$k]}" -v runs="${WALLS[$k]}" \
    'BEGIN { printf "%-10s %9.3f %14.0f %16s %9.1f  %s\n", k, w / 1000, (w > 0 ? t / (w / 1000) : 0), em "/" t, r / 1024, runs }'
done
echo
awk -v a="$ws" -v b="$wv" 'BEGIN { if (a > 0 && b > 0) printf "vxtap replay 1 worker vs Suricata single, exchanges/s: %.2fx (issue #15 asks >= 5x)\n", a / b }'
if [ "$vx_h2" -lt "$truth" ]; then
  echo "  NOT A RESULT: vxtap emitted $vx_h2 of $truth HTTP/2 exchanges, so it did less work than Suricata"
fi
echo "Suricata HTTP/2 exchanges logged: $suri_h2 of $truth in the truth"
echo "vxtap HTTP/2 records:             $vx_h2 of $truth in the truth (budget --max-memory $MAX_MEMORY, peak RSS $(( RSS[vxtap] / 1024 )) MiB)"
if [ -f "$PCAP.manifest.tsv" ] && [ "$vx_h2" -gt 0 ]; then
  python3 bench/check_h2_manifest.py "$PCAP.manifest.tsv" "$OUT/vxtap.jsonl" || true
fi
