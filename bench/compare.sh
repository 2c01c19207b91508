#!/usr/bin/env bash
# Throughput comparison on the standard workload (../shared/bench/gen_vxlan_http.py): every tool
# reads the same file in the same run, page cache warm, and vxtap is reported as a ratio
# against the baselines (tcpdump for read+decap, Suricata 7 for HTTP).
#
#   bash bench/compare.sh [PCAP]      # default: generates the 1 GB reference workload
#
# Env: RUNS (default 3, medians), OUT (work dir, default /tmp/vxtap-bench), SKIP_SURICATA=1,
# BASE=path/to/an/older/vxtap (times it too, in the same rounds: before/after in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=${OUT:-/tmp/vxtap-bench}
mkdir -p "$OUT"
GEN=../shared/bench/gen_vxlan_http.py
PCAP=${1:-$OUT/vx1g.pcap}
if [ ! -s "$PCAP" ]; then
  [ -f "$GEN" ] || { echo "no $PCAP and no $GEN to make it" >&2; exit 1; }
  python3 "$GEN" -o "$PCAP" --connections 6200 --seed 1 --manifest
fi
cargo build --release --quiet
T=${CARGO_TARGET_DIR:-target}
# Put the file in the page cache the way a sequential read leaves it (large folios). A cache
# filled by page faults through a mapping, or split by reclaim, holds 4 KiB folios instead, and
# then every reader here (tcpdump included) pays ~15x more page faults: 30-40 % slower reads.
python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)" "$PCAP"
cat "$PCAP" >/dev/null
VX=$T/release/vxtap
packets=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['packets'])" "$PCAP.truth.json" 2>/dev/null || echo 0)

# add NAME CMD...: a command to time. Every command runs once to warm up, then RUNS rounds
# run every command in turn, so drift of the machine (it moves 10-20 % over minutes) hits
# all of them alike. Wall time in ms from the clock; RSS from /usr/bin/time.
NAMES=()
declare -A CMD WALL RSS
add() { local name=$1; shift; NAMES+=("$name"); CMD[$name]=$(printf '%q ' "$@"); }

add tcpdump tcpdump -r "$PCAP" -w /dev/null
add vxtap_stats "$VX" stats "$PCAP"
add vxtap_replay_1 "$VX" replay -q --no-progress --threads 1 -o /dev/null "$PCAP"
add vxtap_replay_2 "$VX" replay -q --no-progress --threads 2 -o /dev/null "$PCAP"
add vxtap_replay_sample "$VX" replay -q --no-progress --threads 1 --sample 0.05 -o /dev/null "$PCAP"
# The machine's own ceiling for two workers: two independent one-worker replays at once.
# When each takes longer than one alone, the cores share something (memory bandwidth, a
# hyperthread sibling, a noisy neighbour) that no sharding can get back.
add two_solo_replays_at_once bash -c '
  "$0" replay -q --no-progress --threads 1 -o /dev/null "$1" &
  "$0" replay -q --no-progress --threads 1 -o /dev/null "$1"
  wait' "$VX" "$PCAP"
if [ -n "${BASE:-}" ]; then
  add base_replay_1 "$BASE" replay -q --no-progress --threads 1 -o /dev/null "$PCAP"
  add base_replay_2 "$BASE" replay -q --no-progress --threads 2 -o /dev/null "$PCAP"
fi
if [ -z "${SKIP_SURICATA:-}" ] && command -v suricata >/dev/null; then
  : >"$OUT/empty.rules"
  add suricata suricata -r "$PCAP" -k none --runmode single -S "$OUT/empty.rules" -l "$OUT"
fi

declare -A WALLS
for n in "${NAMES[@]}"; do eval "${CMD[$n]}" >/dev/null 2>&1 || true; RSS[$n]=0; done
for _ in $(seq "$RUNS"); do
  for n in "${NAMES[@]}"; do
    s=$(date +%s%N)
    eval "/usr/bin/time -o \"\$OUT/time.txt\" -f %M ${CMD[$n]}" >/dev/null 2>&1 || true
    e=$(date +%s%N)
    WALLS[$n]+="$(( (e - s) / 1000000 )) "
    r=$(tail -n1 "$OUT/time.txt")
    [ "$r" -gt "${RSS[$n]}" ] && RSS[$n]=$r
  done
done
for n in "${NAMES[@]}"; do
  WALL[$n]=$(printf '%s\n' ${WALLS[$n]} | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p" | awk '{ printf "%.3f", $1 / 1000 }')
done

# Correctness of what was timed: every exchange against the generator's manifest.
if [ -f "$PCAP.manifest.tsv" ]; then
  for t in 1 2; do
    "$VX" replay -q --no-progress --threads "$t" -o "$OUT/replay$t.jsonl" "$PCAP"
    printf 'threads %s: ' "$t"
    python3 bench/check_exact.py "$PCAP.manifest.tsv" "$OUT/replay$t.jsonl" || true
  done
fi

printf '\nworkload: %s (%s packets)\n' "$PCAP" "$packets"
printf '%-26s %8s %10s %10s  %s\n' tool wall_s Mpkt/s rss_MiB "runs (ms)"
for k in tcpdump vxtap_stats suricata vxtap_replay_1 vxtap_replay_2 vxtap_replay_sample two_solo_replays_at_once base_replay_1 base_replay_2; do
  [ -n "${WALL[$k]:-}" ] || continue
  awk -v k="$k" -v w="${WALL[$k]}" -v p="$packets" -v r="${RSS[$k]}" \
    -v runs="${WALLS[$k]}" \
    'BEGIN { printf "%-26s %8.3f %10.3f %10.1f  %s\n", k, w, (w > 0 ? p / w / 1e6 : 0), r / 1024, runs }'
done
ratio() { awk -v a="${WALL[$2]:-0}" -v b="${WALL[$1]:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo
echo "vxtap stats (read+decap) vs tcpdump -r:        $(ratio vxtap_stats tcpdump)x"
echo "vxtap replay 1 worker vs Suricata single:     $(ratio vxtap_replay_1 suricata)x"
echo "vxtap replay 2 workers vs 1 worker:           $(ratio vxtap_replay_2 vxtap_replay_1)x"
echo "vxtap replay --sample 0.05 vs unsampled:      $(ratio vxtap_replay_sample vxtap_replay_1)x"
if [ -n "${BASE:-}" ]; then
  echo "base replay 1 worker vs Suricata single:      $(ratio base_replay_1 suricata)x"
  echo "this build vs base, 1 worker (>1 is faster):  $(ratio vxtap_replay_1 base_replay_1)x"
  echo "this build vs base, 2 workers:                $(ratio vxtap_replay_2 base_replay_2)x"
fi
# Two solo replays at once do twice the work of one: 2 * t1 / t_pair is the speed-up two
# cores allow here, the bound for the 2-worker ratio above.
awk -v a="${WALL[vxtap_replay_1]:-0}" -v b="${WALL[two_solo_replays_at_once]:-0}" \
  'BEGIN { if (a > 0 && b > 0) printf "two cores here allow at most:                 %.2fx (two 1-worker replays at once)\n", 2 * a / b }'
