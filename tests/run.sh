#!/usr/bin/env bash
# Runs every check and test of roomcast: formatting, clippy with warnings as
# errors, all unit and end-to-end tests of the workspace (real servers on
# ephemeral loopback ports; PostgreSQL as tests/postgres.sh finds or starts it,
# a throwaway one when none answers on 127.0.0.1:5432), then the interop tests
# that drive a real roomcast server with the stock npm Yjs stack and the browser
# tests in headless Chromium (tests/node; Chromium is installed from Debian's
# packages if missing). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/postgres.sh

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

echo "== rust tests"
test_postgres_start
cargo test --workspace --all-targets --locked

echo "== yjs interop and browser tests (node)"
command -v node >/dev/null || { echo "node (20 or newer) is required for tests/node" >&2; exit 1; }
# The browser tests drive Debian's Chromium ($CHROMIUM_BIN to use another build).
if [[ -z "${CHROMIUM_BIN:-}" ]] && ! command -v chromium >/dev/null; then
  echo "installing chromium (Debian package) for the browser tests"
  as_root=()
  [[ $(id -u) -eq 0 ]] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
fi
cargo build --locked --bin roomcast --bin roomcast-doc --bin roomcast-game
target_dir=${CARGO_TARGET_DIR:-target}
[[ "$target_dir" = /* ]] || target_dir="$PWD/$target_dir"
export ROOMCAST_BIN="$target_dir/debug/roomcast" ROOMCAST_DOC_BIN="$target_dir/debug/roomcast-doc" \
  ROOMCAST_GAME_BIN="$target_dir/debug/roomcast-game"
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
npm test --prefix tests/node

echo "== TypeScript client (clients/ts): golden vectors, codec, mirror, live server"
npm ci --prefix clients/ts --no-audit --no-fund --loglevel=error
npm test --prefix clients/ts
