#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, docs, and the whole test suite.
# This is the README's test command (and all .ci/run does). It first installs what the tests need
# on a Debian/Ubuntu machine with only Rust (scripts/install-test-deps.sh; ATTENDANT_SKIP_INSTALL=1
# skips that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${ATTENDANT_SKIP_INSTALL:-0}" != 1 ]; then
  bash scripts/install-test-deps.sh
fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== module import graphs (no cycle inside any crate)"
python3 scripts/module-cycles.py --self-test
python3 scripts/module-cycles.py

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== fuzz targets (compiled, seeds replayed; see fuzz/README.md)"
# fuzz/ is its own workspace so libFuzzer never reaches the main build; its lock file also pins
# proto's dependencies, hence no --locked here.
cargo fmt --manifest-path fuzz/Cargo.toml --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --quiet -- -D warnings
cargo build --manifest-path fuzz/Cargo.toml --bins --quiet
for dir in fuzz/corpus/*/; do
  target=$(basename "$dir")
  fuzz/target/debug/"$target" "$dir"* >/dev/null 2>&1 || {
    echo "fuzz seed replay failed: $target (run: fuzz/target/debug/$target $dir*)"
    exit 1
  }
done
cargo test --manifest-path fuzz/Cargo.toml --lib --quiet

echo "== cargo test"
# `cargo test --workspace --all-targets` builds every binary of the workspace before it runs a
# test; the end-to-end tests and the LuCI and qemu steps below use those binaries as they are
# instead of building them again with a narrower package list (tests/src/workspace.rs).
export ATTENDANT_TEST_PREBUILT=1
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

echo "== luci-app-attendant (node unit tests, headless chromium end to end)"
bash luci/tests/run.sh

echo "== aarch64 agent under qemu (static musl build, check against attendant-server)"
bash scripts/agent-cross-check.sh
