"""The optional remote embedder of tool search (`[search] embedder`), end to end.

A sidecar in front of the many-tool upstream (the 581 real tool definitions of the search
evaluation) embeds its catalog with:
- an OpenAI-compatible endpoint: fixtures/fake_embeddings.py, which requires its API key;
- Bedrock InvokeModel (Titan text embeddings v2's shapes) at fixtures/fake_aws.py, where
  botocore checks every request's SigV4 signature (service `bedrock`).
Both answer with the same deterministic embedding, in which the invented word "zorblax"
means "elevation": a search for it finds the elevation tool only when the sidecar ranks with
the remote vectors (the query shares no word with any tool and the built-in encoder has never
seen it). Then the fallbacks: a slow embedder (past query_timeout_ms), a failing one, and an
unreachable one never keep a search from answering with the built-in encoder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from conftest import FIXTURES, Proc, RawMcp, base_of, free_port, sidecar_config, spawn, start_sidecar, target_toml, wait_for_port, wait_ready
from test_search import SEARCH, many, search_section, structured_tools, wait_catalog  # noqa: F401 (fixture)

ELEVATION = "many___google-maps__maps_elevation"
TOOLS = 581
AKID, SECRET = "AKIDEMBEDDER0000TEST", "embedder-test-secret-key"
EMBED_DEADLINE_S = 60.0


def search(proc: Proc, query: str, limit: int = 5) -> list[str]:
    with RawMcp(proc.url) as c:
        c.initialize()
        result = c.call(SEARCH, {"query": query, "limit": limit})["result"]
    return [t["name"] for t in structured_tools(result)]


def start_embeddings(logdir: Path, procs: Callable[[Proc], Proc], *args: str) -> Proc:
    port = free_port()
    proc = procs(spawn("fake-embeddings", [sys.executable, str(FIXTURES / "fake_embeddings.py"), "--port", str(port), *args], logdir))
    wait_for_port(proc, port)
    proc.port, proc.url = port, f"http://127.0.0.1:{port}"
    return proc


def embedder_sidecar(logdir: Path, procs: Callable[[Proc], Proc], many: Proc, embedder: str, env: dict[str, str] | None = None) -> Proc:
    cfg = sidecar_config([target_toml("many", many.url, normalize_schemas=True)], max_body_bytes=1 << 20)
    sc = procs(start_sidecar(logdir, cfg + "\n" + search_section() + f"embedder = {embedder}\n", env=env))
    wait_ready(sc, ["many"])
    wait_catalog(sc, more_than=TOOLS - 1)
    return sc


def wait_until(what: str, check: Callable[[], Any], timeout: float = EMBED_DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s; last: {last!r}")


def stats(proc: Proc) -> dict[str, Any]:
    return httpx.get(proc.url + "/admin/stats", timeout=5).json()


def test_openai_compatible_embedder_ranks_and_falls_back(logdir: Path, procs, many: Proc) -> None:
    emb = start_embeddings(logdir, procs, "--api-key", "sk-test-key")
    embedder = (
        f'{{ kind = "openai", url = "{emb.url}/v1", model = "fake-embed-1", api_key = "sk-test-key", '
        "batch_size = 100, query_timeout_ms = 400 }"
    )
    sc = embedder_sidecar(logdir, procs, many, embedder)
    # The catalog is served at once (built-in vectors); the remote ones follow.
    assert search(sc, "elevation of a mountain")[0] == ELEVATION
    wait_until("every tool embedded remotely", lambda: stats(emb)["inputs"] >= TOOLS)
    top = wait_until("the remote vectors in use", lambda: (names := search(sc, "zorblax"))[0] == ELEVATION and names)
    assert top[0] == ELEVATION
    s = stats(emb)
    assert s["models"] == ["fake-embed-1"] and s["refused"] == 0, s
    # 581 tools in batches of 100, plus the queries, each one text.
    assert s["requests"] - (s["inputs"] - TOOLS) == 6, s

    # Slow: past query_timeout_ms the search answers with the built-in encoder, without
    # waiting for the remote.
    httpx.post(emb.url + "/admin/config", json={"delay_ms": 3000}, timeout=5)
    started = time.monotonic()
    names = search(sc, "zorblax")
    assert time.monotonic() - started < 2.5, "the search waited for the slow embedder"
    assert len(names) == 5
    log = sc.stderr_path.read_text() + sc.stdout_path.read_text()
    assert "query embedding failed" in log and "timed out after 400 ms" in log
    # For the next 30 s queries do not even ask the remote.
    asked = stats(emb)["requests"]
    httpx.post(emb.url + "/admin/config", json={"delay_ms": 0, "fail": True}, timeout=5)
    assert search(sc, "elevation of a mountain")[0] == ELEVATION
    time.sleep(3.5)  # the slow request above has finished by now
    assert stats(emb)["requests"] <= asked + 1


def test_bedrock_embedder_signs_invoke_model(logdir: Path, procs, many: Proc) -> None:
    port = free_port()
    aws = procs(
        spawn(
            "fake-aws",
            [sys.executable, str(FIXTURES / "fake_aws.py"), "--port", str(port), "--upstream", many.url,
             "--credentials", f"{AKID}:{SECRET}", "--region", "eu-west-1"],
            logdir,
        )
    )
    wait_for_port(aws, port)
    aws.url = f"http://127.0.0.1:{port}"
    embedder = f'{{ kind = "bedrock", region = "eu-west-1", endpoint = "{aws.url}", dimensions = 256, concurrency = 4 }}'
    env = {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET}
    sc = embedder_sidecar(logdir, procs, many, embedder, env=env)
    wait_until("every tool embedded through InvokeModel", lambda: stats(aws)["invocations"] >= TOOLS)
    wait_until("the remote vectors in use", lambda: search(sc, "zorblax")[0] == ELEVATION)
    s = stats(aws)
    assert s["rejected"] == {}, s["rejections"]
    assert s["models"] == ["amazon.titan-embed-text-v2:0"], s
    # One signed InvokeModel per tool and per query (the two searches above, at least).
    assert s["invocations"] >= TOOLS + 1
    assert s["accepted"] >= s["invocations"]


def test_unreachable_embedder_never_keeps_the_catalog_from_serving(logdir: Path, procs, many: Proc) -> None:
    closed = free_port()  # nothing listens there
    embedder = f'{{ kind = "openai", url = "http://127.0.0.1:{closed}/v1", model = "m", timeout_ms = 2000 }}'
    sc = embedder_sidecar(logdir, procs, many, embedder)
    assert search(sc, "elevation of a mountain")[0] == ELEVATION
    wait_until(
        "the failure logged",
        lambda: "remote embedding failed" in sc.stderr_path.read_text() + sc.stdout_path.read_text(),
        timeout=20,
    )
    # Still answering with the built-in encoder, which does not know the invented word (so
    # the tests above see the remote vectors at work).
    assert search(sc, "elevation of a mountain")[0] == ELEVATION
    assert search(sc, "zorblax")[0] != ELEVATION
    body = httpx.get(base_of(sc.url) + "/readyz", timeout=2).json()
    assert body["tools"] >= TOOLS
