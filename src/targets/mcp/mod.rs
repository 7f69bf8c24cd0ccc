//! The MCP client every MCP-speaking target uses, generic over its [`Transport`].
//!
//! Sessions ([`session`]): the newest protocol the upstream speaks, negotiated once and
//! shared by all requests (moka's `try_get_with` coalesces concurrent first requests into
//! one negotiation). A session the transport reports gone (HTTP 404, a restarted process),
//! or a session-expired JSON-RPC error, drops that session; the request is retried once on a
//! fresh one (safe: the upstream never ran it).
//!
//! Per request: the client numbers it, adds the `_meta` its protocol needs ([`params`]),
//! sends it, and reads what the server sends back until the response with its id:
//! notifications go to the caller's sink (progress; logs only when the caller may see them),
//! list changes trigger a sync, and a server's own requests (sampling, elicitation, roots)
//! are refused at once, since a stateless relay has no client session to ask. A request that
//! times out is cancelled upstream (`notifications/cancelled`).
//!
//! Results are never decoded: they are relayed as the raw JSON the upstream sent.

mod changes;
mod listing;
pub mod params;
pub mod session;
pub mod sse;
pub mod stdio;
pub mod streamable_http;
pub mod transport;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::{Instant, timeout_at};

use self::session::{Negotiation, Session};
use self::transport::{Outgoing, Replies, Transport, Wire};
use super::{
    BoxFuture, ChangeCallback, ClientBridge, ClientContext, Description, FailureKind, Listing,
    NotificationSink, RelayRequest, Reply, Target, TargetError,
};
use crate::config::TargetConfig;
use crate::targets::error::quote;

/// JSON-RPC code the AWS MCP Server uses for "The provided SessionId was not found or has expired".
const SESSION_EXPIRED_CODE: i64 = -30001;

pub struct McpClient<T: Transport> {
    name: String,
    transport: T,
    negotiation: Negotiation,
    request_timeout: Duration,
    /// Single flight for negotiation: concurrent first requests share one handshake.
    sessions: Cache<(), Arc<Session<T::Link>>>,
    /// The current session, read lock-free on every request (moka's async lookup costs far
    /// more per call than the relay itself; measured).
    current: arc_swap::ArcSwapOption<Session<T::Link>>,
    /// Set by `watch_changes`: called for list-changed notifications, whichever stream
    /// they arrive on.
    on_change: std::sync::OnceLock<ChangeCallback>,
    next_id: AtomicU64,
    /// Merged into `params._meta` of `tools/call` (empty when the target configures none).
    meta: Map<String, Value>,
    /// Upstream resources some client wants updates of (see `changes.rs`).
    resources: changes::ResourceInterest,
}

/// The fields of an upstream JSON-RPC message the client looks at; the rest stays raw.
#[derive(Deserialize)]
struct UpstreamMessage<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, borrow)]
    method: Option<crate::protocol::Text<'a>>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<Box<RawValue>>,
}

impl<T: Transport> McpClient<T> {
    pub fn new(config: &TargetConfig, transport: T, negotiation: Negotiation) -> Self {
        Self {
            name: config.name.clone(),
            transport,
            negotiation,
            request_timeout: config.request_timeout(),
            sessions: Cache::builder().max_capacity(1).build(),
            current: arc_swap::ArcSwapOption::empty(),
            on_change: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            meta: config.meta.clone(),
            resources: Default::default(),
        }
    }

    fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.name, kind, detail)
    }

    /// The current session, negotiating one if there is none (single flight).
    async fn session(&self) -> Result<Arc<Session<T::Link>>, TargetError> {
        if let Some(session) = self.current.load_full() {
            return Ok(session);
        }
        self.new_session().await
    }

    /// The slow path of [`Self::session`], boxed: the negotiation's state machine is large,
    /// and inline it would be part of (and copied with) every request's future.
    fn new_session(&self) -> BoxFuture<'_, Result<Arc<Session<T::Link>>, TargetError>> {
        Box::pin(async move {
            let session = self
                .sessions
                .try_get_with((), self.negotiate())
                .await
                .map_err(|e: Arc<TargetError>| (*e).clone())?;
            self.current.store(Some(session.clone()));
            Ok(session)
        })
    }

    /// Forgets `stale` unless another request already replaced it (boxed: a cold path).
    fn drop_session(&self, stale: &Arc<Session<T::Link>>) -> BoxFuture<'_, ()> {
        let stale = stale.clone();
        Box::pin(self.forget(stale))
    }

    async fn forget(&self, stale: Arc<Session<T::Link>>) {
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
        // empty negotiates anew instead of picking the stale session up again.
        self.current.rcu(|current| match current {
            Some(c) if Arc::ptr_eq(c, &stale) => None,
            other => other.clone(),
        });
    }

    /// Sends a request on the current session; on an expired session negotiates once more
    /// and sends it again (safe: the upstream never ran it). `params` is the object
    /// without `_meta`; `meta` and `client` are added as the session's protocol wants.
    async fn request(&self, ask: Ask<'_>, deadline: Instant) -> Result<Reply, TargetError> {
        let mut retried = false;
        loop {
            let session = self.session().await?;
            let params = self.compose_params(ask.params, &session.wire, ask.client, ask.meta);
            let context = CallContext {
                sink: ask.notify,
                log_level: log_filter(&session.wire, ask.client),
                bridge: ask.bridge,
            };
            match self
                .exchange(
                    Some(&session.wire),
                    (ask.method, ask.name, ask.headers),
                    &params,
                    Some(&context),
                    deadline,
                )
                .await
            {
                Err(e) if e.kind == FailureKind::SessionExpired && !retried => {
                    tracing::info!(target_name = %self.name, "upstream session expired; negotiating anew");
                    self.drop_session(&session).await;
                    retried = true;
                }
                Ok((Reply::Error(e), _)) if !retried && is_session_expired_error(&e) => {
                    tracing::info!(target_name = %self.name, "upstream reported an expired session; negotiating anew");
                    self.drop_session(&session).await;
                    retried = true;
                }
                Err(e) if e.kind == FailureKind::SessionExpired => {
                    return Err(self.error(
                        FailureKind::SessionExpired,
                        format!("{} (after negotiating anew)", e.detail),
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
        wire: Option<&Wire<T::Link>>,
        (method, name, headers): (&str, Option<&str>, &[(String, String)]),
        params: &str,
        context: Option<&CallContext<'_>>,
        deadline: Instant,
    ) -> Result<(Reply, T::Link), TargetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = request_body(id, method, params);
        let work = async {
            let (link, mut replies) = self
                .transport
                .send(Outgoing {
                    wire,
                    id,
                    method,
                    name,
                    headers,
                    body: Bytes::from(body),
                    deadline,
                })
                .await?;
            while let Some(message) = replies.next().await? {
                if let Some(reply) = self
                    .take_message(message, wire, id, method, context)
                    .await?
                {
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
                // Boxed: a cold path that would otherwise enlarge every request's future.
                Box::pin(self.cancel(wire, id, method)).await;
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
    /// when the caller may see it), a request to the client (answered through the call's
    /// bridge, else refused), or something else (ignored).
    async fn take_message(
        &self,
        bytes: Vec<u8>,
        wire: Option<&Wire<T::Link>>,
        id: u64,
        method: &str,
        context: Option<&CallContext<'_>>,
    ) -> Result<Option<Reply>, TargetError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            // A priming event (id and retry only, empty data) that resumable servers send first.
            return Ok(None);
        }
        let message: UpstreamMessage = crate::protocol::parse_message(&bytes).map_err(|e| {
            self.error(
                FailureKind::BadResponse,
                format!("{method}: not a JSON-RPC message ({e}): {}", quote(&bytes)),
            )
        })?;
        if let Some(crate::protocol::Text(their_method)) = &message.method {
            if let Some(change) = changes::announced(their_method, &bytes)
                && let Some(on_change) = self.on_change.get()
            {
                on_change(change);
            }
            match (&message.id, context) {
                (None, Some(context)) => {
                    if let Some(sink) = context.sink
                        && context.wants(their_method, &bytes)
                    {
                        // A closed sink means the client went away; the call still completes.
                        let _ = sink.send(Bytes::from(bytes)).await;
                    }
                }
                (None, None) => {}
                (Some(their_id), context) => {
                    let bridge = context.and_then(|c| c.bridge).map(|b| b.as_ref());
                    // Boxed: rare, and its bridge round trip is a large future.
                    Box::pin(self.answer_server_request(
                        wire,
                        their_id,
                        their_method,
                        message.params.as_deref(),
                        bridge,
                    ))
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

    /// Answers a request the upstream sends its client mid-call: through the caller's
    /// bridge when the call has one, else with an error at once (an unanswered request
    /// would hold the call until it times out).
    async fn answer_server_request(
        &self,
        wire: Option<&Wire<T::Link>>,
        their_id: &Value,
        their_method: &str,
        params: Option<&RawValue>,
        bridge: Option<&dyn ClientBridge>,
    ) {
        let answer = match bridge {
            Some(bridge) => match bridge.ask(their_method, params).await {
                Ok(result) => {
                    serde_json::json!({"jsonrpc": "2.0", "id": their_id, "result": result})
                }
                Err(error) => serde_json::json!({"jsonrpc": "2.0", "id": their_id, "error": error}),
            },
            None => {
                tracing::debug!(target_name = %self.name, "refusing the upstream's {their_method} request during a call");
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": their_id,
                    "error": {
                        "code": -32601,
                        "message": format!("the client of mcp-sidecar cannot answer {their_method} on this call"),
                    },
                })
            }
        };
        self.post_one_way(wire, answer.to_string(), self.request_timeout, "an answer")
            .await;
    }

    /// Tells the upstream the sidecar gave up on request `id` (MCP: the side that times out
    /// sends `notifications/cancelled`), so it can stop working on it. Best effort, brief.
    /// (At 2026-07-28 over HTTP, closing the answer's stream is the cancellation.)
    async fn cancel(&self, wire: Option<&Wire<T::Link>>, id: u64, method: &str) {
        if method == "initialize" || wire.is_some_and(Wire::is_modern) {
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
}

/// A request as the caller hands it to the client: `params` without `_meta`, and what the
/// session's protocol may need to add.
struct Ask<'a> {
    method: &'a str,
    /// The tool or prompt name, or the resource URI.
    name: Option<&'a str>,
    params: &'a str,
    meta: &'a Map<String, Value>,
    client: Option<&'a ClientContext>,
    notify: Option<&'a NotificationSink>,
    /// Transport headers (`Mcp-Param-*`).
    headers: &'a [(String, String)],
    bridge: Option<&'a Arc<dyn ClientBridge>>,
}

/// What a call carries besides its request: where its notifications go (and which the
/// caller may see), and who answers what the upstream asks the client.
struct CallContext<'a> {
    sink: Option<&'a NotificationSink>,
    /// `Some(level)`: log messages below it are dropped; applies to 2026-07-28 callers of a
    /// legacy upstream (a modern upstream filters by the level it is sent).
    log_level: Option<Option<params::LogLevel>>,
    bridge: Option<&'a Arc<dyn ClientBridge>>,
}

impl CallContext<'_> {
    fn wants(&self, method: &str, bytes: &[u8]) -> bool {
        match (&self.log_level, method) {
            (Some(min), "notifications/message") => {
                min.is_some_and(|min| params::LogLevel::of_message(bytes) >= Some(min))
            }
            _ => true,
        }
    }
}

/// The log filter the sidecar applies itself: a modern caller gets logs only at the level
/// it asked for; a modern upstream does that filtering itself, a legacy one cannot.
fn log_filter<L>(
    wire: &Wire<L>,
    client: Option<&ClientContext>,
) -> Option<Option<params::LogLevel>> {
    match client {
        Some(c) if c.modern && !wire.is_modern() => {
            Some(c.log_level.as_deref().and_then(params::LogLevel::parse))
        }
        _ => None,
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
            let meta = params::with_target_meta(request.meta, &self.meta, request.operation);
            let ask = Ask {
                method: request.operation.method(),
                name: request.name.as_deref(),
                params: &request.params,
                meta: &meta,
                client: Some(&request.client),
                notify: notify.as_ref(),
                headers: &request.headers,
                bridge: request.bridge.as_ref(),
            };
            self.request(ask, deadline).await
        })
    }

    fn watch_changes(&self, on_change: ChangeCallback) -> BoxFuture<'_, ()> {
        Box::pin(self.watch(on_change))
    }

    fn watch_resources(&self, uris: Vec<String>) -> BoxFuture<'_, ()> {
        Box::pin(self.set_resource_interest(uris))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(session) = self.current.swap(None) {
                self.sessions.invalidate(&()).await;
                if !session.wire.is_modern() {
                    self.transport.close(&session.wire).await;
                }
            }
            self.transport.shutdown().await;
        })
    }
}

fn is_session_expired_error(error: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error.get()).is_ok_and(|c| c.code == SESSION_EXPIRED_CODE)
}

/// `{"jsonrpc":"2.0","id":…,"method":…,"params":…}`, written into one buffer of the right
/// size (`format!` grows its buffer several times on the way: issue 15's profile).
fn request_body(id: u64, method: &str, params: &str) -> Vec<u8> {
    const ID_DIGITS: usize = 20;
    let mut body = Vec::with_capacity(48 + ID_DIGITS + method.len() + params.len());
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // itoa rather than `write!`: the formatting machinery cost more than the rest.
    body.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    body.extend_from_slice(br#","method":""#);
    body.extend_from_slice(method.as_bytes());
    body.extend_from_slice(br#"","params":"#);
    body.extend_from_slice(params.as_bytes());
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expiry_is_recognized_by_code() {
        let e = RawValue::from_string(r#"{"code":-30001,"message":"gone"}"#.into()).unwrap();
        assert!(is_session_expired_error(&e));
        let e = RawValue::from_string(r#"{"code":-32601,"message":"x"}"#.into()).unwrap();
        assert!(!is_session_expired_error(&e));
    }

    #[test]
    fn request_body_is_one_json_rpc_request() {
        let body = request_body(u64::MAX, "tools/call", r#"{"name":"x","arguments":{}}"#);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"tools/call","params":{"name":"x","arguments":{}}}"#
        );
        assert!(body.capacity() >= body.len() && body.capacity() <= body.len() + 40);
    }
}
