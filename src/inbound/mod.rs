//! The HTTP surface: `POST /mcp` (path configurable), health endpoints, and the listener.

pub mod admin;
pub mod auth;
pub mod bridge;
pub mod carry;
pub mod framing;
pub mod guard;
pub mod handler;
pub mod jsonrpc;
pub mod lifecycle;
pub mod listing;
pub mod mrtr;
pub mod params;
pub mod relay;
pub mod sealed;
pub mod search;
pub mod session;
pub mod subscriptions;
pub mod version;

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

use self::auth::{AuthError, Authenticator, WELL_KNOWN};
use self::framing::{Accepts, respond};
use self::guard::HostGuard;
use self::jsonrpc::{INVALID_REQUEST, Incoming, RpcError, UNAUTHORIZED};
use crate::Relay;
use crate::config::{AdminConfig, InboundConfig};

struct Inbound {
    relay: Arc<Relay>,
    guard: HostGuard,
    auth: Option<Arc<Authenticator>>,
    max_body_bytes: usize,
}

pub fn router(
    relay: Arc<Relay>,
    config: &InboundConfig,
    admin_config: &AdminConfig,
    auth: Option<Arc<Authenticator>>,
) -> Router {
    let metadata_routes = auth.is_some();
    let admin = admin_config
        .enabled
        .then(|| admin::routes(relay.clone(), admin_config));
    let state = Arc::new(Inbound {
        relay,
        guard: HostGuard::new(&config.allowed_hosts, &config.allowed_origins),
        auth,
        max_body_bytes: config.max_body_bytes,
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
    let router = router
        .route(
            &config.path,
            post(mcp_post).get(mcp_get).delete(method_not_allowed),
        )
        .route("/ping", get(ping))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    match admin {
        Some(admin) => router.merge(admin),
        None => router,
    }
}

async fn mcp_post(State(inbound): State<Arc<Inbound>>, headers: HeaderMap, body: Body) -> Response {
    let accepts = Accepts::from_headers(&headers);
    if let Err(reason) = inbound.guard.check(&headers) {
        tracing::warn!("refused a request: {reason}");
        let error = RpcError::new(INVALID_REQUEST, reason).with_status(StatusCode::FORBIDDEN);
        return unread_body(respond(error.status, error.body(None), accepts));
    }
    let caller = match &inbound.auth {
        None => None,
        Some(auth) => match auth.authenticate(&headers).await {
            Ok(caller) => Some(caller),
            Err(error) => return unread_body(auth_failure(auth, &headers, &error, accepts)),
        },
    };
    let bytes = match read_body(body, &headers, inbound.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return unread_body(respond(error.status, error.body(None), accepts));
        }
    };
    match jsonrpc::parse(&bytes) {
        Err((error, id)) => respond(error.status, error.body(id.as_deref()), accepts),
        Ok(Incoming::NoReply) => StatusCode::ACCEPTED.into_response(),
        Ok(Incoming::Response) => {
            if !inbound.relay.answers.deliver(&bytes) {
                tracing::debug!("a client answered a question nobody waits for (late or unknown)");
            }
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Incoming::Request(request)) => {
            let gate = handler::Gate {
                rules: inbound.auth.as_deref().map(|a| &a.rules),
                caller: caller.as_deref(),
            };
            match handler::handle(&inbound.relay, &headers, request, accepts, gate).await {
                Ok(response) => response,
                Err(scope_error) => {
                    let auth = inbound
                        .auth
                        .as_ref()
                        .expect("scope errors only arise with auth on");
                    auth_failure(auth, &headers, &scope_error, accepts)
                }
            }
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
    subscriptions::legacy_stream(&inbound.relay, session.nonce)
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

fn axum_json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
