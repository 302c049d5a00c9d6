#!/usr/bin/env bash
# scripts/peers-client-test.sh — the davit client against real WebDAV servers: Apache mod_dav
# (mod_dav_fs), nginx (dav + dav-ext), both configured by scripts/peer-configs.sh in a temp dir,
# `rclone serve webdav`, dufs and WsgiDAV, on loopback ephemeral ports.
#
# As root on Debian (installs apache2, nginx, libnginx-mod-http-dav-ext, rclone when missing, and
# dufs with `cargo install --locked dufs@0.47.0`, about 3 minutes on 2 cores, kept afterwards, and
# WsgiDAV with `pip install wsgidav==4.4.0 cheroot`):
#     bash scripts/peers-client-test.sh
# DAVIT_BIN=path/to/davit uses that binary instead of building target/release/davit.
#
# For each server it checks: put (file and tree), ls (-l, -R, --json), stat, get (file and
# tree), cp, mv, rm -r, mkdir -p, props set/get/rm (PROPPATCH: Apache only; nginx has none and
# must answer with a clean error), lock/unlock.
# Last line: "N passed, M failed". Exit 0 only when nothing failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR
source "$ROOT/scripts/peer-configs.sh"

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "peers-client-test: need root (or sudo) for: $*" >&2; return 1
  fi
}

# ------------------------------------------------------------------ install what is missing
missing=()
[[ -x /usr/sbin/apache2 && -f /usr/lib/apache2/modules/mod_dav_fs.so ]] || missing+=(apache2)
[[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
[[ -f /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ]] || missing+=(libnginx-mod-http-dav-ext)
command -v rclone >/dev/null || missing+=(rclone)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v dufs >/dev/null; then
  [[ -x $HOME/.cargo/bin/dufs ]] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v dufs >/dev/null; then
  echo "installing dufs (cargo install --locked dufs@0.47.0)"
  cargo install --locked -q dufs@0.47.0
  export PATH="$HOME/.cargo/bin:$PATH"
fi

if ! command -v wsgidav >/dev/null; then
  echo "installing WsgiDAV (pip install wsgidav==4.4.0 cheroot)"
  python3 -m pip install -q --disable-pip-version-check wsgidav==4.4.0 cheroot 2>&1 | grep -v "^WARNING: Running pip as" || true
  hash -r
fi

# ------------------------------------------------------------------ the client binary
if [[ -z ${DAVIT_BIN:-} ]]; then
  cargo build --release -q -p davit
  DAVIT_BIN="$ROOT/target/release/davit"
fi
[[ -x $DAVIT_BIN ]] || { echo "peers-client-test: no davit binary at $DAVIT_BIN" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/davit-peers.XXXXXX")"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf -- "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 40000))
}

wait_port() { # PORT
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------------------ apache
start_apache() {
  local A="$WORK/apache" port; port=$(free_port)
  mkdir -p "$A/run" "$A/lock" "$A/logs" "$A/docs"
  # Apache will not run its children as root: the docroot and lock DB belong to www-data.
  chown -R www-data:www-data "$A/docs" "$A/lock"
  write_apache_conf "$A" "$port" "$A/docs"
  /usr/sbin/apache2 -f "$A/httpd.conf" -DFOREGROUND >"$A/logs/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { echo "apache did not start:" >&2; cat "$A/logs/"* >&2; return 1; }
  URL="http://127.0.0.1:$port"
}

# ------------------------------------------------------------------ nginx
start_nginx() {
  local N="$WORK/nginx" port; port=$(free_port)
  mkdir -p "$N/run" "$N/logs" "$N/tmp" "$N/docs"
  write_nginx_conf "$N" "$port" "$N/docs"
  /usr/sbin/nginx -p "$N/" -e "$N/logs/error.log" -c "$N/nginx.conf" -g "daemon off;" \
    >"$N/logs/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { echo "nginx did not start:" >&2; cat "$N/logs/"* >&2; return 1; }
  URL="http://127.0.0.1:$port"
}

# ------------------------------------------------------------------ rclone
start_rclone() {
  local R="$WORK/rclone" port; port=$(free_port)
  mkdir -p "$R/docs"
  RCLONE_CONFIG=/dev/null rclone serve webdav "$R/docs" --addr "127.0.0.1:$port" \
    >"$R/log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { echo "rclone did not start:" >&2; cat "$R/log" >&2; return 1; }
  URL="http://127.0.0.1:$port"
}

# ------------------------------------------------------------------ dufs
start_dufs() {
  local F="$WORK/dufs" port; port=$(free_port)
  mkdir -p "$F/docs"
  dufs -A -b 127.0.0.1 -p "$port" "$F/docs" >"$F/log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { echo "dufs did not start:" >&2; cat "$F/log" >&2; return 1; }
  URL="http://127.0.0.1:$port"
}

# ------------------------------------------------------------------ WsgiDAV
start_wsgidav() {
  local W="$WORK/wsgidav" port; port=$(free_port)
  mkdir -p "$W/docs"
  wsgidav --host 127.0.0.1 --port "$port" --root "$W/docs" --auth anonymous --no-config \
    >"$W/log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { echo "wsgidav did not start:" >&2; cat "$W/log" >&2; return 1; }
  URL="http://127.0.0.1:$port"
}

# ------------------------------------------------------------------ checks
PASSED=0
FAILED=0
SUMMARY=()
check() { # NAME COMMAND... — passes when the command exits 0
  local name="$1"; shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then
    PASSED=$((PASSED + 1)); echo "  ok    $name"
  else
    FAILED=$((FAILED + 1)); echo "  FAIL  $name"; sed 's/^/        /' "$WORK/out" "$WORK/err"
    SUMMARY+=("$SERVER: $name")
  fi
}

d() { "$DAVIT_BIN" "$@"; }

run_suite() { # SERVER URL
  SERVER="$1"; local U="$2" L="$WORK/local-$1"
  echo "== $SERVER ($U)"
  mkdir -p "$L/tree/sub dir"
  printf 'hello davit\n' >"$L/hello.txt"
  printf 'a\n' >"$L/tree/a.txt"
  printf 'b & c\n' >"$L/tree/sub dir/b c.txt"
  head -c 300000 /dev/urandom >"$L/tree/big.bin"

  check "put file" d put "$L/hello.txt" "$U/"
  check "put tree" d put "$L/tree" "$U/tree"
  check "mkdir -p" d mkdir -p "$U/x/y/z"
  check "ls" bash -c "'$DAVIT_BIN' ls '$U/' | grep -qx 'hello.txt' && '$DAVIT_BIN' ls '$U/' | grep -qx 'tree/'"
  check "ls -l" bash -c "'$DAVIT_BIN' ls -l '$U/' | grep -Eq '^- +12 .* hello.txt$'"
  check "ls -R" bash -c "'$DAVIT_BIN' ls -R '$U/tree' | grep -qx 'sub dir/b c.txt'"
  check "ls --json" bash -c "'$DAVIT_BIN' ls --json '$U/tree/' | grep -q '\"name\":\"big.bin\",.*\"size\":300000'"
  check "stat" bash -c "'$DAVIT_BIN' stat '$U/hello.txt' | grep -qx 'size: 12'"
  check "get file" bash -c "'$DAVIT_BIN' get '$U/hello.txt' '$L/hello.back' && cmp '$L/hello.txt' '$L/hello.back'"
  check "get -c (resume)" bash -c "head -c 100000 '$L/tree/big.bin' >'$L/big.part' && '$DAVIT_BIN' get -c '$U/tree/big.bin' '$L/big.part' && cmp '$L/tree/big.bin' '$L/big.part'"
  check "get tree" bash -c "'$DAVIT_BIN' get '$U/tree' '$L/tree.back' && diff -r '$L/tree' '$L/tree.back'"
  if [[ $SERVER == dufs ]]; then
    # dufs copies no collections: the refusal is said (403) and nothing else happens.
    check "cp of a collection refused clearly" bash -c "'$DAVIT_BIN' cp '$U/tree/' '$U/tree2/' 2>&1 | grep -q '403 Forbidden'; [[ \${PIPESTATUS[0]} == 1 ]]"
    check "a copy for rm" d put "$L/tree" "$U/tree2"
  else
    check "cp tree" d cp "$U/tree/" "$U/tree2/"
    check "cp result" bash -c "'$DAVIT_BIN' get '$U/tree2/sub dir/b c.txt' '$L/bc' && cmp '$L/bc' '$L/tree/sub dir/b c.txt'"
  fi
  check "mv file" d mv "$U/hello.txt" "$U/x/moved.txt"
  check "mv result" bash -c "'$DAVIT_BIN' stat '$U/x/moved.txt' >/dev/null && ! '$DAVIT_BIN' stat '$U/hello.txt' 2>/dev/null"
  check "rm refuses a collection without -r" bash -c "! '$DAVIT_BIN' rm '$U/tree2/' 2>/dev/null"
  check "rm -r" d rm -r "$U/tree2/"
  check "rm result" bash -c "! '$DAVIT_BIN' ls '$U/tree2/' 2>/dev/null"
  check "props get (live)" bash -c "'$DAVIT_BIN' props get '$U/x/moved.txt' getcontentlength | grep -qx 'getcontentlength: 12'"
  if [[ $SERVER == apache ]]; then
    check "props set" d props set "$U/x/moved.txt" '{urn:davit-test}color' 'r<e>d'
    check "props get (dead)" bash -c "'$DAVIT_BIN' props get '$U/x/moved.txt' '{urn:davit-test}color' | grep -qx '{urn:davit-test}color: r<e>d'"
    check "props rm" d props rm "$U/x/moved.txt" '{urn:davit-test}color'
    check "props get after rm: exit 3" bash -c "'$DAVIT_BIN' props get '$U/x/moved.txt' '{urn:davit-test}color' 2>/dev/null; [[ \$? == 3 ]]"
  elif [[ $SERVER == dufs ]]; then
    # dufs answers PROPPATCH with a 207 that mentions no property: nothing was stored.
    check "props set not stored: said, exit 3" bash -c "'$DAVIT_BIN' props set '$U/x/moved.txt' '{urn:davit-test}color' red 2>&1 | grep -q \"not in the server's answer\"; [[ \${PIPESTATUS[0]} == 3 ]]"
  elif [[ $SERVER == rclone || $SERVER == wsgidav ]]; then
    # rclone (and WsgiDAV without a property manager) answer PROPPATCH with a 207 refusing
    # each property (403): a partial failure.
    check "props set refused per property (403, exit 3)" bash -c "'$DAVIT_BIN' props set '$U/x/moved.txt' '{urn:davit-test}color' red 2>&1 | grep -q '403 Forbidden'; [[ \${PIPESTATUS[0]} == 3 ]]"
  else
    check "props set refused cleanly (no PROPPATCH)" bash -c "'$DAVIT_BIN' props set '$U/x/moved.txt' '{urn:davit-test}color' red 2>&1; [[ \$? == 1 ]]"
  fi
  check "lock + unlock" bash -c "t=\$('$DAVIT_BIN' lock --timeout 60 '$U/x/moved.txt') && [[ -n \$t ]] && '$DAVIT_BIN' unlock '$U/x/moved.txt' \"\$t\""
  # Writes into a locked collection with its token (regression: Apache wanted the token in a
  # list tagged with the collection, and answered 412).
  # (dufs locks no collections: LOCK of one is 404.)
  if [[ $SERVER != dufs ]]; then
    check "mkdir L" d mkdir "$U/L/"
    check "lock L" bash -c "'$DAVIT_BIN' lock --timeout 120 '$U/L/' >'$WORK/ltok' && [[ -s '$WORK/ltok' ]]"
    # (Apache mod_dav lets anyone add a new member to a locked collection: nothing to check there.)
    if [[ $SERVER != apache ]]; then
      check "put into locked L without token: refused" bash -c "! '$DAVIT_BIN' put '$L/hello.txt' '$U/L/' 2>/dev/null"
    fi
    check "put into locked L with token" bash -c "'$DAVIT_BIN' put --lock-token \"\$(cat '$WORK/ltok')\" '$L/hello.txt' '$U/L/'"
    check "put tree into locked L with token" bash -c "'$DAVIT_BIN' put --lock-token \"\$(cat '$WORK/ltok')\" '$L/tree' '$U/L/tree'"
    check "cp into locked L with token" bash -c "'$DAVIT_BIN' cp --lock-token \"\$(cat '$WORK/ltok')\" '$U/x/moved.txt' '$U/L/copied.txt'"
    # (rclone refuses every MOVE out of a locked collection, whatever If header comes with it.)
    if [[ $SERVER != rclone ]]; then
      check "mv out of locked L with token" bash -c "'$DAVIT_BIN' mv --lock-token \"\$(cat '$WORK/ltok')\" '$U/L/copied.txt' '$U/x/from-L.txt'"
      check "locked L holds what was put" bash -c "[[ \"\$('$DAVIT_BIN' ls '$U/L/' | sort | tr '\\n' '|')\" == 'hello.txt|tree/|' ]]"
    fi
    check "unlock L" bash -c "'$DAVIT_BIN' unlock '$U/L/' \"\$(cat '$WORK/ltok')\""
  fi

  check "ls of a file shows it" bash -c "[[ \"\$('$DAVIT_BIN' ls '$U/x/moved.txt')\" == moved.txt ]]"
  check "ls --depth 2: usage error, exit 2" bash -c "'$DAVIT_BIN' ls --depth 2 '$U/' 2>/dev/null; [[ \$? == 2 ]]"
  check "props get of an absent property: exit 3" bash -c "'$DAVIT_BIN' props get '$U/x/moved.txt' '{urn:davit-test}nope' 2>/dev/null; [[ \$? == 3 ]]"
  check "missing resource: exit 1" bash -c "'$DAVIT_BIN' stat '$U/nope' 2>/dev/null; [[ \$? == 1 ]]"

  # davit sync, both ways: a second run transfers nothing.
  check "sync up" bash -c "[[ \"\$('$DAVIT_BIN' sync '$L/tree' '$U/synced/' | sort | tr '\\n' '|')\" == 'mkdir sub dir/|put a.txt|put big.bin|put sub dir/b c.txt|' ]]"
  check "sync up again: nothing" bash -c "[[ -z \"\$('$DAVIT_BIN' sync '$L/tree' '$U/synced/')\" ]]"
  check "sync down" bash -c "'$DAVIT_BIN' sync '$U/synced/' '$L/synced' >/dev/null && diff -r '$L/tree' '$L/synced'"
  check "sync down again: nothing" bash -c "o=\$('$DAVIT_BIN' sync '$U/synced/' '$L/synced'); echo \"\$o\"; [[ -z \"\$o\" ]]"
  check "sync up a change" bash -c "printf 'a, changed\\n' >'$L/tree/a.txt' && [[ \"\$('$DAVIT_BIN' sync '$L/tree' '$U/synced/')\" == 'put a.txt' ]]"
  check "sync down the change" bash -c "o=\$('$DAVIT_BIN' sync '$U/synced/' '$L/synced'); echo \"\$o\"; [[ \$o == 'get a.txt' ]] && diff -r '$L/tree' '$L/synced'"

  # Names are literal: '#', '?' and '%' are part of them (regressions: they were cut or sent raw).
  printf 'one\n' >"$L/one.txt"
  check "mkdir for names" d mkdir "$U/n/"
  check "put for names" d put "$L/one.txt" "$U/n/"
  check "mv to 'take #2.txt'" d mv "$U/n/one.txt" "take #2.txt"
  if [[ $SERVER == wsgidav ]]; then
    # WsgiDAV decodes the Destination before it splits off a query: the client sends
    # q%3Fx=1.txt, WsgiDAV makes "q" (and a MOVE to fix it lands on "q" again). Its bug, kept
    # visible here.
    check "cp to 'q?x=1.txt' (WsgiDAV makes 'q')" d cp "$U/n/take #2.txt" "q?x=1.txt"
  else
    check "cp to 'q?x=1.txt'" d cp "$U/n/take #2.txt" "q?x=1.txt"
  fi
  check "mkdir -p 'p%q/50% off'" d mkdir -p "$U/n/p%q/50% off/"
  local qname='q?x=1.txt'
  [[ $SERVER == wsgidav ]] && qname=q
  check "names listed whole" bash -c "[[ \"\$('$DAVIT_BIN' ls '$U/n/' | sort | tr '\\n' '|')\" == \"p%q/|$qname|take #2.txt|\" ]]"
  check "get 'take #2.txt'" bash -c "'$DAVIT_BIN' get '$U/n/take #2.txt' '$L/take2' && cmp '$L/one.txt' '$L/take2'"

  # get -c is safe: a resource changed since the partial download comes whole.
  head -c 200000 /dev/urandom >"$L/v1.bin"
  head -c 150000 /dev/urandom >"$L/v2.bin"
  check "put v1" d put "$L/v1.bin" "$U/n/v.bin"
  check "get v1" d get "$U/n/v.bin" "$L/v.part"
  truncate -s 5000 "$L/v.part"
  check "put v2" d put "$L/v2.bin" "$U/n/v.bin"
  check "get -c after a change gives v2" bash -c "'$DAVIT_BIN' get -c '$U/n/v.bin' '$L/v.part' && cmp '$L/v2.bin' '$L/v.part'"
  check "get -c of a complete file: exit 0" bash -c "'$DAVIT_BIN' get -c '$U/n/v.bin' '$L/v.part' && cmp '$L/v2.bin' '$L/v.part'"
  truncate -s 7000 "$L/v.part"
  check "get -c of an unchanged partial file" bash -c "'$DAVIT_BIN' get -c '$U/n/v.bin' '$L/v.part' && cmp '$L/v2.bin' '$L/v.part'"
}

URL=""
start_apache
run_suite apache "$URL"
start_nginx
run_suite nginx "$URL"
start_rclone
run_suite rclone "$URL"
start_dufs
run_suite dufs "$URL"
start_wsgidav
run_suite wsgidav "$URL"

echo
if ((${#SUMMARY[@]})); then printf 'failed: %s\n' "${SUMMARY[@]}"; fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
