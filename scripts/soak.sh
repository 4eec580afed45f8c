#!/usr/bin/env bash
# Soak benchmark (not part of CI): many idle doc connections plus active arena
# rooms for a long time, on loopback, watching the server's memory, file
# descriptors, rooms, connections and tick timing.
#
#   scripts/soak.sh                                   # 5,000 idle + 100 x 8 active, 600 s
#   SOAK_DURATION=30 SOAK_IDLE=500 scripts/soak.sh    # a short smoke run
#
# Steps: builds release binaries; starts a fresh roomcast on 127.0.0.1 (admin
# token, connection limits lifted, rooms stop 5 s after their last member);
# records BEFORE figures; opens SOAK_IDLE idle doc clients (`roomcast-load --doc
# --idle`, SOAK_IDLE_PER_DOC per doc) and waits until all are connected; records
# IDLE figures (memory per idle connection = RSS delta / SOAK_IDLE); runs the
# active load (`roomcast-load --rooms SOAK_ROOMS --players SOAK_PLAYERS
# --duration SOAK_DURATION`) while sampling every SOAK_SAMPLE_EVERY seconds;
# then lets both loads end (the idle one is sized to outlast the active one by
# a few seconds), waits for the rooms to drain, records AFTER figures and prints
# a summary. Everything it starts stops by itself; the trap stops what is left
# (by PID) on any exit.
#
# Each sample: server RSS (/proc/PID/status VmRSS), open fds (/proc/PID/fd), CPU
# over the interval (/proc/PID/stat), live rooms (GET /api/v1/rooms total),
# open connections by kind (roomcast_connections_open), and tick figures:
#   tick_p99_le_ms   99th percentile of the tick durations of the interval: the
#                    upper bound of the bucket of roomcast_tick_duration_seconds
#                    that holds it, from the difference of the histogram's
#                    cumulative buckets between two samples (so "0.1" means
#                    p99 <= 0.1 ms).
#   late_p99_le_ms   the same for roomcast_tick_lateness_seconds.
#   room_p99_max_ms  the largest tick_p99_ms of the admin listing: per room,
#                    over the room's whole life (hdr histogram, exact).
# Output: a table on stdout; samples.csv, summary.json, the loads' reports and
# the server log in SOAK_OUT (default: a new temporary directory).
#
# Settings (environment):
#   SOAK_IDLE=5000 SOAK_IDLE_PER_DOC=100 SOAK_ROOMS=100 SOAK_PLAYERS=8
#   SOAK_DURATION=600 SOAK_WARMUP=5 SOAK_SAMPLE_EVERY=30 SOAK_SETTLE=10
#   SOAK_CONNECT_RATE=200 (idle connections opened per second)
#   SOAK_PORT=18090 SOAK_OUT=DIR
#   SOAK_SERVER_ARGS="--persistence off" (extra server flags; replaces the default)
set -euo pipefail
cd "$(dirname "$0")/.."

idle=${SOAK_IDLE:-5000}
per_doc=${SOAK_IDLE_PER_DOC:-100}
rooms=${SOAK_ROOMS:-100}
players=${SOAK_PLAYERS:-8}
duration=${SOAK_DURATION:-600}
warmup=${SOAK_WARMUP:-5}
every=${SOAK_SAMPLE_EVERY:-30}
settle=${SOAK_SETTLE:-10}
connect_rate=${SOAK_CONNECT_RATE:-200}
port=${SOAK_PORT:-18090}
server_args=${SOAK_SERVER_ARGS:---persistence off}
out=${SOAK_OUT:-$(mktemp -d -t roomcast-soak.XXXXXX)}
mkdir -p "$out"

for n in idle per_doc rooms players duration warmup every settle; do
  [[ ${!n} =~ ^[0-9]+$ ]] || { echo "soak: SOAK_${n^^} must be a whole number" >&2; exit 1; }
done
((idle >= 1 && per_doc >= 1 && rooms >= 1 && players >= 1 && duration >= 1 && every >= 1)) ||
  { echo "soak: counts and durations must be at least 1" >&2; exit 1; }
((per_doc <= idle)) || per_doc=$idle
((idle % per_doc == 0)) ||
  { echo "soak: SOAK_IDLE ($idle) must be a multiple of SOAK_IDLE_PER_DOC ($per_doc)" >&2; exit 1; }
docs=$((idle / per_doc))

base="http://127.0.0.1:$port"
token="soak-$RANDOM$RANDOM$RANDOM"
clk_tck=$(getconf CLK_TCK)

server='' idle_pid='' active_pid=''
stop_all() {
  local pid
  for pid in $active_pid $idle_pid $server; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $active_pid $idle_pid $server; do
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT

cargo build --release --quiet --bin roomcast --bin roomcast-load
# The server holds one fd per connection: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < idle + rooms * players + 256)); then
  echo "soak: warning: open-file limit $(ulimit -n) is below the $((idle + rooms * players)) connections" >&2
fi

# shellcheck disable=SC2086 # server_args is a list of flags
RUST_LOG=warn ./target/release/roomcast --bind "127.0.0.1:$port" --idle-timeout 5s \
  --admin-token "$token" --max-connections 100000 --max-connections-per-ip 100000 \
  --data-dir "$out/data" $server_args >"$out/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "$base/healthz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fs "$base/healthz" >/dev/null || { echo "soak: server did not come up" >&2; exit 1; }

# --- figures ---------------------------------------------------------------

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$server/status"; }
fd_count() { ls "/proc/$server/fd" | wc -l; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
metrics() { curl -fs --max-time 10 "$base/metrics"; }
room_total() {
  curl -fs --max-time 10 -H "Authorization: Bearer $token" "$base/api/v1/rooms?limit=1" |
    grep -o '"total":[0-9]*' | cut -d: -f2
}
# Largest tick_p99_ms of the game rooms (the listing pages by 500).
room_p99_max() {
  local offset=0 page max=0
  while :; do
    page=$(curl -fs --max-time 10 -H "Authorization: Bearer $token" \
      "$base/api/v1/rooms?kind=game&limit=500&offset=$offset") || break
    max=$( { echo "$max"; grep -o '"tick_p99_ms":[0-9.e+-]*' <<<"$page" | cut -d: -f2; } | sort -g | tail -n 1)
    grep -q '"id"' <<<"$page" || break
    offset=$((offset + 500))
    (($(grep -o '"total":[0-9]*' <<<"$page" | cut -d: -f2) > offset)) || break
  done
  echo "$max"
}
# `connections_open` of one kind.
conns() { awk -v k="kind=\"$2\"" '$1 ~ /^roomcast_connections_open\{/ && index($1, k) { s += $2 } END { print s + 0 }' <<<"$1"; }
# Cumulative buckets of histogram $2 (summed over labels), as "le count" lines.
buckets() {
  awk -v m="$2_bucket{" 'index($1, m) == 1 {
      le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); c[le] += $2
    } END { for (le in c) print (le == "+Inf" ? "inf" : le), c[le] }' <<<"$1" | sort -g -k1,1
}
# p99 of the interval between two bucket dumps ($1 old file, $2 new file): the
# upper bound (ms) of the bucket holding it; "-" when no tick ran.
interval_p99() {
  awk 'FILENAME == ARGV[1] { old[$1] = $2; next }
    { le[++n] = $1; d[n] = $2 - old[$1] }
    END {
      total = d[n]
      if (total <= 0) { print "-"; exit }
      for (i = 1; i <= n; i++) if (d[i] >= 0.99 * total) {
        print (le[i] == "inf" ? "inf" : sprintf("%g", le[i] * 1000)); exit
      }
    }' "$1" "$2"
}

: >"$out/dur.prev"
: >"$out/late.prev"
last_cpu=$(cpu_ticks)
last_t=$(date +%s.%N)
t0=$last_t
echo "phase,t_s,rss_kib,fds,rooms,conns_doc,conns_game,cpu_pct,tick_p99_le_ms,late_p99_le_ms,room_p99_max_ms" >"$out/samples.csv"
printf '%-8s %7s %9s %6s %6s %6s %6s %6s %10s %10s %10s\n' phase t_s rss_MiB fds rooms doc game cpu% tick_p99 late_p99 room_p99
# Takes a sample labelled $1, prints it and appends it to samples.csv; sets
# s_rss (KiB), s_fds, s_rooms for the caller.
sample() {
  local m now cpu pct dur late
  kill -0 "$server" 2>/dev/null || { echo "soak: the server died (log: $out/server.log)" >&2; exit 1; }
  m=$(metrics)
  now=$(date +%s.%N)
  cpu=$(cpu_ticks)
  pct=$(awk -v a="$last_cpu" -v b="$cpu" -v t0="$last_t" -v t1="$now" -v hz="$clk_tck" \
    'BEGIN { printf "%.1f", (b - a) / hz / (t1 - t0) * 100 }')
  last_cpu=$cpu last_t=$now
  buckets "$m" roomcast_tick_duration_seconds >"$out/dur.now"
  buckets "$m" roomcast_tick_lateness_seconds >"$out/late.now"
  dur=$(interval_p99 "$out/dur.prev" "$out/dur.now")
  late=$(interval_p99 "$out/late.prev" "$out/late.now")
  mv "$out/dur.now" "$out/dur.prev"
  mv "$out/late.now" "$out/late.prev"
  s_rss=$(rss_kib) s_fds=$(fd_count) s_rooms=$(room_total)
  local doc game p99max t
  doc=$(conns "$m" doc) game=$(conns "$m" game) p99max=$(room_p99_max)
  t=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.0f", b - a }')
  echo "$1,$t,$s_rss,$s_fds,$s_rooms,$doc,$game,$pct,$dur,$late,$p99max" >>"$out/samples.csv"
  printf '%-8s %7s %9.1f %6s %6s %6s %6s %6s %10s %10s %10s\n' "$1" "$t" \
    "$(awk -v k="$s_rss" 'BEGIN { print k / 1024 }')" "$s_fds" "$s_rooms" "$doc" "$game" \
    "$pct" "$dur" "$late" "$p99max"
}

# --- run -------------------------------------------------------------------

sample before
before_rss=$s_rss before_fds=$s_fds before_rooms=$s_rooms

# The idle clients stay until a few seconds after the active load's expected end:
# its ramp (200 connections/s) + warmup + duration + up to 2 s of closing, plus
# the settle time before it starts.
active_total=$(awk -v c=$((rooms * players)) -v w="$warmup" -v d="$duration" \
  'BEGIN { printf "%d", c / 200 + w + d + 2 }')
idle_hold=$((settle + active_total + 10))
./target/release/roomcast-load --url "ws://127.0.0.1:$port" --doc --idle \
  --docs "$docs" --clients-per-doc "$per_doc" --room-prefix idle \
  --connect-rate "$connect_rate" --warmup 0 --duration "$idle_hold" \
  --server-pid "$server" --json >"$out/idle.txt" 2>&1 &
idle_pid=$!
ramp_limit=$(awk -v n="$idle" -v r="$connect_rate" 'BEGIN { printf "%d", n / r + 60 }')
for ((i = 0; ; i++)); do
  open=$(conns "$(metrics)" doc)
  ((open >= idle)) && break
  kill -0 "$idle_pid" 2>/dev/null || { echo "soak: the idle load ended early:" >&2; cat "$out/idle.txt" >&2; exit 1; }
  ((i < ramp_limit)) || { echo "soak: only $open of $idle idle clients connected" >&2; exit 1; }
  sleep 1
done
sleep "$settle"
sample idle
idle_rss=$s_rss idle_fds=$s_fds idle_rooms=$s_rooms

./target/release/roomcast-load --url "ws://127.0.0.1:$port" --rooms "$rooms" --players "$players" \
  --room-prefix soak --warmup "$warmup" --duration "$duration" \
  --server-pid "$server" --json >"$out/active.txt" 2>&1 &
active_pid=$!
next=$((SECONDS + every))
while kill -0 "$active_pid" 2>/dev/null; do
  if ((SECONDS >= next)); then
    sample active
    next=$((next + every))
  fi
  sleep 1
done
active_status=0
wait "$active_pid" || active_status=$?
active_pid=''
sample loaded

# The idle load ends by itself (its --duration); give it its close time.
deadline=$((SECONDS + idle_hold + 30))
while kill -0 "$idle_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
idle_status=0
wait "$idle_pid" || idle_status=$?
idle_pid=''

# Rooms stop 5 s after their last member leaves.
for _ in $(seq 60); do
  (($(room_total) == 0)) && break
  sleep 1
done
sleep 2
sample after
after_rss=$s_rss after_fds=$s_fds after_rooms=$s_rooms

# --- summary ---------------------------------------------------------------

active_json=$(tail -n 1 "$out/active.txt")
idle_json=$(tail -n 1 "$out/idle.txt")
field() { grep -o "\"$2\":[^,}]*" <<<"$1" | head -n 1 | cut -d: -f2; }
ack=$(grep -o '"latency_ms":{[^}]*}' <<<"$active_json" || true)
per_conn=$(awk -v a="$before_rss" -v b="$idle_rss" -v n="$idle" 'BEGIN { printf "%.1f", (b - a) / n }')
fds_per_conn=$(awk -v a="$before_fds" -v b="$idle_fds" -v n="$idle" 'BEGIN { printf "%.3f", (b - a) / n }')
cat >"$out/summary.json" <<EOF
{"idle":$idle,"idle_docs":$docs,"rooms":$rooms,"players":$players,"duration_s":$duration,
 "before":{"rss_kib":$before_rss,"fds":$before_fds,"rooms":$before_rooms},
 "idle_connected":{"rss_kib":$idle_rss,"fds":$idle_fds,"rooms":$idle_rooms},
 "after":{"rss_kib":$after_rss,"fds":$after_fds,"rooms":$after_rooms},
 "kib_per_idle_connection":$per_conn,"fds_per_idle_connection":$fds_per_conn,
 "active_status":$active_status,"idle_status":$idle_status,
 "active":${active_json:-null},
 "idle_load":${idle_json:-null}}
EOF

echo
echo "soak: $idle idle doc clients ($docs docs x $per_doc) + $rooms x $players arena players for $duration s"
printf '  %-22s %12s %8s %7s\n' "" "RSS (MiB)" fds rooms
for p in before idle after; do
  r=${p}_rss f=${p}_fds o=${p}_rooms
  printf '  %-22s %12.1f %8s %7s\n' "$p" "$(awk -v k="${!r}" 'BEGIN { print k / 1024 }')" "${!f}" "${!o}"
done
echo "  memory per idle connection: $per_conn KiB (RSS delta / $idle); fds per idle connection: $fds_per_conn"
echo "  active load: ack p50 $(field "$ack" p50) ms, p99 $(field "$ack" p99) ms," \
  "max $(field "$ack" max) ms, joined $(field "$active_json" joined)," \
  "failures $(field "$active_json" failures), disconnects $(field "$active_json" disconnects) (exit $active_status)"
echo "  idle load: joined $(field "$idle_json" joined), failures $(field "$idle_json" failures)," \
  "disconnects $(field "$idle_json" disconnects) (exit $idle_status)"
echo "  output: $out"
