# Sourced by tests/run.sh: gives the Rust tests a PostgreSQL to create their
# throwaway `roomcast_test_*` databases in, and exports its maintenance database
# as ROOMCAST_TEST_POSTGRES_URL. `test_postgres_start` picks, in this order:
#   1. ROOMCAST_TEST_POSTGRES_URL when it is set, as is;
#   2. the server on 127.0.0.1:5432, when one answers there and lets `postgres`
#      in without a password (what the tests have always used);
#   3. otherwise a throwaway server of its own: a fresh cluster (trust
#      authentication, superuser `postgres`, fsync off) in a new temp directory,
#      listening on 127.0.0.1 only, on a free port, with its unix socket in that
#      directory. The server binaries come from Debian's `postgresql` package,
#      installed with apt if missing. As root the cluster runs as the `postgres`
#      user (else `nobody`), because PostgreSQL refuses to run as root. It is
#      stopped (through its own data directory and PID, nothing else) and the
#      directory removed when the sourcing shell exits, also when it fails.
# It prints one line saying which PostgreSQL the tests use.
# ROOMCAST_TEST_POSTGRES_PROBE_PORT (for testing this script only) probes that
# port instead of 5432, e.g. a closed one to exercise the throwaway path on a
# machine that runs PostgreSQL.

# State of the throwaway server, for the EXIT trap.
_test_pg_dir=
_test_pg_pid=
_test_pg_user=
_test_pg_bin=

# Runs a command as the user that owns the throwaway cluster, from its directory
# (the repository may not be readable by that user).
_test_pg_as_owner() {
  if [[ -n "$_test_pg_user" ]]; then
    (cd "$_test_pg_dir" && runuser -u "$_test_pg_user" -- "$@")
  else
    (cd "$_test_pg_dir" && "$@")
  fi
}

# Succeeds when something on 127.0.0.1:$1 answers as PostgreSQL and accepts
# connections.
_test_pg_answers() {
  local port=$1
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p "$port" -t 3
    return
  fi
  # No client tools: send an SSLRequest; a PostgreSQL server replies 'S' or 'N'.
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "\x00\x00\x00\x08\x04\xd2\x16\x2f" >&3
    IFS= read -r -n 1 -t 3 reply <&3 || exit 1
    [[ $reply == S || $reply == N ]]' _ "$port" 2>/dev/null
}

# Succeeds when nothing accepts TCP connections on 127.0.0.1:$1.
_test_pg_port_free() {
  ! timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Prints the directory holding initdb, pg_ctl and postgres: the newest
# /usr/lib/postgresql/<ver>/bin (Debian), else wherever PATH's pg_ctl lives.
_test_pg_bindir() {
  local dir candidates=()
  mapfile -t candidates < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV)
  if command -v pg_ctl >/dev/null; then
    candidates+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")")
  fi
  for dir in "${candidates[@]}"; do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

# EXIT trap: stops the throwaway server and removes its directory.
_test_pg_cleanup() {
  [[ -n "$_test_pg_dir" ]] || return 0
  # Interrupted while it was starting: its PID is in its own lock file.
  [[ -n "$_test_pg_pid" ]] ||
    _test_pg_pid="$(head -n 1 "$_test_pg_dir/data/postmaster.pid" 2>/dev/null || true)"
  if [[ -n "$_test_pg_pid" ]] && kill -0 "$_test_pg_pid" 2>/dev/null; then
    _test_pg_as_owner "$_test_pg_bin/pg_ctl" -D "$_test_pg_dir/data" -m fast -w -t 20 \
      stop >/dev/null 2>&1 || true
    # Still there: immediate shutdown, then the hard way.
    local waited=0
    while kill -0 "$_test_pg_pid" 2>/dev/null; do
      if ((waited == 0)); then
        kill -QUIT "$_test_pg_pid" 2>/dev/null || true
      elif ((waited >= 10)); then
        kill -KILL "$_test_pg_pid" 2>/dev/null || true
        break
      fi
      sleep 0.5
      waited=$((waited + 1))
    done
  fi
  rm -rf "$_test_pg_dir" || true
  _test_pg_dir=
  _test_pg_pid=
  return 0
}

# Starts the throwaway server and exports ROOMCAST_TEST_POSTGRES_URL for it.
_test_pg_throwaway() {
  if ! _test_pg_bin="$(_test_pg_bindir)"; then
    command -v apt-get >/dev/null || {
      echo "PostgreSQL server binaries (initdb, pg_ctl) not found and no apt-get to install" \
        "them: install PostgreSQL or set ROOMCAST_TEST_POSTGRES_URL" >&2
      return 1
    }
    echo "installing postgresql (Debian package) for the Rust tests"
    local as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq postgresql >/dev/null
    _test_pg_bin="$(_test_pg_bindir)" || {
      echo "postgresql is installed but initdb/pg_ctl/postgres are still not found" >&2
      return 1
    }
  fi

  _test_pg_user=
  if [[ $(id -u) -eq 0 ]]; then
    if id -u postgres >/dev/null 2>&1; then
      _test_pg_user=postgres
    elif id -u nobody >/dev/null 2>&1; then
      _test_pg_user=nobody
    else
      echo "running as root with neither a postgres nor a nobody user to run PostgreSQL as" >&2
      return 1
    fi
  fi

  # The trap goes in before the directory exists, so a failure from here on
  # leaves nothing behind.
  trap '_test_pg_status=$?; _test_pg_cleanup; exit $_test_pg_status' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  _test_pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/roomcast-pg.XXXXXX")"
  if [[ -n "$_test_pg_user" ]]; then
    chown "$_test_pg_user:" "$_test_pg_dir"
    runuser -u "$_test_pg_user" -- test -w "$_test_pg_dir" || {
      echo "$_test_pg_user cannot write to $_test_pg_dir (set TMPDIR to a directory it can reach)" >&2
      return 1
    }
  fi

  _test_pg_as_owner "$_test_pg_bin/initdb" -D "$_test_pg_dir/data" -U postgres -A trust \
    -E UTF8 --no-locale --no-sync >"$_test_pg_dir/initdb.log" 2>&1 || {
    cat "$_test_pg_dir/initdb.log" >&2
    echo "initdb failed" >&2
    return 1
  }
  # Only reachable from this machine; speed over durability, it is thrown away.
  _test_pg_as_owner tee -a "$_test_pg_dir/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$_test_pg_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

  # A random port below Linux's ephemeral range (where the tests' own servers
  # bind); another one if something takes it first.
  local port started=
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 12000))
    _test_pg_port_free "$port" || continue
    if _test_pg_as_owner "$_test_pg_bin/pg_ctl" -D "$_test_pg_dir/data" \
      -l "$_test_pg_dir/server.log" -o "-p $port" -w -t 60 start >/dev/null 2>&1; then
      started=1
      break
    fi
  done
  _test_pg_pid="$(head -n 1 "$_test_pg_dir/data/postmaster.pid" 2>/dev/null || true)"
  if [[ -z "$started" ]]; then
    cat "$_test_pg_dir/server.log" >&2 2>/dev/null || true
    echo "could not start a throwaway PostgreSQL in $_test_pg_dir" >&2
    return 1
  fi
  # pg_ctl -w waited for it to accept connections; check it does on TCP too.
  local waited=0
  until _test_pg_answers "$port"; do
    if ((waited >= 20)); then
      cat "$_test_pg_dir/server.log" >&2
      echo "throwaway PostgreSQL on 127.0.0.1:$port does not answer" >&2
      return 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done

  export ROOMCAST_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "== postgres: throwaway PostgreSQL $("$_test_pg_bin/pg_ctl" --version | awk '{print $3}')" \
    "on 127.0.0.1:$port (pid $_test_pg_pid, $_test_pg_dir; removed on exit)"
}

# Exports ROOMCAST_TEST_POSTGRES_URL for a PostgreSQL the tests can use (see the
# top of this file).
test_postgres_start() {
  if [[ -n "${ROOMCAST_TEST_POSTGRES_URL:-}" ]]; then
    # Never print a password.
    echo "== postgres: ROOMCAST_TEST_POSTGRES_URL=$(sed -E 's#(://[^:@/]*):[^@/]*@#\1:***@#' \
      <<<"$ROOMCAST_TEST_POSTGRES_URL")"
    return 0
  fi
  local port=${ROOMCAST_TEST_POSTGRES_PROBE_PORT:-5432}
  local url="postgres://postgres@127.0.0.1:$port/postgres"
  if _test_pg_answers "$port"; then
    # A server that wants a password (Debian's packaged cluster does on TCP)
    # would only fail the tests: use a throwaway instead.
    local refused=
    if command -v psql >/dev/null; then
      refused="$(PGCONNECT_TIMEOUT=5 psql -X -w -q -At -d "$url" -c 'select 1' 2>&1 >/dev/null)" ||
        refused="${refused:-psql failed}"
    fi
    if [[ -z "$refused" ]]; then
      export ROOMCAST_TEST_POSTGRES_URL="$url"
      echo "== postgres: the server already running on 127.0.0.1:$port ($url)"
      return 0
    fi
    echo "127.0.0.1:$port answers but the tests cannot use it ($(head -n 1 <<<"$refused"));" \
      "starting a throwaway PostgreSQL"
  fi
  _test_pg_throwaway
}
