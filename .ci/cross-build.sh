#!/usr/bin/env bash
# Builds the release binary (mcp-sidecar) for one Linux architecture with the machine's own
# Rust toolchain: natively when ARCH is the machine's architecture, otherwise as a
# cross-compile. One recipe for two callers, so the image and the check build the same way:
#   - the Dockerfile's builder stage, which runs on the build platform ($BUILDPLATFORM) and
#     passes $TARGETARCH: an arm64 image built on an amd64 host is cross-compiled at native
#     speed instead of running rustc under emulation;
#   - .ci/arm64-check.sh, which runs the arm64 binary under qemu-user on this machine.
#
# Usage: bash .ci/cross-build.sh ARCH [OUT]
#   ARCH  arm64 or amd64 (Debian's and Docker's names)
#   OUT   optional: the binary is also installed there (mode 0755)
# Prints `built PATH` as its last line (PATH: the binary under the cargo target directory).
#
# A cross-compile needs, and installs when missing:
#   - the target's Rust standard library: `rustup target add` (from rustup's own distribution
#     server; it must match the installed rustc exactly, so no registry package can stand in);
#   - Debian's cross gcc and the target's glibc (gcc-<triplet>, libc6-dev-<arch>-cross) as the
#     linker and as the C compiler for aws-lc-sys (apt-get, as root). The glibc is the build
#     machine's Debian release's (bookworm: 2.36), the same as the runtime image's.
# Environment: CARGO_TARGET_DIR is honoured (default: target/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

arch="${1:-}"
out="${2:-}"
case "$arch" in
  arm64)
    triple=aarch64-unknown-linux-gnu
    gnu=aarch64-linux-gnu
    packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    ;;
  amd64)
    triple=x86_64-unknown-linux-gnu
    gnu=x86_64-linux-gnu
    packages=(gcc-x86-64-linux-gnu libc6-dev-amd64-cross)
    ;;
  *)
    echo "cross-build: unknown architecture '${arch}' (expected arm64 or amd64)" >&2
    exit 2
    ;;
esac

host_arch="$(dpkg --print-architecture 2>/dev/null || uname -m)"
case "$host_arch" in
  x86_64) host_arch=amd64 ;;
  aarch64) host_arch=arm64 ;;
esac
target_dir="${CARGO_TARGET_DIR:-target}"

if [[ "$host_arch" == "$arch" ]]; then
  echo "cross-build: native $arch build"
  cargo build --release --locked --bin mcp-sidecar
  bin="$target_dir/release/mcp-sidecar"
else
  echo "cross-build: $host_arch -> $arch ($triple)"
  if ! command -v "$gnu-gcc" >/dev/null; then
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
      echo "cross-build: $gnu-gcc is missing; install Debian's ${packages[*]}" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  fi
  if ! rustup target list --installed | grep -qx "$triple"; then
    if ! rustup target add "$triple"; then
      echo "cross-build: 'rustup target add $triple' failed: the $arch standard library for" \
        "$(rustc --version) could not be installed" >&2
      exit 1
    fi
  fi
  # Cargo's and the cc crate's per-target variables (the triple upper-cased, or as is).
  upper="$(tr 'a-z-' 'A-Z_' <<<"$triple")"
  export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
  export "CC_${triple//-/_}=$gnu-gcc"
  export "AR_${triple//-/_}=$gnu-ar"
  cargo build --release --locked --target "$triple" --bin mcp-sidecar
  bin="$target_dir/$triple/release/mcp-sidecar"
fi

if [[ -n "$out" ]]; then
  install -D -m 0755 "$bin" "$out"
fi
echo "built $bin"
