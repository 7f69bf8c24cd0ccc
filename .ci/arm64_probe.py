"""Runs the arm64 build of mcp-sidecar under qemu-user on loopback and checks what AgentCore
Runtime relies on: /ping, a refusal of an unauthenticated caller, and a relayed tool call.

Usage (from .ci/arm64-check.sh; the Python needs PyJWT + cryptography for the test issuer):
    python .ci/arm64_probe.py --bin BIN --qemu qemu-aarch64 --sysroot /usr/aarch64-linux-gnu \
        [--port 8000]

Two runs, each on 127.0.0.1:PORT (the image itself listens on every interface, port 8000;
these runs stay on loopback):
  1. `mcp-sidecar demo`: the built-in demo upstream with the sidecar in front of it.
     /ping answers {"status":"Healthy"}; tools/call demo___add {a: 2, b: 3} answers 5.
  2. `mcp-sidecar serve` with a JWT authorizer (tests/peers/fixtures/oauth_issuer.py, a real
     issuer on loopback) in front of `mcp-sidecar demo-upstream` (also arm64, under qemu).
     /ping stays open; a call without a token gets 401 with the RFC 9728 pointer; a malformed
     token gets 401 invalid_token; a token from the issuer's client-credentials grant gets the
     tool's answer (so RS256 verification runs in the arm64 aws-lc build).
Start-up time is the time from spawning qemu to the binary's `listening` line. Every process
is stopped by its PID (SIGTERM, then SIGKILL after 5 s). Prints `N passed, M failed` last and
exits non-zero when a check fails or a process does not start.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
ISSUER_CLIENT = ("arm64-check", "arm64-check-secret", "mcp/invoke")


class Failed(Exception):
    """A process that did not start, or another reason the run cannot go on."""


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed += 1
            print(f"  FAIL  {name}: {detail}")
        return ok


class Child:
    """A process whose stdout announces `listening URL`; stderr goes to a log file."""

    def __init__(self, label: str, argv: list[str], log_dir: Path) -> None:
        self.label = label
        self.log_path = log_dir / f"{label}.log"
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT)
        self.url = ""
        self.startup_ms = 0.0
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._first_listening_line()))
        reader.daemon = True
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0]:
            self.stop()
            raise Failed(f"{label} did not print its listening line within {START_TIMEOUT:.0f} s; "
                         f"its log:\n{self.log_path.read_text(errors='replace')[-2000:]}")
        self.url = line[0]

    def _first_listening_line(self) -> str:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            text = raw.decode(errors="replace").strip()
            if text.startswith("listening "):
                self.startup_ms = (time.monotonic() - self.started) * 1000
                # Keep draining stdout so the child never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return text.removeprefix("listening ")
        return ""

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http(method: str, url: str, body: object | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"} if body is not None else {}
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_status(url: str, want: int, seconds: float) -> float | None:
    """Milliseconds until GET url answered `want`, or None if it never did in time."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if http("GET", url)[0] == want:
                return (time.monotonic() - started) * 1000
        except OSError:
            pass
        time.sleep(0.05)
    return None


def base_of(mcp_url: str) -> str:
    return mcp_url.removesuffix("/mcp")


def add_call(request_id: int) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "demo___add", "arguments": {"a": 2, "b": 3}}}


def check_add_answer(checks: Checks, name: str, status: int, body: bytes) -> None:
    try:
        result = json.loads(body)["result"]
        ok = (status == 200 and result["content"] == [{"type": "text", "text": "5"}]
              and result["structuredContent"] == {"sum": 5.0})
    except (ValueError, KeyError, TypeError):
        ok = False
    checks.check(name, ok, f"HTTP {status}, body {body[:300]!r}")


def check_ping(checks: Checks, base: str, label: str) -> None:
    status, _, body = http("GET", base + "/ping")
    try:
        ok = status == 200 and json.loads(body) == {"status": "Healthy"}
    except ValueError:
        ok = False
    checks.check(f"{label}: GET /ping -> 200 {{\"status\":\"Healthy\"}}", ok,
                 f"HTTP {status}, body {body[:200]!r}")


def demo_run(args: argparse.Namespace, qemu: list[str], logs: Path, checks: Checks) -> None:
    print(f"demo: {args.bin} demo --listen 127.0.0.1:{args.port} (under {args.qemu})")
    demo = Child("demo", qemu + ["demo", "--listen", f"127.0.0.1:{args.port}"], logs)
    try:
        base = base_of(demo.url)
        print(f"  start-up under qemu: {demo.startup_ms:.0f} ms to the listening line ({demo.url})")
        check_ping(checks, base, "demo")
        ready_ms = wait_status(base + "/readyz", 200, START_TIMEOUT)
        if checks.check("demo: /readyz -> 200 (the demo upstream's catalog synced)",
                        ready_ms is not None, f"not ready within {START_TIMEOUT:.0f} s"):
            print(f"  catalog synced {ready_ms:.0f} ms after the listening line")
        status, _, body = http("POST", demo.url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        names = []
        try:
            names = [tool["name"] for tool in json.loads(body)["result"]["tools"]]
        except (ValueError, KeyError, TypeError):
            pass
        checks.check("demo: tools/list lists demo___add", status == 200 and "demo___add" in names,
                     f"HTTP {status}, names {names}, body {body[:200]!r}")
        status, _, body = http("POST", demo.url, add_call(2))
        check_add_answer(checks, "demo: tools/call demo___add {a:2,b:3} -> 5", status, body)
    finally:
        demo.stop()


def issuer_token(issuer: str) -> str:
    client_id, secret, _ = ISSUER_CLIENT
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    request = urllib.request.Request(
        issuer + "/oauth2/token", data=b"grant_type=client_credentials",
        headers={"Authorization": "Basic " + basic,
                 "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth_run(args: argparse.Namespace, qemu: list[str], logs: Path, checks: Checks) -> None:
    children: list[Child] = []
    try:
        issuer_port = free_port()
        children.append(Child("issuer", [
            sys.executable, str(ROOT / "tests/peers/fixtures/oauth_issuer.py"),
            "--port", str(issuer_port), "--client", ":".join(ISSUER_CLIENT)], logs))
        issuer = f"http://127.0.0.1:{issuer_port}"
        upstream = Child("demo-upstream", qemu + ["demo-upstream", "--listen", "127.0.0.1:0"], logs)
        children.append(upstream)
        config = logs / "serve-jwt.toml"
        config.write_text(f"""[inbound]
listen = "127.0.0.1:{args.port}"
path = "/mcp"

[[inbound.authorizers]]
discovery_url = "{issuer}/.well-known/openid-configuration"
allowed_clients = ["{ISSUER_CLIENT[0]}"]
allowed_scopes = ["{ISSUER_CLIENT[2]}"]

[[targets]]
name = "demo"
kind = "mcp_server"
url = "{upstream.url}"
""")
        print(f"serve: {args.bin} serve --config {config.name} (JWT authorizer, under {args.qemu})")
        serve = Child("serve-jwt", qemu + ["serve", "--config", str(config)], logs)
        children.append(serve)
        print(f"  start-up under qemu: {serve.startup_ms:.0f} ms to the listening line ({serve.url})")
        base = base_of(serve.url)
        check_ping(checks, base, "serve+jwt")

        status, headers, body = http("POST", serve.url, add_call(3))
        challenge = headers.get("WWW-Authenticate", headers.get("www-authenticate", ""))
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        checks.check("serve+jwt: tools/call without a token -> 401, Bearer resource_metadata, -32001",
                     status == 401 and challenge.startswith("Bearer ")
                     and "resource_metadata=" in challenge and code == -32001,
                     f"HTTP {status}, WWW-Authenticate {challenge!r}, body {body[:200]!r}")

        status, headers, body = http("POST", serve.url, add_call(4),
                                     {"Authorization": "Bearer not-a-jwt"})
        challenge = headers.get("WWW-Authenticate", headers.get("www-authenticate", ""))
        checks.check("serve+jwt: tools/call with a malformed token -> 401 invalid_token",
                     status == 401 and 'error="invalid_token"' in challenge,
                     f"HTTP {status}, WWW-Authenticate {challenge!r}")

        checks.check("serve+jwt: /readyz -> 200 (the arm64 demo upstream synced)",
                     wait_status(base + "/readyz", 200, START_TIMEOUT) is not None,
                     f"not ready within {START_TIMEOUT:.0f} s")
        token = issuer_token(issuer)
        status, _, body = http("POST", serve.url, add_call(5), {"Authorization": "Bearer " + token})
        check_add_answer(checks, "serve+jwt: tools/call with the issuer's token -> 5", status, body)
    finally:
        for child in reversed(children):
            child.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the aarch64 mcp-sidecar binary")
    ap.add_argument("--qemu", default="qemu-aarch64")
    ap.add_argument("--sysroot", default="/usr/aarch64-linux-gnu",
                    help="where qemu finds the aarch64 dynamic loader and glibc (-L)")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()

    qemu = [args.qemu, "-L", args.sysroot, os.path.abspath(args.bin)]
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="arm64-probe.") as tmp:
        logs = Path(tmp)
        try:
            demo_run(args, qemu, logs, checks)
            auth_run(args, qemu, logs, checks)
        except Failed as error:
            print(f"arm64 probe: {error}")
            checks.failed += 1
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
