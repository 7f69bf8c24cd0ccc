"""kind = "lambda" end to end: real MCP SDK clients (Python 1.x, TypeScript) call the sidecar,
which invokes functions on a fake Lambda Invoke endpoint (fixtures/fake_lambda.py) where
botocore checks every SigV4 signature and real Python handlers, written the way the AgentCore
Gateway tutorials write them, run as the Lambda runtime runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx
import pytest
from mcp import ClientSession

from conftest import FIXTURES, NODE_DIR, Proc, RawMcp, base_of, sdk_session, sidecar_config, spawn, start_sidecar, toml_str, wait_ready

AKID = "AKIDLAMBDATEST01"
SECRET = "lambdaSecretKey/with+slashes=="
REGION = "us-east-1"
ORDERS_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:orders"

# The Gateway's toolSchema.inlinePayload for the orders function.
ORDER_TOOLS = [
    {"name": "get_order", "description": "Get an order by id",
     "inputSchema": {"type": "object", "properties": {"orderId": {"type": "string"}}, "required": ["orderId"]}},
    {"name": "update_order", "description": "Change an order's status",
     "inputSchema": {"type": "object", "properties": {"orderId": {"type": "string"}, "status": {"type": "string"}},
                     "required": ["orderId", "status"]}},
    {"name": "cancel_order", "description": "Cancel an order",
     "inputSchema": {"type": "object", "properties": {"orderId": {"type": "string"}}, "required": ["orderId"]}},
    {"name": "get_weather", "description": "Weather at the delivery address",
     "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
     "outputSchema": {"type": "object", "properties": {"city": {"type": "string"}, "temperatureC": {"type": "number"},
                                                        "conditions": {"type": "string"}}}},
    {"name": "greet", "description": "Say hello",
     "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}}},
    {"name": "whoami", "description": "What the function received",
     "inputSchema": {"type": "object", "properties": {}}},
]
LEGACY_TOOLS = [{"name": "ping", "description": "Answers pong", "inputSchema": {"type": "object", "properties": {}}}]


def aws_env(tmp: Path, secret: str = SECRET) -> dict[str, str]:
    """Static test keys; no profile files, no IMDS (no network)."""
    return {
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
    }


def start_lambda_sidecar(logdir: Path, cfg: str, env: dict[str, str]) -> Proc:
    """A sidecar with only the given AWS settings (none from the machine running the tests)."""
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("AWS_"):
                mp.delenv(k)
        return start_sidecar(logdir, cfg, env=env)


class FakeLambda:
    def __init__(self, proc: Proc):
        self.proc = proc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in proc.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith("listening http://"):
                    self.base = line.split(" ", 1)[1].strip()
                    return
            if not proc.alive():
                raise RuntimeError(f"fake lambda exited\n{proc.logs()}")
            time.sleep(0.05)
        raise RuntimeError(f"fake lambda printed no listening line\n{proc.logs()}")

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.base + "/admin/stats", timeout=5).json()

    def config(self, **cfg: Any) -> None:
        httpx.post(self.base + "/admin/config", json=cfg, timeout=5).raise_for_status()

    def last_invocation(self) -> dict[str, Any]:
        return self.stats()["invocations"][-1]


@pytest.fixture(scope="module")
def fake_lambda(logdir: Path) -> Iterator[FakeLambda]:
    proc = spawn("fake-lambda", [
        sys.executable, str(FIXTURES / "fake_lambda.py"),
        "--region", REGION, "--credentials", f"{AKID}:{SECRET}",
        "--function", "orders=orders:lambda_handler", "--function", "legacy=legacy:lambda_handler",
    ], logdir)
    try:
        yield FakeLambda(proc)
    finally:
        proc.stop()


def lambda_targets(endpoint: str, schema_file: Path) -> list[str]:
    orders = (
        "[[targets]]\nname = \"orders\"\nkind = \"lambda\"\n"
        f"function = {toml_str(ORDERS_ARN)}\nendpoint_url = {toml_str(endpoint)}\n"
        # As copied from a Gateway target definition: the inlinePayload JSON as a string.
        f"tool_schema = {toml_str(json.dumps(ORDER_TOOLS))}\n"
        "request_timeout_ms = 15000\nmax_retries = 3\n"
    )
    legacy = (
        "[[targets]]\nname = \"legacy\"\nkind = \"lambda\"\nfunction = \"legacy\"\n"
        f"region = \"{REGION}\"\nendpoint_url = {toml_str(endpoint)}\ntool_schema_file = {toml_str(str(schema_file))}\n"
    )
    missing = (
        "[[targets]]\nname = \"missing\"\nkind = \"lambda\"\nfunction = \"no-such-function\"\n"
        f"region = \"{REGION}\"\nendpoint_url = {toml_str(endpoint)}\n"
        'tool_schema = [{ name = "anything", description = "Never works", inputSchema = { type = "object" } }]\n'
    )
    return [orders, legacy, missing]


@pytest.fixture(scope="module")
def lambda_sidecar(logdir: Path, fake_lambda: FakeLambda, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("lambda")
    schema_file = tmp / "legacy-tools.json"
    schema_file.write_text(json.dumps({"inlinePayload": LEGACY_TOOLS}))
    proc = start_lambda_sidecar(logdir, sidecar_config(lambda_targets(fake_lambda.base, schema_file)), aws_env(tmp))
    try:
        wait_ready(proc, ["orders", "legacy", "missing"])
        yield proc
    finally:
        proc.stop()


def sdk_call(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async def run(session: ClientSession) -> dict[str, Any]:
        result = await session.call_tool(name, arguments)
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    return anyio.run(sdk_session, url, run)


def readyz_target(sidecar: Proc, name: str) -> dict[str, Any]:
    body = httpx.get(base_of(sidecar.url) + "/readyz", timeout=5).json()
    return next(t for t in body["targets"] if t["name"] == name)


# --------------------------------------------------------------------------- listing


def test_declared_tools_are_listed_and_readyz_describes_the_target(lambda_sidecar: Proc) -> None:
    async def run(session: ClientSession) -> list[Any]:
        return (await session.list_tools()).tools

    tools = {t.name: t for t in anyio.run(sdk_session, lambda_sidecar.url, run)}
    for t in ORDER_TOOLS:
        listed = tools[f"orders___{t['name']}"]
        assert listed.description == t["description"]
        assert listed.inputSchema == t["inputSchema"]
    assert tools["orders___get_weather"].outputSchema == ORDER_TOOLS[3]["outputSchema"]
    assert "legacy___ping" in tools and "missing___anything" in tools
    orders = readyz_target(lambda_sidecar, "orders")
    assert orders["kind"] == "lambda" and orders["state"] == "ready", orders
    assert "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders/invocations" in orders["endpoint"], orders
    assert orders["credentials"].startswith("sigv4 (service lambda from config, region us-east-1 from config"), orders


# --------------------------------------------------------------------------- invoking


def test_a_call_invokes_the_function_as_the_gateway_does(lambda_sidecar: Proc, fake_lambda: FakeLambda) -> None:
    before = fake_lambda.stats()
    result = sdk_call(lambda_sidecar.url, "orders___get_order", {"orderId": "123"})
    assert result.get("isError") is False, result
    payload = json.loads(result["content"][0]["text"])
    assert payload == {"statusCode": 200, "body": "Order 123 is in shipped status"}
    assert "structuredContent" not in result, "get_order declares no outputSchema"

    after = fake_lambda.stats()
    assert after["accepted"] == before["accepted"] + 1, "botocore accepted the SigV4 signature"
    assert after["rejected"] == {}, after["rejected"]
    call = after["invocations"][-1]
    assert call["function"] == "orders"
    assert "arn%3Aaws%3Alambda" in call["path"], "the ARN travels percent-encoded in the path"
    assert call["event"] == {"orderId": "123"}, "the event is the arguments object"
    custom = call["custom"]
    for key in ("bedrockAgentCoreToolName", "bedrockagentcoreToolName"):
        assert custom[key] == "orders___get_order", custom
    for key in ("bedrockAgentCoreMessageVersion", "bedrockagentcoreMessageVersion"):
        assert custom[key] == "1.0", custom
    assert custom["bedrockAgentCoreTargetId"] == custom["bedrockagentcoreTargetId"] == "orders"
    assert custom["bedrockAgentCoreGatewayId"] == custom["bedrockagentcoreEndpointId"] == "mcp-sidecar"
    assert len(custom["bedrockAgentCoreAwsRequestId"]) == 36


def test_the_event_is_exactly_the_arguments(lambda_sidecar: Proc) -> None:
    arguments = {"text": "héllo \"wörld\" ✓", "nested": {"list": [1, 2.5, None, True]}, "empty": {}}
    result = sdk_call(lambda_sidecar.url, "orders___whoami", arguments)
    seen = json.loads(result["content"][0]["text"])
    assert seen["event"] == arguments
    assert seen["custom"]["bedrockAgentCoreToolName"] == "orders___whoami"
    assert 0 < seen["remaining_ms"] <= 30_000


def test_payloads_become_text_and_structured_content(lambda_sidecar: Proc) -> None:
    weather = sdk_call(lambda_sidecar.url, "orders___get_weather", {"city": "Lyon"})
    assert weather["structuredContent"] == {"city": "Lyon", "temperatureC": 21.5, "conditions": "sunny"}, weather
    assert json.loads(weather["content"][0]["text"]) == weather["structuredContent"]
    greet = sdk_call(lambda_sidecar.url, "orders___greet", {"name": "Ada"})
    assert greet["content"] == [{"type": "text", "text": "Hello, Ada!"}], greet
    assert "structuredContent" not in greet


def test_a_function_error_is_a_tool_error(lambda_sidecar: Proc) -> None:
    result = sdk_call(lambda_sidecar.url, "orders___cancel_order", {"orderId": "9"})
    assert result["isError"] is True, result
    error = json.loads(result["content"][0]["text"])
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "order 9 cannot be cancelled: already shipped"


def test_throttled_invocations_are_retried(lambda_sidecar: Proc, fake_lambda: FakeLambda) -> None:
    fake_lambda.config(throttle=2, retry_after="0")
    before = fake_lambda.stats()["throttled"]
    result = sdk_call(lambda_sidecar.url, "orders___update_order", {"orderId": "7", "status": "packed"})
    assert json.loads(json.loads(result["content"][0]["text"])["body"]) == {"orderId": "7", "status": "packed"}
    assert fake_lambda.stats()["throttled"] == before + 2

    # More throttling than max_retries allows: a target error naming Lambda's answer.
    fake_lambda.config(throttle=10, retry_after="0")
    try:
        with RawMcp(lambda_sidecar.url) as c:
            reply = c.call("orders___get_order", {"orderId": "1"})
    finally:
        fake_lambda.config(throttle=0)
    error = reply["error"]
    assert error["code"] == -32603 and error["data"]["kind"] == "http_status", error
    assert "TooManyRequestsException" in error["message"] and "gave up after 3 retries" in error["message"], error


def test_an_unknown_function_is_a_target_error_naming_lambdas_answer(lambda_sidecar: Proc) -> None:
    with RawMcp(lambda_sidecar.url) as c:
        reply = c.call("missing___anything", {})
    error = reply["error"]
    assert error["data"] == {"target": "missing", "kind": "http_status", "tool": "missing___anything"}, error
    assert "ResourceNotFoundException" in error["message"], error
    assert "Function not found" in error["message"] and "check `function` and `region`" in error["message"], error


def test_functions_written_for_the_older_key_spelling_work(lambda_sidecar: Proc) -> None:
    result = sdk_call(lambda_sidecar.url, "legacy___ping", {})
    assert json.loads(result["content"][0]["text"]) == {"statusCode": 200, "body": "pong (36-character session id)"}


def test_typescript_sdk_calls_a_lambda_tool(lambda_sidecar: Proc) -> None:
    out = subprocess.run(
        ["node", str(NODE_DIR / "ts_client.mjs"), lambda_sidecar.url,
         "--call", "orders___get_order", json.dumps({"orderId": "ts-1"})],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=90,
    )
    assert out.returncode == 0, out.stderr
    calls = json.loads(out.stdout)["calls"]
    assert calls[0]["ok"], calls
    assert json.loads(calls[0]["result"]["content"][0]["text"])["body"] == "Order ts-1 is in shipped status"


def test_a_wrong_secret_is_refused_and_said_so(logdir: Path, fake_lambda: FakeLambda, procs, tmp_path: Path) -> None:
    schema = tmp_path / "tools.json"
    schema.write_text(json.dumps(LEGACY_TOOLS))
    cfg = sidecar_config(lambda_targets(fake_lambda.base, schema)[1:2])
    sc = procs(start_lambda_sidecar(logdir, cfg, aws_env(tmp_path, secret="not-the-secret")))
    wait_ready(sc, ["legacy"])  # declared tools need no call
    with RawMcp(sc.url) as c:
        reply = c.call("legacy___ping", {})
    error = reply["error"]
    assert error["data"]["kind"] == "http_status", error
    assert "403" in error["message"] and "signature" in error["message"].lower(), error
