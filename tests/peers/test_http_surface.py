"""The sidecar's HTTP surface with raw requests: JSON-RPC errors, limits, methods, Host/Origin
checks, AgentCore headers, health endpoints, and what is answered locally."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import ACCEPT_BOTH, MAX_BODY_BYTES, PROTOCOL, Proc, RawMcp, base_of, response_messages

HEADERS = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", "MCP-Protocol-Version": PROTOCOL}


def post_raw(url: str, content: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, content=content, headers={**HEADERS, **(headers or {})}, timeout=30)


def jsonrpc_error(r: httpx.Response) -> dict[str, Any]:
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"HTTP {r.status_code} content-type {ctype!r}: {r.text[:500]}"
    body = r.json()
    assert body.get("jsonrpc") == "2.0" and isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("code"), int) and isinstance(body["error"].get("message"), str), body
    return body


def test_malformed_json_is_parse_error(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"')
    assert r.status_code == 400
    body = jsonrpc_error(r)
    assert body["error"]["code"] == -32700
    assert body.get("id") is None


def test_missing_method_is_invalid_request(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, json.dumps({"jsonrpc": "2.0", "id": 1}))
    assert r.status_code == 400
    assert jsonrpc_error(r)["error"]["code"] == -32600


def test_wrong_jsonrpc_version_is_invalid_request(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, json.dumps({"jsonrpc": "1.0", "id": 1, "method": "tools/list"}))
    assert r.status_code == 400
    assert jsonrpc_error(r)["error"]["code"] == -32600


def test_unknown_method(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, json.dumps({"jsonrpc": "2.0", "id": "abc", "method": "no/such-method"}))
    body = jsonrpc_error(r)
    assert body["error"]["code"] == -32601, body
    assert body["id"] == "abc"


@pytest.mark.parametrize("name", ["fast___no_such_tool", "nobody___echo", "echo"])
def test_unknown_tool_names_the_tool(raw_sidecar: RawMcp, name: str) -> None:
    m = raw_sidecar.call(name, {})
    assert "error" in m, f"expected a JSON-RPC error for unknown tool {name}: {m}"
    assert m["error"]["code"] == -32602, m
    assert name in m["error"]["message"], m


def test_tools_call_without_name_is_invalid_params(raw_sidecar: RawMcp) -> None:
    m = raw_sidecar.request_full("tools/call", {"arguments": {}})
    assert m.get("error", {}).get("code") == -32602, m


def test_body_over_limit_is_413_with_jsonrpc_error(sidecar: Proc) -> None:
    big = "x" * (MAX_BODY_BYTES + 1024)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fast___echo", "arguments": {"text": big}}}
    r = post_raw(sidecar.url, json.dumps(body))
    assert r.status_code == 413, f"HTTP {r.status_code}: {r.text[:300]}"
    jsonrpc_error(r)


def test_body_just_under_limit_is_relayed(raw_sidecar: RawMcp) -> None:
    text = "y" * (MAX_BODY_BYTES - 1024)
    m = raw_sidecar.call("fast___echo", {"text": text})
    assert m.get("result", {}).get("content") == [{"type": "text", "text": text}], str(m)[:500]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_mcp_are_405(sidecar: Proc, method: str) -> None:
    r = httpx.request(method, sidecar.url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": "abc"}, timeout=10)
    assert r.status_code == 405, f"{method}: HTTP {r.status_code} {r.text[:300]}"


def tools_list_body() -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "attacker.test:1234"])
def test_foreign_host_is_403(sidecar: Proc, host: str) -> None:
    r = post_raw(sidecar.url, tools_list_body(), {"Host": host})
    assert r.status_code == 403, f"Host {host}: HTTP {r.status_code} {r.text[:300]}"


def test_foreign_origin_is_403(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, tools_list_body(), {"Origin": "http://evil.example"})
    assert r.status_code == 403, f"HTTP {r.status_code} {r.text[:300]}"


@pytest.mark.parametrize("host_fmt", ["127.0.0.1:{port}", "localhost:{port}"])
def test_loopback_host_and_origin_allowed(sidecar: Proc, host_fmt: str) -> None:
    host = host_fmt.format(port=sidecar.port)
    r = post_raw(sidecar.url, tools_list_body(), {"Host": host, "Origin": f"http://{host}"})
    assert r.status_code == 200, f"Host {host}: HTTP {r.status_code} {r.text[:300]}"


def test_agentcore_session_headers_are_accepted(sidecar: Proc) -> None:
    r = post_raw(
        sidecar.url,
        tools_list_body(),
        {"Mcp-Session-Id": "anything", "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "x"},
    )
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]}"
    msgs = [r.json()] if r.headers["content-type"].startswith("application/json") else None
    assert msgs and any(t["name"] == "fast___echo" for t in msgs[0]["result"]["tools"]), r.text[:500]


def test_initialize_answered_locally(raw_sidecar: RawMcp) -> None:
    res = raw_sidecar.initialize()
    assert res["protocolVersion"] == PROTOCOL, res
    assert "tools" in res["capabilities"], res
    assert res["serverInfo"]["name"], res


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
def test_initialize_negotiates_known_versions(sidecar: Proc, version: str) -> None:
    with RawMcp(sidecar.url, protocol=version) as c:
        assert c.initialize()["protocolVersion"] == version
        assert any(t["name"] == "everything___echo" for t in c.list_tools())


def test_server_discover_answered(sidecar: Proc) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {}}},
    }
    r = post_raw(sidecar.url, json.dumps(body), {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"})
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert "2026-07-28" in res.get("supportedVersions", []), res
    assert "tools" in res.get("capabilities", {}), res


def test_modern_tools_call_result_carries_result_type(sidecar: Proc) -> None:
    """At 2026-07-28 every result must carry resultType; a relayed tools/call result too."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}
    hdrs = {"MCP-Protocol-Version": "2026-07-28"}
    for method, params in (
        ("tools/list", {"_meta": meta}),
        ("tools/call", {"name": "fast___echo", "arguments": {"text": "modern"}, "_meta": meta}),
    ):
        name = {"Mcp-Name": params["name"]} if "name" in params else {}
        r = post_raw(sidecar.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
                     {**hdrs, "Mcp-Method": method, **name})
        assert r.status_code == 200, r.text
        res = r.json().get("result")
        assert res is not None, r.text
        assert res.get("resultType") == "complete", f"{method} at 2026-07-28 lacks resultType: {r.text[:300]}"


def test_json_answers_carry_their_length(sidecar: Proc) -> None:
    """A JSON answer is sent with Content-Length, as the upstream's own is, not chunked."""
    for method, params in (
        ("tools/list", {}),
        ("tools/call", {"name": "fast___echo", "arguments": {"text": "sized"}}),
    ):
        r = post_raw(sidecar.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        assert r.status_code == 200, r.text
        assert r.headers.get("content-type", "").startswith("application/json"), r.headers
        assert "transfer-encoding" not in r.headers, f"{method}: {dict(r.headers)}"
        assert r.headers.get("content-length") == str(len(r.content)), f"{method}: {dict(r.headers)}"


def test_jsonrpc_ping(raw_sidecar: RawMcp) -> None:
    assert raw_sidecar.request("ping") == {}


def test_notification_is_accepted_with_202(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert r.status_code == 202, f"HTTP {r.status_code} {r.text[:300]}"


def test_ping_endpoint(sidecar: Proc) -> None:
    r = httpx.get(base_of(sidecar.url) + "/ping", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "Healthy"}


def test_healthz(sidecar: Proc) -> None:
    r = httpx.get(base_of(sidecar.url) + "/healthz", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}


def test_readyz_lists_both_targets(sidecar: Proc, sidecar_tools) -> None:
    r = httpx.get(base_of(sidecar.url) + "/readyz", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    by_name = {t["name"]: t for t in body["targets"]}
    assert set(by_name) == {"everything", "fast"}, body
    for name in ("everything", "fast"):
        t = by_name[name]
        # The contract lists these keys for every target; a null value is still a key.
        missing = [k for k in ("name", "state", "tools", "last_error", "last_success") if k not in t]
        assert not missing, f"/readyz target {name} lacks keys {missing}: {t}"
        assert t["tools"] == sum(1 for x in sidecar_tools if x["name"].startswith(f"{name}___")), body
        assert t["last_error"] in (None, ""), body
        assert t["last_success"], body
    assert body["tools"] == len(sidecar_tools), body


def test_sse_only_accept_gets_sse(sidecar: Proc) -> None:
    r = post_raw(sidecar.url, tools_list_body(), {"Accept": "text/event-stream"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    msgs = [m for m in response_messages(r) if m.get("id") == 1]
    assert msgs and any(t["name"] == "fast___echo" for t in msgs[0]["result"]["tools"]), r.text[:500]


def test_progress_token_with_json_only_accept_gets_json(sidecar: Proc) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {
            "name": "everything___trigger-long-running-operation",
            "arguments": {"duration": 0.3, "steps": 3},
            "_meta": {"progressToken": "json-only"},
        },
    }
    r = post_raw(sidecar.url, json.dumps(body), {"Accept": "application/json"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/json"), r.headers
    msg = r.json()
    assert msg["id"] == 3 and "completed" in msg["result"]["content"][0]["text"], msg
