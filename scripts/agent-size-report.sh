#!/usr/bin/env bash
# Size and memory report of the router agent, for docs/benchmarks.md ("Agent size and memory"
# section):
#   - stripped static binary size and `xz -9e` size, aarch64 and x86_64 (`openwrt` profile,
#     built by scripts/build-agent.sh), with std rebuilt (release builds) and prebuilt;
#   - peak RSS (GNU time's "Maximum resident set size", i.e. VmHWM) of `attendant download`
#     while it downloads and verifies a 64 MiB image from a local stand-in server, and of
#     `attendant verify` on the same image;
#   - verify throughput against `sha256sum` on the same file.
#
# The stand-in server (Python, stdlib only) answers the ASU calls `download` makes, the way the
# fake server of agent/tests/util does: overview, profiles.json, package index, build, the image
# and its usign `.sig`. The image is 64 MiB of random bytes with an fwtool metadata trailer for
# the router's board; it is signed with signify-openbsd (byte-compatible with usign).
#
# Memory and time are measured with the native x86_64 binary: under qemu-user the RSS would be
# qemu's, not the agent's. The code paths are the same on aarch64.
#
# Usage: scripts/agent-size-report.sh [--size-only]
# Needs: what build-agent.sh needs, plus xz (xz-utils), GNU time (time), python3,
# signify-openbsd, sha256sum (coreutils).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly IMAGE_MIB=64
size_only=0
case "${1:-}" in
  --size-only) size_only=1 ;;
  "") ;;
  *)
    echo "error: unknown argument \`$1\` (expected --size-only)" >&2
    exit 2
    ;;
esac

die() {
  echo "error: $*" >&2
  exit 1
}
need() {
  command -v "$1" >/dev/null 2>&1 || die "\`$1\` not found

hint: apt-get install $2"
}
need xz xz-utils
if [ "$size_only" = 0 ]; then
  [ -x /usr/bin/time ] || die "GNU time (\`/usr/bin/time\`) not found

hint: apt-get install time"
  need python3 python3
  need signify-openbsd signify-openbsd
  need sha256sum coreutils
fi

echo "machine: $(uname -m), $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
echo "rustc:   $(rustc -V)"
echo

# Release builds rebuild std (the default of build-agent.sh); the prebuilt-std rows show what a
# stable-only toolchain such as OpenWrt's SDK gets.
printf '%-32s %-9s %12s %10s %12s %10s\n' target std bytes MiB "xz -9e" KB
agent=""
for std in rebuilt prebuilt; do
  flags=(--quiet)
  [ "$std" = prebuilt ] && flags+=(--prebuilt-std)
  built_lines=$(scripts/build-agent.sh "${flags[@]}") || die "scripts/build-agent.sh ${flags[*]} failed"
  mapfile -t built <<<"$built_lines"
  for line in "${built[@]}"; do
    path=${line% *}
    bytes=${line##* }
    xz_bytes=$(xz -9e -c "$path" | wc -c)
    target=$(basename "$(dirname "$(dirname "$path")")")
    printf '%-32s %-9s %12d %10.3f %12d %10.1f\n' "$target" "$std" "$bytes" \
      "$(echo "$bytes / 1048576" | bc -l)" "$xz_bytes" "$(echo "$xz_bytes / 1000" | bc -l)"
    if [ "$std" = rebuilt ] && [ "$target" = x86_64-unknown-linux-musl ]; then
      agent="$PWD/$path"
    fi
  done
done
[ "$size_only" = 1 ] && exit 0
[ -n "$agent" ] || die "build-agent.sh printed no x86_64 binary"

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== ${IMAGE_MIB} MiB image, signature, fake router root and stand-in server in $work"
root="$work/root"
mkdir -p "$root/tmp/sysinfo" "$root/usr/lib/opkg" "$root/etc/config" "$root/etc/opkg/keys" \
  "$root/proc" "$work/www"
echo "tplink,archer-c7-v5" >"$root/tmp/sysinfo/board_name"
echo "TP-Link Archer C7 v5" >"$root/tmp/sysinfo/model"
cat >"$root/usr/lib/os-release" <<'EOF'
NAME="OpenWrt"
VERSION="24.10.4"
ID="openwrt"
BUILD_ID="r28427-6df0e3d02a"
OPENWRT_BOARD="ath79/generic"
OPENWRT_ARCH="mips_24kc"
OPENWRT_RELEASE="OpenWrt 24.10.4 r28427-6df0e3d02a"
EOF
printf '/dev/root /rom squashfs ro 0 0\noverlayfs:/overlay / overlay rw 0 0\n' >"$root/proc/mounts"
cp proto/testdata/opkg/status-24.10-ath79 "$root/usr/lib/opkg/status"

python3 - "$work" "$IMAGE_MIB" <<'EOF'
import json, os, struct, sys, zlib
work, mib = sys.argv[1], int(sys.argv[2])
MAGIC = 0x46577830  # fwtool trailer (FWTOOL_TRAILER_MAGIC in OpenWrt's package/system/fwtool; proto/testdata/fwtool)
metadata = json.dumps({"metadata_version": "1.1", "compat_version": "1.0",
                       "supported_devices": ["tplink,archer-c7-v5"]}).encode()
payload = struct.pack(">II", 0, 0) + metadata
with open(os.path.join(work, "image.bin"), "wb") as f:
    crc = 0
    for _ in range(mib):
        chunk = os.urandom(1 << 20)
        crc = zlib.crc32(chunk, crc)
        f.write(chunk)
    crc = zlib.crc32(payload, crc)
    f.write(payload)
    f.write(struct.pack(">IIB3xI", MAGIC, crc ^ 0xFFFFFFFF, 1, len(payload) + 16))
EOF
signify-openbsd -G -n -p "$work/key.pub" -s "$work/key.sec" >/dev/null
signify-openbsd -S -s "$work/key.sec" -m "$work/image.bin" -x "$work/image.bin.sig"
fingerprint=$(sed -n 2p "$work/key.pub" | base64 -d | head -c 10 | tail -c 8 | od -An -tx1 | tr -d ' \n')
cp "$work/key.pub" "$root/etc/opkg/keys/$fingerprint"

port_file="$work/port"
python3 - "$work" "$port_file" proto/testdata <<'EOF' >"$work/server.log" 2>&1 &
import hashlib, http.server, json, os, re, sys
work, port_file, data = sys.argv[1], sys.argv[2], sys.argv[3]
image = os.path.join(work, "image.bin")
size = os.path.getsize(image)
digest = hashlib.sha256()
with open(image, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
sha = digest.hexdigest()
installed = {}
for stanza in open(os.path.join(data, "opkg/status-24.10-ath79")).read().split("\n\n"):
    fields = dict(l.split(": ", 1) for l in stanza.splitlines() if ": " in l)
    name, abi = fields.get("Package"), fields.get("ABIVersion")
    if name and abi and name.endswith(abi):
        name = name[: -len(abi)]  # the index uses ABI-free names, as ASU serves them
    if name and "Version" in fields:
        installed[name] = fields["Version"]
installed["luci"] = "25.074.50000~b2c3d4e"
response = json.load(open(os.path.join(data, "asu/build-200-24.10.6-ath79-tplink_archer-c7-v5.json")))
request_hash = response["request_hash"]
image_name = "openwrt-24.10.6-ath79-generic-tplink_archer-c7-v5-squashfs-sysupgrade.bin"
response["images"] = [{"filesystem": "squashfs", "name": image_name, "sha256": sha,
                       "sha256_unsigned": sha, "type": "sysupgrade"}]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, status, body, kind="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def json(self, status, value):
        self.reply(status, json.dumps(value).encode())
    def do_HEAD(self):
        self.do_GET()
    def do_GET(self):
        url = "http://%s:%d" % self.server.server_address
        if self.path == "/json/v1/overview.json":
            overview = json.load(open(os.path.join(data, "asu/overview.json")))
            overview["upstream_url"] = url
            return self.json(200, overview)
        if self.path == "/releases/24.10.6/targets/ath79/generic/profiles.json":
            return self.reply(200, open(os.path.join(data, "upstream/profiles-24.10.6-ath79-generic.json"), "rb").read())
        if self.path == "/json/v1/releases/24.10.6/packages/mips_24kc-index.json":
            return self.json(200, {"architecture": "mips_24kc", "packages": installed})
        if self.path == "/api/v1/build/" + request_hash:
            return self.json(200, response)
        if self.path == "/store/%s/%s" % (request_hash, image_name):
            return self.send_image()
        if self.path == "/store/%s/%s.sig" % (request_hash, image_name):
            return self.reply(200, open(image + ".sig", "rb").read(), "text/plain")
        return self.json(404, {"detail": "Not Found"})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/api/v1/build":
            return self.json(404, {"detail": "Not Found"})
        request = json.loads(body)
        response["request"] = request
        response["manifest"] = dict(request.get("packages_versions") or {})
        self.json(200, response)
    def send_image(self):
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(image, "rb") as f:
            f.seek(start)
            for chunk in iter(lambda: f.read(1 << 16), b""):
                self.wfile.write(chunk)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
EOF
server_pid=$!
for _ in $(seq 1 600); do
  [ -s "$port_file" ] && break
  kill -0 "$server_pid" 2>/dev/null || {
    cat "$work/server.log" >&2
    die "the stand-in server stopped"
  }
  sleep 0.1
done
[ -s "$port_file" ] || die "the stand-in server did not start within 60 s"
server="http://127.0.0.1:$(cat "$port_file")"
printf "config server 'server'\n\toption url '%s'\n\nconfig attendant 'attendant'\n\toption require_signature '1'\n" \
  "$server" >"$root/etc/config/attendedsysupgrade"

# measure NAME ARGS...: runs the agent under GNU time; prints peak RSS and wall time.
measure() {
  local name=$1
  shift
  env -u http_proxy -u https_proxy -u all_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY \
    NO_COLOR=1 /usr/bin/time -f '%M %e' -o "$work/$name.time" \
    "$agent" "$@" --root "$root" >"$work/$name.out" 2>"$work/$name.err" || {
    cat "$work/$name.out" "$work/$name.err" >&2
    die "\`attendant $*\` failed"
  }
  read -r rss_kib seconds <"$work/$name.time"
  printf '%-10s peak RSS %6d KiB (%.2f MiB)  wall %6.2f s\n' "$name" "$rss_kib" \
    "$(echo "$rss_kib / 1024" | bc -l)" "$seconds"
}

image="$root/tmp/firmware.bin"  # the default --image, /tmp/firmware.bin, under --root
echo "command:  attendant download --root ROOT   (server: $server)"
measure download download
cmp -s "$image" "$work/image.bin" || die "the downloaded image differs from the served one"
echo "command:  attendant verify --root ROOT"
measure verify verify
grep -q "signed by" "$work/verify.out" || die "verify did not check the signature: $(cat "$work/verify.out")"

bytes=$(stat -c %s "$image")
verify_seconds=$(awk '{print $2}' "$work/verify.time")
start=$(date +%s.%N)
sha256sum "$image" >/dev/null
end=$(date +%s.%N)
sha_seconds=$(echo "$end - $start" | bc -l)
printf 'throughput on %d bytes: attendant verify %.0f MB/s (SHA-256 + usign Ed25519 + fwtool), sha256sum %.0f MB/s\n' \
  "$bytes" "$(echo "$bytes / $verify_seconds / 1000000" | bc -l)" \
  "$(echo "$bytes / $sha_seconds / 1000000" | bc -l)"
