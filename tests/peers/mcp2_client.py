"""Python MCP SDK 2.x client probe (run with .venv-mcp2/bin/python).

    mcp2_client.py URL [--mode auto|legacy|2026-07-28] [--call NAME JSON_ARGS]...
                       [--answer JSON] [--bearer TOKEN]

Connects with `mcp.Client` (default mode "auto": opens with `server/discover` at the newest
protocol and falls back to `initialize` only when the server rejects it), lists all tools,
makes the requested calls and prints one JSON object on stdout:

    {"sdk_version", "protocol_version", "negotiated": "discover"|"initialize",
     "http": [{"method", "rpc_method", "name", "request_state", "protocol_header", "status"}...],
     "tools": [tool dicts], "calls": [{"name", "ok", "result"|"error"}...],
     "asked": [{"method", "params"}...]}

"http" records every HTTP request the SDK sent, so a caller can see whether it really
used server/discover or silently fell back to initialize, and how often a call was retried
(`request_state`: the request carried an MRTR `requestState`).

--answer gives the client callbacks, and with them the capabilities it declares; each key
present installs one callback, whose every invocation is recorded in "asked":
    {"elicitation": {"party_size": 3, "nights": 2} | {"action": "decline"},
     "sampling": "the LLM's text",
     "roots": ["file:///a", ...]}
"elicitation" holds the values for every form the client may be shown; each answer accepts
with those the form's schema asks for (or answers just the action given).
--bearer sends `Authorization: Bearer TOKEN` on every request.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def callbacks(answer: dict[str, Any], asked: list[dict[str, Any]]) -> dict[str, Any]:
    """The Client keyword arguments that answer as `answer` says, recording each question."""
    out: dict[str, Any] = {}
    if "elicitation" in answer:
        form = answer["elicitation"]

        async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            asked.append({"method": "elicitation/create", "params": _dump(params)})
            if set(form) == {"action"}:
                return types.ElicitResult(action=form["action"])
            wanted = (getattr(params, "requested_schema", None) or {}).get("properties", {})
            return types.ElicitResult(action="accept", content={k: v for k, v in form.items() if k in wanted})

        out["elicitation_callback"] = on_elicit
    if "sampling" in answer:
        text = answer["sampling"]

        async def on_sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
            asked.append({"method": "sampling/createMessage", "params": _dump(params)})
            return types.CreateMessageResult(
                role="assistant", content=types.TextContent(type="text", text=text), model="probe-model"
            )

        out["sampling_callback"] = on_sample
    if "roots" in answer:
        uris = answer["roots"]

        async def on_roots(context: Any) -> types.ListRootsResult:
            asked.append({"method": "roots/list", "params": None})
            return types.ListRootsResult(roots=[types.Root(uri=u) for u in uris])

        out["list_roots_callback"] = on_roots
    return out


async def run(
    url: str,
    mode: str,
    calls: list[tuple[str, dict[str, Any]]],
    answer: dict[str, Any] | None = None,
    bearer: str | None = None,
) -> dict[str, Any]:
    http_log: list[dict[str, Any]] = []
    asked: list[dict[str, Any]] = []

    async def on_request(request: httpx2.Request) -> None:
        entry: dict[str, Any] = {
            "method": request.method,
            "protocol_header": request.headers.get("mcp-protocol-version"),
            "rpc_method": None,
            "name": None,
            "request_state": False,
        }
        if request.method == "POST":
            try:
                body = json.loads(request.content)
                entry["rpc_method"] = body.get("method") if isinstance(body, dict) else "batch"
                params = body.get("params") if isinstance(body, dict) else None
                if isinstance(params, dict):
                    entry["name"] = params.get("name")
                    entry["request_state"] = "requestState" in params
            except Exception:  # noqa: BLE001 - a streamed body is just not recorded
                pass
        request.extensions["sidecar_log"] = entry
        http_log.append(entry)

    async def on_response(response: httpx2.Response) -> None:
        entry = response.request.extensions.get("sidecar_log")
        if entry is not None:
            entry["status"] = response.status_code

    timeout = httpx2.Timeout(30.0, read=60.0)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    async with httpx2.AsyncClient(
        timeout=timeout, headers=headers, event_hooks={"request": [on_request], "response": [on_response]}
    ) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport, mode=mode, read_timeout_seconds=60, **callbacks(answer or {}, asked)
        ) as client:
            session = client.session
            negotiated = "discover" if getattr(session, "discover_result", None) is not None else "initialize"
            tools: list[dict[str, Any]] = []
            cursor: str | None = None
            for _ in range(100):
                page = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
                tools.extend(_dump(t) for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            results: list[dict[str, Any]] = []
            for name, args in calls:
                try:
                    res = await client.call_tool(name, args)
                    results.append({"name": name, "ok": True, "result": _dump(res)})
                except MCPError as e:
                    results.append({"name": name, "ok": False, "error": {"code": e.code, "message": str(e)}})
                except Exception as e:  # noqa: BLE001 - e.g. the SDK rejecting the result's shape
                    results.append({"name": name, "ok": False, "error": {"type": type(e).__name__, "message": str(e)}})
            return {
                "sdk_version": importlib.metadata.version("mcp"),
                "protocol_version": client.protocol_version,
                "negotiated": negotiated,
                "http": http_log,
                "tools": tools,
                "calls": results,
                "asked": asked,
            }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"))
    parser.add_argument("--answer", type=json.loads, default=None, metavar="JSON")
    parser.add_argument("--bearer", default=None, metavar="TOKEN")
    args = parser.parse_args()
    calls = [(name, json.loads(a)) for name, a in args.call]
    out = anyio.run(run, args.url, args.mode, calls, args.answer, args.bearer)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
