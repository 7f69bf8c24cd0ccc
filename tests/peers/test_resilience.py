"""An upstream that dies or is slow must not take the catalog or the other targets with it."""

from __future__ import annotations

import time

from conftest import (
    Proc,
    RawMcp,
    base_of,
    sidecar_config,
    start_fastmcp,
    start_sidecar,
    target_toml,
    wait_ready,
)

import httpx

FAST_TIMEOUT_MS = 1500


def test_upstream_down_keeps_catalog_and_other_target(logdir, everything: Proc, procs) -> None:
    fast = procs(start_fastmcp(logdir))
    cfg = sidecar_config(
        [
            target_toml("everything", everything.url),
            target_toml("fast", fast.url, request_timeout_ms=FAST_TIMEOUT_MS, connect_timeout_ms=1000),
        ]
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything", "fast"])

    with RawMcp(sc.url) as c:
        c.initialize()
        before = sorted(t["name"] for t in c.list_tools())
        assert "fast___echo" in before
        ok = c.call("fast___echo", {"text": "alive"})
        assert ok.get("result", {}).get("content") == [{"type": "text", "text": "alive"}], ok

        # Stop the FastMCP upstream (by PID) mid-test.
        fast.stop()
        assert not fast.alive()

        t0 = time.monotonic()
        after = sorted(t["name"] for t in c.list_tools())
        list_s = time.monotonic() - t0
        assert after == before, "tools/list changed after an upstream went down"
        assert list_s < 1.0, f"tools/list took {list_s:.2f}s with an upstream down: it should come from the cache"

        t0 = time.monotonic()
        err = c.call("fast___echo", {"text": "anyone?"})
        call_s = time.monotonic() - t0
        assert "error" in err, f"expected a JSON-RPC error from a dead upstream, got {err}"
        assert err["error"]["code"] == -32603, err
        assert "fast" in err["error"]["message"], err
        data = err["error"].get("data") or {}
        assert data.get("target") == "fast", err
        assert data.get("kind") == "unreachable", err
        assert call_s < 5.0, f"failing call to a dead upstream took {call_s:.1f}s"

        ev = c.call("everything___echo", {"message": "still here"})
        assert ev.get("result", {}).get("content") == [{"type": "text", "text": "Echo: still here"}], ev

        r = httpx.get(base_of(sc.url) + "/readyz", timeout=10)
        assert r.status_code == 200, r.text

        # The upstream comes back on the same port: calls recover without a sidecar restart.
        fast2 = procs(start_fastmcp(logdir, port=fast.port))
        deadline = time.monotonic() + 15
        last = None
        while time.monotonic() < deadline:
            last = c.call("fast___echo", {"text": "back"})
            if "result" in last:
                break
            time.sleep(0.5)
        assert last and last.get("result", {}).get("content") == [{"type": "text", "text": "back"}], last
        assert fast2.alive()


def test_slow_upstream_times_out_with_named_error(logdir, everything: Proc, procs) -> None:
    fast = procs(start_fastmcp(logdir))
    cfg = sidecar_config(
        [
            target_toml("everything", everything.url),
            target_toml("fast", fast.url, request_timeout_ms=FAST_TIMEOUT_MS),
        ]
    )
    sc = procs(start_sidecar(logdir, cfg))
    wait_ready(sc, ["everything", "fast"])
    with RawMcp(sc.url) as c:
        quick = c.call("fast___slow", {"ms": 100})
        assert quick.get("result", {}).get("content") == [{"type": "text", "text": "slept 100 ms"}], quick
        t0 = time.monotonic()
        err = c.call("fast___slow", {"ms": 6000})
        elapsed = time.monotonic() - t0
        assert "error" in err, err
        assert err["error"]["code"] == -32603, err
        assert "fast" in err["error"]["message"], err
        assert (err["error"].get("data") or {}).get("target") == "fast", err
        assert (err["error"].get("data") or {}).get("kind") == "timeout", err
        assert FAST_TIMEOUT_MS / 1000 - 0.2 <= elapsed < FAST_TIMEOUT_MS / 1000 + 3, f"timed out after {elapsed:.2f}s"
        # Meanwhile the catalog still answers.
        assert any(t["name"] == "fast___slow" for t in c.list_tools())


def test_target_down_from_start_is_not_ready(logdir, procs) -> None:
    """No definitions at all: /readyz is 503 and says why; tools/list answers at once, empty."""
    from conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    cfg = sidecar_config([target_toml("ghost", dead, connect_timeout_ms=500, sync_timeout_ms=2000)])
    sc = procs(start_sidecar(logdir, cfg))
    deadline = time.monotonic() + 15
    body = None
    while time.monotonic() < deadline:
        r = httpx.get(base_of(sc.url) + "/readyz", timeout=5)
        assert r.status_code in (200, 503), r.text
        body = r.json()
        ghost = {t["name"]: t for t in body.get("targets", [])}.get("ghost") or {}
        if ghost.get("last_error"):
            break
        time.sleep(0.2)
    assert r.status_code == 503, (r.status_code, body)
    assert body["ready"] is False and body["tools"] == 0, body
    ghost = {t["name"]: t for t in body["targets"]}["ghost"]
    assert ghost["tools"] == 0 and ghost["last_error"], ghost
    with RawMcp(sc.url) as c:
        t0 = time.monotonic()
        assert c.list_tools() == []
        assert time.monotonic() - t0 < 1.0
