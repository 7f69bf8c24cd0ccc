"""The MRTR upstream (fixtures/mrtr_server.py, Python SDK 2.x) asks its client the way each
protocol generation expects, checked directly, without the sidecar: the peer tests that put the
sidecar in front of it rely on exactly this.

  * 2026-07-28: `tools/call` answers `input_required` with an `elicitation/create` input request
    and a sealed `requestState`; the retry with `inputResponses` and the echoed state completes;
    a tampered state is refused (raw HTTP, so the wire itself is what is asserted).
  * 2025-11-25: the Python SDK 1.x client is sent `elicitation/create` mid-call, and its answer
    shapes the result.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import mcp.types as types1
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from conftest import ACCEPT_BOTH, Proc

MODERN = "2026-07-28"


def modern_call(url: str, params: dict[str, Any], capabilities: dict[str, Any], rpc_id: int) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "method": "tools/call",
        "params": {
            **params,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": capabilities,
            },
        },
    }
    headers = {
        "Accept": ACCEPT_BOTH,
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": params["name"],
    }
    return httpx.post(url, json=body, headers=headers, timeout=30)


def test_mrtr_fixture_asks_through_input_required_at_2026(mrtr: Proc) -> None:
    call = {"name": "book_table", "arguments": {"restaurant": "Chez Test"}}
    first = modern_call(mrtr.url, call, {"elicitation": {}}, 1)
    assert first.status_code == 200, first.text
    result = first.json()["result"]
    assert result["resultType"] == "input_required", result
    (key, request), *more = result["inputRequests"].items()
    assert not more and request["method"] == "elicitation/create", result
    assert "party_size" in request["params"]["requestedSchema"]["properties"]
    state = result["requestState"]

    answer = {key: {"action": "accept", "content": {"party_size": 3, "outdoor": True}}}
    retry = modern_call(mrtr.url, {**call, "inputResponses": answer, "requestState": state}, {"elicitation": {}}, 2)
    done = retry.json()["result"]
    assert done["resultType"] == "complete", done
    assert done["content"][0]["text"] == "booked Chez Test for 3, outside"

    mid = len(state) // 2  # a character in the middle maps to whole bytes of the sealed state
    forged = state[:mid] + ("B" if state[mid] == "A" else "A") + state[mid + 1 :]
    tampered = modern_call(mrtr.url, {**call, "inputResponses": answer, "requestState": forged}, {"elicitation": {}}, 3)
    assert tampered.json()["error"]["code"] == -32602, tampered.text

    refused = modern_call(mrtr.url, call, {}, 4).json()
    assert refused["error"]["code"] == -32021, refused


def test_mrtr_fixture_asks_mid_call_at_2025_with_sdk1_client(mrtr: Proc) -> None:
    asked: list[str] = []

    async def on_elicit(context: Any, params: types1.ElicitRequestParams) -> types1.ElicitResult:
        asked.append(params.message)
        return types1.ElicitResult(action="accept", content={"party_size": 2, "outdoor": False})

    async def run() -> tuple[str, types1.CallToolResult]:
        async with streamablehttp_client(mrtr.url, timeout=30, sse_read_timeout=60) as (read, write, _):
            async with ClientSession(read, write, elicitation_callback=on_elicit) as session:
                init = await session.initialize()
                return init.protocolVersion, await session.call_tool("book_table", {"restaurant": "Chez Test"})

    version, result = anyio.run(run)
    assert version == "2025-11-25"
    assert asked == ["Book a table at Chez Test: for how many, and outside?"]
    assert not result.isError and result.content[0].text == "booked Chez Test for 2, inside"
