#!/usr/bin/env bash
# scripts/pg.sh start DIR | stop DIR | pause DIR | resume DIR — a private PostgreSQL cluster for
# tests, on loopback.
#
# `start` installs PostgreSQL when missing (Debian's `postgresql`), makes a fresh cluster in DIR
# (initdb as the postgres user, trust authentication, 127.0.0.1 only, a free port; fsync off
# unless PG_FSYNC=on, as benchmarks set it), starts it
# and prints its connection string (`host=127.0.0.1 port=N user=postgres dbname=postgres`) as
# the last line. `stop` stops it and removes DIR. `pause` stops the server but keeps DIR, and
# `resume` starts it again on the same data and port (the fault tests of
# crates/davit/tests/cluster.rs take PostgreSQL away under running instances that way). Needs
# root (or the postgres user).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
usage() { echo "usage: scripts/pg.sh start|stop|pause|resume DIR" >&2; exit 2; }
[[ -n $cmd && -n $dir ]] || usage

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb ]] && { echo "$d"; return 0; }
  done
  return 1
}
as_pg() {
  if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}
# Starts the server of the cluster in $dir with the port and fsync setting `start` chose
# (in $dir/settings).
serve() {
  # shellcheck disable=SC1091
  . "$dir/settings"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=$fsync" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
  start)
    if ! bin=$(pg_bin); then
      echo "pg.sh: installing postgresql (apt)" >&2
      env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2
      bin=$(pg_bin)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$dir"
    chown postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    printf 'port=%s\nfsync=%s\n' "$port" "${PG_FSYNC:-off}" >"$dir/settings"
    serve
    echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
    ;;
  stop)
    if bin=$(pg_bin) && [[ -d $dir/data ]]; then
      as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf -- "$dir"
    ;;
  pause)
    bin=$(pg_bin)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    ;;
  resume)
    bin=$(pg_bin)
    [[ -f $dir/settings ]] || { echo "pg.sh: $dir is not a cluster made by pg.sh start" >&2; exit 1; }
    serve
    ;;
  *) usage ;;
esac
