"""What the sidecar relays must arrive unchanged: tool definitions (title, annotations,
outputSchema, inputSchema, execution, ...) and call results (content with annotations,
images, structuredContent, isError). Compared as raw JSON against a direct connection."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conftest import Proc, RawMcp, sidecar_config, start_sidecar, target_toml, wait_ready

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def without_name(tool: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tool.items() if k != "name"}


def test_tools_list_names_valid_and_unique(sidecar_tools) -> None:
    names = [t["name"] for t in sidecar_tools]
    assert len(names) == len(set(names)), names
    assert [n for n in names if not NAME_RE.match(n)] == []
    assert {n.split("___", 1)[0] for n in names} == {"everything", "fast"}, names


@pytest.mark.parametrize("target", ["everything", "fast"])
def test_tool_definitions_survive_unchanged(target, sidecar_tools, direct_everything_tools, direct_fast_tools) -> None:
    direct = direct_everything_tools if target == "everything" else direct_fast_tools
    relayed = {t["name"]: t for t in sidecar_tools if t["name"].startswith(f"{target}___")}
    assert direct, "direct listing is empty"
    checked = 0
    for d in direct:
        exposed = f"{target}___{d['name']}"
        if len(exposed) > 64:
            continue  # shortened name: covered by test_clients.py
        assert exposed in relayed, f"{exposed} missing; sidecar has {sorted(relayed)}"
        assert without_name(relayed[exposed]) == without_name(d), f"{exposed} changed in relay"
        checked += 1
    assert checked >= (10 if target == "everything" else 4)
    if target == "everything":
        # The fields named in the brief are really present, so the comparison above covers them.
        sc = relayed["everything___get-structured-content"]
        assert sc["title"] == "Get Structured Content Tool"
        assert sc["outputSchema"]["properties"]["temperature"]["type"] == "number"
        assert sc["annotations"]["readOnlyHint"] is True


def unstamp(msg: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(msg)
    stamped = re.sub(r"created at [^\"]*", "created at <time>", text)
    return json.loads(stamped)


CALLS = [
    ("everything", "get-structured-content", {"location": "Chicago"}),
    ("everything", "get-annotated-message", {"messageType": "error", "includeImage": True}),
    ("everything", "get-tiny-image", {}),
    ("everything", "get-resource-reference", {"resourceType": "Text", "resourceId": 2}),
    # Valid by schema, but the tool throws: the upstream answers a result with isError: true.
    ("everything", "get-resource-reference", {"resourceType": "Text", "resourceId": 1.5}),
    ("fast", "add", {"a": 0.5, "b": 0.25}),
    ("fast", "fail", {"message": "boom 42"}),
    ("fast", "echo", {"text": "ünïcödé ✓ \"quotes\" \n newline"}),
]


@pytest.mark.parametrize("target,tool,args", CALLS, ids=[f"{t}-{n}" for t, n, _ in CALLS])
def test_call_results_survive_unchanged(target, tool, args, sidecar: Proc, everything: Proc, fast: Proc) -> None:
    upstream = everything if target == "everything" else fast
    with RawMcp(upstream.url) as direct:
        direct.initialize()
        want = direct.call(tool, args)
    with RawMcp(sidecar.url) as via:
        via.initialize()
        got = via.call(f"{target}___{tool}", args)
    assert "result" in want, want
    assert "error" not in got, f"sidecar answered an error: {got}"
    if tool == "get-resource-reference":
        # server-everything stamps the resource text with the wall-clock time of the call.
        want, got = unstamp(want), unstamp(got)
    assert got["result"] == want["result"], f"result changed in relay:\n direct: {want}\n relayed: {got}"
    if tool == "fail" or args.get("resourceId") == 1.5:
        assert got["result"]["isError"] is True
    if tool == "get-structured-content":
        assert got["result"]["structuredContent"]["conditions"] == "Light rain / drizzle"
    if tool == "get-annotated-message":
        assert got["result"]["content"][0]["annotations"] == {"priority": 1, "audience": ["user", "assistant"]}
        assert got["result"]["content"][1]["type"] == "image"


def test_concurrent_calls_are_not_serialized(raw_sidecar: RawMcp) -> None:
    """8 calls that each take 1 s upstream finish together in well under 8 s."""
    n, ms = 8, 1000

    def one(i: int) -> dict[str, Any]:
        with RawMcp(raw_sidecar.url) as c:
            return c.call("fast___slow", {"ms": ms})

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    elapsed = time.monotonic() - t0
    for r in results:
        assert r.get("result", {}).get("content") == [{"type": "text", "text": f"slept {ms} ms"}], r
    assert elapsed < 4.0, f"{n} concurrent 1 s calls took {elapsed:.1f}s"


def test_pagination_walks_whole_catalog(logdir, everything: Proc, fast: Proc, sidecar_tools, procs) -> None:
    """With page_size = 4 the cursor walk returns the same tools, in pages of at most 4."""
    cfg = sidecar_config([target_toml("everything", everything.url), target_toml("fast", fast.url)], page_size=4)
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything", "fast"])
    with RawMcp(sc.url) as c:
        c.initialize()
        pages, cursor = [], None
        for _ in range(50):
            res = c.request("tools/list", {"cursor": cursor} if cursor else {})
            pages.append(res["tools"])
            cursor = res.get("nextCursor")
            if not cursor:
                break
        assert cursor is None, "pagination did not end"
        bad = c.request_full("tools/list", {"cursor": "not-a-real-cursor"})
    assert all(len(p) <= 4 for p in pages), [len(p) for p in pages]
    assert len(pages) >= 2
    walked = [t["name"] for p in pages for t in p]
    assert len(walked) == len(set(walked)), walked
    assert sorted(walked) == sorted(t["name"] for t in sidecar_tools)
    assert bad.get("error", {}).get("code") == -32602, f"bogus cursor: {bad}"
