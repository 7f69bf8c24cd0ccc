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
use http::header::{ACCEPT, CONTENT_TYPE};
use tokio::time::Instant;

use super::McpClient;
use super::sse::SseParser;
use super::transport::{Outgoing, Replies, StreamEnd, Transport, Wire};
use crate::config::{McpServerSpec, TargetConfig};
use crate::protocol::{PROTOCOL_HEADER, SESSION_HEADER};
use crate::targets::credentials::provider_for;
use crate::targets::http::{HttpSender, printable_url, read_failure, read_quote};
use crate::targets::{Description, FailureKind, TargetError};

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
    Ok(McpClient::new(config, transport))
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
    response: reqwest::Response,
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
        accept: &'static str,
        body: Option<Bytes>,
    ) -> Result<reqwest::Request, TargetError> {
        let mut builder = self
            .sender
            .client()
            .request(method, self.url.clone())
            .header(ACCEPT, accept);
        if let Some(body) = body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body);
        }
        let mut request = builder.build().map_err(|e| {
            self.sender
                .error(FailureKind::Unreachable, e.without_url().to_string())
        })?;
        if let Some(wire) = wire {
            let headers = request.headers_mut();
            if let Some(id) = &wire.link {
                headers.insert(SESSION_HEADER, id.clone());
            }
            headers.insert(PROTOCOL_HEADER, wire.protocol_version.clone());
        }
        Ok(request)
    }
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
        let request = self.request(
            http::Method::POST,
            out.wire,
            "application/json, text/event-stream",
            Some(out.body),
        )?;
        let mut response = self.sender.send(request, out.deadline, method).await?;
        let link = response.headers().get(SESSION_HEADER).cloned();
        let status = response.status();
        let had_session = out.wire.is_some_and(|w| w.link.is_some());
        if status == http::StatusCode::NOT_FOUND && had_session {
            return Err(self
                .sender
                .error(FailureKind::SessionExpired, "HTTP 404 for the session"));
        }
        if status == http::StatusCode::BAD_REQUEST && had_session {
            // The TypeScript SDK's servers answer an unknown session with 400 ("No valid
            // session ID provided") rather than the spec's 404, e.g. after a restart.
            let body = read_quote(&mut response).await;
            if body.to_ascii_lowercase().contains("session") {
                return Err(self.sender.error(
                    FailureKind::SessionExpired,
                    format!("HTTP 400 for the session: {body}"),
                ));
            }
            return Err(self.sender.error(
                FailureKind::HttpStatus(400),
                format!("{method} → 400 Bad Request: {body}"),
            ));
        }
        if !status.is_success() {
            return Err(self.sender.status_error(response, method, "").await);
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
            "application/json, text/event-stream",
            Some(body),
        )?;
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
        let request = self.request(http::Method::GET, Some(wire), "text/event-stream", None)?;
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
        let Ok(request) = self.request(http::Method::DELETE, Some(wire), "*/*", None) else {
            return;
        };
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
