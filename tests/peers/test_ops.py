"""Operations of the real binary: /metrics read by Prometheus' own parsers, OTLP traces
received by a real OTLP/HTTP receiver (opentelemetry-proto), JSON logs without secrets,
SIGTERM drain, hot reload of the config file, and `mcp-sidecar doctor`.

Upstreams: the built-in demo upstream (`mcp-sidecar demo-upstream`) and, where the test
must see what the sidecar sends upstream, a small recording MCP server written here.
"""

from __future__ import annotations

import email.utils
import json
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    Proc,
    base_of,
    free_port,
    sidecar_bin,
    spawn,
    start_sidecar,
    target_toml,
    wait_for_port,
    wait_ready,
)

SECRET = "s3cr3t-Api-Key-0f9e8d"


# --------------------------------------------------------------------------- helpers


def start_demo_upstream(logdir: Path) -> Proc:
    port = free_port()
    proc = spawn("demo-upstream", [str(sidecar_bin()), "demo-upstream", "--listen", f"127.0.0.1:{port}", "--stateless"], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}/mcp"
    return proc


@pytest.fixture
def demo(logdir: Path) -> Iterator[Proc]:
    proc = start_demo_upstream(logdir)
    yield proc
    proc.stop()


class Local(ThreadingHTTPServer):
    daemon_threads = True


def serve_local(handler: type[BaseHTTPRequestHandler]) -> tuple[Local, str]:
    server = Local(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class RecordingUpstream(BaseHTTPRequestHandler):
    """A stateless JSON MCP server with one tool, `echo`, that records each request's headers.
    A call whose text is `throttle-once` is answered 429 the first time."""

    seen: list[dict[str, Any]] = []
    throttled: set[str] = set()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"method": body.get("method"), "headers": {k.lower(): v for k, v in self.headers.items()}})
        if "id" not in body:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        method = body["method"]
        if method == "initialize":
            result: Any = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "rec", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            text = body["params"].get("arguments", {}).get("text", "")
            if text == "throttle-once" and text not in type(self).throttled:
                type(self).throttled.add(text)
                self.send_response(429)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            result = {"content": [{"type": "text", "text": text}]}
        else:
            result = {}
        out = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Accept": "application/json, text/event-stream", **(headers or {})}, timeout=timeout)


def call(url: str, name: str, arguments: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = post(url, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}, headers)
    return r.json()


def scrape(proc: Proc, openmetrics: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client, keyed by name and labels."""
    assert proc.url
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    r = httpx.get(base_of(proc.url) + "/metrics", headers={"Accept": accept}, timeout=5)
    assert r.status_code == 200
    if openmetrics:
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        families = openmetrics_parser.text_string_to_metric_families(r.text)
    else:
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = text_string_to_metric_families(r.text)
    samples = {}
    for family in families:
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_exit(proc: Proc, limit: float) -> float:
    started = time.monotonic()
    try:
        proc.popen.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {limit} s after SIGTERM\n{proc.logs()}")
    return time.monotonic() - started


# --------------------------------------------------------------------------- metrics


def test_metrics_parse_with_prometheus_parsers_and_follow_calls(logdir: Path, demo: Proc, procs) -> None:
    rec, rec_url = serve_local(RecordingUpstream)
    config = target_toml("demo", demo.url) + "\n" + target_toml("rec", rec_url + "/mcp")
    sc = procs(start_sidecar(logdir, config))
    wait_ready(sc, ["demo", "rec"])
    before = scrape(sc)
    for _ in range(2):
        assert call(sc.url, "demo___echo", {"text": "hi"})["result"]["content"][0]["text"] == "hi"
    assert call(sc.url, "demo___fail", {"message": "no"})["result"]["isError"] is True
    assert call(sc.url, "nope___nothing", {})["error"]["code"] == -32602
    assert call(sc.url, "rec___echo", {"text": "throttle-once"})["result"]["content"][0]["text"] == "throttle-once"
    after = scrape(sc)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    inbound = "mcp_server_operation_duration_seconds_count"
    assert delta(inbound, mcp_method_name="tools/call", gen_ai_tool_name="demo___echo", error_type="") == 2
    # An unknown tool: no tool label (not in the catalog), the JSON-RPC code as error type.
    assert delta(inbound, mcp_method_name="tools/call", gen_ai_tool_name="", error_type="-32602") == 1
    upstream = "mcp_client_operation_duration_seconds_count"
    assert delta(upstream, target="demo", mcp_method_name="tools/call", gen_ai_tool_name="echo", error_type="") == 2
    assert delta(upstream, target="demo", mcp_method_name="tools/call", gen_ai_tool_name="fail", error_type="tool_error") == 1
    assert sample(after, "mcp_client_operation_duration_seconds_bucket", target="demo", mcp_method_name="tools/call",
                  gen_ai_tool_name="echo", error_type="", le="+Inf") >= 2
    assert delta("mcp_sidecar_upstream_throttle_retries_total", target="rec") == 1
    assert sample(after, "mcp_sidecar_target_tools", target="demo") == 5
    assert sample(after, "mcp_sidecar_target_tools", target="rec") == 1
    assert sample(after, "mcp_sidecar_target_sync_state", target="demo", state="ready") == 1
    assert 0 <= sample(after, "mcp_sidecar_target_sync_age_seconds", target="demo") < 300
    assert delta("http_server_request_duration_seconds_count", http_request_method="POST", http_route="/mcp",
                 http_response_status_code="200") == 5
    assert sample(after, "mcp_sidecar_open_connections") >= 1
    # The same registry as OpenMetrics, read by the strict OpenMetrics parser.
    om = scrape(sc, openmetrics=True)
    assert sample(om, "mcp_sidecar_target_tools", target="demo") == 5
    assert sample(om, "mcp_sidecar_upstream_throttle_retries_total", target="rec") == 1
    rec.shutdown()


# --------------------------------------------------------------------------- traces


class OtlpReceiver(BaseHTTPRequestHandler):
    """OTLP/HTTP (protobuf) trace receiver: decodes every ExportTraceServiceRequest."""

    spans: list[Any] = []
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        assert self.path == "/v1/traces", self.path
        assert self.headers["Content-Type"] == "application/x-protobuf"
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        with type(self).lock:
            for rs in request.resource_spans:
                service = {a.key: a.value.string_value for a in rs.resource.attributes}.get("service.name")
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        type(self).spans.append((service, span))
        out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value") else v.bool_value
    return out


def test_traces_continue_the_callers_traceparent_and_reach_upstream(logdir: Path, procs) -> None:
    OtlpReceiver.spans = []
    RecordingUpstream.seen = []
    receiver, receiver_url = serve_local(OtlpReceiver)
    rec, rec_url = serve_local(RecordingUpstream)
    config = f'[telemetry]\notlp_endpoint = "{receiver_url}"\nservice_name = "sidecar-under-test"\n\n' + target_toml("rec", rec_url + "/mcp")
    sc = procs(start_sidecar(logdir, config, env={"OTEL_BSP_SCHEDULE_DELAY": "100"}))
    wait_ready(sc, ["rec"])
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    reply = call(sc.url, "rec___echo", {"text": "traced"}, {"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert reply["result"]["content"][0]["text"] == "traced"
    sc.stop()  # flushes what is still buffered

    with OtlpReceiver.lock:
        ours = [s for svc, s in OtlpReceiver.spans if s.trace_id.hex() == trace_id and svc == "sidecar-under-test"]
    by_name = {s.name: s for s in ours}
    server = by_name.get("tools/call rec___echo")
    assert server is not None, [s.name for s in ours]
    assert server.parent_span_id.hex() == caller_span
    assert server.kind == server.SPAN_KIND_SERVER
    assert attrs(server)["mcp.method.name"] == "tools/call"
    assert attrs(server)["gen_ai.tool.name"] == "rec___echo"
    relay = by_name["tools/call echo"]
    assert relay.parent_span_id == server.span_id and relay.kind == relay.SPAN_KIND_CLIENT
    assert attrs(relay)["mcp_sidecar.target"] == "rec"
    http_spans = [s for s in ours if s.name == "POST" and s.parent_span_id == relay.span_id]
    assert len(http_spans) == 1, [(s.name, s.parent_span_id.hex()) for s in ours]
    assert attrs(http_spans[0])["http.response.status_code"] == 200
    # The upstream got the trace: same trace id, the HTTP span as parent.
    calls = [r for r in RecordingUpstream.seen if r["method"] == "tools/call"]
    sent = calls[-1]["headers"]["traceparent"].split("-")
    assert sent[1] == trace_id and sent[2] == http_spans[0].span_id.hex()
    receiver.shutdown()
    rec.shutdown()


# --------------------------------------------------------------------------- logs


def test_json_logs_carry_fields_and_never_a_secret(logdir: Path, procs) -> None:
    RecordingUpstream.seen = []
    rec, rec_url = serve_local(RecordingUpstream)
    config = (
        '[telemetry]\nlog_format = "json"\n\n'
        + target_toml("rec", rec_url + "/mcp")
        + f'\nheaders = {{ X-Tenant-Token = "{SECRET}-hdr" }}\n'
        + f'\n[targets.credential_provider]\ntype = "api_key"\nvalue = "{SECRET}"\n'
    )
    sc = procs(start_sidecar(logdir, config, env={"MCP_SIDECAR_LOG": "debug"}))
    wait_ready(sc, ["rec"])
    assert call(sc.url, "rec___echo", {"text": "x"})["result"]["content"][0]["text"] == "x"
    assert call(sc.url, "rec___missing", {})["error"]["code"] == -32602
    # The secret really is in use: the upstream received it.
    assert any(r["headers"].get("x-api-key") == SECRET for r in RecordingUpstream.seen)
    sc.stop()
    stderr = sc.stderr_path.read_text()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all("timestamp" in r and "level" in r and "target" in r for r in records)
    assert any(r.get("target_name") == "rec" for r in records), records[:5]
    assert SECRET not in stderr and SECRET not in sc.stdout_path.read_text()
    rec.shutdown()


# --------------------------------------------------------------------------- shutdown


def test_sigterm_drains_the_call_in_flight_and_exits_within_the_grace(logdir: Path, demo: Proc, procs) -> None:
    config = "[inbound]\nshutdown_grace_secs = 5\n\n" + target_toml("demo", demo.url)
    sc = procs(start_sidecar(logdir, config))
    wait_ready(sc, ["demo"])
    port = sc.port
    result: dict[str, Any] = {}

    def slow() -> None:
        result["reply"] = call(sc.url, "demo___sleep", {"ms": 1500})

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert idle.recv(1024).startswith(b"HTTP/1.1 200")
    half_open = socket.create_connection(("127.0.0.1", port))
    half_open.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
    sc.popen.send_signal(signal.SIGTERM)
    took = wait_exit(sc, 5.0)
    t.join(5)
    assert result["reply"]["result"]["content"][0]["text"] == "slept 1500 ms", result
    assert 1.0 < took < 4.0, took
    assert sc.popen.returncode == 0
    for s in (idle, half_open):
        s.settimeout(1)
        try:
            assert s.recv(64) == b""
        except ConnectionResetError:
            pass


def test_sigterm_with_only_idle_and_half_open_connections_exits_at_once(logdir: Path, demo: Proc, procs) -> None:
    sc = procs(start_sidecar(logdir, target_toml("demo", demo.url)))
    wait_ready(sc, ["demo"])
    held = []
    for data in (b"", b"POST /mcp HTTP/1.1\r\n", b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"):
        s = socket.create_connection(("127.0.0.1", sc.port))
        s.sendall(data)
        held.append(s)
    time.sleep(0.2)
    sc.popen.send_signal(signal.SIGTERM)
    # Nothing was relayed on any of them (the half body included): no need to wait for the
    # 10 s grace. The half body is told why.
    took = wait_exit(sc, 12.0)
    assert took < 2.0, took
    assert sc.popen.returncode == 0
    held[2].settimeout(1)
    assert held[2].recv(4096).startswith(b"HTTP/1.1 503"), "the half body is answered"


# --------------------------------------------------------------------------- reload


def readyz(proc: Proc) -> dict[str, Any]:
    assert proc.url
    return httpx.get(base_of(proc.url) + "/readyz", timeout=5).json()


def tool_names(proc: Proc) -> set[str]:
    r = post(proc.url, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    return {t["name"] for t in r.json()["result"]["tools"]}


def wait_until(predicate, limit: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {limit} s: {what}")


def test_the_config_file_and_sighup_reload_without_a_restart(logdir: Path, demo: Proc, procs) -> None:
    other = procs(start_demo_upstream(logdir))
    path = logdir / f"reload-{time.monotonic_ns()}.toml"
    head = "[reload]\ninterval_ms = 200\n\n"
    path.write_text(head + target_toml("demo", demo.url))
    sc = procs(spawn("mcp-sidecar", [str(sidecar_bin()), "serve", "--config", str(path)], logdir))
    from conftest import wait_for_listening_line

    sc.url = wait_for_listening_line(sc)
    sc.port = int(base_of(sc.url).rsplit(":", 1)[1])
    wait_ready(sc, ["demo"])
    pid = sc.pid

    # A new target appears; the process is the same.
    path.write_text(head + target_toml("demo", demo.url) + "\n" + target_toml("more", other.url))
    wait_until(lambda: "more___echo" in tool_names(sc), what="the added target's tools")
    assert readyz(sc)["config"]["generation"] == 2 and sc.pid == pid
    assert call(sc.url, "more___add", {"a": 1, "b": 2})["result"]["structuredContent"]["sum"] == 3

    # An invalid file: the running config stays, /readyz says why.
    path.write_text(head + target_toml("demo", demo.url) + "\nbogus_key = 1\n")
    wait_until(lambda: readyz(sc)["config"]["error"] is not None, what="the reload error in /readyz")
    error = readyz(sc)["config"]["error"]
    assert "bogus_key" in error, error
    assert {"demo___echo", "more___echo"} <= tool_names(sc)
    assert "config reload refused" in sc.stderr_path.read_text()

    # Fixed, and removing a target: its tools go; SIGHUP with nothing changed is a no-op.
    path.write_text(head + target_toml("demo", demo.url))
    wait_until(lambda: "more___echo" not in tool_names(sc), what="the removed target's tools gone")
    assert readyz(sc)["config"]["error"] is None
    sc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: "config unchanged" in sc.stderr_path.read_text(), what="SIGHUP handled")
    assert sc.alive() and "demo___echo" in tool_names(sc)


# --------------------------------------------------------------------------- doctor


def clock_server(skew_s: float) -> tuple[Local, str]:
    class Clock(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response_only(200)
            self.send_header("Date", email.utils.formatdate(time.time() + skew_s, usegmt=True))
            self.send_header("Content-Length", "0")
            self.end_headers()

    return serve_local(Clock)


def doctor(logdir: Path, config: str, clock_url: str) -> subprocess.CompletedProcess:
    path = logdir / f"doctor-{time.monotonic_ns()}.toml"
    path.write_text(config)
    return subprocess.run(
        [str(sidecar_bin()), "doctor", "--config", str(path), "--timeout-ms", "3000", "--clock-url", clock_url],
        capture_output=True, text=True, timeout=60,
    )


def test_doctor_passes_a_healthy_setup_and_names_each_problem(logdir: Path, demo: Proc) -> None:
    good_clock, good_url = clock_server(0)
    out = doctor(logdir, target_toml("demo", demo.url), good_url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok       target 'demo': mcp_server" in out.stdout and "5 tools" in out.stdout, out.stdout
    assert "ok       clock against" in out.stdout

    skewed, skewed_url = clock_server(3600)
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    config = (
        '[inbound]\nauth = "jwt"\n[[inbound.authorizers]]\n'
        f'discovery_url = "http://127.0.0.1:{free_port()}/.well-known/openid-configuration"\n\n'
        + target_toml("demo", demo.url) + "\n" + target_toml("gone", dead)
        + '\n[targets.credential_provider]\ntype = "oauth_client_credentials"\n'
        + f'token_url = "http://127.0.0.1:{free_port()}/token"\nclient_id = "c"\nclient_secret = "{SECRET}"\n'
    )
    out = doctor(logdir, config, skewed_url)
    assert out.returncode == 1, out.stdout + out.stderr
    problems = [line for line in out.stdout.splitlines() if line.startswith("problem")]
    text = "\n".join(problems)
    assert len(problems) == 4, out.stdout
    assert "problem  target 'gone': mcp_server" in text
    assert "problem  credentials of 'gone'" in text and "token endpoint" in text
    assert "authorizer http://127.0.0.1" in text
    assert "clock against" in text and "behind" in text
    assert "ok       target 'demo'" in out.stdout
    assert out.stdout.strip().endswith("4 problems")
    assert SECRET not in out.stdout + out.stderr
    good_clock.shutdown()
    skewed.shutdown()
