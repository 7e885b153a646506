#!/usr/bin/env bash
# Start or stop a PostgreSQL cluster on 127.0.0.1 for benchmarks/engine.py, with the server's default settings:
# durable (fsync, synchronous_commit and full_page_writes on), as production runs, unlike the test cluster.
#   eval "$(scripts/pg-bench-cluster.sh start)"   # prints: export CAMPAIGNKIT_BENCH_PG_URL=...
#   .venv/bin/python benchmarks/engine.py --database "$CAMPAIGNKIT_BENCH_PG_URL" --workers 2
#   scripts/pg-bench-cluster.sh stop
# Modelled on scripts/pg-test-cluster.sh, with its own folder and ports so that both can run at once:
# CAMPAIGNKIT_BENCH_PG_DIR (a folder this script creates) and CAMPAIGNKIT_BENCH_PG_PORT choose them instead.
# `start` again while the cluster runs prints the same line; `stop` deletes the folder only if this script created it.
# Needs PostgreSQL's server binaries (Debian: apt-get install postgresql). As root it runs the cluster as the
# `postgres` user, because initdb refuses to run as root.
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd -P)
key=$(printf '%s' "$checkout" | cksum | cut -d' ' -f1)
dir=${CAMPAIGNKIT_BENCH_PG_DIR:-${TMPDIR:-/tmp}/campaignkit-pg-bench-$key}
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
marker="$dir/.created-by-pg-bench-cluster"
first_port=$((56330 + key % 1000))
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; exit 1; }

as_owner() {
  # From /: the postgres user may not be allowed into the caller's working directory.
  if [ "$(id -u)" = 0 ]; then (cd / && su postgres -s /bin/bash -c "$*"); else bash -c "$*"; fi
}

url() {
  echo "export CAMPAIGNKIT_BENCH_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$1/postgres"
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
    -c listen_addresses=127.0.0.1\" start >/dev/null 2>&1"
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
      echo "$dir exists and was not created by $0; set CAMPAIGNKIT_BENCH_PG_DIR to a folder that does not exist" >&2
      exit 1
    fi
    mkdir -p "$dir" && touch "$marker"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "'$bindir/initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1"
    if [ -n "${CAMPAIGNKIT_BENCH_PG_PORT:-}" ]; then
      ports=("$CAMPAIGNKIT_BENCH_PG_PORT")
    else
      ports=()
      for offset in $(seq 0 99); do ports+=($((56330 + (first_port - 56330 + offset) % 1000))); done
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
