//! Upstream targets: one module per kind behind the [`Target`] trait.
//!
//! The catalog and the inbound handler see only this trait, so a new kind is one module plus
//! one arm in [`build`] (and one [`TargetSpec`] arm in the config):
//!
//! - [`mcp`]: an MCP client (session lifecycle, pagination, change stream) generic over a
//!   transport; `mcp_server` targets use it over streamable HTTP, `stdio` targets over a
//!   child process's stdin and stdout;
//! - [`lambda`]: `lambda` targets, AWS Lambda functions invoked as AgentCore Gateway does;
//! - [`http`]: authorized HTTP sending with throttling retries and credential refresh, for
//!   every kind that speaks HTTP;
//! - [`credentials`]: outbound credentials (static headers, API keys, SigV4/SigV4a, OAuth);
//! - [`bounded`]: the per-target concurrency bound, applied once around any kind here;
//! - [`api`]: tools derived from an API definition, shared by [`openapi`] (OpenAPI 3.0/3.1
//!   documents) and [`smithy`] (Smithy models of AWS services).

pub mod api;
pub mod bounded;
pub mod credentials;
pub mod error;
pub mod http;
pub mod lambda;
pub mod mcp;
pub mod notify;
pub mod openapi;
pub mod smithy;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use self::error::{FailureKind, TargetError};
pub use self::notify::NotificationSink;
use crate::config::{TargetConfig, TargetSpec};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an upstream announced outside any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Tools,
    Prompts,
    Resources,
    /// `notifications/resources/updated` for this URI (the upstream's own).
    ResourceUpdated(String),
}

/// Called when an upstream announces a change.
pub type ChangeCallback = Box<dyn Fn(Change) + Send + Sync>;

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

/// The requests the sidecar relays to the target that owns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CallTool,
    GetPrompt,
    ReadResource,
    Complete,
    SetLogLevel,
}

impl Operation {
    /// The MCP method that carries it.
    pub fn method(self) -> &'static str {
        match self {
            Operation::CallTool => "tools/call",
            Operation::GetPrompt => "prompts/get",
            Operation::ReadResource => "resources/read",
            Operation::Complete => "completion/complete",
            Operation::SetLogLevel => "logging/setLevel",
        }
    }
}

/// One relayed request, already in the upstream's terms.
#[derive(Debug, Clone)]
pub struct RelayRequest {
    pub operation: Operation,
    /// The upstream's own name of the tool or prompt, or the resource URI (none for
    /// completions and log levels).
    pub name: Option<String>,
    /// The params object to send, with the upstream's own name or URI in it and without
    /// `_meta` (see `meta`).
    pub params: String,
    /// The caller's own `_meta` entries (progress token, vendor keys); the protocol's keys
    /// are in `client`.
    pub meta: Map<String, Value>,
    /// Who is asking, in protocol terms.
    pub client: ClientContext,
    /// Headers an HTTP transport sends with it: 2026-07-28's `Mcp-Param-*` mirrors of
    /// annotated arguments (see `protocol::param_headers`).
    pub headers: Vec<(String, String)>,
    /// Who answers what a legacy upstream asks the client mid-call (sampling, elicitation,
    /// roots); without one such requests are refused at once.
    pub bridge: Option<Arc<dyn ClientBridge>>,
}

/// Carries a request an upstream sends its client mid-call to the sidecar's own caller.
pub trait ClientBridge: Send + Sync + std::fmt::Debug {
    /// The caller's answer to `method` (`sampling/createMessage`, `elicitation/create`,
    /// `roots/list`): `Ok(result)` or `Err(error object)`, both raw JSON.
    fn ask<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> BoxFuture<'a, Result<Box<RawValue>, Box<RawValue>>>;
}

/// What the relay knows of the calling client that an upstream may need to know too.
#[derive(Debug, Clone, Default)]
pub struct ClientContext {
    /// What the caller can answer mid-call (`sampling`, `elicitation`, `roots`), as it
    /// declared it; `None` when it declared nothing the relay could see.
    pub capabilities: Option<Map<String, Value>>,
    /// The log level a 2026-07-28 caller asked for; without one it gets no log messages.
    pub log_level: Option<String>,
    /// The caller speaks 2026-07-28 or later.
    pub modern: bool,
}

/// What `check` and `/readyz` say about a target.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub kind: &'static str,
    /// Where requests go, printable (no query string, no userinfo, no secrets).
    pub endpoint: String,
    /// The credential source, in words (never the secret).
    pub credentials: String,
}

pub trait Target: Send + Sync {
    fn name(&self) -> &str;
    fn describe(&self) -> Description;
    /// The upstream's identity for persistence: a saved catalog is restored only for the
    /// same fingerprint (the same server behind the same name).
    fn fingerprint(&self) -> String;
    /// Initializes if needed and fetches every listing (all pages).
    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>>;
    /// Relays one request; progress and log notifications go to `notify` while it runs.
    fn relay(
        &self,
        request: RelayRequest,
        notify: Option<NotificationSink>,
    ) -> BoxFuture<'_, Result<Reply, TargetError>>;
    /// Releases upstream resources (e.g. ends the MCP session) at shutdown. Best effort.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// Calls `on_change` whenever the upstream announces that its tools, prompts or
    /// resources changed; runs until the upstream cannot announce anything (then returns).
    fn watch_changes(&self, on_change: ChangeCallback) -> BoxFuture<'_, ()>;
    /// What `check` reports beyond the config, one line each: kinds that derive their tools
    /// from a definition (an OpenAPI document, a Smithy model) load it and say what became a
    /// tool and what could not, per operation. A method of its own because it does I/O,
    /// which `build` and `describe` never do. Default: nothing.
    fn inspect(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(std::future::ready(Vec::new()))
    }

    /// The upstream resource URIs some client wants updates of (the whole set, replacing
    /// the last): the target subscribes upstream as its protocol allows, and updates come
    /// back through `watch_changes`. Kinds without resource updates ignore it.
    fn watch_resources(&self, _uris: Vec<String>) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Builds a target from its config. Nothing is contacted or started here (`check` builds
/// targets to describe them); that happens on first use.
pub fn build(config: &TargetConfig) -> anyhow::Result<Arc<dyn Target>> {
    let target: Box<dyn Target> = match &config.spec {
        TargetSpec::McpServer(spec) => Box::new(mcp::streamable_http::target(config, spec)?),
        TargetSpec::Stdio(spec) => Box::new(mcp::stdio::target(config, spec)?),
        TargetSpec::Lambda(spec) => Box::new(lambda::LambdaTarget::new(config, spec)?),
        TargetSpec::Openapi(spec) => Box::new(openapi::target(config, spec)),
        TargetSpec::Smithy(spec) => Box::new(smithy::target(config, spec)),
    };
    Ok(Arc::new(bounded::Bounded::new(target, config)))
}
