#!/usr/bin/env bash
# End to end against a real Kafka-compatible broker (tansu, in-memory storage, on loopback):
# `vxtap send` -> `vxtap listen -o kafka://` -> tansu -> `vxtap consume` -> a file, and a check
# that every exchange arrived once, in order per connection. Not part of `cargo test` (tansu
# takes ~10 minutes to build): .ci/run runs it, with tansu built once into TANSU_ROOT.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_ROOT=${TANSU_ROOT:-/work/tools/tansu}
TANSU=$TANSU_ROOT/bin/tansu
if [ ! -x "$TANSU" ]; then
  echo "kafka_e2e: building tansu into $TANSU_ROOT (once; about 10 minutes)"
  mkdir -p "$TANSU_ROOT"
  cargo install tansu --version 0.6.0 --features dynostore --locked --root "$TANSU_ROOT" \
    --target-dir "$TANSU_ROOT/target" >"$TANSU_ROOT/install.log" 2>&1 || {
      tail -n 30 "$TANSU_ROOT/install.log"; exit 1; }
fi
cargo build --quiet
V=${VXTAP_BIN:-target/debug/vxtap}
PCAP=pcaps/vxlan/mixed-vni101.pcap
LOOPS=5

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kport=$(port); admin=$(port); udp=$(port)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$kport" \
  --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine memory://tansu/ \
  >"$work/tansu.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (echo >/dev/tcp/127.0.0.1/"$kport") 2>/dev/null && break
  sleep 0.1
done
"$TANSU" topic create --broker "tcp://127.0.0.1:$kport" --partitions 4 exchanges >/dev/null

"$V" listen --bind "127.0.0.1:$udp" --admin-bind "127.0.0.1:$admin" --threads 2 \
  --recv-buffer 16MiB -o "kafka://127.0.0.1:$kport/exchanges" 2>"$work/listen.err" &
lpid=$!
pids+=($lpid)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "listener never ready"; cat "$work/listen.err"; exit 1; }
"$V" send "$PCAP" --to "127.0.0.1:$udp" --pps 20000 --loop "$LOOPS" 2>/dev/null
sleep 1
kill -TERM "$lpid"
wait "$lpid" || { echo "listen exited non-zero"; cat "$work/listen.err"; exit 1; }
delivered=$(grep -o 'delivered=[0-9]*' "$work/listen.err" | head -1 | cut -d= -f2)

"$V" consume "kafka://127.0.0.1:$kport/exchanges" --group e2e --idle-exit 5s \
  -o "$work/back.jsonl" 2>"$work/consume.err" || { cat "$work/consume.err"; exit 1; }
"$V" replay "$PCAP" -q -o "$work/replay.jsonl"

python3 - "$work/back.jsonl" "$work/replay.jsonl" "$LOOPS" "${delivered:-0}" <<'PY'
import json, sys
back = [json.loads(l) for l in open(sys.argv[1])]
per_loop = sum(1 for _ in open(sys.argv[2]))
loops, delivered = int(sys.argv[3]), int(sys.argv[4])
want = per_loop * loops
ids = [r["id"] for r in back]
assert len(back) == want, f"{len(back)} records read back, {want} expected"
assert delivered == want, f"listen reported {delivered} delivered, {want} expected"
assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} duplicates"
last = {}
for r in back:
    key = (r["client"]["ip"], r["client"]["port"], r["server"]["ip"], r["server"]["port"])
    assert last.get(key, "") <= r["ts"], f"connection {key} out of order"
    last[key] = r["ts"]
print(f"kafka_e2e: {len(back)} exchanges through tansu, once each, in order per connection "
      f"({len(last)} connections)")
PY
