#!/usr/bin/env bash
# scripts/package-test.sh — build the Debian package, install it on this machine and check it
# the way an operator meets it. Needs root (dpkg).
#
#  1. scripts/package.sh (cargo-deb; installed when missing) and `dpkg -i`
#  2. what it installed: /usr/bin/davit (same version and commit as the build), the
#     configuration (root:davit 0640, and `davit check-config` accepts it), the davit user and
#     its directories, manual pages, completions
#  3. `systemd-analyze verify` on the unit, and its `systemd-analyze security` exposure score
#  4. /usr/bin/davit serve --config /etc/davit/davit.toml as the davit user (what the unit
#     runs; this machine has no systemd to start it), its /readyz, and litmus's basic suite
#  5. `dpkg --purge davit` (the served files and state in /var/lib/davit stay, as on purge)
#
# Last line: "N passed, M failed". Exit status 0 only when all passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PASSED=0
FAILED=0
WORK="$(mktemp -d "${TMPDIR:-/tmp}/davit-package.XXXXXX")"
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf -- "$WORK"
}
trap cleanup EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAILED: $*" >&2; }
check() { # DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@" >"$WORK/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/    /' "$WORK/out" >&2; fi
}
finish() {
  echo
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED == 0 ]]
  exit $?
}

[[ $(id -u) == 0 ]] || { echo "package-test.sh: needs root (dpkg -i)" >&2; fail "run as root"; finish; }

deb="$(bash scripts/package.sh | tail -n 1)"
if [[ ! -f $deb ]]; then
  fail "scripts/package.sh built no package"
  finish
fi
echo "package: $deb ($(du -h "$deb" | cut -f1))"
check "dpkg -i" env DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

check "/usr/bin/davit is the version built" \
  test "$(/usr/bin/davit --version)" = "$("$ROOT/target/release/davit" --version)"
check "the configuration is root:davit 0640" \
  test "$(stat -c '%U:%G %a' /etc/davit/davit.toml)" = "root:davit 640"
check "davit check-config accepts the packaged configuration" \
  /usr/bin/davit check-config /etc/davit/davit.toml
check "the davit user is a system user" \
  bash -c '[[ $(getent passwd davit | cut -d: -f3) -lt 1000 ]]'
check "/var/lib/davit/share belongs to davit" \
  test "$(stat -c %U /var/lib/davit/share)" = davit
check "davit-serve(1) documents --admin-listen" \
  bash -c 'zcat /usr/share/man/man1/davit-serve.1.gz | grep -q "admin\\\\-listen"'
check "the bash completion is valid bash" bash -n /usr/share/bash-completion/completions/davit
check "zsh and fish completions are installed" \
  test -s /usr/share/zsh/vendor-completions/_davit -a -s /usr/share/fish/vendor_completions.d/davit.fish

unit=/usr/lib/systemd/system/davit.service
if command -v systemd-analyze >/dev/null; then
  man_check=()
  command -v man >/dev/null || man_check=(--man=no)
  check "systemd-analyze verify davit.service" \
    bash -c "out=\$(systemd-analyze verify ${man_check[*]} $unit 2>&1); echo \"\$out\"; [[ -z \$out ]]"
  score="$(systemd-analyze security --offline=true "$unit" 2>/dev/null | grep -o 'Overall exposure level.*' || true)"
  echo "systemd-analyze security: ${score:-not available}"
else
  fail "systemd-analyze is not installed"
fi

# The unit's command, as its user, with the packaged configuration.
listen="$(sed -n 's/^listen = "\(.*\)"/\1/p' /etc/davit/davit.toml | head -n 1)"
admin="$(sed -n '/^\[admin\]/,/^\[/s/^listen = "\(.*\)"/\1/p' /etc/davit/davit.toml | head -n 1)"
if curl -s -o /dev/null "http://$listen/" 2>/dev/null; then
  fail "something already listens on $listen: stop it and run again"
  finish
fi
setpriv --reuid=davit --regid=davit --init-groups --inh-caps=-all \
  /usr/bin/davit serve --config /etc/davit/davit.toml 2>"$WORK/davit.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null -X OPTIONS "http://$listen/" && break
  sleep 0.1
done
check "/readyz of the packaged service" \
  bash -c "[[ \$(curl -s -w '%{http_code}' -o /dev/null http://$admin/readyz) == 200 ]]"
rc=0
LITMUS_URL="http://$listen/" bash scripts/litmus.sh basic 2>&1 | tee "$WORK/litmus.log" || rc=$?
total="$(grep -E '^litmus total: ' "$WORK/litmus.log" | tail -n 1)"
if [[ $rc == 0 && $total =~ ^litmus\ total:\ ([0-9]+)\ passed,\ 0\ failed,\ 0\ warnings ]]; then
  PASSED=$((PASSED + BASH_REMATCH[1]))
  echo "ok: litmus basic against the installed package: $total"
else
  fail "litmus basic against the installed package: ${total:-no summary}"
  tail -n 20 "$WORK/davit.log" >&2
fi
check "files written through WebDAV belong to davit" \
  bash -c 'touch_out=$(curl -s -X PUT --data hi http://'"$listen"'/package-test.txt -w "%{http_code}" -o /dev/null); [[ $touch_out == 201 && $(stat -c %U /var/lib/davit/share/package-test.txt) == davit ]]'
rm -f /var/lib/davit/share/package-test.txt
kill "$SERVER_PID" && wait "$SERVER_PID"
SERVER_PID=
check "dpkg --purge davit" env DEBIAN_FRONTEND=noninteractive dpkg --purge davit
check "the configuration is gone after purge" test ! -e /etc/davit/davit.toml
finish
