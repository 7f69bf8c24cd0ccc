//! The HTTP surface: `POST /mcp` (path configurable), health endpoints, and the listener.

pub mod guard;
pub mod handler;
pub mod jsonrpc;
pub mod protocol;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{ALLOW, CONTENT_LENGTH};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use self::guard::HostGuard;
use self::handler::Accepts;
use self::jsonrpc::{INVALID_REQUEST, Incoming, RpcError};
use crate::Relay;
use crate::config::InboundConfig;

struct Inbound {
    relay: Arc<Relay>,
    guard: HostGuard,
    max_body_bytes: usize,
}

pub fn router(relay: Arc<Relay>, config: &InboundConfig) -> Router {
    let state = Arc::new(Inbound {
        relay,
        guard: HostGuard::new(&config.allowed_hosts, &config.allowed_origins),
        max_body_bytes: config.max_body_bytes,
    });
    Router::new()
        .route(
            &config.path,
            post(mcp_post)
                .get(method_not_allowed)
                .delete(method_not_allowed),
        )
        .route("/ping", get(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn mcp_post(State(inbound): State<Arc<Inbound>>, headers: HeaderMap, body: Body) -> Response {
    let accepts = Accepts::from_headers(&headers);
    if let Err(reason) = inbound.guard.check(&headers) {
        tracing::warn!("refused a request: {reason}");
        let error = RpcError::new(INVALID_REQUEST, reason).with_status(StatusCode::FORBIDDEN);
        return handler::respond(error.status, error.body(None), accepts);
    }
    let bytes = match read_body(body, &headers, inbound.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => return handler::respond(error.status, error.body(None), accepts),
    };
    match jsonrpc::parse(&bytes) {
        Err((error, id)) => handler::respond(error.status, error.body(id.as_deref()), accepts),
        Ok(Incoming::NoReply) => StatusCode::ACCEPTED.into_response(),
        Ok(Incoming::Request(request)) => {
            handler::handle(&inbound.relay, &headers, request, accepts).await
        }
    }
}

/// Reads the body up to the configured limit; larger bodies get 413 with a JSON-RPC error.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, RpcError> {
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
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(RpcError::new(
            INVALID_REQUEST,
            format!("could not read the request body: {e}"),
        )
        .with_status(StatusCode::BAD_REQUEST)),
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
    let ready = store.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    axum_json(
        status,
        json!({
            "ready": ready,
            "tools": catalog.len(),
            "collisions": catalog.collisions,
            "targets": store.statuses(),
        }),
    )
}

fn axum_json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
