//! The HTTP surface: `POST /mcp` (path configurable), health, readiness and metrics
//! endpoints; [`server`] is the listener under it and [`limits`] the request bounds.
//!
//! One [`Endpoint`] is built per config generation (see `live.rs`) and holds that
//! generation's relay, auth and settings; a request is handled entirely by the endpoint it
//! arrived on.

pub mod admin;
pub mod auth;
pub mod bridge;
pub mod carry;
pub mod framing;
pub mod guard;
pub mod handler;
pub mod jsonrpc;
pub mod lifecycle;
pub mod limits;
pub mod listing;
pub mod mrtr;
pub mod params;
pub mod relay;
pub mod sealed;
pub mod search;
pub mod server;
pub mod session;
pub mod subscriptions;
pub mod version;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{ACCEPT, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tower::ServiceExt;
use tracing::Instrument;

use self::auth::{AuthError, Authenticator, WELL_KNOWN};
use self::framing::{Accepts, respond};
use self::guard::HostGuard;
use self::jsonrpc::{INTERNAL_ERROR, INVALID_REQUEST, Incoming, RpcError, UNAUTHORIZED};
use crate::Relay;
use crate::config::Config;
use crate::live::Shared;
use crate::telemetry::{metrics, trace};

struct Inbound {
    relay: Arc<Relay>,
    guard: HostGuard,
    auth: Option<Arc<Authenticator>>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    shared: Arc<Shared>,
}

/// A config generation's HTTP surface. `POST` on the MCP path, nearly all of the traffic,
/// goes straight to [`serve_mcp`] under the same in-flight bound and metrics that the
/// router's layers apply: axum's routing and `from_fn` middleware cost about a tenth of a
/// relayed call's CPU (issue 15's profile). Everything else goes through the router, which
/// also serves `POST` on the MCP path the same way.
#[derive(Clone)]
pub struct Endpoint {
    mcp: Arc<McpPost>,
    router: Router,
}

struct McpPost {
    path: String,
    inbound: Arc<Inbound>,
    limits: Arc<limits::Limits>,
    /// The path's series of 200 answers in `http.server.request.duration`.
    ok: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
}

impl Endpoint {
    /// Answers `request`, which arrived from `peer` at a server in `phase`.
    pub async fn handle(
        self,
        request: http::Request<hyper::body::Incoming>,
        peer: std::net::SocketAddr,
        phase: Arc<server::ServerPhase>,
    ) -> Response {
        let mcp = &self.mcp;
        if request.method() == http::Method::POST && request.uri().path() == mcp.path {
            // The futures are pinned where they are made and passed by reference: the
            // handler's is a few KB, and each adaptor taking it by value would copy it.
            let handler = std::pin::pin!(serve_mcp(&mcp.inbound, request));
            let handled = std::pin::pin!(mcp.limits.bounded(&mcp.path, &phase, handler));
            return limits::measured(&http::Method::POST, &mcp.path, Some(&mcp.ok), handled).await;
        }
        // The peer for the admin routes (`ConnectInfo`) and the phase for the in-flight
        // bound: the MCP path above is given both directly, as an extension costs a map
        // allocated per request.
        let mut request = request.map(Body::new);
        let extensions = request.extensions_mut();
        extensions.insert(axum::extract::ConnectInfo(peer));
        extensions.insert(phase);
        self.router
            .oneshot(request)
            .await
            .unwrap_or_else(|never: std::convert::Infallible| match never {})
    }
}

/// The HTTP surface of one config generation.
pub fn endpoint(
    relay: Arc<Relay>,
    full: &Config,
    auth: Option<Arc<Authenticator>>,
    shared: Arc<Shared>,
) -> Endpoint {
    let config = &full.inbound;
    let admin_config = &full.admin;
    let metadata_routes = auth.is_some();
    let limits = limits::Limits::new(config.max_in_flight, config.retry_after_secs);
    let admin = admin_config.enabled.then(|| {
        admin::routes(relay.clone(), admin_config).route_layer(
            axum::middleware::from_fn_with_state(limits.clone(), limits::in_flight),
        )
    });
    let state = Arc::new(Inbound {
        relay,
        guard: HostGuard::new(&config.allowed_hosts, &config.allowed_origins),
        auth,
        max_body_bytes: config.max_body_bytes,
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
        shared,
    });
    let mut router = Router::new();
    if metadata_routes {
        // RFC 9728: at the root and with the resource's path appended.
        router = router
            .route(WELL_KNOWN, get(protected_resource_metadata))
            .route(
                &format!("{WELL_KNOWN}{}", config.path),
                get(protected_resource_metadata),
            );
    }
    let mcp = post(mcp_post)
        .get(mcp_get)
        .delete(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            limits.clone(),
            limits::in_flight,
        ));
    let mut router = router
        .route(&config.path, mcp)
        .route("/ping", get(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if full.telemetry.metrics {
        router = router.route(&full.telemetry.metrics_path, get(prometheus));
    }
    let router = router.with_state(state.clone());
    let router = match admin {
        Some(admin) => router.merge(admin),
        None => router,
    };
    Endpoint {
        mcp: Arc::new(McpPost {
            path: config.path.clone(),
            inbound: state,
            limits,
            ok: std::sync::OnceLock::new(),
        }),
        router: router.layer(axum::middleware::from_fn(limits::http_metrics)),
    }
}

async fn mcp_post(
    State(inbound): State<Arc<Inbound>>,
    request: axum::extract::Request,
) -> Response {
    serve_mcp(&inbound, request).await
}

/// `POST` on the MCP path: one JSON-RPC message.
async fn serve_mcp<B>(inbound: &Inbound, request: http::Request<B>) -> Response
where
    B: hyper::body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    // The request's own header map (the `HeaderMap` extractor would clone it).
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let accepts = Accepts::from_headers(&headers);
    if let Err(reason) = inbound.guard.check(&headers) {
        tracing::warn!("refused a request: {reason}");
        let error = RpcError::new(INVALID_REQUEST, reason).with_status(StatusCode::FORBIDDEN);
        return unread_body(respond(error.status, error.body(None), accepts));
    }
    let caller = match &inbound.auth {
        None => None,
        Some(auth) => match auth.authenticate(&headers).await {
            Ok(caller) => {
                metrics().auth("ok", "valid");
                Some(caller)
            }
            Err(error) => {
                let (outcome, reason) = error.metric_labels();
                metrics().auth(outcome, reason);
                return unread_body(auth_failure(auth, &headers, &error, accepts));
            }
        },
    };
    let bytes = match read_body(
        body,
        &headers,
        inbound.max_body_bytes,
        inbound.body_read_timeout,
        &inbound.shared,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(error) => {
            return unread_body(respond(error.status, error.body(None), accepts));
        }
    };
    match jsonrpc::parse(&bytes) {
        Err((error, id)) => respond(error.status, error.body(id), accepts),
        Ok(Incoming::NoReply) => StatusCode::ACCEPTED.into_response(),
        Ok(Incoming::Response) => {
            if !inbound.relay.answers.deliver(&bytes) {
                tracing::debug!("a client answered a question nobody waits for (late or unknown)");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Incoming::Request(request)) => {
            let method = request.method.clone();
            // The tool's label and span name only for tools in the catalog (bounded).
            let tool_of = |name: Option<String>| {
                let name = name.filter(|_| method == "tools/call")?;
                let catalog = inbound.relay.store.snapshot();
                let entry = catalog.tools.lookup(&name)?;
                let target = inbound.relay.targets.get(entry.target)?;
                Some((target.clone(), name))
            };
            // The span needs the name before the call; without tracing it is taken from
            // the handler, which reads the params anyway.
            let traced = trace::enabled();
            let mut tool = traced
                .then(|| tool_of(jsonrpc::param_name(request.params.as_ref())))
                .flatten();
            let span = trace::server_span(&headers, &method, tool.as_ref().map(|t| t.1.as_str()));
            let gate = handler::Gate {
                rules: inbound.auth.as_deref().map(|a| &a.rules),
                caller: caller.as_deref(),
            };
            let mut named = None;
            // Boxed: the handler's state machine is several KB, and inline it would be
            // copied again each time an enclosing future is built or moved (issue 15's
            // profile: memcpy was about a tenth of the sidecar's CPU, mostly such copies).
            let handler =
                handler::handle(&inbound.relay, &headers, request, accepts, gate, &mut named);
            let handled = Box::pin(handler).instrument(span.clone()).await;
            if !traced {
                tool = tool_of(named);
            }
            let (response, error_type) = match handled {
                Ok(answered) => answered,
                Err(scope_error) => {
                    let auth = inbound
                        .auth
                        .as_ref()
                        .expect("scope errors only arise with auth on");
                    let (outcome, reason) = scope_error.metric_labels();
                    metrics().auth(outcome, reason);
                    let response = auth_failure(auth, &headers, &scope_error, accepts);
                    let error_type = handler::status_error_type(response.status());
                    (response, error_type)
                }
            };
            let response = if method == "subscriptions/listen" {
                limits::long_lived(response, inbound.shared.draining())
            } else {
                response
            };
            if let Some(error_type) = &error_type {
                trace::record_error(&span, error_type);
            }
            metrics().server_operation(
                &method,
                tool.as_ref()
                    .map(|(target, name)| (target.name(), name.as_str())),
                error_type,
                started.elapsed(),
            );
            response
        }
    }
}

/// GET on the MCP path: the event stream of a legacy session this sidecar issued (list
/// changes, resource updates); anyone else gets 405, as a stateless endpoint answers.
async fn mcp_get(State(inbound): State<Arc<Inbound>>, headers: HeaderMap) -> Response {
    let accepts = Accepts::from_headers(&headers);
    let Some((_, session)) = session::ClientSession::of_request(&inbound.relay.sealer, &headers)
    else {
        return method_not_allowed().await;
    };
    if let Err(reason) = inbound.guard.check(&headers) {
        let error = RpcError::new(INVALID_REQUEST, reason).with_status(StatusCode::FORBIDDEN);
        return respond(error.status, error.body(None), accepts);
    }
    if let Some(auth) = &inbound.auth
        && let Err(error) = auth.authenticate(&headers).await
    {
        return auth_failure(auth, &headers, &error, accepts);
    }
    if !accepts.sse {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    // A long-lived stream: not a request in flight, and it ends when shutdown begins.
    limits::long_lived(
        subscriptions::legacy_stream(&inbound.relay, session.nonce),
        inbound.shared.draining(),
    )
}

/// Marks an answer given before the request body was read. The server then cannot reuse
/// the connection (the unread body is still on it) and closes it; saying so keeps
/// keep-alive clients from sending their next request into a closed connection.
fn unread_body(mut response: Response) -> Response {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// 401/403 with the challenge the MCP authorization spec asks for.
fn auth_failure(
    auth: &Authenticator,
    headers: &HeaderMap,
    error: &AuthError,
    accepts: Accepts,
) -> Response {
    if !matches!(error, AuthError::Missing) {
        tracing::info!("refused a caller: {}", error.message());
    }
    let body = RpcError::new(UNAUTHORIZED, error.message())
        .with_status(error.status())
        .body(None);
    let mut response = respond(error.status(), body, accepts);
    if let Ok(value) = http::HeaderValue::from_str(&auth.challenge(headers, error)) {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, value);
    }
    response
}

async fn protected_resource_metadata(
    State(inbound): State<Arc<Inbound>>,
    headers: HeaderMap,
) -> Response {
    match &inbound.auth {
        Some(auth) => axum_json(StatusCode::OK, auth.metadata(&headers)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Reads the body up to the configured limit (larger bodies get 413 with a JSON-RPC error)
/// within `timeout` (a client that stops sending mid-body gets 408). A body still arriving
/// when shutdown begins is not waited for: nothing of the request has reached a target, so
/// it is answered 503 at once (a request that arrives during `drain_delay_secs` is read as
/// usual).
async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
    shared: &Shared,
) -> Result<bytes::Bytes, RpcError>
where
    B: hyper::body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        RpcError::new(
            INVALID_REQUEST,
            format!("request body exceeds the {limit}-byte limit (inbound.max_body_bytes)"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut reading = std::pin::pin!(Limited::new(body, limit).collect());
    // The common case: the whole body came with the head. Taken without arming the read
    // timer or watching for shutdown.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(reading.as_mut().poll(cx))).await;
    let collected = match first {
        std::task::Poll::Ready(collected) => Ok(collected),
        std::task::Poll::Pending => wait_for_body(reading, timeout, &mut shared.draining()).await?,
    };
    let collected = collected.map_err(|_| {
        RpcError::new(
            INVALID_REQUEST,
            format!(
                "the request body did not arrive within {} ms (inbound.body_read_timeout_ms)",
                timeout.as_millis()
            ),
        )
        .with_status(StatusCode::REQUEST_TIMEOUT)
    })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(RpcError::new(
            INVALID_REQUEST,
            format!("could not read the request body: {e}"),
        )
        .with_status(StatusCode::BAD_REQUEST)),
    }
}

type Collecting<'a, B> = std::pin::Pin<&'a mut http_body_util::combinators::Collect<Limited<B>>>;
/// A collected body, or why it could not be read (too large, connection lost).
type CollectedBody =
    Result<http_body_util::Collected<bytes::Bytes>, Box<dyn std::error::Error + Send + Sync>>;

/// The rest of a body still arriving: within `timeout`, unless shutdown begins first
/// (`Err`: answered 503; `Ok(Err(_))`: the timeout passed).
async fn wait_for_body<B>(
    reading: Collecting<'_, B>,
    timeout: Duration,
    draining: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Result<CollectedBody, tokio::time::error::Elapsed>, RpcError>
where
    B: hyper::body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let already_draining = *draining.borrow_and_update();
    let shutdown = async move {
        if already_draining {
            std::future::pending::<()>().await;
        }
        let _ = draining.wait_for(|d| *d).await;
    };
    tokio::select! {
        collected = tokio::time::timeout(timeout, reading) => Ok(collected),
        _ = shutdown => Err(RpcError::new(
            INTERNAL_ERROR,
            "mcp-sidecar is shutting down; the request body had not arrived (nothing was relayed)",
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)),
    }
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(ALLOW, "POST")],
        "this stateless MCP endpoint accepts POST only (no SSE stream, no sessions to delete)\n",
    )
        .into_response()
}

/// AgentCore Runtime's health check.
async fn ping() -> Response {
    axum_json(StatusCode::OK, json!({ "status": "Healthy" }))
}

async fn healthz() -> Response {
    axum_json(StatusCode::OK, json!({ "status": "alive" }))
}

async fn readyz(State(inbound): State<Arc<Inbound>>) -> Response {
    let store = &inbound.relay.store;
    let catalog = store.snapshot();
    let draining = inbound.shared.is_draining();
    // Shutting down: not ready, at once, so load balancers stop sending new requests.
    let ready = store.is_ready() && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    axum_json(
        status,
        json!({
            "ready": ready,
            "draining": draining,
            "config": inbound.shared.config_status(),
            "tools": catalog.tools.len(),
            "prompts": catalog.prompts.len(),
            "resources": catalog.resources.len(),
            "normalized": catalog.normalized,
            "collisions": catalog.collisions,
            "rejected": catalog.rejected,
            "targets": store.statuses(),
        }),
    )
}

/// `GET /metrics`: Prometheus text, or OpenMetrics when the scraper asks for it.
async fn prometheus(State(inbound): State<Arc<Inbound>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let statuses = inbound.relay.store.statuses();
    let body = metrics().render(&statuses, openmetrics);
    let content_type = if openmetrics {
        crate::telemetry::metrics::OPENMETRICS_CONTENT_TYPE
    } else {
        crate::telemetry::metrics::PROMETHEUS_CONTENT_TYPE
    };
    (StatusCode::OK, [(CONTENT_TYPE, content_type)], body).into_response()
}

fn axum_json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
