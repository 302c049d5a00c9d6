#!/usr/bin/env bash
# scripts/test.sh — run davit's whole test suite (what CI runs, via .ci/run).
#
# On a fresh Debian machine, as root (or with sudo), from any directory:
#     bash scripts/test.sh
#
# 1. installs what is missing: Debian packages litmus, curl (and a C compiler for the bundled
#    SQLite), rustfmt/clippy via rustup when absent; `apt-get update` runs once, only if needed
# 2. cargo fmt --all -- --check
# 3. cargo clippy --workspace --all-targets -- -D warnings
# 4. cargo test --workspace
# 5. scripts/litmus.sh        (release build of davit + litmus basic copymove props locks http)
# 6. scripts/peers-client-test.sh (the davit client against Apache, nginx, rclone, dufs, WsgiDAV)
# 7. scripts/tutorial-batch-test.sh (the 207 tutorials' batch examples: curl, PHP, Python requests)
# 8. bench/run.sh --smoke      (the benchmark harness still runs)
# 9. scripts/distributed-test.sh (the distributed backend against a private PostgreSQL and a
#                               single-node Garage S3 server; Garage is built in the background
#                               from step 1 when missing)
# 10. scripts/prometheus-test.sh (Debian's prometheus scrapes the admin listener; values read
#                               back through its query API)
# 11. scripts/package-test.sh  (cargo-deb package: dpkg -i, systemd-analyze verify, litmus
#                               basic against /usr/bin/davit with the packaged configuration)
# 12. scripts/browser-test.sh  (the web interface in Debian's headless Chromium, driven by
#                               playwright-core from npm; screenshots in target/browser-screenshots)
# 13. scripts/deny.sh          (cargo-deny: licences, bans, sources; advisories when reachable)
#
# Stops at the first failing step. The last line of output is always the summary
#     N passed, M failed
# where N = tests passed (cargo test + litmus) and M = tests failed (+ litmus warnings; a step
# that fails without failing tests, e.g. fmt, clippy or a build error, counts as 1).
# Exit status 0 only when every step passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PASSED=0
FAILED=0
STEP_NO=0
STEPS=13
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/davit-test.XXXXXX")"
trap 'rm -rf -- "$LOGDIR"' EXIT

summary_and_exit() { # EXIT_CODE
  echo
  echo "$PASSED passed, $FAILED failed"
  exit "$1"
}

step() { # TITLE
  STEP_NO=$((STEP_NO + 1))
  STEP_TITLE="$1"
  STEP_START=$SECONDS
  echo
  echo "==> [$STEP_NO/$STEPS] $STEP_TITLE"
}

step_ok() {
  echo "==> [$STEP_NO/$STEPS] ok: $STEP_TITLE ($((SECONDS - STEP_START))s)"
}

step_failed() { # [FAILED_TESTS] — counts at least one failure for the step
  local n="${1:-0}"
  [[ $n -gt 0 ]] || n=1
  FAILED=$((FAILED + n))
  echo
  echo "==> [$STEP_NO/$STEPS] FAILED: $STEP_TITLE ($((SECONDS - STEP_START))s) — stopping here." >&2
  summary_and_exit 1
}

strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

# ---------------------------------------------------------------- 1. prerequisites
step "prerequisites"
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "test.sh: need root (or sudo) to run: $*" >&2; return 1
  fi
}
if ! command -v cargo >/dev/null; then
  [[ -x $HOME/.cargo/bin/cargo ]] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo not found: install a Rust toolchain (https://rustup.rs, see rust-version in Cargo.toml)" >&2
  step_failed
fi
apt_missing=()
[[ -x /usr/libexec/litmus/basic ]] || apt_missing+=(litmus)
command -v curl >/dev/null || apt_missing+=(curl)
command -v openssl >/dev/null || apt_missing+=(openssl)
command -v cc >/dev/null || apt_missing+=(gcc libc6-dev)
if ((${#apt_missing[@]})); then
  echo "installing ${apt_missing[*]} (apt)"
  if ! command -v apt-get >/dev/null; then
    echo "test.sh: missing ${apt_missing[*]} and no apt-get to install them" >&2
    step_failed
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || step_failed
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${apt_missing[@]}" || step_failed
fi
for comp in rustfmt clippy; do
  sub=fmt; [[ $comp == clippy ]] && sub=clippy
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
      echo "installing rustup component $comp"
      rustup component add "$comp" || step_failed
    else
      echo "test.sh: 'cargo $sub' is not available and there is no rustup to install $comp" >&2
      step_failed
    fi
  fi
done
cargo --version
# A full disk fails later steps in confusing ways (a benchmark's report cut short, a 507):
# say how much room there is, and warn when it is less than a build and the tests need.
free_kib=$(df -Pk "$ROOT" | awk 'NR == 2 { print $4 }')
echo "free disk space: $((free_kib / 1048576)) GiB"
if ((free_kib < 20 * 1048576)); then
  echo "test.sh: warning: less than 20 GiB free; the builds and tests may fill the disk" >&2
fi
# Garage (the S3 server of the distributed backend's tests) takes long to build: start it now,
# in the background, when it is missing; step 9 waits for it.
if ! command -v garage >/dev/null && [[ ! -x $HOME/.cargo/bin/garage ]]; then
  echo "building Garage in the background (scripts/garage.sh install)"
  bash "$ROOT/scripts/garage.sh" install >"$LOGDIR/garage-install.log" 2>&1 &
  GARAGE_INSTALL_PID=$!
fi
step_ok

# ---------------------------------------------------------------- 2. fmt
step "cargo fmt --all -- --check"
cargo fmt --all -- --check || step_failed
step_ok

# ---------------------------------------------------------------- 3. clippy
step "cargo clippy --workspace --all-targets -- -D warnings (and the fuzz targets still compile)"
cargo clippy --workspace --all-targets -- -D warnings || step_failed
# The fuzz crate is outside the workspace; a plain check keeps its targets in step with the
# APIs they call (running them needs cargo-fuzz: scripts/fuzz.sh).
cargo check --manifest-path "$ROOT/fuzz/Cargo.toml" --bins || step_failed
step_ok

# ---------------------------------------------------------------- 4. cargo test
step "cargo test --workspace"
rc=0
cargo test --workspace 2>&1 | tee "$LOGDIR/cargo-test.log" || rc=$?
# e.g. "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ..."
read -r t_pass t_fail < <(strip_ansi <"$LOGDIR/cargo-test.log" | awk '
  /^test result: / {
    for (i = 1; i < NF; i++) {
      if ($(i + 1) ~ /^passed/) p += $i
      if ($(i + 1) ~ /^failed/) f += $i
    }
  }
  END { print p + 0, f + 0 }')
PASSED=$((PASSED + t_pass))
echo "cargo test: $t_pass passed, $t_fail failed"
[[ $rc == 0 ]] || step_failed "$t_fail"
FAILED=$((FAILED + t_fail))
step_ok

# ---------------------------------------------------------------- 5. litmus
step "scripts/litmus.sh"
rc=0
bash "$ROOT/scripts/litmus.sh" 2>&1 | tee "$LOGDIR/litmus.log" || rc=$?
# "litmus total: P passed, F failed, W warnings, S skipped"
total="$(strip_ansi <"$LOGDIR/litmus.log" | grep -E '^litmus total: ' | tail -n 1 || true)"
l_pass=0 l_bad=0
if [[ $total =~ ^litmus\ total:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ warnings ]]; then
  l_pass=${BASH_REMATCH[1]}
  l_bad=$((BASH_REMATCH[2] + BASH_REMATCH[3]))
fi
PASSED=$((PASSED + l_pass))
[[ $rc == 0 ]] || step_failed "$l_bad"
FAILED=$((FAILED + l_bad))
step_ok

# ---------------------------------------------------------------- 6. client vs real servers
step "scripts/peers-client-test.sh (davit client against Apache mod_dav, nginx dav-ext, rclone, dufs and WsgiDAV)"
rc=0
DAVIT_BIN="$ROOT/target/release/davit" bash "$ROOT/scripts/peers-client-test.sh" 2>&1 |
  tee "$LOGDIR/peers.log" || rc=$?
# Its last line is "N passed, M failed".
p_line="$(strip_ansi <"$LOGDIR/peers.log" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1 || true)"
p_pass=0 p_fail=0
if [[ $p_line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  p_pass=${BASH_REMATCH[1]}
  p_fail=${BASH_REMATCH[2]}
fi
PASSED=$((PASSED + p_pass))
[[ $rc == 0 ]] || step_failed "$p_fail"
FAILED=$((FAILED + p_fail))
step_ok

# ---------------------------------------------------------------- 7. tutorial batches
step "scripts/tutorial-batch-test.sh (the batch examples of 207 tutorials with curl, PHP and Python)"
rc=0
DAVIT_BIN="$ROOT/target/release/davit" bash "$ROOT/scripts/tutorial-batch-test.sh" 2>&1 |
  tee "$LOGDIR/tutorial.log" || rc=$?
t_line="$(strip_ansi <"$LOGDIR/tutorial.log" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1 || true)"
b_pass=0 b_fail=0
if [[ $t_line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  b_pass=${BASH_REMATCH[1]}
  b_fail=${BASH_REMATCH[2]}
fi
PASSED=$((PASSED + b_pass))
[[ $rc == 0 ]] || step_failed "$b_fail"
FAILED=$((FAILED + b_fail))
step_ok

# ---------------------------------------------------------------- 8. benchmark smoke run
step "bench/run.sh --smoke (the harness still works; numbers are not checked)"
if [[ -x "$ROOT/bench/run.sh" ]]; then
  bash "$ROOT/bench/run.sh" --smoke || step_failed
else
  echo "bench/run.sh not present: skipped"
fi
step_ok

# ---------------------------------------------------------------- 9-11. real services
run_counted() { # SCRIPT — runs it with the release binary, adds its "N passed, M failed"
  local rc=0 log="$LOGDIR/$(basename "$1").log"
  DAVIT_BIN="$ROOT/target/release/davit" bash "$ROOT/$1" 2>&1 | tee "$log" || rc=$?
  local line n_pass=0 n_fail=0
  line="$(strip_ansi <"$log" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1 || true)"
  if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    n_pass=${BASH_REMATCH[1]}
    n_fail=${BASH_REMATCH[2]}
  fi
  PASSED=$((PASSED + n_pass))
  [[ $rc == 0 ]] || step_failed "$n_fail"
  FAILED=$((FAILED + n_fail))
}
step "scripts/distributed-test.sh (the distributed backend against PostgreSQL and Garage)"
if [[ -n ${GARAGE_INSTALL_PID:-} ]]; then
  echo "waiting for the Garage build started in step 1 (log: $LOGDIR/garage-install.log)"
  wait "$GARAGE_INSTALL_PID" || { tail -n 30 "$LOGDIR/garage-install.log" >&2; step_failed; }
fi
run_counted scripts/distributed-test.sh
step_ok
step "scripts/prometheus-test.sh (a real Prometheus scrapes the admin listener)"
run_counted scripts/prometheus-test.sh
step_ok
step "scripts/package-test.sh (the Debian package, installed and run)"
run_counted scripts/package-test.sh
step_ok

# ---------------------------------------------------------------- 12. web interface
step "scripts/browser-test.sh (the web interface in headless Chromium)"
run_counted scripts/browser-test.sh
step_ok

# ---------------------------------------------------------------- 13. dependency policy
step "scripts/deny.sh (cargo-deny: licences, bans, sources; advisories when reachable)"
bash "$ROOT/scripts/deny.sh" || step_failed
step_ok

echo
echo "all $STEPS steps passed"
summary_and_exit 0
