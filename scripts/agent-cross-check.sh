#!/usr/bin/env bash
# CI check of the shipped aarch64 agent: builds the static aarch64-unknown-linux-musl binary with
# the `openwrt` profile (scripts/build-agent.sh), then runs it under qemu-aarch64-static
# (binfmt_misc is not assumed: qemu-user runs the binary directly):
#   0. its size against the router budget: at most 1.6 MiB stripped and 800,000 bytes after
#      `xz -9e` (the compression firmware images use), the figures docs/benchmarks.md reports;
#   1. `--help` and `--version`;
#   2. `check --json` against the real attendant-server, whose upstream is the fixture OpenWrt
#      mirror of attendant-e2e served over HTTP, with a fake router root (`--root`, written by
#      `attendant-e2e router`): a TP-Link Archer C7 v5 on 24.10.4. It must find the upgrade to
#      24.10.5 (exit 3).
#
# Usage: scripts/agent-cross-check.sh            (from anywhere; about 1-3 minutes on 2 cores)
# Needs: what build-agent.sh needs, xz (xz-utils) and qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "error: $*" >&2
  exit 1
}
command -v qemu-aarch64-static >/dev/null 2>&1 ||
  die "\`qemu-aarch64-static\` not found

hint: apt-get install qemu-user-static"

command -v xz >/dev/null 2>&1 || die "\`xz\` not found

hint: apt-get install xz-utils"

# The router budget. On the router the agent lives in squashfs (or a package), both stored
# xz-compressed, so flash is counted after xz; the stripped size is what it takes once read.
readonly MAX_STRIPPED_BYTES=1677721 # 1.6 MiB
readonly MAX_XZ_BYTES=800000

echo "== build the aarch64 agent"
agent=$(scripts/build-agent.sh --quiet aarch64 | awk '{print $1}')
agent="$PWD/$agent"
echo "$agent"

echo "== size against the budget"
stripped_bytes=$(stat -c %s "$agent")
xz_bytes=$(xz -9e -c "$agent" | wc -c)
echo "stripped $stripped_bytes bytes (at most $MAX_STRIPPED_BYTES), xz -9e $xz_bytes bytes (at most $MAX_XZ_BYTES)"
[ "$stripped_bytes" -le "$MAX_STRIPPED_BYTES" ] ||
  die "the aarch64 agent is $stripped_bytes bytes stripped, over its budget of $MAX_STRIPPED_BYTES (1.6 MiB)"
[ "$xz_bytes" -le "$MAX_XZ_BYTES" ] ||
  die "the aarch64 agent is $xz_bytes bytes after xz -9e, over its budget of $MAX_XZ_BYTES"

echo "== build attendant-server and attendant-e2e"
# Already built by scripts/test-all.sh's `cargo test --workspace` when it sets
# ATTENDANT_TEST_PREBUILT=1 (a narrower build would compile the dependencies again).
if [ "${ATTENDANT_TEST_PREBUILT:-0}" != 1 ]; then
  cargo build --quiet --locked -p attendant-server -p attendant-e2e --bins
fi
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
server_bin="$target_dir/debug/attendant-server"
e2e_bin="$target_dir/debug/attendant-e2e"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# run NAME EXPECTED-EXIT ARGS...: the aarch64 agent under qemu; output to $work/NAME.{out,err}.
run() {
  local name=$1 expected=$2 code=0
  shift 2
  env -u http_proxy -u https_proxy -u all_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY \
    NO_COLOR=1 qemu-aarch64-static "$agent" "$@" >"$work/$name.out" 2>"$work/$name.err" || code=$?
  if [ "$code" != "$expected" ]; then
    echo "--- stdout" >&2
    cat "$work/$name.out" >&2
    echo "--- stderr" >&2
    cat "$work/$name.err" >&2
    die "\`attendant $*\` exited $code, expected $expected"
  fi
}

# expect NAME TEXT: the output of run NAME contains TEXT.
expect() {
  grep -qF -- "$2" "$work/$1.out" || {
    cat "$work/$1.out" "$work/$1.err" >&2
    die "the output of \`$1\` lacks \`$2\`"
  }
}

echo "== attendant --help, --version (qemu-aarch64-static)"
run help 0 --help
expect help "Usage: attendant"
run version 0 --version
expect version "attendant"
run check-help 0 check --help
expect check-help "--version-to"

# wait_for FILE PATTERN: until a line of FILE matches PATTERN (30 s at most).
wait_for() {
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$1" >&2
  die "timed out waiting for \`$2\` in \`$1\`"
}

echo "== fixture mirror and attendant-server"
"$e2e_bin" mirror "$work/mirror" >/dev/null
"$e2e_bin" serve "$work/mirror" >"$work/mirror.url" 2>"$work/mirror.log" &
pids+=($!)
wait_for "$work/mirror.url" '^http://'
upstream=$(head -n 1 "$work/mirror.url")

# A free port: the server takes its address from the configuration.
port=""
for _ in $(seq 1 20); do
  candidate=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port=$candidate
    break
  fi
done
[ -n "$port" ] || die "no free port found on 127.0.0.1"
ATTENDANT_DATA_DIR="$work/server" ATTENDANT_LISTEN="127.0.0.1:$port" \
  ATTENDANT_UPSTREAM_URL="$upstream" ATTENDANT_TRUSTED_KEYS="[\"$work/mirror/keys/usign.pub\"]" \
  "$server_bin" serve >"$work/server.out" 2>"$work/server.log" &
pids+=($!)
wait_for "$work/server.log" "serving"
server="http://127.0.0.1:$port"

echo "== fake router root: Archer C7 v5 on 24.10.4"
# The packages the fixture ImageBuilder of 24.10.4 installs for the profile, as on a real
# router (top-level marks, Provides, ABI versions), and the server the agent asks.
root="$work/root"
"$e2e_bin" router "$root" --version 24.10.4 --target ath79/generic \
  --profile tplink_archer-c7-v5 --board tplink,archer-c7-v5 --model "TP-Link Archer C7 v5" \
  >/dev/null
mkdir -p "$root/etc/config"
printf "config server 'server'\n\toption url '%s'\n" "$server" >"$root/etc/config/attendedsysupgrade"

echo "== attendant check --json against $server (qemu-aarch64-static)"
run check 3 check --json --root "$root"
result=$(tail -n 1 "$work/check.out")
for field in '"event":"result"' '"verdict":"upgrade_available"' '"exit_code":3' \
  '"version":"24.10.5"' '"profile":"tplink_archer-c7-v5"'; do
  [[ "$result" == *"$field"* ]] || die "the check result lacks \`$field\`: $result"
done
echo "ok: the aarch64 agent found the upgrade to 24.10.5 on attendant-server"
