#!/usr/bin/env bash
# Builds the libFuzzer targets with the machine's stable toolchain and runs one.
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer options...]   run TARGET for SECONDS
#   fuzz/run.sh build                                    build every target
#   fuzz/run.sh list                                     list the targets
#
# cargo-fuzz is a thin wrapper around the same flags: it needs a nightly compiler only for
# `-Zsanitizer`, which these targets do not use (the crates under test are safe Rust apart from
# the capture crate's mmap/syscalls, which the fuzz targets do not reach). The flags below are
# cargo-fuzz's instrumentation (SanitizerCoverage with inline 8-bit counters, PC table and
# comparison tracing), accepted by stable rustc; RUSTC_BOOTSTRAP=1 is set only because
# libfuzzer-sys may probe for nightly features. Build scripts are not instrumented because
# `--target` is explicit (RUSTFLAGS then apply to target code only).
#
# Corpora live in fuzz/corpus/TARGET (seeded by fuzz/seed.sh, grown by runs); crashes go to
# fuzz/artifacts/TARGET. A run prints libFuzzer's final `cov:`/`ft:`/`exec/s` lines.
set -euo pipefail
cd "$(dirname "$0")"

targets=(decap pcap pcapng http_handler chunked redact h2)
triple=$(rustc -vV | sed -n 's/^host: //p')

build() {
  RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers=yes" \
  cargo build --release --quiet --target "$triple" --bins "$@"
}

case "${1:-}" in
  list) printf '%s\n' "${targets[@]}"; exit 0 ;;
  build) shift; build "$@"; exit 0 ;;
  "" | -h | --help) sed -n '2,6p' "$0"; exit 2 ;;
esac

target=$1
secs=${2:?usage: fuzz/run.sh TARGET SECONDS}
shift 2
if [[ ! " ${targets[*]} " == *" $target "* ]]; then
  echo "unknown target $target (one of: ${targets[*]})" >&2
  exit 2
fi
build
if [ ! -d "corpus/$target" ]; then
  if command -v python3 >/dev/null; then
    python3 seed.py
  else
    echo "no python3: $target starts from an empty corpus" >&2
  fi
fi
mkdir -p "corpus/$target" "artifacts/$target"
# Capture inputs are whole files: allow up to 64 KiB; the rest are small messages.
case $target in
  pcap | pcapng | decap) max_len=65536 ;;
  *) max_len=16384 ;;
esac
exec "target/$triple/release/$target" \
  -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
  "$@" "corpus/$target"
