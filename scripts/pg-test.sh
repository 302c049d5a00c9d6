#!/usr/bin/env bash
# scripts/pg-test.sh — the tests that need a real PostgreSQL (the distributed backend's stores).
#
# Starts a private PostgreSQL cluster on loopback (scripts/pg.sh: installs Debian's postgresql
# when missing), runs the ignored-by-default tests of davit-distributed against it (each test
# makes its own database), and stops the cluster. Needs root (initdb runs as postgres).
#
# Last line: "N passed, M failed". Exit status 0 only when all passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIR="$(mktemp -d -u "${TMPDIR:-/tmp}/davit-pg.XXXXXX")"
trap 'bash "$ROOT/scripts/pg.sh" stop "$DIR"' EXIT

if ! url="$(bash scripts/pg.sh start "$DIR" | tail -n 1)" || [[ -z $url ]]; then
  echo "pg-test.sh: PostgreSQL did not start" >&2
  echo
  echo "0 passed, 1 failed"
  exit 1
fi
echo "PostgreSQL: $url"
log="$(mktemp)"
rc=0
DAVIT_TEST_PG="$url" cargo test -p davit-distributed -- --ignored 2>&1 | tee "$log" || rc=$?
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
