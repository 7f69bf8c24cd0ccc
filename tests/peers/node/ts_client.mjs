// TypeScript SDK client probe for mcp-sidecar tests.
//
//   node ts_client.mjs URL [--call NAME JSON_ARGS]... [--progress]
//
// Connects with Client + StreamableHTTPClientTransport, lists every tool (following
// nextCursor), makes the requested calls and prints one JSON object on stdout:
//   {"sdkVersion", "protocolVersion", "serverInfo", "tools": [...], "calls": [{name, ok, result|error, progress}]}
// With --progress each call asks for progress notifications (onprogress) and records them.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function parseArgs(argv) {
  const out = { url: null, calls: [], progress: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--call") {
      out.calls.push({ name: argv[i + 1], args: JSON.parse(argv[i + 2]) });
      i += 2;
    } else if (a === "--progress") {
      out.progress = true;
    } else if (!out.url) {
      out.url = a;
    } else {
      throw new Error(`unexpected argument ${a}`);
    }
  }
  if (!out.url) throw new Error("usage: ts_client.mjs URL [--call NAME JSON]... [--progress]");
  return out;
}

function sdkVersion() {
  const pkgPath = new URL("./node_modules/@modelcontextprotocol/sdk/package.json", import.meta.url);
  return JSON.parse(readFileSync(pkgPath, "utf8")).version;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const transport = new StreamableHTTPClientTransport(new URL(opts.url));
  const client = new Client({ name: "sidecar-ts-probe", version: "0.0.0" });
  await client.connect(transport);
  const tools = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const res = await client.listTools(cursor ? { cursor } : {});
    tools.push(...res.tools);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  const calls = [];
  for (const c of opts.calls) {
    const progress = [];
    const reqOpts = { timeout: 60000 };
    if (opts.progress) reqOpts.onprogress = (p) => progress.push(p);
    try {
      const result = await client.callTool({ name: c.name, arguments: c.args }, undefined, reqOpts);
      calls.push({ name: c.name, ok: true, result, progress });
    } catch (e) {
      calls.push({ name: c.name, ok: false, error: { code: e.code ?? null, message: String(e.message ?? e) }, progress });
    }
  }
  const out = {
    sdkVersion: sdkVersion(),
    protocolVersion: transport.protocolVersion ?? null,
    serverInfo: client.getServerVersion() ?? null,
    tools,
    calls,
  };
  await client.close();
  // Wait for the write to drain: process.exit() right after a large write to a pipe cuts it
  // off at the pipe's buffer size (64 KiB).
  await new Promise((resolve) => process.stdout.write(JSON.stringify(out) + "\n", resolve));
}

const deadline = setTimeout(() => {
  process.stderr.write("ts_client: overall timeout\n");
  process.exit(3);
}, 120000);
deadline.unref();

main().then(
  // Exit once stdout is flushed: a pipe takes large outputs in several writes.
  () => process.stdout.write("", () => process.exit(0)),
  (e) => {
    process.stderr.write(`ts_client: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
