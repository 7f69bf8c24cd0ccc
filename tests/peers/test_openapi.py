"""`kind = "openapi"` against real REST APIs, through real MCP client SDKs.

Upstreams: a FastAPI application with its own generated OpenAPI 3.1 document and an API key
(fixtures/rest_api.py), and a small Swagger Petstore implementation that serves the public
Petstore 3.0 document and checks every request against it with openapi-core
(fixtures/petstore_server.py). Clients: the Python MCP SDK 1.x (which validates structured
content against each tool's outputSchema) and the TypeScript SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx
import pytest
from mcp import ClientSession

from conftest import (
    FIXTURES,
    NODE_DIR,
    Proc,
    RawMcp,
    base_of,
    free_port,
    sidecar_bin,
    sidecar_config,
    spawn,
    start_sidecar,
    wait_for_port,
    wait_ready,
)
from test_clients import NAME_RE, dump, run_json, sdk1_list_all, sdk1_session_run

API_KEY = "items-key-3f9a1c"
PET_KEY = "special-key"
SUBSET_KEYS = {"type", "description", "enum", "properties", "required", "items"}
TYPES = {"string", "number", "integer", "boolean", "object", "array"}


def start_items_api(logdir: Path) -> Proc:
    port = free_port()
    proc = spawn("items-api", [sys.executable, str(FIXTURES / "rest_api.py"), "--port", str(port), "--api-key", API_KEY], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}"
    return proc


@pytest.fixture(scope="module")
def items_api(logdir: Path) -> Iterator[Proc]:
    proc = start_items_api(logdir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def petstore(logdir: Path) -> Iterator[Proc]:
    port = free_port()
    proc = spawn("petstore", [sys.executable, str(FIXTURES / "petstore_server.py"), "--port", str(port), "--api-key", PET_KEY], logdir)
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}"
    yield proc
    proc.stop()


def openapi_target(name: str, spec: str, extra: str = "") -> str:
    return f'[[targets]]\nname = "{name}"\nkind = "openapi"\nspec = {json.dumps(spec)}\n{extra}\n'


def items_targets(api: Proc) -> list[str]:
    spec = f"{api.url}/openapi.json"
    return [
        openapi_target("items", spec, '[targets.credential_provider]\ntype = "api_key"\nheader = "X-API-Key"\nvalue = "${ITEMS_KEY}"\n'),
        openapi_target(
            "itemsq",
            spec,
            'operations = { allow = ["getItem", "listItems", "GET /files/**"] }\n'
            '[targets.credential_provider]\ntype = "api_key"\nquery_param = "api_key"\nvalue = "${ITEMS_KEY}"\n',
        ),
        openapi_target("nokey", spec, 'operations = { allow = ["getItem"] }\n'),
    ]


def pets_target(store: Proc) -> str:
    return openapi_target(
        "pets",
        f"{store.url}/openapi.json",
        f'base_url = "{store.url}/v2"\n[targets.credential_provider]\ntype = "api_key"\nheader = "api_key"\nvalue = "{PET_KEY}"\n',
    )


@pytest.fixture(scope="module")
def rest_sidecar(logdir: Path, items_api: Proc, petstore: Proc) -> Iterator[Proc]:
    cfg = sidecar_config(items_targets(items_api) + [pets_target(petstore)])
    proc = start_sidecar(logdir, cfg, env={"ITEMS_KEY": API_KEY})
    try:
        proc.extra["readyz"] = wait_ready(proc, ["items", "itemsq", "nokey", "pets"])
        yield proc
    finally:
        proc.stop()


def in_subset(schema: Any, at: str = "#") -> list[str]:
    """Where a schema leaves the Gateway's subset (empty: it is in it)."""
    if not isinstance(schema, dict):
        return [f"{at}: not an object"]
    bad = [f"{at}: key {k}" for k in schema if k not in SUBSET_KEYS]
    if schema.get("type") not in TYPES:
        bad.append(f"{at}: type {schema.get('type')!r}")
    for name, sub in (schema.get("properties") or {}).items():
        bad += in_subset(sub, f"{at}/properties/{name}")
    if schema.get("type") == "array":
        bad += in_subset(schema.get("items"), f"{at}/items")
    return bad


def received(api: Proc) -> dict[str, Any]:
    return httpx.get(f"{api.url}/received", timeout=5).json()


def text_of(result: dict[str, Any]) -> str:
    return result["content"][0]["text"]


def test_tools_come_from_the_documents_in_the_gateway_subset(rest_sidecar: Proc) -> None:
    async def run(session: ClientSession, init) -> list[Any]:
        return [dump(t) for t in await sdk1_list_all(session)]

    tools = {t["name"]: t for t in anyio.run(sdk1_session_run, rest_sidecar.url, run)}
    for name in ["items___createItem", "items___getItem", "items___listItems", "items___replaceItem",
                 "items___deleteItem", "items___login", "items___file_meta_files__file_path__meta_get",
                 "pets___addPet", "pets___findPetsByStatus", "pets___getPetById", "pets___updatePetWithForm"]:
        assert name in tools, (name, sorted(tools))
    assert sorted(n for n in tools if n.startswith("itemsq___")) == [
        "itemsq___file_meta_files__file_path__meta_get", "itemsq___getItem", "itemsq___listItems"]
    for name, tool in tools.items():
        assert NAME_RE.match(name), name
        assert in_subset(tool["inputSchema"]) == [], (name, in_subset(tool["inputSchema"]))
        if "outputSchema" in tool:
            assert in_subset(tool["outputSchema"]) == [], (name, in_subset(tool["outputSchema"]))
    get = tools["items___getItem"]
    assert get["description"] == "Get one item\n\nFails with 404 when there is no such item."
    assert get["inputSchema"]["required"] == ["item_id"]
    assert get["annotations"]["readOnlyHint"] is True
    create = tools["items___createItem"]
    assert create["inputSchema"]["required"] == ["name", "price"]
    assert create["inputSchema"]["properties"]["price"]["type"] == "number"
    assert "exclusiveMinimum: 0" in create["inputSchema"]["properties"]["price"]["description"]
    # FastAPI's `str | None` (anyOf with null) is a plain string for the model.
    assert create["inputSchema"]["properties"]["description"] == {"type": "string"}
    assert create["outputSchema"]["properties"]["id"] == {"type": "integer"}
    # The Petstore's readOnly `id` is not something the model sends.
    assert "id" not in tools["pets___addPet"]["inputSchema"]["properties"]
    by_status = tools["pets___findPetsByStatus"]
    assert by_status["inputSchema"]["properties"]["status"]["items"]["enum"] == ["available", "pending", "sold"]


def test_python_sdk_calls_the_fastapi_application(rest_sidecar: Proc, items_api: Proc) -> None:
    async def run(session: ClientSession, init) -> dict[str, Any]:
        out: dict[str, Any] = {}

        async def call(key: str, name: str, args: dict[str, Any]) -> None:
            out[key] = dump(await session.call_tool(name, args))
            out[key + ".received"] = received(items_api)

        await call("create", "items___createItem", {"name": "widget", "price": 2.5, "tags": ["a", "b"]})
        item_id = out["create"]["structuredContent"]["id"]
        await call("get", "items___getItem", {"item_id": item_id, "verbose": True})
        await call("missing", "items___getItem", {"item_id": 999999})
        await call("invalid", "items___createItem", {"name": "cheap", "price": "free"})
        await call("unknown", "items___getItem", {"item_id": item_id, "colour": "red"})
        await call("lacking", "items___getItem", {})
        await call("list", "items___listItems", {"tag": ["a", "z"], "limit": 5})
        await call("meta", "items___file_meta_files__file_path__meta_get",
                   {"file_path": "a b;c&d.txt", "x-request-id": "req-1", "session": "s=1:x"})
        await call("login", "items___login", {"username": "ann", "password": "hunter2"})
        await call("replace", "items___replaceItem", {"item_id": item_id, "name": "gadget", "price": 3})
        await call("delete", "items___deleteItem", {"item_id": item_id})
        await call("gone", "items___getItem", {"item_id": item_id})
        return out

    out = anyio.run(sdk1_session_run, rest_sidecar.url, run)
    create = out["create"]
    assert create.get("isError") is not True, create
    assert create["structuredContent"]["name"] == "widget" and create["structuredContent"]["tags"] == ["a", "b"]
    assert "description" not in create["structuredContent"], "nulls are dropped from structured content"
    assert json.loads(text_of(create))["description"] is None, "the text is the body as sent"
    sent = out["create.received"]
    assert sent["method"] == "POST" and sent["raw_path"] == "/items" and sent["key_in"] == "header"
    assert json.loads(sent["body"]) == {"name": "widget", "price": 2.5, "tags": ["a", "b"]}
    assert sent["headers"]["content-type"] == "application/json"

    assert out["get"]["structuredContent"] == create["structuredContent"]
    assert out["get.received"]["query"] == "verbose=true"

    missing = out["missing"]
    assert missing["isError"] is True
    assert text_of(missing).startswith("HTTP 404 Not Found: Item 999999 not found"), text_of(missing)
    invalid = out["invalid"]
    assert invalid["isError"] is True
    assert text_of(invalid).startswith("HTTP 422 Unprocessable Entity: body.price: Input should be a valid number"), text_of(invalid)
    assert out["unknown"]["isError"] is True and "unknown argument(s) `colour`" in text_of(out["unknown"])
    assert out["lacking"]["isError"] is True and "missing required argument(s): `item_id`" in text_of(out["lacking"])

    assert out["list.received"]["query"] == "tag=a&tag=z&limit=5"
    assert out["list"]["structuredContent"]["result"][0]["name"] == "widget"

    meta = out["meta"]
    assert meta.get("isError") is not True, meta
    assert meta["structuredContent"] == {"file_path": "a b;c&d.txt", "x_request_id": "req-1", "session": "s=1:x"}
    assert out["meta.received"]["raw_path"] == "/files/a%20b%3Bc%26d.txt/meta"
    assert out["meta.received"]["headers"]["cookie"] == "session=s=1:x"

    assert out["login"]["structuredContent"] == {"user": "ann", "token": "t-ann"}
    assert out["login.received"]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert out["login.received"]["body"] == "password=hunter2&username=ann"

    assert out["replace"]["structuredContent"]["name"] == "gadget"
    assert out["replace.received"]["method"] == "PUT"
    assert text_of(out["delete"]) == "HTTP 204 No Content" and out["delete"].get("isError") is not True
    assert out["gone"]["isError"] is True


def test_api_key_in_query_and_missing_credentials(rest_sidecar: Proc, items_api: Proc) -> None:
    with RawMcp(rest_sidecar.url) as c:
        c.initialize()
        ok = c.call("itemsq___listItems", {"limit": 1})["result"]
        seen = received(items_api)
        refused = c.call("nokey___getItem", {"item_id": 1})["result"]
    assert ok.get("isError") is not True, ok
    assert seen["key_in"] == "query"
    assert seen["query"] == f"limit=1&api_key={API_KEY}"
    assert refused["isError"] is True
    assert text_of(refused).startswith("HTTP 401 Unauthorized: Not authenticated"), text_of(refused)
    assert "credentials: none" in text_of(refused)
    readyz = httpx.get(base_of(rest_sidecar.url) + "/readyz", timeout=5).text
    assert "query parameter api_key" in readyz
    assert API_KEY not in readyz and API_KEY not in rest_sidecar.logs(200_000), "the key never reaches logs"


def test_typescript_sdk_calls_rest_tools(rest_sidecar: Proc) -> None:
    out = run_json(
        [
            "node", str(NODE_DIR / "ts_client.mjs"), rest_sidecar.url,
            "--call", "items___createItem", json.dumps({"name": "from ts", "price": 1}),
            "--call", "items___getItem", json.dumps({"item_id": 123456}),
            "--call", "pets___getInventory", json.dumps({}),
        ],
        cwd=NODE_DIR,
    )
    names = [t["name"] for t in out["tools"]]
    assert "items___createItem" in names and "pets___addPet" in names
    calls = {c["name"]: c for c in out["calls"]}
    assert all(c["ok"] for c in calls.values()), calls
    created = calls["items___createItem"]["result"]
    assert created["structuredContent"]["name"] == "from ts" and not created.get("isError")
    missing = calls["items___getItem"]["result"]
    assert missing["isError"] is True and missing["content"][0]["text"].startswith("HTTP 404 Not Found")
    assert isinstance(calls["pets___getInventory"]["result"]["structuredContent"], dict)


def test_petstore_requests_match_the_public_document(rest_sidecar: Proc, petstore: Proc) -> None:
    async def run(session: ClientSession, init) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, name, args in [
            ("add", "pets___addPet", {"name": "Rex", "photoUrls": ["http://img/rex.png"], "status": "available",
                                      "category": {"id": 1, "name": "dogs"}, "tags": [{"id": 7, "name": "good"}]}),
            ("add2", "pets___addPet", {"name": "Tom", "photoUrls": [], "status": "pending"}),
            ("by_status", "pets___findPetsByStatus", {"status": ["available", "pending"]}),
            ("by_tags", "pets___findPetsByTags", {"tags": ["good"]}),
            ("form", "pets___updatePetWithForm", {"petId": 2, "name": "Tom Cat", "status": "sold"}),
            ("get", "pets___getPetById", {"petId": 2}),
            ("inventory", "pets___getInventory", {}),
            ("order", "pets___placeOrder", {"petId": 1, "quantity": 2, "status": "placed", "complete": False}),
            ("user", "pets___createUser", {"username": "ann", "password": "pw", "email": "ann@example.com"}),
            ("login", "pets___loginUser", {"username": "ann", "password": "pw"}),
            ("no_order", "pets___getOrderById", {"orderId": 9}),
            ("delete", "pets___deletePet", {"petId": 2, "api_key": PET_KEY}),
        ]:
            out[key] = dump(await session.call_tool(name, args))
        return out

    out = anyio.run(sdk1_session_run, rest_sidecar.url, run)
    stats = httpx.get(f"{petstore.url}/admin/stats", timeout=5).json()
    assert stats["invalid"] == 0, stats["errors"]
    assert stats["valid"] >= 12, stats
    for key in ["add", "add2", "by_status", "by_tags", "form", "get", "inventory", "order", "user", "login", "delete"]:
        assert out[key].get("isError") is not True, (key, out[key])
    assert [p["name"] for p in out["by_status"]["structuredContent"]["result"]] == ["Rex", "Tom"]
    assert [p["name"] for p in out["by_tags"]["structuredContent"]["result"]] == ["Rex"]
    assert out["get"]["structuredContent"]["name"] == "Tom Cat" and out["get"]["structuredContent"]["status"] == "sold"
    assert out["inventory"]["structuredContent"] == {"available": 1, "sold": 1}
    assert out["login"]["structuredContent"] == {"result": "logged in user session:ann"}
    assert out["no_order"]["isError"] is True and text_of(out["no_order"]).startswith("HTTP 404 Not Found: Order not found")


def test_check_reports_each_operation(logdir: Path, petstore: Proc) -> None:
    cfg = logdir / "check-pets.toml"
    cfg.write_text(sidecar_config([pets_target(petstore)]))
    p = subprocess.run([str(sidecar_bin()), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "loaded      Swagger Petstore (openapi 3.0.0); 20 tools" in p.stdout, p.stdout
    assert "uploadFile (POST /pet/{petId}/uploadImage): optional request body [multipart/form-data] is not supported" in p.stdout
    assert PET_KEY not in p.stdout


def test_file_changes_curation_and_restart_from_saved_catalog(logdir: Path, tmp_path: Path, procs) -> None:
    api = procs(start_items_api(logdir))
    spec = tmp_path / "items.json"
    document = httpx.get(f"{api.url}/openapi.json", timeout=5).json()
    spec.write_text(json.dumps(document))
    state = tmp_path / "state"
    extra = (
        f'base_url = "{api.url}"\ncuration = {{ read_only = true }}\n'
        '[targets.credential_provider]\ntype = "api_key"\nheader = "X-API-Key"\nvalue = "${ITEMS_KEY}"\n'
    )
    cfg = sidecar_config([openapi_target("file", str(spec), extra)]).replace(
        "[catalog]\n", f"[catalog]\nstate_dir = {json.dumps(str(state))}\n"
    ) + "\n[admin]\nenabled = true\n"
    first = procs(start_sidecar(logdir, cfg, env={"ITEMS_KEY": API_KEY}))
    wait_ready(first, ["file"])
    with RawMcp(first.url) as c:
        c.initialize()
        names = sorted(t["name"] for t in c.list_tools())
        assert names == ["file___file_meta_files__file_path__meta_get", "file___getItem", "file___listItems"], names
        # The file changes: the next sync picks it up.
        del document["paths"]["/items"]["get"]
        spec.write_text(json.dumps(document))
        r = httpx.post(base_of(first.url) + "/admin/sync?target=file", timeout=10)
        assert r.status_code == 200, r.text
        names = sorted(t["name"] for t in c.list_tools())
        assert names == ["file___file_meta_files__file_path__meta_get", "file___getItem"], names
    first.stop()
    api.stop()
    spec.unlink()
    # Restart with the definition gone and the API down: the saved catalog answers.
    second = procs(start_sidecar(logdir, cfg, env={"ITEMS_KEY": API_KEY}))
    deadline = time.monotonic() + 15
    with RawMcp(second.url) as c:
        c.initialize()
        while True:
            names = sorted(t["name"] for t in c.list_tools())
            if names or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert names == ["file___file_meta_files__file_path__meta_get", "file___getItem"], names
        failed = c.call("file___getItem", {"item_id": 1})
    assert "error" in failed and failed["error"]["data"]["kind"] in ("unreachable", "bad_response"), failed
    readyz = httpx.get(base_of(second.url) + "/readyz", timeout=5).json()
    target = readyz["targets"][0]
    assert target["state"] in ("restored", "failing"), target
