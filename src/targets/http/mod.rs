//! Authorized HTTP sending, shared by every kind of target that speaks HTTP.
//!
//! [`HttpSender::send`] handles what HTTP alone can fix, in one place: a throttled answer
//! (429, 503 with `Retry-After`, AWS `ThrottlingException`) is retried with jittered backoff
//! that honours `Retry-After`, within the request's deadline; a 401/403 that the credential
//! provider can fix (a refused OAuth token, AWS credentials expired early) is retried once
//! with fresh credentials. A final refusal names the credential source and what the target
//! (e.g. AWS) answered. Every other answer is returned as it is, for the kind to read.
//!
//! Each request is authorized just before it is sent, so a signer (SigV4) sees the final
//! request, body included; the caller's own token is never an input here.

pub mod client;
pub mod pool;
pub mod retry;

use std::time::Duration;

use http::HeaderValue;
use http::header::AUTHORIZATION;
use tokio::time::Instant;
use tracing::Instrument;

pub use self::client::{BodyError, HttpResponse, UpstreamClient, redirect_hint};
use super::credentials::{CredentialProvider, Refusal};
use super::error::{ERROR_BODY_QUOTE, quote};
use super::{FailureKind, TargetError};
use crate::config::TargetConfig;
use crate::telemetry::trace;

/// How much of a 401/403 answer is read to learn why (AWS error documents are small).
const REFUSAL_BODY_LIMIT: usize = 4096;

pub struct HttpSender {
    target: std::sync::Arc<str>,
    client: UpstreamClient,
    credentials: Box<dyn CredentialProvider>,
    max_retries: u32,
}

/// A whole HTTP answer, for kinds that hand every status to the caller
/// ([`HttpSender::send_for_answer`]).
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// Why the sender gave up: a refusal its credentials could not fix, or throttling past
    /// the retries (never a secret).
    pub note: Option<String>,
}

/// How the retry loop ended.
enum Sent {
    Response(HttpResponse),
    Throttled {
        response: HttpResponse,
        note: String,
    },
    Refused(Refused),
}

/// A 401/403 answer, with what the refused request carried.
struct Refused {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    sent_authorization: Option<HeaderValue>,
    /// Whether fresh credentials were already tried.
    refreshed: bool,
}

impl Refused {
    fn refusal(&self) -> Refusal<'_> {
        Refusal {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
            sent_authorization: self.sent_authorization.as_ref(),
        }
    }
}

impl HttpSender {
    pub fn new(
        config: &TargetConfig,
        credentials: Box<dyn CredentialProvider>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            target: config.name.as_str().into(),
            client: UpstreamClient::new(config.connect_timeout())?,
            credentials,
            max_retries: config.max_retries,
        })
    }

    /// A sender for a service that is not a target (the search embedder): `name` stands for
    /// the target's name in messages.
    pub fn standalone(
        name: &str,
        connect_timeout: Duration,
        credentials: Box<dyn CredentialProvider>,
        max_retries: u32,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            target: name.into(),
            client: UpstreamClient::new(connect_timeout)?,
            credentials,
            max_retries,
        })
    }

    /// The target's name, for errors raised where the sender is out of reach.
    pub fn target(&self) -> std::sync::Arc<str> {
        self.target.clone()
    }

    /// The client to build requests with (sent with [`HttpSender::send`]).
    pub fn client(&self) -> &reqwest::Client {
        self.client.builder()
    }

    /// The credential source, in words (never the secret).
    pub fn credentials(&self) -> String {
        self.credentials.describe()
    }

    pub fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.target, kind, detail)
    }

    /// Sends `request`, retrying what HTTP alone can fix (see the module docs). `what`
    /// names the request in messages (e.g. the MCP method). A final refusal (401/403) or a
    /// throttled answer past the retries is an error.
    pub async fn send(
        &self,
        request: reqwest::Request,
        deadline: Instant,
        what: &str,
    ) -> Result<HttpResponse, TargetError> {
        self.send_made(|| self.copy(&request, what), deadline, what)
            .await
    }

    /// Like [`HttpSender::send`], for the request `make` builds: called once per attempt, so
    /// no copy of the request is made in case of a retry (most requests have none).
    pub async fn send_made(
        &self,
        make: impl Fn() -> Result<reqwest::Request, TargetError> + Sync,
        deadline: Instant,
        what: &str,
    ) -> Result<HttpResponse, TargetError> {
        match self.send_retrying(make, deadline, what).await? {
            Sent::Response(response) => Ok(response),
            Sent::Throttled { response, note } => {
                Err(Box::pin(self.status_error(response, what, &note)).await)
            }
            Sent::Refused(refused) => {
                Err(self.refusal_error(&refused.refusal(), what, refused.refreshed))
            }
        }
    }

    /// Like [`HttpSender::send`], but every HTTP answer is returned, read whole (at most
    /// `limit` bytes): kinds whose calls map onto HTTP operations (OpenAPI, Smithy) report a
    /// refusal or throttling to the model as the operation's own result, not as a failure
    /// of the relay. `note` then says what the credential source or the retries make of it.
    pub async fn send_for_answer(
        &self,
        request: reqwest::Request,
        deadline: Instant,
        what: &str,
        limit: usize,
    ) -> Result<HttpAnswer, TargetError> {
        let make = || self.copy(&request, what);
        Ok(match self.send_retrying(make, deadline, what).await? {
            Sent::Response(mut response) => HttpAnswer {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: self.read_body(&mut response, limit, what).await?,
                note: None,
            },
            Sent::Throttled { response, note } => HttpAnswer {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: read_prefix(response, REFUSAL_BODY_LIMIT).await,
                note: Some(format!("throttled; {note}")),
            },
            Sent::Refused(refused) => {
                let why = self
                    .credentials
                    .explain(&refused.refusal())
                    .unwrap_or_else(|| "credentials rejected".into());
                HttpAnswer {
                    note: Some(format!(
                        "credentials: {}; {why}{}",
                        self.credentials.describe(),
                        if refused.refreshed {
                            " (also after fetching fresh credentials)"
                        } else {
                            ""
                        }
                    )),
                    status: refused.status,
                    headers: refused.headers,
                    body: refused.body,
                }
            }
        })
    }

    /// A copy of `request` to send (each attempt consumes one).
    fn copy(
        &self,
        request: &reqwest::Request,
        what: &str,
    ) -> Result<reqwest::Request, TargetError> {
        request.try_clone().ok_or_else(|| {
            self.error(
                FailureKind::BadResponse,
                format!("{what}: a streaming body cannot be retried"),
            )
        })
    }

    /// The retry loop the ways of sending share; `make` gives each attempt its request.
    async fn send_retrying(
        &self,
        make: impl Fn() -> Result<reqwest::Request, TargetError> + Sync,
        deadline: Instant,
        what: &str,
    ) -> Result<Sent, TargetError> {
        let mut throttled = 0u32;
        let mut refreshed = false;
        loop {
            let (response, sent_authorization) = self.send_once(make()?).await?;
            let status = response.status().as_u16();
            if retry::is_throttled(status, response.headers()) {
                let delay = retry::retry_delay(response.headers(), throttled);
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
                    return Ok(Sent::Throttled { response, note });
                }
                throttled += 1;
                crate::telemetry::metrics().throttle_retry(&self.target);
                tracing::info!(target_name = %self.target, status, delay_ms = delay.as_millis() as u64,
                    "{what} throttled; retry {throttled} of {}", self.max_retries);
                drop(response);
                tokio::time::sleep(delay).await;
                continue;
            }
            if status == 401 || status == 403 {
                let headers = response.headers().clone();
                let body = read_prefix(response, REFUSAL_BODY_LIMIT).await;
                let refused = Refused {
                    status,
                    headers,
                    body,
                    sent_authorization,
                    refreshed,
                };
                if !refreshed && self.credentials.refused(&refused.refusal()).await {
                    refreshed = true;
                    continue;
                }
                return Ok(Sent::Refused(refused));
            }
            return Ok(Sent::Response(response));
        }
    }

    /// One authorized attempt, no retries (event streams, closing a session). Also returns
    /// the `Authorization` header the request carried.
    pub async fn send_once(
        &self,
        mut request: reqwest::Request,
    ) -> Result<(HttpResponse, Option<HeaderValue>), TargetError> {
        let span = trace::http_client_span(&self.target, request.method(), request.url());
        if !span.is_none() {
            // The upstream continues this request's trace; added before the credentials so
            // a signer (SigV4) sees the final request.
            let _entered = span.enter();
            trace::inject(request.headers_mut());
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
        // Instrumented only when traced: wrapping moves the request's future, a few KB.
        let response = if span.is_none() {
            self.client.execute(request).await
        } else {
            self.client.execute(request).instrument(span.clone()).await
        };
        let response = response.map_err(|e| {
            trace::record_error(&span, e.kind.label());
            self.error(e.kind, e.message)
        })?;
        if !span.is_none() {
            let status = response.status().as_u16();
            span.record("http.response.status_code", i64::from(status));
            if status >= 400 {
                trace::record_error(&span, &status.to_string());
            }
        }
        Ok((response, sent_authorization))
    }

    /// A final 401/403: names the credential source and what the target said.
    fn refusal_error(&self, refusal: &Refusal<'_>, what: &str, refreshed: bool) -> TargetError {
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
                "{what} → {status}; credentials: {}; {why}{}",
                self.credentials.describe(),
                if refreshed {
                    " (also after fetching fresh credentials)"
                } else {
                    ""
                }
            ),
        )
    }

    /// A non-success answer as an error that quotes the start of its body.
    pub async fn status_error(
        &self,
        mut response: HttpResponse,
        what: &str,
        note: &str,
    ) -> TargetError {
        let status = response.status();
        // AWS names the error in a header (`ThrottlingException`, `TooManyRequestsException`).
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|t| format!("{}: ", t.split(':').next().unwrap_or(t)))
            .unwrap_or_default();
        let redirect = redirect_hint(status, response.headers());
        let body = read_quote(&mut response).await;
        let hint = match status.as_u16() {
            _ if redirect.is_some() => redirect.unwrap_or_default(),
            401 | 403 => " (credentials rejected)".to_string(),
            404 => " (check the target url)".to_string(),
            _ if !note.is_empty() => format!(" (throttled; {note})"),
            429 => " (throttled)".to_string(),
            _ => String::new(),
        };
        self.error(
            FailureKind::HttpStatus(status.as_u16()),
            format!("{what} → {status}{hint}: {error_type}{body}"),
        )
    }

    /// A failure while reading an answer's body.
    pub fn read_error(&self, e: BodyError) -> TargetError {
        read_failure(&self.target, e)
    }

    /// Reads a whole body of at most `limit` bytes.
    pub async fn read_body(
        &self,
        response: &mut HttpResponse,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, TargetError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.read_error(e))? {
            if body.len() + chunk.len() > limit {
                return Err(self.error(
                    FailureKind::BadResponse,
                    format!("{what}: response exceeds max_message_bytes ({limit})"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A failure while reading target `target`'s answer (for readers that outlive the sender's
/// borrow, such as a streamed answer).
pub fn read_failure(target: &str, e: BodyError) -> TargetError {
    TargetError::new(
        target,
        FailureKind::Unreachable,
        format!("reading the response failed: {e}"),
    )
}

/// A URL fit for messages: no query (it may carry keys), no userinfo.
pub fn printable_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Reads at most about `limit` bytes of a body (errors just end it).
async fn read_prefix(mut response: HttpResponse, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// Reads (a bounded start of) an error body as printable text.
pub async fn read_quote(response: &mut HttpResponse) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > ERROR_BODY_QUOTE {
            break;
        }
    }
    quote(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_and_printable() {
        assert_eq!(quote(b" a\nb\t"), "a b");
        let long = vec![b'x'; ERROR_BODY_QUOTE + 5];
        assert!(quote(&long).ends_with('…'));
        let url = reqwest::Url::parse("https://u:p@h.example/mcp?key=secret").unwrap();
        assert_eq!(printable_url(&url), "https://h.example/mcp");
    }
}
