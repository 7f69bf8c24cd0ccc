#!/usr/bin/env bash
# Instructions the sidecar executes per relayed `tools/call` (user space), counted by
# valgrind's callgrind: unlike wall-clock figures they do not move when other processes share
# the machine, so they compare two builds of the request path reliably.
#
#   bash bench/instructions.sh [BINARY] [SECONDS]
#
# Starts the demo upstream and a sidecar under callgrind (target pinned to 2025-06-18, the
# client's version; `MODE=auth` adds a JWT authorizer and SigV4 upstream, like the `auth`
# path of `cargo bench --bench proxy`: set ISSUER_DISCOVERY and TOKEN for that), warms up,
# zeroes the counters, drives sequential calls with wrk on one connection for SECONDS,
# dumps the counters and prints instructions per call and the top functions (inclusive).
# Needs valgrind and wrk (Debian packages). Everything listens on 127.0.0.1 and is stopped
# by PID at the end.
set -euo pipefail

BIN=${1:-target/release/mcp-sidecar}
SECONDS_TO_RUN=${2:-20}
MODE=${MODE:-plain}
WORK=$(mktemp -d /tmp/mcp-sidecar-instructions.XXXXXX)
cleanup() {
    for f in "$WORK"/*.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts "$@" with stdout in $WORK/$name.out and its PID in $WORK/$name.pid; waits for its
# `listening URL` line and prints the URL.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    echo $! >"$WORK/$name.pid"
    for _ in $(seq 1 600); do
        if grep -q '^listening ' "$WORK/$name.out"; then
            sed -n 's/^listening //p' "$WORK/$name.out" | head -1
            return
        fi
        sleep 0.1
    done
    echo "$name did not start; see $WORK/$name.err" >&2
    exit 1
}

UPSTREAM=$(start upstream "$BIN" demo-upstream --listen 127.0.0.1:0 --stateless)
EXTRA_TARGET=""
INBOUND=""
HEADER=""
if [ "$MODE" = auth ]; then
    : "${ISSUER_DISCOVERY:?set ISSUER_DISCOVERY (an OIDC discovery URL on 127.0.0.1)}"
    : "${TOKEN:?set TOKEN (a bearer token that issuer signed)}"
    EXTRA_TARGET='credential_provider = { type = "sigv4", service = "aws-mcp", region = "us-east-1" }'
    INBOUND="[[inbound.authorizers]]
discovery_url = \"$ISSUER_DISCOVERY\""
    HEADER="wrk.headers[\"Authorization\"] = \"Bearer $TOKEN\""
    export AWS_ACCESS_KEY_ID=AKIDBENCHMARKONLY01 AWS_SECRET_ACCESS_KEY=bench/secret/not+a+real+key \
        AWS_SESSION_TOKEN=bench-session-token AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
fi
cat >"$WORK/sidecar.toml" <<EOF
[inbound]
listen = "127.0.0.1:0"
$INBOUND

[[targets]]
name = "demo"
kind = "mcp_server"
url = "$UPSTREAM"
protocol_version = "2025-06-18"
$EXTRA_TARGET
EOF
cat >"$WORK/call.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo___echo","arguments":{"text":"hello"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
$HEADER
function done(summary, latency, requests)
  io.write(string.format("CALLS %d ERRORS %d\n", summary.requests,
    summary.errors.status + summary.errors.read + summary.errors.connect))
end
EOF

SIDECAR=$(start sidecar valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" serve --config "$WORK/sidecar.toml")
SIDECAR_PID=$(cat "$WORK/sidecar.pid")
# Synced once a call succeeds.
for _ in $(seq 1 600); do
    if curl -sf -H 'content-type: application/json' -H 'mcp-protocol-version: 2025-06-18' \
        ${TOKEN:+-H "authorization: Bearer $TOKEN"} \
        -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo___echo","arguments":{"text":"hello"}}}' \
        "$SIDECAR" | grep -q hello; then
        break
    fi
    sleep 0.2
done
wrk -t1 -c1 -d5s -s "$WORK/call.lua" "$SIDECAR" >/dev/null
callgrind_control -z "$SIDECAR_PID" >/dev/null
RESULT=$(wrk -t1 -c1 -d"${SECONDS_TO_RUN}s" -s "$WORK/call.lua" "$SIDECAR")
callgrind_control -d "$SIDECAR_PID" >/dev/null
CALLS=$(sed -n 's/^CALLS \([0-9]*\) ERRORS.*/\1/p' <<<"$RESULT")
ERRORS=$(sed -n 's/^CALLS [0-9]* ERRORS \([0-9]*\)/\1/p' <<<"$RESULT")
DUMP=$(ls -t "$WORK"/cg.out.* | head -1)
TOTAL=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$DUMP")
echo "mode $MODE: $CALLS calls ($ERRORS errors), $TOTAL instructions: $((TOTAL / CALLS)) per call"
cp "$DUMP" "${KEEP:-/tmp}/callgrind.$MODE.out" && echo "profile kept in ${KEEP:-/tmp}/callgrind.$MODE.out"
