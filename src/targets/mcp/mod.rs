//! The MCP client every MCP-speaking target uses, generic over its [`Transport`].
//!
//! Session lifecycle: one `initialize` per upstream session, shared by all requests (moka's
//! `try_get_with` coalesces concurrent first requests into one handshake). A session the
//! transport reports gone (HTTP 404, a restarted process), or a session-expired JSON-RPC
//! error, drops that session; the request is retried once on a fresh one (safe: the upstream
//! never ran it).
//!
//! Per request: the client numbers it, sends it, and reads what the server sends back until
//! the response with its id: notifications go to the caller's sink (progress, logs), list
//! changes trigger a sync, and a server's own requests (sampling, elicitation, roots) are
//! refused at once, since a stateless relay has no client session to ask. A request that
//! times out is cancelled upstream (`notifications/cancelled`).
//!
//! Results are never decoded: they are relayed as the raw JSON the upstream sent.

pub mod sse;
pub mod stdio;
pub mod streamable_http;
pub mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use self::transport::{Outgoing, Replies, StreamEnd, Transport, Wire};
use super::{
    BoxFuture, ChangeCallback, Description, FailureKind, Listing, NotificationSink, Operation,
    RelayRequest, Reply, Target, TargetError,
};
use crate::backoff::{Backoff, Jitter};
use crate::config::TargetConfig;
use crate::protocol::{LATEST_WITH_INITIALIZE, LIST_CHANGED, is_handshake_version};
use crate::targets::error::quote;

/// JSON-RPC code the AWS MCP Server uses for "The provided SessionId was not found or has expired".
const SESSION_EXPIRED_CODE: i64 = -30001;
/// A paginated listing longer than this is treated as a broken cursor loop.
const MAX_LIST_PAGES: usize = 1000;

pub struct McpClient<T: Transport> {
    name: String,
    transport: T,
    request_timeout: Duration,
    /// Single flight for `initialize`: concurrent first requests share one handshake.
    sessions: Cache<(), Arc<Session<T::Link>>>,
    /// The current session, read lock-free on every request (moka's async lookup costs far
    /// more per call than the relay itself; measured).
    current: arc_swap::ArcSwapOption<Session<T::Link>>,
    /// Set by `watch_changes`: called for list-changed notifications, whichever stream
    /// they arrive on.
    on_change: std::sync::OnceLock<ChangeCallback>,
    next_id: AtomicU64,
    /// Merged into `params._meta` of `tools/call` (None when the target configures none).
    meta: Option<Map<String, Value>>,
}

/// One upstream session, as `initialize` established it.
#[derive(Debug)]
struct Session<L> {
    wire: Wire<L>,
    instructions: Option<String>,
    server_info: Option<Value>,
    capabilities: Value,
}

/// The fields of an upstream JSON-RPC message the client looks at; the rest stays raw.
#[derive(Deserialize)]
struct UpstreamMessage<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Box<RawValue>>,
}

impl<T: Transport> McpClient<T> {
    pub fn new(config: &TargetConfig, transport: T) -> Self {
        Self {
            name: config.name.clone(),
            transport,
            request_timeout: config.request_timeout(),
            sessions: Cache::builder().max_capacity(1).build(),
            current: arc_swap::ArcSwapOption::empty(),
            on_change: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            meta: (!config.meta.is_empty()).then(|| config.meta.clone()),
        }
    }

    fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.name, kind, detail)
    }

    /// The current session, initializing one if there is none (single flight).
    async fn session(&self) -> Result<Arc<Session<T::Link>>, TargetError> {
        if let Some(session) = self.current.load_full() {
            return Ok(session);
        }
        let session = self
            .sessions
            .try_get_with((), self.initialize())
            .await
            .map_err(|e: Arc<TargetError>| (*e).clone())?;
        self.current.store(Some(session.clone()));
        Ok(session)
    }

    /// Forgets `stale` unless another request already replaced it.
    async fn drop_session(&self, stale: &Arc<Session<T::Link>>) {
        let stale = stale.clone();
        self.sessions
            .entry(())
            .and_compute_with(|current| {
                let op = match current {
                    Some(entry) if Arc::ptr_eq(entry.value(), &stale) => Op::Remove,
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        // After the single-flight entry is gone, so a request that finds the fast path
        // empty initializes anew instead of picking the stale session up again.
        self.current.rcu(|current| match current {
            Some(c) if Arc::ptr_eq(c, &stale) => None,
            other => other.clone(),
        });
    }

    async fn initialize(&self) -> Result<Arc<Session<T::Link>>, TargetError> {
        let params = format!(
            r#"{{"protocolVersion":"{LATEST_WITH_INITIALIZE}","capabilities":{{}},"clientInfo":{{"name":"mcp-sidecar","version":"{}"}}}}"#,
            env!("CARGO_PKG_VERSION")
        );
        let deadline = Instant::now() + self.request_timeout;
        let (reply, link) = self
            .exchange(None, "initialize", &params, None, deadline)
            .await?;
        let result = match reply {
            Reply::Result(r) => r,
            Reply::Error(e) => {
                return Err(self.error(FailureKind::Rejected, format!("initialize failed: {e}")));
            }
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InitializeResult {
            protocol_version: String,
            #[serde(default)]
            instructions: Option<String>,
            #[serde(default)]
            server_info: Option<Value>,
            #[serde(default)]
            capabilities: Value,
        }
        let init: InitializeResult = serde_json::from_str(result.get()).map_err(|e| {
            self.error(
                FailureKind::BadResponse,
                format!("initialize result is not valid: {e}"),
            )
        })?;
        if !is_handshake_version(&init.protocol_version) {
            return Err(self.error(
                FailureKind::BadResponse,
                format!(
                    "negotiated protocol version {} is not supported",
                    init.protocol_version
                ),
            ));
        }
        let protocol_version = HeaderValue::from_str(&init.protocol_version).map_err(|_| {
            self.error(
                FailureKind::BadResponse,
                "protocol version is not a header value",
            )
        })?;
        let session = Arc::new(Session {
            wire: Wire {
                link,
                protocol_version,
            },
            instructions: init.instructions,
            server_info: init.server_info,
            capabilities: init.capabilities,
        });
        let initialized =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        timeout_at(
            deadline,
            self.transport.post(
                Some(&session.wire),
                initialized,
                deadline,
                "notifications/initialized",
            ),
        )
        .await
        .map_err(|_| {
            self.error(
                FailureKind::Timeout,
                "no answer to notifications/initialized",
            )
        })??;
        tracing::info!(target_name = %self.name, protocol = %init.protocol_version,
            "initialized upstream session");
        Ok(session)
    }

    /// Sends a request on the current session; on an expired session re-initializes once
    /// and sends it again (safe: the upstream never ran it).
    async fn request(
        &self,
        method: &str,
        params: &str,
        notify: Option<&NotificationSink>,
        deadline: Instant,
    ) -> Result<Reply, TargetError> {
        let mut retried = false;
        loop {
            let session = self.session().await?;
            match self
                .exchange(Some(&session), method, params, notify, deadline)
                .await
            {
                Err(e) if e.kind == FailureKind::SessionExpired && !retried => {
                    tracing::info!(target_name = %self.name, "upstream session expired; re-initializing");
                    self.drop_session(&session).await;
                    retried = true;
                }
                Ok((Reply::Error(e), _)) if !retried && is_session_expired_error(&e) => {
                    tracing::info!(target_name = %self.name, "upstream reported an expired session; re-initializing");
                    self.drop_session(&session).await;
                    retried = true;
                }
                Err(e) if e.kind == FailureKind::SessionExpired => {
                    return Err(self.error(
                        FailureKind::SessionExpired,
                        format!("{} (after re-initializing)", e.detail),
                    ));
                }
                other => return other.map(|(reply, _)| reply),
            }
        }
    }

    /// One JSON-RPC request and its response. Returns the reply and the link the answer
    /// carried (what `initialize` establishes).
    async fn exchange(
        &self,
        session: Option<&Session<T::Link>>,
        method: &str,
        params: &str,
        notify: Option<&NotificationSink>,
        deadline: Instant,
    ) -> Result<(Reply, T::Link), TargetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        let wire = session.map(|s| &s.wire);
        let work = async {
            let (link, mut replies) = self
                .transport
                .send(Outgoing {
                    wire,
                    method,
                    body: Bytes::from(body),
                    deadline,
                })
                .await?;
            while let Some(message) = replies.next().await? {
                if let Some(reply) = self.take_message(message, wire, id, method, notify).await? {
                    return Ok((reply, link));
                }
            }
            Err(self.error(
                FailureKind::BadResponse,
                format!("{method}: the answer ended before the response"),
            ))
        };
        match timeout_at(deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.cancel(wire, id, method).await;
                Err(self.error(
                    FailureKind::Timeout,
                    format!(
                        "no answer to {method} within {} ms",
                        self.request_timeout.as_millis()
                    ),
                ))
            }
        }
    }

    /// Interprets one upstream message: our response (returned), a notification (forwarded
    /// when the caller streams), or something else (ignored).
    async fn take_message(
        &self,
        bytes: Vec<u8>,
        wire: Option<&Wire<T::Link>>,
        id: u64,
        method: &str,
        notify: Option<&NotificationSink>,
    ) -> Result<Option<Reply>, TargetError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // A priming event (id and retry only, empty data) that resumable servers send first.
            return Ok(None);
        }
        let message: UpstreamMessage = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(
                FailureKind::BadResponse,
                format!("{method}: not a JSON-RPC message ({e}): {}", quote(&bytes)),
            )
        })?;
        if let Some(their_method) = &message.method {
            if LIST_CHANGED.contains(&their_method.as_ref())
                && let Some(on_change) = self.on_change.get()
            {
                on_change();
            }
            match &message.id {
                None => {
                    if let Some(sink) = notify {
                        // A closed sink means the client went away; the call still completes.
                        let _ = sink.send(Bytes::from(bytes)).await;
                    }
                }
                Some(their_id) => {
                    tracing::debug!(target_name = %self.name, "refusing the upstream's {their_method} request during a call");
                    self.refuse_server_request(wire, their_id, their_method)
                        .await;
                }
            }
            return Ok(None);
        }
        if message.id.as_ref().and_then(Value::as_u64) != Some(id) {
            return Ok(None);
        }
        match (message.result, message.error) {
            (Some(result), _) => Ok(Some(Reply::Result(result))),
            (None, Some(error)) => Ok(Some(Reply::Error(error))),
            (None, None) => Err(self.error(
                FailureKind::BadResponse,
                format!("{method}: response has neither result nor error"),
            )),
        }
    }

    /// Tells the upstream the sidecar gave up on request `id` (MCP: the side that times out
    /// sends `notifications/cancelled`), so it can stop working on it. Best effort, brief.
    async fn cancel(&self, wire: Option<&Wire<T::Link>>, id: u64, method: &str) {
        if method == "initialize" {
            return; // the spec forbids cancelling initialize
        }
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"mcp-sidecar: request timed out"}}}}"#
        );
        self.post_one_way(
            wire,
            body,
            Duration::from_millis(500),
            "notifications/cancelled",
        )
        .await;
    }

    /// Answers an upstream's request to the client (sampling, elicitation, roots) with an
    /// error at once: a stateless relay has no client session to ask, and an unanswered
    /// request would hold the tool call until it times out.
    async fn refuse_server_request(
        &self,
        wire: Option<&Wire<T::Link>>,
        their_id: &Value,
        their_method: &str,
    ) {
        let error = serde_json::json!({
            "jsonrpc": "2.0",
            "id": their_id,
            "error": {
                "code": -32601,
                "message": format!("mcp-sidecar relays statelessly and cannot forward {their_method} to its client"),
            },
        });
        self.post_one_way(wire, error.to_string(), self.request_timeout, "a refusal")
            .await;
    }

    /// Posts a message that needs no answer; best effort within `limit`, failures only logged.
    async fn post_one_way(
        &self,
        wire: Option<&Wire<T::Link>>,
        body: String,
        limit: Duration,
        what: &str,
    ) {
        let deadline = Instant::now() + limit;
        let sent = timeout_at(
            deadline,
            self.transport.post(wire, Bytes::from(body), deadline, what),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!(target_name = %self.name, "could not send {what} upstream");
        }
    }

    /// Everything a sync learns: tools always; prompts, resources and resource templates
    /// when the upstream's capabilities announce them.
    async fn list_everything(&self) -> Result<Listing, TargetError> {
        let tools = self.list_all("tools/list", "tools").await?;
        let session = self.session().await?;
        let offers = |capability: &str| {
            session
                .capabilities
                .get(capability)
                .is_some_and(|c| !c.is_null())
        };
        let prompts = if offers("prompts") {
            self.list_all("prompts/list", "prompts").await?
        } else {
            Vec::new()
        };
        let (resources, resource_templates) = if offers("resources") {
            (
                self.list_all("resources/list", "resources").await?,
                self.list_all("resources/templates/list", "resourceTemplates")
                    .await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Listing {
            tools,
            prompts,
            resources,
            resource_templates,
            instructions: session.instructions.clone(),
            server_info: session.server_info.clone(),
            capabilities: session.capabilities.clone(),
            protocol_version: session
                .wire
                .protocol_version
                .to_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// One paginated listing (`tools/list`, `prompts/list`, …) followed to its end.
    async fn list_all(
        &self,
        method: &str,
        key: &str,
    ) -> Result<Vec<Map<String, Value>>, TargetError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = match &cursor {
                Some(c) => serde_json::json!({ "cursor": c }).to_string(),
                None => "{}".to_string(),
            };
            let deadline = Instant::now() + self.request_timeout;
            let result = match self.request(method, &params, None, deadline).await? {
                Reply::Result(r) => r,
                Reply::Error(e) => {
                    return Err(self.error(FailureKind::Rejected, format!("{method} failed: {e}")));
                }
            };
            let mut page: Map<String, Value> = serde_json::from_str(result.get()).map_err(|e| {
                self.error(
                    FailureKind::BadResponse,
                    format!("{method} result is not valid: {e}"),
                )
            })?;
            match page.remove(key) {
                Some(Value::Array(list)) => {
                    for item in list {
                        match item {
                            Value::Object(item) => items.push(item),
                            _ => {
                                return Err(self.error(
                                    FailureKind::BadResponse,
                                    format!("{method}: `{key}` holds a non-object"),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(self.error(
                        FailureKind::BadResponse,
                        format!("{method} result has no `{key}` list"),
                    ));
                }
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    if cursor.as_deref() == Some(next) {
                        return Err(self.error(
                            FailureKind::BadResponse,
                            format!("{method} returned the same cursor twice"),
                        ));
                    }
                    cursor = Some(next.to_string());
                }
                _ => return Ok(items),
            }
        }
        Err(self.error(
            FailureKind::BadResponse,
            format!("{method} did not end after {MAX_LIST_PAGES} pages"),
        ))
    }

    /// Follows the session's stream of server-initiated messages and reports list changes.
    async fn follow_changes(&self, on_change: &ChangeCallback) -> Result<StreamEnd, TargetError> {
        let session = self.session().await?;
        let on_message = |bytes: &[u8]| {
            #[derive(Deserialize)]
            struct Method<'a> {
                #[serde(borrow)]
                method: Option<std::borrow::Cow<'a, str>>,
            }
            if let Ok(Method { method: Some(m) }) = serde_json::from_slice(bytes)
                && LIST_CHANGED.contains(&m.as_ref())
            {
                on_change();
            }
        };
        let end = self.transport.listen(&session.wire, &on_message).await?;
        if end == StreamEnd::SessionGone {
            self.drop_session(&session).await;
        }
        Ok(end)
    }
}

impl<T: Transport> Target for McpClient<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> Description {
        self.transport.describe()
    }

    fn fingerprint(&self) -> String {
        self.transport.fingerprint()
    }

    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>> {
        Box::pin(self.list_everything())
    }

    fn relay(
        &self,
        request: RelayRequest,
        notify: Option<NotificationSink>,
    ) -> BoxFuture<'_, Result<Reply, TargetError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.request_timeout;
            let params = match &self.meta {
                Some(meta) if request.operation == Operation::CallTool => {
                    inject_meta(&request.params, meta)
                        .map_err(|e| self.error(FailureKind::BadResponse, e))?
                }
                _ => request.params,
            };
            self.request(
                request.operation.method(),
                &params,
                notify.as_ref(),
                deadline,
            )
            .await
        })
    }

    fn watch_changes(&self, on_change: ChangeCallback) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.on_change.set(on_change).is_err() {
                return; // already watched
            }
            let on_change = self.on_change.get().expect("just set");
            let mut backoff = Backoff::new(
                Duration::from_secs(1),
                Duration::from_secs(60),
                Jitter::Spread,
            );
            loop {
                match self.follow_changes(on_change).await {
                    Ok(StreamEnd::Unsupported) => return,
                    Ok(StreamEnd::Closed | StreamEnd::SessionGone) => backoff.reset(),
                    Err(e) => tracing::debug!(target_name = %self.name, "event stream: {e}"),
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(session) = self.current.swap(None) {
                self.sessions.invalidate(&()).await;
                self.transport.close(&session.wire).await;
            }
            self.transport.shutdown().await;
        })
    }
}

/// Merges `meta` into `params._meta` (keys the caller sent win).
fn inject_meta(params: &str, meta: &Map<String, Value>) -> Result<String, String> {
    let mut object: Map<String, Value> =
        serde_json::from_str(params).map_err(|e| format!("params are not an object: {e}"))?;
    let entry = object
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(existing) = entry else {
        return Err("params._meta is not an object".into());
    };
    for (k, v) in meta {
        existing.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(Value::Object(object).to_string())
}

fn is_session_expired_error(error: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error.get()).is_ok_and(|c| c.code == SESSION_EXPIRED_CODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_merged_and_the_caller_wins() {
        let mut meta = Map::new();
        meta.insert("AWS_REGION".into(), "eu-west-1".into());
        meta.insert("progressToken".into(), 1.into());
        let out: Value = serde_json::from_str(
            &inject_meta(r#"{"name":"t","_meta":{"progressToken":7}}"#, &meta).unwrap(),
        )
        .unwrap();
        assert_eq!(
            out["_meta"],
            serde_json::json!({"progressToken": 7, "AWS_REGION": "eu-west-1"})
        );
        assert!(inject_meta(r#"{"_meta":3}"#, &meta).is_err());
    }

    #[test]
    fn session_expiry_is_recognized_by_code() {
        let e = RawValue::from_string(r#"{"code":-30001,"message":"gone"}"#.into()).unwrap();
        assert!(is_session_expired_error(&e));
        let e = RawValue::from_string(r#"{"code":-32601,"message":"x"}"#.into()).unwrap();
        assert!(!is_session_expired_error(&e));
    }
}
