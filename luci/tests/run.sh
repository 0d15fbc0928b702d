#!/usr/bin/env bash
# luci-app-attendant's tests: npm dependencies (npm ci, when missing), the unit tests (node:test
# + jsdom), then the end-to-end run in Debian's chromium against the real plugin and server.
# Exits non-zero when anything fails. Needs node >= 20, /usr/bin/chromium (apt-get install -y
# chromium) and cargo; never downloads a browser.
set -euo pipefail

luci="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$luci/.." && pwd)"
cd "$luci"

if [ ! -d node_modules/jsdom ] || [ ! -d node_modules/playwright-core ]; then
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

echo "== luci: template up to date"
node tests/i18n.mjs --check

echo "== luci: unit tests"
unit_log="$(mktemp)"
trap 'rm -f "$unit_log"' EXIT
status=0
node --test tests/unit/ > "$unit_log" 2>&1 || status=$?
grep -E '^(not )?ok ' "$unit_log" || true
if [ "$status" -ne 0 ]; then
	cat "$unit_log"
fi
echo "$(sed -n 's/^# pass //p' "$unit_log") passed, $(sed -n 's/^# fail //p' "$unit_log") failed"
[ "$status" -eq 0 ] || exit "$status"

echo "== luci: end to end (headless chromium, real attendant-ubus and attendant-server)"
# scripts/test-all.sh sets ATTENDANT_TEST_PREBUILT=1: its `cargo test --workspace` has built
# these binaries already (tests/src/workspace.rs says why building them again costs minutes).
if [ "${ATTENDANT_TEST_PREBUILT:-0}" != 1 ]; then
	(cd "$repo" && cargo build -q -p attendant-ubus -p attendant-server -p attendant-e2e --bins)
fi
node tests/e2e/e2e.mjs
