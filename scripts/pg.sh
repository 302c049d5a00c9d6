#!/usr/bin/env bash
# scripts/pg.sh start DIR | stop DIR — a private PostgreSQL cluster for tests, on loopback.
#
# `start` installs PostgreSQL when missing (Debian's `postgresql`), makes a fresh cluster in DIR
# (initdb as the postgres user, trust authentication, 127.0.0.1 only, a free port; fsync off
# unless PG_FSYNC=on, as benchmarks set it), starts it
# and prints its connection string (`host=127.0.0.1 port=N user=postgres dbname=postgres`) as
# the last line. `stop` stops it and removes DIR. Needs root (or the postgres user).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
[[ -n $cmd && -n $dir ]] || { echo "usage: scripts/pg.sh start|stop DIR" >&2; exit 2; }

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
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=${PG_FSYNC:-off}" \
      start >&2 || { cat "$dir/server.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=postgres dbname=postgres"
    ;;
  stop)
    if bin=$(pg_bin) && [[ -d $dir/data ]]; then
      as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf -- "$dir"
    ;;
  *) echo "usage: scripts/pg.sh start|stop DIR" >&2; exit 2 ;;
esac
