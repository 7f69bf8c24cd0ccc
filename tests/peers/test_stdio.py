"""kind = "stdio" with real stdio servers from the registries: the npm
@modelcontextprotocol/server-memory and server-filesystem, and a Python FastMCP server
(`mcp.run()` over stdio), each started by the sidecar, called through the real SDK clients
(Python 1.x, TypeScript). Also: a child killed mid-call, its restart, and that nothing the
sidecar started outlives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import FIXTURES, NODE_DIR, Proc, RawMcp, sdk_session, sidecar_config, start_sidecar, toml_str, wait_ready

MODULES = NODE_DIR / "node_modules" / "@modelcontextprotocol"
MEMORY_JS = MODULES / "server-memory" / "dist" / "index.js"
FILESYSTEM_JS = MODULES / "server-filesystem" / "dist" / "index.js"
FASTMCP = FIXTURES / "fastmcp_server.py"


def stdio_target(name: str, command: str, args: list[str], **extra: Any) -> str:
    lines = ["[[targets]]", f"name = {toml_str(name)}", 'kind = "stdio"', f"command = {toml_str(command)}",
             f"args = {json.dumps(args)}"]
    for k, v in extra.items():
        if isinstance(v, dict):
            lines.append(f"{k} = {{ " + ", ".join(f"{ek} = {toml_str(ev)}" for ek, ev in v.items()) + " }")
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- /proc


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_of(pid: int) -> list[int]:
    return [p for p in all_pids() if (s := proc_stat(p)) and s[1] == pid and s[0] != "Z"]


def group_members(pgid: int) -> list[int]:
    return [p for p in all_pids() if (s := proc_stat(p)) and s[2] == pgid]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def child_running(parent: int, needle: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in children_of(parent) if needle in cmdline(p)]
        if len(found) == 1:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no single child of {parent} running {needle}: {[cmdline(p) for p in children_of(parent)]}")


def eventually(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("stdio")
    (d / "files").mkdir()
    (d / "files" / "hello.txt").write_text("hello from the filesystem server\n")
    return d


@pytest.fixture(scope="module")
def stdio_sidecar(logdir: Path, workdir: Path) -> Iterator[Proc]:
    for js in (MEMORY_JS, FILESYSTEM_JS):
        if not js.is_file():
            pytest.fail(f"{js} missing: run `bash tests/setup.sh`")
    targets = [
        stdio_target("memory", "node", [str(MEMORY_JS)], env={"MEMORY_FILE_PATH": str(workdir / "memory.jsonl")}),
        stdio_target("files", "node", [str(FILESYSTEM_JS), str(workdir / "files")]),
        stdio_target("fast", sys.executable, [str(FASTMCP), "--stdio"], request_timeout_ms=30000),
    ]
    proc = start_sidecar(logdir, sidecar_config(targets))
    try:
        wait_ready(proc, ["memory", "files", "fast"])
        yield proc
    finally:
        proc.stop()


async def direct_tools(command: str, args: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The server's own listing, through the Python SDK's stdio client (no sidecar)."""
    params = StdioServerParameters(command=command, args=args, env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- relaying


def test_definitions_match_what_each_server_lists_directly(stdio_sidecar: Proc, workdir: Path) -> None:
    async def listing(session: ClientSession) -> list[Any]:
        return [dump(t) for t in (await session.list_tools()).tools]

    via = {t["name"]: t for t in anyio.run(sdk_session, stdio_sidecar.url, listing)}
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    for prefix, command, args, env in [
        ("memory", "node", [str(MEMORY_JS)], {"MEMORY_FILE_PATH": str(scratch / "m.jsonl"), "PATH": os.environ["PATH"]}),
        ("files", "node", [str(FILESYSTEM_JS), str(scratch)], None),
        ("fast", sys.executable, [str(FASTMCP), "--stdio"], None),
    ]:
        direct = anyio.run(direct_tools, command, args, env)
        assert direct, prefix
        for tool in direct:
            relayed = via.get(f"{prefix}___{tool['name']}")
            if relayed is None and prefix == "fast":
                continue  # the long name is shortened (covered by the catalog tests)
            assert relayed is not None, (prefix, tool["name"], sorted(via))
            assert {k: v for k, v in relayed.items() if k != "name"} == {k: v for k, v in tool.items() if k != "name"}


def test_memory_server_through_the_python_sdk(stdio_sidecar: Proc, workdir: Path) -> None:
    async def run(session: ClientSession) -> dict[str, Any]:
        created = await session.call_tool("memory___create_entities", {"entities": [
            {"name": "mcp-sidecar", "entityType": "project", "observations": ["relays stdio servers"]}]})
        found = await session.call_tool("memory___search_nodes", {"query": "sidecar"})
        return {"created": dump(created), "found": dump(found)}

    out = anyio.run(sdk_session, stdio_sidecar.url, run)
    assert out["created"].get("isError") in (None, False), out
    text = json.dumps(out["found"])
    assert "relays stdio servers" in text, out["found"]
    assert "mcp-sidecar" in (workdir / "memory.jsonl").read_text(), "the server wrote its own file"


def test_filesystem_server_through_the_python_sdk(stdio_sidecar: Proc, workdir: Path) -> None:
    allowed = workdir / "files"

    async def run(session: ClientSession) -> dict[str, Any]:
        names = {t.name for t in (await session.list_tools()).tools}
        read_tool = "files___read_text_file" if "files___read_text_file" in names else "files___read_file"
        wrote = await session.call_tool("files___write_file", {"path": str(allowed / "new.txt"), "content": "written via the sidecar"})
        read = await session.call_tool(read_tool, {"path": str(allowed / "hello.txt")})
        outside = await session.call_tool(read_tool, {"path": "/etc/hostname"})
        return {"wrote": dump(wrote), "read": dump(read), "outside": dump(outside)}

    out = anyio.run(sdk_session, stdio_sidecar.url, run)
    assert (allowed / "new.txt").read_text() == "written via the sidecar"
    assert out["read"]["content"][0]["text"].strip() == "hello from the filesystem server", out["read"]
    assert out["outside"].get("isError") is True, "the server's own sandbox still applies"


def test_fastmcp_stdio_server_through_the_python_sdk(stdio_sidecar: Proc) -> None:
    async def run(session: ClientSession) -> dict[str, Any]:
        return {
            "echo": dump(await session.call_tool("fast___echo", {"text": "héllo stdio"})),
            "add": dump(await session.call_tool("fast___add", {"a": 40, "b": 2})),
            "fail": dump(await session.call_tool("fast___fail", {"message": "nope"})),
        }

    out = anyio.run(sdk_session, stdio_sidecar.url, run)
    assert out["echo"]["content"] == [{"type": "text", "text": "héllo stdio"}]
    assert out["add"]["structuredContent"] == {"result": 42.0}
    assert out["fail"]["isError"] is True and "nope" in out["fail"]["content"][0]["text"]


def test_typescript_sdk_through_stdio_targets(stdio_sidecar: Proc) -> None:
    out = subprocess.run(
        ["node", str(NODE_DIR / "ts_client.mjs"), stdio_sidecar.url,
         "--call", "fast___echo", json.dumps({"text": "from ts over stdio"}),
         "--call", "memory___read_graph", "{}"],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=90,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    calls = {c["name"]: c for c in result["calls"]}
    assert all(c["ok"] for c in calls.values()), calls
    assert calls["fast___echo"]["result"]["content"] == [{"type": "text", "text": "from ts over stdio"}]
    assert "entities" in calls["memory___read_graph"]["result"]["content"][0]["text"]
    names = {t["name"] for t in result["tools"]}
    assert {"memory___read_graph", "files___list_directory", "fast___echo"} <= names


# --------------------------------------------------------------------------- supervision


def test_a_child_killed_mid_call_fails_the_call_restarts_and_leaves_nothing(logdir: Path, procs) -> None:
    cfg = sidecar_config([stdio_target("fast", sys.executable, [str(FASTMCP), "--stdio"], request_timeout_ms=30000)])
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["fast"])
    first = child_running(sc.pid, "fastmcp_server.py")
    assert proc_stat(first)[2] == first, "the server leads its own process group"

    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        started = time.monotonic()
        with RawMcp(sc.url, timeout=60) as c:
            outcome["reply"] = c.call("fast___slow", {"ms": 20000})
        outcome["took"] = time.monotonic() - started

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(1.0)  # the call is in flight
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)
    caller.join(timeout=30)
    assert not caller.is_alive()
    error = outcome["reply"]["error"]
    assert error["data"] == {"target": "fast", "kind": "unreachable", "tool": "fast___slow"}, error
    assert "upstream target 'fast'" in error["message"] and "signal 9 (SIGKILL)" in error["message"], error
    assert "while tools/call was in flight" in error["message"], error
    assert time.monotonic() - killed_at < 3, "the call failed at once, not at its deadline"
    assert eventually(lambda: proc_stat(first) is None), "the killed child was reaped (no zombie)"

    # The catalog kept serving, and the next call runs on a restarted server.
    with RawMcp(sc.url) as c:
        assert any(t["name"] == "fast___echo" for t in c.list_tools())
        reply = c.call("fast___echo", {"text": "after the restart"})
    assert reply["result"]["content"] == [{"type": "text", "text": "after the restart"}], reply
    second = child_running(sc.pid, "fastmcp_server.py")
    assert second != first

    # Stopping the sidecar stops its server (by process group) before it exits.
    sc.stop()
    assert sc.popen.returncode == 0, sc.logs()
    assert eventually(lambda: not group_members(second), timeout=5), [cmdline(p) for p in group_members(second)]
    assert "was killed by signal 9" in sc.stderr_path.read_text(), "the crash is in the sidecar's log"
