# syntax=docker/dockerfile:1
#
# mcp-sidecar container image.
#
# Build for both architectures:
#   docker buildx build --platform linux/arm64,linux/amd64 -t mcp-sidecar .
# The builder stage runs on the build machine's own platform ($BUILDPLATFORM)
# and compiles for $TARGETARCH with .ci/cross-build.sh: natively for the same
# architecture, otherwise as a cross-compile with Debian's cross gcc and the
# target's Rust standard library (no rustc under emulation). The same script
# builds the arm64 binary that .ci/arm64-check.sh runs under qemu-aarch64.
#
# Run (one upstream, zero-file mode):
#   docker run --rm -p 8000:8000 \
#     -e MCP_SIDECAR_UPSTREAM_URL=http://upstream:3001/mcp \
#     -e MCP_SIDECAR_INBOUND_AUTH=none \
#     -e MCP_SIDECAR_ALLOWED_HOSTS=sidecar.example.internal \
#     mcp-sidecar
#
# The image listens on 0.0.0.0:8000 at /mcp (the port and path AgentCore
# Runtime expects). The binary refuses to listen beyond loopback without
# inbound authentication unless told so explicitly, and the image does NOT say
# so for you. Either let the sidecar check bearer tokens itself
# (MCP_SIDECAR_JWT_DISCOVERY_URL plus MCP_SIDECAR_JWT_ALLOWED_CLIENTS /
# _AUDIENCES / _SCOPES, or [[inbound.authorizers]] in a config file), or, when
# something in front of the container already authenticates callers (AgentCore
# Runtime's own JWT authorizer or IAM, a private network), set
# MCP_SIDECAR_INBOUND_AUTH=none yourself: `-e MCP_SIDECAR_INBOUND_AUTH=none`
# with `docker run`, or in the agent runtime's environment variables
# (environmentVariables when you create or update an AgentCore Runtime).
# Requests whose Host header is not a loopback name get 403 unless it is listed
# in MCP_SIDECAR_ALLOWED_HOSTS (comma list; "*" accepts any Host, reasonable
# only behind a platform that already routes by host, such as Runtime). A
# config file can be mounted and selected with MCP_SIDECAR_CONFIG=/path/file.toml.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build stage -----------------------------------------------------------
# On the build platform: the foreign architecture is cross-compiled (see top).
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src

# bench/ comes along because Cargo.toml declares a bench target there (only the
# binary is built).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
COPY .ci/cross-build.sh ./.ci/cross-build.sh

# Cache mounts are keyed per target architecture (BuildKit does not separate
# them by platform on its own), so both platforms of a multi-platform build can
# run in parallel. The target dir lives in a cache mount, so cross-build.sh
# copies the binary out of it to /out inside the same RUN. For a foreign
# TARGETARCH it installs gcc-<triplet> and libc6-dev-<arch>-cross (Debian, same
# release as the runtime image, so the same glibc) and `rustup target add`s the
# target's standard library.
ARG TARGETARCH
RUN --mount=type=cache,id=mcp-sidecar-cargo-registry-${TARGETARCH},target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=mcp-sidecar-target-${TARGETARCH},target=/src/target,sharing=locked \
    bash .ci/cross-build.sh "${TARGETARCH}" /out/mcp-sidecar

# ---- runtime stage ---------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# reqwest (rustls) trusts the platform store: take the CA bundle from the
# builder (same Debian release) instead of installing packages here.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

RUN groupadd --system --gid 10001 mcp \
    && useradd --system --uid 10001 --gid mcp --home-dir /home/mcp --create-home \
        --shell /usr/sbin/nologin mcp

COPY --from=builder /out/mcp-sidecar /usr/local/bin/mcp-sidecar
# The search encoder compiled into the binary is derived from all-MiniLM-L6-v2
# (Apache-2.0) and fitted on botocore and WordNet text: their licence and notices
# travel with it.
COPY src/catalog/search/model/README.md src/catalog/search/model/LICENSE-Apache-2.0 \
     src/catalog/search/model/LICENSE-WordNet-3.0 src/catalog/search/model/NOTICE-botocore \
     /usr/share/doc/mcp-sidecar/search-encoder/

ENV MCP_SIDECAR_LISTEN=0.0.0.0:8000 \
    MCP_SIDECAR_STATE_DIR=/home/mcp/state \
    MCP_SIDECAR_PATH=/mcp

USER 10001:10001
WORKDIR /home/mcp
EXPOSE 8000

ENTRYPOINT ["/usr/local/bin/mcp-sidecar"]
CMD ["serve"]
