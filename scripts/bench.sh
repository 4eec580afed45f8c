#!/usr/bin/env bash
# Benchmark driver: builds release binaries, starts a fresh roomcast on a loopback
# port, runs roomcast-load with the given arguments (plus --server-pid and --json),
# prints the load tool's JSON line, and stops the server it started (by PID).
# Loopback only; bounded by the load's --duration.
#
#   scripts/bench.sh --game arena --rooms 10 --players 8 --duration 20 --warmup 5
#   scripts/bench.sh --doc --docs 10 --clients-per-doc 4 --rate 10 --duration 20 --warmup 5
#
# BENCH_SERVER_ARGS adds server flags, e.g. "--persistence off" or
# "--database-url postgres://postgres@127.0.0.1:5432/roomcast_bench". By default the
# server persists into a fresh SQLite file in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PORT:-18080}

cargo build --release --quiet --bin roomcast --bin roomcast-load
data_dir=$(mktemp -d)
# shellcheck disable=SC2086 # BENCH_SERVER_ARGS is a list of flags
# Every simulated client comes from 127.0.0.1: lift the per-address limit.
RUST_LOG=warn ./target/release/roomcast --bind "127.0.0.1:$port" --idle-timeout 5s \
  --max-connections 100000 --max-connections-per-ip 100000 \
  --data-dir "$data_dir" ${BENCH_SERVER_ARGS:-} &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$data_dir"' EXIT
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
./target/release/roomcast-load --url "ws://127.0.0.1:$port" --server-pid "$server" --json "$@" | tail -n 1
