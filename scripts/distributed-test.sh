#!/usr/bin/env bash
# scripts/distributed-test.sh — the tests of the distributed backend against real services.
#
# Starts a private PostgreSQL cluster (scripts/pg.sh: Debian's postgresql, installed when
# missing) and a single-node Garage S3 server (scripts/garage.sh: `cargo install`ed when
# missing, reused when present), both on loopback, runs the ignored-by-default tests of
# davit-distributed against them (each test makes its own database and keys), and stops both.
# Needs root (initdb runs as postgres).
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
DAVIT_TEST_PG="$url" DAVIT_TEST_S3="$s3" cargo test -p davit-distributed -- --ignored 2>&1 |
  tee "$log" || rc=$?
read -r passed failed < <(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log" | awk '
  /^test result: / {
    for (i = 1; i < NF; i++) {
      if ($(i + 1) ~ /^passed/) p += $i
      if ($(i + 1) ~ /^failed/) f += $i
    }
  }
  END { print p + 0, f + 0 }')
rm -f "$log"
[[ $rc == 0 || $failed -gt 0 ]] || failed=1
echo
echo "$passed passed, $failed failed"
[[ $rc == 0 ]]
