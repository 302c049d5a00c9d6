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
# `stop` stops it and removes DIR. `pause` stops the server but keeps DIR, and `resume` starts
# it again on the same data, keys and ports (the fault tests of crates/davit/tests/cluster.rs
# take the object store away under running instances that way).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
usage() { echo "usage: scripts/garage.sh install | start|stop|pause|resume DIR" >&2; exit 2; }
[[ $cmd == install || ( -n $cmd && -n $dir ) ]] || usage
[[ -x $HOME/.cargo/bin/garage ]] && export PATH="$HOME/.cargo/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Starts the server configured in $dir, with the key in $dir/key, and waits until its S3 API
# (on port $s3) answers.
serve() {
  local key secret
  read -r key secret <"$dir/key"
  GARAGE_DEFAULT_ACCESS_KEY="$key" GARAGE_DEFAULT_SECRET_KEY="$secret" GARAGE_DEFAULT_BUCKET=davit \
    RUST_LOG=warn garage -c "$dir/garage.toml" server --single-node --default-bucket \
    >>"$dir/garage.log" 2>&1 &
  echo $! >"$dir/pid"
  # Up when the S3 API answers (403 without credentials) and the bucket exists.
  for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3/davit" || true)
    [[ $code == 403 ]] && break
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then cat "$dir/garage.log" >&2; exit 1; fi
    sleep 0.1
  done
  [[ ${code:-} == 403 ]] || { echo "garage.sh: the S3 API did not answer" >&2; cat "$dir/garage.log" >&2; exit 1; }
}
# Stops the server started in $dir.
halt() {
  if [[ -f $dir/pid ]]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f -- "$dir/pid"
  fi
}

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
    echo "$key $secret" >"$dir/key"
    : >"$dir/garage.log"
    serve
    echo "endpoint=http://127.0.0.1:$s3 region=garage bucket=davit key=$key secret=$secret"
    ;;
  stop)
    halt
    rm -rf -- "$dir"
    ;;
  pause) halt ;;
  resume)
    [[ -f $dir/key && -f $dir/garage.toml ]] ||
      { echo "garage.sh: $dir is not a server made by garage.sh start" >&2; exit 1; }
    halt
    # The S3 port: the first api_bind_addr of the configuration ([s3_api]).
    s3=$(sed -n 's/^api_bind_addr = "127.0.0.1:\([0-9]*\)"$/\1/p' "$dir/garage.toml" | head -n 1)
    serve
    ;;
  *) usage ;;
esac
