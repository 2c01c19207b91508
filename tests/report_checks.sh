#!/usr/bin/env bash
# The exports checked with the outside tools (run by .ci/run; installs what it needs):
# - the HTML report renders in headless Chromium, its script runs to the end (marker
#   data-ready="1") and a screenshot is taken;
# - the OpenAPI document round-trips through openapi-spec-validator (a mainstream validator);
# - the k6 script passes `k6 inspect` when k6 is installed, else `node --check`.
# Usage: bash tests/report_checks.sh [VXTAP_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/vxtap}
PCAP=pcaps/vxlan/mixed-vni101.pcap
export DEBIAN_FRONTEND=noninteractive
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if ! python3 -c "import openapi_spec_validator" 2>/dev/null; then
  python3 -m pip install -q openapi-spec-validator
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$BIN" report "$PCAP" -o "$out/report.html" 2>/dev/null
"$BIN" openapi "$PCAP" -o "$out/api.yaml" 2>/dev/null
"$BIN" k6 "$PCAP" -o "$out/load.js" 2>/dev/null

flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-sync --no-first-run)
chromium "${flags[@]}" --user-data-dir="$(mktemp -d -p "$out")" --enable-logging=stderr \
  --dump-dom "file://$out/report.html" >"$out/dom.html" 2>"$out/chromium.log"
grep -q 'data-ready="1"' "$out/dom.html" || {
  echo "report: the page's script did not finish"; cat "$out/chromium.log"; exit 1; }
if grep -E "Uncaught|CONSOLE" "$out/chromium.log"; then
  echo "report: console errors"; exit 1
fi
chromium "${flags[@]}" --user-data-dir="$(mktemp -d -p "$out")" --window-size=1200,1600 \
  --screenshot="$out/report.png" "file://$out/report.html" >/dev/null 2>&1
test -s "$out/report.png" || { echo "report: no screenshot"; exit 1; }
echo "report: renders in headless Chromium, script ran, screenshot $(stat -c %s "$out/report.png") bytes"

python3 - "$out/api.yaml" <<'PY'
import sys
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
doc, _ = read_from_filename(sys.argv[1])
validate(doc)
print(f"openapi: valid OpenAPI {doc['openapi']} ({len(doc['paths'])} paths) per openapi-spec-validator")
PY

if command -v k6 >/dev/null 2>&1; then
  k6 inspect "$out/load.js" >/dev/null && echo "k6: k6 inspect passes"
else
  cp "$out/load.js" "$out/load.mjs"
  node --check "$out/load.mjs" && echo "k6: node --check passes (k6 not installed)"
fi
echo "3 passed, 0 failed"
