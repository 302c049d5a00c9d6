#!/usr/bin/env bash
# bench/instructions.sh — user-space instructions per request of davit, counted by callgrind.
#
# usage: bench/instructions.sh [--no-build] [BIN]
#
# Request rates on a shared machine drift by 30 % between runs; an instruction count does not.
# This runs davit (one worker) under valgrind's callgrind, sends each workload's request over one
# keep-alive connection (a warm-up batch, then a counted batch) and prints the instructions the
# server executed per request, kernel excluded. It is the figure to compare before and after a
# change to a hot path; docs/benchmarks.md quotes it with the commit measured.
#
# Workloads: GET of a 4 KiB file, PROPFIND Depth 0 allprop of it, PROPFIND Depth 1 of a
# 1,000-file collection (allprop, and three properties). The last column is what the metrics
# counters and the X-Request-Id cost per request (their functions, inclusive).
#
# valgrind does not know the openat2 system call: davit falls back to resolving paths with
# canonicalize there, which it does not do on Linux otherwise. That part is reported and
# subtracted ("without fallback"), so the figure matches what the server runs natively.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=1
BIN=""
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) BIN="$arg" ;;
  esac
done
if [[ -z $BIN ]]; then
  BIN="$REPO/target/release/davit"
  if ((BUILD)); then (cd "$REPO" && cargo build --release -p davit); fi
fi
[[ -x $BIN ]] || { echo "no davit binary at $BIN" >&2; exit 1; }
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
  else
    echo "needs valgrind (apt-get install valgrind)" >&2; exit 1
  fi
fi

RUN="$(mktemp -d "${TMPDIR:-/var/tmp}/davit-instr.XXXXXX")"
PID=""
cleanup() {
  if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf -- "$RUN"
}
trap cleanup EXIT
mkdir -p "$RUN/root/dir1000"
head -c 4096 /dev/urandom >"$RUN/root/file4k.bin"
for i in $(seq 1 1000); do head -c 100 /dev/zero >"$RUN/root/dir1000/f$i.txt"; done
printf '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>' >"$RUN/allprop.xml"
printf '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/><D:getlastmodified/><D:resourcetype/></D:prop></D:propfind>' >"$RUN/prop3.xml"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

RUST_LOG="warn" valgrind --tool=callgrind --callgrind-out-file="$RUN/cg.%p" --dump-instr=no \
  "$BIN" serve "$RUN/root" --listen "127.0.0.1:$PORT" --workers 1 >"$RUN/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 150); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
  sleep 0.2
done

# send N METHOD PATH [BODYFILE] [HEADER...]: N requests on one connection; fails unless 2xx.
send() {
  python3 - "$PORT" "$@" <<'PY'
import http.client, sys
port, n, method, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = open(sys.argv[5], "rb").read() if len(sys.argv) > 5 and sys.argv[5] else None
headers = dict(h.split(": ", 1) for h in sys.argv[6:])
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status // 100 != 2:
        sys.exit(f"{method} {path}: HTTP {r.status}")
PY
}

# measure LABEL N METHOD PATH [BODYFILE] [HEADER...]
measure() {
  local label="$1" n="$2" dump total fallback
  shift 2
  send "$n" "$@"                                 # warm-up (caches, allocator, lazy statics)
  callgrind_control -z "$PID" >/dev/null 2>&1
  send "$n" "$@"
  callgrind_control -d "$PID" >/dev/null 2>&1
  sleep 0.5
  dump=$(ls -t "$RUN"/cg.*.* 2>/dev/null | head -n 1)
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$RUN/inclusive" 2>/dev/null || true
  fallback=$(awk '/existing_via_canonical \[/ && !seen { gsub(",", "", $1); print $1; seen = 1 }' "$RUN/inclusive")
  # Counting for the metrics and the request id: their functions are kept out of line for this.
  metrics=$(awk '/(metrics::Metrics::request|metrics::MethodIndex::of|server::request_id) \[/ {
      gsub(",", "", $1); sum += $1 } END { print sum + 0 }' "$RUN/inclusive")
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$n" "$((total / n))" "$(((total - ${fallback:-0}) / n))" "$((metrics / n))"
  rm -f "$dump"
}

echo "davit $("$BIN" --version | awk '{ print $2 }'), commit $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| workload | requests | instructions per request | without fallback | of which metrics and request id |"
echo "|---|---:|---:|---:|---:|"
measure "GET 4 KiB" 2000 GET /file4k.bin
measure "PROPFIND Depth 0, allprop" 2000 PROPFIND /file4k.bin "$RUN/allprop.xml" "Depth: 0" "Content-Type: application/xml"
measure "PROPFIND Depth 1, 1,000 members, allprop" 20 PROPFIND /dir1000/ "$RUN/allprop.xml" "Depth: 1" "Content-Type: application/xml"
measure "PROPFIND Depth 1, 1,000 members, 3 props" 20 PROPFIND /dir1000/ "$RUN/prop3.xml" "Depth: 1" "Content-Type: application/xml"
