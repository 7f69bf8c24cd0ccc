//! Request-level bounds and accounting: [`Limits::bounded`] and [`measured`], applied as axum
//! middleware on the router's routes and called directly on the MCP fast path
//! ([`super::Endpoint`]).
//!
//! - [`in_flight`] (MCP and admin routes): at most `inbound.max_in_flight` requests are
//!   handled at once; one more is answered at once with 503 and `Retry-After` (never queued,
//!   so an overload shows as fast refusals the caller can retry elsewhere, not as hangs).
//!   A request counts until its response body has been sent (an event stream included).
//!   When the shutdown grace runs out, requests still being handled are answered with a
//!   JSON-RPC error saying so, and logged: no call that had started is dropped silently.
//! - [`http_metrics`] (every route): `http.server.request.duration` and
//!   `http.server.active_requests`, labelled by the matched route (a fixed set).
//!
//! Health, readiness and metrics endpoints are outside the in-flight bound, so probes
//! answer while the sidecar is saturated.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Semaphore;

use super::server::{ABORTING, ServerPhase};
use crate::telemetry::metrics;

/// Marks a response that is a long-lived stream (`subscriptions/listen`) rather than the
/// answer to a call: it does not count as in flight, and it ends when shutdown begins (the
/// client reconnects elsewhere; nothing it waits for is lost, the catalog is the same).
#[derive(Clone, Copy)]
pub struct LongLived;

/// Makes `response` a [`LongLived`] stream that ends when `draining` turns true.
pub fn long_lived(
    response: Response,
    mut draining: tokio::sync::watch::Receiver<bool>,
) -> Response {
    use futures_util::StreamExt;
    let (mut parts, body) = response.into_parts();
    parts.extensions.insert(LongLived);
    let shutdown = async move {
        let _ = draining.wait_for(|d| *d).await;
    };
    let stream = body.into_data_stream().take_until(shutdown);
    Response::from_parts(parts, Body::from_stream(stream))
}

pub struct Limits {
    permits: Arc<Semaphore>,
    retry_after_secs: u64,
}

impl Limits {
    pub fn new(max_in_flight: usize, retry_after_secs: u64) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            retry_after_secs,
        })
    }
}

/// A JSON-RPC error answer (id null: the request was not read) with an HTTP status.
fn refusal(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": super::jsonrpc::INTERNAL_ERROR, "message": message },
    })
    .to_string();
    let mut response = (status, [(CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, http::HeaderValue::from(secs));
    }
    response
}

pub async fn in_flight(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    // Put there by `Endpoint::handle` for the router's requests.
    let phase = request.extensions().get::<Arc<ServerPhase>>().cloned();
    let phase = phase.unwrap_or_default();
    let handle = std::pin::pin!(next.run(request));
    limits.bounded(&path, &phase, handle).await
}

impl Limits {
    /// Handles one request within the in-flight bound (see the module docs); `path` names it
    /// in the log when the shutdown grace runs out, which `phase` says. (The connection's
    /// task is woken when the phase moves on, and polls the request again.)
    pub async fn bounded(
        &self,
        path: &str,
        phase: &ServerPhase,
        mut handle: Pin<&mut impl Future<Output = Response>>,
    ) -> Response {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let mut response = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "mcp-sidecar is at its limit of requests in flight (inbound.max_in_flight); retry shortly",
                Some(self.retry_after_secs),
            );
            // The body was not read; the connection cannot be reused.
            response
                .headers_mut()
                .insert(CONNECTION, http::HeaderValue::from_static("close"));
            return response;
        };
        let answered = std::future::poll_fn(|cx| {
            if phase.get() >= ABORTING {
                return Poll::Ready(None);
            }
            handle.as_mut().poll(cx).map(Some)
        })
        .await;
        let Some(response) = answered else {
            tracing::warn!(
                path,
                "shutdown grace ran out: answering a request still in flight with an error"
            );
            let mut response = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "mcp-sidecar is shutting down and did not finish this request within its shutdown grace; \
                 it may or may not have reached its target",
                None,
            );
            response
                .headers_mut()
                .insert(CONNECTION, http::HeaderValue::from_static("close"));
            return response;
        };
        if response.extensions().get::<LongLived>().is_some() {
            return response;
        }
        // The permit is released when the body has been sent.
        response.map(|body| super::framing::guarded(body, permit))
    }
}

pub async fn http_metrics(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    // Kept as the extension (shared, not copied): the series' labels copy it when needed.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("other", MatchedPath::as_str);
    let handle = std::pin::pin!(next.run(request));
    measured(&method, route, None, handle).await
}

/// Handles one request, recording it in the HTTP server metrics under `route`. `ok` keeps
/// the handle of the route's 200 series, for a caller that answers most requests so.
pub async fn measured(
    method: &http::Method,
    route: &str,
    ok: Option<&OnceLock<Histogram>>,
    handle: Pin<&mut impl Future<Output = Response>>,
) -> Response {
    let started = Instant::now();
    metrics().active_requests().inc();
    let response = handle.await;
    metrics().active_requests().dec();
    let status = response.status().as_u16();
    match ok {
        Some(ok) if status == 200 => ok
            .get_or_init(|| metrics().http_request_series(method, route, status))
            .observe(started.elapsed().as_secs_f64()),
        _ => metrics().http_request(method, route, status, started.elapsed()),
    }
    response
}
