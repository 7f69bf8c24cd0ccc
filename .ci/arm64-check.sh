#!/usr/bin/env bash
# The arm64 check for AgentCore Runtime (which runs linux/arm64 containers), without Docker:
#   1. installs what it needs: Debian's qemu-user (the cross gcc and the Rust target come
#      through .ci/cross-build.sh) and a small venv (.venv-arm64: PyJWT + cryptography, for
#      the test OAuth issuer);
#   2. cross-compiles the release binary for aarch64 with .ci/cross-build.sh, the recipe the
#      Dockerfile's builder stage runs for `docker buildx build --platform linux/arm64`;
#   3. checks it is an AArch64 ELF (readelf -h);
#   4. runs it under qemu-aarch64 on 127.0.0.1:$ARM64_CHECK_PORT (default 8000, the image's
#      port; tests stay on loopback) and checks /ping, a 401 for a caller without a token and
#      a relayed tools/call (.ci/arm64_probe.py).
# Prints the binary's size, the start-up times under qemu, the probe's `N passed, M failed`
# line, then the wall time of each step. Exits non-zero on any failure.
# Needs root for apt-get when qemu-user or the cross gcc are missing. Not part of .ci/run: a
# cold run costs a full release build for aarch64 (see README, "On AgentCore Runtime").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${ARM64_CHECK_PORT:-8000}"
SYSROOT=/usr/aarch64-linux-gnu
PY_REQ=("pyjwt[crypto]>=2.8,<3") # as in tests/setup.sh

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
started="$(now)"

echo "=== arm64: tools ==="
t="$(now)"
if ! command -v qemu-aarch64 >/dev/null; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "arm64-check: qemu-aarch64 is missing; install Debian's qemu-user" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
fi
qemu-aarch64 --version | head -n1
if [[ ! -x .venv-arm64/bin/python ]]; then
  python3 -m venv .venv-arm64
fi
.venv-arm64/bin/python -m pip install --quiet --disable-pip-version-check --no-input "${PY_REQ[@]}"
tools_s="$(secs "$t" "$(now)")"

echo "=== arm64: cross-compile (.ci/cross-build.sh arm64) ==="
t="$(now)"
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
bash .ci/cross-build.sh arm64 2>&1 | tee "$build_log"
bin="$(sed -n 's/^built //p' "$build_log" | tail -n1)"
build_s="$(secs "$t" "$(now)")"
rustc --version
aarch64-linux-gnu-gcc --version | head -n1

echo "=== arm64: the binary ==="
machine="$(readelf -h "$bin" | sed -n 's/^ *Machine: *//p')"
echo "readelf -h: Machine: $machine"
if command -v file >/dev/null; then
  file -b "$bin"
fi
if [[ "$machine" != AArch64 ]]; then
  echo "arm64-check: $bin is not an AArch64 binary (Machine: $machine)" >&2
  exit 1
fi
size="$(stat -c %s "$bin")"
echo "size: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB)"
if [[ ! -d "$SYSROOT" ]]; then
  echo "arm64-check: $SYSROOT (the aarch64 glibc for qemu's -L) is missing" >&2
  exit 1
fi

echo "=== arm64: under qemu-aarch64 on 127.0.0.1:$PORT ==="
t="$(now)"
probe_rc=0
.venv-arm64/bin/python .ci/arm64_probe.py --bin "$bin" --qemu qemu-aarch64 --sysroot "$SYSROOT" \
  --port "$PORT" || probe_rc=$?
probe_s="$(secs "$t" "$(now)")"

echo "=== arm64: wall time ==="
echo "tools ${tools_s} s, cross-compile ${build_s} s, checks under qemu ${probe_s} s," \
  "total $(secs "$started" "$(now)") s"
exit "$probe_rc"
