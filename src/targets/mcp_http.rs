//! A streamable-HTTP MCP server as a target.
//!
//! The client side of the relay is hand-written on reqwest rather than rmcp's client because
//! the relay must pass results through as raw bytes (no decode/re-encode of tool results),
//! see each outgoing request whole (credential providers such as SigV4 sign the body), and
//! cap the size of every upstream message.
//!
//! Session lifecycle: one `initialize` per upstream session, shared by all requests (moka's
//! `try_get_with` coalesces concurrent first requests into one handshake). A 404 on a request
//! that carried a session id, or a session-expired JSON-RPC error, drops that session;
//! the request is retried once on a fresh one.
//!
//! Below sessions, [`McpHttpTarget::send`] handles what HTTP alone can fix: a throttled answer
//! (429, 503 with `Retry-After`, AWS `ThrottlingException`) is retried with jittered backoff
//! that honours `Retry-After`, within the call's deadline; a 401/403 that the credential
//! provider can fix (a refused OAuth token, AWS credentials expired early) is retried once
//! with fresh credentials. A final refusal names the credential source and what the target
//! (e.g. AWS) answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue};
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use super::auth::{CredentialProvider, Refusal, provider_for};
use super::sse::SseParser;
use super::{
    BoxFuture, ChangeCallback, FailureKind, Listing, NotificationSink, Reply, Target, TargetError,
};
use crate::config::TargetConfig;

/// Protocol versions the sidecar speaks to upstreams, newest first. The first is offered
/// in `initialize`; the upstream may answer with any of them.
const UPSTREAM_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
/// JSON-RPC code the AWS MCP Server uses for "The provided SessionId was not found or has expired".
const SESSION_EXPIRED_CODE: i64 = -30001;
/// A paginated listing longer than this is treated as a broken cursor loop.
const MAX_LIST_PAGES: usize = 1000;
/// How much of an error body is quoted in an error message.
const ERROR_BODY_QUOTE: usize = 300;
/// How much of a 401/403 answer is read to learn why (AWS error documents are small).
const REFUSAL_BODY_LIMIT: usize = 4096;
/// Backoff of throttled requests without `Retry-After`: first delay and cap.
const THROTTLE_BACKOFF_BASE: Duration = Duration::from_millis(200);
const THROTTLE_BACKOFF_MAX: Duration = Duration::from_secs(10);

pub struct McpHttpTarget {
    name: String,
    url: reqwest::Url,
    /// The URL without query or credentials, for messages.
    display_url: String,
    client: reqwest::Client,
    credentials: Box<dyn CredentialProvider>,
    request_timeout: Duration,
    queue_timeout: Duration,
    max_message_bytes: usize,
    permits: Semaphore,
    max_concurrency: usize,
    /// Single flight for `initialize`: concurrent first requests share one handshake.
    sessions: Cache<(), Arc<Session>>,
    /// The current session, read lock-free on every request (moka's async lookup costs far
    /// more per call than the relay itself; measured).
    current: arc_swap::ArcSwapOption<Session>,
    /// Set by `watch_changes`: called for list-changed notifications, whichever stream
    /// they arrive on.
    on_change: std::sync::OnceLock<ChangeCallback>,
    next_id: AtomicU64,
    /// Merged into `params._meta` of `tools/call` (None when the target configures none).
    meta: Option<Map<String, Value>>,
    max_retries: u32,
}

/// One upstream session, as `initialize` established it.
#[derive(Debug)]
struct Session {
    id: Option<HeaderValue>,
    protocol_version: HeaderValue,
    instructions: Option<String>,
    server_info: Option<Value>,
    capabilities: Value,
}

/// The fields of an upstream JSON-RPC message the relay looks at; the rest stays raw.
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

impl McpHttpTarget {
    pub fn new(config: &TargetConfig) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(&config.url)?;
        let mut display = url.clone();
        display.set_query(None);
        let _ = display.set_username("");
        let _ = display.set_password(None);
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("mcp-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            name: config.name.clone(),
            url,
            display_url: display.to_string(),
            client,
            credentials: provider_for(config)?,
            request_timeout: config.request_timeout(),
            queue_timeout: config.queue_timeout(),
            max_message_bytes: config.max_message_bytes,
            permits: Semaphore::new(config.max_concurrency),
            max_concurrency: config.max_concurrency,
            sessions: Cache::builder().max_capacity(1).build(),
            current: arc_swap::ArcSwapOption::empty(),
            on_change: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            meta: (!config.meta.is_empty()).then(|| config.meta.clone()),
            max_retries: config.max_retries,
        })
    }

    pub fn credentials_description(&self) -> String {
        self.credentials.describe()
    }

    fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.name, kind, detail)
    }

    /// The current session, initializing one if there is none (single flight).
    async fn session(&self) -> Result<Arc<Session>, TargetError> {
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
    async fn drop_session(&self, stale: &Arc<Session>) {
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

    async fn initialize(&self) -> Result<Arc<Session>, TargetError> {
        let params = format!(
            r#"{{"protocolVersion":"{}","capabilities":{{}},"clientInfo":{{"name":"mcp-sidecar","version":"{}"}}}}"#,
            UPSTREAM_VERSIONS[0],
            env!("CARGO_PKG_VERSION")
        );
        let deadline = Instant::now() + self.request_timeout;
        let (reply, session_id) = self
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
        if !UPSTREAM_VERSIONS.contains(&init.protocol_version.as_str()) {
            return Err(self.error(
                FailureKind::BadResponse,
                format!(
                    "negotiated protocol version {} is not supported",
                    init.protocol_version
                ),
            ));
        }
        let session = Arc::new(Session {
            id: session_id,
            protocol_version: HeaderValue::from_str(&init.protocol_version).map_err(|_| {
                self.error(
                    FailureKind::BadResponse,
                    "protocol version is not a header value",
                )
            })?,
            instructions: init.instructions,
            server_info: init.server_info,
            capabilities: init.capabilities,
        });
        self.notify_initialized(&session, deadline).await?;
        tracing::info!(target_name = %self.name, protocol = %init.protocol_version,
            session = session.id.is_some(), "initialized upstream session");
        Ok(session)
    }

    async fn notify_initialized(
        &self,
        session: &Session,
        deadline: Instant,
    ) -> Result<(), TargetError> {
        let body = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let response = timeout_at(
            deadline,
            self.send(Some(session), body, deadline, "notifications/initialized"),
        )
        .await
        .map_err(|_| {
            self.error(
                FailureKind::Timeout,
                "no answer to notifications/initialized",
            )
        })??;
        if !response.status().is_success() {
            return Err(self
                .status_error(response, "notifications/initialized", "")
                .await);
        }
        Ok(())
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

    /// One JSON-RPC request/response exchange over HTTP. Returns the reply and the
    /// `Mcp-Session-Id` the upstream sent, if any.
    async fn exchange(
        &self,
        session: Option<&Session>,
        method: &str,
        params: &str,
        notify: Option<&NotificationSink>,
        deadline: Instant,
    ) -> Result<(Reply, Option<HeaderValue>), TargetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        let work = async {
            let response = self
                .send(session, Bytes::from(body), deadline, method)
                .await?;
            let session_id = response.headers().get(SESSION_HEADER).cloned();
            let reply = self
                .read_reply(response, session, id, method, notify)
                .await?;
            Ok((reply, session_id))
        };
        match timeout_at(deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.cancel(session, id, method).await;
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

    /// Tells the upstream the sidecar gave up on request `id` (MCP: the side that times out
    /// sends `notifications/cancelled`), so it can stop working on it. Best effort, brief.
    async fn cancel(&self, session: Option<&Session>, id: u64, method: &str) {
        if method == "initialize" {
            return; // the spec forbids cancelling initialize
        }
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"mcp-sidecar: request timed out"}}}}"#
        );
        self.post_one_way(
            session,
            body,
            Duration::from_millis(500),
            "notifications/cancelled",
        )
        .await;
    }

    /// Posts a message that needs no answer (a notification, or our response to an
    /// upstream's request); best effort within `limit`, failures only logged.
    async fn post_one_way(
        &self,
        session: Option<&Session>,
        body: String,
        limit: Duration,
        what: &str,
    ) {
        let sent = tokio::time::timeout(limit, self.post(session, Bytes::from(body))).await;
        if !matches!(sent, Ok(Ok(_))) {
            tracing::debug!(target_name = %self.name, "could not send {what} upstream");
        }
    }

    /// Answers an upstream's request to the client (sampling, elicitation, roots) with an
    /// error at once: a stateless relay has no client session to ask, and an unanswered
    /// request would hold the tool call until it times out.
    async fn refuse_server_request(
        &self,
        session: Option<&Session>,
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
        self.post_one_way(
            session,
            error.to_string(),
            self.request_timeout,
            "a refusal",
        )
        .await;
    }

    /// Sends one message, retrying what HTTP alone can fix (see the module docs). Other
    /// answers are returned as they are, for [`Self::read_reply`].
    async fn send(
        &self,
        session: Option<&Session>,
        body: Bytes,
        deadline: Instant,
        method: &str,
    ) -> Result<reqwest::Response, TargetError> {
        let mut throttled = 0u32;
        let mut refreshed = false;
        loop {
            let (response, sent_authorization) = self.post(session, body.clone()).await?;
            let status = response.status().as_u16();
            if is_throttled(status, response.headers()) {
                let delay = retry_delay(response.headers(), throttled);
                let note = if throttled >= self.max_retries {
                    Some(format!("gave up after {throttled} retries"))
                } else if Instant::now() + delay >= deadline {
                    Some(format!(
                        "{} retries; the next ({} ms later) would pass the deadline",
                        throttled,
                        delay.as_millis()
                    ))
                } else {
                    None
                };
                if let Some(note) = note {
                    return Err(self.status_error(response, method, &note).await);
                }
                throttled += 1;
                tracing::info!(target_name = %self.name, status, delay_ms = delay.as_millis() as u64,
                    "{method} throttled; retry {throttled} of {}", self.max_retries);
                drop(response);
                tokio::time::sleep(delay).await;
                continue;
            }
            if status == 401 || status == 403 {
                let headers = response.headers().clone();
                let answer = read_prefix(response, REFUSAL_BODY_LIMIT).await;
                let refusal = Refusal {
                    status,
                    headers: &headers,
                    body: &answer,
                    sent_authorization: sent_authorization.as_ref(),
                };
                if !refreshed && self.credentials.refused(&refusal).await {
                    refreshed = true;
                    continue;
                }
                return Err(self.refusal_error(&refusal, method, refreshed));
            }
            return Ok(response);
        }
    }

    /// One HTTP POST of `body`, authorized; also returns the `Authorization` header it carried.
    async fn post(
        &self,
        session: Option<&Session>,
        body: Bytes,
    ) -> Result<(reqwest::Response, Option<HeaderValue>), TargetError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body)
            .build()
            .map_err(|e| self.error(FailureKind::Unreachable, e.without_url().to_string()))?;
        if let Some(session) = session {
            let headers = request.headers_mut();
            if let Some(id) = &session.id {
                headers.insert(SESSION_HEADER, id.clone());
            }
            headers.insert(PROTOCOL_HEADER, session.protocol_version.clone());
        }
        self.credentials
            .authorize(&mut request)
            .await
            .map_err(|e| {
                self.error(
                    FailureKind::Credentials,
                    format!(
                        "cannot authorize with {}: {e:#}",
                        self.credentials.describe()
                    ),
                )
            })?;
        let sent_authorization = request.headers().get(AUTHORIZATION).cloned();
        let response = self.client.execute(request).await.map_err(|e| {
            let kind = if e.is_timeout() {
                FailureKind::Timeout
            } else {
                FailureKind::Unreachable
            };
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            self.error(
                kind,
                format!("{} {}{cause}", self.display_url, e.without_url()),
            )
        })?;
        Ok((response, sent_authorization))
    }

    /// A final 401/403: names the credential source and what the target said.
    fn refusal_error(&self, refusal: &Refusal<'_>, method: &str, refreshed: bool) -> TargetError {
        let status = http::StatusCode::from_u16(refusal.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| refusal.status.to_string());
        let why = match self.credentials.explain(refusal) {
            Some(why) => why,
            None => format!("credentials rejected: {}", quote(refusal.body)),
        };
        self.error(
            FailureKind::HttpStatus(refusal.status),
            format!(
                "{method} → {status}; credentials: {}; {why}{}",
                self.credentials.describe(),
                if refreshed {
                    " (also after fetching fresh credentials)"
                } else {
                    ""
                }
            ),
        )
    }

    async fn read_reply(
        &self,
        mut response: reqwest::Response,
        session: Option<&Session>,
        id: u64,
        method: &str,
        notify: Option<&NotificationSink>,
    ) -> Result<Reply, TargetError> {
        let status = response.status();
        let had_session = session.is_some_and(|s| s.id.is_some());
        if status == http::StatusCode::NOT_FOUND && had_session {
            return Err(self.error(FailureKind::SessionExpired, "HTTP 404 for the session"));
        }
        if status == http::StatusCode::BAD_REQUEST && had_session {
            // The TypeScript SDK's servers answer an unknown session with 400 ("No valid
            // session ID provided") rather than the spec's 404, e.g. after a restart.
            let body = read_quote(&mut response).await;
            if body.to_ascii_lowercase().contains("session") {
                return Err(self.error(
                    FailureKind::SessionExpired,
                    format!("HTTP 400 for the session: {body}"),
                ));
            }
            return Err(self.error(
                FailureKind::HttpStatus(400),
                format!("{method} → 400 Bad Request: {body}"),
            ));
        }
        if !status.is_success() {
            return Err(self.status_error(response, method, "").await);
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            let mut parser = SseParser::new(self.max_message_bytes);
            let mut events = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.read_error(e))? {
                parser
                    .feed(&chunk, &mut events)
                    .map_err(|e| self.error(FailureKind::BadResponse, format!("{method}: {e}")))?;
                for event in events.drain(..) {
                    if let Some(reply) = self
                        .take_message(event, session, id, method, notify)
                        .await?
                    {
                        return Ok(reply);
                    }
                }
            }
            Err(self.error(
                FailureKind::BadResponse,
                format!("{method}: the event stream ended before the response"),
            ))
        } else if content_type.starts_with("application/json") {
            let body = self.read_body(&mut response, method).await?;
            match self.take_message(body, session, id, method, None).await? {
                Some(reply) => Ok(reply),
                None => Err(self.error(
                    FailureKind::BadResponse,
                    format!("{method}: the JSON body is not the response"),
                )),
            }
        } else {
            Err(self.error(
                FailureKind::BadResponse,
                format!("{method}: unexpected content type `{content_type}` (status {status})"),
            ))
        }
    }

    /// Interprets one upstream message: our response (returned), a notification (forwarded
    /// when the caller streams), or something else (ignored).
    async fn take_message(
        &self,
        bytes: Vec<u8>,
        session: Option<&Session>,
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
        if let Some(method) = &message.method {
            if LIST_CHANGED.contains(&method.as_ref())
                && let Some(on_change) = self.on_change.get()
            {
                on_change();
            }
            if message.id.is_none() {
                if let Some(sink) = notify {
                    // A closed sink means the client went away; the call still completes.
                    let _ = sink.send(Bytes::from(bytes)).await;
                }
            } else if let Some(their_id) = &message.id {
                tracing::debug!(target_name = %self.name, "refusing the upstream's {method} request during a call");
                self.refuse_server_request(session, their_id, method).await;
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

    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        method: &str,
    ) -> Result<Vec<u8>, TargetError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.read_error(e))? {
            if body.len() + chunk.len() > self.max_message_bytes {
                return Err(self.error(
                    FailureKind::BadResponse,
                    format!(
                        "{method}: response exceeds max_message_bytes ({})",
                        self.max_message_bytes
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn read_error(&self, e: reqwest::Error) -> TargetError {
        let kind = if e.is_timeout() {
            FailureKind::Timeout
        } else {
            FailureKind::Unreachable
        };
        self.error(
            kind,
            format!("reading the response failed: {}", e.without_url()),
        )
    }

    async fn status_error(
        &self,
        mut response: reqwest::Response,
        method: &str,
        note: &str,
    ) -> TargetError {
        let status = response.status();
        let body = read_quote(&mut response).await;
        let hint = match status.as_u16() {
            401 | 403 => " (credentials rejected)".to_string(),
            404 => " (check the target url)".to_string(),
            _ if !note.is_empty() => format!(" (throttled; {note})"),
            429 => " (throttled)".to_string(),
            _ => String::new(),
        };
        self.error(
            FailureKind::HttpStatus(status.as_u16()),
            format!("{method} → {status}{hint}: {body}"),
        )
    }

    /// Runs `work` under the target's concurrency bound: waits at most the queue timeout
    /// (and never past `deadline`) for a slot.
    async fn bounded<T>(
        &self,
        what: &str,
        deadline: Instant,
        work: impl Future<Output = Result<T, TargetError>>,
    ) -> Result<T, TargetError> {
        let queue_deadline = deadline.min(Instant::now() + self.queue_timeout);
        let _permit = timeout_at(queue_deadline, self.permits.acquire())
            .await
            .map_err(|_| {
                self.error(
                    FailureKind::Overloaded,
                    format!(
                        "{what}: all {} request slots stayed busy for {} ms",
                        self.max_concurrency,
                        self.queue_timeout.min(self.request_timeout).as_millis()
                    ),
                )
            })?;
        work.await
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
        let (prompts, resources, resource_templates) = (
            if offers("prompts") {
                self.list_all("prompts/list", "prompts").await?
            } else {
                Vec::new()
            },
            if offers("resources") {
                self.list_all("resources/list", "resources").await?
            } else {
                Vec::new()
            },
            if offers("resources") {
                self.list_all("resources/templates/list", "resourceTemplates")
                    .await?
            } else {
                Vec::new()
            },
        );
        Ok(Listing {
            tools,
            prompts,
            resources,
            resource_templates,
            instructions: session.instructions.clone(),
            server_info: session.server_info.clone(),
            capabilities: session.capabilities.clone(),
            protocol_version: session
                .protocol_version
                .to_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// One paginated listing (`tools/list`, `prompts/list`, …) followed to its end.
    async fn list_all(
        &self,
        method: &'static str,
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
            let reply = self
                .bounded(
                    method,
                    deadline,
                    self.request(method, &params, None, deadline),
                )
                .await?;
            let result = match reply {
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
}

/// Why a standalone event stream ended.
enum StreamEnd {
    /// The upstream offers none (stateless, or GET answered 405): stop watching.
    Unsupported,
    /// It closed; reconnect.
    Closed,
}

/// The notifications that mean "sync again".
const LIST_CHANGED: &[&str] = &[
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
];

impl McpHttpTarget {
    /// Follows the session's standalone GET event stream (where stateful servers send
    /// notifications outside any request) and reports list changes.
    async fn follow_event_stream(
        &self,
        on_change: &ChangeCallback,
    ) -> Result<StreamEnd, TargetError> {
        let session = self.session().await?;
        let Some(id) = &session.id else {
            return Ok(StreamEnd::Unsupported);
        };
        let mut request = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "text/event-stream")
            .header(SESSION_HEADER, id.clone())
            .header(PROTOCOL_HEADER, session.protocol_version.clone())
            .build()
            .map_err(|e| self.error(FailureKind::Unreachable, e.without_url().to_string()))?;
        self.credentials
            .authorize(&mut request)
            .await
            .map_err(|e| self.error(FailureKind::Unreachable, format!("credentials: {e}")))?;
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| self.error(FailureKind::Unreachable, e.without_url().to_string()))?;
        match response.status() {
            http::StatusCode::METHOD_NOT_ALLOWED => return Ok(StreamEnd::Unsupported),
            // A gone session (404, or 400 from servers that answer it so): start a new one.
            http::StatusCode::NOT_FOUND | http::StatusCode::BAD_REQUEST => {
                self.drop_session(&session).await;
                return Ok(StreamEnd::Closed);
            }
            status if !status.is_success() => {
                return Err(
                    self.error(FailureKind::HttpStatus(status.as_u16()), "GET event stream")
                );
            }
            _ => {}
        }
        let mut parser = SseParser::new(self.max_message_bytes);
        let mut events = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.read_error(e))? {
            parser
                .feed(&chunk, &mut events)
                .map_err(|e| self.error(FailureKind::BadResponse, format!("event stream: {e}")))?;
            for event in events.drain(..) {
                #[derive(Deserialize)]
                struct Method {
                    method: Option<String>,
                }
                if let Ok(Method { method: Some(m) }) = serde_json::from_slice(&event)
                    && LIST_CHANGED.contains(&m.as_str())
                {
                    on_change();
                }
            }
        }
        Ok(StreamEnd::Closed)
    }
}

impl Target for McpHttpTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>> {
        Box::pin(self.list_everything())
    }

    fn call<'a>(
        &'a self,
        method: &'static str,
        params: String,
        notify: Option<NotificationSink>,
    ) -> BoxFuture<'a, Result<Reply, TargetError>> {
        Box::pin(async move {
            let deadline = Instant::now() + self.request_timeout;
            let params = match &self.meta {
                Some(meta) if method == "tools/call" => inject_meta(&params, meta)
                    .map_err(|e| self.error(FailureKind::BadResponse, e))?,
                _ => params,
            };
            self.bounded(
                method,
                deadline,
                self.request(method, &params, notify.as_ref(), deadline),
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
            let mut backoff = Duration::from_secs(1);
            loop {
                match self.follow_event_stream(on_change).await {
                    Ok(StreamEnd::Unsupported) => return,
                    Ok(StreamEnd::Closed) => backoff = Duration::from_secs(1),
                    Err(e) => tracing::debug!(target_name = %self.name, "event stream: {e}"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(session) = self.current.swap(None) else {
                return;
            };
            self.sessions.invalidate(&()).await;
            let Some(id) = &session.id else { return };
            let request = self
                .client
                .delete(self.url.clone())
                .header(SESSION_HEADER, id.clone())
                .header(PROTOCOL_HEADER, session.protocol_version.clone());
            let Ok(mut request) = request.build() else {
                return;
            };
            if self.credentials.authorize(&mut request).await.is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(2), self.client.execute(request)).await {
                Ok(Ok(response)) => {
                    tracing::debug!(target_name = %self.name, status = %response.status(), "closed upstream session")
                }
                _ => {
                    tracing::debug!(target_name = %self.name, "could not close the upstream session")
                }
            }
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

/// A throttled answer: 429; 503 with `Retry-After`; or AWS's throttling error types.
fn is_throttled(status: u16, headers: &HeaderMap) -> bool {
    let aws_throttling = || {
        headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.starts_with("Throttling")
                    || t.starts_with("TooManyRequests")
                    || t.starts_with("RequestLimitExceeded")
            })
    };
    match status {
        429 => true,
        503 => headers.contains_key(RETRY_AFTER) || aws_throttling(),
        400 => aws_throttling(),
        _ => false,
    }
}

/// How long to wait before retry `attempt` (0-based): `Retry-After` (seconds or an HTTP
/// date) plus up to 10 % jitter, or else full-jitter exponential backoff.
fn retry_delay(headers: &HeaderMap, attempt: u32) -> Duration {
    use rand::Rng;
    let mut rng = rand::rng();
    if let Some(after) = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
    {
        let jitter_cap = (after / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        return after + jitter_cap.mul_f64(rng.random::<f64>());
    }
    let cap = THROTTLE_BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(THROTTLE_BACKOFF_MAX);
    cap.mul_f64(0.5 + 0.5 * rng.random::<f64>())
}

/// `Retry-After`: delay-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let at = parse_http_date(value)?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
            .min(Duration::from_secs(3600)),
    )
}

fn parse_http_date(value: &str) -> Option<std::time::SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = value.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: i64 = parts[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[1])? as i64
        + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<i64> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Reads at most about `limit` bytes of a body (errors just end it).
async fn read_prefix(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            break;
        }
    }
    body
}

fn is_session_expired_error(error: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error.get()).is_ok_and(|c| c.code == SESSION_EXPIRED_CODE)
}

/// Reads (a bounded start of) an error body as printable text.
async fn read_quote(response: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > ERROR_BODY_QUOTE {
            break;
        }
    }
    quote(&body)
}

/// A short, printable excerpt of an upstream body for error messages.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_QUOTE)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > ERROR_BODY_QUOTE {
        format!("{}…", text.trim())
    } else {
        text.trim().to_string()
    }
}
