#!/usr/bin/env bash
# scripts/garage.sh install | start DIR | stop DIR — a single-node Garage (a production S3 server) for
# tests, on loopback.
#
# `start` installs Garage when missing (`cargo install --locked garage` with the SQLite
# metadata engine only; reused when present: some 15 minutes of building on 2 cores the first
# time; `scripts/garage.sh install` does only that), writes a configuration into DIR
# (its own ports, a random RPC secret, SQLite metadata), starts `garage server --single-node
# --default-bucket` with a generated access key, waits until the S3 API answers, and prints as
# its last line the settings a client needs:
#     endpoint=http://127.0.0.1:N region=garage bucket=davit key=GK... secret=...
# `stop` stops it and removes DIR.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
[[ $cmd == install || ( -n $cmd && -n $dir ) ]] ||
  { echo "usage: scripts/garage.sh install | start DIR | stop DIR" >&2; exit 2; }
[[ -x $HOME/.cargo/bin/garage ]] && export PATH="$HOME/.cargo/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

install() {
  if ! command -v garage >/dev/null; then
    echo "garage.sh: installing Garage (cargo install --locked garage)" >&2
    cargo install --locked garage --no-default-features --features bundled-libs,sqlite >&2
  fi
}

case "$cmd" in
  install) install ;;
  start)
    install
    mkdir -p "$dir/meta" "$dir/data"
    s3=$(free_port)
    rpc=$(free_port)
    admin=$(free_port)
    cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
    key="GK$(hex 12)"
    secret="$(hex 32)"
    GARAGE_DEFAULT_ACCESS_KEY="$key" GARAGE_DEFAULT_SECRET_KEY="$secret" GARAGE_DEFAULT_BUCKET=davit \
      RUST_LOG=warn garage -c "$dir/garage.toml" server --single-node --default-bucket \
      >"$dir/garage.log" 2>&1 &
    echo $! >"$dir/pid"
    # Up when the S3 API answers (403 without credentials) and the bucket exists.
    for _ in $(seq 300); do
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3/davit" || true)
      [[ $code == 403 ]] && break
      if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then cat "$dir/garage.log" >&2; exit 1; fi
      sleep 0.1
    done
    [[ ${code:-} == 403 ]] || { echo "garage.sh: the S3 API did not answer" >&2; cat "$dir/garage.log" >&2; exit 1; }
    echo "endpoint=http://127.0.0.1:$s3 region=garage bucket=davit key=$key secret=$secret"
    ;;
  stop)
    if [[ -f $dir/pid ]]; then
      pid=$(cat "$dir/pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf -- "$dir"
    ;;
  *) echo "usage: scripts/garage.sh start|stop DIR" >&2; exit 2 ;;
esac
