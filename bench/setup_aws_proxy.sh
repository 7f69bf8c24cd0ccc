#!/usr/bin/env bash
# Installs the peer the SigV4 benchmark compares with (idempotent):
#   .venv-aws-proxy   mcp-proxy-for-aws (pinned) and, with it, the Python MCP SDK that drives
#                     all three paths of bench/sigv4_peer.py.
# Not needed by the tests; `cargo bench --bench sigv4` reports the peer part as skipped without it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
DIR=.venv-aws-proxy
REQ=("mcp-proxy-for-aws==1.7.0")
stamp="$DIR/.sidecar-bench-stamp"
want="$(printf '%s\n' "${REQ[@]}")"
if [[ -x "$DIR/bin/mcp-proxy-for-aws" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "setup_aws_proxy: $DIR up to date"
  exit 0
fi
[[ -x "$DIR/bin/python" ]] || "$PY" -m venv "$DIR"
"$DIR/bin/python" -m pip install --disable-pip-version-check --quiet --no-input "${REQ[@]}"
printf '%s\n' "$want" >"$stamp"
"$DIR/bin/mcp-proxy-for-aws" --help >/dev/null
echo "setup_aws_proxy: ok ($("$DIR/bin/python" -c 'import importlib.metadata as m; print("mcp-proxy-for-aws", m.version("mcp-proxy-for-aws"), "mcp", m.version("mcp"))'))"
