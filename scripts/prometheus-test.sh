#!/usr/bin/env bash
# scripts/prometheus-test.sh — a real Prometheus scrapes davit's admin listener, and the
# counters are read back through Prometheus's HTTP query API.
#
# Installs Debian's `prometheus` when missing (apt, no recommends), starts a release build of
# davit (DAVIT_BIN, else `cargo build --release -p davit`) with --admin-listen and Prometheus
# on loopback with a 1 s scrape of it, drives known traffic with curl, waits for a scrape
# that began after the traffic ended, and checks each value exactly.
#
# Last line: "N passed, M failed". Exit status 0 only when all passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PASSED=0
FAILED=0
WORK="$(mktemp -d "${TMPDIR:-/tmp}/davit-prometheus.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf -- "$WORK"
}
trap cleanup EXIT
pass() { PASSED=$((PASSED + 1)); echo "ok: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAILED: $*" >&2; }
finish() {
  echo
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED == 0 ]]
  exit $?
}
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "prometheus-test.sh: need root (or sudo) to run: $*" >&2; return 1
  fi
}

if ! command -v prometheus >/dev/null; then
  echo "installing prometheus (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      prometheus >/dev/null || { fail "installing prometheus"; finish; }
fi
command -v python3 >/dev/null || { fail "python3 is needed to read the query API's JSON"; finish; }
BIN="${DAVIT_BIN:-}"
if [[ -z $BIN ]]; then
  cargo build --release -p davit >&2 || { fail "cargo build"; finish; }
  BIN="$ROOT/target/release/davit"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DAV=$(free_port)
ADMIN=$(free_port)
PROM=$(free_port)
mkdir -p "$WORK/root" "$WORK/tsdb"
launched=$(date +%s.%N)
"$BIN" serve "$WORK/root" --listen "127.0.0.1:$DAV" --admin-listen "127.0.0.1:$ADMIN" \
  2>"$WORK/davit.log" &
PIDS+=($!)
cat >"$WORK/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: davit
    static_configs:
      - targets: ["127.0.0.1:$ADMIN"]
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM" 2>"$WORK/prometheus.log" &
PIDS+=($!)

wait_for() { # URL — until it answers 200, 30 s at most
  for _ in $(seq 300); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$1") == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}
wait_for "http://127.0.0.1:$ADMIN/readyz" || { fail "davit did not start"; cat "$WORK/davit.log" >&2; finish; }
wait_for "http://127.0.0.1:$PROM/-/ready" || { fail "prometheus did not start"; tail "$WORK/prometheus.log" >&2; finish; }
pass "davit and prometheus started"

# Known traffic: 5 PUTs (201), 3 GETs (200), 2 GETs of missing files (404), one PROPFIND (207),
# then the first GET again (200, answered from the cache: the other six looked and missed).
url="http://127.0.0.1:$DAV"
received=0
for i in 1 2 3 4 5; do
  body="file number $i"
  received=$((received + ${#body}))
  curl -s -o /dev/null -X PUT --data-binary "$body" "$url/f$i.txt"
done
for i in 1 2 3; do curl -s -o /dev/null "$url/f$i.txt"; done
for i in 1 2; do curl -s -o /dev/null "$url/missing$i"; done
curl -s -o /dev/null -X PROPFIND -H 'Depth: 1' "$url/"
curl -s -o /dev/null "$url/f1.txt"

# Wait until nothing is in flight, then for a scrape that began after that.
for _ in $(seq 100); do
  curl -s "http://127.0.0.1:$ADMIN/metrics" | grep -qx 'davit_connections_open 0' && break
  sleep 0.1
done
after=$(date +%s.%N)

query() { # PROMQL — prints the single value, or "none"
  curl -s --get "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode "query=$1" |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
res = r.get("data", {}).get("result", [])
print(res[0]["value"][1] if r.get("status") == "success" and len(res) == 1 else "none")'
}
scraped=no
for _ in $(seq 100); do
  t=$(query 'timestamp(up{job="davit"})')
  if [[ $t != none ]] && python3 -c "import sys; sys.exit(0 if float('$t') > float('$after') else 1)"; then
    scraped=yes
    break
  fi
  sleep 0.2
done
[[ $scraped == yes ]] && pass "prometheus scraped davit after the traffic" ||
  { fail "no scrape after the traffic"; tail "$WORK/prometheus.log" >&2; finish; }

expect() { # PROMQL VALUE
  local got
  got=$(query "$1")
  if [[ $got == "$2" ]]; then pass "$1 = $2"; else fail "$1 = $got, expected $2"; fi
}
expect 'up{job="davit"}' 1
expect 'davit_http_requests_total{method="PUT",status_class="2xx"}' 5
expect 'davit_http_requests_total{method="GET",status_class="2xx"}' 4
expect 'davit_http_requests_total{method="GET",status_class="4xx"}' 2
expect 'davit_http_requests_total{method="PROPFIND",status_class="2xx"}' 1
expect 'sum(davit_http_requests_total{status_class="5xx"})' 0
expect 'davit_http_received_bytes_total' "$received"
expect 'davit_http_request_duration_seconds_count{method="GET"}' 6
expect 'davit_http_request_duration_seconds_bucket{method="PUT",le="+Inf"}' 5
expect 'davit_connections_accepted_total' 12
expect "count(davit_build_info{version=\"$("$BIN" --version | cut -d' ' -f2)\"})" 1
expect 'davit_locks_active' 0
expect 'davit_cache_hits_total' 1
expect 'davit_cache_misses_total' 6
expect 'davit_cache_overflows_total' 0
expect 'davit_cache_bytes > bool 0' 1
start=$(query 'process_start_time_seconds{job="davit"}')
if python3 -c "import sys; sys.exit(0 if abs(float('$start') - float('$launched')) < 2 else 1)" 2>/dev/null; then
  pass "process_start_time_seconds = $start, when davit was started ($launched)"
else
  fail "process_start_time_seconds = $start, davit was started at $launched"
fi

# Every query the README offers for dashboards and alerts evaluates and returns series.
series() { # PROMQL — prints how many series the query returned, or "error"
  curl -s --get "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode "query=$1" |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
print(len(r["data"]["result"]) if r.get("status") == "success" else "error: " + r.get("error", "?"))'
}
n_queries=0
while IFS= read -r q; do
  [[ -z $q || $q == \#* ]] && continue
  n_queries=$((n_queries + 1))
  got=$(series "$q")
  if [[ $got =~ ^[1-9][0-9]*$ ]]; then pass "README query: $q ($got series)"; else fail "README query: $q: $got"; fi
done < <(awk '/^```promql$/ {on = 1; next} /^```$/ {on = 0} on' "$ROOT/README.md")
[[ $n_queries -gt 0 ]] || fail "no promql block found in README.md"
finish
