#!/usr/bin/env bash
# Game-room benchmark: starts a release roomcast on a loopback port, runs
# roomcast-load against it with the given shape, prints the load tool's JSON line,
# and stops the server it started (by PID). Loopback only; bounded by --duration.
#
#   scripts/bench-game.sh ROOMS PLAYERS [DURATION_S] [WARMUP_S] [extra roomcast-load flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
rooms=${1:?rooms}; players=${2:?players}; duration=${3:-20}; warmup=${4:-5}
shift $(( $# < 4 ? $# : 4 ))
port=${BENCH_PORT:-18080}

cargo build --release --quiet --bin roomcast --bin roomcast-load
RUST_LOG=warn ./target/release/roomcast --bind "127.0.0.1:$port" --idle-timeout 5s &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
./target/release/roomcast-load --url "ws://127.0.0.1:$port" --game arena \
  --rooms "$rooms" --players "$players" --duration "$duration" --warmup "$warmup" \
  --server-pid "$server" --json "$@" | tail -n 1
