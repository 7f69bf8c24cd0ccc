//! The built-in demo upstream: a real MCP server (rmcp, streamable HTTP) with a few tools,
//! so the sidecar can be tried with no AWS account and no network.
//!
//! Also used by the benchmarks as the "fast upstream" and by `--extra-tools N` to make a
//! large catalog; `--stdio` serves it over stdin and stdout (a stdio server for the stdio
//! target's tests and benchmark).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct DemoServer {
    tools: Arc<Vec<Tool>>,
}

impl DemoServer {
    pub fn new(extra_tools: usize) -> Self {
        let mut tools = vec![
            tool(
                "echo",
                "Returns the text it is given.",
                json!({"text": {"type": "string", "description": "Text to echo"}}),
                &["text"],
                true,
            ),
            tool(
                "add",
                "Adds two numbers; the sum also comes back as structured content.",
                json!({"a": {"type": "number"}, "b": {"type": "number"}}),
                &["a", "b"],
                true,
            ),
            tool(
                "sleep",
                "Waits the given number of milliseconds, then answers.",
                json!({"ms": {"type": "integer", "minimum": 0, "maximum": 600000}}),
                &["ms"],
                true,
            ),
            tool(
                "progress",
                "Reports progress `steps` times (when the call has a progressToken), then answers.",
                json!({"steps": {"type": "integer", "minimum": 0, "maximum": 100}}),
                &["steps"],
                true,
            ),
            tool(
                "fail",
                "Always answers with a tool error (isError: true).",
                json!({"message": {"type": "string"}}),
                &["message"],
                false,
            ),
        ];
        for i in 0..extra_tools {
            let name = format!("tool_{i:05}");
            let description =
                format!("Synthetic tool number {i} for catalog benchmarks; echoes its `value`.");
            tools.push(tool(
                &name,
                &description,
                json!({"value": {"type": "string", "description": "Any text"}}),
                &[],
                true,
            ));
        }
        Self {
            tools: Arc::new(tools),
        }
    }
}

fn tool(
    name: &str,
    description: &str,
    properties: Value,
    required: &[&str],
    read_only: bool,
) -> Tool {
    let mut definition = json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties, "required": required},
        "annotations": {"readOnlyHint": read_only, "openWorldHint": false},
    });
    if name == "add" {
        definition["outputSchema"] = json!({"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]});
    }
    serde_json::from_value(definition).expect("demo tool definitions are valid")
}

fn text_result(text: impl Into<String>, is_error: bool) -> CallToolResult {
    serde_json::from_value(
        json!({"content": [{"type": "text", "text": text.into()}], "isError": is_error}),
    )
    .expect("valid tool result")
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcp-sidecar-demo",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("Demo tools of mcp-sidecar: echo, add, sleep, progress and fail.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let number = |key: &str| args.get(key).and_then(Value::as_f64);
        let result = match request.name.as_ref() {
            "echo" => text_result(
                args.get("text").and_then(Value::as_str).unwrap_or_default(),
                false,
            ),
            "add" => {
                let (Some(a), Some(b)) = (number("a"), number("b")) else {
                    return Err(ErrorData::invalid_params(
                        "add needs numbers `a` and `b`",
                        None,
                    ));
                };
                let sum = a + b;
                serde_json::from_value(json!({
                    "content": [{"type": "text", "text": format!("{sum}")}],
                    "structuredContent": {"sum": sum},
                }))
                .expect("valid tool result")
            }
            "sleep" => {
                let ms = number("ms").unwrap_or(0.0).clamp(0.0, 600_000.0) as u64;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                text_result(format!("slept {ms} ms"), false)
            }
            "progress" => {
                let steps = number("steps").unwrap_or(3.0).clamp(0.0, 100.0) as u32;
                if let Some(token) = context.meta.get_progress_token() {
                    for step in 1..=steps {
                        let param: ProgressNotificationParam = serde_json::from_value(json!({
                            "progressToken": token, "progress": step, "total": steps,
                            "message": format!("step {step} of {steps}"),
                        }))
                        .expect("valid progress");
                        let _ = context.peer.notify_progress(param).await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                text_result(format!("completed {steps} steps"), false)
            }
            "fail" => text_result(
                args.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("failed"),
                true,
            ),
            name if name.starts_with("tool_") => text_result(
                args.get("value").and_then(Value::as_str).unwrap_or(name),
                false,
            ),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool `{other}`"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}

/// Serves the demo upstream at `/mcp` on `listener`: stateful with SSE answers by default
/// (like most MCP servers), or stateless with JSON answers.
pub async fn serve(
    listener: TcpListener,
    stateless: bool,
    extra_tools: usize,
) -> std::io::Result<()> {
    let server = DemoServer::new(extra_tools);
    if stateless {
        serve_with(
            listener,
            server,
            NeverSessionManager::default(),
            false,
            true,
        )
        .await
    } else {
        serve_with(
            listener,
            server,
            LocalSessionManager::default(),
            true,
            false,
        )
        .await
    }
}

/// Serves the demo upstream over stdin and stdout (MCP's stdio transport) until stdin ends.
pub async fn serve_stdio(extra_tools: usize) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let running = DemoServer::new(extra_tools)
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}

async fn serve_with<M: SessionManager>(
    listener: TcpListener,
    server: DemoServer,
    sessions: M,
    legacy_session_mode: bool,
    json_response: bool,
) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    config.legacy_session_mode = legacy_session_mode;
    config.json_response = json_response;
    config.sse_keep_alive = None;
    let service =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::new(sessions), config);
    let app = axum::Router::new().nest_service("/mcp", service);
    axum::serve(listener, app).await
}
