#!/usr/bin/env bash
# Batch upload vs single PUTs: 1,000 small files uploaded
#   (a) as 1,000 PUTs over ONE keep-alive connection (one curl invocation, config file), and
#   (b) as ONE batch POST (XML, inline text content),
# against a release build of davit on a temporary root and a free loopback port.
# Reports the best wall time of RUNS runs of each, and the ratio, as a markdown table.
#
# Usage: bench/batch_vs_put.sh            (from anywhere; builds the workspace it lives in)
# Env:   FILES (default 1000), SIZE (bytes per file, default 1024), RUNS (default 3)
set -euo pipefail

FILES=${FILES:-1000}
SIZE=${SIZE:-1024}
RUNS=${RUNS:-3}
REPO=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v curl >/dev/null 2>&1; then
    echo "curl not found; installing it" >&2
    apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi

echo "building davit (release)..." >&2
(cd "$REPO" && cargo build --release -q -p davit)
DAVIT="$REPO/target/release/davit"

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/root" "$WORK/src"

# Port 0: the kernel picks a free loopback port; davit logs the address it got.
"$DAVIT" serve "$WORK/root" --listen 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE=
for _ in $(seq 1 200); do
    BASE=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/server.log" | head -n1 || true)
    if [ -n "$BASE" ] && curl -s -o /dev/null -X OPTIONS "$BASE/"; then break; fi
    BASE=
    sleep 0.05
done
[ -n "$BASE" ] || { echo "davit did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

# The files: SIZE bytes of text each, different per file.
for i in $(seq -f '%04g' 1 "$FILES"); do
    line="file $i "
    content=$(printf "%0.s$line" $(seq 1 $(( SIZE / ${#line} + 1 ))))
    printf '%s' "${content:0:SIZE}" >"$WORK/src/f$i.txt"
done

now() { date +%s.%N; }

# (a) FILES PUTs in one curl invocation: curl pairs each upload-file with the next url and
# reuses the connection; %{num_connects} per transfer proves it (the sum must be 1).
put_run() {
    local dir=$1 cfg="$WORK/put-$1.cfg"
    : >"$cfg"
    for f in "$WORK"/src/*.txt; do
        printf 'upload-file = "%s"\nurl = "%s/%s/%s"\noutput = "/dev/null"\n' \
            "$f" "$BASE" "$dir" "$(basename "$f")" >>"$cfg"
    done
    curl -s -o /dev/null -w '%{http_code}' -X MKCOL "$BASE/$dir/" | grep -qx 201
    local t0 t1
    t0=$(now)
    curl -s -K "$cfg" -w '%{http_code} %{num_connects} %{time_total}\n' >"$WORK/put-$dir.out"
    t1=$(now)
    local ok conns
    ok=$(awk '$1 == 201' "$WORK/put-$dir.out" | wc -l)
    conns=$(awk '{ s += $2 } END { print s }' "$WORK/put-$dir.out")
    [ "$ok" -eq "$FILES" ] || { echo "PUT run $dir: only $ok of $FILES answered 201" >&2; exit 1; }
    [ "$(ls "$WORK/root/$dir" | wc -l)" -eq "$FILES" ] || { echo "PUT run $dir: files missing" >&2; exit 1; }
    echo "$conns" >"$WORK/put-$dir.conns"
    awk '{ s += $3 } END { printf "%.6f\n", s }' "$WORK/put-$dir.out" >"$WORK/put-$dir.transfer"
    echo "$t1 - $t0" | bc -l
}

# (b) the same files in one batch POST (relative hrefs, inline text content).
batch_doc() {
    local doc="$WORK/batch.xml"
    {
        printf '<?xml version="1.0" encoding="utf-8"?>\n<b:batch xmlns:b="urn:davit:batch">\n'
        for f in "$WORK"/src/*.txt; do
            printf '<b:put href="%s" content-type="text/plain">' "$(basename "$f")"
            cat "$f"   # letters, digits and spaces only: no XML escaping needed
            printf '</b:put>\n'
        done
        printf '</b:batch>\n'
    } >"$doc"
}

batch_run() {
    local dir=$1
    curl -s -o /dev/null -w '%{http_code}' -X MKCOL "$BASE/$dir/" | grep -qx 201
    local t0 t1
    t0=$(now)
    curl -s -X POST -H 'Content-Type: application/xml' --data-binary @"$WORK/batch.xml" \
        -w '%{num_connects} %{time_total}' -o "$WORK/batch-$dir.out" "$BASE/$dir/" >"$WORK/batch-$dir.w"
    cut -d' ' -f1 "$WORK/batch-$dir.w" >"$WORK/batch-$dir.conns"
    cut -d' ' -f2 "$WORK/batch-$dir.w" >"$WORK/batch-$dir.transfer"
    t1=$(now)
    local ok
    ok=$(grep -o 'HTTP/1.1 201 Created' "$WORK/batch-$dir.out" | wc -l)
    [ "$ok" -eq "$FILES" ] || { echo "batch run $dir: only $ok of $FILES answered 201" >&2; exit 1; }
    [ "$(ls "$WORK/root/$dir" | wc -l)" -eq "$FILES" ] || { echo "batch run $dir: files missing" >&2; exit 1; }
    echo "$t1 - $t0" | bc -l
}

command -v bc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
batch_doc
BATCH_BYTES=$(stat -c %s "$WORK/batch.xml")

best_put=
best_batch=
put_times=()
batch_times=()
for r in $(seq 1 "$RUNS"); do
    t=$(put_run "put$r"); put_times+=("$(printf '%.3f' "$t")")
    if [ -z "$best_put" ] || [ "$(echo "$t < $best_put" | bc -l)" -eq 1 ]; then best_put=$t; fi
    t=$(batch_run "batch$r"); batch_times+=("$(printf '%.3f' "$t")")
    if [ -z "$best_batch" ] || [ "$(echo "$t < $best_batch" | bc -l)" -eq 1 ]; then best_batch=$t; fi
done
put_conns=$(sort -u "$WORK"/put-put*.conns | paste -sd/)
batch_conns=$(sort -u "$WORK"/batch-batch*.conns | paste -sd/)
ratio=$(echo "$best_put / $best_batch" | bc -l)
# The same without starting curl (about 8 ms here, in each column): the time curl itself
# reports for its transfers, summed over the 1,000 PUTs.
best_of() { sort -g "$@" | head -n1; }
put_transfer=$(best_of "$WORK"/put-put*.transfer)
batch_transfer=$(best_of "$WORK"/batch-batch*.transfer)
transfer_ratio=$(echo "$put_transfer / $batch_transfer" | bc -l)

echo
echo "$FILES files of $SIZE bytes, best of $RUNS runs (davit release, $(nproc) cores, $(uname -r))"
echo
echo "| method | requests | TCP connections | runs, wall (s) | best, wall (s) | best, curl's transfer time (s) | files/s (wall) |"
echo "|---|---:|---:|---|---:|---:|---:|"
printf '| %s PUTs, one keep-alive connection (curl -K) | %d | %s | %s | %.3f | %.3f | %.0f |\n' \
    "$FILES" "$FILES" "$put_conns" "${put_times[*]}" "$best_put" "$put_transfer" "$(echo "$FILES / $best_put" | bc -l)"
printf '| one batch POST (XML, %d bytes) | 1 | %s | %s | %.3f | %.3f | %.0f |\n' \
    "$BATCH_BYTES" "$batch_conns" "${batch_times[*]}" "$best_batch" "$batch_transfer" "$(echo "$FILES / $best_batch" | bc -l)"
echo
printf 'Batch is %.1fx faster than single PUTs (best of %d, wall time of the curl command);\n' "$ratio" "$RUNS"
printf '%.1fx in the time curl reports for its transfers (without starting curl).\n' "$transfer_ratio"
