"""Progress notifications from server-everything's long-running tool reach the client through
the sidecar as SSE events, streamed as they happen, before the final result."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from conftest import PROTOCOL, Proc


def sse_events_timed(resp: httpx.Response) -> list[tuple[float, dict[str, Any]]]:
    """Read an SSE response incrementally; return (arrival time, JSON message) pairs."""
    out: list[tuple[float, dict[str, Any]]] = []
    data: list[str] = []
    for line in resp.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line == "":
            if data and "".join(data).strip():
                out.append((time.monotonic(), json.loads("\n".join(data))))
            data = []
    if data and "".join(data).strip():
        out.append((time.monotonic(), json.loads("\n".join(data))))
    return out


@pytest.mark.parametrize("accept", ["text/event-stream", "application/json, text/event-stream"])
def test_progress_notifications_stream_before_result(sidecar: Proc, accept: str) -> None:
    token = f"tok-{accept[:4]}"
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "everything___trigger-long-running-operation",
            "arguments": {"duration": 2, "steps": 4},
            "_meta": {"progressToken": token},
        },
    }
    headers = {"Accept": accept, "Content-Type": "application/json", "MCP-Protocol-Version": PROTOCOL}
    t0 = time.monotonic()
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", sidecar.url, content=json.dumps(body), headers=headers) as resp:
            assert resp.status_code == 200, resp.read()
            assert resp.headers["content-type"].startswith("text/event-stream"), resp.headers
            events = sse_events_timed(resp)
    msgs = [m for _, m in events]
    progress = [(t, m) for t, m in events if m.get("method") == "notifications/progress"]
    results = [(t, m) for t, m in events if m.get("id") == 7]
    assert len(results) == 1, msgs
    assert "result" in results[0][1], results[0][1]
    assert "Long running operation completed" in results[0][1]["result"]["content"][0]["text"]
    assert [m["params"]["progress"] for _, m in progress] == [1, 2, 3, 4], msgs
    assert all(m["params"]["progressToken"] == token for _, m in progress), msgs
    assert all(m["params"].get("total") == 4 for _, m in progress), msgs
    # Order: every notification precedes the result.
    assert msgs.index(results[0][1]) == len(msgs) - 1, msgs
    # Streamed, not buffered: the first notification (~0.5 s) arrives well before the result (~2 s).
    first_t, result_t = progress[0][0], results[0][0]
    assert result_t - first_t >= 0.8, (
        f"first progress at +{first_t - t0:.2f}s, result at +{result_t - t0:.2f}s: notifications were buffered"
    )


def test_no_progress_token_gives_plain_json(sidecar: Proc) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {"name": "everything___trigger-long-running-operation", "arguments": {"duration": 0.2, "steps": 2}},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": PROTOCOL,
    }
    r = httpx.post(sidecar.url, content=json.dumps(body), headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    msg = r.json()
    assert msg["id"] == 8 and "completed" in msg["result"]["content"][0]["text"], msg
