"""Real MCP client SDKs talking to the sidecar: Python SDK 1.x (in process), Python SDK 2.x
(subprocess, opens with 2026-07-28 server/discover) and the TypeScript SDK (node subprocess)."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from conftest import NODE_DIR, PEERS, VENV_MCP2_PY, Proc, run_json

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def sdk1_session_run(url: str, fn):
    async with streamablehttp_client(url, timeout=30, sse_read_timeout=60) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            return await fn(session, init)


async def sdk1_list_all(session: ClientSession) -> list[Any]:
    tools, cursor = [], None
    for _ in range(100):
        page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
        tools.extend(page.tools)
        cursor = page.nextCursor
        if not cursor:
            return tools
    raise AssertionError("tools/list never ended")


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of a CallToolResult a relay must keep: content, structuredContent, isError."""
    return {k: result.get(k) for k in ("content", "structuredContent", "isError")}


# --------------------------------------------------------------------------- Python SDK 1.x


def test_python_sdk1_lists_and_calls_through_sidecar(sidecar: Proc, everything: Proc, fast: Proc) -> None:
    async def via_sidecar(session: ClientSession, init) -> dict[str, Any]:
        tools = await sdk1_list_all(session)
        return {
            "init": dump(init),
            "names": [t.name for t in tools],
            "tools": {t.name: dump(t) for t in tools},
            "fast_echo": dump(await session.call_tool("fast___echo", {"text": "héllo sidecar"})),
            "fast_add": dump(await session.call_tool("fast___add", {"a": 1.25, "b": 2})),
            "ev_echo": dump(await session.call_tool("everything___echo", {"message": "hi there"})),
            "ev_sum": dump(await session.call_tool("everything___get-sum", {"a": 2, "b": 40})),
        }

    async def direct_fast(session: ClientSession, init) -> dict[str, Any]:
        return {
            "names": [t.name for t in await sdk1_list_all(session)],
            "echo": dump(await session.call_tool("echo", {"text": "héllo sidecar"})),
            "add": dump(await session.call_tool("add", {"a": 1.25, "b": 2})),
        }

    async def direct_everything(session: ClientSession, init) -> dict[str, Any]:
        names = [t.name for t in await sdk1_list_all(session)]
        return {
            "names": names,
            "echo": dump(await session.call_tool("echo", {"message": "hi there"})),
            "sum": dump(await session.call_tool("get-sum", {"a": 2, "b": 40})),
        }

    s = anyio.run(sdk1_session_run, sidecar.url, via_sidecar)
    df = anyio.run(sdk1_session_run, fast.url, direct_fast)
    de = anyio.run(sdk1_session_run, everything.url, direct_everything)

    assert s["init"]["capabilities"].get("tools") is not None, s["init"]
    names = s["names"]
    assert len(names) == len(set(names)), f"duplicate tool names: {names}"
    bad = [n for n in names if not NAME_RE.match(n)]
    assert not bad, f"names outside ^[a-zA-Z0-9_-]{{1,64}}$: {bad}"
    # Both targets' tools appear, prefixed with "{target}___".
    assert "echo" in de["names"] and "get-sum" in de["names"]
    for n in de["names"]:
        assert f"everything___{n}" in names, f"everything tool {n!r} missing from sidecar list {names}"
    for n in df["names"]:
        if len(f"fast___{n}") <= 64:
            assert f"fast___{n}" in names, f"fast tool {n!r} missing from sidecar list {names}"
    assert all(n.startswith(("everything___", "fast___")) for n in names), names

    # Results equal a direct connection to the same upstream.
    assert comparable(s["fast_echo"]) == comparable(df["echo"])
    assert s["fast_echo"]["content"] == [{"type": "text", "text": "héllo sidecar"}]
    assert comparable(s["fast_add"]) == comparable(df["add"])
    assert s["fast_add"]["structuredContent"] == {"result": 3.25}
    assert comparable(s["ev_echo"]) == comparable(de["echo"])
    assert s["ev_echo"]["content"] == [{"type": "text", "text": "Echo: hi there"}]
    assert comparable(s["ev_sum"]) == comparable(de["sum"])


def test_python_sdk1_long_tool_name_is_shortened_and_callable(sidecar: Proc, direct_fast_tools) -> None:
    long_direct = [t for t in direct_fast_tools if len("fast___" + t["name"]) > 64]
    assert long_direct, "fixture should have a tool whose prefixed name exceeds 64 chars"
    orig = long_direct[0]

    async def run(session: ClientSession, init) -> dict[str, Any]:
        tools = await sdk1_list_all(session)
        matches = [t for t in tools if t.description == orig["description"]]
        assert len(matches) == 1, f"expected one shortened tool for {orig['name']!r}, got {[t.name for t in matches]}"
        name = matches[0].name
        res = await session.call_tool(name, {"region": "EMEA"})
        return {"name": name, "result": dump(res), "schema": matches[0].inputSchema}

    out = anyio.run(sdk1_session_run, sidecar.url, run)
    assert NAME_RE.match(out["name"]), out["name"]
    assert out["schema"] == orig["inputSchema"]
    assert out["result"].get("isError") in (None, False), out["result"]
    assert out["result"]["content"] == [{"type": "text", "text": "revenue report for EMEA"}]


def test_python_sdk1_progress_callback_through_sidecar(sidecar: Proc) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async def run(session: ClientSession, init) -> dict[str, Any]:
        res = await session.call_tool(
            "everything___trigger-long-running-operation",
            {"duration": 1, "steps": 4},
            progress_callback=on_progress,
        )
        return dump(res)

    res = anyio.run(sdk1_session_run, sidecar.url, run)
    assert "Long running operation completed" in res["content"][0]["text"], res
    assert [p for p, _ in seen] == [1, 2, 3, 4], f"progress notifications seen: {seen}"
    assert all(t == 4 for _, t in seen), seen


# --------------------------------------------------------------------------- Python SDK 2.x


def test_python_sdk2_uses_server_discover(sidecar: Proc) -> None:
    if not VENV_MCP2_PY.exists():
        pytest.fail(f"{VENV_MCP2_PY} missing: run `bash tests/setup.sh`")
    out = run_json(
        [
            str(VENV_MCP2_PY),
            str(PEERS / "mcp2_client.py"),
            sidecar.url,
            "--call", "fast___echo", json.dumps({"text": "from sdk2"}),
            "--call", "everything___echo", json.dumps({"message": "from sdk2"}),
            "--call", "fast___add", json.dumps({"a": 40, "b": 2}),
        ]
    )
    assert out["sdk_version"].startswith("2."), out["sdk_version"]
    rpc = [(h["rpc_method"], h["status"]) for h in out["http"] if h["method"] == "POST"]
    # It really negotiated the 2026-07-28 stateless protocol: discover succeeded, no initialize fallback.
    assert rpc and rpc[0] == ("server/discover", 200), f"first request was not a successful discover: {out['http']}"
    assert "initialize" not in [m for m, _ in rpc], f"client fell back to initialize: {out['http']}"
    assert out["negotiated"] == "discover", out
    assert out["protocol_version"] == "2026-07-28", out["protocol_version"]
    later = [h for h in out["http"] if h["rpc_method"] in ("tools/list", "tools/call")]
    assert later and all(h["protocol_header"] == "2026-07-28" for h in later), out["http"]
    assert all(h["status"] == 200 for h in later), out["http"]

    names = [t["name"] for t in out["tools"]]
    assert "fast___echo" in names and "everything___echo" in names, names
    assert all(NAME_RE.match(n) for n in names), names
    calls = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in calls.values()), calls
    assert calls["fast___echo"]["result"]["content"] == [{"type": "text", "text": "from sdk2"}]
    assert calls["everything___echo"]["result"]["content"] == [{"type": "text", "text": "Echo: from sdk2"}]
    assert calls["fast___add"]["result"]["structuredContent"] == {"result": 42.0}


# --------------------------------------------------------------------------- TypeScript SDK


def test_typescript_sdk_lists_and_calls(sidecar: Proc, direct_everything_tools) -> None:
    out = run_json(
        [
            "node",
            str(NODE_DIR / "ts_client.mjs"),
            sidecar.url,
            "--progress",
            "--call", "fast___echo", json.dumps({"text": "from ts"}),
            "--call", "everything___echo", json.dumps({"message": "from ts"}),
            "--call", "everything___get-structured-content", json.dumps({"location": "New York"}),
            "--call", "everything___trigger-long-running-operation", json.dumps({"duration": 1, "steps": 3}),
        ],
        cwd=NODE_DIR,
    )
    names = [t["name"] for t in out["tools"]]
    assert len(names) == len(set(names)), names
    for t in direct_everything_tools:
        assert f"everything___{t['name']}" in names, (t["name"], names)
    assert "fast___echo" in names
    assert out["protocolVersion"] in ("2025-11-25", "2025-06-18", "2025-03-26"), out["protocolVersion"]
    calls = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in calls.values()), calls
    assert calls["fast___echo"]["result"]["content"] == [{"type": "text", "text": "from ts"}]
    assert calls["everything___echo"]["result"]["content"] == [{"type": "text", "text": "Echo: from ts"}]
    sc = calls["everything___get-structured-content"]["result"]
    assert sc["structuredContent"] == {"temperature": 33, "conditions": "Cloudy", "humidity": 82}, sc
    lro = calls["everything___trigger-long-running-operation"]
    assert [p["progress"] for p in lro["progress"]] == [1, 2, 3], lro
    assert "completed" in lro["result"]["content"][0]["text"]
