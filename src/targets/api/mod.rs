//! Targets whose tools are derived from an API definition instead of listed by an MCP
//! server: [`ApiTarget`] implements [`Target`] once for every such kind, and each kind (an
//! [`ApiKind`]: OpenAPI, Smithy) supplies only what differs: how its definition becomes
//! tools, how a call becomes an HTTP request, and how an answer becomes a tool result.
//!
//! Invariants:
//! - The definition is loaded at every sync, never at build time (`check` builds targets; a
//!   URL may be down at start-up, and the catalog keeps the last good listing meanwhile); a
//!   changed file is picked up by the next sync. A call that arrives before any sync (a
//!   catalog restored from disk) loads the definition first.
//! - The endpoint and credentials follow the definition (an OpenAPI document's server, a
//!   Smithy model's endpoint prefix and SigV4 signing name), so the [`HttpSender`] is built
//!   when a definition is loaded, and kept across syncs while endpoint and signing scope stay
//!   the same (its credential cache with it).
//! - Every HTTP answer is the tool's result: 2xx as content (plus `structuredContent` for
//!   JSON), anything else `isError: true` with the status and the API's own message. Only a
//!   failure to get an answer at all (unreachable, timeout, no credentials) is a relay error.
//! - Bad arguments are the tool's error too (the model can correct them), never a protocol
//!   error.
//!
//! - [`source`]: reading a definition from a file or URL, JSON or YAML;
//! - [`result`]: tool results from HTTP answers.

pub mod result;
pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use super::credentials::provider_for;
use super::http::{HttpAnswer, HttpSender, printable_url};
use super::{
    BoxFuture, ChangeCallback, Description, FailureKind, Listing, NotificationSink, Operation,
    RelayRequest, Reply, Target, TargetError,
};
use crate::config::{CredentialProviderConfig, Secret, TargetConfig};
use source::Source;

/// What a kind derives from its loaded definition.
pub struct Derived<O> {
    /// One tool definition (`name`, `description`, `inputSchema`, …) and its operation each;
    /// names are unique.
    pub tools: Vec<(Map<String, Value>, O)>,
    /// What could not be mapped, one line per operation (`name: why`), and whether the
    /// operation was left out because of it.
    pub notes: Vec<String>,
    /// Where calls go (operations may override it).
    pub endpoint: url::Url,
    /// Credentials for that endpoint (a kind may fill in what its definition knows, e.g. the
    /// SigV4 signing name).
    pub credentials: CredentialProviderConfig,
    /// The definition's own title and version, shown as the target's `serverInfo`.
    pub server_info: Value,
    /// E.g. `openapi 3.1.0` or `smithy awsJson1_0`: shown where MCP targets show their
    /// protocol version.
    pub protocol: String,
}

/// One kind of definition-derived target.
pub trait ApiKind: Send + Sync + 'static {
    type Operation: Send + Sync + 'static;
    /// The `kind` as written in the config.
    const KIND: &'static str;
    /// Where the definition is.
    fn source(&self) -> &Source;
    /// Derives tools from the parsed definition.
    fn derive(
        &self,
        definition: Value,
        config: &TargetConfig,
    ) -> Result<Derived<Self::Operation>, String>;
    /// Static headers sent with every call.
    fn headers(&self) -> &BTreeMap<String, Secret>;
    /// Where calls go, in words, before the definition is loaded.
    fn endpoint_hint(&self) -> String;
    /// The credential source, in words, before the definition is loaded.
    fn credentials_hint(&self, config: &CredentialProviderConfig) -> String {
        credentials_hint(config)
    }
    /// Builds the HTTP request of one call; an `Err` is a problem with the arguments, told
    /// to the model as the tool's error.
    fn request(
        &self,
        client: &reqwest::Client,
        endpoint: &url::Url,
        operation: &Self::Operation,
        arguments: Map<String, Value>,
    ) -> Result<reqwest::Request, String>;
    /// The tool result for an HTTP answer.
    fn result(&self, operation: &Self::Operation, answer: &HttpAnswer) -> Value;
    /// Names the operation in messages, e.g. `GET /pets/{petId}`.
    fn what(&self, operation: &Self::Operation) -> String;
}

/// A loaded definition: the tools, their operations and the sender for their endpoint.
struct Loaded<O> {
    operations: HashMap<String, Arc<O>>,
    tools: Vec<Map<String, Value>>,
    endpoint: url::Url,
    sender: Arc<HttpSender>,
    /// The endpoint and credentials the sender was built for.
    sender_key: String,
    notes: Vec<String>,
    server_info: Value,
    protocol: String,
}

pub struct ApiTarget<K: ApiKind> {
    config: TargetConfig,
    kind: K,
    /// Fetches definitions from URLs (no credentials: a definition is public to its readers).
    fetcher: reqwest::Client,
    loaded: ArcSwapOption<Loaded<K::Operation>>,
    /// One load at a time (a call before the first sync, and the sync itself).
    loading: tokio::sync::Mutex<()>,
}

impl<K: ApiKind> ApiTarget<K> {
    pub fn new(config: &TargetConfig, kind: K) -> Self {
        let fetcher = crate::tls::client_builder()
            .connect_timeout(config.connect_timeout())
            .user_agent(crate::USER_AGENT)
            .build()
            .unwrap_or_default();
        Self {
            config: config.clone(),
            kind,
            fetcher,
            loaded: ArcSwapOption::empty(),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.config.name, kind, detail)
    }

    /// Reads and derives the definition; the sender of `previous` is kept when endpoint and
    /// credentials did not change.
    async fn load(
        &self,
        previous: Option<&Loaded<K::Operation>>,
    ) -> Result<Loaded<K::Operation>, TargetError> {
        let source = self.kind.source();
        let definition = source
            .read(&self.fetcher, self.config.max_message_bytes)
            .await
            .map_err(|(kind, e)| self.error(kind, e))?;
        let derived = self
            .kind
            .derive(definition, &self.config)
            .map_err(|e| self.error(FailureKind::BadResponse, format!("{source}: {e}")))?;
        let sender_key = format!("{} {:?}", derived.endpoint, derived.credentials);
        let sender = match previous {
            Some(p) if p.sender_key == sender_key => p.sender.clone(),
            _ => {
                let mut config = self.config.clone();
                config.credential_provider = derived.credentials.clone();
                let credentials = provider_for(&config, &derived.endpoint, self.kind.headers())
                    .map_err(|e| {
                        self.error(
                            FailureKind::Credentials,
                            format!("credentials for {}: {e:#}", derived.endpoint),
                        )
                    })?;
                Arc::new(HttpSender::new(&config, credentials).map_err(|e| {
                    self.error(FailureKind::Unreachable, format!("HTTP client: {e:#}"))
                })?)
            }
        };
        let mut operations = HashMap::with_capacity(derived.tools.len());
        let mut tools = Vec::with_capacity(derived.tools.len());
        for (tool, operation) in derived.tools {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            operations.insert(name, Arc::new(operation));
            tools.push(tool);
        }
        Ok(Loaded {
            operations,
            tools,
            endpoint: derived.endpoint,
            sender,
            sender_key,
            notes: derived.notes,
            server_info: derived.server_info,
            protocol: derived.protocol,
        })
    }

    /// Loads and publishes the definition (one load at a time).
    async fn refresh(&self) -> Result<Arc<Loaded<K::Operation>>, TargetError> {
        let _one = self.loading.lock().await;
        let previous = self.loaded.load_full();
        let loaded = Arc::new(self.load(previous.as_deref()).await?);
        if previous.as_ref().is_none_or(|p| p.notes != loaded.notes) {
            for note in &loaded.notes {
                tracing::warn!(target_name = %self.config.name, "{note}");
            }
        }
        self.loaded.store(Some(loaded.clone()));
        Ok(loaded)
    }

    async fn call(&self, params: &str, deadline: Instant) -> Result<Value, TargetError> {
        #[derive(serde::Deserialize)]
        struct CallParams {
            name: String,
            #[serde(default)]
            arguments: Option<Map<String, Value>>,
        }
        let params: CallParams = serde_json::from_str(params)
            .map_err(|e| self.error(FailureKind::BadResponse, format!("tools/call params: {e}")))?;
        let loaded = match self.loaded.load_full() {
            Some(loaded) => loaded,
            None => self.refresh().await?,
        };
        let Some(operation) = loaded.operations.get(&params.name) else {
            return Ok(result::tool_error(format!(
                "unknown tool `{}`: the {} definition no longer has it",
                params.name,
                K::KIND
            )));
        };
        let what = format!("{} ({})", params.name, self.kind.what(operation));
        let request = match self.kind.request(
            loaded.sender.client(),
            &loaded.endpoint,
            operation,
            params.arguments.unwrap_or_default(),
        ) {
            Ok(request) => request,
            Err(problem) => return Ok(result::tool_error(format!("{what}: {problem}"))),
        };
        let answer = loaded
            .sender
            .send_for_answer(request, deadline, &what, self.config.max_message_bytes)
            .await?;
        Ok(self.kind.result(operation, &answer))
    }
}

impl<K: ApiKind> Target for ApiTarget<K> {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn describe(&self) -> Description {
        match self.loaded.load_full() {
            Some(loaded) => Description {
                kind: K::KIND,
                endpoint: printable_url(&loaded.endpoint),
                credentials: loaded.sender.credentials(),
            },
            None => Description {
                kind: K::KIND,
                endpoint: self.kind.endpoint_hint(),
                credentials: self.kind.credentials_hint(&self.config.credential_provider),
            },
        }
    }

    fn fingerprint(&self) -> String {
        format!("{} {}", K::KIND, self.kind.source())
    }

    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>> {
        Box::pin(async move {
            let loaded = self.refresh().await?;
            Ok(Listing {
                tools: loaded.tools.clone(),
                capabilities: serde_json::json!({ "tools": {} }),
                server_info: Some(loaded.server_info.clone()),
                protocol_version: loaded.protocol.clone(),
                ..Listing::default()
            })
        })
    }

    fn relay(
        &self,
        request: RelayRequest,
        notify: Option<NotificationSink>,
    ) -> BoxFuture<'_, Result<Reply, TargetError>> {
        Box::pin(async move {
            // Nothing is ever sent on it, but it stays open until the result is ready: the
            // inbound side reads a closed sink as "notifications first" and would stream.
            let _notify = notify;
            if request.operation != Operation::CallTool {
                return Err(self.error(
                    FailureKind::Rejected,
                    format!(
                        "{}: a `{}` target offers only tools",
                        request.operation.method(),
                        K::KIND
                    ),
                ));
            }
            let deadline = Instant::now() + self.config.request_timeout();
            let result = timeout_at(deadline, self.call(&request.params, deadline))
                .await
                .map_err(|_| {
                    self.error(
                        FailureKind::Timeout,
                        format!(
                            "tools/call {} took longer than request_timeout_ms ({})",
                            request.name.as_deref().unwrap_or_default(),
                            self.config.request_timeout_ms
                        ),
                    )
                })??;
            let raw = RawValue::from_string(result.to_string())
                .map_err(|e| self.error(FailureKind::BadResponse, e.to_string()))?;
            Ok(Reply::Result(raw))
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn watch_changes(&self, _on_change: ChangeCallback) -> BoxFuture<'_, ()> {
        // A definition announces nothing; syncs pick up changes.
        Box::pin(std::future::ready(()))
    }

    fn inspect(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut lines = vec![format!("definition    {}", self.kind.source())];
            let loaded = timeout_at(Instant::now() + self.config.sync_timeout(), self.load(None))
                .await
                .unwrap_or_else(|_| {
                    Err(self.error(
                        FailureKind::Timeout,
                        format!(
                            "no definition within sync_timeout_ms ({})",
                            self.config.sync_timeout_ms
                        ),
                    ))
                });
            match loaded {
                Err(e) => lines.push(format!("  not loaded: {e}")),
                Ok(loaded) => {
                    lines.push(format!(
                        "  loaded      {} ({}); {} tools",
                        loaded
                            .server_info
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("untitled"),
                        loaded.protocol,
                        loaded.tools.len()
                    ));
                    lines.push(format!("  endpoint    {}", printable_url(&loaded.endpoint)));
                    lines.push(format!("  credentials {}", loaded.sender.credentials()));
                    let mut names: Vec<&str> = loaded
                        .tools
                        .iter()
                        .filter_map(|t| t.get("name").and_then(Value::as_str))
                        .collect();
                    names.sort_unstable();
                    if !names.is_empty() {
                        lines.push(format!("  tools       {}", names.join(", ")));
                    }
                    for note in &loaded.notes {
                        lines.push(format!("  note        {note}"));
                    }
                }
            }
            lines
        })
    }
}

/// The credential source in words, before the definition says where calls go.
fn credentials_hint(config: &CredentialProviderConfig) -> String {
    match config {
        CredentialProviderConfig::None => "none".into(),
        CredentialProviderConfig::ApiKey {
            header,
            query_param,
            ..
        } => match query_param {
            Some(param) => format!("api_key in query parameter {param}"),
            None => format!("api_key in {header}"),
        },
        CredentialProviderConfig::Sigv4(_) => {
            "sigv4 (scope resolved when the definition is loaded)".into()
        }
        CredentialProviderConfig::OauthClientCredentials(c) => {
            format!("oauth_client_credentials (client {})", c.client_id)
        }
    }
}
