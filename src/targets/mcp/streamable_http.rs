//! MCP's streamable-HTTP transport, client side: each message is a POST; the answer is a
//! JSON body or an event stream (`text/event-stream`) that carries notifications before the
//! response; a GET opens the stream of server-initiated messages; a DELETE ends the session.
//!
//! Hand-written on reqwest rather than rmcp's client because the relay must pass results
//! through as raw bytes (no decode/re-encode of tool results), see each outgoing request
//! whole (credential providers such as SigV4 sign the body), and cap the size of every
//! upstream message. Sending, retries and credentials are [`HttpSender`]'s.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use tokio::time::Instant;

use super::McpClient;
use super::session::Negotiation;
use super::sse::SseParser;
use super::transport::{Outgoing, Replies, StreamEnd, Transport, Wire};
use crate::config::{McpServerSpec, TargetConfig};
use crate::protocol::header_values as values;
use crate::protocol::param_headers;
use crate::protocol::{METHOD_HEADER, NAME_HEADER, PROTOCOL_HEADER, SESSION_HEADER};
use crate::targets::credentials::provider_for;
use crate::targets::error::quote;
use crate::targets::http::{
    HttpResponse, HttpSender, printable_url, read_failure, read_quote, redirect_hint,
};
use crate::targets::{Description, FailureKind, TargetError};

/// How much of a refusal's JSON body is read to find a JSON-RPC error in it.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// An `mcp_server` target: the MCP client over streamable HTTP.
pub fn target(
    config: &TargetConfig,
    spec: &McpServerSpec,
) -> anyhow::Result<McpClient<StreamableHttp>> {
    let url = reqwest::Url::parse(&spec.url)?;
    let credentials = provider_for(config, &url, &spec.headers)?;
    let transport = StreamableHttp {
        sender: HttpSender::new(config, credentials)?,
        display_url: printable_url(&url),
        url,
        max_message_bytes: config.max_message_bytes,
    };
    let negotiation = Negotiation::from_config(spec.protocol_version.as_deref());
    Ok(McpClient::new(config, transport, negotiation))
}

pub struct StreamableHttp {
    sender: HttpSender,
    url: reqwest::Url,
    /// The URL without query or credentials, for messages.
    display_url: String,
    max_message_bytes: usize,
}

/// The answer to one POST: a JSON body (one message) or an event stream.
pub enum HttpReplies {
    Json(Option<Vec<u8>>),
    Events(Box<EventStream>),
}

/// An event-stream answer being read: events parsed so far, and what errors name.
pub struct EventStream {
    response: HttpResponse,
    parser: SseParser,
    ready: VecDeque<Vec<u8>>,
    method: String,
    target: std::sync::Arc<str>,
}

impl Replies for HttpReplies {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, TargetError> {
        match self {
            HttpReplies::Json(body) => Ok(body.take()),
            HttpReplies::Events(stream) => stream.next_event().await,
        }
    }
}

impl EventStream {
    async fn next_event(&mut self) -> Result<Option<Vec<u8>>, TargetError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|e| read_failure(&self.target, e))?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            let mut events = Vec::new();
            self.parser.feed(&chunk, &mut events).map_err(|e| {
                TargetError::new(
                    &self.target,
                    FailureKind::BadResponse,
                    format!("{}: {e}", self.method),
                )
            })?;
            self.ready.extend(events);
        }
    }
}

impl StreamableHttp {
    /// A request to the endpoint with the session's headers.
    fn request(
        &self,
        method: http::Method,
        wire: Option<&Wire<Option<HeaderValue>>>,
        accept: &'static HeaderValue,
        body: Option<Bytes>,
    ) -> reqwest::Request {
        // Built directly rather than through `RequestBuilder`: with room for every header
        // it will carry (signatures and 2026-07-28 headers included), so none of the
        // inserts on the way out grows the map.
        let mut request = reqwest::Request::new(method, self.url.clone());
        let headers = request.headers_mut();
        headers.reserve(16);
        headers.insert(ACCEPT, accept.clone());
        headers.insert(USER_AGENT, values::USER_AGENT.clone());
        if let Some(body) = body {
            headers.insert(CONTENT_TYPE, values::JSON.clone());
            *request.body_mut() = Some(body.into());
        }
        if let Some(wire) = wire {
            let headers = request.headers_mut();
            if let Some(id) = &wire.link {
                headers.insert(SESSION_HEADER, id.clone());
            }
            headers.insert(PROTOCOL_HEADER, wire.protocol_version.clone());
        }
        request
    }
}

impl StreamableHttp {
    /// A non-success answer to a request. A JSON-RPC error for it in the body is the
    /// reply (2026-07-28 servers answer bad requests with 400 and one); a session the server
    /// no longer knows, or a server that no longer speaks 2026-07-28, is an expired session;
    /// anything else is an HTTP failure that quotes the body.
    async fn refused(
        &self,
        mut response: HttpResponse,
        method: &str,
        id: u64,
        had_session: bool,
        modern: bool,
    ) -> Result<HttpReplies, TargetError> {
        let status = response.status();
        let json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
        let body = if json {
            self.sender
                .read_body(&mut response, ERROR_BODY_LIMIT, method)
                .await
                .unwrap_or_default()
        } else {
            read_quote(&mut response).await.into_bytes()
        };
        if json && answers(&body, id) {
            return Ok(HttpReplies::Json(Some(body)));
        }
        let text = quote(&body);
        if status == http::StatusCode::BAD_REQUEST && had_session {
            // The TypeScript SDK's servers answer an unknown session with 400 ("No valid
            // session ID provided") rather than the spec's 404, e.g. after a restart.
            if text.to_ascii_lowercase().contains("session") {
                return Err(self.sender.error(
                    FailureKind::SessionExpired,
                    format!("HTTP 400 for the session: {text}"),
                ));
            }
        } else if status == http::StatusCode::BAD_REQUEST && modern {
            // A 2026-07-28 server answers a bad request with a JSON-RPC error; a bare 400
            // means the server behind the URL speaks a legacy version now.
            return Err(self.sender.error(
                FailureKind::SessionExpired,
                format!("HTTP 400 without a JSON-RPC error to a 2026-07-28 request: {text}"),
            ));
        }
        let redirect = redirect_hint(status, response.headers());
        let hint = match status.as_u16() {
            _ if redirect.is_some() => redirect.as_deref().unwrap_or_default(),
            401 | 403 => " (credentials rejected)",
            404 => " (check the target url)",
            429 => " (throttled)",
            _ => "",
        };
        Err(self.sender.error(
            FailureKind::HttpStatus(status.as_u16()),
            format!("{method} → {status}{hint}: {text}"),
        ))
    }
}

/// Whether `body` is a JSON-RPC response to request `id`.
fn answers(body: &[u8], id: u64) -> bool {
    #[derive(serde::Deserialize)]
    struct Response {
        id: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Response>(body)
        .ok()
        .and_then(|r| r.id)
        .and_then(|id| id.as_u64())
        == Some(id)
}

/// A header value, Base64-wrapped when it is not plain visible ASCII.
fn header_value(value: &str) -> Result<HeaderValue, TargetError> {
    HeaderValue::from_str(&param_headers::encode(value))
        .map_err(|_| TargetError::new("", FailureKind::BadResponse, "unencodable header value"))
}

impl Transport for StreamableHttp {
    type Link = Option<HeaderValue>;
    type Replies = HttpReplies;

    fn describe(&self) -> Description {
        Description {
            kind: "mcp_server",
            endpoint: self.display_url.clone(),
            credentials: self.sender.credentials(),
        }
    }

    fn fingerprint(&self) -> String {
        self.url.to_string()
    }

    async fn send(
        &self,
        out: Outgoing<'_, Self::Link>,
    ) -> Result<(Self::Link, HttpReplies), TargetError> {
        let method = out.method;
        let modern = out.wire.is_some_and(Wire::is_modern);
        // Built per attempt: a retry (throttling, refreshed credentials) builds it again
        // rather than every request keeping a copy for one.
        let make = || {
            let mut request = self.request(
                http::Method::POST,
                out.wire,
                &values::JSON_OR_EVENT_STREAM,
                Some(out.body.clone()),
            );
            if modern {
                // 2026-07-28: the method, name and annotated arguments travel as headers
                // too, for intermediaries.
                let headers = request.headers_mut();
                headers.insert(METHOD_HEADER, header_value(method)?);
                if let Some(name) = out.name {
                    headers.insert(NAME_HEADER, header_value(name)?);
                }
                for (name, value) in out.headers {
                    let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        self.sender.error(
                            FailureKind::BadResponse,
                            format!("`{name}` is not a header name"),
                        )
                    })?;
                    headers.insert(name, header_value(value)?);
                }
            }
            Ok(request)
        };
        let mut response = self.sender.send_made(make, out.deadline, method).await?;
        let link = response.headers().get(SESSION_HEADER).cloned();
        let status = response.status();
        let had_session = out.wire.is_some_and(|w| w.link.is_some());
        if status == http::StatusCode::NOT_FOUND && had_session {
            return Err(self
                .sender
                .error(FailureKind::SessionExpired, "HTTP 404 for the session"));
        }
        if !status.is_success() {
            // Boxed: a cold path that would otherwise enlarge every request's future.
            return Box::pin(self.refused(response, method, out.id, had_session, modern))
                .await
                .map(|replies| (link, replies));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let replies = if content_type.starts_with("text/event-stream") {
            HttpReplies::Events(Box::new(EventStream {
                response,
                parser: SseParser::new(self.max_message_bytes),
                ready: VecDeque::new(),
                method: method.to_string(),
                target: self.sender.target(),
            }))
        } else if content_type.starts_with("application/json") {
            let body = self
                .sender
                .read_body(&mut response, self.max_message_bytes, method)
                .await?;
            HttpReplies::Json(Some(body))
        } else {
            return Err(self.sender.error(
                FailureKind::BadResponse,
                format!("{method}: unexpected content type `{content_type}` (status {status})"),
            ));
        };
        Ok((link, replies))
    }

    async fn post(
        &self,
        wire: Option<&Wire<Self::Link>>,
        body: Bytes,
        deadline: Instant,
        what: &str,
    ) -> Result<(), TargetError> {
        let request = self.request(
            http::Method::POST,
            wire,
            &values::JSON_OR_EVENT_STREAM,
            Some(body),
        );
        let response = self.sender.send(request, deadline, what).await?;
        if !response.status().is_success() {
            return Err(self.sender.status_error(response, what, "").await);
        }
        Ok(())
    }

    async fn listen(
        &self,
        wire: &Wire<Self::Link>,
        on_message: &(dyn Fn(&[u8]) + Send + Sync),
    ) -> Result<StreamEnd, TargetError> {
        if wire.link.is_none() {
            return Ok(StreamEnd::Unsupported);
        }
        let request = self.request(http::Method::GET, Some(wire), &values::EVENT_STREAM, None);
        let (mut response, _) = self.sender.send_once(request).await?;
        match response.status() {
            http::StatusCode::METHOD_NOT_ALLOWED => return Ok(StreamEnd::Unsupported),
            // A gone session (404, or 400 from servers that answer it so): start a new one.
            http::StatusCode::NOT_FOUND | http::StatusCode::BAD_REQUEST => {
                return Ok(StreamEnd::SessionGone);
            }
            status if !status.is_success() => {
                return Err(self
                    .sender
                    .error(FailureKind::HttpStatus(status.as_u16()), "GET event stream"));
            }
            _ => {}
        }
        let mut parser = SseParser::new(self.max_message_bytes);
        let mut events = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.sender.read_error(e))?
        {
            parser.feed(&chunk, &mut events).map_err(|e| {
                self.sender
                    .error(FailureKind::BadResponse, format!("event stream: {e}"))
            })?;
            for event in events.drain(..) {
                on_message(&event);
            }
        }
        Ok(StreamEnd::Closed)
    }

    async fn close(&self, wire: &Wire<Self::Link>) {
        if wire.link.is_none() {
            return;
        }
        let request = self.request(http::Method::DELETE, Some(wire), &values::ANY, None);
        match tokio::time::timeout(Duration::from_secs(2), self.sender.send_once(request)).await {
            Ok(Ok((response, _))) => {
                tracing::debug!(endpoint = %self.display_url, status = %response.status(), "closed upstream session")
            }
            _ => {
                tracing::debug!(endpoint = %self.display_url, "could not close the upstream session")
            }
        }
    }
}
