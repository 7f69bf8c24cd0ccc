"""`kind = "smithy"` against real AWS APIs as moto's server mode emulates them.

Models: tests/fixtures/smithy/{dynamodb,ssm,apigateway}.json, Smithy JSON AST derived from
botocore's service models (derive_from_botocore.py): DynamoDB speaks awsJson1_0, SSM
awsJson1_1, API Gateway restJson1.

moto checks SigV4 itself here: with INITIAL_NO_AUTH_ACTION_COUNT=3 the first three requests
(creating an IAM user, its access key and an allow-all policy) go through unchecked, and every
request after them must carry a signature that moto recomputes with botocore from that user's
secret (else 403 SignatureDoesNotMatch / InvalidClientTokenId) and be allowed by the policy.
Clients: the Python MCP SDK 1.x (which validates structured content against the output
schemas) and the TypeScript SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import anyio
import botocore.session
import pytest
from mcp import ClientSession

from conftest import NODE_DIR, ROOT, Proc, free_port, sidecar_bin, sidecar_config, spawn, start_sidecar, wait_for_port, wait_ready
from test_clients import NAME_RE, dump, run_json, sdk1_session_run

MODELS = ROOT / "tests" / "fixtures" / "smithy"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto(logdir: Path) -> Iterator[Proc]:
    port = free_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    proc = spawn("moto", [str(moto_server), "-H", "127.0.0.1", "-p", str(port)], logdir,
                 env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    wait_for_port(proc, port)
    proc.url = f"http://127.0.0.1:{port}"
    iam = botocore.session.get_session().create_client(
        "iam", region_name=REGION, endpoint_url=proc.url, aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap"
    )
    iam.create_user(UserName="sidecar")
    key = iam.create_access_key(UserName="sidecar")["AccessKey"]
    iam.put_user_policy(
        UserName="sidecar",
        PolicyName="everything",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    proc.extra["key"] = (key["AccessKeyId"], key["SecretAccessKey"])
    yield proc
    proc.stop()


def smithy_target(name: str, model: str, moto: Proc, extra: str = "") -> str:
    return (
        f'[[targets]]\nname = "{name}"\nkind = "smithy"\nmodel = {json.dumps(str(MODELS / model))}\n'
        f'region = "{REGION}"\nendpoint = "{moto.url}"\n{extra}\n'
    )


def aws_env(akid: str, secret: str, tmp: Path) -> dict[str, str]:
    env = {k: "" for k in os.environ if k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
    })
    return env


@pytest.fixture(scope="module")
def aws_sidecar(logdir: Path, moto: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    akid, secret = moto.extra["key"]
    cfg = sidecar_config([
        smithy_target("ddb", "dynamodb.json", moto),
        smithy_target("ssm", "ssm.json", moto),
        smithy_target("apigw", "apigateway.json", moto, 'operations = { deny = ["DeleteRestApi"] }\n'),
    ])
    proc = start_sidecar(logdir, cfg, env=aws_env(akid, secret, tmp_path_factory.mktemp("aws")))
    try:
        wait_ready(proc, ["ddb", "ssm", "apigw"])
        yield proc
    finally:
        proc.stop()


def text_of(result: dict[str, Any]) -> str:
    return result["content"][0]["text"]


def calls(url: str, plan: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    async def run(session: ClientSession, init) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": {t.name: dump(t) for t in (await session.list_tools()).tools}}
        for key, name, args in plan:
            out[key] = dump(await session.call_tool(name, args))
        return out

    return anyio.run(sdk1_session_run, url, run)


def test_models_become_tools(aws_sidecar: Proc) -> None:
    tools = calls(aws_sidecar.url, [])["tools"]
    assert {"ddb___PutItem", "ddb___Query", "ssm___GetParameter", "apigw___GetRestApi"} <= set(tools)
    assert "apigw___DeleteRestApi" not in tools, "denied by operations.deny"
    assert all(NAME_RE.match(n) for n in tools)
    put = tools["ddb___PutItem"]
    assert put["inputSchema"]["required"] == ["Item", "TableName"]
    assert "<p>" not in put["description"] and put["description"].startswith("Creates a new item")
    get = tools["apigw___GetRestApi"]
    assert get["inputSchema"]["required"] == ["restApiId"]


def test_aws_json_1_0_dynamodb(aws_sidecar: Proc) -> None:
    out = calls(aws_sidecar.url, [
        ("create", "ddb___CreateTable", {
            "TableName": "pets", "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        }),
        ("put", "ddb___PutItem", {"TableName": "pets", "Item": {"pk": {"S": "rex"}, "age": {"N": "3"}, "tags": {"L": [{"S": "good"}]}}}),
        ("get", "ddb___GetItem", {"TableName": "pets", "Key": {"pk": {"S": "rex"}}}),
        ("list", "ddb___ListTables", {}),
        ("query", "ddb___Query", {"TableName": "pets", "KeyConditionExpression": "pk = :v",
                                  "ExpressionAttributeValues": {":v": {"S": "rex"}}}),
        ("missing", "ddb___DescribeTable", {"TableName": "nope"}),
        ("bad", "ddb___GetItem", {"TableName": "pets"}),
    ])
    for key in ["create", "put", "get", "list", "query"]:
        assert out[key].get("isError") is not True, (key, out[key])
    assert out["create"]["structuredContent"]["TableDescription"]["TableName"] == "pets"
    assert out["get"]["structuredContent"]["Item"] == {"pk": {"S": "rex"}, "age": {"N": "3"}, "tags": {"L": [{"S": "good"}]}}
    assert "pets" in out["list"]["structuredContent"]["TableNames"]
    assert out["query"]["structuredContent"]["Count"] == 1
    assert out["missing"]["isError"] is True
    assert text_of(out["missing"]).startswith("HTTP 400 Bad Request: ResourceNotFoundException"), text_of(out["missing"])
    assert out["bad"]["isError"] is True and "missing required argument(s): `Key`" in text_of(out["bad"])


def test_aws_json_1_1_ssm(aws_sidecar: Proc) -> None:
    out = calls(aws_sidecar.url, [
        ("put", "ssm___PutParameter", {"Name": "/app/colour", "Value": "blue", "Type": "String"}),
        ("get", "ssm___GetParameter", {"Name": "/app/colour"}),
        ("path", "ssm___GetParametersByPath", {"Path": "/app"}),
        ("missing", "ssm___GetParameter", {"Name": "/app/none"}),
    ])
    assert out["put"]["structuredContent"]["Version"] == 1, out["put"]
    assert out["get"]["structuredContent"]["Parameter"]["Value"] == "blue"
    assert [p["Name"] for p in out["path"]["structuredContent"]["Parameters"]] == ["/app/colour"]
    assert out["missing"]["isError"] is True and "ParameterNotFound" in text_of(out["missing"])


def test_rest_json_1_api_gateway(aws_sidecar: Proc) -> None:
    created = calls(aws_sidecar.url, [("create", "apigw___CreateRestApi", {"name": "shop", "description": "a shop", "tags": {"team": "a"}})])["create"]
    assert created.get("isError") is not True, created
    api_id = created["structuredContent"]["id"]
    out = calls(aws_sidecar.url, [
        ("get", "apigw___GetRestApi", {"restApiId": api_id}),
        ("list", "apigw___GetRestApis", {"limit": 10}),
        ("missing", "apigw___GetRestApi", {"restApiId": "nope123"}),
    ])
    assert "structuredContent" in out["get"], out["get"]
    assert out["get"]["structuredContent"]["name"] == "shop"
    assert out["get"]["structuredContent"]["description"] == "a shop"
    # The body as AWS sends it: restJson1 names members by jsonName (`items` is `item`).
    assert api_id in [a["id"] for a in out["list"]["structuredContent"]["item"]]
    assert out["get"]["structuredContent"]["tags"] == {"team": "a"}
    assert out["missing"]["isError"] is True
    assert text_of(out["missing"]).startswith("HTTP 404 Not Found: NotFoundException"), text_of(out["missing"])


def test_typescript_sdk_calls_an_aws_api(aws_sidecar: Proc) -> None:
    out = run_json(
        ["node", str(NODE_DIR / "ts_client.mjs"), aws_sidecar.url,
         "--call", "ssm___PutParameter", json.dumps({"Name": "/ts/x", "Value": "1", "Type": "String"}),
         "--call", "ssm___GetParameter", json.dumps({"Name": "/ts/x"})],
        cwd=NODE_DIR,
    )
    got = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in got.values()), got
    assert got["ssm___GetParameter"]["result"]["structuredContent"]["Parameter"]["Value"] == "1"


def test_wrong_secret_is_refused_by_moto(logdir: Path, moto: Proc, tmp_path: Path, procs) -> None:
    akid, _ = moto.extra["key"]
    cfg = sidecar_config([smithy_target("ssm", "ssm.json", moto)])
    proc = procs(start_sidecar(logdir, cfg, env=aws_env(akid, "not-the-secret", tmp_path)))
    wait_ready(proc, ["ssm"])
    refused = calls(proc.url, [("get", "ssm___GetParameter", {"Name": "/app/colour"})])["get"]
    assert refused["isError"] is True
    assert text_of(refused).startswith("HTTP 403 Forbidden"), text_of(refused)
    assert "signature" in text_of(refused).lower(), text_of(refused)


def test_check_prints_the_signing_scope_and_tools(logdir: Path, moto: Proc) -> None:
    cfg = logdir / "check-smithy.toml"
    cfg.write_text(sidecar_config([smithy_target("ddb", "dynamodb.json", moto)]))
    p = subprocess.run([str(sidecar_bin()), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    assert p.returncode == 0, p.stderr
    assert "loaded      DynamoDB_20120810 (smithy awsJson1_0); 7 tools" in p.stdout, p.stdout
    assert "sigv4 (service dynamodb from config, region us-east-1 from config" in p.stdout, p.stdout
