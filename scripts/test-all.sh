#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, docs, and the whole test suite.
# This is the README's test command; .ci/run installs the tools it needs and then calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== cargo test"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
