//! The relay against real rmcp upstreams in-process: catalog sync, routing, pagination,
//! session lifecycle, and every fault case a target can produce.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn lists_and_calls_tools_of_two_targets_with_everything_relayed() {
    let a = upstream("alpha", 3, true).await;
    let b = upstream("beta", 2, false).await;
    let config = format!(
        "{}{}",
        target_toml("alpha", &a.url, ""),
        target_toml("beta", &b.url, "")
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "alpha", "ready").await;
    wait_for_state(&sidecar.base, "beta", "ready").await;

    let tools = list_all(&sidecar.url).await;
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "alpha___tool_000",
            "alpha___tool_001",
            "alpha___tool_002",
            "beta___tool_000",
            "beta___tool_001"
        ]
    );
    // Everything but the name is the upstream's definition.
    let def = &tools[0];
    assert_eq!(def["title"], "Title of tool_000");
    assert_eq!(def["annotations"]["readOnlyHint"], true);
    assert_eq!(def["_meta"]["vendor/key"], "tool_000");
    assert_eq!(def["inputSchema"]["properties"]["text"]["type"], "string");

    let reply = call_tool(&sidecar.url, "beta___tool_001", json!({"text": "hi"})).await;
    let result = &reply["result"];
    assert_eq!(result["content"][0]["text"], "beta:tool_001:hi", "{reply}");
    assert_eq!(
        result["structuredContent"],
        json!({"tool": "tool_001", "server": "beta"})
    );
    assert_eq!(result["_meta"]["vendor/echo"], true);

    // Instructions of both targets are combined.
    let (_, init) = post(&sidecar.url, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await;
    let instructions = init["result"]["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("Instructions of alpha")
            && instructions.contains("Instructions of beta")
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
}

#[tokio::test]
async fn initialize_discover_and_list_need_no_upstream_round_trip() {
    let up = upstream("alpha", 2, true).await;
    let sidecar = sidecar(&target_toml("alpha", &up.url, "")).await;
    wait_for_state(&sidecar.base, "alpha", "ready").await;
    let before = (
        up.knobs.initializes.load(Ordering::SeqCst),
        up.knobs.lists.load(Ordering::SeqCst),
    );
    for _ in 0..5 {
        post(&sidecar.url, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await;
        post(
            &sidecar.url,
            &json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {}}),
        )
        .await;
        list_all(&sidecar.url).await;
    }
    let after = (
        up.knobs.initializes.load(Ordering::SeqCst),
        up.knobs.lists.load(Ordering::SeqCst),
    );
    assert_eq!(
        before, after,
        "client lifecycle and listing must be served from the catalog"
    );
}

#[tokio::test]
async fn paginated_upstream_listing_is_followed_to_the_end_and_re_paged() {
    let up = upstream("big", 250, true).await;
    up.knobs.page_size.store(40, Ordering::SeqCst);
    let config = format!(
        "[catalog]\npage_size = 100\n{}",
        target_toml("big", &up.url, "")
    );
    let sidecar = sidecar(&config).await;
    let status = wait_for_state(&sidecar.base, "big", "ready").await;
    assert_eq!(status["tools"], 250);
    assert_eq!(
        up.knobs.lists.load(Ordering::SeqCst),
        7,
        "250 tools in pages of 40"
    );

    let (_, first) = post(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(first["result"]["tools"].as_array().unwrap().len(), 100);
    let tools = list_all(&sidecar.url).await;
    assert_eq!(tools.len(), 250);
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.dedup();
    assert_eq!(names.len(), 250, "no tool repeated across pages");

    let (_, bad) = post(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": "nope"}}),
    )
    .await;
    assert_eq!(bad["error"]["code"], -32602);
}

#[tokio::test]
async fn one_initialize_per_upstream_session_and_one_reinitialize_after_expiry() {
    let up = upstream("alpha", 1, true).await;
    // Sessions exist only before 2026-07-28: pin the handshake era.
    let legacy = "protocol_version = \"2025-11-25\"";
    let sidecar = sidecar(&target_toml("alpha", &up.url, legacy)).await;
    wait_for_state(&sidecar.base, "alpha", "ready").await;

    let calls = (0..30).map(|i| {
        call_tool(
            &sidecar.url,
            "alpha___tool_000",
            json!({"text": i.to_string()}),
        )
    });
    for reply in futures_util::future::join_all(calls).await {
        assert!(reply["result"].is_object(), "{reply}");
    }
    assert_eq!(up.knobs.initializes.load(Ordering::SeqCst), 1);

    // The upstream forgets every session: the next requests get rmcp's real 404.
    up.expire_sessions().await;
    let calls = (0..20).map(|i| {
        call_tool(
            &sidecar.url,
            "alpha___tool_000",
            json!({"text": i.to_string()}),
        )
    });
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(
            reply["result"]["structuredContent"]["server"], "alpha",
            "{reply}"
        );
    }
    assert_eq!(
        up.knobs.initializes.load(Ordering::SeqCst),
        2,
        "exactly one re-initialize for 20 concurrent calls"
    );
}

#[tokio::test]
async fn slow_target_times_out_by_name_while_others_and_listing_stay_fast() {
    let slow = upstream("slow", 1, true).await;
    let fast = upstream("fast", 1, false).await;
    let config = format!(
        "{}{}",
        target_toml("slow", &slow.url, "request_timeout_ms = 400"),
        target_toml("fast", &fast.url, "")
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "slow", "ready").await;
    wait_for_state(&sidecar.base, "fast", "ready").await;

    let url = sidecar.url.clone();
    let stuck =
        tokio::spawn(async move { call_tool(&url, "slow___tool_000", json!({"ms": 3000})).await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    let listed = list_all(&sidecar.url).await;
    let reply = call_tool(&sidecar.url, "fast___tool_000", json!({"text": "x"})).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(listed.len(), 2);
    assert_eq!(reply["result"]["content"][0]["text"], "fast:tool_000:x");

    let timed_out = stuck.await.unwrap();
    // The sidecar told the upstream it gave up, so the upstream stops working on it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while slow.knobs.cancelled.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "notifications/cancelled never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = &timed_out["error"];
    assert_eq!(error["code"], -32603, "{timed_out}");
    assert_eq!(error["data"]["target"], "slow");
    assert_eq!(error["data"]["kind"], "timeout");
    assert!(
        error["message"].as_str().unwrap().contains("'slow'"),
        "{error}"
    );
}

#[tokio::test]
async fn concurrency_bound_turns_excess_calls_into_overloaded_errors() {
    let up = upstream("one", 1, false).await;
    let extra = "max_concurrency = 1\nqueue_timeout_ms = 200\nrequest_timeout_ms = 5000";
    let sidecar = sidecar(&target_toml("one", &up.url, extra)).await;
    wait_for_state(&sidecar.base, "one", "ready").await;
    let url = sidecar.url.clone();
    let holder = tokio::spawn(async move {
        call_tool(&url, "one___tool_000", json!({"ms": 800, "text": "held"})).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let refused = call_tool(&sidecar.url, "one___tool_000", json!({"text": "queued"})).await;
    assert_eq!(refused["error"]["data"]["kind"], "overloaded", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'one'")
    );
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "fails after the queue timeout, not the request timeout"
    );
    let held = holder.await.unwrap();
    assert_eq!(
        held["result"]["content"][0]["text"], "one:tool_000:held",
        "{held}"
    );
}

#[tokio::test]
async fn dead_and_garbage_targets_are_reported_and_do_not_hide_good_ones() {
    let good = upstream("good", 2, true).await;
    let dead = dead_url().await;
    let (garbage, _g) =
        raw_upstream(200, "application/json", "<html>definitely not json</html>").await;
    let (html, _h) = raw_upstream(502, "text/html", "<h1>Bad Gateway</h1>").await;
    let config = format!(
        "{}{}{}{}",
        target_toml("good", &good.url, ""),
        target_toml("dead", &dead, "connect_timeout_ms = 300"),
        target_toml("garbage", &garbage, ""),
        target_toml("proxy", &html, "")
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "good", "ready").await;
    let dead_status = wait_for_state(&sidecar.base, "dead", "failing").await;
    let garbage_status = wait_for_state(&sidecar.base, "garbage", "failing").await;
    let proxy_status = wait_for_state(&sidecar.base, "proxy", "failing").await;

    let message = |s: &Value| s["last_error"].as_str().unwrap().to_string();
    assert!(
        message(&dead_status).contains("'dead' is unreachable"),
        "{dead_status}"
    );
    assert!(
        message(&garbage_status).contains("'garbage' sent an invalid response"),
        "{garbage_status}"
    );
    assert!(
        message(&garbage_status).contains("definitely not json"),
        "quotes what came back"
    );
    assert!(
        message(&proxy_status).contains("HTTP 502"),
        "{proxy_status}"
    );

    let (code, ready) = readyz(&sidecar.base).await;
    assert_eq!(code, 200, "ready: one target has definitions");
    assert_eq!(ready["tools"], 2);
    let tools = list_all(&sidecar.url).await;
    assert_eq!(tools.len(), 2);
    let reply = call_tool(&sidecar.url, "good___tool_001", json!({"text": "ok"})).await;
    assert_eq!(reply["result"]["content"][0]["text"], "good:tool_001:ok");
}

#[tokio::test]
async fn a_target_going_down_keeps_its_cached_tools_and_calls_name_it() {
    let up = upstream("flaky", 2, false).await;
    let url = up.url.clone();
    let sidecar = sidecar(&target_toml(
        "flaky",
        &url,
        "sync_interval_secs = 1\nconnect_timeout_ms = 300",
    ))
    .await;
    wait_for_state(&sidecar.base, "flaky", "ready").await;
    drop(up);
    let status = wait_for_state(&sidecar.base, "flaky", "failing").await;
    assert_eq!(status["tools"], 2, "{status}");
    assert_eq!(
        list_all(&sidecar.url).await.len(),
        2,
        "definitions survive the outage"
    );
    let reply = call_tool(&sidecar.url, "flaky___tool_000", json!({})).await;
    assert_eq!(reply["error"]["data"]["target"], "flaky", "{reply}");
    assert_eq!(reply["error"]["data"]["kind"], "unreachable");
}

#[tokio::test]
async fn an_emptied_listing_never_replaces_good_definitions() {
    let up = upstream("shrinking", 3, false).await;
    let sidecar = sidecar(&target_toml("shrinking", &up.url, "sync_interval_secs = 1")).await;
    wait_for_state(&sidecar.base, "shrinking", "ready").await;
    up.knobs.tools.store(0, Ordering::SeqCst);
    let status = wait_for_state(&sidecar.base, "shrinking", "failing").await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("empty tool list"),
        "{status}"
    );
    assert_eq!(list_all(&sidecar.url).await.len(), 3);
}

#[tokio::test]
async fn colliding_names_are_reported_and_both_tools_stay_callable() {
    let a = upstream("a", 1, false).await;
    let b = upstream("b", 1, false).await;
    let config = format!(
        "{}{}",
        target_toml("a", &a.url, "prefix_tools = false"),
        target_toml("b", &b.url, "prefix_tools = false")
    );
    let sidecar = sidecar(&config).await;
    wait_for_state(&sidecar.base, "a", "ready").await;
    wait_for_state(&sidecar.base, "b", "ready").await;
    let (_, ready) = readyz(&sidecar.base).await;
    let collisions = ready["collisions"].as_array().unwrap();
    assert_eq!(collisions.len(), 1, "{ready}");
    let tools = list_all(&sidecar.url).await;
    assert_eq!(tools.len(), 2);
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let reply = call_tool(&sidecar.url, name, json!({"text": "x"})).await;
        assert!(
            reply["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .ends_with(":tool_000:x"),
            "{reply}"
        );
    }
}

#[tokio::test]
async fn api_key_is_sent_and_inbound_authorization_is_never_forwarded() {
    let up = upstream("keyed", 1, true).await;
    up.knobs.require_api_key.store(true, Ordering::SeqCst);
    let extra = "[targets.credential_provider]\ntype = \"api_key\"\nheader = \"x-api-key\"\nvalue = \"test-key\"";
    let sidecar = sidecar(&target_toml("keyed", &up.url, extra)).await;
    wait_for_state(&sidecar.base, "keyed", "ready").await;
    let (_, reply) = post_with(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "keyed___tool_000", "arguments": {"text": "k"}}}),
        &[("authorization", "Bearer inbound-secret-token")],
    )
    .await;
    assert_eq!(
        reply["result"]["content"][0]["text"], "keyed:tool_000:k",
        "{reply}"
    );
    assert_eq!(up.knobs.saw_authorization.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_target_without_its_credentials_is_reported_as_rejected() {
    let up = upstream("keyed", 1, false).await;
    up.knobs.require_api_key.store(true, Ordering::SeqCst);
    let sidecar = sidecar(&target_toml("keyed", &up.url, "")).await;
    let status = wait_for_state(&sidecar.base, "keyed", "failing").await;
    let message = status["last_error"].as_str().unwrap();
    assert!(
        message.contains("HTTP 401") && message.contains("credentials rejected"),
        "{message}"
    );
}

#[tokio::test]
async fn modern_clients_get_result_types_and_header_checks() {
    let up = upstream("m", 1, false).await;
    let sidecar = sidecar(&target_toml("m", &up.url, "")).await;
    wait_for_state(&sidecar.base, "m", "ready").await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let (status, list) = post_with(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}),
        &headers,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["cacheScope"], "private");

    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "m___other"),
    ];
    let (status, mismatch) = post_with(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "m___tool_000", "_meta": meta}}),
        &headers,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(mismatch["error"]["code"], -32020);

    let (status, discover) = post_with(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}}}),
        &[("mcp-protocol-version", "2099-01-01")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(discover["error"]["code"], -32022);
    assert!(
        discover["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_with_a_json_rpc_error() {
    let up = upstream("s", 1, false).await;
    let sidecar = sidecar(&format!(
        "[inbound]\nmax_body_bytes = 2048\n{}",
        target_toml("s", &up.url, "")
    ))
    .await;
    let big = "x".repeat(4096);
    let (status, body) = post(
        &sidecar.url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "s___tool_000", "arguments": {"text": big}}}),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], -32600);
    assert!(body["error"]["message"].as_str().unwrap().contains("2048"));
}
