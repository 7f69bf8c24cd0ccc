//! MCP 2026-07-28 through the relay, against in-process upstreams: which protocol each
//! upstream is spoken to in, the sealed MRTR `requestState` (a scripted 2026-07-28 upstream
//! that counts what reaches it), `subscriptions/listen`, and legacy sessions with their GET
//! stream. Real SDK peers for the same features are in tests/peers/test_mrtr.py and the
//! conformance suites.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::IntoResponse;
use common::*;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MODERN: &str = "2026-07-28";

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    })
}

/// POSTs a 2026-07-28 request with its headers.
async fn modern(url: &str, id: u64, method: &str, mut params: Value) -> (u16, Value) {
    params["_meta"] = modern_meta();
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if let Some(name) = &name {
        headers.push(("mcp-name", name.as_str()));
    }
    post_with(
        url,
        &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        &headers,
    )
    .await
}

#[tokio::test]
async fn a_dual_era_upstream_is_spoken_to_at_2026_07_28_and_a_pinned_one_with_initialize() {
    let up = upstream("dual", 2, true).await;
    let auto = sidecar(&target_toml("auto", &up.url, "")).await;
    let status = wait_for_state(&auto.base, "auto", "ready").await;
    assert_eq!(status["protocol_version"], MODERN, "{status}");
    let reply = call_tool(&auto.url, "auto___tool_001", json!({"text": "hi"})).await;
    assert_eq!(
        reply["result"]["content"][0]["text"], "dual:tool_001:hi",
        "{reply}"
    );
    assert_eq!(
        up.knobs.initializes.load(Ordering::SeqCst),
        0,
        "a 2026-07-28 upstream is never initialized"
    );

    let pinned = sidecar(&target_toml(
        "pinned",
        &up.url,
        "protocol_version = \"2025-11-25\"",
    ))
    .await;
    let status = wait_for_state(&pinned.base, "pinned", "ready").await;
    assert_eq!(status["protocol_version"], "2025-11-25", "{status}");
    assert_eq!(up.knobs.initializes.load(Ordering::SeqCst), 1);
}

/// A scripted 2026-07-28 upstream with one tool, `ask`, that needs an answer first: the
/// first call answers `input_required` with requestState "UP-1"; a call carrying that state
/// and the answer completes. It counts the `tools/call` requests that reach it and keeps
/// the last requestState it was sent.
struct Scripted {
    url: String,
    calls: Arc<AtomicUsize>,
    last_state: Arc<std::sync::Mutex<Option<Value>>>,
}

async fn scripted_upstream() -> Scripted {
    let calls = Arc::new(AtomicUsize::new(0));
    let last_state = Arc::new(std::sync::Mutex::new(None));
    let (c, s) = (calls.clone(), last_state.clone());
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (calls, last_state) = (c.clone(), s.clone());
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = request["id"].clone();
                let params = &request["params"];
                let result = match request["method"].as_str().unwrap_or_default() {
                    "server/discover" => json!({
                        "resultType": "complete",
                        "supportedVersions": [MODERN],
                        "capabilities": {"tools": {}},
                    }),
                    "tools/list" => json!({
                        "resultType": "complete",
                        "tools": [
                            {"name": "ask", "inputSchema": {"type": "object"}},
                            {"name": "other", "inputSchema": {"type": "object"}},
                        ],
                    }),
                    "tools/call" => {
                        calls.fetch_add(1, Ordering::SeqCst);
                        *last_state.lock().unwrap() = params.get("requestState").cloned();
                        match (params.get("requestState"), params.get("inputResponses")) {
                            (Some(state), Some(answers)) if state == "UP-1" => json!({
                                "resultType": "complete",
                                "content": [{"type": "text", "text": format!("answered {}", answers["q"]["content"]["name"])}],
                            }),
                            _ => json!({
                                "resultType": "input_required",
                                "inputRequests": {"q": {"method": "elicitation/create", "params": {"message": "name?", "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}}},
                                "requestState": "UP-1",
                            }),
                        }
                    }
                    _ => {
                        return json_response(
                            http::StatusCode::NOT_FOUND,
                            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
                        );
                    }
                };
                json_response(
                    http::StatusCode::OK,
                    json!({"jsonrpc": "2.0", "id": id, "result": result}),
                )
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Scripted {
        url,
        calls,
        last_state,
    }
}

fn json_response(status: http::StatusCode, body: Value) -> axum::response::Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[tokio::test]
async fn request_state_is_sealed_and_only_a_matching_retry_reaches_the_upstream() {
    let up = scripted_upstream().await;
    let sc = sidecar(&target_toml("s", &up.url, "")).await;
    wait_for_state(&sc.base, "s", "ready").await;

    let (status, first) = modern(
        &sc.url,
        1,
        "tools/call",
        json!({"name": "s___ask", "arguments": {}}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    assert_eq!(result["inputRequests"]["q"]["method"], "elicitation/create");
    let sealed = result["requestState"].as_str().unwrap().to_string();
    assert_ne!(
        sealed, "UP-1",
        "the upstream's own state never reaches the client as it is"
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);

    let answers = json!({"q": {"action": "accept", "content": {"name": "Ada"}}});
    // Tampered, and issued for another tool: refused here, never sent upstream.
    let mut tampered = sealed.clone();
    tampered.insert(3, 'x');
    for (name, state) in [
        ("s___ask", tampered.as_str()),
        ("s___other", sealed.as_str()),
    ] {
        let (status, reply) = modern(
            &sc.url,
            2,
            "tools/call",
            json!({"name": name, "arguments": {}, "inputResponses": answers, "requestState": state}),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["error"]["code"], -32602, "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("requestState"),
            "{reply}"
        );
    }
    assert_eq!(
        up.calls.load(Ordering::SeqCst),
        1,
        "refused retries never reach the upstream"
    );

    let (status, done) = modern(
        &sc.url,
        3,
        "tools/call",
        json!({"name": "s___ask", "arguments": {}, "inputResponses": answers, "requestState": sealed}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"], "answered \"Ada\"",
        "{done}"
    );
    assert_eq!(*up.last_state.lock().unwrap(), Some(json!("UP-1")));
}

#[tokio::test]
async fn an_expired_request_state_is_refused() {
    let up = scripted_upstream().await;
    let config = format!(
        "[inbound]\nrequest_state_ttl_secs = 1\n{}",
        target_toml("s", &up.url, "")
    );
    let sc = sidecar(&config).await;
    wait_for_state(&sc.base, "s", "ready").await;
    let (_, first) = modern(
        &sc.url,
        1,
        "tools/call",
        json!({"name": "s___ask", "arguments": {}}),
    )
    .await;
    let sealed = first["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, reply) = modern(
        &sc.url,
        2,
        "tools/call",
        json!({"name": "s___ask", "arguments": {}, "inputResponses": {"q": {}}, "requestState": sealed}),
    )
    .await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{reply}"
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), 1);
}

/// Reads SSE `data:` messages from a streaming response until `until` says stop or the
/// time runs out; returns the messages read.
async fn read_events(
    response: &mut reqwest::Response,
    within: Duration,
    until: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while !until(&events) {
        let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    events.push(serde_json::from_str(data).unwrap());
                }
            }
        }
    }
    events
}

async fn open_listen(url: &str, id: u64, filter: Value) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
        "params": {"notifications": filter, "_meta": modern_meta()}});
    client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn listen_acknowledges_first_and_delivers_only_what_was_asked() {
    let up = upstream("t", 1, false).await;
    let config = format!("[admin]\nenabled = true\n{}", target_toml("t", &up.url, ""));
    let sc = sidecar(&config).await;
    wait_for_state(&sc.base, "t", "ready").await;

    let mut tools = open_listen(
        &sc.url,
        41,
        json!({"toolsListChanged": true, "promptsListChanged": true}),
    )
    .await;
    assert_eq!(tools.status(), 200);
    let mut prompts_only = open_listen(&sc.url, 42, json!({"promptsListChanged": true})).await;
    let ack = read_events(&mut tools, Duration::from_secs(5), |e| !e.is_empty()).await;
    assert_eq!(
        ack[0]["method"], "notifications/subscriptions/acknowledged",
        "{ack:?}"
    );
    // This upstream has no prompts: only what the sidecar can honour is accepted.
    assert_eq!(
        ack[0]["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(
        ack[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        41
    );
    let _ = read_events(&mut prompts_only, Duration::from_secs(5), |e| !e.is_empty()).await;

    up.knobs.tools.store(3, Ordering::SeqCst);
    let synced = client()
        .post(format!("{}/admin/sync", sc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(synced.status(), 200);
    let changed = read_events(&mut tools, Duration::from_secs(5), |e| !e.is_empty()).await;
    assert_eq!(
        changed[0]["method"], "notifications/tools/list_changed",
        "{changed:?}"
    );
    assert_eq!(
        changed[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        41
    );
    let leaked = read_events(&mut prompts_only, Duration::from_millis(500), |e| {
        !e.is_empty()
    })
    .await;
    assert!(leaked.is_empty(), "a prompts-only stream got {leaked:?}");
}

#[tokio::test]
async fn legacy_clients_that_can_answer_get_a_session_and_its_stream() {
    let up = upstream("t", 1, false).await;
    let config = format!("[admin]\nenabled = true\n{}", target_toml("t", &up.url, ""));
    let sc = sidecar(&config).await;
    wait_for_state(&sc.base, "t", "ready").await;
    let initialize = |caps: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": caps,
            "clientInfo": {"name": "t", "version": "0"}}})
    };
    let plain = client()
        .post(&sc.url)
        .header("content-type", "application/json")
        .body(initialize(json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("mcp-session-id").is_none());
    let get = client()
        .get(&sc.url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405, "no session, no stream");

    let answering = client()
        .post(&sc.url)
        .header("content-type", "application/json")
        .body(initialize(json!({"elicitation": {}})).to_string())
        .send()
        .await
        .unwrap();
    let session = answering
        .headers()
        .get("mcp-session-id")
        .expect("a session for a client that can answer")
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = serde_json::from_str(&answering.text().await.unwrap()).unwrap();
    assert_eq!(
        body["result"]["capabilities"]["tools"]["listChanged"], true,
        "{body}"
    );

    let mut stream = client()
        .get(&sc.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // A forged session id is not ours: 405 like any other.
    let forged = client()
        .get(&sc.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", format!("{session}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 405);

    up.knobs.tools.store(2, Ordering::SeqCst);
    client()
        .post(format!("{}/admin/sync", sc.base))
        .send()
        .await
        .unwrap();
    let events = read_events(&mut stream, Duration::from_secs(5), |e| !e.is_empty()).await;
    assert_eq!(
        events[0]["method"], "notifications/tools/list_changed",
        "{events:?}"
    );
}
