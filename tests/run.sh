#!/usr/bin/env bash
# Runs every check and test of roomcast: formatting, clippy with warnings as
# errors, then all unit and end-to-end tests of the workspace (real servers on
# ephemeral loopback ports). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# rustfmt and clippy ship with the usual rustup toolchain; add them if missing.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --all-targets --locked
