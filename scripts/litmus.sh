#!/usr/bin/env bash
# scripts/litmus.sh [SUITES...]
#
# Runs the litmus WebDAV compliance suites against davit.
#
#   SUITES        litmus suites to run (default: basic copymove props locks http).
#                 Env LITMUS_SUITES is used when no args are given.
#
# Without LITMUS_URL the script builds davit (`cargo build --release -p davit`, skipped when
# DAVIT_BIN points at a binary), starts `davit serve <fresh temp dir> --listen 127.0.0.1:<free
# port>` in the background, waits until it answers OPTIONS, runs each suite in its own
# directory of a temp work dir, and always stops the server again.
#
# Environment:
#   LITMUS_URL=http://host:port/   test an already running server instead of starting davit
#   DAVIT_BIN=/path/to/davit        use this binary, do not build
#   LITMUS_TIMEOUT=300              seconds per suite before it is killed
#   LITMUS_KEEP=1                   keep the temp work dir (suite output, neon debug.log, davit
#                                   log) even when everything passed; it is always kept on failure
#
# Output: one line per suite, e.g.
#   litmus basic: 16 passed, 0 failed, 0 warnings, 0 skipped
# then a total line `litmus total: P passed, F failed, W warnings, S skipped` (a suite that
# crashed, timed out or printed no summary counts as one extra failure). On any failure or
# warning the FAIL/WARNING lines and the tail of the davit log are printed.
# Exit status: 0 when every suite ran to completion with no failure and no warning, 1 otherwise,
# 2 on usage/setup errors (litmus missing, build failure, server did not start).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TESTROOT=/usr/libexec/litmus
HTDOCS=/usr/share/litmus/htdocs
TIMEOUT="${LITMUS_TIMEOUT:-300}"

log() { echo "litmus.sh: $*" >&2; }
die() { log "error: $*"; exit 2; }

if [[ $# -gt 0 ]]; then
  SUITES=("$@")
else
  read -r -a SUITES <<<"${LITMUS_SUITES:-basic copymove props locks http}"
fi
[[ ${#SUITES[@]} -gt 0 ]] || die "no suites given"

# ---------- prerequisites: litmus, curl (Debian packages) ----------
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}
apt_missing=()
[[ -x $TESTROOT/basic ]] || apt_missing+=(litmus)
command -v curl >/dev/null || apt_missing+=(curl)
if ((${#apt_missing[@]})); then
  command -v apt-get >/dev/null || die "missing ${apt_missing[*]} and no apt-get to install them"
  log "installing ${apt_missing[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${apt_missing[@]}" >&2
fi
[[ -x $TESTROOT/basic ]] || die "litmus not found in $TESTROOT"
for s in "${SUITES[@]}"; do
  [[ $s =~ ^[a-z]+$ && -x $TESTROOT/$s ]] ||
    die "unknown litmus suite '$s' (available: $(cd "$TESTROOT" && echo *))"
done

# ---------- temp dirs, cleanup ----------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/davit-litmus.XXXXXX")"
DOCROOT=""
SERVER_PID=""
KEEP_WORK="${LITMUS_KEEP:-0}"

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "davit (pid $SERVER_PID) ignored SIGTERM for 5 s; sending SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
cleanup() {
  local rc=$?
  stop_server
  [[ -z $DOCROOT ]] || rm -rf -- "$DOCROOT"
  if [[ $rc == 0 && $KEEP_WORK != 1 ]]; then
    rm -rf -- "$WORK"
  else
    log "work dir kept: $WORK (per-suite output, neon debug.log, davit.log)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DAVIT_LOG="$WORK/davit.log"

options_code() { # URL -> HTTP status of OPTIONS, 000 when nothing answers
  curl -s -o /dev/null -w '%{http_code}' -X OPTIONS --max-time 5 "$1" 2>/dev/null || true
}

port_free() { # PORT -> success when nothing accepts connections on it
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

davit_log_tail() {
  [[ -f $DAVIT_LOG ]] || return 0
  echo "---- last 40 lines of davit log ($DAVIT_LOG) ----"
  tail -n 40 "$DAVIT_LOG"
  echo "----"
}

# ---------- server ----------
if [[ -n ${LITMUS_URL:-} ]]; then
  URL="$LITMUS_URL"
  [[ $URL == */ ]] || URL="$URL/"
  code=$(options_code "$URL")
  [[ $code != 000 ]] || die "nothing answers OPTIONS at $URL"
  log "testing already running server at $URL (OPTIONS -> $code)"
else
  if [[ -n ${DAVIT_BIN:-} ]]; then
    BIN="$DAVIT_BIN"
  else
    log "building davit (cargo build --release -p davit)"
    cargo build --release -p davit >&2 || die "cargo build --release -p davit failed"
    TARGET_DIR="$(cargo metadata --no-deps --format-version 1 |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    BIN="${TARGET_DIR:-$ROOT/target}/release/davit"
  fi
  [[ -x $BIN ]] || die "davit binary not found or not executable: $BIN"

  DOCROOT="$(mktemp -d "${TMPDIR:-/tmp}/davit-litmus-root.XXXXXX")"
  : >"$DAVIT_LOG"
  URL=""
  # A free port can be taken between the check and davit's bind: retry a few times.
  for attempt in 1 2 3 4 5; do
    PORT=""
    for _ in $(seq 1 50); do
      p=$((20000 + RANDOM % 30000))
      if port_free "$p"; then PORT=$p; break; fi
    done
    [[ -n $PORT ]] || die "no free TCP port found"
    log_start=$(($(wc -l <"$DAVIT_LOG") + 1))
    echo "=== attempt $attempt: $BIN serve $DOCROOT --listen 127.0.0.1:$PORT" >>"$DAVIT_LOG"
    "$BIN" serve "$DOCROOT" --listen "127.0.0.1:$PORT" </dev/null >>"$DAVIT_LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 150); do # ~30 s
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      if [[ $(options_code "http://127.0.0.1:$PORT/") != 000 ]]; then
        URL="http://127.0.0.1:$PORT/"
        break
      fi
      sleep 0.2
    done
    [[ -z $URL ]] || break
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      stop_server
      davit_log_tail >&2
      die "davit did not answer OPTIONS on 127.0.0.1:$PORT within 30 s"
    fi
    wait "$SERVER_PID" 2>/dev/null && st=0 || st=$?
    SERVER_PID=""
    # only a lost race for the port is worth another attempt
    if ! tail -n +"$log_start" "$DAVIT_LOG" | grep -qi 'in use'; then
      davit_log_tail >&2
      die "davit exited during startup (status $st)"
    fi
    log "port $PORT was taken (davit exit status $st); retrying on another port"
  done
  if [[ -z $URL ]]; then
    davit_log_tail >&2
    die "davit did not start"
  fi
  log "davit pid $SERVER_PID serving $DOCROOT at $URL (log: $DAVIT_LOG)"
fi

# ---------- suites ----------
# Print the FAIL / WARNING / SKIPPED lines of a (\r-cleaned) suite output; a FAIL reason
# may span several lines (neon error strings), so keep printing until its parens balance.
problem_lines() {
  awk '
    function bal(s,  o, c) { o = gsub(/\(/, "(", s); c = gsub(/\)/, ")", s); return o - c }
    open > 0 { print "    " $0; open += bal($0); next }
    /FAIL|WARNING:|SKIPPED|OOPS/ { print "    " $0; if ($0 ~ /FAIL \(/) open = bal($0) }
  ' "$1"
}

count() { # REGEX FILE -> number of matching lines
  grep -cE -- "$1" "$2" || true
}

TOTAL_P=0 TOTAL_F=0 TOTAL_W=0 TOTAL_S=0
BAD=0
SERVER_DIED=""
for s in "${SUITES[@]}"; do
  dir="$WORK/$s"
  mkdir -p "$dir"
  out="$dir/output.txt"
  if [[ -n $SERVER_DIED ]]; then
    echo "litmus $s: not run ($SERVER_DIED)"
    TOTAL_F=$((TOTAL_F + 1)); BAD=1
    continue
  fi
  rc=0
  (cd "$dir" && timeout -k 10 "$TIMEOUT" "$TESTROOT/$s" --htdocs "$HTDOCS" "$URL" </dev/null \
    >raw.txt 2>&1) || rc=$?
  # litmus redraws each test line with \r: keep what a terminal would show
  sed 's/.*\r//' "$dir/raw.txt" >"$out"

  summary="$(grep -E "^<- summary for \`$s': of [0-9]+ tests run: [0-9]+ passed, [0-9]+ failed" "$out" |
    tail -n 1 || true)"
  note=""
  if [[ -n $summary ]]; then
    passed="$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$summary")"
    failed="$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$summary")"
  else
    # no summary: count what the suite printed before it died
    passed="$(count '^ *[0-9]+\. .* pass( \(with [0-9]+ warnings?\))?$|^ +\.+ pass' "$out")"
    failed="$(count 'FAIL' "$out")"
  fi
  warnings="$(sed -nE 's/^-> ([0-9]+) warnings? (was|were) issued.*/\1/p' "$out" | tail -n 1)"
  [[ -n $warnings ]] || warnings="$(count 'WARNING:' "$out")"
  skipped="$(sed -nE 's/^-> ([0-9]+) tests? (was|were) skipped.*/\1/p' "$out" | tail -n 1)"
  [[ -n $skipped ]] || skipped="$(count 'SKIPPED' "$out")"

  if [[ $rc == 124 || $rc == 137 ]]; then
    note="TIMED OUT after ${TIMEOUT}s"; failed=$((failed + 1))
  elif [[ -z $summary ]]; then
    note="suite aborted without summary, exit status $rc"; failed=$((failed + 1))
  elif [[ $rc != 0 && $failed == 0 ]]; then
    note="suite exited with status $rc"; failed=$((failed + 1))
  fi
  if [[ -n $SERVER_PID ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" 2>/dev/null && st=0 || st=$?
    SERVER_PID=""
    SERVER_DIED="davit exited with status $st during suite $s"
    note="${note:+$note; }$SERVER_DIED"
    [[ $failed -gt 0 ]] || failed=1
  fi

  echo "litmus $s: $passed passed, $failed failed, $warnings warnings, $skipped skipped${note:+ ($note)}"
  TOTAL_P=$((TOTAL_P + passed)); TOTAL_F=$((TOTAL_F + failed))
  TOTAL_W=$((TOTAL_W + warnings)); TOTAL_S=$((TOTAL_S + skipped))

  if [[ $failed != 0 || $warnings != 0 || -n $note ]]; then
    BAD=1
    problem_lines "$out"
    if [[ -z $summary ]]; then
      echo "    ---- last lines of litmus $s output ----"
      tail -n 5 "$out" | sed 's/^/    /'
    fi
    echo "    (full output: $out; neon trace: $dir/debug.log)"
  fi
done

echo "litmus total: $TOTAL_P passed, $TOTAL_F failed, $TOTAL_W warnings, $TOTAL_S skipped"
if [[ $BAD != 0 ]]; then
  [[ -n ${LITMUS_URL:-} ]] || davit_log_tail
  echo "litmus: FAILED (failures or warnings above)"
  exit 1
fi
echo "litmus: all suites passed"
