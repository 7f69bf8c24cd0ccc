//! Upstream targets: one module per kind behind the [`Target`] trait.
//!
//! The catalog and the inbound handler only see this trait, so later kinds (stdio, Lambda,
//! OpenAPI) plug in without `if mcp … else …` branches elsewhere.

pub mod auth;
pub mod mcp_http;
pub mod sse;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{TargetConfig, TargetKind};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a relayed call's upstream notifications (e.g. `notifications/progress`) go, as raw
/// JSON-RPC messages, while the call is in flight.
pub type NotificationSink = tokio::sync::mpsc::Sender<Bytes>;

/// Called when an upstream announces a list change.
pub type ChangeCallback = Box<dyn Fn() + Send + Sync>;

/// What a sync learns from a target: definitions exactly as the upstream sent them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Listing {
    pub tools: Vec<Map<String, Value>>,
    pub prompts: Vec<Map<String, Value>>,
    pub resources: Vec<Map<String, Value>>,
    pub resource_templates: Vec<Map<String, Value>>,
    pub instructions: Option<String>,
    pub server_info: Option<Value>,
    /// The upstream's `initialize` capabilities.
    pub capabilities: Value,
    pub protocol_version: String,
}

/// An upstream's answer to a relayed request: its `result` or its JSON-RPC `error`, raw.
#[derive(Debug)]
pub enum Reply {
    Result(Box<RawValue>),
    Error(Box<RawValue>),
}

pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    /// Initializes if needed and fetches the whole tool list (all pages).
    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>>;
    /// Relays one request; `params` is the JSON object to send upstream.
    fn call<'a>(
        &'a self,
        method: &'static str,
        params: String,
        notify: Option<NotificationSink>,
    ) -> BoxFuture<'a, Result<Reply, TargetError>>;
    /// Releases upstream resources (e.g. ends the MCP session) at shutdown. Best effort.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Calls `on_change` whenever the upstream announces that its tools, prompts or
    /// resources changed; runs until the upstream cannot announce anything (then returns).
    fn watch_changes(&self, on_change: ChangeCallback) -> BoxFuture<'_, ()>;
}

pub fn build(config: &TargetConfig) -> anyhow::Result<Arc<dyn Target>> {
    Ok(match config.kind {
        TargetKind::McpServer => Arc::new(mcp_http::McpHttpTarget::new(config)?),
    })
}

/// Why a request to a target failed. Every message names the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer within the deadline.
    Timeout,
    /// Connection refused, reset, DNS or TLS failure.
    Unreachable,
    /// The target answered with a non-success HTTP status.
    HttpStatus(u16),
    /// The answer was not the MCP/JSON-RPC message expected.
    BadResponse,
    /// The target's concurrency bound was full for the whole deadline.
    Overloaded,
    /// The upstream session is gone (HTTP 404 or a session error); re-initialize and retry.
    SessionExpired,
    /// The target answered `initialize` or `tools/list` with a JSON-RPC error.
    Rejected,
    /// No outbound credentials could be obtained (AWS credential source, token endpoint).
    Credentials,
}

impl FailureKind {
    /// A short machine-readable label (used in JSON-RPC `error.data.kind` and status).
    pub fn label(&self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Unreachable => "unreachable",
            FailureKind::HttpStatus(_) => "http_status",
            FailureKind::BadResponse => "bad_response",
            FailureKind::Overloaded => "overloaded",
            FailureKind::SessionExpired => "session_expired",
            FailureKind::Rejected => "rejected",
            FailureKind::Credentials => "credentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub target: String,
    pub kind: FailureKind,
    pub detail: String,
}

impl TargetError {
    pub fn new(target: &str, kind: FailureKind, detail: impl Into<String>) -> Self {
        Self {
            target: target.to_string(),
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            FailureKind::Timeout => "timed out".to_string(),
            FailureKind::Unreachable => "is unreachable".to_string(),
            FailureKind::HttpStatus(code) => format!("answered HTTP {code}"),
            FailureKind::BadResponse => "sent an invalid response".to_string(),
            FailureKind::Overloaded => "is at its concurrency limit".to_string(),
            FailureKind::SessionExpired => "lost its session".to_string(),
            FailureKind::Rejected => "rejected the request".to_string(),
            FailureKind::Credentials => "has no usable credentials".to_string(),
        };
        write!(
            f,
            "upstream target '{}' {what}: {}",
            self.target, self.detail
        )
    }
}

impl std::error::Error for TargetError {}
