"""The MCP conformance suite's fixture server (Python MCP SDK 1.x FastMCP), used as the upstream
behind mcp-sidecar when the suite's server scenarios run against the sidecar.

Usage:
    python tests/conformance/fixture_server.py --port P [--ignore-client-capabilities]

Serves streamable HTTP at http://127.0.0.1:P/mcp (loopback only). It is stateful and answers
with SSE streams, because server-to-client requests (sampling, elicitation) and notifications
during a call (logging, progress) need both. As the scenarios ask, the sampling and elicitation
tools answer with a tool error when the client did not declare that capability, unless
--ignore-client-capabilities (then they ask anyway and wait for the answer).

What each scenario of @modelcontextprotocol/conformance 0.1.13 (`conformance server`) calls, as
read from its scenario definitions, is provided here with the behaviour that scenario checks:

    tools-list, tools-call-*          test_simple_text, test_image_content, test_audio_content,
                                      test_embedded_resource, test_multiple_content_types,
                                      test_tool_with_logging, test_tool_with_progress,
                                      test_error_handling, test_sampling, test_elicitation
    elicitation-sep1034-defaults      test_elicitation_sep1034_defaults
    elicitation-sep1330-enums         test_elicitation_sep1330_enums
    json-schema-2020-12 (pending)     json_schema_2020_12_tool
    server-sse-polling (pending)      test_reconnection (closes its SSE stream mid-call and the
                                      result is replayed on a GET with Last-Event-ID from the
                                      in-memory event store below, SEP-1699; the SDK does this
                                      only for 2025-11-25 clients, and the scenario's own POST
                                      says 2025-03-26, so it ends with two warnings)
    prompts-*                         test_simple_prompt, test_prompt_with_arguments,
                                      test_prompt_with_embedded_resource, test_prompt_with_image
    resources-*                       test://static-text, test://static-binary,
                                      test://template/{id}/data, test://watched-resource
                                      (subscribe / unsubscribe accepted)
    completion-complete               completion/complete (arguments of test_prompt_with_arguments)
    logging-set-level                 logging/setLevel (filters later log notifications)
    server-initialize, ping, server-sse-multiple-streams, dns-rebinding-protection: the SDK
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import itertools
import json
import struct
import wave
import weakref

from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.prompts.base import Message, UserMessage
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId

# A 1x1 red PNG.
RED_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


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

LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

JSON_SCHEMA_2020_12_INPUT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


class MemoryEventStore(EventStore):
    """Keeps the last events of every SSE stream so a client can resume with Last-Event-ID."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: collections.deque = collections.deque(maxlen=max_events)
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
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


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _image() -> types.ImageContent:
    return types.ImageContent(type="image", data=RED_PIXEL_PNG, mimeType="image/png")


def build(port: int, ignore_client_capabilities: bool = False) -> FastMCP:
    mcp = FastMCP(
        "sidecar-conformance-fixture",
        instructions="Fixture server for the MCP conformance suite.",
        host="127.0.0.1",
        port=port,
        streamable_http_path="/mcp",
        stateless_http=False,
        json_response=False,
        event_store=MemoryEventStore(),
        retry_interval=500,
        log_level="WARNING",
    )
    low = mcp._mcp_server

    # Log level per client session ("debug", i.e. everything, until the client sets one).
    session_levels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def log(ctx: Context, level: str, message: str) -> None:
        threshold = session_levels.get(ctx.session, "debug")
        if LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold):
            await ctx.log(level, message)  # type: ignore[arg-type]

    @low.set_logging_level()
    async def set_level(level: types.LoggingLevel) -> None:
        session_levels[low.request_context.session] = level

    def lacks(ctx: Context, capability: types.ClientCapabilities, what: str) -> types.CallToolResult | None:
        """A tool error when the client did not declare `capability` (as the scenarios ask)."""
        if ignore_client_capabilities or ctx.session.check_client_capability(capability):
            return None
        return types.CallToolResult(isError=True, content=[_text(f"the client does not support {what}")])

    sampling = types.ClientCapabilities(sampling=types.SamplingCapability())
    elicitation = types.ClientCapabilities(elicitation=types.ElicitationCapability())

    # ---- tools ---------------------------------------------------------------------------

    @mcp.tool(description="Returns a simple text response.")
    def test_simple_text() -> types.CallToolResult:
        return types.CallToolResult(content=[_text("This is a simple text response for testing.")])

    @mcp.tool(description="Returns a 1x1 red PNG image.")
    def test_image_content() -> types.CallToolResult:
        return types.CallToolResult(content=[_image()])

    @mcp.tool(description="Returns a short WAV audio clip.")
    def test_audio_content() -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.AudioContent(type="audio", data=SILENT_WAV, mimeType="audio/wav")]
        )

    @mcp.tool(description="Returns an embedded text resource.")
    def test_embedded_resource() -> types.CallToolResult:
        return types.CallToolResult(
            content=[
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri="test://embedded-resource",  # type: ignore[arg-type]
                        mimeType="text/plain",
                        text="This is an embedded resource content.",
                    ),
                )
            ]
        )

    @mcp.tool(description="Returns text, an image and an embedded resource.")
    def test_multiple_content_types() -> types.CallToolResult:
        return types.CallToolResult(
            content=[
                _text("Multiple content types test:"),
                _image(),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri="test://mixed-content-resource",  # type: ignore[arg-type]
                        mimeType="application/json",
                        text=json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
                    ),
                ),
            ]
        )

    @mcp.tool(description="Sends three info log notifications while it runs.")
    async def test_tool_with_logging(ctx: Context) -> types.CallToolResult:
        await log(ctx, "info", "Tool execution started")
        await asyncio.sleep(0.05)
        await log(ctx, "info", "Tool processing data")
        await asyncio.sleep(0.05)
        await log(ctx, "info", "Tool execution completed")
        return types.CallToolResult(content=[_text("Tool with logging executed successfully")])

    @mcp.tool(description="Reports progress 0, 50 and 100 of 100 when given a progress token.")
    async def test_tool_with_progress(ctx: Context) -> types.CallToolResult:
        await ctx.report_progress(0, 100)
        await asyncio.sleep(0.05)
        await ctx.report_progress(50, 100)
        await asyncio.sleep(0.05)
        await ctx.report_progress(100, 100)
        return types.CallToolResult(content=[_text("Tool with progress executed successfully")])

    @mcp.tool(description="Always returns a tool error (isError: true).")
    def test_error_handling() -> types.CallToolResult:
        return types.CallToolResult(
            isError=True, content=[_text("This tool intentionally returns an error for testing")]
        )

    @mcp.tool(description="Asks the client's LLM (sampling/createMessage) to answer the prompt.")
    async def test_sampling(prompt: str, ctx: Context) -> types.CallToolResult:
        if refused := lacks(ctx, sampling, "sampling"):
            return refused
        result = await ctx.session.create_message(
            messages=[types.SamplingMessage(role="user", content=_text(prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        answer = result.content.text if isinstance(result.content, types.TextContent) else str(result.content)
        return types.CallToolResult(content=[_text(f"LLM response: {answer}")])

    @mcp.tool(description="Asks the user for a username and email (elicitation/create).")
    async def test_elicitation(message: str, ctx: Context) -> types.CallToolResult:
        if refused := lacks(ctx, elicitation, "elicitation"):
            return refused
        result = await ctx.session.elicit_form(
            message,
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                "required": ["username", "email"],
            },
            related_request_id=ctx.request_id,
        )
        return types.CallToolResult(
            content=[_text(f"User response: action={result.action}, content={json.dumps(result.content)}")]
        )

    @mcp.tool(description="Elicitation whose schema has a default for every primitive type (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> types.CallToolResult:
        if refused := lacks(ctx, elicitation, "elicitation"):
            return refused
        result = await ctx.session.elicit_form(
            "Please review and update the form fields with defaults",
            {
                "type": "object",
                "properties": {
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
                "required": [],
            },
            related_request_id=ctx.request_id,
        )
        return types.CallToolResult(
            content=[
                _text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}")
            ]
        )

    @mcp.tool(description="Elicitation with all five enum schema variants (SEP-1330).")
    async def test_elicitation_sep1330_enums(ctx: Context) -> types.CallToolResult:
        if refused := lacks(ctx, elicitation, "elicitation"):
            return refused
        result = await ctx.session.elicit_form(
            "Please select options from the enum fields",
            {
                "type": "object",
                "properties": {
                    "untitledSingle": {
                        "type": "string",
                        "description": "Untitled single-select",
                        "enum": ["option1", "option2", "option3"],
                    },
                    "titledSingle": {
                        "type": "string",
                        "description": "Titled single-select",
                        "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"},
                        ],
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
                        "items": {
                            "anyOf": [
                                {"const": "value1", "title": "First Choice"},
                                {"const": "value2", "title": "Second Choice"},
                                {"const": "value3", "title": "Third Choice"},
                            ]
                        },
                    },
                },
                "required": [],
            },
            related_request_id=ctx.request_id,
        )
        return types.CallToolResult(
            content=[
                _text(f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}")
            ]
        )

    @mcp.tool(description="Closes the SSE stream of this call, then answers (the client resumes with GET).")
    async def test_reconnection(ctx: Context) -> types.CallToolResult:
        await asyncio.sleep(0.05)
        await ctx.close_sse_stream()
        await asyncio.sleep(0.1)
        return types.CallToolResult(content=[_text("Reconnection test completed successfully")])

    @mcp.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features")
    def json_schema_2020_12_tool() -> types.CallToolResult:
        return types.CallToolResult(content=[_text("ok")])

    # FastMCP derives inputSchema from the signature; this tool advertises the suite's schema.
    mcp._tool_manager.get_tool("json_schema_2020_12_tool").parameters = JSON_SCHEMA_2020_12_INPUT

    # ---- prompts -------------------------------------------------------------------------

    @mcp.prompt(name="test_simple_prompt", description="A simple prompt without arguments.")
    def test_simple_prompt() -> list[Message]:
        return [UserMessage(content=_text("This is a simple prompt for testing."))]

    @mcp.prompt(name="test_prompt_with_arguments", description="A prompt with two required arguments.")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
        return [UserMessage(content=_text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @mcp.prompt(
        name="test_prompt_with_embedded_resource", description="A prompt that embeds the resource it is given."
    )
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803
        return [
            UserMessage(
                content=types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri=resourceUri,  # type: ignore[arg-type]
                        mimeType="text/plain",
                        text="Embedded resource content for testing.",
                    ),
                )
            ),
            UserMessage(content=_text("Please process the embedded resource above.")),
        ]

    @mcp.prompt(name="test_prompt_with_image", description="A prompt with an image.")
    def test_prompt_with_image() -> list[Message]:
        return [
            UserMessage(content=_image()),
            UserMessage(content=_text("Please analyze the image above.")),
        ]

    # ---- resources -----------------------------------------------------------------------

    @mcp.resource(
        "test://static-text",
        name="static-text",
        description="A static text resource.",
        mime_type="text/plain",
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

    subscriptions: set[str] = set()

    @low.subscribe_resource()
    async def subscribe(uri) -> None:
        subscriptions.add(str(uri))

    @low.unsubscribe_resource()
    async def unsubscribe(uri) -> None:
        subscriptions.discard(str(uri))

    # The 1.x low-level server always advertises resources.subscribe = false.
    get_capabilities = low.get_capabilities

    def capabilities_with_subscribe(*args, **kwargs) -> types.ServerCapabilities:
        caps = get_capabilities(*args, **kwargs)
        if caps.resources is not None:
            caps.resources.subscribe = True
        return caps

    low.get_capabilities = capabilities_with_subscribe  # type: ignore[method-assign]

    # ---- completion ----------------------------------------------------------------------

    @mcp.completion()
    async def complete(ref, argument, context) -> types.Completion:
        candidates = {"arg1": ["paris", "park", "party"], "arg2": ["red", "green", "blue"]}
        values = [v for v in candidates.get(argument.name, []) if v.startswith(argument.value)]
        return types.Completion(values=values, total=len(values), hasMore=False)

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--ignore-client-capabilities",
        action="store_true",
        help="send sampling and elicitation requests even to clients that did not declare them",
    )
    args = parser.parse_args()
    build(args.port, args.ignore_client_capabilities).run(transport="streamable-http")


if __name__ == "__main__":
    main()
