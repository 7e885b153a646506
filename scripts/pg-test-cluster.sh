#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster on 127.0.0.1 for the test suite.
#   eval "$(scripts/pg-test-cluster.sh start)"   # prints: export CAMPAIGNKIT_TEST_PG_URL=...
#   scripts/pg-test-cluster.sh stop
# Each checkout has its own cluster: the folder and the first port tried derive from the checkout's path, and a port
# that is taken is skipped, so two checkouts on one host do not collide. CAMPAIGNKIT_PG_DIR (a folder this script
# creates) and CAMPAIGNKIT_PG_PORT (exactly this port) choose them instead. `start` again while the cluster runs
# prints the same line; `stop` deletes the folder only if this script created it.
# scripts/pg-bench-cluster.sh runs this script for the benchmarks' cluster (CAMPAIGNKIT_PG_ROLE=bench): the server's
# default, durable settings, its own folder and ports, and CAMPAIGNKIT_BENCH_PG_URL.
# Needs PostgreSQL's server binaries (Debian: apt-get install postgresql). As root it runs the cluster as the
# `postgres` user, because initdb refuses to run as root.
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd -P)
key=$(printf '%s' "$checkout" | cksum | cut -d' ' -f1)
role=${CAMPAIGNKIT_PG_ROLE:-test}
case "$role" in
  test) prefix=campaignkit-pg; base=54330; variable=CAMPAIGNKIT_TEST_PG_URL
        # Throwaway data: durability off makes the suite faster.
        settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" ;;
  bench) prefix=campaignkit-pg-bench; base=56330; variable=CAMPAIGNKIT_BENCH_PG_URL; settings="" ;;
  *) echo "CAMPAIGNKIT_PG_ROLE: test or bench, not $role" >&2; exit 2 ;;
esac
dir=${CAMPAIGNKIT_PG_DIR:-${TMPDIR:-/tmp}/$prefix-$key}
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
marker="$dir/.created-by-pg-$role-cluster"
first_port=$((base + key % 1000))
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; exit 1; }

as_owner() {
  # From /: the postgres user may not be allowed into the caller's working directory.
  if [ "$(id -u)" = 0 ]; then (cd / && su postgres -s /bin/bash -c "$*"); else bash -c "$*"; fi
}

url() {
  echo "export $variable=postgresql+psycopg://postgres@127.0.0.1:$1/postgres"
}

running() {
  [ -f "$dir/data/postmaster.pid" ] && as_owner "'$bindir/pg_ctl' -D '$dir/data' status >/dev/null 2>&1"
}

taken() {
  # Something accepts connections there (another checkout's cluster, say).
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_on() {
  as_owner "'$bindir/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -o \"-p $1 -k '$dir' \
    -c listen_addresses=127.0.0.1 $settings\" start >/dev/null 2>&1"
}

case "${1:-}" in
  start)
    if [ -f "$marker" ] && running; then
      url "$(cat "$dir/port")"
      exit 0
    fi
    if [ -f "$marker" ]; then
      rm -rf "$dir"  # a cluster of ours that is no longer running
    elif [ -e "$dir" ]; then
      echo "$dir exists and was not created by $0; set CAMPAIGNKIT_PG_DIR to a folder that does not exist" >&2
      exit 1
    fi
    mkdir -p "$dir" && touch "$marker"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "'$bindir/initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1"
    if [ -n "${CAMPAIGNKIT_PG_PORT:-}" ]; then
      ports=("$CAMPAIGNKIT_PG_PORT")
    else
      ports=()
      for offset in $(seq 0 99); do ports+=($((base + (first_port - base + offset) % 1000))); done
    fi
    for port in "${ports[@]}"; do
      # Checked, then tried: a port taken between the two makes the start fail, and the next one is tried.
      if ! taken "$port" && start_on "$port"; then
        echo "$port" >"$dir/port"
        url "$port"
        exit 0
      fi
    done
    log=$(tail -n 3 "$dir/server.log" 2>/dev/null || true)
    rm -rf "$dir"
    echo "could not start PostgreSQL on 127.0.0.1: port(s) ${ports[*]} in use${log:+, or: $log}" >&2
    exit 1
    ;;
  stop)
    if [ ! -f "$marker" ]; then
      echo "no cluster of this script in $dir; nothing stopped or deleted" >&2
      exit 0
    fi
    running && as_owner "'$bindir/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null"
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
