#!/usr/bin/env bash
# scripts/tutorial-batch-test.sh — the batch examples every 207 tutorial shows, run as written
# against a fresh `davit serve`: `curl -i -X POST -d @batch-data.xml URL/batch-operation`
# (application/x-www-form-urlencoded), PHP curl with CURLOPT_POSTFIELDS = the file's contents
# (the same), and Python `requests.post(url, data=open(..., 'rb'))` (no Content-Type). Each
# answer must be a 207 whose responses carry the expected statuses, and the files must be there.
#
# As root on Debian (installs php-cli, php-curl and the Python requests package when missing):
#     bash scripts/tutorial-batch-test.sh
# DAVIT_BIN=path/to/davit uses that binary instead of building target/release/davit.
# Last line: "N passed, M failed". Exit 0 only when nothing failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "tutorial-batch-test: need root (or sudo) for: $*" >&2; return 1
  fi
}

missing=()
command -v php >/dev/null || missing+=(php-cli)
if ! command -v php >/dev/null || ! php -m 2>/dev/null | grep -qx curl; then missing+=(php-curl); fi
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! python3 -c 'import requests' 2>/dev/null; then
  echo "installing requests (pip)"
  python3 -m pip install -q requests
fi

if [[ -z ${DAVIT_BIN:-} ]]; then
  cargo build --release -q -p davit
  DAVIT_BIN="$ROOT/target/release/davit"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/davit-tutorial.XXXXXX")"
PID=""
cleanup() {
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf -- "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/share"
"$DAVIT_BIN" serve "$WORK/share" --listen "127.0.0.1:$PORT" --workers 1 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/batch-operation"

# One document per client, each in its own collection: a new collection, a file in it, a copy
# of that file, and the DELETE of something that is not there (a per-operation 404).
batch_doc() { # DIR
  cat <<EOF
<?xml version="1.0" encoding="utf-8"?>
<b:batch xmlns:b="urn:davit:batch">
  <b:mkcol href="$1/"/>
  <b:put href="$1/report.txt" content-type="text/plain">quarterly numbers</b:put>
  <b:copy href="$1/report.txt" destination="$1/report-copy.txt"/>
  <b:delete href="$1/no-such-file.txt"/>
</b:batch>
EOF
}

PASSED=0
FAILED=0
check() { # NAME DIR ANSWER-FILE — the answer is "STATUS\nBODY"
  local name="$1" dir="$2" answer="$3"
  if python3 - "$answer" "$WORK/share/$dir" <<'PY'
import os, sys, xml.etree.ElementTree as ET
answer, folder = sys.argv[1], sys.argv[2]
text = open(answer, encoding="utf-8").read()
code, _, body = text.partition("\n")
assert code.strip() == "207", f"HTTP status {code.strip()!r}, body: {body[:300]!r}"
root = ET.fromstring(body.encode())
assert root.tag == "{DAV:}multistatus", root.tag
got = [int(r.find("{DAV:}status").text.split()[1]) for r in root.findall("{DAV:}response")]
assert got == [201, 201, 201, 404], f"statuses {got}"
for name in ("report.txt", "report-copy.txt"):
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        assert f.read() == "quarterly numbers", name
PY
  then
    PASSED=$((PASSED + 1)); echo "  ok    $name"
  else
    FAILED=$((FAILED + 1)); echo "  FAIL  $name"; sed 's/^/        /' "$answer"
  fi
}

# curl, exactly as the tutorials write it (-d sends application/x-www-form-urlencoded).
(cd "$WORK" && batch_doc from-curl >batch-data.xml &&
  curl -s -i -X POST -d @batch-data.xml "$URL" >curl.raw) || true
python3 - "$WORK/curl.raw" "$WORK/curl.answer" <<'PY'
import sys
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
head, _, body = raw.partition("\r\n\r\n")
status = head.split("\r\n")[0].split()[1] if head else "none"
open(sys.argv[2], "w", encoding="utf-8").write(status + "\n" + body)
PY
check "curl -i -X POST -d @batch-data.xml" from-curl "$WORK/curl.answer"

# PHP: CURLOPT_POSTFIELDS with the file's contents.
batch_doc from-php >"$WORK/batch-php.xml"
php -r '
$ch = curl_init($argv[1]);
curl_setopt($ch, CURLOPT_POST, true);
curl_setopt($ch, CURLOPT_POSTFIELDS, file_get_contents($argv[2]));
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
$body = curl_exec($ch);
echo curl_getinfo($ch, CURLINFO_HTTP_CODE), "\n", $body;
' "$URL" "$WORK/batch-php.xml" >"$WORK/php.answer" || true
check "PHP curl CURLOPT_POSTFIELDS" from-php "$WORK/php.answer"

# Python requests: data=open(..., "rb"), no headers.
batch_doc from-python >"$WORK/batch-python.xml"
python3 - "$URL" "$WORK/batch-python.xml" >"$WORK/python.answer" <<'PY' || true
import sys, requests
with open(sys.argv[2], "rb") as f:
    r = requests.post(sys.argv[1], data=f)
sys.stdout.write(f"{r.status_code}\n{r.text}")
PY
check "Python requests.post(url, data=open(...))" from-python "$WORK/python.answer"

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
