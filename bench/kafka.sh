#!/usr/bin/env bash
# Exchanges per second through the Kafka output against the file output, same workload, same
# run: `vxtap replay` of the reference capture (../shared/bench/gen_vxlan_http.py, 6200
# connections, seed 1) into a file and into a topic of tansu (a Kafka-compatible broker,
# in-memory storage, on loopback), alternating, RUNS rounds, medians. The Kafka time includes
# waiting for every acknowledgement (acks=all, idempotent, zstd: the defaults).
#
#   bash bench/kafka.sh [PCAP]      # default: /work/bench-data/vx1g.pcap, else generated
#
# Env: RUNS (default 3), THREADS (default 2), TANSU_ROOT (as tests/kafka_e2e.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/vxtap-bench}
mkdir -p "$OUT"
PCAP=${1:-/work/bench-data/vx1g.pcap}
if [ ! -s "$PCAP" ]; then
  PCAP=$OUT/vx1g.pcap
  [ -s "$PCAP" ] || python3 ../shared/bench/gen_vxlan_http.py -o "$PCAP" --connections 6200 --seed 1 --manifest
fi
TANSU=${TANSU_ROOT:-/work/tools/tansu}/bin/tansu
[ -x "$TANSU" ] || { echo "no tansu at $TANSU: run tests/kafka_e2e.sh once to build it" >&2; exit 1; }
cargo build --release --quiet
VX=${CARGO_TARGET_DIR:-target}/release/vxtap
cat "$PCAP" >/dev/null

kport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tlog=$(mktemp)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ >"$tlog" 2>&1 &
tpid=$!
trap 'kill $tpid 2>/dev/null || true; rm -f "$tlog"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$kport") 2>/dev/null && break; sleep 0.1; done

ms() { local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
file_ms=(); kafka_ms=()
exchanges=0
for r in $(seq "$RUNS"); do
  topic=bench$r
  "$TANSU" topic create --broker "tcp://127.0.0.1:$kport" --partitions 8 "$topic" >/dev/null
  f=$(ms "$VX" replay -q --no-progress -t "$THREADS" -o "$OUT/kafka-bench.jsonl" "$PCAP")
  k=$(ms "$VX" replay --no-progress -t "$THREADS" -o "kafka://127.0.0.1:$kport/$topic" "$PCAP" 2>"$OUT/kafka-bench.err")
  exchanges=$(wc -l <"$OUT/kafka-bench.jsonl")
  delivered=$(grep -o 'delivered=[0-9]*' "$OUT/kafka-bench.err" | cut -d= -f2)
  [ "$delivered" = "$exchanges" ] || { echo "round $r: kafka delivered $delivered of $exchanges"; cat "$OUT/kafka-bench.err"; exit 1; }
  echo "round $r: file ${f} ms, kafka ${k} ms ($exchanges exchanges, all delivered)"
  file_ms+=("$f"); kafka_ms+=("$k")
  "$TANSU" topic delete --broker "tcp://127.0.0.1:$kport" "$topic" >/dev/null 2>&1 || true
done
rm -f "$OUT/kafka-bench.jsonl"
fm=$(median "${file_ms[@]}"); km=$(median "${kafka_ms[@]}")
python3 - "$exchanges" "$fm" "$km" "$THREADS" <<'PY'
import sys
n, f, k, t = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"replay -t {t}, {n} exchanges: file {n / f * 1000:,.0f}/s ({f} ms), "
      f"kafka {n / k * 1000:,.0f}/s ({k} ms): kafka at {f / k * 100:.0f} % of the file rate")
PY
