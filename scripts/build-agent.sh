#!/usr/bin/env bash
# Builds the static router binaries of the agent (`attendant`) with the size-optimised `openwrt`
# Cargo profile, for x86_64-unknown-linux-musl and aarch64-unknown-linux-musl, and checks that
# each one is a statically linked ELF for the right machine.
#
# By default the standard library is rebuilt with the binary (Cargo's `-Zbuild-std`), without
# std's `backtrace` feature and with `optimize_for_size` (the DWARF symboliser — gimli,
# addr2line, miniz_oxide, rustc-demangle: ~180 KB on aarch64 — is gone), and every crate, std
# included, is compiled with the `immediate-abort` panic strategy (`-Cpanic=immediate-abort`,
# unstable): a panic stops the program at once, without printing its message, so the panic
# machinery, the message formatting and libunwind are gone too (~146 KB on aarch64, 48 KB
# after xz). The agent refuses bad input with typed errors and never panics on purpose; a panic
# would be a bug, and on the router it now shows as the process dying (SIGILL/SIGTRAP) instead
# of a message. `--prebuilt-std` builds keep `panic = "abort"` with its message. Two more size
# settings come with the rebuilt std: `-Zlocation-detail=none` (the file, line and column of
# panic sites, which nothing prints any more) and the `sha2` crate's compact software SHA-256
# and SHA-512 (`--cfg sha2_backend_soft="compact"`: loops instead of unrolled rounds; together
# ~17 KB raw and ~11 KB after xz on aarch64). The compact rounds are slower where the CPU has no
# SHA-512 instructions (most router CPUs); docs/benchmarks.md has the verify throughput before
# and after. build-std is unstable Cargo; `RUSTC_BOOTSTRAP=1` lets the stable toolchain use it, as the
# Linux kernel does for its Rust code. It needs the toolchain's std sources (`rust-src`).
# Both ways link with rust-lld, which lets the build script drop the unwind tables
# (agent/build.rs).
#
# Usage: scripts/build-agent.sh [--prebuilt-std] [--openwrt-env] [--quiet] [x86_64|aarch64]...
#   (no target names: both)
#
#   --prebuilt-std use the toolchain's precompiled std instead (stable Cargo only; what a build
#                  in OpenWrt's SDK gets; about 240 KB larger on aarch64). Output goes to
#                  target/<triple>/openwrt/ instead of target/rebuilt-std/<triple>/openwrt/.
#   --openwrt-env  also export the CARGO_PROFILE_RELEASE_* variables OpenWrt's rust-package.mk
#                  sets (panic=unwind, overflow-checks=on; lang/rust/rust-values.mk in
#                  https://github.com/openwrt/packages), build
#                  again and require the result to be byte-identical to the plain build: the
#                  `openwrt` profile sets every field itself, so the environment cannot reach it.
#   --quiet        print only the final table (for other scripts)
#
# Prints one line per target: `<path> <bytes>`. Idempotent: a second run rebuilds nothing.
# aarch64 links with rust-lld and compiles ring's C with Debian's aarch64 cross gcc;
# x86_64 compiles ring's C with musl-gcc.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PROFILE=openwrt
# The panic strategy and size settings of rebuilt-std builds (see above); xtask/src/dist.rs uses
# the same flags.
readonly IMMEDIATE_ABORT="-Zunstable-options -Cpanic=immediate-abort"
readonly SIZE_FLAGS='-Zlocation-detail=none --cfg sha2_backend_soft="compact"'
std=rebuilt
openwrt_env=0
quiet=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --prebuilt-std) std=prebuilt ;;
    --openwrt-env) openwrt_env=1 ;;
    --quiet) quiet=1 ;;
    x86_64 | aarch64) targets+=("$arg-unknown-linux-musl") ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "error: unknown argument \`$arg\` (expected --prebuilt-std, --openwrt-env, --quiet, x86_64 or aarch64)" >&2
      exit 2
      ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

say() { [ "$quiet" = 1 ] || echo "$@" >&2; }
die() {
  echo "error: $*" >&2
  exit 1
}

# need COMMAND APT-PACKAGE: fails naming the tool and the package that provides it.
need() {
  command -v "$1" >/dev/null 2>&1 ||
    die "\`$1\` not found

hint: apt-get install $2"
}

need cargo "cargo (or install Rust with rustup)"
need rustc "rustc (or install Rust with rustup)"
need file file
need readelf binutils
host=$(rustc -vV | sed -n 's/^host: //p')
lld_dir="$(rustc --print sysroot)/lib/rustlib/$host/bin"
[ -x "$lld_dir/rust-lld" ] || die "\`rust-lld\` not found in \`$lld_dir\`

hint: use a rustup toolchain (it ships rust-lld) or apt-get install lld"
if [ "$std" = rebuilt ]; then
  [ -f "$(rustc --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock" ] ||
    die "the standard library's sources are not installed (needed to rebuild std)

hint: rustup component add rust-src   (or pass --prebuilt-std)"
fi
installed_targets=$(rustup target list --installed 2>/dev/null || true)
for target in "${targets[@]}"; do
  if command -v rustup >/dev/null 2>&1; then
    grep -qx "$target" <<<"$installed_targets" ||
      die "the Rust standard library for \`$target\` is not installed

hint: rustup target add $target"
  elif [ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]; then
    die "the Rust standard library for \`$target\` is not in \`$(rustc --print sysroot)\`"
  fi
  case "$target" in
    x86_64-*) need musl-gcc musl-tools ;;
    aarch64-*)
      need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
      need aarch64-linux-gnu-ar binutils-aarch64-linux-gnu
      ;;
  esac
done

# Cross settings as environment, not .cargo/config.toml: OpenWrt's SDK sets its own linker and
# CC for the same triples, and a checked-in config would compete with them.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar
export CC_x86_64_unknown_linux_musl=musl-gcc
# rust-lld is found through PATH when cargo hands it to rustc as the linker.
export PATH="$lld_dir:$PATH"

cargo_quiet=()
[ "$quiet" = 1 ] && cargo_quiet=(--quiet)

target_dir=target
std_args=()
if [ "$std" = rebuilt ]; then
  # Its own target directory: the same crates built against another std must not evict the
  # prebuilt-std artefacts every other build uses.
  target_dir=target/rebuilt-std
  std_args=(-Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size)
  # Appended, so flags a caller (or OpenWrt's SDK) sets stay; the last `-Cpanic` wins over the
  # profile's `panic = "abort"`.
  export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$IMMEDIATE_ABORT $SIZE_FLAGS"
fi

# build: builds the agent for every target with the openwrt profile.
build() {
  local target_args=()
  for target in "${targets[@]}"; do target_args+=(--target "$target"); done
  if [ "$std" = rebuilt ]; then
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" cargo build "${cargo_quiet[@]}" --locked \
      "${std_args[@]}" -p attendant --bin attendant --profile "$PROFILE" "${target_args[@]}"
  else
    cargo build "${cargo_quiet[@]}" --locked -p attendant --bin attendant \
      --profile "$PROFILE" "${target_args[@]}"
  fi
}

binary() { echo "$target_dir/$1/$PROFILE/attendant"; }

# check TARGET: the binary exists, is static and is for the target's machine.
check() {
  local path description machine
  path=$(binary "$1")
  [ -f "$path" ] || die "cargo finished but \`$path\` is missing"
  description=$(file -b "$path")
  case "$1" in
    x86_64-*) machine="x86-64" ;;
    aarch64-*) machine="ARM aarch64" ;;
  esac
  [[ "$description" == *"$machine"* ]] ||
    die "\`$path\` is not an $machine binary: $description"
  [[ "$description" == *"statically linked"* || "$description" == *"static-pie linked"* ]] ||
    die "\`$path\` is not statically linked: $description"
  [[ "$description" == *"stripped"* && "$description" != *"not stripped"* ]] ||
    die "\`$path\` is not stripped: $description"
  ! readelf -SW "$path" | grep -q '\.eh_frame' ||
    die "\`$path\` still has unwind tables: agent/build.rs no longer drops them"
  say "$path: $description"
}

say "== cargo build --profile $PROFILE (${targets[*]}; $std std)"
build
for target in "${targets[@]}"; do check "$target"; done

if [ "$openwrt_env" = 1 ]; then
  # OpenWrt's CARGO_PROFILE_RELEASE_* (rust-package.mk, via CARGO_PKG_CONFIG_VARS).
  plain=$(mktemp -d)
  trap 'rm -rf "$plain"' EXIT
  for target in "${targets[@]}"; do cp "$(binary "$target")" "$plain/$target"; done
  say "== again with OpenWrt's CARGO_PROFILE_RELEASE_* environment"
  (
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=true \
      CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_DEBUG=false \
      CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
      CARGO_PROFILE_RELEASE_RPATH=false
    build
  )
  for target in "${targets[@]}"; do
    check "$target"
    cmp -s "$plain/$target" "$(binary "$target")" ||
      die "with OpenWrt's environment the $target binary differs from the plain build:
the \`$PROFILE\` profile in Cargo.toml no longer sets every field OpenWrt overrides"
    say "$target: identical with and without OpenWrt's environment"
  done
fi

for target in "${targets[@]}"; do
  path=$(binary "$target")
  echo "$path $(stat -c %s "$path")"
done
