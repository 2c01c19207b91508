#!/usr/bin/env bash
# Loss-free receive rate on loopback: a raw recvmmsg receiver that only counts (the baseline)
# and `vxtap listen` with full processing, each fed by `vxtap send --pps R` from the same
# capture in the same run. Prints sent / received / kernel drops / queue drops per rate.
#
#   bash bench/listen.sh [PCAP] [RATES...]    # default: first 300k packets of the workload
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vxtap-bench}
mkdir -p "$OUT"
PCAP=${1:-$OUT/vx1g.pcap}
shift || true
RATES=${*:-100000 200000 300000 400000}
cargo build --release --quiet
cargo build --release --quiet -p vxtap-capture --example recv_count
T=${CARGO_TARGET_DIR:-target}
VX=$T/release/vxtap
RAW=$T/release/examples/recv_count
# A slice of the workload: ~1400-byte datagrams mixed with ACKs, as mirrored HTTP is.
SLICE=$OUT/listen-slice.pcap
if [ ! -s "$SLICE" ]; then
  python3 - "$PCAP" "$SLICE" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, 'rb') as f, open(dst, 'wb') as o:
    o.write(f.read(24))
    for _ in range(300000):
        h = f.read(16)
        if len(h) < 16:
            break
        n = struct.unpack('<IIII', h)[2]
        o.write(h + f.read(n))
PY
fi
port=47890
admin=47891
metric() { curl -s "127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m { s += $2 } END { print s + 0 }'; }
printf '%-8s %-10s %10s %10s %10s %10s %10s %10s\n' rate receiver sent sent_pps received kernel_drop queue_drop exchanges
for rate in $RATES; do
  secs=$(( 300000 / rate + 3 ))
  "$RAW" "127.0.0.1:$port" "$secs" >"$OUT/raw.txt" &
  rp=$!
  sleep 0.5
  out=$("$VX" send "$SLICE" --to "127.0.0.1:$port" --pps "$rate" 2>&1)
  sent=$(sed -n 's/.*sent \([0-9]*\) datagrams.*/\1/p' <<<"$out")
  pps=$(sed -n 's/.*: \([0-9]*\) datagrams\/s.*/\1/p' <<<"$out")
  wait "$rp"
  read -r _ got _ kd <"$OUT/raw.txt"
  printf '%-8s %-10s %10s %10s %10s %10s %10s %10s\n' "$rate" raw "$sent" "$pps" "$got" "$kd" - -
  "$VX" listen --bind "127.0.0.1:$port" --admin-bind "127.0.0.1:$admin" --threads 1 -o /dev/null \
    --max-memory 512MiB 2>"$OUT/listen.err" &
  lp=$!
  for _ in $(seq 50); do curl -sf "127.0.0.1:$admin/healthz" >/dev/null && break; sleep 0.1; done
  out=$("$VX" send "$SLICE" --to "127.0.0.1:$port" --pps "$rate" 2>&1)
  sent=$(sed -n 's/.*sent \([0-9]*\) datagrams.*/\1/p' <<<"$out")
  pps=$(sed -n 's/.*: \([0-9]*\) datagrams\/s.*/\1/p' <<<"$out")
  sleep 1.5
  got=$(metric vxtap_recv_datagrams_total)
  kd=$(metric vxtap_recv_kernel_drops_total)
  qd=$(metric vxtap_recv_queue_dropped_segments_total)
  ex=$(metric vxtap_output_records_total)
  kill -TERM "$lp"
  wait "$lp"
  printf '%-8s %-10s %10s %10s %10s %10s %10s %10s\n' "$rate" vxtap "$sent" "$pps" "$got" "$kd" "$qd" "$ex"
done
