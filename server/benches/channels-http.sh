#!/bin/sh
# HTTP throughput of the channel files and the admin API against GET /api/v1/build/<hash>, with
# wrk (Debian package `wrk`) on loopback, in one run of one server.
#
# Starts `attendant-e2e demo` (attendant-server on the fixture mirror, no network needed) with
# channel keys and an admin token, builds one image (for the build status to ask for), publishes a
# channel `stable` with one device and a prebuilt build through `attendant-server channel`, then
# measures GET /channels/channels.json, the device's index.<serial>.json,
# GET /api/v1/admin/channels (bearer token) and GET /api/v1/build/<hash>, each at 16 and 64
# connections. Prints requests/s and latency percentiles. Not a test: run it by hand and copy the
# numbers to docs/benchmarks.md.
#
#   server/benches/channels-http.sh [duration, default 10s] [threads, default 2] [profile, default debug]
#
# The profile is the `target/` directory the binaries are taken from (built when missing, with
# `--release` for `release`).
set -eu

duration=${1:-10s}
threads=${2:-2}
profile=${3:-debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
e2e="$root/target/$profile/attendant-e2e"
server="$root/target/$profile/attendant-server"
port=18124
base="http://127.0.0.1:$port"
token=bench-admin-token
device=x86/64/generic
scratch=$(mktemp -d)
server_pid=
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT INT TERM

if [ ! -x "$e2e" ] || [ ! -x "$server" ]; then
    release=; [ "$profile" = release ] && release=--release
    (cd "$root" && cargo build $release -p attendant-server -p attendant-e2e --bins)
fi
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cd "$scratch"
"$server" keys root-init --secret-key root.sec >/dev/null 2>&1
"$server" keys delegate --root root.sec --signing signing.sec --valid-for 30d --output signing.ucert >/dev/null 2>&1
token_sha=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
cat >attendant.toml <<EOF
data_dir = "$scratch/data"

[channels]
signing_key = "$scratch/signing.sec"
delegation = "$scratch/signing.ucert"
publish_interval = "0s"

[[admin_tokens]]
name = "bench"
sha256 = "$token_sha"
EOF

RUST_LOG=warn "$e2e" demo --config attendant.toml --listen "127.0.0.1:$port" --workers 1 \
    >demo.out 2>demo.err &
server_pid=$!
i=0
until curl -sf "$base/api/v1/stats" >/dev/null; do
    i=$((i + 1)); [ $i -lt 3000 ] || { cat demo.err >&2; exit 1; }; sleep 0.2
done

body='{"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["tmux", "htop"]}'
hash=$(curl -s -X POST "$base/api/v1/build" -d "$body" | sed -n 's/.*"request_hash":"\([0-9a-f]*\)".*/\1/p')
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/build/$hash")" = 200 ]; do sleep 0.2; done

# The channel CLI works on the demo's database with the demo's image key and fixture mirror.
channel() { RUST_LOG=warn "$server" --config attendant.toml channel "$@" >/dev/null; }
export ATTENDANT_SIGNING_KEY="$scratch/data/demo-key-build"
export ATTENDANT_UPSTREAM_URL="$scratch/data/demo-upstream/www"
export ATTENDANT_TRUSTED_KEYS="[\"$scratch/data/demo-upstream/keys/usign.pub\"]"
head -c 1048576 /dev/urandom >openwrt-24.10.5-x86-64-generic-ext4-combined.img.gz
channel create stable
channel device add stable "$device"
channel build stable "$device" --file openwrt-24.10.5-x86-64-generic-ext4-combined.img.gz --version 24.10.5
index=$(curl -sf "$base/channels/channels.json" | sed -n 's/.*"index":"\([^"]*\)".*/\1/p')
[ -n "$index" ] || { echo "no index published" >&2; exit 1; }

printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token" >admin.lua

run() { # name, connections, path, [script]
    script=${4:+-s $4}
    # shellcheck disable=SC2086
    out=$(wrk -t "$threads" -c "$2" -d "$duration" --latency $script "$base$3")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    printf '| %-28s | %3s | %10s | %8s | %8s | %s\n' "$1" "$2" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

echo "| request                      | c   | requests/s | p50      | p99      | non-2xx/3xx"
echo "| ---                          | --- | ---        | ---      | ---      | ---"
for c in 16 64; do
    run "GET /channels/channels.json" "$c" /channels/channels.json
    run "GET device index.json" "$c" "$index"
    run "GET /api/v1/admin/channels" "$c" /api/v1/admin/channels admin.lua
    run "GET /api/v1/build/{hash}" "$c" "/api/v1/build/$hash"
done
