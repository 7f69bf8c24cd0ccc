#!/usr/bin/env bash
# The project's single test command: bash tests/run.sh
#   1. installs the test peers (tests/setup.sh, idempotent)
#   2. cargo build (debug: target/debug/mcp-sidecar is what the peer tests run)
#   3. cargo test --all-targets
#   4. pytest tests/peers (real MCP peers: Python SDK 1.x/2.x, TypeScript SDK, server-everything, FastMCP)
#   5. the MCP conformance suites through the sidecar (tests/conformance/run.sh: the stable suite
#      and the newest with --requirements 2026-07-28); it fails when a scenario passes against the
#      fixture alone but not through the sidecar and that suite's expected-failures list does not
#      name it, or when a listed one passes
# Exits non-zero if any step fails; the conformance suites' `Total: N passed, M failed` lines come
# before pytest's summary line, which is printed last.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k progress`.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTEST_TIMEOUT="${PYTEST_TIMEOUT:-120}"
failed=()

step() { echo; echo "=== $* ==="; }

step "setup"
if ! bash tests/setup.sh; then
  echo "run.sh: tests/setup.sh failed" >&2
  exit 1
fi

step "cargo build"
if ! cargo build; then
  echo "run.sh: cargo build failed" >&2
  exit 1
fi

step "cargo test --all-targets"
cargo test --all-targets || failed+=("cargo test")

step "conformance (tests/conformance/run.sh)"
# Before pytest: its Total line counts the listed expected failures as "failed".
bash tests/conformance/run.sh || failed+=("conformance")

step "pytest tests/peers"
# The summary line of pytest stays the last thing printed.
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run.sh: FAILED before pytest: ${failed[*]}" >&2
fi
.venv/bin/python -m pytest tests/peers -v -p no:cacheprovider --timeout="$PYTEST_TIMEOUT" "$@"
rc=$?

if [[ $rc -ne 0 ]]; then
  exit "$rc"
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
exit 0
