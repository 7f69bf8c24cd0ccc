"""Python MCP SDK 2.x client probe (run with .venv-mcp2/bin/python).

    mcp2_client.py URL [--mode auto|legacy|2026-07-28] [--call NAME JSON_ARGS]...

Connects with `mcp.Client` (default mode "auto": opens with `server/discover` at the newest
protocol and falls back to `initialize` only when the server rejects it), lists all tools,
makes the requested calls and prints one JSON object on stdout:

    {"sdk_version", "protocol_version", "negotiated": "discover"|"initialize",
     "http": [{"method", "rpc_method", "protocol_header", "status"}...],
     "tools": [tool dicts], "calls": [{"name", "ok", "result"|"error"}...]}

"http" records every HTTP request the SDK sent, so a caller can see whether it really
used server/discover or silently fell back to initialize.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(url: str, mode: str, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    http_log: list[dict[str, Any]] = []

    async def on_request(request: httpx2.Request) -> None:
        entry: dict[str, Any] = {
            "method": request.method,
            "protocol_header": request.headers.get("mcp-protocol-version"),
            "rpc_method": None,
        }
        if request.method == "POST":
            try:
                body = json.loads(request.content)
                entry["rpc_method"] = body.get("method") if isinstance(body, dict) else "batch"
            except Exception:  # noqa: BLE001 - a streamed body is just not recorded
                pass
        request.extensions["sidecar_log"] = entry
        http_log.append(entry)

    async def on_response(response: httpx2.Response) -> None:
        entry = response.request.extensions.get("sidecar_log")
        if entry is not None:
            entry["status"] = response.status_code

    timeout = httpx2.Timeout(30.0, read=60.0)
    async with httpx2.AsyncClient(
        timeout=timeout, event_hooks={"request": [on_request], "response": [on_response]}
    ) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, read_timeout_seconds=60) as client:
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
            }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"))
    args = parser.parse_args()
    calls = [(name, json.loads(a)) for name, a in args.call]
    out = anyio.run(run, args.url, args.mode, calls)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
