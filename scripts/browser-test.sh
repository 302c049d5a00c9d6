#!/usr/bin/env bash
# scripts/browser-test.sh — davit's web interface in a real browser: Debian's Chromium, headless,
# driven by playwright-core from npm (tests/browser/ui.test.mjs) against a fresh `davit serve`
# on a temporary directory (and a second one with [auth] over HTTPS: a writer and a read-only
# user).
# Uploads of files and folders, new folder, rename, copy, move, delete, download of files and of
# folders as zip (checked with Python's zipfile), editing text, previews, lock display and
# release, sorting, filtering, keyboard, dark and narrow layouts, a file named as markup shown
# as text, a stored HTML page that runs no script, controls hidden from a read-only user; every
# change checked against the server with PROPFIND and GET; the time to render a 10,000-entry
# directory printed as a benchmark figure (not an assertion).
#
# As root on Debian (installs chromium, nodejs/npm and curl when missing, and playwright-core
# into tests/browser/node_modules; never downloads a browser):
#     bash scripts/browser-test.sh [SCREENSHOT_DIR]
# SCREENSHOT_DIR defaults to target/browser-screenshots.
# DAVIT_BIN=path/to/davit uses that binary instead of building target/release/davit.
# Last line: "N passed, M failed". Exit 0 only when nothing failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHOTS="${1:-$ROOT/target/browser-screenshots}"
[[ $SHOTS == /* ]] || SHOTS="$PWD/$SHOTS"

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "browser-test: need root (or sudo) for: $*" >&2; return 1
  fi
}

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  echo "installing playwright-core (npm, the version in tests/browser/package-lock.json)"
  # playwright-core has no install script and downloads no browser.
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

if [[ -z ${DAVIT_BIN:-} ]]; then
  cargo build --release -q -p davit
  DAVIT_BIN="$ROOT/target/release/davit"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/davit-browser.XXXXXX")"
PID=""
AUTH_PID=""
cleanup() {
  [[ -n $AUTH_PID ]] && kill "$AUTH_PID" 2>/dev/null && wait "$AUTH_PID" 2>/dev/null
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf -- "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
}
PORT=$(free_port)
mkdir -p "$WORK/share"
"$DAVIT_BIN" serve "$WORK/share" --listen "127.0.0.1:$PORT" 2>"$WORK/server.log" &
PID=$!
# A second server with [auth] over HTTPS (a self-signed certificate for 127.0.0.1): "writer"
# may change everything, "reader" only read.
AUTH_PORT=$(free_port)
mkdir -p "$WORK/auth-share"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat >"$WORK/auth.toml" <<TOML
[auth]
realm = "davit browser test"
anonymous = "none"
max_failures_per_minute = 1000

[[auth.user]]
name = "writer"
password_hash = "$(printf writer-pw | "$DAVIT_BIN" hash-password)"

[[auth.user]]
name = "reader"
password_hash = "$(printf reader-pw | "$DAVIT_BIN" hash-password)"

[[auth.rule]]
path = "/"
users = ["reader"]
access = "read"
TOML
"$DAVIT_BIN" serve "$WORK/auth-share" --config "$WORK/auth.toml" --listen "127.0.0.1:$AUTH_PORT" \
  --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem" 2>"$WORK/auth-server.log" &
AUTH_PID=$!
wait_port "$PORT"
wait_port "$AUTH_PORT"

rc=0
DAVIT_URL="http://127.0.0.1:$PORT" DAVIT_ROOT="$WORK/share" SCREENSHOT_DIR="$SHOTS" \
  DAVIT_AUTH_URL="https://127.0.0.1:$AUTH_PORT" DAVIT_BIN="$DAVIT_BIN" \
  NODE_EXTRA_CA_CERTS="$WORK/cert.pem" \
  node tests/browser/ui.test.mjs 2>&1 | tee "$WORK/test.log" || rc=$?
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/test.log" | tail -n 1 || true)"
if [[ $rc != 0 ]]; then
  echo "--- server log (last 20 lines)"
  tail -n 20 "$WORK/server.log" || true
  # The summary stays the last line; a crash before it counts as one failure.
  echo "${summary:-0 passed, 1 failed}"
  exit 1
fi
exit 0
