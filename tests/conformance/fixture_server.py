"""The MCP conformance suites' fixture server (Python MCP SDK 2.x `MCPServer`), the upstream behind
mcp-sidecar when the suites' server scenarios run against the sidecar.

Usage (with the SDK 2.x venv that tests/setup.sh makes):
    .venv-mcp2/bin/python tests/conformance/fixture_server.py --port P

Serves streamable HTTP at http://127.0.0.1:P/mcp (loopback only; the SDK then checks Host and
Origin against DNS rebinding) to both protocol generations on the one endpoint:

  * 2025-11-25 and older (`initialize`, then a session): stateful, answers on SSE streams,
    keeps an in-memory event store so a client can resume a stream (SEP-1699). A tool that
    needs the client (sampling, elicitation, roots) sends that request mid-call, as those
    revisions do; when the client did not declare the capability the tool answers with a tool
    error (as the stable suite's scenarios ask).
  * 2026-07-28 (`server/discover`, per-request `_meta`, no session): the same tools ask through
    multi round-trip requests instead (SEP-2322: an `input_required` result, the client retries
    with `inputResponses` and the echoed `requestState`, which the SDK seals and verifies).
    Removed methods (`initialize`, `ping`, `logging/setLevel`, `resources/subscribe`, ...)
    answer HTTP 404 with -32601; change notifications go to `subscriptions/listen` streams;
    every cacheable result carries `ttlMs`/`cacheScope` (SEP-2549).

So the sidecar may talk to it at whichever version it negotiates, while the stable suite
(`@modelcontextprotocol/conformance` 0.1.13, 2025-11-25) and the newest one (0.2.0-alpha,
`server --requirements 2026-07-28`) both pass against it directly. What each scenario calls, as
read from the suites' scenario definitions:

    tools-list, tools-call-*            test_simple_text, test_image_content, test_audio_content,
                                        test_embedded_resource, test_multiple_content_types,
                                        test_tool_with_logging, test_tool_with_progress,
                                        test_error_handling, test_sampling, test_elicitation
    elicitation-sep1034-defaults        test_elicitation_sep1034_defaults
    elicitation-sep1330-enums           test_elicitation_sep1330_enums
    json-schema-2020-12                 json_schema_2020_12_tool
    server-sse-polling                  test_reconnection (closes its SSE stream mid-call)
    input-required-result-*             test_input_required_result_{elicitation, sampling,
                                        list_roots, request_state, multiple_inputs, multi_round,
                                        tampered_state, capabilities}; the prompt
                                        test_input_required_result_prompt
    server-stateless                    test_missing_capability, test_streaming_elicitation,
                                        test_logging_tool, test_trigger_tool_change,
                                        test_trigger_prompt_change
    prompts-*                           test_simple_prompt, test_prompt_with_arguments,
                                        test_prompt_with_embedded_resource, test_prompt_with_image
    resources-*, caching                test://static-text, test://static-binary,
                                        test://template/{id}/data, test://watched-resource
    completion-complete                 completion/complete (arguments of test_prompt_with_arguments)
    logging-set-level                   logging/setLevel (filters later log notifications)
    the rest (server-initialize, ping, sep-2164-resource-not-found, dns-rebinding-protection,
    server-sse-multiple-streams, server-session-lifecycle): the SDK itself
"""

from __future__ import annotations

import argparse
import base64
import collections
import io
import itertools
import json
import struct
import warnings
import wave
from typing import Any

import anyio
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import is_version_at_least

# The SDK marks logging as deprecated at 2026-07-28; the 2025 scenarios still exercise it.
warnings.filterwarnings("ignore", message="The logging capability is deprecated")

# A 1x1 red PNG.
RED_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)

# The first revision where a server asks through `input_required` results instead of requests.
MRTR_VERSION = "2026-07-28"

LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

# The tool schema the json-schema-2020-12 scenarios look for: SEP-1613 ($schema, $defs,
# additionalProperties) and the wider SEP-2106 vocabulary ($anchor, allOf/anyOf, if/then/else).
JSON_SCHEMA_2020_12_INPUT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

# Cacheable results say "stale at once, this caller only": the catalog may change while a
# suite runs (the trigger tools), and nothing here is worth a shared cache.
CACHE_HINTS = {
    method: CacheHint(ttl_ms=0, scope="private")
    for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")
}


def _tiny_wav() -> str:
    """Base64 of a 10 ms, 8 kHz, 16-bit mono WAV of silence."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<80h", *([0] * 80)))
    return base64.b64encode(buf.getvalue()).decode("ascii")


SILENT_WAV = _tiny_wav()


class MemoryEventStore(EventStore):
    """Keeps the last events of every SSE stream so a client can resume with Last-Event-ID."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: collections.deque = collections.deque(maxlen=max_events)
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: Any) -> EventId:
        event_id = str(next(self._ids))
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        stream_id = next((sid for eid, sid, _ in self._events if eid == last_event_id), None)
        if stream_id is None:
            return None
        after = False
        for event_id, sid, message in list(self._events):
            if after and sid == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id


# What a tool that may ask the client returns: its result, or (2026-07-28) what it needs first.
ToolAnswer = types.CallToolResult | types.InputRequiredResult


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _image() -> types.ImageContent:
    return types.ImageContent(type="image", data=RED_PIXEL_PNG, mime_type="image/png")


def _result(text: str, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(text)], is_error=is_error)


# ---- asking the client, in either generation ------------------------------------------------


def elicit(message: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An `elicitation/create` (form mode) request, as a wire dict."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        schema["required"] = required
    return {"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}}


def sample(prompt: str, max_tokens: int) -> dict[str, Any]:
    """A `sampling/createMessage` request for one user message, as a wire dict."""
    return {
        "method": "sampling/createMessage",
        "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
            "maxTokens": max_tokens,
        },
    }


LIST_ROOTS: dict[str, Any] = {"method": "roots/list", "params": {}}

# Which client capability each kind of question needs.
CAPABILITY_OF = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
SERVER_REQUEST = {
    "elicitation/create": (types.ElicitRequest, types.ElicitResult),
    "sampling/createMessage": (types.CreateMessageRequest, types.CreateMessageResult),
    "roots/list": (types.ListRootsRequest, types.ListRootsResult),
}


def speaks_mrtr(ctx: Context) -> bool:
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, MRTR_VERSION)


def declared(ctx: Context) -> set[str]:
    """The client capabilities (of those a question needs) this request's client declared."""
    caps = ctx.client_capabilities
    if caps is None:
        return set()
    return {name for name in ("elicitation", "sampling", "roots") if getattr(caps, name, None) is not None}


def _as_wire(response: Any) -> dict[str, Any]:
    if isinstance(response, dict):
        return response
    return response.model_dump(by_alias=True, mode="json", exclude_none=True)


async def ask(
    ctx: Context, questions: dict[str, dict[str, Any]], state: str | None = None
) -> dict[str, dict[str, Any]] | types.InputRequiredResult:
    """Gets the client's answers to `questions` (key -> request), in the client's generation.

    At 2026-07-28: the answers from this request's `inputResponses` when every key is there
    (extra keys are ignored); otherwise an `input_required` result asking for the missing ones,
    carrying `state` (sealed by the SDK) for the retry. Before 2026-07-28: each question is sent
    to the client mid-call on this request's stream, and its answer awaited. Either way a client
    that did not declare the capability a question needs gets error -32021 naming it, and is
    never asked.
    """
    missing = sorted({CAPABILITY_OF[q["method"]] for q in questions.values()} - declared(ctx))
    if missing:
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message=f"the client did not declare the {', '.join(missing)} capability this tool needs",
            data={"requiredCapabilities": {capability: {} for capability in missing}},
        )
    if speaks_mrtr(ctx):
        given = ctx.input_responses or {}
        unanswered = {key: request for key, request in questions.items() if key not in given}
        if not unanswered:
            return {key: _as_wire(given[key]) for key in questions}
        return types.InputRequiredResult.model_validate({"inputRequests": unanswered, "requestState": state})
    answers: dict[str, dict[str, Any]] = {}
    for key, question in questions.items():
        request_type, result_type = SERVER_REQUEST[question["method"]]
        request = request_type.model_validate(question)
        result = await ctx.session.send_request(
            request, result_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
        )
        answers[key] = _as_wire(result)
    return answers


async def ask_then(
    ctx: Context, questions: dict[str, dict[str, Any]], reply: Any, state: str | None = None
) -> ToolAnswer:
    """`ask`, then the text result `reply(answers)` once every answer is in."""
    answers = await ask(ctx, questions, state)
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return _result(reply(answers))


def _content(answer: dict[str, Any], field: str) -> Any:
    """One field of an accepted elicitation's content ("" when absent)."""
    return (answer.get("content") or {}).get(field, "")


def lacks(ctx: Context, *capabilities: str) -> types.CallToolResult | None:
    """A tool error when the client did not declare one of `capabilities` (as the scenarios ask)."""
    missing = [c for c in capabilities if c not in declared(ctx)]
    if not missing:
        return None
    return _result(f"the client does not support {', '.join(missing)}", is_error=True)


def _elicited(answer: dict[str, Any]) -> str:
    return f"action={answer.get('action')}, content={json.dumps(answer.get('content'))}"


def _sampled(answer: dict[str, Any]) -> str:
    content = answer.get("content")
    if isinstance(content, list):
        content = content[0] if content else {}
    return content.get("text", "") if isinstance(content, dict) else str(content)


def build() -> MCPServer:
    mcp = MCPServer(
        "sidecar-conformance-fixture",
        version="1.0.0",
        instructions="Fixture server for the MCP conformance suites.",
        log_level="WARNING",
        cache_hints=CACHE_HINTS,
    )
    low = mcp._lowlevel_server

    # Log level per session for 2025-era clients (logging/setLevel); "debug", i.e. everything,
    # until the client sets one. At 2026-07-28 the SDK filters by the request's own _meta.
    session_levels: dict[str, str] = {}

    def session_of(ctx: Context) -> str:
        return (ctx.headers or {}).get("mcp-session-id", "")

    async def log(ctx: Context, level: str, message: str) -> None:
        threshold = session_levels.get(session_of(ctx), "debug")
        if LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold):
            await ctx.log(level, message)  # type: ignore[arg-type]

    async def set_level(ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        session_levels[(ctx.request.headers if ctx.request else {}).get("mcp-session-id", "")] = params.level
        return types.EmptyResult()

    low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)

    # ---- tools: content ----------------------------------------------------------------------

    @mcp.tool(description="Returns a simple text response.")
    def test_simple_text() -> types.CallToolResult:
        return _result("This is a simple text response for testing.")

    @mcp.tool(description="Returns a 1x1 red PNG image.")
    def test_image_content() -> types.CallToolResult:
        return types.CallToolResult(content=[_image()])

    @mcp.tool(description="Returns a short WAV audio clip.")
    def test_audio_content() -> types.CallToolResult:
        return types.CallToolResult(content=[types.AudioContent(type="audio", data=SILENT_WAV, mime_type="audio/wav")])

    @mcp.tool(description="Returns an embedded text resource.")
    def test_embedded_resource() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])

    @mcp.tool(description="Returns text, an image and an embedded resource.")
    def test_multiple_content_types() -> types.CallToolResult:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
        )
        return types.CallToolResult(
            content=[
                _text("Multiple content types test:"),
                _image(),
                types.EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @mcp.tool(description="Always returns a tool error (isError: true).")
    def test_error_handling() -> types.CallToolResult:
        return _result("This tool intentionally returns an error for testing", is_error=True)

    @mcp.tool(
        name="json_schema_2020_12_tool",
        description="Tool with JSON Schema 2020-12 features",
    )
    def json_schema_2020_12_tool() -> types.CallToolResult:
        return _result("ok")

    @mcp.tool(description="Echoes its region; 2026-07-28 clients mirror it into the Mcp-Param-Region header.")
    def test_header_param(region: str) -> types.CallToolResult:
        return _result(f"region={region}")

    # MCPServer derives inputSchema from the signature; these tools advertise the suites' schemas
    # (the SDK checks Mcp-Param-* headers against the x-mcp-header annotation, SEP-2243).
    mcp._tool_manager.get_tool("json_schema_2020_12_tool").parameters = JSON_SCHEMA_2020_12_INPUT
    mcp._tool_manager.get_tool("test_header_param").parameters = {
        "type": "object",
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
        "required": ["region"],
    }

    # ---- tools: notifications during a call --------------------------------------------------

    async def three_logs(ctx: Context) -> None:
        await log(ctx, "info", "Tool execution started")
        await anyio.sleep(0.05)
        await log(ctx, "info", "Tool processing data")
        await anyio.sleep(0.05)
        await log(ctx, "info", "Tool execution completed")

    @mcp.tool(description="Sends three info log notifications while it runs.")
    async def test_tool_with_logging(ctx: Context) -> types.CallToolResult:
        await three_logs(ctx)
        return _result("Tool with logging executed successfully")

    @mcp.tool(description="Logs three info messages (delivered only when the request asks for logs).")
    async def test_logging_tool(ctx: Context) -> types.CallToolResult:
        await three_logs(ctx)
        return _result("Logging tool completed")

    @mcp.tool(description="Reports progress 0, 50 and 100 of 100 when given a progress token.")
    async def test_tool_with_progress(ctx: Context) -> types.CallToolResult:
        for step in (0, 50, 100):
            if step:
                await anyio.sleep(0.05)
            await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        return _result("Tool with progress executed successfully")

    @mcp.tool(description="Closes the SSE stream of this call, then answers (the client resumes with GET).")
    async def test_reconnection(ctx: Context) -> types.CallToolResult:
        await anyio.sleep(0.05)
        await ctx.close_sse_stream()
        await anyio.sleep(0.1)
        return _result("Reconnection test completed successfully")

    @mcp.tool(description="Announces a tools list change to subscriptions/listen streams.")
    async def test_trigger_tool_change(ctx: Context) -> types.CallToolResult:
        await ctx.notify_tools_changed()
        return _result("tools list change announced")

    @mcp.tool(description="Announces a prompts list change to subscriptions/listen streams.")
    async def test_trigger_prompt_change(ctx: Context) -> types.CallToolResult:
        await ctx.notify_prompts_changed()
        return _result("prompts list change announced")

    # ---- tools: asking the client (requests before 2026-07-28, input_required from then) ----

    @mcp.tool(description="Asks the client's LLM (sampling/createMessage) to answer the prompt.")
    async def test_sampling(prompt: str, ctx: Context) -> ToolAnswer:
        if refused := lacks(ctx, "sampling"):
            return refused
        return await ask_then(
            ctx, {"llm": sample(prompt, 100)}, lambda answers: f"LLM response: {_sampled(answers['llm'])}"
        )

    @mcp.tool(description="Asks the user for a username and email (elicitation/create).")
    async def test_elicitation(message: str, ctx: Context) -> ToolAnswer:
        if refused := lacks(ctx, "elicitation"):
            return refused
        question = elicit(
            message,
            {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            ["username", "email"],
        )
        return await ask_then(ctx, {"user": question}, lambda answers: f"User response: {_elicited(answers['user'])}")

    @mcp.tool(description="Elicitation whose schema has a default for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> ToolAnswer:
        if refused := lacks(ctx, "elicitation"):
            return refused
        question = elicit(
            "Please review and update the form fields with defaults",
            {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
            [],
        )
        return await ask_then(
            ctx, {"form": question}, lambda answers: f"Elicitation completed: {_elicited(answers['form'])}"
        )

    @mcp.tool(description="Elicitation with all five enum schema variants (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> ToolAnswer:
        if refused := lacks(ctx, "elicitation"):
            return refused

        def titled(prefix: str, names: list[str]) -> list[dict[str, str]]:
            return [{"const": f"value{i}", "title": f"{name} {prefix}"} for i, name in enumerate(names, 1)]

        question = elicit(
            "Please select options from the enum fields",
            {
                "untitledSingle": {
                    "type": "string",
                    "description": "Untitled single-select",
                    "enum": ["option1", "option2", "option3"],
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Titled single-select",
                    "oneOf": titled("Option", ["First", "Second", "Third"]),
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Legacy titled enum",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Untitled multi-select",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Titled multi-select",
                    "items": {"anyOf": titled("Choice", ["First", "Second", "Third"])},
                },
            },
            [],
        )
        return await ask_then(
            ctx, {"form": question}, lambda answers: f"Elicitation completed: {_elicited(answers['form'])}"
        )

    # The input-required-result-* scenarios (SEP-2322) name the keys they expect.

    name_question = elicit("What is your name?", {"name": {"type": "string"}}, ["name"])

    @mcp.tool(description="Asks the user's name (key user_name), then greets them.")
    async def test_input_required_result_elicitation(ctx: Context) -> ToolAnswer:
        return await ask_then(
            ctx, {"user_name": name_question}, lambda answers: f"Hello, {_content(answers['user_name'], 'name')}!"
        )

    @mcp.tool(description="Asks the client's LLM for the capital of France (key capital_question).")
    async def test_input_required_result_sampling(ctx: Context) -> ToolAnswer:
        return await ask_then(
            ctx,
            {"capital_question": sample("What is the capital of France?", 100)},
            lambda answers: f"The model said: {_sampled(answers['capital_question'])}",
        )

    @mcp.tool(description="Asks the client for its roots (key client_roots) and lists them.")
    async def test_input_required_result_list_roots(ctx: Context) -> ToolAnswer:
        def listed(answers: dict[str, Any]) -> str:
            roots = [root.get("uri", "") for root in answers["client_roots"].get("roots", [])]
            return f"Client roots: {', '.join(roots) or '(none)'}"

        return await ask_then(ctx, {"client_roots": LIST_ROOTS}, listed)

    confirm_question = elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])

    async def confirm_with_state(ctx: Context, state: str) -> ToolAnswer:
        """One confirmation, carried across the retry by `state` (which must come back intact)."""
        if speaks_mrtr(ctx) and ctx.input_responses and ctx.request_state != state:
            raise MCPError(code=types.INVALID_PARAMS, message="requestState does not match this request")
        return await ask_then(
            ctx,
            {"confirm": confirm_question},
            lambda answers: f"state-ok: confirmed={_content(answers['confirm'], 'ok')}",
            state,
        )

    @mcp.tool(description="Asks for a confirmation with requestState; the answer says state-ok.")
    async def test_input_required_result_request_state(ctx: Context) -> ToolAnswer:
        return await confirm_with_state(ctx, "awaiting-confirmation")

    @mcp.tool(description="As test_input_required_result_request_state; a tampered requestState is refused.")
    async def test_input_required_result_tampered_state(
        ctx: Context,
    ) -> ToolAnswer:
        return await confirm_with_state(ctx, "awaiting-confirmation-tamper-check")

    @mcp.tool(description="Asks for a name, an LLM greeting and the roots at once, with requestState.")
    async def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> ToolAnswer:
        questions = {
            "user_name": name_question,
            "greeting": sample("Generate a greeting", 50),
            "client_roots": LIST_ROOTS,
        }
        def greeted(answers: dict[str, Any]) -> str:
            roots = len(answers["client_roots"].get("roots", []))
            return f"{_sampled(answers['greeting'])} {_content(answers['user_name'], 'name')} ({roots} root(s))"

        return await ask_then(ctx, questions, greeted, "awaiting-three-answers")

    @mcp.tool(description="Asks a name, then (a second round, new requestState) a colour, then answers.")
    async def test_input_required_result_multi_round(ctx: Context) -> ToolAnswer:
        step1 = {"step1": elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])}
        step2 = {"step2": elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])}
        # At 2026-07-28 the round-2 state carries the round-1 answer (the SDK seals it).
        if speaks_mrtr(ctx) and (ctx.request_state or "").startswith("round-2:"):
            name = ctx.request_state.removeprefix("round-2:")
        else:
            first = await ask(ctx, step1, "round-1")
            if isinstance(first, types.InputRequiredResult):
                return first
            name = _content(first["step1"], "name")
        second = await ask(ctx, step2, f"round-2:{name}")
        if isinstance(second, types.InputRequiredResult):
            return second
        color = _content(second["step2"], "color")
        return _result(f"{name} likes {color}")

    @mcp.tool(description="Asks only what the client declared it can answer (sampling, elicitation, roots).")
    async def test_input_required_result_capabilities(
        ctx: Context,
    ) -> ToolAnswer:
        offered = {
            "sampling": ("summary", sample("Summarize the day in one word", 20)),
            "elicitation": ("user_name", name_question),
            "roots": ("client_roots", LIST_ROOTS),
        }
        questions = {key: q for capability, (key, q) in offered.items() if capability in declared(ctx)}
        if not questions:
            return _result("the client declared nothing to ask")
        return await ask_then(ctx, questions, lambda answers: f"answered: {', '.join(sorted(answers))}")

    # ---- tools: 2026-07-28 diagnostics of the server-stateless scenario (SEP-2575) ---------

    @mcp.tool(description="Needs the client's sampling capability; without it the call fails with -32021.")
    async def test_missing_capability(ctx: Context) -> ToolAnswer:
        return await ask_then(
            ctx, {"llm": sample("Say hello", 20)}, lambda answers: f"LLM response: {_sampled(answers['llm'])}"
        )

    @mcp.tool(description="Elicits during the call; at 2026-07-28 the stream carries only its result.")
    async def test_streaming_elicitation(ctx: Context) -> ToolAnswer:
        if refused := lacks(ctx, "elicitation"):
            return refused
        return await ask_then(
            ctx, {"user_name": name_question}, lambda answers: f"User response: {_elicited(answers['user_name'])}"
        )

    # ---- prompts -----------------------------------------------------------------------------

    @mcp.prompt(name="test_simple_prompt", description="A simple prompt without arguments.")
    def test_simple_prompt() -> list[dict[str, Any]]:
        return [{"role": "user", "content": _text("This is a simple prompt for testing.")}]

    @mcp.prompt(name="test_prompt_with_arguments", description="A prompt with two required arguments.")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": _text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")}]

    @mcp.prompt(
        name="test_prompt_with_embedded_resource", description="A prompt that embeds the resource it is given."
    )
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:  # noqa: N803
        resource = types.TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            {"role": "user", "content": types.EmbeddedResource(type="resource", resource=resource)},
            {"role": "user", "content": _text("Please process the embedded resource above.")},
        ]

    @mcp.prompt(name="test_prompt_with_image", description="A prompt with an image.")
    def test_prompt_with_image() -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": _image()},
            {"role": "user", "content": _text("Please analyze the image above.")},
        ]

    @mcp.prompt(
        name="test_input_required_result_prompt",
        description="Asks the user what context to use (key user_context), then renders with it.",
    )
    async def test_input_required_result_prompt(ctx: Context) -> Any:
        question = elicit("What context should the prompt use?", {"context": {"type": "string"}}, ["context"])
        answers = await ask(ctx, {"user_context": question})
        if isinstance(answers, types.InputRequiredResult):
            return answers
        context = _content(answers["user_context"], "context")
        return [{"role": "user", "content": _text(f"Answer using this context: {context}")}]

    # ---- resources ---------------------------------------------------------------------------

    @mcp.resource(
        "test://static-text", name="static-text", description="A static text resource.", mime_type="text/plain"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource(
        "test://static-binary",
        name="static-binary",
        description="A static binary resource (a 1x1 PNG).",
        mime_type="image/png",
    )
    def static_binary() -> bytes:
        return base64.b64decode(RED_PIXEL_PNG)

    @mcp.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource clients may subscribe to.",
        mime_type="text/plain",
    )
    def watched_resource() -> str:
        return "Watched resource content."

    @mcp.resource(
        "test://template/{id}/data",
        name="template-data",
        description="Data for the given id.",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:  # noqa: A002
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))

    # resources/subscribe and /unsubscribe for 2025-era sessions (the SDK then advertises
    # resources.subscribe to them; at 2026-07-28 these methods are gone and
    # subscriptions/listen takes their place).
    subscriptions: set[str] = set()

    async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscriptions.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscriptions.discard(str(params.uri))
        return types.EmptyResult()

    low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)

    # ---- completion --------------------------------------------------------------------------

    @mcp.completion()
    async def complete(ref, argument, context) -> types.Completion:
        candidates = {"arg1": ["paris", "park", "party"], "arg2": ["red", "green", "blue"]}
        values = [v for v in candidates.get(argument.name, []) if v.startswith(argument.value)]
        return types.Completion(values=values, total=len(values), has_more=False)

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    build().run(
        "streamable-http",
        host="127.0.0.1",
        port=args.port,
        streamable_http_path="/mcp",
        stateless_http=False,
        json_response=False,
        event_store=MemoryEventStore(),
        retry_interval=500,
    )


if __name__ == "__main__":
    main()
