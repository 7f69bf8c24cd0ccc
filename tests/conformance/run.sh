#!/usr/bin/env bash
# The MCP conformance suite (@modelcontextprotocol/conformance, server scenarios) against
# mcp-sidecar:
#   1. starts the fixture upstream (fixture_server.py: every test_* tool, prompt and resource
#      the scenarios call) and runs the suite against it directly: every scenario must pass,
#      so a failure further on is the sidecar's, not the fixture's;
#   2. starts target/debug/mcp-sidecar in front of it (tools not prefixed, so the scenarios
#      find their bare test_* names) and runs the suite through the sidecar;
#   3. compares the failing scenarios with expected-failures.txt.
# Exits non-zero when a scenario fails that is not listed, when a listed one passes (remove it
# from the list), or when the fixture alone does not pass everything. Prints the suite's
# `Total: N passed, M failed` line for each run, the sidecar's last.
#
# Needs `bash tests/setup.sh` (the .venv with the Python MCP SDK 1.x, and node_modules here)
# and `cargo build`. Servers listen on 127.0.0.1 only and are stopped by PID.
#
# Environment: SIDECAR_BIN (default target/debug/mcp-sidecar), PYTHON (default .venv/bin/python),
# CONFORMANCE_TIMEOUT (seconds per suite run, default 240), CONFORMANCE_SUITE (active, all or
# pending; default all: the 30 active scenarios plus the 2 pending ones, json-schema-2020-12
# and server-sse-polling), CONFORMANCE_KEEP=1 keeps the work directory (logs, checks.json).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

SIDECAR_BIN="${SIDECAR_BIN:-target/debug/mcp-sidecar}"
PYTHON="${PYTHON:-.venv/bin/python}"
SUITE_TIMEOUT="${CONFORMANCE_TIMEOUT:-240}"
SUITE="${CONFORMANCE_SUITE:-all}"
CLI="$HERE/node_modules/@modelcontextprotocol/conformance/dist/index.js"

for need in "$SIDECAR_BIN" "$PYTHON" "$CLI"; do
  if [[ ! -e "$need" ]]; then
    echo "conformance: $need is missing (run bash tests/setup.sh and cargo build)" >&2
    exit 2
  fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sidecar-conformance.XXXXXX")"
pids=()

stop() { # pid...: SIGTERM, up to 5 s to exit, then SIGKILL
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

status=1
keep=0
cleanup() {
  stop "${pids[@]}"
  if [[ "${CONFORMANCE_KEEP:-0}" == 1 || $status -ne 0 ]]; then
    [[ $keep == 1 ]] || echo "conformance: logs and results kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port for the fixture (it needs one up front; the sidecar takes port 0).
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds for an HTTP answer from URL $1 with status $3 (0: any status).
wait_http() {
  "$PYTHON" - "$1" "$2" "$3" <<'EOF'
import sys, time, urllib.error, urllib.request
url, deadline, want = sys.argv[1], time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
while time.monotonic() < deadline:
    try:
        code = urllib.request.urlopen(url, timeout=2).status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = None
    if code is not None and (want == 0 or code == want):
        sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
EOF
}

# Runs the suite against URL $1; label $2 names its output files.
# Starts a sidecar with config $1 (stdout and log under $WORK/$2.*) and sets started_url to
# its MCP URL once it listens ("" if it did not start). Not called in $(...): the PID must
# reach this shell's pids for cleanup.
start_sidecar() {
  local config="$1" name="$2"
  "$SIDECAR_BIN" serve --config "$config" >"$WORK/$name.stdout" 2>"$WORK/$name.log" &
  pids+=($!)
  started_url=""
  for _ in $(seq 100); do
    started_url="$(sed -n 's/^listening //p' "$WORK/$name.stdout" | head -n1)"
    [[ -n "$started_url" ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
}

run_suite() { # url label [bearer token]
  local url="$1" label="$2" bearer="${3:-}"
  echo "conformance: $SUITE suite against $label ($url)"
  CONFORMANCE_BEARER="$bearer" timeout --kill-after=10 "$SUITE_TIMEOUT" \
    node --require "$HERE/bearer-preload.cjs" "$CLI" server --url "$url" --suite "$SUITE" \
    -o "$WORK/$label" >"$WORK/$label.out" 2>&1
  local rc=$?
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "conformance: the $label run did not finish within ${SUITE_TIMEOUT}s" >&2
  fi
}

# 1. The fixture alone.
port="$(free_port)"
"$PYTHON" "$HERE/fixture_server.py" --port "$port" >"$WORK/fixture.log" 2>&1 &
pids+=($!)
fixture_url="http://127.0.0.1:$port/mcp"
# Any HTTP answer on the MCP path means it is up (a bare GET gets a 4xx).
if ! wait_http "$fixture_url" 30 0; then
  echo "conformance: the fixture did not start; its log:" >&2
  cat "$WORK/fixture.log" >&2
  exit 2
fi

run_suite "$fixture_url" direct
echo "conformance: fixture alone (every scenario must pass):"
"$PYTHON" "$HERE/results.py" "$WORK/direct.out" "$WORK/direct"
direct_rc=$?

# 2. Through the sidecar.
cat >"$WORK/sidecar.toml" <<EOF
[inbound]
listen = "127.0.0.1:0"

[[targets]]
name = "conformance"
kind = "mcp_server"
url = "$fixture_url"
prefix_tools = false
request_timeout_ms = 20000
EOF
start_sidecar "$WORK/sidecar.toml" sidecar-process
sidecar_url="$started_url"
if [[ -z "$sidecar_url" ]]; then
  echo "conformance: the sidecar did not start; its log:" >&2
  cat "$WORK/sidecar-process.log" >&2
  exit 2
fi
# /readyz answers 200 once the fixture's catalog is synced.
if ! wait_http "${sidecar_url%/mcp}/readyz" 30 200; then
  echo "conformance: the sidecar never synced the fixture; its log:" >&2
  tail -n 20 "$WORK/sidecar-process.log" >&2
  exit 2
fi

run_suite "$sidecar_url" sidecar
echo "conformance: through mcp-sidecar (compared with tests/conformance/expected-failures.txt):"
"$PYTHON" "$HERE/results.py" "$WORK/sidecar.out" "$WORK/sidecar" "$HERE/expected-failures.txt"
sidecar_rc=$?

# The same scenarios with inbound auth on: a real issuer, a token from the client-credentials
# grant, and a sidecar that requires it (the token reaches every request the suite makes through
# bearer-preload.cjs). The results must match the unauthenticated run's expectations.
issuer_port="$(free_port)"
"$PYTHON" "$ROOT/tests/peers/fixtures/oauth_issuer.py" --port "$issuer_port" \
  --client "conformance:conformance-secret:mcp/invoke" >"$WORK/issuer.out" 2>"$WORK/issuer.log" &
pids+=($!)
issuer="http://127.0.0.1:$issuer_port"
auth_rc=1
if wait_http "$issuer/.well-known/openid-configuration" 30 200; then
  token="$("$PYTHON" - "$issuer" <<'PY'
import base64, json, sys, urllib.request
basic = base64.b64encode(b"conformance:conformance-secret").decode()
request = urllib.request.Request(sys.argv[1] + "/oauth2/token", data=b"grant_type=client_credentials",
                                 headers={"Authorization": "Basic " + basic,
                                          "Content-Type": "application/x-www-form-urlencoded"})
print(json.load(urllib.request.urlopen(request, timeout=10))["access_token"])
PY
)"
  cat >"$WORK/sidecar-auth.toml" <<EOF
[inbound]
listen = "127.0.0.1:0"
[[inbound.authorizers]]
discovery_url = "$issuer/.well-known/openid-configuration"
allowed_clients = ["conformance"]
allowed_scopes = ["mcp/invoke"]

[[targets]]
name = "conformance"
kind = "mcp_server"
url = "$fixture_url"
prefix_tools = false
request_timeout_ms = 20000
EOF
  start_sidecar "$WORK/sidecar-auth.toml" sidecar-auth-process
  auth_url="$started_url"
  if [[ -n "$token" && -n "$auth_url" ]] && wait_http "${auth_url%/mcp}/readyz" 30 200; then
    run_suite "$auth_url" sidecar-auth "$token"
    echo "conformance: through mcp-sidecar with JWT auth on (same expectations):"
    "$PYTHON" "$HERE/results.py" "$WORK/sidecar-auth.out" "$WORK/sidecar-auth" "$HERE/expected-failures.txt"
    auth_rc=$?
  else
    echo "conformance: the authenticated sidecar did not start; its log:" >&2
    tail -n 20 "$WORK/sidecar-auth-process.log" >&2
  fi
else
  echo "conformance: the OAuth issuer did not start" >&2
fi
if [[ $auth_rc -ne 0 ]]; then
  echo "conformance: FAILED: with auth on, the results differ from expected-failures.txt"
fi

if [[ $direct_rc -ne 0 ]]; then
  echo "conformance: FAILED: the fixture alone does not pass every scenario (see above)"
fi
if [[ $sidecar_rc -ne 0 ]]; then
  echo "conformance: FAILED: the results through the sidecar differ from expected-failures.txt"
fi
if [[ $direct_rc -eq 0 && $sidecar_rc -eq 0 && $auth_rc -eq 0 ]]; then
  status=0
fi
if [[ "${CONFORMANCE_KEEP:-0}" == 1 || $status -ne 0 ]]; then
  echo "conformance: logs and results kept in $WORK"
  keep=1
fi
total() { grep -m1 -E '^Total: [0-9]+ passed, [0-9]+ failed$' "$WORK/$1.out" || echo "Total: none (no summary)"; }
echo "conformance: fixture alone: $(total direct)"
echo "conformance: through mcp-sidecar with JWT auth: $(total sidecar-auth)"
echo "conformance: through mcp-sidecar:"
total sidecar
exit "$status"
