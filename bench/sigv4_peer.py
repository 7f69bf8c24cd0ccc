"""The Python side of `cargo bench --bench sigv4`: one MCP client (the Python SDK) driving
three paths to the same loopback upstream, so their figures compare like for like:

    direct   streamable HTTP straight to the upstream
    sidecar  streamable HTTP to mcp-sidecar, which SigV4-signs each request to the upstream
    proxy    stdio to mcp-proxy-for-aws (spawned by the SDK's stdio client), which SigV4-signs
             each request to the upstream

For each: start-up (client start → initialize → tools/list done; for the proxy this includes
spawning it), sequential tools/call latency (p50/p99 after warm-up), throughput (calls in
flight on one session for a fixed window) and, for the proxy, its RSS (VmRSS, VmHWM).
Prints one JSON object on stdout. Run with a Python that has `mcp-proxy-for-aws` installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def proxy_pid() -> int | None:
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and "mcp-proxy-for-aws" in cmd:
            return int(d.name)
    return None


def memory_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = int(v.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def measure(name: str, open_client, tool: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"path": name}
    async with AsyncExitStack() as stack:
        t0 = time.perf_counter()
        read, write = (await stack.enter_async_context(open_client()))[:2]
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        tools = (await session.list_tools()).tools
        out["startup_ms"] = (time.perf_counter() - t0) * 1000
        assert any(t.name == tool for t in tools), f"{name}: no tool {tool} in {[t.name for t in tools][:10]}"

        async def one() -> None:
            r = await session.call_tool(tool, {"text": "bench"})
            if r.isError:
                raise RuntimeError(f"{name}: tool error {r}")

        for _ in range(args.warmup):
            await one()
        samples = []
        for _ in range(args.calls):
            t = time.perf_counter()
            await one()
            samples.append((time.perf_counter() - t) * 1000)
        out["p50_ms"] = pct(samples, 50)
        out["p99_ms"] = pct(samples, 99)
        out["mean_ms"] = statistics.fmean(samples)
        out["calls"] = len(samples)

        done = 0
        errors = 0
        end = time.perf_counter() + args.window

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < end:
                try:
                    await one()
                    done += 1
                except Exception:  # noqa: BLE001 - counted, reported
                    errors += 1
                    if errors > 100:
                        return

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        out["throughput_per_s"] = done / (time.perf_counter() - t)
        out["throughput_errors"] = errors
        if name == "proxy":
            pid = proxy_pid()
            if pid is not None:
                out["rss_kib"], out["hwm_kib"] = memory_kib(pid)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--sidecar", required=True)
    ap.add_argument("--sidecar-tool", default="upstream___echo")
    ap.add_argument("--proxy", required=True, help="path of the mcp-proxy-for-aws executable")
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    proxy_params = StdioServerParameters(
        command=args.proxy,
        args=[args.upstream, "--service", "aws-mcp", "--region", "us-east-1", "--log-level", "ERROR"],
        env={**os.environ},
    )
    paths = {
        "direct": (lambda: streamablehttp_client(args.upstream), "echo"),
        "sidecar": (lambda: streamablehttp_client(args.sidecar), args.sidecar_tool),
        "proxy": (lambda: stdio_client(proxy_params), "echo"),
    }
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in paths}
    # Alternate the paths over several rounds so background noise hits all alike.
    for _ in range(args.rounds):
        for name, (opener, tool) in paths.items():
            results[name].append(await measure(name, opener, tool, args))
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
