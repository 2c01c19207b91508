#!/usr/bin/env bash
# Comparison cost per exchange pair on ~2 KB JSON bodies against serde_json's own parse of the
# same two bodies (interleaved rounds in one run, best round per case), and the heap of the
# noise statistics under 1 million distinct paths (counting allocator; the caps hold it flat).
#
#   bash bench/compare_diff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p vxtap-compare --bench compare 2>&1 | grep -vE '^\s+(Compiling|Running|Finished)'
