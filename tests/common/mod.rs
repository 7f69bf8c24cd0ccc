//! Shared pieces for the integration tests: in-process rmcp upstreams with knobs for the
//! fault cases, a raw HTTP upstream for garbage answers, and a JSON-RPC helper.
#![allow(dead_code)]

pub mod issuer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, InitializeRequestParams, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Knobs and counters shared between a test and its upstream.
#[derive(Default)]
pub struct Knobs {
    /// How many tools the upstream lists (tool_000 …).
    pub tools: AtomicUsize,
    /// Page size of its tools/list (0 = everything in one page).
    pub page_size: AtomicUsize,
    /// `initialize` requests answered.
    pub initializes: AtomicUsize,
    /// `tools/list` requests answered.
    pub lists: AtomicUsize,
    /// Requests that arrived with an Authorization header (must stay 0: inbound tokens
    /// are never forwarded).
    pub saw_authorization: AtomicUsize,
    /// When set, the HTTP layer requires `x-api-key: test-key`.
    pub require_api_key: AtomicBool,
    /// When non-zero, the HTTP layer answers every request with this status (429 comes
    /// with `Retry-After: 1`).
    pub status_override: std::sync::atomic::AtomicU16,
    /// Calls cancelled by the client (`notifications/cancelled`) while they ran.
    pub cancelled: AtomicUsize,
    /// Calls with a `ms` argument that have started (and are sleeping or done).
    pub slow_calls_started: AtomicUsize,
    /// When set, the HTTP layer answers every request with 200 and a body that is not JSON.
    pub garbage: AtomicBool,
    /// Milliseconds each tools/list takes.
    pub list_delay_ms: std::sync::atomic::AtomicU64,
    /// Also offer prompts and resources.
    pub extras: AtomicBool,
    /// The session's peer, captured at initialize, to push notifications outside requests.
    pub peer: std::sync::Mutex<Option<rmcp::Peer<RoleServer>>>,
}

#[derive(Clone)]
struct TestServer {
    knobs: Arc<Knobs>,
    name: &'static str,
}

fn tool(name: &str) -> Tool {
    serde_json::from_value(json!({
        "name": name,
        "title": format!("Title of {name}"),
        "description": format!("{name} echoes `text`"),
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}, "ms": {"type": "integer"}}},
        "annotations": {"readOnlyHint": true},
        "_meta": {"vendor/key": name},
    }))
    .unwrap()
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.knobs.extras.load(Ordering::SeqCst) {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build()
        } else {
            ServerCapabilities::builder().enable_tools().build()
        };
        ServerConfig::new(capabilities).with_instructions(format!("Instructions of {}", self.name))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(serde_json::from_value(json!({"prompts": [
            {"name": "greet", "description": "Greets someone", "arguments": [{"name": "who", "required": true}]}
        ]}))
        .unwrap())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let who = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("who"))
            .and_then(Value::as_str)
            .unwrap_or("nobody")
            .to_string();
        let result: GetPromptResult = serde_json::from_value(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": format!("Hello {who} from {}:{}", self.name, request.name)}}]
        }))
        .unwrap();
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(serde_json::from_value(json!({"resources": [
            {"uri": format!("test://{}/readme", self.name), "name": "readme"},
            {"uri": "file:///shared.txt", "name": "shared"}
        ]}))
        .unwrap())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(serde_json::from_value(json!({"resourceTemplates": [
            {"uriTemplate": format!("test://{}/items/{{id}}", self.name), "name": "item"}
        ]}))
        .unwrap())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let result: ReadResourceResult = serde_json::from_value(json!({
            "contents": [{"uri": request.uri, "text": format!("{} read {}", self.name, request.uri)}]
        }))
        .unwrap();
        Ok(result.into())
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.knobs.initializes.fetch_add(1, Ordering::SeqCst);
        *self.knobs.peer.lock().unwrap() = Some(context.peer.clone());
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.knobs.lists.fetch_add(1, Ordering::SeqCst);
        let delay = self.knobs.list_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let total = self.knobs.tools.load(Ordering::SeqCst);
        let page = match self.knobs.page_size.load(Ordering::SeqCst) {
            0 => total.max(1),
            n => n,
        };
        let start: usize = request
            .and_then(|r| r.cursor)
            .map(|c| {
                c.parse()
                    .map_err(|_| ErrorData::invalid_params("bad cursor", None))
            })
            .transpose()?
            .unwrap_or(0);
        let end = (start + page).min(total);
        let mut result = ListToolsResult::with_all_items(
            (start..end)
                .map(|i| tool(&format!("tool_{i:03}")))
                .collect(),
        );
        if end < total {
            result.next_cursor = Some(end.to_string());
        }
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        if let Some(ms) = args.get("ms").and_then(Value::as_u64) {
            self.knobs.slow_calls_started.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = context.ct.cancelled() => {
                    self.knobs.cancelled.fetch_add(1, Ordering::SeqCst);
                    return Err(ErrorData::internal_error("cancelled", None));
                }
            }
        }
        let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
        let result: CallToolResult = serde_json::from_value(json!({
            "content": [{"type": "text", "text": format!("{}:{}:{text}", self.name, request.name)}],
            "structuredContent": {"tool": request.name, "server": self.name},
            "_meta": {"vendor/echo": true},
        }))
        .unwrap();
        Ok(result.into())
    }
}

/// A running in-process upstream.
pub struct Upstream {
    pub url: String,
    pub knobs: Arc<Knobs>,
    /// Present for stateful upstreams: lets a test drop every session (the next request
    /// with an old session id gets rmcp's real 404).
    pub sessions: Option<Arc<LocalSessionManager>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn expire_sessions(&self) {
        self.sessions
            .as_ref()
            .expect("stateful upstream")
            .sessions
            .write()
            .await
            .clear();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an rmcp upstream on loopback with `tools` tools.
pub async fn upstream(name: &'static str, tools: usize, stateful: bool) -> Upstream {
    let knobs = Arc::new(Knobs::default());
    knobs.tools.store(tools, Ordering::SeqCst);
    let server = TestServer {
        knobs: knobs.clone(),
        name,
    };
    let mut config = StreamableHttpServerConfig::default();
    config.sse_keep_alive = None;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (router, sessions) = if stateful {
        let sessions = Arc::new(LocalSessionManager::default());
        let service =
            StreamableHttpService::new(move || Ok(server.clone()), sessions.clone(), config);
        (
            axum::Router::new().nest_service("/mcp", service),
            Some(sessions),
        )
    } else {
        config.legacy_session_mode = false;
        config.json_response = true;
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        (axum::Router::new().nest_service("/mcp", service), None)
    };
    let gate_knobs = knobs.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let knobs = gate_knobs.clone();
            async move {
                if req.headers().contains_key(http::header::AUTHORIZATION) {
                    knobs.saw_authorization.fetch_add(1, Ordering::SeqCst);
                }
                if knobs.garbage.load(Ordering::SeqCst) {
                    return (
                        [(http::header::CONTENT_TYPE, "application/json")],
                        "<html>oops</html>",
                    )
                        .into_response();
                }
                let forced = knobs.status_override.load(Ordering::SeqCst);
                if forced != 0 {
                    let status = http::StatusCode::from_u16(forced).unwrap();
                    return (
                        status,
                        [(http::header::RETRY_AFTER, "1")],
                        "forced by the test",
                    )
                        .into_response();
                }
                if knobs.require_api_key.load(Ordering::SeqCst)
                    && req.headers().get("x-api-key").and_then(|v| v.to_str().ok())
                        != Some("test-key")
                {
                    return (http::StatusCode::UNAUTHORIZED, "missing api key").into_response();
                }
                next.run(req).await
            }
        },
    ));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Upstream {
        url,
        knobs,
        sessions,
        task,
    }
}

/// An HTTP server that answers every POST with `status`, `content_type` and `body`.
pub async fn raw_upstream(
    status: u16,
    content_type: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move || async move {
            let status = http::StatusCode::from_u16(status).unwrap();
            (status, [(http::header::CONTENT_TYPE, content_type)], body).into_response()
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// A loopback URL nothing listens on.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/mcp")
}

/// A sidecar started in-process from TOML config text.
pub struct Sidecar {
    pub url: String,
    pub base: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn sidecar(config_toml: &str) -> Sidecar {
    let config =
        mcp_sidecar::config::Config::parse(config_toml, &|_| None).expect("test config is valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = mcp_sidecar::start(&config, listener).await.unwrap();
    Sidecar {
        base: format!("http://{}", running.local_addr),
        url: running.url,
        server: running.server,
    }
}

pub fn target_toml(name: &str, url: &str, extra: &str) -> String {
    format!("[[targets]]\nname = \"{name}\"\nkind = \"mcp_server\"\nurl = \"{url}\"\n{extra}\n")
}

/// The test's own client, straight to the sidecar (never through a proxy a test configures
/// for the sidecar's targets).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// POSTs one JSON-RPC message; returns HTTP status and the parsed body (Null if empty).
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    post_with(url, body, &[]).await
}

pub async fn post_with(url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn call_tool(url: &str, name: &str, arguments: Value) -> Value {
    let (_, body) = post(
        url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}}),
    )
    .await;
    body
}

/// Every tool name the sidecar lists, following nextCursor.
pub async fn list_all(url: &str) -> Vec<Value> {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let (status, body) = post(
            url,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        tools.extend(body["result"]["tools"].as_array().unwrap().iter().cloned());
        match body["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return tools,
        }
    }
}

pub async fn readyz(base: &str) -> (u16, Value) {
    let response = client().get(format!("{base}/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap(),
    )
}

/// Waits (bounded) until `/readyz` shows target `name` with `state`.
pub async fn wait_for_state(base: &str, name: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = readyz(base).await;
        let target = body["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap();
        if target["state"] == state {
            return target;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "target {name} never reached {state}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits (bounded) until `n` slow calls have reached `up`: on a busy machine a call
/// spawned a moment ago may not be in flight yet.
pub async fn wait_for_slow_calls(up: &Upstream, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while up.knobs.slow_calls_started.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow call never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
