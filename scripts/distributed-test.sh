#!/usr/bin/env bash
# scripts/distributed-test.sh — the tests of the distributed backend against real services.
#
# Starts a private PostgreSQL cluster (scripts/pg.sh: Debian's postgresql, installed when
# missing) and a single-node Garage S3 server (scripts/garage.sh: `cargo install`ed when
# missing, reused when present), both on loopback, runs the ignored-by-default tests of
# davit-distributed against them (each test makes its own database and keys); then runs two
# `davit serve` instances on them (a release build: DAVIT_BIN, else cargo build --release)
# behind nginx as a round-robin load balancer, and litmus (basic copymove props locks http)
# through it, and checks that both instances answered; then the cluster tests of the binary
# (crates/davit/tests/cluster.rs: real `davit serve` processes over HTTP, racing clients, a
# kill -9 mid-upload, and PostgreSQL and Garage stopped and started under them, which is why
# they run one at a time and after litmus); then stops everything. Needs root (initdb runs as
# postgres).
#
# Last line: "N passed, M failed". Exit status 0 only when all passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PG_DIR="$(mktemp -d -u "${TMPDIR:-/tmp}/davit-pg.XXXXXX")"
S3_DIR="$(mktemp -d -u "${TMPDIR:-/tmp}/davit-garage.XXXXXX")"
trap 'bash "$ROOT/scripts/pg.sh" stop "$PG_DIR"; bash "$ROOT/scripts/garage.sh" stop "$S3_DIR"' EXIT
setup_failed() {
  echo "distributed-test.sh: $1" >&2
  echo
  echo "0 passed, 1 failed"
  exit 1
}

url="$(bash scripts/pg.sh start "$PG_DIR" | tail -n 1)" || setup_failed "PostgreSQL did not start"
echo "PostgreSQL: $url"
s3="$(bash scripts/garage.sh start "$S3_DIR" | tail -n 1)" || setup_failed "Garage did not start"
echo "Garage: ${s3%% key=*}"
log="$(mktemp)"
rc=0
# --workspace with named test targets, not -p: the same features as `cargo test --workspace`,
# so step 4's build is reused instead of rebuilt (3 minutes on 2 cores).
DAVIT_TEST_PG="$url" DAVIT_TEST_S3="$s3" cargo test --workspace --test blobs --test changes \
  --test import --test namespace --test pg_locks --test sweep --test unavailable --test webdav \
  -- --ignored 2>&1 |
  tee "$log" || rc=$?
# "passed failed" summed over the "test result:" lines of a cargo test log.
tally() {
  sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1" | awk '
    /^test result: / {
      for (i = 1; i < NF; i++) {
        if ($(i + 1) ~ /^passed/) p += $i
        if ($(i + 1) ~ /^failed/) f += $i
      }
    }
    END { print p + 0, f + 0 }'
}
read -r passed failed < <(tally "$log")
rm -f "$log"
[[ $rc == 0 || $failed -gt 0 ]] || failed=1

# ---- two instances behind nginx, litmus through it
command -v nginx >/dev/null || {
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light >/dev/null 2>&1 ||
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null
}
BIN="${DAVIT_BIN:-}"
if [[ -z $BIN ]]; then
  cargo build --release -p davit >&2 || setup_failed "cargo build --release"
  BIN="$ROOT/target/release/davit"
fi
LB_DIR="$(mktemp -d "${TMPDIR:-/tmp}/davit-lb.XXXXXX")"
PIDS=()
cleanup_cluster() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [[ -f $LB_DIR/nginx.pid ]] && nginx -c "$LB_DIR/nginx.conf" -p "$LB_DIR" -s stop 2>/dev/null
  rm -rf -- "$LB_DIR"
  bash "$ROOT/scripts/pg.sh" stop "$PG_DIR"
  bash "$ROOT/scripts/garage.sh" stop "$S3_DIR"
}
trap cleanup_cluster EXIT
field() { tr ' ' '\n' <<<"$s3" | sed -n "s/^$1=//p"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cat >"$LB_DIR/davit.toml" <<TOML
[store]
backend = "postgres"
url = "$url"
pool_size = 8
[blobs]
endpoint = "$(field endpoint)"
region = "$(field region)"
bucket = "$(field bucket)"
part_size = 5242880
access_key_id = "$(field key)"
secret_access_key = "$(field secret)"
reuse_connections = false
TOML
ports=()
for i in 1 2; do
  port=$(free_port)
  ports+=("$port")
  "$BIN" serve --config "$LB_DIR/davit.toml" --listen "127.0.0.1:$port" 2>"$LB_DIR/davit$i.log" &
  PIDS+=($!)
done
lb=$(free_port)
cat >"$LB_DIR/nginx.conf" <<NGINX
worker_processes 1;
pid $LB_DIR/nginx.pid;
error_log $LB_DIR/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $LB_DIR/body;
    proxy_temp_path $LB_DIR/proxy;
    fastcgi_temp_path $LB_DIR/fastcgi;
    uwsgi_temp_path $LB_DIR/uwsgi;
    scgi_temp_path $LB_DIR/scgi;
    upstream davit { server 127.0.0.1:${ports[0]}; server 127.0.0.1:${ports[1]}; }
    server {
        listen 127.0.0.1:$lb;
        client_max_body_size 0;
        location / {
            proxy_pass http://davit;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
}
NGINX
for port in "${ports[@]}"; do
  for _ in $(seq 100); do
    curl -s -o /dev/null -X OPTIONS "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
done
nginx -c "$LB_DIR/nginx.conf" -p "$LB_DIR" || setup_failed "nginx did not start"
echo "two davit instances on ${ports[*]} behind nginx on $lb"
lrc=0
LITMUS_URL="http://127.0.0.1:$lb/" bash scripts/litmus.sh 2>&1 | tee "$LB_DIR/litmus.log" || lrc=$?
total="$(grep -E '^litmus total: ' "$LB_DIR/litmus.log" | tail -n 1)"
if [[ $lrc == 0 && $total =~ ^litmus\ total:\ ([0-9]+)\ passed,\ 0\ failed,\ 0\ warnings ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  echo "ok: litmus through the load balancer: $total"
else
  failed=$((failed + 1))
  rc=1
  echo "FAILED: litmus through the load balancer: ${total:-no summary}" >&2
  tail -n 20 "$LB_DIR"/davit*.log >&2
fi
# `davit gc` sweeps the bucket against the shared namespace.
if out=$("$BIN" gc --config "$LB_DIR/davit.toml" --min-age-secs 0 2>&1) && [[ $out == removed\ * ]]; then
  passed=$((passed + 1))
  echo "ok: davit gc: $out"
else
  failed=$((failed + 1))
  rc=1
  echo "FAILED: davit gc: $out" >&2
fi
# Round robin: both instances must have answered litmus's requests.
for i in 1 2; do
  n=$(grep -c 'davit::access' "$LB_DIR/davit$i.log" || true)
  if [[ $n -gt 50 ]]; then
    passed=$((passed + 1))
    echo "ok: instance $i answered $n requests"
  else
    failed=$((failed + 1))
    rc=1
    echo "FAILED: instance $i answered only $n requests" >&2
  fi
done

# ---- the cluster tests: real instances over HTTP, and faults (they pause and resume
# PostgreSQL and Garage, so nothing else may run meanwhile: after litmus, one at a time).
log="$(mktemp)"
crc=0
DAVIT_TEST_PG="$url" DAVIT_TEST_S3="$s3" DAVIT_TEST_PG_DIR="$PG_DIR" DAVIT_TEST_S3_DIR="$S3_DIR" \
  cargo test --workspace --test cluster -- --ignored --test-threads=1 2>&1 | tee "$log" || crc=$?
read -r cp cf < <(tally "$log")
rm -f "$log"
[[ $crc == 0 || $cf -gt 0 ]] || cf=1
passed=$((passed + cp))
failed=$((failed + cf))
[[ $cf == 0 ]] || rc=1

echo
echo "$passed passed, $failed failed"
[[ $rc == 0 ]]
