"""The catalog (issue #5) against real peers: list_changed from server-everything, curation,
schema normalization, persistence across a restart with the upstream gone, and prompts and
resources relayed from server-everything.

Every expectation is computed from, or compared with, what the same real server answers
directly; nothing here is a mock. Sidecars, server-everything instances and the pydantic
FastMCP server are started on 127.0.0.1 and stopped by PID.
"""

from __future__ import annotations

import base64
import fnmatch
import gzip
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import (
    ACCEPT_BOTH,
    ROOT,
    SIDECAR_UPSTREAM_CAPABILITIES,
    Proc,
    RawMcp,
    base_of,
    free_port,
    response_messages,
    spawn,
    start_everything,
    start_sidecar,
    target_toml,
    toml_str,
    wait_for_port,
    wait_ready,
)

PREFIX = "everything___"
NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# A real FastMCP (Python SDK 1.x, pydantic) server whose tools have Optional/defaulted
# parameters, $defs/$ref (one recursive), Literal and enums: the schemas that break the Gateway.
PYDANTIC_SERVER = ROOT / "tests" / "fixtures" / "schema" / "gen_fastmcp_tools.py"


# --------------------------------------------------------------------------- helpers


def toml_table(d: dict[str, str]) -> str:
    """An inline TOML table with quoted keys (tool names contain `-`)."""
    return "{ " + ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in d.items()) + " }"


def config(
    targets: list[str],
    catalog: dict[str, Any] | None = None,
    admin: bool = False,
    sync_interval_secs: int = 300,
) -> str:
    """A sidecar config: loopback listener, no inbound auth, extra [catalog] keys, [admin]."""
    lines = [
        "[inbound]",
        'listen = "127.0.0.1:0"',
        'auth = "none"',
        "",
        "[catalog]",
        f"sync_interval_secs = {sync_interval_secs}",
    ]
    for k, v in (catalog or {}).items():
        lines.append(f"{k} = {toml_str(v) if isinstance(v, str) else json.dumps(v)}")
    if admin:
        lines += ["", "[admin]", "enabled = true"]
    return "\n".join(lines) + "\n\n" + "\n".join(targets)


def curation_toml(**c: Any) -> str:
    """A `[targets.curation]` table for the `[[targets]]` entry just above it."""
    lines = ["[targets.curation]"]
    for k, v in c.items():
        if isinstance(v, dict):
            lines.append(f"{k} = {toml_table(v)}")
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def readyz(sc: Proc) -> dict[str, dict[str, Any]]:
    r = httpx.get(base_of(sc.url) + "/readyz", timeout=5.0)
    body = r.json()
    return {"http": r.status_code, **{t["name"]: t for t in body.get("targets", [])}}


def admin_get(sc: Proc, path: str) -> dict[str, Any]:
    r = httpx.get(base_of(sc.url) + path, timeout=10.0)
    assert r.status_code == 200, f"GET {path}: HTTP {r.status_code} {r.text[:500]}"
    return r.json()


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {i[key]: i for i in items}


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def list_all(c: RawMcp, method: str, key: str, max_pages: int = 50) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(max_pages):
        res = c.request(method, {"cursor": cursor} if cursor else {})
        out.extend(res[key])
        cursor = res.get("nextCursor")
        if not cursor:
            return out
    raise AssertionError(f"{method} did not end within {max_pages} pages")


def error_of(msg: dict[str, Any]) -> dict[str, Any]:
    assert "error" in msg, f"expected a JSON-RPC error, got {json.dumps(msg)[:1000]}"
    return msg["error"]


def result_of(msg: dict[str, Any]) -> dict[str, Any]:
    assert "result" in msg, f"expected a result, got {json.dumps(msg)[:1000]}"
    return msg["result"]


def unstamp(text: str) -> str:
    """server-everything stamps dynamic resources with the wall-clock time of the read."""
    return re.sub(r"created at .*$", "created at <time>", text)


def start_pydantic_server(logdir: Path) -> Proc:
    port = free_port()
    proc = spawn("fastmcp-pydantic", [sys.executable, str(PYDANTIC_SERVER), str(port)], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}/mcp"
    return proc


def direct_tools(url: str) -> list[dict[str, Any]]:
    """The upstream's tools as a client with the sidecar's own capabilities sees them."""
    with RawMcp(url) as c:
        c.initialize(SIDECAR_UPSTREAM_CAPABILITIES)
        return c.list_tools()


def sidecar_tools(sc: Proc) -> list[dict[str, Any]]:
    with RawMcp(sc.url) as c:
        c.initialize()
        return c.list_tools()


# --------------------------------------------------------------------------- 1. list_changed


class EventStream:
    """Follows a session's standalone GET event stream in a thread (bounded reads)."""

    def __init__(self, url: str, session_id: str, protocol: str):
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, session_id, protocol), daemon=True)
        self._thread.start()

    def _run(self, url: str, session_id: str, protocol: str) -> None:
        headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session_id, "MCP-Protocol-Version": protocol}
        try:
            with httpx.Client(timeout=httpx.Timeout(5.0, read=10.0)) as h:
                with h.stream("GET", url, headers=headers) as r:
                    self.status = r.status_code
                    self.opened.set()
                    buf = ""
                    it = r.iter_text()
                    while not self._stop.is_set():
                        try:
                            chunk = next(it)
                        except StopIteration:
                            return
                        except httpx.ReadTimeout:
                            return  # bounded: the window watched is a few seconds long
                        buf += chunk
                        while "\n\n" in buf:
                            block, buf = buf.split("\n\n", 1)
                            data = "\n".join(ln[5:].lstrip() for ln in block.split("\n") if ln.startswith("data:"))
                            if data.strip():
                                self.events.append(json.loads(data))
        finally:
            self.opened.set()

    def stop(self) -> None:
        # The thread ends when the session is deleted (the server closes the stream) or at
        # the latest after its 10 s read timeout; it is a daemon either way.
        self._stop.set()


@pytest.fixture
def own_everything(logdir: Path, procs) -> Proc:
    """A server-everything only this test talks to (its session state and logs are ours)."""
    return procs(start_everything(logdir))


def test_everything_sends_resources_list_changed_on_the_get_stream(own_everything: Proc) -> None:
    """Precondition for the sidecar test below, checked on server-everything itself: calling
    gzip-file-as-resource (outputType resourceLink) registers a session resource, and the
    TypeScript SDK sends notifications/resources/list_changed on the standalone GET stream,
    not on the POST response of the call."""
    payload = b"direct probe for list_changed\n"
    name = "direct-probe.txt.gz"
    with RawMcp(own_everything.url) as c:
        c.initialize()
        assert c.session_id, "server-everything is stateful: it must hand out a session id"
        stream = EventStream(own_everything.url, c.session_id, c.protocol)
        try:
            assert stream.opened.wait(5.0) and stream.status == 200, f"GET stream: HTTP {stream.status}"
            c._id += 1
            r = c.post(
                {
                    "jsonrpc": "2.0",
                    "id": c._id,
                    "method": "tools/call",
                    "params": {
                        "name": "gzip-file-as-resource",
                        "arguments": {
                            "name": name,
                            "data": "data:text/plain;base64," + base64.b64encode(payload).decode(),
                            "outputType": "resourceLink",
                        },
                    },
                }
            )
            post_msgs = response_messages(r)
            assert [m.get("method") for m in post_msgs if "method" in m] == [], (
                f"no notification is expected on the POST response: {post_msgs}"
            )
            result = [m for m in post_msgs if m.get("id") == c._id][0]["result"]
            uri = f"demo://resource/session/{name}"
            assert result["content"][0]["type"] == "resource_link" and result["content"][0]["uri"] == uri, result
            wait_until(
                lambda: any(e.get("method") == "notifications/resources/list_changed" for e in stream.events),
                5.0,
                "notifications/resources/list_changed on the GET stream",
            )
        finally:
            stream.stop()
        assert uri in [x["uri"] for x in list_all(c, "resources/list", "resources")]


def test_resources_list_changed_reaches_the_catalog_without_waiting_for_the_interval(
    logdir: Path, own_everything: Proc, procs
) -> None:
    cfg = config(
        [target_toml("everything", own_everything.url, sync_interval_secs=3600)],
        sync_interval_secs=3600,
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything"])
    # The sidecar follows its upstream session's GET stream; wait (bounded) until
    # server-everything has seen that GET, so the notification has somewhere to go.
    wait_until(
        lambda: "Received MCP GET request" in own_everything.stdout_path.read_text(errors="replace"),
        10.0,
        "the sidecar opening its GET event stream on server-everything",
    )

    payload = b"relayed through mcp-sidecar\n" * 10
    name = "sidecar-probe.txt.gz"
    uri = f"demo://resource/session/{name}"
    with RawMcp(sc.url) as c:
        c.initialize()
        before = [r["uri"] for r in list_all(c, "resources/list", "resources")]
        assert uri not in before
        t0 = time.monotonic()
        call = result_of(
            c.call(
                PREFIX + "gzip-file-as-resource",
                {
                    "name": name,
                    "data": "data:text/plain;base64," + base64.b64encode(payload).decode(),
                    "outputType": "resourceLink",
                },
            )
        )
        assert call["content"] == [
            {"name": name, "uri": uri, "mimeType": "application/gzip", "type": "resource_link"}
        ], call

        listed = wait_until(
            lambda: [r for r in list_all(c, "resources/list", "resources") if r["uri"] == uri],
            5.0,
            f"{uri} in the sidecar's resources/list (sync interval is 3600 s)",
        )
        took = time.monotonic() - t0
        assert listed == [{"uri": uri, "name": name, "mimeType": "application/gzip"}]
        # Everything listed before is still there, in addition.
        after = [r["uri"] for r in list_all(c, "resources/list", "resources")]
        assert sorted(after) == sorted(before + [uri])

        # The resource lives in the sidecar's upstream session: reading it through the
        # sidecar returns the gzip of what we sent.
        read = c.request("resources/read", {"uri": uri})
        assert [x["uri"] for x in read["contents"]] == [uri]
        assert gzip.decompress(base64.b64decode(read["contents"][0]["blob"])) == payload

    assert took < 5.0
    assert readyz(sc)["everything"]["state"] == "ready"
    assert "upstream list changed; syncing" in sc.stderr_path.read_text(errors="replace"), (
        "the sidecar did not log the list_changed trigger\n" + sc.logs()
    )


# --------------------------------------------------------------------------- 2. curation

ALLOW = ["get-*", "echo", "gzip-*"]
DENY = ["get-env", "get-tiny-*"]
RENAME = {"echo": "say"}
DESCRIBE = {"get-sum": "Adds a and b (curated description).", "echo": "Says the message back."}

# What the globs leave of server-everything 2026.8.31's 13 tools, under their exposed names.
CURATED = {
    "everything___get-annotated-message": "get-annotated-message",
    "everything___get-resource-links": "get-resource-links",
    "everything___get-resource-reference": "get-resource-reference",
    "everything___get-structured-content": "get-structured-content",
    "everything___get-sum": "get-sum",
    "everything___gzip-file-as-resource": "gzip-file-as-resource",
    "everything___say": "echo",
}


def test_curation_allow_deny_rename_describe(logdir: Path, everything: Proc, direct_everything_tools, procs) -> None:
    direct = by_name(direct_everything_tools)
    # The expectation, recomputed from the real listing with the same globs.
    admitted = [
        n for n in direct if any(fnmatch.fnmatchcase(n, p) for p in ALLOW) and not any(fnmatch.fnmatchcase(n, p) for p in DENY)
    ]
    assert sorted(PREFIX + RENAME.get(n, n) for n in admitted) == sorted(CURATED), (
        "server-everything's tool list is not what this test was written against",
        sorted(direct),
    )

    cfg = config(
        [
            target_toml("everything", everything.url)
            + curation_toml(allow_tools=ALLOW, deny_tools=DENY, rename_tools=RENAME, tool_descriptions=DESCRIBE)
        ]
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything"])
    listed = by_name(sidecar_tools(sc))

    assert sorted(listed) == sorted(CURATED)
    for exposed, upstream in CURATED.items():
        want = dict(direct[upstream], name=exposed)
        if upstream in DESCRIBE:
            assert direct[upstream]["description"] != DESCRIBE[upstream]
            want["description"] = DESCRIBE[upstream]
        assert listed[exposed] == want, f"{exposed}: definition differs from the upstream's {upstream}"
    assert listed["everything___say"]["description"] == "Says the message back."
    assert listed["everything___get-sum"]["description"] == "Adds a and b (curated description)."
    assert listed["everything___get-structured-content"]["description"] == direct["get-structured-content"]["description"]

    with RawMcp(sc.url) as c, RawMcp(everything.url) as d:
        c.initialize()
        d.initialize()
        # The renamed tool is called under its new name and reaches the upstream's `echo`.
        via = result_of(c.call("everything___say", {"message": "curated hello"}))
        assert via == result_of(d.call("echo", {"message": "curated hello"}))
        assert via["content"] == [{"type": "text", "text": "Echo: curated hello"}]
        assert result_of(c.call("everything___get-sum", {"a": 2, "b": 40}))["content"][0]["text"] == "The sum of 2 and 40 is 42."
        # Denied, not allowed, and the old name of the renamed tool: unknown tool, -32602.
        for hidden in ["everything___get-env", "everything___get-tiny-image", "everything___toggle-simulated-logging", "everything___echo"]:
            err = error_of(c.call(hidden, {}))
            assert err["code"] == -32602, (hidden, err)
            assert hidden in err["message"], (hidden, err)


def test_curation_read_only_exposes_exactly_the_read_only_tools(
    logdir: Path, everything: Proc, direct_everything_tools, procs
) -> None:
    direct = by_name(direct_everything_tools)
    read_only = {n for n, t in direct.items() if (t.get("annotations") or {}).get("readOnlyHint") is True}
    writers = set(direct) - read_only
    assert read_only and writers, "server-everything should have both kinds of tools"
    assert "gzip-file-as-resource" in writers and "toggle-simulated-logging" in writers

    cfg = config([target_toml("everything", everything.url) + curation_toml(read_only=True)])
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything"])
    listed = by_name(sidecar_tools(sc))
    assert sorted(listed) == sorted(PREFIX + n for n in read_only)
    for n in read_only:
        assert listed[PREFIX + n] == dict(direct[n], name=PREFIX + n)

    with RawMcp(sc.url) as c:
        c.initialize()
        assert result_of(c.call(PREFIX + "echo", {"message": "ro"}))["content"] == [{"type": "text", "text": "Echo: ro"}]
        for n in sorted(writers):
            err = error_of(c.call(PREFIX + n, {}))
            assert err["code"] == -32602, (n, err)


def gateway_short_name(full: str, max_len: int) -> str:
    """The documented rewrite: cut to max_len - 9, `_`, 8 hex digits of SHA-256(full)."""
    stem = full[: max_len - 9].rstrip("_")
    return f"{stem}_{hashlib.sha256(full.encode()).hexdigest()[:8]}"


def test_gateway_target_name_keeps_names_within_64_with_the_gateway_prefix(
    logdir: Path, everything: Proc, direct_everything_tools, procs
) -> None:
    gw = "sidecar-behind-the-agentcore-gateway"  # 36 characters: names get 64 - 39 = 25
    max_len = 64 - len(gw) - 3
    cfg = config(
        [target_toml("everything", everything.url) + curation_toml(rename_tools={"get-sum": "sum"})],
        catalog={"gateway_target_name": gw},
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything"])
    listed = [t["name"] for t in sidecar_tools(sc)]
    expected = []
    for n in (t["name"] for t in direct_everything_tools):
        full = PREFIX + {"get-sum": "sum"}.get(n, n)
        expected.append(full if len(full) <= max_len else gateway_short_name(full, max_len))
    assert sorted(listed) == sorted(expected)
    for n in listed:
        assert NAME_RE.match(f"{gw}___{n}"), n
    assert "everything___sum" in listed  # short enough to keep
    with RawMcp(sc.url) as c:
        c.initialize()
        assert result_of(c.call("everything___sum", {"a": 1, "b": 2}))["content"][0]["text"] == "The sum of 1 and 2 is 3."
        long_echo = gateway_short_name(PREFIX + "get-annotated-message", max_len)
        res = result_of(c.call(long_echo, {"messageType": "success"}))
        assert res["content"][0]["type"] == "text", res


# --------------------------------------------------------------------------- 3. normalization

GATEWAY_TYPES = {"string", "number", "integer", "boolean", "object", "array"}
GATEWAY_KEYS = {"type", "description", "properties", "required", "items", "enum"}


def subset_violations(schema: Any, path: str = "#", root: bool = True) -> list[str]:
    """Every place where `schema` leaves the Gateway subset."""
    bad: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path}: not an object"]
    extra = set(schema) - GATEWAY_KEYS
    if extra:
        bad.append(f"{path}: keys {sorted(extra)}")
    t = schema.get("type")
    if t not in GATEWAY_TYPES:
        bad.append(f"{path}: type {t!r}")
    if root and t != "object":
        bad.append(f"{path}: root type {t!r}")
    if "properties" in schema:
        if t != "object" or not isinstance(schema["properties"], dict):
            bad.append(f"{path}: properties on {t}")
        else:
            for k, v in schema["properties"].items():
                bad += subset_violations(v, f"{path}/properties/{k}", False)
    if "required" in schema:
        req = schema["required"]
        props = schema.get("properties") or {}
        if t != "object" or not isinstance(req, list) or not req or len(set(req)) != len(req):
            bad.append(f"{path}: required {req!r}")
        elif any(r not in props for r in req):
            bad.append(f"{path}: required names a missing property {req!r}")
    if t == "array":
        if "items" not in schema:
            bad.append(f"{path}: array without items")
        else:
            bad += subset_violations(schema["items"], f"{path}/items", False)
    elif "items" in schema:
        bad.append(f"{path}: items on {t}")
    if "enum" in schema:
        e = schema["enum"]
        kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
        if t not in kinds or not isinstance(e, list) or not e or any(
            v is None or not isinstance(v, kinds[t]) or (t != "boolean" and isinstance(v, bool)) for v in e
        ):
            bad.append(f"{path}: enum {e!r} on {t}")
    if "description" in schema and not isinstance(schema["description"], str):
        bad.append(f"{path}: description is not a string")
    return bad


# Exact before (server-everything 2026.8.31, zod) and after, per the rules in
# src/catalog/schema.rs: $schema and additionalProperties dropped; default, format and
# minimum/maximum folded into the description.
EVERYTHING_BEFORE_AFTER = {
    ("get-resource-links", "inputSchema"): (
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "count": {
                    "default": 3,
                    "description": "Number of resource links to return (1-10)",
                    "type": "number",
                    "minimum": 1,
                    "maximum": 10,
                }
            },
        },
        {
            "type": "object",
            "properties": {
                "count": {
                    "type": "number",
                    "description": "Number of resource links to return (1-10) (default: 3; minimum: 1; maximum: 10)",
                }
            },
        },
    ),
    ("gzip-file-as-resource", "inputSchema"): (
        None,  # long; compared with the direct listing below
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": 'Name of the output file (default: "README.md.gz")'},
                "data": {
                    "type": "string",
                    "description": "URL or data URI of the file content to compress (default: "
                    '"https://raw.githubusercontent.com/modelcontextprotocol/servers/refs/heads/main/README.md"; format: uri)',
                },
                "outputType": {
                    "type": "string",
                    "enum": ["resourceLink", "resource"],
                    "description": "How the resulting gzipped file should be returned. 'resourceLink' returns a link to a "
                    "resource that can be read later, 'resource' returns a full resource object. (default: \"resourceLink\")",
                },
            },
        },
    ),
    ("get-structured-content", "outputSchema"): (
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "temperature": {"type": "number", "description": "Temperature in celsius"},
                "conditions": {"type": "string", "description": "Weather conditions description"},
                "humidity": {"type": "number", "description": "Humidity percentage"},
            },
            "required": ["temperature", "conditions", "humidity"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "temperature": {"type": "number", "description": "Temperature in celsius"},
                "conditions": {"type": "string", "description": "Weather conditions description"},
                "humidity": {"type": "number", "description": "Humidity percentage"},
            },
            "required": ["temperature", "conditions", "humidity"],
        },
    ),
}

# pydantic (tests/fixtures/schema/gen_fastmcp_tools.py): anyOf with null and default null
# collapse, $ref inlined (the recursive one cut to its type), const -> enum, titles dropped.
PYDANTIC_AFTER = {
    "search_tickets": {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer"},
            "priority": {"type": "string", "enum": ["low", "high"], "description": '(default: "low")'},
            "status": {"type": "string", "enum": ["open", "closed"], "description": '(default: "open")'},
            "labels": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["query"],
    },
    "set_value": {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "value": {"type": "integer"},
            "mode": {"type": "string", "enum": ["replace"], "description": '(default: "replace")'},
        },
        "required": ["key"],
    },
    "store_tree": {
        "type": "object",
        "properties": {
            "root": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"type": "object"}, "description": "(default: [])"},
                },
                "required": ["label"],
            },
            "metadata": {"type": "object"},
        },
        "required": ["root"],
    },
}


def test_schema_normalization_before_and_after(
    logdir: Path, everything: Proc, fast: Proc, direct_everything_tools, direct_fast_tools, procs
) -> None:
    pyd = procs(start_pydantic_server(logdir))
    direct_pyd = by_name(direct_tools(pyd.url))
    direct_ev = by_name(direct_everything_tools)
    direct_fast = by_name(direct_fast_tools)
    # The upstreams really do send schemas outside the subset.
    assert subset_violations(direct_ev["get-resource-links"]["inputSchema"])
    assert subset_violations(direct_pyd["search_tickets"]["inputSchema"])
    limit = direct_pyd["search_tickets"]["inputSchema"]["properties"]["limit"]
    assert limit == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Limit"}

    # Global switch on; the FastMCP target opts out per target.
    cfg = config(
        [
            target_toml("everything", everything.url),
            target_toml("pyd", pyd.url),
            target_toml("fast", fast.url, normalize_schemas=False),
        ],
        catalog={"normalize_schemas": True},
        admin=True,
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything", "pyd", "fast"])
    listed = by_name(sidecar_tools(sc))

    for target, direct in (("everything", direct_ev), ("pyd", direct_pyd)):
        for name, d in direct.items():
            got = listed[f"{target}___{name}"]
            for key in ("inputSchema", "outputSchema"):
                if key in d:
                    assert key in got, (name, key)
                    v = subset_violations(got[key])
                    assert not v, f"{target}___{name} {key} leaves the Gateway subset: {v}\n{json.dumps(got[key])}"
            # Nothing but the schemas (and the name) is touched.
            assert without(got, "name", "inputSchema", "outputSchema") == without(d, "name", "inputSchema", "outputSchema")

    for (tool, key), (before, after) in EVERYTHING_BEFORE_AFTER.items():
        if before is not None:
            assert direct_ev[tool][key] == before, f"server-everything's {tool} {key} changed upstream"
        assert listed[PREFIX + tool][key] == after, f"{tool} {key}:\n{json.dumps(listed[PREFIX + tool][key])}"
    for tool, after in PYDANTIC_AFTER.items():
        assert listed[f"pyd___{tool}"]["inputSchema"] == after, f"{tool}:\n{json.dumps(listed[f'pyd___{tool}']['inputSchema'])}"

    # The opted-out target is served exactly as its upstream lists it.
    for name, d in direct_fast.items():
        exposed = [n for n, t in listed.items() if n.startswith("fast___") and t.get("description") == d.get("description")]
        assert len(exposed) == 1, (name, exposed)
        assert listed[exposed[0]]["inputSchema"] == d["inputSchema"]

    # /admin/catalog keeps the unmodified upstream definitions and says what was changed.
    cat = admin_get(sc, "/admin/catalog")
    for target, direct in (("everything", direct_ev), ("pyd", direct_pyd), ("fast", direct_fast)):
        raw = by_name(cat["upstream_definitions"][target]["tools"])
        assert raw == direct, f"/admin/catalog upstream_definitions.{target} is not the upstream's own listing"
    notes = cat["normalized"]
    assert any(n.startswith("everything/get-resource-links inputSchema:") for n in notes), notes
    assert any(n.startswith("everything/get-structured-content outputSchema:") for n in notes), notes
    assert any(n.startswith("pyd/search_tickets inputSchema:") for n in notes), notes
    assert not any(n.startswith("fast/") for n in notes), notes

    # Arguments that follow the rewritten schema are accepted by the real upstream.
    with RawMcp(sc.url) as c:
        c.initialize()
        ok = result_of(
            c.call("pyd___search_tickets", {"query": "q", "limit": 5, "priority": "high", "status": "closed", "labels": ["x"]})
        )
        assert not ok.get("isError"), ok
        ok = result_of(c.call("pyd___set_value", {"key": "k", "value": 7, "mode": "replace"}))
        assert not ok.get("isError") and ok["content"][0]["text"] == "k", ok
        ok = result_of(c.call("pyd___store_tree", {"root": {"label": "a", "children": [{"label": "b"}]}, "metadata": {"x": "y"}}))
        assert not ok.get("isError"), ok
        ok = result_of(c.call(PREFIX + "get-resource-links", {"count": 2}))
        assert len(ok["content"]) == 3, ok  # an intro text and two links


# --------------------------------------------------------------------------- 4. persistence


def test_restart_with_upstream_gone_serves_the_saved_catalog(logdir: Path, tmp_path: Path, procs) -> None:
    state_dir = tmp_path / "state"
    ev = procs(start_everything(logdir))
    target = target_toml("everything", ev.url, sync_timeout_ms=3000, request_timeout_ms=3000, connect_timeout_ms=500)
    cfg = config([target], catalog={"state_dir": str(state_dir)}, admin=True)

    first = procs(start_sidecar(logdir, cfg))
    wait_ready(first, ["everything"])
    with RawMcp(first.url) as c:
        c.initialize()
        tools_before = c.list_tools()
        prompts_before = list_all(c, "prompts/list", "prompts")
        resources_before = list_all(c, "resources/list", "resources")
    assert len(tools_before) == len(direct_tools(ev.url))
    saved = state_dir / "everything.catalog.json"
    assert saved.is_file(), sorted(p.name for p in state_dir.iterdir()) if state_dir.exists() else "no state_dir"
    on_disk = json.loads(saved.read_text())
    assert (on_disk["format"], on_disk["version"], on_disk["target"]) == ("mcp-sidecar/catalog", 1, "everything")
    assert by_name(on_disk["listing"]["tools"]) == by_name(direct_tools(ev.url))
    assert ev.url not in saved.read_text(), "the target URL itself must not be stored"
    last_success = readyz(first)["everything"]["last_success"]

    first.popen.send_signal(signal.SIGTERM)
    assert first.popen.wait(timeout=10) == 0, first.logs()
    ev.stop()
    assert not ev.alive()

    # Same port, nothing answering: a socket that accepts connections and never replies
    # (an upstream hung mid-restart). The restored catalog is served at once; the sync
    # runs into its 3 s deadline, so `restored` is observable before `failing`.
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", ev.port))
    hole.listen(64)
    try:
        second = procs(start_sidecar(logdir, cfg))
        t0 = time.monotonic()
        with RawMcp(second.url) as c:
            c.initialize()
            tools_now = c.list_tools()  # no wait, no retry: the first answer must be complete
            first_answer_s = time.monotonic() - t0
            assert tools_now == tools_before
            assert list_all(c, "prompts/list", "prompts") == prompts_before
            assert list_all(c, "resources/list", "resources") == resources_before
        assert first_answer_s < 2.0, f"first tools/list took {first_answer_s:.2f}s"
        status = readyz(second)
        assert status["http"] == 200, status
        assert status["everything"]["state"] == "restored", status
        assert status["everything"]["tools"] == len(tools_before)
        assert status["everything"]["last_success"] == last_success, status
        assert status["everything"]["last_error"] is None, status

        failing = wait_until(
            lambda: (s := readyz(second))["everything"]["state"] == "failing" and s,
            10.0,
            "state failing after the sync deadline",
        )
        assert failing["http"] == 200, failing
        assert failing["everything"]["last_error"] and failing["everything"]["last_error_at"], failing
        assert failing["everything"]["last_success"] == last_success, failing
        assert failing["everything"]["tools"] == len(tools_before)
        with RawMcp(second.url) as c:
            assert c.list_tools() == tools_before
            t0 = time.monotonic()
            err = error_of(c.call(PREFIX + "echo", {"message": "anyone?"}))
            assert time.monotonic() - t0 < 6.0
            assert err["code"] == -32603, err
            assert (err["data"]["target"], err["data"]["kind"]) == ("everything", "timeout"), err
    finally:
        hole.close()

    second.popen.send_signal(signal.SIGTERM)
    assert second.popen.wait(timeout=10) == 0, second.logs()

    # Port closed (connection refused), and the config changed meanwhile: the saved listing
    # is the upstream's own, so the new curation and normalization apply to it at load.
    cfg3 = config(
        [
            target_toml("everything", ev.url, sync_timeout_ms=3000, request_timeout_ms=3000, connect_timeout_ms=500, normalize_schemas=True)
            + curation_toml(deny_tools=["get-env"])
        ],
        catalog={"state_dir": str(state_dir)},
        admin=True,
    )
    third = procs(start_sidecar(logdir, cfg3))
    with RawMcp(third.url) as c:
        c.initialize()
        restored = by_name(c.list_tools())
    expected = {t["name"]: t for t in tools_before if t["name"] != PREFIX + "get-env"}
    assert sorted(restored) == sorted(expected)
    for name, t in restored.items():
        assert without(t, "inputSchema", "outputSchema") == without(expected[name], "inputSchema", "outputSchema")
        assert not subset_violations(t["inputSchema"]), (name, t["inputSchema"])
    assert restored[PREFIX + "get-resource-links"]["inputSchema"] == EVERYTHING_BEFORE_AFTER[("get-resource-links", "inputSchema")][1]
    wait_until(lambda: readyz(third)["everything"]["state"] == "failing", 5.0, "state failing with the port closed")
    assert readyz(third)["http"] == 200

    # The upstream comes back on its port: the target recovers by itself and is saved anew.
    back = procs(start_everything(logdir, port=ev.port))
    wait_until(lambda: readyz(third)["everything"]["state"] == "ready", 20.0, "state ready once server-everything is back")
    assert json.loads(saved.read_text())["synced_at_unix"] >= on_disk["synced_at_unix"]
    with RawMcp(third.url) as c:
        assert result_of(c.call(PREFIX + "echo", {"message": "back"}))["content"] == [{"type": "text", "text": "Echo: back"}]
        assert sorted(t["name"] for t in c.list_tools()) == sorted(expected)
    assert back.alive()


# --------------------------------------------------------------------------- 5. prompts and resources


@pytest.fixture
def two_target_sidecar(logdir: Path, everything: Proc, fast: Proc, procs) -> Proc:
    """A fresh sidecar (so a fresh upstream session) in front of server-everything and
    FastMCP: with two targets, resource reads must be routed, not just forwarded."""
    sc = procs(start_sidecar(logdir, config([target_toml("everything", everything.url), target_toml("fast", fast.url)])))
    wait_ready(sc, ["everything", "fast"])
    return sc


def test_prompts_relayed_from_everything(two_target_sidecar: Proc, everything: Proc) -> None:
    with RawMcp(two_target_sidecar.url) as c, RawMcp(everything.url) as d:
        init = c.initialize()
        d.initialize()
        assert "prompts" in init["capabilities"], init
        direct = list_all(d, "prompts/list", "prompts")
        listed = list_all(c, "prompts/list", "prompts")
        assert sorted(p["name"] for p in listed) == sorted(PREFIX + p["name"] for p in direct)
        assert all(p["name"].startswith(PREFIX) for p in listed)
        for p in direct:
            assert by_name(listed)[PREFIX + p["name"]] == dict(p, name=PREFIX + p["name"])

        assert c.request("prompts/get", {"name": PREFIX + "simple-prompt"}) == d.request("prompts/get", {"name": "simple-prompt"})
        args = {"city": "Lyon", "state": "Rhone"}
        via = c.request("prompts/get", {"name": PREFIX + "args-prompt", "arguments": args})
        assert via == d.request("prompts/get", {"name": "args-prompt", "arguments": args})
        assert via["messages"][0]["content"]["text"] == "What's weather in Lyon, Rhone?"

        err = error_of(c.request_full("prompts/get", {"name": "simple-prompt"}))  # unprefixed: not ours
        assert err["code"] == -32602, err

        # completion/complete for a prompt argument goes to the prompt's target, by its own name.
        ref = {"type": "ref/prompt", "name": "completable-prompt"}
        arg = {"name": "department", "value": "E"}
        want = d.request("completion/complete", {"ref": ref, "argument": arg})
        got = c.request("completion/complete", {"ref": dict(ref, name=PREFIX + "completable-prompt"), "argument": arg})
        assert got == want and want["completion"]["values"] == ["Engineering"], (got, want)


def test_resources_and_templates_relayed_from_everything(two_target_sidecar: Proc, everything: Proc) -> None:
    with RawMcp(two_target_sidecar.url) as c, RawMcp(everything.url) as d:
        init = c.initialize()
        d.initialize()
        assert "resources" in init["capabilities"], init
        direct = list_all(d, "resources/list", "resources")
        listed = list_all(c, "resources/list", "resources")
        assert by_name(listed, "uri") == by_name(direct, "uri")
        assert direct, "server-everything lists static resources"

        uri = "demo://resource/static/document/architecture.md"
        assert uri in by_name(direct, "uri")
        via = c.request("resources/read", {"uri": uri})
        assert via == d.request("resources/read", {"uri": uri})
        assert via["contents"][0]["uri"] == uri and len(via["contents"][0]["text"]) > 100

        templates = c.request("resources/templates/list", {})["resourceTemplates"]
        assert templates == d.request("resources/templates/list", {})["resourceTemplates"]
        assert {t["uriTemplate"] for t in templates} == {
            "demo://resource/dynamic/text/{resourceId}",
            "demo://resource/dynamic/blob/{resourceId}",
        }

        # Not listed, matched by server-everything's template: routed to it (not to FastMCP).
        text_uri = "demo://resource/dynamic/text/42"
        via, want = c.request("resources/read", {"uri": text_uri}), d.request("resources/read", {"uri": text_uri})
        assert [(x["uri"], x["mimeType"]) for x in via["contents"]] == [(text_uri, "text/plain")]
        assert unstamp(via["contents"][0]["text"]) == unstamp(want["contents"][0]["text"])
        assert unstamp(via["contents"][0]["text"]) == "Resource 42: This is a plaintext resource created at <time>"
        blob_uri = "demo://resource/dynamic/blob/7"
        via = c.request("resources/read", {"uri": blob_uri})
        assert via["contents"][0]["uri"] == blob_uri
        assert unstamp(base64.b64decode(via["contents"][0]["blob"]).decode()) == (
            "Resource 7: This is a base64 blob created at <time>"
        )
        # The upstream's own error for a template match it refuses is relayed as such.
        bad = c.request_full("resources/read", {"uri": "demo://resource/dynamic/text/zero"})
        assert bad.get("error") == d.request_full("resources/read", {"uri": "demo://resource/dynamic/text/zero"}).get("error")
        # completion/complete for a template argument is routed by the template to its target.
        ref = {"type": "ref/resource", "uri": "demo://resource/dynamic/text/{resourceId}"}
        arg = {"name": "resourceId", "value": "12"}
        want = d.request("completion/complete", {"ref": ref, "argument": arg})
        assert want["completion"]["values"] == ["12"], want
        assert c.request("completion/complete", {"ref": ref, "argument": arg}) == want
        # A URI no target lists or matches: resource not found, named.
        err = error_of(c.request_full("resources/read", {"uri": "demo://resource/nowhere/1"}))
        assert err["code"] == -32002 and "demo://resource/nowhere/1" in err["message"], err


# --------------------------------------------------------------------------- 6. upstream restart


def test_upstream_restart_new_session_sync_and_list_changed_recover(logdir: Path, own_everything: Proc, procs) -> None:
    """server-everything restarted on the same URL forgets every session. It answers a
    request carrying the old session id with HTTP 400 and JSON-RPC -32000 "Bad Request: No
    valid session ID provided" (not the 404 the spec recommends), which is what the
    TypeScript SDK's example servers do. The sidecar must get a new session: calls and
    syncs work again, and list_changed from the new session still reaches the catalog."""
    cfg = config(
        [target_toml("everything", own_everything.url, sync_interval_secs=3600)], admin=True, sync_interval_secs=3600
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything"])
    own_everything.stop()
    again = procs(start_everything(logdir, port=own_everything.port))

    with RawMcp(again.url) as d:
        d.initialize()
        d.session_id = "0f0f0f0f-dead-4bad-8bad-000000000000"  # one it never handed out
        r = d.post({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
        assert r.status_code == 400 and r.json()["error"]["code"] == -32000, (r.status_code, r.text)

    with RawMcp(sc.url) as c:
        c.initialize()
        deadline, last = time.monotonic() + 10.0, {}
        while time.monotonic() < deadline:
            last = c.call(PREFIX + "echo", {"message": "after restart"})
            if "result" in last:
                break
            time.sleep(0.5)
        assert last.get("result", {}).get("content") == [{"type": "text", "text": "Echo: after restart"}], (
            f"tools/call {PREFIX}echo still failing 10 s after server-everything restarted: {json.dumps(last)}"
        )

        r = httpx.post(base_of(sc.url) + "/admin/sync?target=everything", timeout=30.0)
        assert r.status_code == 200 and r.json()["results"] == [{"target": "everything", "ok": True}], r.text
        assert readyz(sc)["everything"]["state"] == "ready"

        # Only list_changed can bring a new resource in now (interval 3600 s). A notification
        # sent while the sidecar has no event stream on the new session is not replayed to it,
        # so the call is repeated (each re-registers the resource and notifies again) until
        # the sidecar is listening on its new session: allowed 20 s, its reconnect backoff.
        name = "after-restart.txt.gz"
        uri = f"demo://resource/session/{name}"
        data = "data:text/plain;base64," + base64.b64encode(b"x").decode()
        deadline, seen = time.monotonic() + 20.0, False
        while not seen and time.monotonic() < deadline:
            result_of(c.call(PREFIX + "gzip-file-as-resource", {"name": name, "data": data, "outputType": "resourceLink"}))
            until = time.monotonic() + 1.5
            while not seen and time.monotonic() < until:
                seen = uri in [x["uri"] for x in list_all(c, "resources/list", "resources")]
                time.sleep(0.1)
        assert seen, f"{uri} never reached the sidecar's resources/list after the upstream restart\n{sc.logs()}"
