"""Questions mid-call (elicitation, sampling, roots) through the sidecar, end to end, with real
SDK peers on both sides of it.

The upstream is fixtures/mrtr_server.py (Python SDK 2.x). It asks the way its caller's protocol
expects: `input_required` results at 2026-07-28, requests on the call's stream before. Its
`GET /diagnostics/requests` lists every JSON-RPC request it received, which is how these tests
prove what reached it (and what did not).

Sidecars (module scope unless said otherwise):
  front       target "m" at the upstream's newest version (2026-07-28, server/discover)
  front_auth  the same with inbound JWT auth (a test issuer; clients "alice" and "bob")
  pinned      target "p", the same upstream pinned to `protocol_version = "2025-11-25"`
  per test:   request_state_ttl_secs = 1 (expiry; an abandoned parked call with
              max_concurrency = 1); max_waiting_calls = 1

Clients: the Python SDK 2.x probe (mcp2_client.py, 2026-07-28), the Python SDK 1.x
ClientSession and the TypeScript SDK probe (node/ts_client.mjs), the last two speaking
2025-11-25 with callbacks that answer; raw HTTP wherever the wire itself is the assertion.

The paths covered: 2026-07-28 to 2026-07-28 (input_required passes through, its state sealed);
2026-07-28 caller to a legacy upstream (the call is parked, the retry resumes it); legacy caller
to either (the sidecar asks on the call's event stream and takes the POSTed answer back).
Also: states refused before any upstream sees them (tampered, forged, another key, another
tool, another caller, expired), callers without the capability a question needs (a quick clear
error, never a question), and the bounds on parked calls (count, and time).
About 14 s in all, most of it the two tests that wait for a 1-second state to expire.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx
import mcp.types as types1
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

from conftest import (
    ACCEPT_BOTH,
    NODE_DIR,
    PEERS,
    VENV_MCP2_PY,
    Proc,
    run_json,
    sidecar_config,
    start_sidecar,
    target_toml,
    wait_ready,
)
from test_auth import Issuer, authorizer_toml, start_issuer

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
PINNED = f'protocol_version = "{LEGACY}"'
FORM = {"party_size": 3, "outdoor": True, "arrive": "2026-08-01", "nights": 2}
LLM_TEXT = "A slow week of museums and cafes."
ROOTS = ["file:///work/alpha", "file:///work/beta"]
ANSWERS = {"elicitation": FORM, "sampling": LLM_TEXT, "roots": ROOTS}
BOOKING_QUESTION = "Book a table at Chez Relay: for how many, and outside?"
DATES_QUESTION = "When do you travel to Lisbon?"
QUICK_S = 5.0  # "a clear error quickly": far below any timeout a hang would run into


def booked() -> str:
    return "booked Chez Relay for 3, outside"


def trip(version: str) -> str:
    return f"Lisbon, 2 night(s) from 2026-08-01 ({version}): {LLM_TEXT}"


# --------------------------------------------------------------------------- fixtures


def start_front(logdir: Path, upstream: Proc, name: str, extra: str = "", inbound: str = "") -> Proc:
    cfg = sidecar_config([target_toml(name, upstream.url) + extra])
    if inbound:
        cfg = cfg.replace('auth = "none"\n', inbound)
    proc = start_sidecar(logdir, cfg)
    try:
        wait_ready(proc, [name])
    except Exception:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="module")
def front(logdir: Path, mrtr: Proc) -> Iterator[Proc]:
    proc = start_front(logdir, mrtr, "m")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pinned(logdir: Path, mrtr: Proc) -> Iterator[Proc]:
    proc = start_front(logdir, mrtr, "p", PINNED + "\n")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def issuer(logdir: Path) -> Iterator[Issuer]:
    iss = start_issuer(logdir, {"alice": ("alice-secret", ["mcp:call"]), "bob": ("bob-secret", ["mcp:call"])})
    yield iss
    iss.proc.stop()


@pytest.fixture(scope="module")
def front_auth(logdir: Path, mrtr: Proc, issuer: Issuer) -> Iterator[Proc]:
    inbound = 'auth = "jwt"\n\n' + authorizer_toml(issuer.discovery_url, allowed_clients=["alice", "bob"])
    proc = start_front(logdir, mrtr, "m", inbound=inbound)
    yield proc
    proc.stop()


def check_versions(proc: Proc, expected: dict[str, str]) -> None:
    """The sidecar reports the version it speaks to each target."""
    body = httpx.get(proc.url.rsplit("/", 1)[0] + "/readyz", timeout=5).json()
    assert {t["name"]: t["protocol_version"] for t in body["targets"]} == expected, body["targets"]


# --------------------------------------------------------------------------- helpers


def upstream_requests(mrtr: Proc) -> list[dict[str, Any]]:
    r = httpx.get(mrtr.url.rsplit("/", 1)[0] + "/diagnostics/requests", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["requests"]


def upstream_calls(mrtr: Proc, since: int = 0) -> list[dict[str, Any]]:
    """The tools/call requests the upstream received, after the first `since` requests."""
    return [r for r in upstream_requests(mrtr)[since:] if r["method"] == "tools/call"]


def modern_call(
    url: str,
    name: str,
    arguments: dict[str, Any],
    capabilities: dict[str, Any],
    rpc_id: int,
    extra: dict[str, Any] | None = None,
    token: str | None = None,
) -> httpx.Response:
    """A raw 2026-07-28 tools/call (headers and `_meta` as the version requires)."""
    body = {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": arguments,
            **(extra or {}),
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": capabilities,
            },
        },
    }
    headers = {"Accept": ACCEPT_BOTH, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=body, headers=headers, timeout=30)


def message(r: httpx.Response) -> dict[str, Any]:
    """The one JSON-RPC message of a JSON answer."""
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.headers, r.text)
    return r.json()


def input_required(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    result = message(r).get("result")
    assert result and result.get("resultType") == "input_required", r.text
    return result


def answer_for(request: dict[str, Any]) -> dict[str, Any]:
    """What a client answers to one input request (the same values the SDK probes use)."""
    if request["method"] == "elicitation/create":
        wanted = request["params"]["requestedSchema"]["properties"]
        return {"action": "accept", "content": {k: v for k, v in FORM.items() if k in wanted}}
    if request["method"] == "sampling/createMessage":
        return {"role": "assistant", "content": {"type": "text", "text": LLM_TEXT}, "model": "raw-test"}
    assert request["method"] == "roots/list", request
    return {"roots": [{"uri": u} for u in ROOTS]}


def answers(result: dict[str, Any]) -> dict[str, Any]:
    return {key: answer_for(req) for key, req in result["inputRequests"].items()}


def text_of(result: dict[str, Any]) -> str:
    return result["content"][0]["text"]


def flip(state: str) -> str:
    """The state with one character in the middle changed (still valid base64url)."""
    mid = len(state) // 2
    return state[:mid] + ("B" if state[mid] == "A" else "A") + state[mid + 1 :]


def probe_argv(
    argv: list[str], calls: list[tuple[str, dict[str, Any]]], answer: dict[str, Any] | None, bearer: str | None
) -> list[str]:
    """The command line of a client probe (mcp2_client.py and ts_client.mjs take the same options)."""
    for name, args in calls:
        argv = argv + ["--call", name, json.dumps(args)]
    if answer is not None:
        argv = argv + ["--answer", json.dumps(answer)]
    if bearer:
        argv = argv + ["--bearer", bearer]
    return argv


def sdk2(url: str, calls: list[tuple[str, dict[str, Any]]], answer: dict[str, Any] | None, bearer: str | None = None) -> dict[str, Any]:
    if not VENV_MCP2_PY.is_file():
        pytest.fail(f"{VENV_MCP2_PY} missing: run `bash tests/setup.sh`")
    return run_json(probe_argv([str(VENV_MCP2_PY), str(PEERS / "mcp2_client.py"), url], calls, answer, bearer))


def ts(url: str, calls: list[tuple[str, dict[str, Any]]], answer: dict[str, Any] | None, bearer: str | None = None) -> dict[str, Any]:
    argv = probe_argv(["node", str(NODE_DIR / "ts_client.mjs"), url], calls, answer, bearer)
    return run_json(argv, cwd=NODE_DIR)


class Sdk1Run:
    """What one Python SDK 1.x session saw: its version and session id, each call's outcome
    (result or error), and every question its callbacks were asked."""

    def __init__(self) -> None:
        self.version = ""
        self.session_id: str | None = None
        self.outcomes: dict[str, types1.CallToolResult | Exception] = {}
        self.asked: list[tuple[str, str]] = []
        self.seconds: dict[str, float] = {}


def sdk1(url: str, calls: list[tuple[str, dict[str, Any]]], kinds: tuple[str, ...]) -> Sdk1Run:
    """Runs `calls` in one Python SDK 1.x session whose callbacks answer the `kinds` given
    (and so declare only those capabilities)."""
    seen = Sdk1Run()

    async def on_elicit(context: Any, params: types1.ElicitRequestParams) -> types1.ElicitResult:
        seen.asked.append(("elicitation/create", params.message))
        wanted = params.requestedSchema.get("properties", {})
        return types1.ElicitResult(action="accept", content={k: v for k, v in FORM.items() if k in wanted})

    async def on_sample(context: Any, params: types1.CreateMessageRequestParams) -> types1.CreateMessageResult:
        seen.asked.append(("sampling/createMessage", params.messages[0].content.text))
        return types1.CreateMessageResult(
            role="assistant", content=types1.TextContent(type="text", text=LLM_TEXT), model="sdk1-test"
        )

    async def on_roots(context: Any) -> types1.ListRootsResult:
        seen.asked.append(("roots/list", ""))
        return types1.ListRootsResult(roots=[types1.Root(uri=u) for u in ROOTS])

    callbacks = {
        "elicitation": {"elicitation_callback": on_elicit},
        "sampling": {"sampling_callback": on_sample},
        "roots": {"list_roots_callback": on_roots},
    }
    chosen = {k: v for kind in kinds for k, v in callbacks[kind].items()}

    async def run() -> None:
        with anyio.fail_after(60):
            await session_run()

    async def session_run() -> None:
        async with streamablehttp_client(url, timeout=30, sse_read_timeout=60) as (read, write, session_id):
            async with ClientSession(read, write, **chosen) as session:
                seen.version = (await session.initialize()).protocolVersion
                seen.session_id = session_id()
                for name, args in calls:
                    started = time.monotonic()
                    try:
                        seen.outcomes[name] = await session.call_tool(name, args)
                    except Exception as e:  # noqa: BLE001 - the error is the outcome under test
                        seen.outcomes[name] = e
                    seen.seconds[name] = time.monotonic() - started

    anyio.run(run)
    return seen


def sdk1_text(outcome: types1.CallToolResult | Exception) -> str:
    assert isinstance(outcome, types1.CallToolResult), repr(outcome)
    assert not outcome.isError, outcome
    return outcome.content[0].text


EVERY_TOOL = [
    ("book_table", {"restaurant": "Chez Relay"}),
    ("summarize", {"text": "a long text"}),
    ("workspace_roots", {}),
    ("plan_trip", {"city": "Lisbon"}),
]


def prefixed(target: str, calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{target}___{name}", args) for name, args in calls]


# --------------------------------------------------------------------------- 1. 2026-07-28 end to end


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "jwt"])
def test_python_sdk2_answers_every_question_through_the_sidecar(
    request: pytest.FixtureRequest, mrtr: Proc, issuer: Issuer, auth: bool
) -> None:
    """A 2026-07-28 client (Python SDK 2.x) answers elicitation, sampling and roots, and
    plan_trip's two rounds, through a sidecar speaking 2026-07-28 to the upstream: every
    input_required reaches the client, every retry reaches the upstream with the upstream's
    own state back in place."""
    sidecar = request.getfixturevalue("front_auth" if auth else "front")
    check_versions(sidecar, {"m": MODERN})
    bearer = issuer.token("alice") if auth else None
    before = len(upstream_requests(mrtr))
    out = sdk2(sidecar.url, prefixed("m", EVERY_TOOL), ANSWERS, bearer)

    assert out["negotiated"] == "discover" and out["protocol_version"] == MODERN, out
    results = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in results.values()), out["calls"]
    texts = {name: text_of(c["result"]) for name, c in results.items()}
    assert texts == {
        "m___book_table": booked(),
        "m___summarize": f"summary: {LLM_TEXT}",
        "m___workspace_roots": "roots: " + ", ".join(ROOTS),
        "m___plan_trip": trip(MODERN),
    }
    assert all(c["result"]["resultType"] == "complete" for c in results.values())
    asked = [(a["method"], (a["params"] or {}).get("message")) for a in out["asked"]]
    assert asked == [
        ("elicitation/create", BOOKING_QUESTION),
        ("sampling/createMessage", None),
        ("roots/list", None),
        ("elicitation/create", DATES_QUESTION),
        ("sampling/createMessage", None),
    ], asked
    assert out["asked"][1]["params"]["messages"][0]["content"]["text"] == "Summarize in one sentence: a long text"
    assert "Plan 2 nights in Lisbon from 2026-08-01" in out["asked"][4]["params"]["messages"][0]["content"]["text"]

    # The client saw each call answered input_required first: one retry per round, each
    # carrying the sidecar's state.
    client_calls = [(h["name"], h["request_state"]) for h in out["http"] if h["rpc_method"] == "tools/call"]
    expected_rounds = {"m___book_table": 2, "m___summarize": 2, "m___workspace_roots": 2, "m___plan_trip": 3}
    for name, rounds in expected_rounds.items():
        assert [s for n, s in client_calls if n == name] == [False] + [True] * (rounds - 1), client_calls
    assert all(h["status"] == 200 for h in out["http"] if h["rpc_method"] == "tools/call"), out["http"]

    # The upstream got exactly those requests, at 2026-07-28, retries with its state and answers.
    seen = [(r["name"], r["protocol"], r["request_state"], r["input_responses"]) for r in upstream_calls(mrtr, before)]
    expected = []
    for name, rounds in expected_rounds.items():
        bare = name.split("___", 1)[1]
        expected += [(bare, MODERN, False, False)] + [(bare, MODERN, True, True)] * (rounds - 1)
    assert seen == expected


def test_first_input_required_is_the_upstreams_with_a_sealed_state(front: Proc, mrtr: Proc) -> None:
    """The first raw input_required through the sidecar carries the same inputRequests as the
    upstream answers directly, and a different requestState, which completes the call."""
    caps = {"elicitation": {}, "sampling": {}}
    for tool, args in (("book_table", {"restaurant": "Chez Relay"}), ("plan_trip", {"city": "Lisbon"})):
        direct = input_required(modern_call(mrtr.url, tool, args, caps, 1))
        relayed = input_required(modern_call(front.url, f"m___{tool}", args, caps, 2))
        assert relayed["inputRequests"] == direct["inputRequests"], (relayed, direct)
        assert direct["requestState"] and relayed["requestState"]
        assert relayed["requestState"] != direct["requestState"]
        assert set(relayed) - {"_meta"} == {"resultType", "inputRequests", "requestState"}, relayed

    # The sealed state works: plan_trip's two rounds by hand, then the result.
    first = input_required(modern_call(front.url, "m___plan_trip", {"city": "Lisbon"}, caps, 3))
    extra = {"inputResponses": answers(first), "requestState": first["requestState"]}
    second = input_required(modern_call(front.url, "m___plan_trip", {"city": "Lisbon"}, caps, 4, extra))
    assert [r["method"] for r in second["inputRequests"].values()] == ["sampling/createMessage"], second
    assert second["requestState"] != first["requestState"]
    extra = {"inputResponses": answers(second), "requestState": second["requestState"]}
    done = modern_call(front.url, "m___plan_trip", {"city": "Lisbon"}, caps, 5, extra)
    result = message(done)["result"]
    assert result["resultType"] == "complete" and text_of(result) == trip(MODERN), result


# --------------------------------------------------------------------------- 2. states refused


def refused_state(r: httpx.Response, words: str) -> None:
    """-32602 naming the state, in an HTTP 200 (a JSON-RPC error about a valid request)."""
    assert r.status_code == 200, (r.status_code, r.text)
    error = message(r)["error"]
    assert error["code"] == -32602, error
    assert "requestState" in error["message"] and words in error["message"], error
    assert error.get("data") == {"requestState": "rejected"}, error


def test_tampered_forged_and_foreign_states_never_reach_the_upstream(front: Proc, pinned: Proc, mrtr: Proc) -> None:
    caps = {"elicitation": {}, "sampling": {}}
    args = {"restaurant": "Chez Relay"}
    first = input_required(modern_call(front.url, "m___book_table", args, caps, 1))
    state, responses = first["requestState"], answers(first)
    upstreams_own = input_required(modern_call(mrtr.url, "book_table", args, caps, 2))["requestState"]
    other_sidecars = input_required(modern_call(pinned.url, "p___book_table", args, caps, 3))["requestState"]

    cases = [
        ("m___book_table", flip(state), "does not verify"),  # tampered
        ("m___book_table", state + "x", "does not verify"),  # tampered MAC
        ("m___book_table", upstreams_own, "does not verify"),  # the upstream's own (unsealed) state
        ("m___book_table", "no-state-of-ours", "not a token this sidecar issued"),
        ("m___book_table", other_sidecars, "does not verify"),  # another sidecar's key
        ("m___summarize", state, "issued for another request or caller"),  # another tool
    ]
    before = len(upstream_calls(mrtr))
    for i, (name, bad, words) in enumerate(cases):
        arguments = args if name.endswith("book_table") else {"text": "x"}
        r = modern_call(front.url, name, arguments, caps, 10 + i, {"inputResponses": responses, "requestState": bad})
        refused_state(r, words)
    assert len(upstream_calls(mrtr)) == before, "a refused state reached the upstream"

    # None of that used the genuine state up: it still completes the call.
    done = modern_call(front.url, "m___book_table", args, caps, 20, {"inputResponses": responses, "requestState": state})
    assert text_of(message(done)["result"]) == booked(), done.text
    assert len(upstream_calls(mrtr)) == before + 1


def test_expired_states_are_refused(logdir: Path, mrtr: Proc) -> None:
    """With request_state_ttl_secs = 1 a state works at once and is refused two seconds later,
    for a pass-through state (modern upstream) and for a parked call (legacy upstream)."""
    cfg = sidecar_config([target_toml("m", mrtr.url), target_toml("p", mrtr.url) + PINNED + "\n"])
    cfg = cfg.replace("[catalog]", "request_state_ttl_secs = 1\n\n[catalog]")
    proc = start_sidecar(logdir, cfg)
    try:
        wait_ready(proc, ["m", "p"])
        caps = {"elicitation": {}}
        args = {"restaurant": "Chez Relay"}
        fresh = input_required(modern_call(proc.url, "m___book_table", args, caps, 1))
        extra = {"inputResponses": answers(fresh), "requestState": fresh["requestState"]}
        assert text_of(message(modern_call(proc.url, "m___book_table", args, caps, 2, extra))["result"]) == booked()

        stale = input_required(modern_call(proc.url, "m___book_table", args, caps, 3))
        parked = input_required(modern_call(proc.url, "p___book_table", args, caps, 4))
        time.sleep(2.2)  # expiry has a one-second granularity: 1 s of life ends within 2 s
        before = len(upstream_calls(mrtr))
        for i, (name, result) in enumerate((("m___book_table", stale), ("p___book_table", parked))):
            extra = {"inputResponses": answers(result), "requestState": result["requestState"]}
            refused_state(modern_call(proc.url, name, args, caps, 5 + i, extra), "has expired")
        assert len(upstream_calls(mrtr)) == before, "an expired state reached the upstream"
    finally:
        proc.stop()


def test_a_state_is_bound_to_the_caller_with_auth_on(front_auth: Proc, mrtr: Proc, issuer: Issuer) -> None:
    alice, bob = issuer.token("alice"), issuer.token("bob")
    caps = {"elicitation": {}}
    args = {"restaurant": "Chez Relay"}
    first = input_required(modern_call(front_auth.url, "m___book_table", args, caps, 1, token=alice))
    extra = {"inputResponses": answers(first), "requestState": first["requestState"]}

    before = len(upstream_calls(mrtr))
    refused_state(
        modern_call(front_auth.url, "m___book_table", args, caps, 2, extra, token=bob),
        "issued for another request or caller",
    )
    assert len(upstream_calls(mrtr)) == before, "bob's retry with alice's state reached the upstream"
    done = modern_call(front_auth.url, "m___book_table", args, caps, 3, extra, token=alice)
    assert text_of(message(done)["result"]) == booked(), done.text


# --------------------------------------------------------------------------- 3. legacy callers, modern upstream


def test_python_sdk1_client_answers_a_modern_upstream_through_the_sidecar(front: Proc, mrtr: Proc) -> None:
    """A 2025-11-25 client with callbacks gets the upstream's input requests as requests on
    its call's stream; the sidecar retries upstream (2026-07-28) with its answers."""
    before = len(upstream_requests(mrtr))
    run = sdk1(front.url, prefixed("m", EVERY_TOOL), ("elicitation", "sampling", "roots"))
    assert run.version == LEGACY
    assert run.session_id, "a client that declared what it can answer gets a session id"
    assert {name: sdk1_text(o) for name, o in run.outcomes.items()} == {
        "m___book_table": booked(),
        "m___summarize": f"summary: {LLM_TEXT}",
        "m___workspace_roots": "roots: " + ", ".join(ROOTS),
        "m___plan_trip": trip(MODERN),
    }
    assert run.asked == [
        ("elicitation/create", BOOKING_QUESTION),
        ("sampling/createMessage", "Summarize in one sentence: a long text"),
        ("roots/list", ""),
        ("elicitation/create", DATES_QUESTION),
        ("sampling/createMessage", "Plan 2 nights in Lisbon from 2026-08-01."),
    ]
    seen = [(r["name"], r["protocol"], r["input_responses"]) for r in upstream_calls(mrtr, before)]
    assert seen == [
        ("book_table", MODERN, False), ("book_table", MODERN, True),
        ("summarize", MODERN, False), ("summarize", MODERN, True),
        ("workspace_roots", MODERN, False), ("workspace_roots", MODERN, True),
        ("plan_trip", MODERN, False), ("plan_trip", MODERN, True), ("plan_trip", MODERN, True),
    ]  # fmt: skip


def test_typescript_sdk_client_answers_a_modern_upstream_through_the_sidecar(
    front_auth: Proc, mrtr: Proc, issuer: Issuer
) -> None:
    """The TypeScript SDK (2025-11-25) with request handlers, through the sidecar with JWT auth
    on (its POSTed answers carry the token too)."""
    calls = prefixed("m", [EVERY_TOOL[0], EVERY_TOOL[1], EVERY_TOOL[3]])
    out = ts(front_auth.url, calls, {"elicitation": FORM, "sampling": LLM_TEXT}, issuer.token("bob"))
    assert out["protocolVersion"] == LEGACY, out["protocolVersion"]
    results = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in results.values()), out["calls"]
    assert {n: text_of(c["result"]) for n, c in results.items()} == {
        "m___book_table": booked(),
        "m___summarize": f"summary: {LLM_TEXT}",
        "m___plan_trip": trip(MODERN),
    }
    assert [(a["method"], a["params"].get("message")) for a in out["asked"]] == [
        ("elicitation/create", BOOKING_QUESTION),
        ("sampling/createMessage", None),
        ("elicitation/create", DATES_QUESTION),
        ("sampling/createMessage", None),
    ]


# --------------------------------------------------------------------------- 4. pinned legacy upstream


def test_python_sdk2_client_completes_parked_calls_on_a_pinned_upstream(pinned: Proc, mrtr: Proc) -> None:
    """The upstream pinned to 2025-11-25 asks mid-call; the 2026-07-28 client gets
    input_required and its retries resume the one upstream call that waits (parked)."""
    check_versions(pinned, {"p": LEGACY})
    before = len(upstream_requests(mrtr))
    calls = prefixed("p", [EVERY_TOOL[0], EVERY_TOOL[3]])
    out = sdk2(pinned.url, calls, {"elicitation": FORM, "sampling": LLM_TEXT})
    assert out["protocol_version"] == MODERN, out
    results = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in results.values()), out["calls"]
    assert {n: text_of(c["result"]) for n, c in results.items()} == {
        "p___book_table": booked(),
        "p___plan_trip": trip(LEGACY),
    }
    assert [(a["method"], (a["params"] or {}).get("message")) for a in out["asked"]] == [
        ("elicitation/create", BOOKING_QUESTION),
        ("elicitation/create", DATES_QUESTION),
        ("sampling/createMessage", None),
    ]
    client_calls = [(h["name"], h["request_state"]) for h in out["http"] if h["rpc_method"] == "tools/call"]
    assert client_calls == [
        ("p___book_table", False), ("p___book_table", True),
        ("p___plan_trip", False), ("p___plan_trip", True), ("p___plan_trip", True),
    ]  # fmt: skip
    # One upstream request per call, at 2025-11-25: the retries resumed it, never re-sent it.
    seen = [(r["name"], r["protocol"], r["request_state"]) for r in upstream_calls(mrtr, before)]
    assert seen == [("book_table", LEGACY, False), ("plan_trip", LEGACY, False)]


def test_python_sdk1_client_completes_calls_on_a_pinned_upstream(pinned: Proc, mrtr: Proc) -> None:
    """Legacy to legacy: the upstream's mid-call requests go to the client's call stream."""
    before = len(upstream_requests(mrtr))
    run = sdk1(pinned.url, prefixed("p", [EVERY_TOOL[0], EVERY_TOOL[3]]), ("elicitation", "sampling"))
    assert run.version == LEGACY and run.session_id
    assert {n: sdk1_text(o) for n, o in run.outcomes.items()} == {
        "p___book_table": booked(),
        "p___plan_trip": trip(LEGACY),
    }
    assert run.asked == [
        ("elicitation/create", BOOKING_QUESTION),
        ("elicitation/create", DATES_QUESTION),
        ("sampling/createMessage", "Plan 2 nights in Lisbon from 2026-08-01."),
    ]
    seen = [(r["name"], r["protocol"]) for r in upstream_calls(mrtr, before)]
    assert seen == [("book_table", LEGACY), ("plan_trip", LEGACY)]


# --------------------------------------------------------------------------- 5. no such capability


@pytest.mark.parametrize("era", ["modern", "pinned"])
def test_a_modern_client_without_the_capability_gets_a_quick_clear_error(
    request: pytest.FixtureRequest, mrtr: Proc, era: str
) -> None:
    """A 2026-07-28 caller that declared no elicitation is never sent an elicitation input
    request (MRTR: servers MUST NOT), whichever era the upstream speaks."""
    sidecar = request.getfixturevalue("front" if era == "modern" else "pinned")
    name = ("m" if era == "modern" else "p") + "___book_table"
    started = time.monotonic()
    r = modern_call(sidecar.url, name, {"restaurant": "Chez Relay"}, {"sampling": {}}, 1)
    took = time.monotonic() - started
    assert took < QUICK_S, f"{took:.1f} s"
    body = message(r)
    assert body.get("result", {}).get("resultType") != "input_required", body
    if era == "modern":
        # The upstream's own refusal, relayed as it sent it.
        assert r.status_code == 400, r.text
        assert body["error"]["code"] == -32021, body
        assert "elicitation" in body["error"]["message"], body
    else:
        # The sidecar refused the upstream's mid-call elicitation/create instead of parking
        # the call; the upstream (SDK 2.x) ends the call with that refusal as its error.
        assert r.status_code == 200, r.text
        assert body["error"]["message"] == "the client did not declare the capability elicitation/create needs", body


@pytest.mark.parametrize("era", ["modern", "pinned"])
@pytest.mark.parametrize("declared", [(), ("elicitation",)], ids=["no-session", "elicitation-only"])
def test_a_legacy_client_without_the_capability_gets_a_quick_clear_error(
    request: pytest.FixtureRequest, era: str, declared: tuple[str, ...]
) -> None:
    """A 2025-11-25 client that cannot answer sampling calls summarize: a clear error at once,
    with no session at all and with one that declared elicitation only."""
    sidecar = request.getfixturevalue("front" if era == "modern" else "pinned")
    name = ("m" if era == "modern" else "p") + "___summarize"
    run = sdk1(sidecar.url, [(name, {"text": "a long text"})], declared)
    assert (run.session_id is not None) == bool(declared)
    assert run.seconds[name] < QUICK_S, run.seconds
    assert run.asked == []
    outcome = run.outcomes[name]
    assert isinstance(outcome, McpError), repr(outcome)
    if era == "modern":
        # The upstream's own refusal (it was sent only what the client declared), relayed
        # in an HTTP 200, as a legacy client's transport needs it.
        expected = (-32021, "Client did not declare the sampling capability required by resolver '__main__:ask_summary'")
    elif declared:
        expected = (-32601, "the client did not declare the capability sampling/createMessage needs")
    else:
        expected = (-32601, "the client of mcp-sidecar cannot answer sampling/createMessage on this call")
    assert (outcome.error.code, outcome.error.message) == expected


# --------------------------------------------------------------------------- 6. limits


def test_parked_calls_are_bounded_by_max_waiting_calls(logdir: Path, mrtr: Proc) -> None:
    cfg = sidecar_config([target_toml("p", mrtr.url) + PINNED + "\n"])
    cfg = cfg.replace("[catalog]", "max_waiting_calls = 1\n\n[catalog]")
    proc = start_sidecar(logdir, cfg)
    try:
        wait_ready(proc, ["p"])
        caps = {"elicitation": {}}
        args = {"restaurant": "Chez Relay"}
        first = input_required(modern_call(proc.url, "p___book_table", args, caps, 1))

        started = time.monotonic()
        second = modern_call(proc.url, "p___book_table", args, caps, 2)
        assert time.monotonic() - started < QUICK_S
        assert second.status_code == 503, (second.status_code, second.text)
        error = message(second)["error"]
        assert error["code"] == -32603 and "too many calls are waiting" in error["message"], error

        # The first is still waiting, and completes.
        extra = {"inputResponses": answers(first), "requestState": first["requestState"]}
        done = modern_call(proc.url, "p___book_table", args, caps, 3, extra)
        assert text_of(message(done)["result"]) == booked(), done.text
        # Its place is free again.
        input_required(modern_call(proc.url, "p___book_table", args, caps, 4))
    finally:
        proc.stop()


def test_an_abandoned_parked_call_gives_its_upstream_slot_back_when_it_expires(logdir: Path, mrtr: Proc) -> None:
    """A parked call holds its upstream request (and so one of the target's max_concurrency
    slots) while it waits; a caller that never retries must not hold it past the state's
    expiry, whether or not another call parks after it."""
    target = target_toml("p", mrtr.url, max_concurrency=1, queue_timeout_ms=500) + PINNED + "\n"
    cfg = sidecar_config([target]).replace("[catalog]", "request_state_ttl_secs = 1\n\n[catalog]")
    proc = start_sidecar(logdir, cfg)
    try:
        wait_ready(proc, ["p"])
        caps = {"elicitation": {}}
        args = {"restaurant": "Chez Relay"}
        input_required(modern_call(proc.url, "p___book_table", args, caps, 1))  # never answered

        busy = message(modern_call(proc.url, "p___book_table", args, caps, 2))
        assert busy["error"]["data"]["kind"] == "overloaded", busy  # the parked call holds the slot

        time.sleep(2.2)
        started = time.monotonic()
        later = modern_call(proc.url, "p___book_table", args, caps, 3)
        assert time.monotonic() - started < QUICK_S
        input_required(later)  # the expired call let go of the slot
    finally:
        proc.stop()
