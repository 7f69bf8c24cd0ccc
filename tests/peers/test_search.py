"""Tool search (issue 13) through real clients against real upstreams.

Upstreams: @modelcontextprotocol/server-everything (Node), the FastMCP fixture, and a
many-tool upstream serving the 581 real tool definitions of the search evaluation set
(tests/peers/fixtures/many_tools_server.py). Clients: the Python MCP SDK 1.x, the TypeScript
SDK (tests/peers/node/ts_client.mjs) and Strands' MCPClient. Inbound JWT tokens come from the
test issuer of test_auth.py.

server-filesystem is not used: it speaks stdio only, and the sidecar reaches streamable-HTTP
upstreams only (stdio targets are later on the roadmap); its tools are in the many-tool
upstream's definitions instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from conftest import (
    ACCEPT_BOTH,
    FIXTURES,
    NODE_DIR,
    PEERS,
    PROTOCOL,
    Proc,
    RawMcp,
    base_of,
    free_port,
    sidecar_config,
    spawn,
    start_fastmcp,
    start_sidecar,
    target_toml,
    wait_for_port,
    wait_ready,
)
from test_auth import auth_config, authorizer_toml, rule_toml, start_issuer, target

SEARCH = "x_amz_bedrock_agentcore_search"
GATEWAY_DESCRIPTION = (
    "A special tool that returns a trimmed down list of tools given a context. Use this tool only when "
    "there are many tools available and you want to get a subset that matches the provided context."
)
SDK_TIMEOUT_S = 90


def search_section(**opts: Any) -> str:
    lines = ["[search]", "enabled = true"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
    return "\n".join(lines) + "\n"


def structured_tools(result: dict[str, Any]) -> list[dict[str, Any]]:
    """structuredContent.tools, after checking the text block carries the same JSON."""
    assert result.get("isError") is not True, result
    text = [c for c in result["content"] if c["type"] == "text"]
    assert len(text) == 1, result["content"]
    assert json.loads(text[0]["text"]) == result["structuredContent"]
    return result["structuredContent"]["tools"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def many(logdir: Path) -> Iterator[Proc]:
    port = free_port()
    proc = spawn("many-tools", [sys.executable, str(FIXTURES / "many_tools_server.py"), "--port", str(port)], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}/mcp"
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def search_sidecar(logdir: Path, everything: Proc, fast: Proc, many: Proc) -> Iterator[Proc]:
    # normalize_schemas on the many-tool target: some real servers list schemas without
    # `"type": "object"` (server-gitlab 2025.4.25), which the TypeScript SDK refuses.
    many_target = target_toml("many", many.url, normalize_schemas=True)
    cfg = sidecar_config(
        [target_toml("everything", everything.url), target_toml("fast", fast.url), many_target],
        max_body_bytes=1 << 20,
    )
    proc = start_sidecar(logdir, cfg + "\n" + search_section())
    try:
        wait_ready(proc, ["everything", "fast", "many"])
        # A target's listing is recorded before the snapshot holding it (and its search
        # index, which takes a while for 581 tools) is published: wait for the catalog too.
        proc.extra["readyz"] = wait_catalog(proc, more_than=581)
        yield proc
    finally:
        proc.stop()


def wait_catalog(proc: Proc, more_than: int, timeout: float = 60.0) -> dict[str, Any]:
    """Polls /readyz until the published catalog holds more than `more_than` tools."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(base_of(proc.url) + "/readyz", timeout=2.0).json()
        if body.get("tools", 0) > more_than:
            return body
        time.sleep(0.1)
    raise AssertionError(f"the catalog never held more than {more_than} tools: {body}")


@pytest.fixture(scope="module")
def listed(search_sidecar: Proc) -> list[dict[str, Any]]:
    with RawMcp(search_sidecar.url) as c:
        c.initialize()
        return c.list_tools()


# --------------------------------------------------------------------------- the tool


def test_search_tool_is_listed_first_with_the_gateways_definition(search_sidecar: Proc, listed: list[dict]) -> None:
    first = listed[0]
    assert first["name"] == SEARCH
    assert first["description"] == GATEWAY_DESCRIPTION
    schema = first["inputSchema"]
    assert schema["type"] == "object" and schema["required"] == ["query"]
    assert schema["properties"]["query"] == {"type": "string"}
    assert schema["properties"]["limit"]["type"] == "integer" and schema["properties"]["limit"]["maximum"] == 50
    names = [t["name"] for t in listed]
    assert names.count(SEARCH) == 1
    assert len(listed) == search_sidecar.extra["readyz"]["tools"] + 1, "every catalog tool plus the search tool"
    assert search_sidecar.extra["readyz"]["tools"] > 581


def test_results_are_the_listed_definitions_and_respect_limit(search_sidecar: Proc, listed: list[dict]) -> None:
    by_name = {t["name"]: t for t in listed}
    with RawMcp(search_sidecar.url) as c:
        c.initialize()
        out = c.call(SEARCH, {"query": "take a screenshot of the web page", "limit": 7})
        tools = structured_tools(out["result"])
        assert len(tools) == 7
        for t in tools:
            assert t == by_name[t["name"]], "full definitions, exactly as tools/list shows them"
        assert any("screenshot" in t["name"] for t in tools[:3]), [t["name"] for t in tools]
        assert len(structured_tools(c.call(SEARCH, {"query": "list files"})["result"])) == 10, "default limit"
        assert len(structured_tools(c.call(SEARCH, {"query": "list files", "limit": 500})["result"])) == 50, "capped"
        bad = c.call(SEARCH, {"limit": 3})
        assert bad["error"]["code"] == -32602 and "query" in bad["error"]["message"]


# --------------------------------------------------------------------------- real clients


def test_python_sdk_searches_then_calls_what_it_found(search_sidecar: Proc) -> None:
    async def run(session: ClientSession) -> tuple[list[str], Any, Any]:
        found = await session.call_tool(SEARCH, {"query": "what do two numbers add up to", "limit": 5})
        payload = found.model_dump(mode="json", by_alias=True, exclude_none=True)
        names = [t["name"] for t in structured_tools(payload)]
        add = next(n for n in names if n in ("fast___add", "everything___get-sum"))
        args = {"a": 2, "b": 40}
        called = await session.call_tool(add, args)
        many = await session.call_tool(SEARCH, {"query": "look online for the latest news about the Mars rover"})
        return names, called, many

    async def main() -> tuple[list[str], Any, Any]:
        async with streamablehttp_client(search_sidecar.url, timeout=30) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await run(session)

    names, called, many = anyio.run(main)
    assert {"fast___add", "everything___get-sum"} & set(names), names
    assert not called.isError and "42" in json.dumps(called.model_dump(mode="json")), called
    web = [t["name"] for t in many.structuredContent["tools"]]
    assert any(n.startswith("many___") and "search" in n for n in web[:5]), web


def test_typescript_sdk_searches(search_sidecar: Proc) -> None:
    args = json.dumps({"query": "create a new issue in a GitHub repository", "limit": 3})
    proc = subprocess.run(
        ["node", str(NODE_DIR / "ts_client.mjs"), search_sidecar.url, "--call", SEARCH, args],
        capture_output=True,
        text=True,
        timeout=SDK_TIMEOUT_S,
        cwd=NODE_DIR,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tools"][0]["name"] == SEARCH
    call = out["calls"][0]
    assert call["ok"], call
    tools = structured_tools(call["result"])
    assert [t["name"] for t in tools][0] == "many___github__create_issue", [t["name"] for t in tools]
    assert len(tools) == 3


def test_strands_mcp_client_searches(search_sidecar: Proc) -> None:
    from strands.tools.mcp import MCPClient

    client = MCPClient(lambda: streamablehttp_client(search_sidecar.url))
    with client:
        tools = client.list_tools_sync()
        assert tools[0].tool_name == SEARCH
        result = client.call_tool_sync("search-1", SEARCH, {"query": "kubectl logs of a pod", "limit": 4})
    assert result["status"] == "success", result
    found = [t["name"] for t in result["structuredContent"]["tools"]]
    assert len(found) == 4 and found[0] == "many___kubernetes__kubectl_logs", found
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


# --------------------------------------------------------------------------- deferred listing


def test_search_only_lists_pinned_tools_and_keeps_every_tool_callable(
    logdir: Path, everything: Proc, fast: Proc, procs
) -> None:
    cfg = sidecar_config([target_toml("everything", everything.url), target_toml("fast", fast.url)])
    cfg += "\n" + search_section(expose="search_only", pinned=["fast___echo"], tool_name="find_tools")
    proc = procs(start_sidecar(logdir, cfg))
    wait_ready(proc, ["everything", "fast"])
    with RawMcp(proc.url) as c:
        c.initialize()
        assert [t["name"] for t in c.list_tools()] == ["find_tools", "fast___echo"]
        found = structured_tools(c.call("find_tools", {"query": "sum of two numbers", "limit": 3})["result"])
        assert "everything___get-sum" in [t["name"] for t in found]
        summed = c.call("everything___get-sum", {"a": 2, "b": 40})
        assert "42" in json.dumps(summed["result"]), summed
        unknown = c.call(SEARCH, {"query": "x"})
        assert unknown["error"]["code"] == -32602, "the Gateway's name is free once renamed"


# --------------------------------------------------------------------------- visibility


def test_search_never_returns_tools_the_caller_cannot_see(logdir: Path, fast: Proc, procs) -> None:
    clients = {"acme-svc": ("secret-acme", ["gateway:read"]), "ops-svc": ("secret-ops", ["gateway:read"])}
    iss = start_issuer(logdir, clients, claims={"acme-svc": {"tenant": "acme"}, "ops-svc": {"tenant": "ops"}})
    procs(iss.proc)
    ops_only = [{"name": "tenant", "value_type": "STRING", "operator": "EQUALS", "value": "ops"}]
    cfg = auth_config(
        [authorizer_toml(iss.discovery_url, allowed_clients=list(clients))],
        [rule_toml(["fast___add"], custom_claims=ops_only), rule_toml(["fast___fail"], required_scopes=["admin:all"])],
        [target("fast", fast.url)],
    )
    proc = procs(start_sidecar(logdir, cfg + "\n" + search_section()))
    wait_ready(proc, ["fast"])

    def search_as(client_id: str) -> tuple[list[str], list[str]]:
        with RawMcp(proc.url) as c:
            c.http.headers["Authorization"] = f"Bearer {iss.token(client_id)}"
            c.initialize()
            listed = [t["name"] for t in c.list_tools()]
            found = c.call(SEARCH, {"query": "add two numbers or fail with a message", "limit": 50})
            return listed, [t["name"] for t in structured_tools(found["result"])]

    listed, found = search_as("acme-svc")
    assert listed[0] == SEARCH
    for hidden in ("fast___add", "fast___fail"):
        assert hidden not in listed and hidden not in found, (hidden, found)
    assert "fast___echo" in found
    listed, found = search_as("ops-svc")
    assert "fast___add" in listed and "fast___add" in found[:2], found
    assert "fast___fail" not in found, "a missing scope hides the tool from search as from tools/list"


# --------------------------------------------------------------------------- restart


def test_index_is_restored_with_the_saved_catalog(logdir: Path, procs, tmp_path: Path) -> None:
    upstream = start_fastmcp(logdir)
    procs(upstream)
    cfg = sidecar_config([target_toml("fast", upstream.url)]).replace(
        "[catalog]\n", f"[catalog]\nstate_dir = {json.dumps(str(tmp_path / 'state'))}\n"
    )
    cfg += "\n" + search_section()
    first = start_sidecar(logdir, cfg)
    try:
        wait_ready(first, ["fast"])
    finally:
        first.stop()
    upstream.stop()
    second = procs(start_sidecar(logdir, cfg))
    with RawMcp(second.url) as c:
        c.initialize()
        found = structured_tools(c.call(SEARCH, {"query": "echo the text back", "limit": 2})["result"])
    assert found and found[0]["name"] == "fast___echo", found
