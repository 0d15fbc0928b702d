#!/bin/sh
# HTTP benchmark of attendant-server with wrk (Debian package `wrk`) on loopback.
#
# Starts `attendant-e2e demo` (attendant-server on the fixture mirror, no network needed) from the
# release build in a scratch directory, builds one image so there is a cache hit to ask for, then measures:
# cache-hit POST /api/v1/build, GET /api/v1/build/<hash>, a 404 (unknown hash) and a 400
# (unsupported distro), each at 16 and 64 connections with wrk; HEAD with ApacheBench, because
# wrk waits for the body that a HEAD response's Content-Length announces and never completes a
# request; and the latency of single unknown-package 422s. Prints requests/s and latency
# percentiles (p50, p99). Not a test: run it by hand and copy the numbers to docs/benchmarks.md.
#
#   server/benches/http.sh [duration, default 10s] [threads, default 2]
set -eu

duration=${1:-10s}
threads=${2:-2}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/target/release/attendant-e2e"
port=18123
base="http://127.0.0.1:$port"
scratch=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$scratch"' EXIT INT TERM

[ -x "$bin" ] || (cd "$root" && cargo build --release -p attendant-server -p attendant-e2e --bins)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

cd "$scratch"
ATTENDANT_DATA_DIR="$scratch/data" RUST_LOG=warn "$bin" demo --listen "127.0.0.1:$port" --workers 1 \
    >"$scratch/demo.out" 2>"$scratch/demo.err" &
server_pid=$!
i=0
until curl -sf "$base/api/v1/stats" >/dev/null; do
    i=$((i + 1)); [ $i -lt 600 ] || { cat "$scratch/demo.err" >&2; exit 1; }; sleep 0.2
done

body='{"version": "24.10.5", "target": "x86/64", "profile": "generic", "packages": ["tmux", "htop"]}'
hash=$(curl -s -X POST "$base/api/v1/build" -d "$body" | sed -n 's/.*"request_hash":"\([0-9a-f]*\)".*/\1/p')
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/build/$hash")" = 200 ]; do sleep 0.2; done

lua() { # method, body
    printf 'wrk.method = "%s"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$1" "$2"
}
lua POST "$body" >post.lua
lua POST '{"version": "24.10.5", "target": "x86/64", "profile": "generic", "distro": "lede"}' >bad.lua
lua GET "" >get.lua

run() { # name, connections, script, path
    out=$(wrk -t "$threads" -c "$2" -d "$duration" --latency -s "$3" "$base$4")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    printf '| %-22s | %3s | %10s | %8s | %8s | %s\n' "$1" "$2" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

echo "| request                | c   | requests/s | p50      | p99      | non-2xx/3xx"
echo "| ---                    | --- | ---        | ---      | ---      | ---"
for c in 16 64; do
    run "cache-hit POST" "$c" post.lua /api/v1/build
    run "status GET" "$c" get.lua "/api/v1/build/$hash"
    run "404 unknown hash" "$c" get.lua "/api/v1/build/$(printf 'ab%.0s' $(seq 32))"
    run "400 bad distro" "$c" bad.lua /api/v1/build
done

# HEAD with ApacheBench (Debian apache2-utils), which, unlike wrk, completes HEAD responses;
# keep-alive on, same connections. ab reports whole milliseconds.
if command -v ab >/dev/null; then
    for c in 16 64; do
        out=$(ab -k -i -q -n 100000 -c "$c" "$base/api/v1/build/$hash" 2>&1)
        rps=$(echo "$out" | awk '/Requests per second/ {print $4}')
        p50=$(echo "$out" | awk '$1 == "50%" {print $2 "ms"}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2 "ms"}')
        printf '| %-22s | %3s | %10s | %8s | %8s | %s\n' "status HEAD (ab -k)" "$c" "$rps" "$p50" "$p99" 0
    done
else
    echo "(HEAD skipped: apt-get install apache2-utils for ab)"
fi

# The unknown-package 422 is answered before anything is queued; time single requests.
for i in 1 2 3; do
    curl -s -o /dev/null -w "unknown-package 422: %{time_total}s\n" -X POST "$base/api/v1/build" \
        -d "{\"version\": \"24.10.5\", \"target\": \"x86/64\", \"profile\": \"generic\", \"packages\": [\"tmux\", \"no-such-package-$i\"]}"
done
