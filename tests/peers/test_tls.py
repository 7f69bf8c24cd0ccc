"""Upstreams over HTTPS: the sidecar checks their certificates against the system's roots
(`SSL_CERT_FILE` / `SSL_CERT_DIR` when set, as rustls-native-certs reads them), loaded once
per process on the first certificate to check (src/tls.rs). The upstream is the demo server
behind a Python `ssl` front (fixtures/tls_front.py) whose certificate comes from a test CA
made here with `cryptography`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import FIXTURES, Proc, RawMcp, base_of, sidecar_bin, sidecar_config, spawn, start_sidecar, target_toml, wait_ready


def wait_url(proc: Proc, scheme: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith(f"listening {scheme}://"):
                return line.split(" ", 1)[1].strip()
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited\n{proc.logs()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not start\n{proc.logs()}")


def make_ca_and_leaf(workdir: Path) -> tuple[Path, Path, Path]:
    """A test CA and a leaf for DNS name `localhost` only (not for the IP 127.0.0.1)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-sidecar test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = workdir / "ca.pem", workdir / "leaf.pem", workdir / "leaf.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    assert ipaddress.ip_address("127.0.0.1") not in leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.IPAddress)
    return ca_pem, cert_pem, key_pem


@pytest.fixture(scope="module")
def https_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(port of the TLS front, the CA's PEM file)."""
    workdir = tmp_path_factory.mktemp("tls")
    logdir = workdir / "logs"
    ca, cert, key = make_ca_and_leaf(workdir)
    demo = spawn("demo-upstream", [str(sidecar_bin()), "demo-upstream", "--listen", "127.0.0.1:0", "--stateless"], logdir)
    front = None
    try:
        upstream = base_of(wait_url(demo, "http"))
        front = spawn("tls-front", [sys.executable, str(FIXTURES / "tls_front.py"), "--cert", str(cert), "--key", str(key), "--upstream", upstream], logdir)
        port = int(wait_url(front, "https").rsplit(":", 1)[1])
        yield port, ca
    finally:
        if front is not None:
            front.stop()
        demo.stop()


def last_error(proc: Proc, target: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(base_of(proc.url) + "/readyz", timeout=5).json()
        for t in body.get("targets", []):
            if t.get("name") == target and t.get("last_error"):
                return t["last_error"]
        time.sleep(0.2)
    raise AssertionError(f"target {target} recorded no error\n{proc.logs()}")


def test_an_https_upstream_signed_by_a_trusted_ca_syncs_and_answers(https_upstream, tmp_path: Path) -> None:
    port, ca = https_upstream
    config = sidecar_config([target_toml("secure", f"https://localhost:{port}/mcp")])
    proc = start_sidecar(tmp_path, config, env={"SSL_CERT_FILE": str(ca)})
    try:
        wait_ready(proc, ["secure"])
        with RawMcp(proc.url) as mcp:
            mcp.initialize()
            result = mcp.call("secure___add", {"a": 2, "b": 3})
        assert result["result"]["content"][0]["text"] == "5", result
    finally:
        proc.stop()


def test_an_https_upstream_from_an_unknown_ca_is_refused_and_named(https_upstream, tmp_path: Path) -> None:
    """Without the test CA among the roots, the certificate must not be accepted."""
    port, _ = https_upstream
    config = sidecar_config([target_toml("secure", f"https://localhost:{port}/mcp")])
    proc = start_sidecar(tmp_path, config)
    try:
        error = last_error(proc, "secure")
        assert "certificate" in error.lower() and "UnknownIssuer" in error, error
        tools = httpx.post(proc.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=10).json()
        assert not any(t["name"].startswith("secure___") for t in tools["result"]["tools"]), tools
    finally:
        proc.stop()


def test_a_certificate_for_another_name_is_refused(https_upstream, tmp_path: Path) -> None:
    """The CA is trusted, but the certificate names `localhost`, not 127.0.0.1."""
    port, ca = https_upstream
    config = sidecar_config([target_toml("secure", f"https://127.0.0.1:{port}/mcp")])
    proc = start_sidecar(tmp_path, config, env={"SSL_CERT_FILE": str(ca)})
    try:
        error = last_error(proc, "secure")
        assert "not valid for name" in error and "127.0.0.1" in error, error
    finally:
        proc.stop()
