#!/usr/bin/env bash
# bench/run.sh — davit side by side with reference WebDAV servers, identical data and workloads.
#
# usage: bench/run.sh [--quick | --smoke]
#                     [--servers "davit davit-pg nginx apache rclone dufs wsgidav"]
#                     [--out FILE] [--duration SECONDS] [--no-install] [--no-build] [--keep]
#                     [--access-log]
#
#   (default)   full run: every server, 8 s per request-rate point, 100,000-file tree, 1 GiB
#               transfers (about 20-30 minutes on 2 cores).
#   --quick     2 s per point, davit + nginx, 10,000-file tree, 256 MiB transfers (1-2 minutes).
#   --smoke     1 s per point, davit only, tiny trees, 8 MiB transfers: checks that every
#               workload runs and the table is produced (seconds; what CI runs).
#   --servers   which servers, in order (davit first is best: ratios are davit/peer).
#               `davit-pg` is davit on its distributed backend: a private PostgreSQL (fsync on)
#               and a single-node Garage are started for it (scripts/pg.sh, scripts/garage.sh),
#               the data set is loaded with `davit import`, and the big transfers are also
#               measured against Garage directly (`s3-direct`) as the yardstick.
#   --out FILE  markdown report [default: bench/results/MODE-DATE.md]; the raw TSV goes next to
#               it as FILE.tsv.
#   --no-install  never apt-get/pip/cargo install; a missing server is skipped with a message.
#   --no-build    use the existing target/release/davit instead of building it.
#   --keep      keep the temporary run directory (data sets, configs, logs).
#   --access-log  davit and nginx write their access logs (to files in the run directory), as
#               they do out of the box; without it (the default) neither does. Other servers
#               keep their benchmark configuration.
#
# Needs root for apt-get (nginx, apache2, rclone, wrk) and to run nginx/apache on loopback the
# way this script configures them. Every server listens on its own 127.0.0.1 port (19100+), gets
# its own copy (hard links) of the same data tree, and is started, measured and stopped in turn.
# Load comes from wrk (bench/lua/*.lua) and curl, both separate processes.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR/../scripts
source "$BENCH_DIR/../scripts/peer-configs.sh"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
export BENCH_LUA_DIR="$BENCH_DIR/lua"
export PATH="$HOME/.cargo/bin:$PATH"

MODE=full
SERVERS=""
OUT=""
DURATION=""
INSTALL=1
BUILD=1
KEEP=0
ACCESS_LOG=0
while (($#)); do
  case "$1" in
    --quick) MODE=quick ;;
    --smoke) MODE=smoke ;;
    --servers) SERVERS="${2:?--servers needs a list}"; shift ;;
    --servers=*) SERVERS="${1#*=}" ;;
    --out) OUT="${2:?--out needs a file}"; shift ;;
    --out=*) OUT="${1#*=}" ;;
    --duration) DURATION="${2:?--duration needs seconds}"; shift ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --access-log) ACCESS_LOG=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---------------------------------------------------------------- parameters per mode
# davit's access log: off unless asked for (nginx's is set where its configuration is written).
DAVIT_LOG="info,davit::access=off"
((ACCESS_LOG)) && DAVIT_LOG=info
CONCS=(1 16 64 256)
case "$MODE" in
  full)
    : "${SERVERS:=davit nginx apache rclone dufs wsgidav}"; : "${DURATION:=8}"
    INF_DIRS=100; INF_FILES=1000      # Depth infinity tree: 100 x 1000 = 100,000 files
    BIG_MIB=1024; REPS=3 ;;
  quick)
    : "${SERVERS:=davit nginx}"; : "${DURATION:=2}"
    INF_DIRS=10; INF_FILES=1000; BIG_MIB=256; REPS=1 ;;
  smoke)
    : "${SERVERS:=davit}"; : "${DURATION:=1}"
    INF_DIRS=2; INF_FILES=100; BIG_MIB=8; REPS=1 ;;
esac
INF_TOTAL=$((INF_DIRS * INF_FILES))
ONESHOT_TIMEOUT=600                   # curl --max-time for one-shot requests
read -r -a SERVER_LIST <<<"$SERVERS"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
: "${OUT:=$BENCH_DIR/results/$MODE-$STAMP.md}"
mkdir -p "$(dirname "$OUT")"
TSV="$OUT.tsv"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_of() {
  case "$1" in
    davit) echo 19100 ;; nginx) echo 19101 ;; apache) echo 19102 ;;
    rclone) echo 19103 ;; dufs) echo 19104 ;; wsgidav) echo 19105 ;; davit-pg) echo 19106 ;;
    *) return 1 ;;
  esac
}
for s in "${SERVER_LIST[@]}"; do port_of "$s" >/dev/null || die "unknown server '$s'"; done

# ---------------------------------------------------------------- installation
is_root() { [[ $(id -u) == 0 ]]; }
APT_UPDATED=0
apt_install() {  # apt_install PKG... (only the missing ones; apt-get update once per run)
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  ((INSTALL)) || { log "missing packages (not installing, --no-install): ${missing[*]}"; return 1; }
  is_root || { log "missing packages and not root: ${missing[*]}"; return 1; }
  command -v apt-get >/dev/null || { log "no apt-get; install by hand: ${missing[*]}"; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  if ((!APT_UPDATED)); then log "apt-get update"; apt-get update -q >&2; APT_UPDATED=1; fi
  # Debian's maintainer scripts would start apache2/nginx on port 80: forbid that while installing.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  log "apt-get install ${missing[*]}"
  local rc=0
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

pyver() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }

# ensure_server NAME: installs NAME if needed; non-zero when it cannot be run.
ensure_server() {
  case "$1" in
    davit) [[ -x $DAVIT_BIN ]] ;;
    davit-pg) [[ -x $DAVIT_BIN ]] && start_stores ;;
    nginx)
      apt_install nginx libnginx-mod-http-dav-ext &&
        [[ -f /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ]] ;;
    apache) apt_install apache2 && [[ -f /usr/lib/apache2/modules/mod_dav_fs.so ]] ;;
    rclone) apt_install rclone ;;
    dufs)
      if ! command -v dufs >/dev/null; then
        ((INSTALL)) || { log "dufs not installed and --no-install given: skipping dufs" \
          "(install: cargo install --locked dufs --version 0.47.0)"; return 1; }
        log "cargo install --locked dufs --version 0.47.0 (several minutes)"
        cargo install --locked dufs --version 0.47.0 >&2 || return 1
      fi ;;
    wsgidav)
      if [[ $(pyver wsgidav) != 4.4.0 || $(pyver cheroot) != 11.1.2 ]] || ! command -v wsgidav >/dev/null; then
        if [[ -z $(pyver wsgidav) ]] || ! command -v wsgidav >/dev/null; then
          ((INSTALL)) || { log "wsgidav not installed and --no-install given: skipping wsgidav"; return 1; }
          command -v pip >/dev/null || python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
          log "pip install wsgidav==4.4.0 cheroot==11.1.2"
          python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
            wsgidav==4.4.0 cheroot==11.1.2 >&2 || return 1
          hash -r
        else
          log "note: wsgidav $(pyver wsgidav) / cheroot $(pyver cheroot) installed (pinned: 4.4.0 / 11.1.2)"
        fi
      fi
      command -v wsgidav >/dev/null ;;
  esac
}

server_version() {
  case "$1" in
    davit) "$DAVIT_BIN" --version 2>/dev/null | sed -n 1p ;;
    davit-pg) echo "$("$DAVIT_BIN" --version 2>/dev/null | sed -n 1p); $(psql --version 2>/dev/null | sed -n 1p); $(garage --version 2>/dev/null | sed -n 1p)" ;;
    nginx) echo "$(nginx -v 2>&1 | sed 's/^nginx version: //') + dav-ext $(dpkg-query -W -f='${Version}' libnginx-mod-http-dav-ext 2>/dev/null)" ;;
    apache) apache2 -v 2>/dev/null | sed -n 's/^Server version: //p' ;;
    rclone) rclone version 2>/dev/null | sed -n 1p ;;
    dufs) dufs --version 2>/dev/null ;;
    wsgidav) echo "wsgidav $(pyver wsgidav) (cheroot $(pyver cheroot))" ;;
  esac
}

apt_install wrk curl || die "wrk and curl are required"
command -v python3 >/dev/null || apt_install python3 || die "python3 is required (report)"

# ---------------------------------------------------------------- davit-pg's services
# PostgreSQL (with fsync, as in production) and Garage, started once for the run.
STORES_UP=0
PG_URL=""
S3_LINE=""
start_stores() {
  ((STORES_UP)) && return 0
  if ((!INSTALL)); then
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ||
      { log "PostgreSQL not installed and --no-install given: skipping davit-pg"; return 1; }
    command -v garage >/dev/null ||
      { log "garage not installed and --no-install given: skipping davit-pg" \
        "(install: scripts/garage.sh install)"; return 1; }
  fi
  log "starting PostgreSQL (fsync on) and Garage for davit-pg"
  PG_URL=$(PG_FSYNC=on bash "$REPO/scripts/pg.sh" start "$RUN/pg" 2>>"$RUN/stores.log" | tail -n 1) ||
    { log "PostgreSQL did not start: $(tail -n 3 "$RUN/stores.log")"; return 1; }
  STORES_UP=1
  S3_LINE=$(bash "$REPO/scripts/garage.sh" start "$RUN/garage" 2>>"$RUN/stores.log" | tail -n 1) ||
    { log "Garage did not start: $(tail -n 3 "$RUN/stores.log")"; return 1; }
}
stop_stores() {
  ((STORES_UP)) || return 0
  bash "$REPO/scripts/garage.sh" stop "$RUN/garage" >/dev/null 2>&1 || true
  bash "$REPO/scripts/pg.sh" stop "$RUN/pg" >/dev/null 2>&1 || true
  STORES_UP=0
}
s3_field() { tr ' ' '\n' <<<"$S3_LINE" | sed -n "s/^$1=//p"; }
# While another server is measured, davit-pg's services are stopped: their background work
# (autovacuum after the import, Garage's own tasks) would take CPU from it. They come back
# (same ports, same data) before davit-pg is measured.
STORES_PAUSED=0
quiet_stores() {
  ((STORES_UP && !STORES_PAUSED)) || return 0
  bash "$REPO/scripts/garage.sh" pause "$RUN/garage" >>"$RUN/stores.log" 2>&1 || true
  bash "$REPO/scripts/pg.sh" pause "$RUN/pg" >>"$RUN/stores.log" 2>&1 || true
  STORES_PAUSED=1
}
wake_stores() {
  ((STORES_UP && STORES_PAUSED)) || return 0
  bash "$REPO/scripts/pg.sh" resume "$RUN/pg" >>"$RUN/stores.log" 2>&1 ||
    { log "PostgreSQL did not come back: $(tail -n 3 "$RUN/stores.log")"; return 1; }
  bash "$REPO/scripts/garage.sh" resume "$RUN/garage" >>"$RUN/stores.log" 2>&1 ||
    { log "Garage did not come back: $(tail -n 3 "$RUN/stores.log")"; return 1; }
  STORES_PAUSED=0
}

# A fresh database, davit's configuration for it, and the docroot loaded by `davit import`.
load_pg_store() {  # load_pg_store DOCROOT
  local cfg="$RUN/cfg-davit-pg" t0 out
  mkdir -p "$cfg"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS davit_bench" -c "CREATE DATABASE davit_bench" >&2
  cat >"$cfg/davit.toml" <<TOML
[store]
backend = "postgres"
url = "${PG_URL/dbname=postgres/dbname=davit_bench}"
pool_size = 32
[blobs]
endpoint = "$(s3_field endpoint)"
region = "$(s3_field region)"
bucket = "$(s3_field bucket)"
access_key_id = "$(s3_field key)"
secret_access_key = "$(s3_field secret)"
# Garage does not set TCP_NODELAY: a reused connection waits ~40 ms per answer.
reuse_connections = false
# Loopback: the yardstick (curl) sends UNSIGNED-PAYLOAD too.
sign_payload = false
TOML
  log "davit import of the data set into PostgreSQL + Garage"
  t0=$(date +%s.%N)
  out=$("$DAVIT_BIN" import "$1" --config "$cfg/davit.toml" 2>>"$cfg/import.log") || {
    log "davit import failed: $(tail -n 3 "$cfg/import.log")"; return 1; }
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  log "  $out"
  emit davit-pg import 1 time "$(awk -v s="$secs" 'BEGIN { printf "%.0f", s * 1000 }')" "" "" "" "" "" "$out"
}

# The yardstick for davit-pg's big transfers: the same curl against Garage itself (SigV4).
run_s3_direct() {
  local ep bucket r code speed
  ep=$(s3_field endpoint); bucket=$(s3_field bucket)
  local auth=(--aws-sigv4 "aws:amz:$(s3_field region):s3" --user "$(s3_field key):$(s3_field secret)"
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
  r=$(curl_req PUT "$ep/$bucket/bench-direct.bin" -T "$RUN/upload.bin" "${auth[@]}")
  code=${r%% *}
  if [[ $code =~ ^2 ]]; then
    speed=$(awk '{ printf "%.1f", $5 / 1048576 }' <<<"$r")
    log "  s3-direct PUT ${BIG_MIB} MiB: $speed MiB/s"
    emit s3-direct put_big 1 thru "$speed" "" "" "" "" "" ""
  else
    emit s3-direct put_big 1 thru "" "" "" "" "" "" "n/a (HTTP ${code:-none})"
  fi
  r=$(curl_req GET "$ep/$bucket/bench-direct.bin" "${auth[@]}")
  code=${r%% *}
  if [[ $code == 200 ]]; then
    speed=$(awk '{ printf "%.1f", $4 / 1048576 }' <<<"$r")
    log "  s3-direct GET ${BIG_MIB} MiB: $speed MiB/s"
    emit s3-direct get_big 1 thru "$speed" "" "" "" "" "" ""
  else
    emit s3-direct get_big 1 thru "" "" "" "" "" "" "n/a (HTTP ${code:-none})"
  fi
  curl_req DELETE "$ep/$bucket/bench-direct.bin" "${auth[@]}" >/dev/null
}

# ---------------------------------------------------------------- davit build
RUN="$(mktemp -d "${TMPDIR:-/var/tmp}/davit-bench.XXXXXX")"
chmod 755 "$RUN"   # apache's children (www-data) must reach their document root
CURRENT_PID=""
cleanup() {
  if [[ -n $CURRENT_PID ]]; then stop_server || true; fi
  stop_stores
  if ((KEEP)); then log "run directory kept: $RUN"; else rm -rf -- "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ((BUILD)); then
  log "cargo build --release -p davit"
  (cd "$REPO" && cargo build --release -p davit >&2)
fi
[[ -x $REPO/target/release/davit ]] || die "target/release/davit missing (build failed?)"
# A private copy, so that a rebuild during the run does not change what is measured.
cp "$REPO/target/release/davit" "$RUN/davit"
DAVIT_BIN="$RUN/davit"

RUNNABLE=()
for s in "${SERVER_LIST[@]}"; do
  if ensure_server "$s"; then RUNNABLE+=("$s"); else log "skipping $s: not available"; fi
done
((${#RUNNABLE[@]})) || die "no server to run"

# ---------------------------------------------------------------- data set (built once)
# template/
#   small/file4k.bin             4 KiB                 (GET, PROPFIND Depth 0)
#   dir1000/f0000.txt..f0999.txt 1,000 x 1 KiB         (PROPFIND Depth 1)
#   dir1000w/f0000.txt..f0999.txt the same, each given the four dead properties Windows
#                                writes (Win32CreationTime, ...) by PROPPATCH once the server
#                                is up (PROPFIND Depth 1 with dead properties)
#   tree1000/d0..d9/f00..f99     1,000 x 4 KiB         (COPY source)
#   mv1..mvREPS/, del1..delREPS/ copies of tree1000     (MOVE and DELETE sources, so that each
#                                                        operation stands alone)
#   mv10k/dN/fNNN                10 x 1,000 x 100 B    (MOVE of a 10,000-member collection,
#                                                        moved there and back)
#   inf/dNNN/fNNNN               INF_DIRS x INF_FILES x 100 B (PROPFIND Depth infinity)
#   put/                         empty                 (PUT of new files)
#   big.bin                      BIG_MIB MiB, random   (GET 1 GiB); the PUT source is $RUN/upload.bin
make_template() {
  local t="$RUN/template"
  log "creating data set: $INF_TOTAL-file tree, ${BIG_MIB} MiB file"
  mkdir -p "$t/small" "$t/dir1000" "$t/dir1000w" "$t/put"
  head -c 4096 /dev/urandom >"$t/small/file4k.bin"
  python3 - "$t" "$INF_DIRS" "$INF_FILES" <<'EOF'
import os, sys
t, ndirs, nfiles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kb = b"k" * 1024
for i in range(1000):
    with open(f"{t}/dir1000/f{i:04d}.txt", "wb") as f: f.write(kb)
    with open(f"{t}/dir1000w/f{i:04d}.txt", "wb") as f: f.write(kb)
four = b"f" * 4096
for d in range(10):
    os.makedirs(f"{t}/tree1000/d{d}")
    for i in range(100):
        with open(f"{t}/tree1000/d{d}/f{i:02d}.txt", "wb") as f: f.write(four)
hundred = b"h" * 100
for d in range(10):
    os.makedirs(f"{t}/mv10k/d{d}")
    for i in range(1000):
        with open(f"{t}/mv10k/d{d}/f{i:03d}.txt", "wb") as f: f.write(hundred)
for d in range(ndirs):
    os.makedirs(f"{t}/inf/d{d:03d}")
    for i in range(nfiles):
        with open(f"{t}/inf/d{d:03d}/f{i:04d}.txt", "wb") as f: f.write(hundred)
EOF
  local i
  for ((i = 1; i <= REPS; i++)); do
    cp -a "$t/tree1000" "$t/mv$i"
    cp -a "$t/tree1000" "$t/del$i"
  done
  head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom >"$t/big.bin"
  ln "$t/big.bin" "$RUN/upload.bin"   # PUT source; same bytes, outside every docroot
}

# Each server gets a fresh copy of the template: new directories, files hard-linked (identical
# bytes, no 6x disk use). Nothing writes into a template file in place: PUTs create new names.
# The files the small-request workloads read are copied instead: as in a served directory,
# they have one name each (davit does not cache a file with other hard links, since a change
# made through another name would not be noticed).
make_docroot() {  # make_docroot NAME -> prints the docroot
  local d="$RUN/root-$1" sub
  rm -rf -- "$d"
  cp -al "$RUN/template" "$d"
  for sub in small dir1000 dir1000w; do
    rm -rf -- "${d:?}/$sub"
    cp -a "$RUN/template/$sub" "$d/$sub"
  done
  if [[ $1 == apache ]]; then chown -R www-data:www-data "$d"; fi
  echo "$d"
}

# ---------------------------------------------------------------- servers
# start_server NAME DOCROOT: starts it in its own session; sets CURRENT_PID and BASE.
start_server() {
  local name="$1" root="$2" port cfg
  port=$(port_of "$name")
  BASE="http://127.0.0.1:$port"
  cfg="$RUN/cfg-$name"; mkdir -p "$cfg"
  if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then die "port $port already in use"; fi
  local cmd=()
  case "$name" in
    davit)
      # Access log off unless --access-log (as for nginx); warnings still go to the log.
      cmd=(env RUST_LOG="$DAVIT_LOG" "$DAVIT_BIN" serve "$root" --listen "127.0.0.1:$port") ;;
    davit-pg)
      cmd=(env RUST_LOG="$DAVIT_LOG" "$DAVIT_BIN" serve --config "$cfg/davit.toml"
        --listen "127.0.0.1:$port") ;;
    nginx)
      write_nginx_conf "$cfg" "$port" "$root"
      if ((ACCESS_LOG)); then
        sed -i "s|access_log off;|access_log $cfg/logs/access.log;|" "$cfg/nginx.conf"
      fi
      cmd=(/usr/sbin/nginx -p "$cfg/" -e "$cfg/logs/error.log" -c "$cfg/nginx.conf" -g "daemon off;") ;;
    apache)
      write_apache_conf "$cfg" "$port" "$root"
      chown www-data:www-data "$cfg/lock"
      cmd=(/usr/sbin/apache2 -f "$cfg/httpd.conf" -DFOREGROUND) ;;
    rclone)
      : >"$cfg/rclone.conf"
      cmd=(rclone serve webdav "$root" --addr "127.0.0.1:$port" --config "$cfg/rclone.conf") ;;
    dufs)
      cmd=(dufs -A -b 127.0.0.1 -p "$port" "$root") ;;
    wsgidav)
      cat >"$cfg/wsgidav.yaml" <<EOF
server: cheroot
host: 127.0.0.1
port: $port
provider_mapping:
  "/": "$root"
http_authenticator:
  domain_controller: null
simple_dc:
  user_mapping:
    "*": true
lock_storage: true
property_manager: true
verbose: 1
EOF
      cmd=(wsgidav --config "$cfg/wsgidav.yaml") ;;
  esac
  (cd "$cfg" && exec setsid "${cmd[@]}" </dev/null >>"$cfg/server.log" 2>&1) &
  CURRENT_PID=$!
  local code
  for _ in $(seq 1 150); do
    kill -0 "$CURRENT_PID" 2>/dev/null || { tail -n 20 "$cfg/server.log" >&2; CURRENT_PID=""; return 1; }
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' -X OPTIONS "$BASE/" 2>/dev/null || true)
    [[ $code != 000 ]] && return 0
    sleep 0.2
  done
  log "$name did not answer OPTIONS within 30 s"
  stop_server
  return 1
}

# All processes of the server: its session (setsid made CURRENT_PID the session leader).
server_pids() {
  ps -e -o pid=,sid= | awk -v s="$CURRENT_PID" '$2 == s { print $1 }'
}

# CPU time (clock ticks, user + system) used so far by the server's processes. Per request it
# is steadier than req/s on a small shared machine, where wrk and the server share the cores.
cpu_ticks() {
  local p total=0 v
  for p in $(server_pids); do
    v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# Resets the peak RSS (VmHWM) of every server process (Linux >= 4.0: "5" > clear_refs).
reset_peak() {
  local p
  for p in $(server_pids); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
}

# Sum of VmHWM (KiB) over the server's processes: nginx master + workers, apache parent +
# children, the python under a pyenv shim... Children that exited during a workload are missed.
peak_kib() {
  local p total=0 v
  for p in $(server_pids); do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

stop_server() {
  [[ -n $CURRENT_PID ]] || return 0
  kill -TERM "$CURRENT_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$CURRENT_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$CURRENT_PID" 2>/dev/null; then kill -KILL -- "-$CURRENT_PID" 2>/dev/null || true; fi
  # apache/nginx children may linger a moment after the parent; they share its session id
  local p
  for _ in $(seq 1 50); do
    p=$(server_pids)
    [[ -z $p ]] && break
    sleep 0.1
  done
  for p in $(server_pids); do kill -KILL "$p" 2>/dev/null || true; done
  wait "$CURRENT_PID" 2>/dev/null || true
  CURRENT_PID=""
}

# ---------------------------------------------------------------- measurement helpers
# TSV: server workload conc kind value ttfb_ms p50_ms p99_ms rss_kib errors note cpu_us
#   kind rate: value = requests/s, cpu_us = server CPU per request;  time: value = ms (total);
#   thru: value = MiB/s
printf 'server\tworkload\tconc\tkind\tvalue\tttfb_ms\tp50_ms\tp99_ms\trss_kib\terrors\tnote\tcpu_us\n' >"$TSV"
emit() { local IFS=$'\t'; echo "$*" >>"$TSV"; }

# curl_req METHOD URL [curl args...]: prints "CODE TTFB_S TOTAL_S SPEED_DL SPEED_UL"
curl_req() {
  local method="$1" url="$2"; shift 2
  curl -s -o /dev/null -m "$ONESHOT_TIMEOUT" -X "$method" \
    -w '%{http_code} %{time_starttransfer} %{time_total} %{speed_download} %{speed_upload}' \
    "$@" "$url" 2>/dev/null || true
}

PROP_ALLPROP='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
# What Windows' WebDAV redirector (mini-redirector) sets on every file it writes.
WIN32_PATCH='<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32CreationTime>Wed, 02 Dec 2026 10:00:00 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>Thu, 03 Dec 2026 11:30:00 GMT</Z:Win32LastAccessTime><Z:Win32LastModifiedTime>Wed, 02 Dec 2026 10:05:00 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>'

# Gives every member of dir1000w the Win32 properties (PROPPATCH, 4 at a time); prints how
# many members the server took them for (a 207 with 200 and no failure status).
seed_win32() {
  local tmp
  tmp=$(mktemp)
  printf '%s' "$WIN32_PATCH" >"$tmp"
  # shellcheck disable=SC2016 # expanded by the inner shell
  seq -f '%04g' 0 999 | xargs -P 4 -I{} sh -c \
    'r=$(curl -s -m 30 -X PROPPATCH -H "Content-Type: application/xml" --data-binary "@$1" "$2") &&
     printf "%s" "$r" | grep -q "HTTP/1.1 200" && ! printf "%s" "$r" | grep -q "HTTP/1.1 [45]" &&
     echo kept' _ "$tmp" "$BASE/dir1000w/f{}.txt" | wc -l
  rm -f "$tmp"
}
PROP3='<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>'

# Preflight: the same request once with curl; prints the HTTP status.
preflight() {
  local wl="$1" code
  case "$wl" in
    get4k) code=$(curl_req GET "$BASE/small/file4k.bin") ;;
    propfind0) code=$(curl_req PROPFIND "$BASE/small/file4k.bin" -H 'Depth: 0' -H 'Content-Type: application/xml' --data-binary "$PROP_ALLPROP") ;;
    propfind1_allprop) code=$(curl_req PROPFIND "$BASE/dir1000/" -H 'Depth: 1' -H 'Content-Type: application/xml' --data-binary "$PROP_ALLPROP") ;;
    propfind1_prop3) code=$(curl_req PROPFIND "$BASE/dir1000/" -H 'Depth: 1' -H 'Content-Type: application/xml' --data-binary "$PROP3") ;;
    propfind1_win32)
      # Only a server that kept the properties measures what the workload is about.
      if curl -s -m "$ONESHOT_TIMEOUT" -X PROPFIND "$BASE/dir1000w/f0500.txt" -H 'Depth: 0' \
        -H 'Content-Type: application/xml' --data-binary "$PROP_ALLPROP" | grep -q 'Win32FileAttributes'; then
        code=$(curl_req PROPFIND "$BASE/dir1000w/" -H 'Depth: 1' -H 'Content-Type: application/xml' --data-binary "$PROP_ALLPROP")
      else
        code=no-dead-properties
      fi ;;
    put64k) code=$(head -c 65536 /dev/zero | curl_req PUT "$BASE/put/preflight.bin" --data-binary @-) ;;
  esac
  echo "${code%% *}"
}

# Entries in a multistatus body file (<response> elements, any namespace prefix).
count_responses() { { grep -o '<[A-Za-z0-9_]*:\{0,1\}response[ >]' "$1" || true; } | wc -l; }

run_rate() {  # run_rate SERVER WORKLOAD CONC
  local s="$1" wl="$2" c="$3" threads=2 out code
  ((c < threads)) && threads=$c
  local wrk_args=(-t "$threads" -c "$c" -d "${DURATION}s" --timeout 30s)
  local target script extra=()
  case "$wl" in
    get4k) target="$BASE/small/file4k.bin"; script=get.lua ;;
    propfind0) target="$BASE/small/file4k.bin"; script=propfind.lua; extra=(0 allprop) ;;
    propfind1_allprop) target="$BASE/dir1000/"; script=propfind.lua; extra=(1 allprop) ;;
    propfind1_prop3) target="$BASE/dir1000/"; script=propfind.lua; extra=(1 prop3) ;;
    propfind1_win32) target="$BASE/dir1000w/"; script=propfind.lua; extra=(1 allprop) ;;
    put64k) target="$BASE/put/"; script=put.lua; extra=("c$c" 65536) ;;
  esac
  code=$(preflight "$wl")
  if [[ $code == no-dead-properties ]]; then
    log "  $wl c=$c: $s kept no dead properties: n/a"
    emit "$s" "$wl" "$c" rate "" "" "" "" "" "" "n/a (kept no dead properties)"
    return
  fi
  if [[ ! $code =~ ^2 ]]; then
    log "  $wl c=$c: preflight answered ${code:-nothing}: n/a"
    emit "$s" "$wl" "$c" rate "" "" "" "" "" "" "n/a (HTTP ${code:-none})"
    return
  fi
  reset_peak
  local cpu0 cpu1
  cpu0=$(cpu_ticks)
  out=$(wrk "${wrk_args[@]}" -s "$BENCH_LUA_DIR/$script" "$target" -- "${extra[@]}" 2>&1 || true)
  cpu1=$(cpu_ticks)
  local rss line
  rss=$(peak_kib)
  line=$(grep '^BENCH ' <<<"$out" || true)
  if [[ -z $line ]]; then
    log "  $wl c=$c: wrk failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    emit "$s" "$wl" "$c" rate "" "" "" "" "$rss" "" "wrk failed"
    return
  fi
  local rps p50 p99 non2xx sockerr requests cpu_us
  rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line")
  requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
  cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="${requests:-0}" \
    'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n }')
  p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line")
  non2xx=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<<"$line")
  sockerr=$(sed -n 's/.* sockerr=\([0-9]*\).*/\1/p' <<<"$line")
  log "  $wl c=$c: $rps req/s p50 ${p50}us p99 ${p99}us cpu ${cpu_us}us/req peak ${rss} KiB non-2xx $non2xx socket errors $sockerr"
  emit "$s" "$wl" "$c" rate "$rps" "" "$(awk -v u="$p50" 'BEGIN{printf "%.2f", u/1000}')" \
    "$(awk -v u="$p99" 'BEGIN{printf "%.2f", u/1000}')" "$rss" "$((non2xx + sockerr))" "" "$cpu_us"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }

# COPY /tree1000/ -> /copyN/, MOVE /mvN/ -> /movedN/, DELETE /delN/ (REPS times; median).
# tree_op NAME METHOD URL [curl args]: one timed request; appends the time (s) to TIMES_<NAME>,
# or sets FAIL_<NAME> on a non-2xx answer; tracks the peak RSS in RSS_<NAME>.
tree_op() {
  local name="$1" method="$2" url="$3" r code v; shift 3
  reset_peak
  r=$(curl_req "$method" "$url" "$@")
  code=${r%% *}
  v=$(peak_kib)
  if [[ $code =~ ^2 ]]; then
    printf '%s\n' "$(awk '{ print $3 }' <<<"$r")" >>"$RUN/times-$name"
  else
    echo "n/a (HTTP ${code:-none})" >"$RUN/fail-$name"
  fi
  if ((v > $(cat "$RUN/rss-$name" 2>/dev/null || echo 0))); then echo "$v" >"$RUN/rss-$name"; fi
}

run_tree_ops() {
  local s="$1" i name
  rm -f "$RUN"/times-* "$RUN"/fail-* "$RUN"/rss-*
  # One untimed COPY first, so that every server copies a source already in memory (see
  # run_big: the first server measured read it from disk, 125-165 ms for davit, 17-22 warm).
  curl_req COPY "$BASE/tree1000/" -H "Destination: $BASE/warm-copy/" -H 'Depth: infinity' >/dev/null
  curl_req DELETE "$BASE/warm-copy/" >/dev/null
  for ((i = 1; i <= REPS; i++)); do
    tree_op copy COPY "$BASE/tree1000/" -H "Destination: $BASE/copy$i/" -H 'Depth: infinity' -H 'Overwrite: F'
    tree_op move MOVE "$BASE/mv$i/" -H "Destination: $BASE/moved$i/" -H 'Overwrite: F'
    tree_op delete DELETE "$BASE/del$i/"
    tree_op move10k MOVE "$BASE/mv10k/" -H "Destination: $BASE/moved10k/" -H 'Overwrite: F'
    tree_op move10k MOVE "$BASE/moved10k/" -H "Destination: $BASE/mv10k/" -H 'Overwrite: F'
  done
  for name in copy move delete move10k; do
    local rss note="" m=""
    rss=$(cat "$RUN/rss-$name" 2>/dev/null || echo 0)
    if [[ -f $RUN/fail-$name ]]; then
      note=$(<"$RUN/fail-$name")
    else
      m=$(ms "$(median <"$RUN/times-$name")")
    fi
    local wl="${name}_tree1000"
    [[ $name == move10k ]] && wl=move_tree10k
    emit "$s" "$wl" 1 time "$m" "" "" "" "$rss" "" "$note"
    log "  $wl: ${m:-$note} ms ($(tr '\n' ' ' <"$RUN/times-$name" 2>/dev/null || true)s)"
  done
}

run_depth_inf() {
  local s="$1" r code body n note="" rss
  body="$RUN/depthinf-$s.xml"
  # One untimed pass first, as in run_big: the tree sat unread while the other workloads ran,
  # and this machine's kernel pages out cold memory (DAMON, action pageout), so the first
  # reader paid for the disk (2026-12-04: davit's first byte 719 ms cold, 47-51 ms warm).
  curl -s -o /dev/null -m "$ONESHOT_TIMEOUT" -X PROPFIND -H 'Depth: infinity' \
    -H 'Content-Type: application/xml' --data-binary "$PROP_ALLPROP" "$BASE/inf/" || true
  reset_peak
  r=$(curl -s -o "$body" -m "$ONESHOT_TIMEOUT" -X PROPFIND -H 'Depth: infinity' \
    -H 'Content-Type: application/xml' --data-binary "$PROP_ALLPROP" \
    -w '%{http_code} %{time_starttransfer} %{time_total}' "$BASE/inf/" 2>/dev/null || true)
  rss=$(peak_kib)
  code=${r%% *}
  n=$(count_responses "$body")
  rm -f -- "$body"
  local expect=$((INF_TOTAL + INF_DIRS + 1))
  if [[ $code != 207 ]]; then
    log "  depth infinity: HTTP ${code:-none} ($n entries): refused"
    emit "$s" propfind_inf 1 time "" "" "" "" "$rss" "" "refused (HTTP ${code:-none})"
    return
  fi
  ((n < expect)) && note="partial: $n of $expect entries"
  ((n > expect)) && note="$n entries (expected $expect)"
  local ttfb total
  ttfb=$(awk '{ print $2 }' <<<"$r"); total=$(awk '{ print $3 }' <<<"$r")
  log "  depth infinity: ttfb ${ttfb}s total ${total}s $n entries peak ${rss} KiB ${note}"
  emit "$s" propfind_inf 1 time "$(ms "$total")" "$(ms "$ttfb")" "" "" "$rss" "" "$note"
}

run_big() {
  local s="$1" r code rss speed ttfb
  # One untimed read first: this machine's kernel reclaims cold page cache on its own, so
  # whichever server read the file first paid for the disk (davit 428 MiB/s there, 2,000+
  # warm; checked with drop_caches). Every server (and Garage, behind davit-pg) is now timed
  # with the file in memory.
  curl_req GET "$BASE/big.bin" >/dev/null
  reset_peak
  r=$(curl_req GET "$BASE/big.bin")
  rss=$(peak_kib); code=${r%% *}
  if [[ $code == 200 ]]; then
    speed=$(awk '{ printf "%.1f", $4 / 1048576 }' <<<"$r"); ttfb=$(awk '{ print $2 }' <<<"$r")
    log "  GET ${BIG_MIB} MiB: $speed MiB/s peak ${rss} KiB"
    emit "$s" get_big 1 thru "$speed" "$(ms "$ttfb")" "" "" "$rss" "" ""
  else
    emit "$s" get_big 1 thru "" "" "" "" "$rss" "" "n/a (HTTP ${code:-none})"
  fi
  reset_peak
  r=$(curl_req PUT "$BASE/put/big-upload.bin" -T "$RUN/upload.bin" -H 'Content-Type: application/octet-stream')
  rss=$(peak_kib); code=${r%% *}
  if [[ $code =~ ^2 ]]; then
    speed=$(awk '{ printf "%.1f", $5 / 1048576 }' <<<"$r")
    log "  PUT ${BIG_MIB} MiB: $speed MiB/s peak ${rss} KiB"
    emit "$s" put_big 1 thru "$speed" "" "" "" "$rss" "" ""
  else
    emit "$s" put_big 1 thru "" "" "" "" "$rss" "" "n/a (HTTP ${code:-none})"
  fi
  if [[ $s == davit-pg ]]; then run_s3_direct; fi
}

# Removes what the PUT workloads created (outside any measurement), keeping put/ itself.
clean_puts() {  # clean_puts SERVER DOCROOT
  if [[ $1 == davit-pg ]]; then
    curl -s -o /dev/null -m "$ONESHOT_TIMEOUT" -X DELETE "$BASE/put/" || true
    curl -s -o /dev/null -m 60 -X MKCOL "$BASE/put/" || true
    return
  fi
  find "$2/put" -mindepth 1 -delete 2>/dev/null || true
}

restart_server() {  # restart_server NAME DOCROOT
  stop_server
  if [[ $1 == davit-pg ]]; then wake_stores || return 1; else quiet_stores; fi
  start_server "$1" "$2" || { log "$1 failed to restart"; return 1; }
}

# ---------------------------------------------------------------- the run
# Interleaved: each workload runs on every server in turn before the next workload starts, so
# the figures compared in one ratio are taken minutes apart at most (the host's other tenants
# move absolute rates by up to 30 % over a run). Each server gets a fresh process for each
# workload group, so that its peak RSS is that workload's and not memory kept from an earlier
# one (the concurrencies of one workload share a process).
make_template
RATE_WORKLOADS=(get4k propfind0 propfind1_allprop propfind1_prop3 propfind1_win32 put64k)
declare -A ROOT=()
STARTED=()
VERSIONS=()
T0=$SECONDS
for s in "${RUNNABLE[@]}"; do
  root=$(make_docroot "$s")
  if [[ $s == davit-pg ]] && ! load_pg_store "$root"; then
    emit "$s" start 0 none "" "" "" "" "" "" "davit import failed"
    rm -rf -- "$root"
    continue
  fi
  if ! start_server "$s" "$root"; then
    log "$s failed to start: skipped"
    emit "$s" start 0 none "" "" "" "" "" "" "failed to start"
    rm -rf -- "$root"
    continue
  fi
  ROOT[$s]=$root
  STARTED+=("$s")
  VERSIONS+=("$s=$(server_version "$s")")
  log "$s: pid $CURRENT_PID on $BASE ($(server_version "$s"))"
  log "  dir1000w: Win32 properties kept on $(seed_win32) of 1,000 members"
  stop_server
done
for wl in "${RATE_WORKLOADS[@]}"; do
  log "=== $wl"
  for s in "${STARTED[@]}"; do
    restart_server "$s" "${ROOT[$s]}" || continue
    for c in "${CONCS[@]}"; do
      run_rate "$s" "$wl" "$c"
      if [[ $wl == put64k ]]; then clean_puts "$s" "${ROOT[$s]}"; fi
    done
  done
done
for group in run_tree_ops run_depth_inf run_big; do
  log "=== ${group#run_}"
  for s in "${STARTED[@]}"; do
    if restart_server "$s" "${ROOT[$s]}"; then "$group" "$s"; fi
  done
done
stop_server
for s in "${STARTED[@]}"; do rm -rf -- "${ROOT[$s]}"; done
ELAPSED=$((SECONDS - T0))

# ---------------------------------------------------------------- report
CMDLINE="bench/run.sh"
case "$MODE" in quick) CMDLINE+=" --quick" ;; smoke) CMDLINE+=" --smoke" ;; esac
CMDLINE+=" --servers \"${SERVER_LIST[*]}\""
((ACCESS_LOG)) && CMDLINE+=" --access-log"
python3 "$BENCH_DIR/report.py" "$TSV" \
  --mode "$MODE" --duration "$DURATION" --inf-total "$INF_TOTAL" --big-mib "$BIG_MIB" \
  --reps "$REPS" --elapsed "$ELAPSED" --command "$CMDLINE" \
  --machine "$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)" \
  --load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  "${VERSIONS[@]/#/--version=}" >"$OUT"
log "report: $OUT (raw: $TSV), ${ELAPSED}s"
cat "$OUT"
