"""Fixtures that run mcp-sidecar between real MCP peers.

Upstreams: @modelcontextprotocol/server-everything (Node, stateful, SSE), a FastMCP server
(Python SDK 1.x, stateless, JSON) and fixtures/mrtr_server.py (Python SDK 2.x, asks its client
for input: input_required results at 2026-07-28, mid-call requests before). The sidecar binary
is target/debug/mcp-sidecar unless MCP_SIDECAR_BIN says otherwise. Every process listens on
127.0.0.1 only, every wait is bounded, and every process is stopped by its PID in teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"
FIXTURES = PEERS / "fixtures"
NODE_DIR = PEERS / "node"
EVERYTHING_JS = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
FORCE_LOOPBACK = NODE_DIR / "force-loopback.cjs"
VENV_MCP2_PY = ROOT / ".venv-mcp2" / "bin" / "python"

START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 65536

ACCEPT_BOTH = "application/json, text/event-stream"
PROTOCOL = "2025-06-18"


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sidecar_bin() -> Path:
    env = os.environ.get("MCP_SIDECAR_BIN")
    path = Path(env) if env else ROOT / "target" / "debug" / "mcp-sidecar"
    if not path.is_file():
        pytest.fail(f"sidecar binary not found at {path}: run `cargo build` (or set MCP_SIDECAR_BIN)")
    return path


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    port: int | None = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def logs(self, limit: int = 4000) -> str:
        out = []
        for label, p in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                text = p.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            out.append(f"--- {self.name} {label} (last {limit} chars) ---\n{text[-limit:]}")
        return "\n".join(out)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by PID, then SIGKILL by PID if it does not exit in time."""
        if self.popen.poll() is not None:
            return
        try:
            self.popen.send_signal(signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=timeout)
        except ProcessLookupError:
            pass


def spawn(name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Proc:
    logdir.mkdir(parents=True, exist_ok=True)
    stamp = f"{name}-{time.monotonic_ns()}"
    out_p, err_p = logdir / f"{stamp}.out", logdir / f"{stamp}.err"
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(out_p, "wb") as out_f, open(err_p, "wb") as err_f:
        popen = subprocess.Popen(
            argv, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL, cwd=cwd, env=full_env
        )
    return Proc(name=name, popen=popen, stdout_path=out_p, stderr_path=err_p)


def wait_for_port(proc: Proc, port: int, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before listening\n{proc.logs()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{proc.name} did not listen on 127.0.0.1:{port} within {timeout}s\n{proc.logs()}")


def start_everything(logdir: Path, port: int | None = None) -> Proc:
    if not EVERYTHING_JS.is_file():
        pytest.fail(f"{EVERYTHING_JS} missing: run `bash tests/setup.sh`")
    port = port or free_port()
    proc = spawn(
        "server-everything",
        ["node", "--require", str(FORCE_LOOPBACK), str(EVERYTHING_JS), "streamableHttp"],
        logdir,
        env={"PORT": str(port)},
        cwd=NODE_DIR,
    )
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}/mcp"
    return proc


def start_fastmcp(logdir: Path, port: int | None = None) -> Proc:
    port = port or free_port()
    proc = spawn("fastmcp", [sys.executable, str(FIXTURES / "fastmcp_server.py"), "--port", str(port)], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}/mcp"
    return proc


def start_mrtr(logdir: Path, port: int | None = None) -> Proc:
    """fixtures/mrtr_server.py (Python SDK 2.x): tools that ask the client for input, through
    input_required results at 2026-07-28 and mid-call requests before it."""
    if not VENV_MCP2_PY.is_file():
        pytest.fail(f"{VENV_MCP2_PY} missing: run `bash tests/setup.sh`")
    port = port or free_port()
    proc = spawn("mrtr", [str(VENV_MCP2_PY), str(FIXTURES / "mrtr_server.py"), "--port", str(port)], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}/mcp"
    return proc


def wait_for_listening_line(proc: Proc, timeout: float = START_TIMEOUT_S) -> str:
    """The sidecar prints exactly one `listening http://HOST:PORT/mcp` line on stdout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.stdout_path.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("listening http://"):
                return line.split(" ", 1)[1].strip()
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before listening\n{proc.logs()}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} printed no `listening http://` line within {timeout}s\n{proc.logs()}")


def base_of(mcp_url: str) -> str:
    """http://127.0.0.1:P/mcp -> http://127.0.0.1:P"""
    scheme, rest = mcp_url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def wait_ready(proc: Proc, targets: list[str], timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
    """Poll /readyz until 200 and every named target reports tools > 0."""
    assert proc.url
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"sidecar exited with {proc.popen.returncode}\n{proc.logs()}")
        try:
            r = httpx.get(base_of(proc.url) + "/readyz", timeout=2.0)
            last = (r.status_code, r.text)
            if r.status_code == 200:
                body = r.json()
                by_name = {t.get("name"): t for t in body.get("targets", [])}
                if all((by_name.get(n) or {}).get("tools", 0) > 0 for n in targets):
                    return body
        except (httpx.HTTPError, ValueError) as e:
            last = repr(e)
        time.sleep(0.2)
    raise RuntimeError(f"sidecar not ready with targets {targets} within {timeout}s; last /readyz: {last}\n{proc.logs()}")


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def target_toml(name: str, url: str, **opts: Any) -> str:
    lines = ["[[targets]]", f"name = {toml_str(name)}", 'kind = "mcp_server"', f"url = {toml_str(url)}"]
    for k, v in opts.items():
        lines.append(f"{k} = {toml_str(v) if isinstance(v, str) else json.dumps(v)}")
    return "\n".join(lines) + "\n"


def sidecar_config(targets: list[str], page_size: int | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> str:
    cfg = (
        "[inbound]\n"
        'listen = "127.0.0.1:0"\n'
        'path = "/mcp"\n'
        f"max_body_bytes = {max_body_bytes}\n"
        'auth = "none"\n\n'
        "[catalog]\n"
        "sync_interval_secs = 300\n"
    )
    if page_size is not None:
        cfg += f"page_size = {page_size}\n"
    return cfg + "\n" + "\n".join(targets)


def start_sidecar(
    logdir: Path, config_text: str | None = None, args: list[str] | None = None, env: dict[str, str] | None = None
) -> Proc:
    argv = [str(sidecar_bin()), "serve"]
    if config_text is not None:
        cfg = logdir / f"sidecar-{time.monotonic_ns()}.toml"
        logdir.mkdir(parents=True, exist_ok=True)
        cfg.write_text(config_text)
        argv += ["--config", str(cfg)]
    argv += args or []
    proc = spawn("mcp-sidecar", argv, logdir, env={"RUST_LOG": os.environ.get("RUST_LOG", "info"), **(env or {})})
    try:
        proc.url = wait_for_listening_line(proc)
    except Exception:
        proc.stop()
        raise
    proc.port = int(base_of(proc.url).rsplit(":", 1)[1])
    return proc


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def everything(logdir: Path) -> Iterator[Proc]:
    proc = start_everything(logdir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def fast(logdir: Path) -> Iterator[Proc]:
    proc = start_fastmcp(logdir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def mrtr(logdir: Path) -> Iterator[Proc]:
    proc = start_mrtr(logdir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sidecar(logdir: Path, everything: Proc, fast: Proc) -> Iterator[Proc]:
    """The shared sidecar: targets "everything" and "fast", max_body_bytes = 64 KiB."""
    cfg = sidecar_config([target_toml("everything", everything.url), target_toml("fast", fast.url)])
    proc = start_sidecar(logdir, cfg)
    try:
        proc.extra["readyz"] = wait_ready(proc, ["everything", "fast"])
        yield proc
    finally:
        proc.stop()
    assert proc.popen.returncode is not None


@pytest.fixture
def procs(logdir: Path) -> Iterator[Callable[[Proc], Proc]]:
    """Register processes a test starts itself; they are stopped (by PID) after the test."""
    started: list[Proc] = []

    def add(p: Proc) -> Proc:
        started.append(p)
        return p

    yield add
    for p in reversed(started):
        p.stop()


# --------------------------------------------------------------------------- raw MCP over HTTP


def parse_sse(text: str) -> list[dict[str, Any]]:
    """All JSON messages in an SSE body (events separated by blank lines, `data:` lines joined)."""
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].lstrip(" ") if ln.startswith("data:") else None for ln in block.split("\n")]
        data = [d for d in data if d is not None]
        if data and "".join(data).strip():
            messages.append(json.loads("\n".join(data)))
    return messages


def response_messages(r: httpx.Response) -> list[dict[str, Any]]:
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        return parse_sse(r.text)
    if not r.content:
        return []
    body = r.json()
    return body if isinstance(body, list) else [body]


class RawMcp:
    """Minimal raw JSON-RPC-over-streamable-HTTP client: no SDK in between, so tests see
    the exact JSON the server sends. Works with sessionful (SSE) and stateless servers."""

    def __init__(self, url: str, protocol: str = PROTOCOL, timeout: float = 30.0):
        self.url = url
        self.protocol = protocol
        self.session_id: str | None = None
        self.http = httpx.Client(timeout=timeout)
        self._id = 0

    def close(self) -> None:
        if self.session_id:
            try:
                self.http.delete(self.url, headers=self.headers())
            except httpx.HTTPError:
                pass
        self.http.close()

    def __enter__(self) -> "RawMcp":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": self.protocol}
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        h.update(extra or {})
        return h

    def post(self, body: Any, extra_headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(self.url, content=json.dumps(body), headers=self.headers(extra_headers))

    def request_full(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request; return the JSON-RPC response message with its id."""
        self._id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self._id, "method": method}
        if params is not None:
            body["params"] = params
        r = self.post(body)
        msgs = response_messages(r)
        for m in msgs:
            if m.get("id") == self._id and ("result" in m or "error" in m):
                return m
        raise AssertionError(f"{method}: no response for id {self._id}: HTTP {r.status_code} {r.text[:2000]}")

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        m = self.request_full(method, params)
        if "error" in m:
            raise AssertionError(f"{method} failed: {m['error']}")
        return m["result"]

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self._id,
            "method": "initialize",
            "params": {
                "protocolVersion": self.protocol,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "sidecar-raw-test", "version": "0"},
            },
        }
        r = self.http.post(
            self.url,
            content=json.dumps(body),
            headers={"Accept": ACCEPT_BOTH, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, f"initialize: HTTP {r.status_code} {r.text[:1000]}"
        self.session_id = r.headers.get("mcp-session-id")
        msgs = [m for m in response_messages(r) if m.get("id") == self._id]
        assert msgs and "result" in msgs[0], f"initialize: {r.text[:1000]}"
        n = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert n.status_code in (200, 202), f"notifications/initialized: HTTP {n.status_code} {n.text[:500]}"
        return msgs[0]["result"]

    def list_tools(self, max_pages: int = 100) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(max_pages):
            res = self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools.extend(res["tools"])
            cursor = res.get("nextCursor")
            if not cursor:
                return tools
        raise AssertionError(f"tools/list did not end within {max_pages} pages")

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """tools/call; returns the whole JSON-RPC message (result or error)."""
        return self.request_full("tools/call", {"name": name, "arguments": arguments})


@pytest.fixture
def raw_sidecar(sidecar: Proc) -> Iterator[RawMcp]:
    with RawMcp(sidecar.url) as c:
        yield c


# What the sidecar declares to a legacy upstream session: it carries these questions to the
# callers that can answer them, so servers that list extra tools for such clients list them
# to the sidecar too. Direct comparisons use the same declaration.
SIDECAR_UPSTREAM_CAPABILITIES = {"sampling": {}, "elicitation": {}}


@pytest.fixture(scope="session")
def direct_everything_tools(everything: Proc) -> list[dict[str, Any]]:
    with RawMcp(everything.url) as c:
        c.initialize(SIDECAR_UPSTREAM_CAPABILITIES)
        return c.list_tools()


@pytest.fixture(scope="session")
def direct_fast_tools(fast: Proc) -> list[dict[str, Any]]:
    with RawMcp(fast.url) as c:
        c.initialize(SIDECAR_UPSTREAM_CAPABILITIES)
        return c.list_tools()


@pytest.fixture(scope="session")
def sidecar_tools(sidecar: Proc) -> list[dict[str, Any]]:
    with RawMcp(sidecar.url) as c:
        c.initialize()
        return c.list_tools()
