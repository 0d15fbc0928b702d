#!/usr/bin/env bash
# Installs what the test suite needs on a Debian or Ubuntu machine that has only Rust (rustup):
# Debian packages with apt-get, the rustup targets and components. Idempotent: when everything is
# there it installs nothing and prints nothing but one line. `scripts/test-all.sh` (the README's
# test command) runs it first; set ATTENDANT_SKIP_INSTALL=1 to skip it (e.g. on another distro,
# after installing the equivalents yourself).
set -euo pipefail

need_apt=()
command -v signify-openbsd >/dev/null || need_apt+=(signify-openbsd)   # usign interop oracle
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)               # static x86_64 agent (ring's C)
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)  # aarch64 agent tests
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu)
command -v xz >/dev/null || need_apt+=(xz-utils)
command -v zstd >/dev/null || need_apt+=(zstd)
command -v python3 >/dev/null || need_apt+=(python3)                   # scripts/module-cycles.py (3.11+: tomllib)
command -v file >/dev/null || need_apt+=(file)                         # scripts/build-agent.sh checks static linking
command -v systemd-analyze >/dev/null || need_apt+=(systemd)               # server/tests/dist.rs checks the systemd units
[ -x /usr/bin/chromium ] || need_apt+=(chromium)                       # LuCI end-to-end tests (never a downloaded browser)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v gpg >/dev/null || need_apt+=(gpg)                           # streams tests: GPG-signed .sjson
command -v gpgv >/dev/null || need_apt+=(gpgv)                         # what sstream-query verifies with
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)  # the simplestreams tools' venv
[ -x /usr/sbin/ip ] || need_apt+=(iproute2)                            # network-namespace worker tests (ip netns, veth, bridge)
command -v sysctl >/dev/null || need_apt+=(procps)                     # ip forwarding inside the test namespaces
setpriv --help >/dev/null 2>&1 || need_apt+=(util-linux)              # setpriv --pdeathsig for test processes
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)  # PostgreSQL store tests (private throwaway clusters)

if [ "${#need_apt[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "missing test tools: ${need_apt[*]} (Debian package names); install them, then" >&2
    echo "run again with ATTENDANT_SKIP_INSTALL=1" >&2
    exit 1
  fi
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "missing test tools: ${need_apt[*]}; run as root or install them with:" >&2
      echo "  apt-get install ${need_apt[*]}" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  echo "== apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The stock simplestreams tools (sstream-query, sstream-mirror) from PyPI, in a virtual environment
# under target/ (Debian's own Python refuses `pip install` outside one); server/tests/streams.rs
# looks for them there, or in $ATTENDANT_SSTREAM_DIR.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
streams_venv="$repo_root/target/streams-venv"
if [ ! -x "$streams_venv/bin/sstream-mirror" ]; then
  echo "== python-simplestreams into $streams_venv"
  python3 -m venv "$streams_venv"
  "$streams_venv/bin/pip" install -q --disable-pip-version-check python-simplestreams
fi

installed_targets=$(rustup target list --installed)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done
installed_components=$(rustup component list --installed)
for component in clippy rustfmt rust-src; do
  # rust-src: scripts/build-agent.sh rebuilds std for the router binaries (-Zbuild-std).
  grep -q "^$component" <<<"$installed_components" || rustup component add "$component"
done
echo "== test tools present"
