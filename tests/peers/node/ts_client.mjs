// TypeScript SDK client probe for mcp-sidecar tests.
//
//   node ts_client.mjs URL [--call NAME JSON_ARGS]... [--progress] [--answer JSON] [--bearer TOKEN]
//
// Connects with Client + StreamableHTTPClientTransport, lists every tool (following
// nextCursor), makes the requested calls and prints one JSON object on stdout:
//   {"sdkVersion", "protocolVersion", "serverInfo", "tools": [...],
//    "calls": [{name, ok, result|error, progress}], "asked": [{method, params}]}
// With --progress each call asks for progress notifications (onprogress) and records them.
// --answer declares client capabilities and installs a request handler for each key given,
// recording every request the server sends in "asked" (the same shape as mcp2_client.py):
//   {"elicitation": {values for any form; each answer accepts with those its schema asks for}
//                   | {"action": "decline"},
//    "sampling": "the LLM's text", "roots": ["file:///a", ...]}
// --bearer sends `Authorization: Bearer TOKEN` on every request.
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

function parseArgs(argv) {
  const out = { url: null, calls: [], progress: false, answer: null, bearer: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--call") {
      out.calls.push({ name: argv[i + 1], args: JSON.parse(argv[i + 2]) });
      i += 2;
    } else if (a === "--progress") {
      out.progress = true;
    } else if (a === "--answer") {
      out.answer = JSON.parse(argv[i + 1]);
      i += 1;
    } else if (a === "--bearer") {
      out.bearer = argv[i + 1];
      i += 1;
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

// Capabilities and handlers for the --answer keys; each request received is pushed to `asked`.
function answering(client, answer, asked) {
  if ("elicitation" in answer) {
    const form = answer.elicitation;
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push({ method: request.method, params: request.params });
      const keys = Object.keys(form);
      if (keys.length === 1 && keys[0] === "action") return { action: form.action };
      const wanted = request.params.requestedSchema?.properties ?? {};
      const content = Object.fromEntries(Object.entries(form).filter(([k]) => k in wanted));
      return { action: "accept", content };
    });
  }
  if ("sampling" in answer) {
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      asked.push({ method: request.method, params: request.params });
      return { role: "assistant", content: { type: "text", text: answer.sampling }, model: "probe-model" };
    });
  }
  if ("roots" in answer) {
    client.setRequestHandler(ListRootsRequestSchema, async (request) => {
      asked.push({ method: request.method, params: request.params ?? null });
      return { roots: answer.roots.map((uri) => ({ uri })) };
    });
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const requestInit = opts.bearer ? { headers: { Authorization: `Bearer ${opts.bearer}` } } : undefined;
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), { requestInit });
  const answer = opts.answer ?? {};
  const capabilities = {};
  if ("elicitation" in answer) capabilities.elicitation = {};
  if ("sampling" in answer) capabilities.sampling = {};
  if ("roots" in answer) capabilities.roots = {};
  const client = new Client({ name: "sidecar-ts-probe", version: "0.0.0" }, { capabilities });
  const asked = [];
  answering(client, answer, asked);
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
    asked,
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
