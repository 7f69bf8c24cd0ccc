"""Builds tests/search_eval/tools.json: the tool definitions of real MCP servers.

Usage (from the repository root, with a Python that has the MCP SDK 1.x, e.g. .venv):
    .venv/bin/python tests/search_eval/build_tools.py [--only NAME ...] [--keep-dir DIR]

Every server below is installed from its package registry at the pinned version (npm with
--ignore-scripts, PyPI into a throwaway venv), started over stdio with dummy credentials
(listing tools needs none), asked for `tools/list` by the Python MCP SDK's stdio client, and
stopped. The committed tools.json is what this script wrote; the evaluation reads only that
file, so it runs offline. A server that fails to start or list is reported and left out.

Only name, title, description and inputSchema are kept (what the search index reads), plus
the server and package each tool came from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = Path(__file__).resolve().parent
OUT = HERE / "tools.json"
LIST_TIMEOUT_S = 90

DUMMY = "dummy-credential-for-listing-only"


@dataclass
class Server:
    name: str
    registry: str  # "npm" or "pypi"
    package: str  # name@version (npm) or name==version (pypi)
    command: str  # the package's executable (npm bin name or console script); "" = npm's own bin
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


SERVERS = [
    Server("everything", "npm", "@modelcontextprotocol/server-everything@2026.8.31", "mcp-server-everything", ["stdio"]),
    Server("filesystem", "npm", "@modelcontextprotocol/server-filesystem@2026.8.31", "mcp-server-filesystem", ["{tmp}"]),
    Server("memory", "npm", "@modelcontextprotocol/server-memory@2026.8.31", "mcp-server-memory"),
    Server("sequential-thinking", "npm", "@modelcontextprotocol/server-sequential-thinking@2026.8.31", "mcp-server-sequential-thinking"),
    Server("github", "npm", "@modelcontextprotocol/server-github@2025.4.8", "mcp-server-github", env={"GITHUB_PERSONAL_ACCESS_TOKEN": DUMMY}),
    Server("gitlab", "npm", "@modelcontextprotocol/server-gitlab@2025.4.25", "mcp-server-gitlab", env={"GITLAB_PERSONAL_ACCESS_TOKEN": DUMMY}),
    Server("slack", "npm", "@modelcontextprotocol/server-slack@2025.4.25", "mcp-server-slack", env={"SLACK_BOT_TOKEN": DUMMY, "SLACK_TEAM_ID": "T0"}),
    Server("google-maps", "npm", "@modelcontextprotocol/server-google-maps@0.6.2", "mcp-server-google-maps", env={"GOOGLE_MAPS_API_KEY": DUMMY}),
    Server("brave-search", "npm", "@modelcontextprotocol/server-brave-search@0.6.2", "mcp-server-brave-search", env={"BRAVE_API_KEY": DUMMY}),
    Server("puppeteer", "npm", "@modelcontextprotocol/server-puppeteer@2025.5.12", "mcp-server-puppeteer"),
    Server("postgres", "npm", "@modelcontextprotocol/server-postgres@0.6.2", "mcp-server-postgres", ["postgresql://127.0.0.1:1/db"]),
    Server("aws-kb-retrieval", "npm", "@modelcontextprotocol/server-aws-kb-retrieval@0.6.2", "mcp-server-aws-kb-retrieval"),
    Server("everart", "npm", "@modelcontextprotocol/server-everart@0.6.2", "mcp-server-everart", env={"EVERART_API_KEY": DUMMY}),
    Server("playwright", "npm", "@playwright/mcp@0.0.83", "playwright-mcp"),
    Server("chrome-devtools", "npm", "chrome-devtools-mcp@1.11.0", "chrome-devtools-mcp"),
    Server("mongodb", "npm", "mongodb-mcp-server@3.0.4", "mongodb-mcp-server"),
    Server("notion", "npm", "@notionhq/notion-mcp-server@2.5.2", "notion-mcp-server", env={"NOTION_TOKEN": DUMMY}),
    Server("context7", "npm", "@upstash/context7-mcp@4.1.1", "context7-mcp"),
    Server("firecrawl", "npm", "firecrawl-mcp@3.26.0", "firecrawl-mcp", env={"FIRECRAWL_API_KEY": DUMMY}),
    Server("tavily", "npm", "tavily-mcp@0.2.22", "tavily-mcp", env={"TAVILY_API_KEY": DUMMY}),
    Server("exa", "npm", "exa-mcp-server@3.4.1", "exa-mcp-server", env={"EXA_API_KEY": DUMMY}),
    Server("kubernetes", "npm", "mcp-server-kubernetes@4.1.7", "mcp-server-kubernetes"),
    Server("airtable", "npm", "airtable-mcp-server@1.14.0", "airtable-mcp-server", env={"AIRTABLE_API_KEY": DUMMY}),
    Server("circleci", "npm", "@circleci/mcp-server-circleci@0.20.0", "mcp-server-circleci", env={"CIRCLECI_TOKEN": DUMMY}),
    Server("neon", "npm", "@neondatabase/mcp-server-neon@0.6.5", "mcp-server-neon", ["start", DUMMY]),
    Server("jira", "npm", "@aashari/mcp-server-atlassian-jira@3.3.0", "mcp-atlassian-jira", env={"ATLASSIAN_SITE_NAME": "example", "ATLASSIAN_USER_EMAIL": "a@example.com", "ATLASSIAN_API_TOKEN": DUMMY}),
    Server("playwright-ea", "npm", "@executeautomation/playwright-mcp-server@1.0.12", ""),
    Server("launchdarkly", "npm", "@launchdarkly/mcp-server@0.6.2", "", ["start", "--api-key", DUMMY]),
    Server("sentry", "npm", "@sentry/mcp-server@0.39.0", "", ["--access-token", DUMMY]),
    Server("pinecone", "npm", "@pinecone-database/mcp@0.3.0", "", env={"PINECONE_API_KEY": DUMMY}),
    Server("taskmanager", "npm", "@kazuph/mcp-taskmanager@1.1.1", ""),
    Server("lara", "npm", "@translated/lara-mcp@1.0.6", "", env={"LARA_ACCESS_KEY_ID": DUMMY, "LARA_ACCESS_KEY_SECRET": DUMMY}),
    Server("figma", "npm", "figma-developer-mcp@0.13.2", "", ["--stdio", "--figma-api-key", DUMMY]),
    Server("hubspot", "npm", "@hubspot/mcp-server@0.4.0", "", env={"PRIVATE_APP_ACCESS_TOKEN": DUMMY}),
    # Tried and left out, since they cannot list tools offline: @modelcontextprotocol/server-redis
    # (connects first), @supabase/mcp-server-supabase (lists from its API), @azure-devops/mcp
    # (needs a native keytar build), @heroku/mcp-server (imports a missing SDK path),
    # @gongrzhe/server-gmail-autoauth-mcp (needs OAuth key files), @benborla29/mcp-server-mysql
    # (connects first), @wonderwhy-er/desktop-commander, @cloudflare/mcp-server-cloudflare,
    # @elastic/mcp-server-elasticsearch, @apify/actors-mcp-server, mcp-server-qdrant and
    # mcp-server-motherduck (fail before answering tools/list without a real backend), and
    # mcp-server-docker (its dependencies do not install on Python 3.11).
    Server("git", "pypi", "mcp-server-git==2026.10.19", "mcp-server-git"),
    Server("time", "pypi", "mcp-server-time==2026.10.19", "mcp-server-time"),
    Server("fetch", "pypi", "mcp-server-fetch==2026.10.24", "mcp-server-fetch"),
    Server("atlassian", "pypi", "mcp-atlassian==0.23.1", "mcp-atlassian", env={"JIRA_URL": "https://example.atlassian.net", "JIRA_USERNAME": "a@example.com", "JIRA_API_TOKEN": DUMMY, "CONFLUENCE_URL": "https://example.atlassian.net/wiki", "CONFLUENCE_USERNAME": "a@example.com", "CONFLUENCE_API_TOKEN": DUMMY}),
    Server("clickhouse", "pypi", "mcp-clickhouse==0.7.0", "mcp-clickhouse", env={"CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_USER": "u", "CLICKHOUSE_PASSWORD": DUMMY}),
    Server("obsidian", "pypi", "mcp-obsidian==0.2.3", "mcp-obsidian", env={"OBSIDIAN_API_KEY": DUMMY}),
    Server("zotero", "pypi", "zotero-mcp==0.3.1", "zotero-mcp"),
    Server("arxiv", "pypi", "arxiv-mcp-server==0.8.2", "arxiv-mcp-server"),
]


def run(argv: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(argv), file=sys.stderr)
    subprocess.run(argv, cwd=cwd, check=True)


def install_npm(server: Server, work: Path) -> Path:
    """One directory per server: a package whose dependencies cannot be fetched (some point
    outside the registry) fails alone."""
    npm_dir = work / f"npm-{server.name}"
    npm_dir.mkdir(parents=True, exist_ok=True)
    (npm_dir / "package.json").write_text('{"name":"search-eval-server","private":true}\n')
    package_name = server.package.rsplit("@", 1)[0]
    manifest = npm_dir / "node_modules" / package_name / "package.json"
    if not manifest.exists():
        # --ignore-scripts: no post-install downloads (browsers etc.); listing tools needs none.
        run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error", server.package], cwd=npm_dir)
    if not server.command:
        bins = json.loads(manifest.read_text()).get("bin")
        server.command = package_name.split("/")[-1] if isinstance(bins, str) else next(iter(bins))
    return npm_dir / "node_modules" / ".bin"


def install_pypi(server: Server, work: Path) -> Path:
    venv = work / f"venv-{server.name}"
    if (venv / "bin" / server.command).exists():
        return venv / "bin"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", server.package])
    return venv / "bin"


async def list_tools(command: Path, args: list[str], env: dict[str, str]) -> list[dict]:
    params = StdioServerParameters(command=str(command), args=args, env={**os.environ, **env})
    async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools, cursor = [], None
            for _ in range(50):
                page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
                tools.extend(page.tools)
                cursor = page.nextCursor
                if not cursor:
                    break
            return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def keep(tool: dict) -> dict:
    out = {"name": tool["name"]}
    for key in ("title", "description", "inputSchema"):
        if tool.get(key) is not None:
            out[key] = tool[key]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="server names to (re)build; others are kept from tools.json")
    parser.add_argument("--keep-dir", help="install into this directory (kept) instead of a temporary one")
    opts = parser.parse_args()
    chosen = [s for s in SERVERS if not opts.only or s.name in opts.only]
    previous = {}
    if opts.only and OUT.exists():
        previous = {s["server"]: s for s in json.loads(OUT.read_text())["servers"]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(opts.keep_dir) if opts.keep_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = dict(previous)
        for server in chosen:
            try:
                bin_dir = install_npm(server, work) if server.registry == "npm" else install_pypi(server, work)
                args = [a.replace("{tmp}", str(work)) for a in server.args]
                tools = asyncio.run(asyncio.wait_for(list_tools(bin_dir / server.command, args, server.env), LIST_TIMEOUT_S))
            except Exception as e:  # noqa: BLE001 - a server that cannot list is reported and skipped
                print(f"SKIP {server.name}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            print(f"ok   {server.name}: {len(tools)} tools", file=sys.stderr)
            results[server.name] = {"server": server.name, "package": server.package, "tools": [keep(t) for t in tools]}
    order = [s.name for s in SERVERS]
    servers = sorted(results.values(), key=lambda s: order.index(s["server"]) if s["server"] in order else len(order))
    servers = [s for s in servers if s["tools"]]
    OUT.write_text(json.dumps({"servers": servers}, indent=1, ensure_ascii=False) + "\n")
    total = sum(len(s["tools"]) for s in servers)
    print(f"wrote {OUT}: {len(servers)} servers, {total} tools", file=sys.stderr)


if __name__ == "__main__":
    main()
