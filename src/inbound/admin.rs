//! Admin endpoints on the inbound listener, off unless `[admin] enabled = true`:
//! `POST /admin/sync[?target=NAME]` syncs one target or all now (coalescing with any sync
//! already running) and `GET /admin/catalog` shows status and the upstreams' unmodified
//! definitions. With `[admin] token` set, callers need `Authorization: Bearer <token>`;
//! without one, only loopback callers are admitted.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use crate::Relay;
use crate::config::AdminConfig;

struct Admin {
    relay: Arc<Relay>,
    token: Option<String>,
}

pub fn routes(relay: Arc<Relay>, config: &AdminConfig) -> Router {
    let state = Arc::new(Admin {
        relay,
        token: config.token.as_ref().map(|t| t.expose().to_string()),
    });
    Router::new()
        .route("/admin/sync", post(sync))
        .route("/admin/catalog", get(catalog))
        .with_state(state)
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

impl Admin {
    /// The refusal to send, if this caller may not use the admin endpoints.
    fn refusal(&self, peer: &SocketAddr, headers: &HeaderMap) -> Option<Response> {
        let admitted = match &self.token {
            Some(token) => headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
            None => peer.ip().is_loopback(),
        };
        if admitted {
            return None;
        }
        let why = if self.token.is_some() {
            "admin token required"
        } else {
            "admin endpoints answer loopback callers only"
        };
        Some(json_response(
            StatusCode::FORBIDDEN,
            json!({ "error": why }),
        ))
    }
}

/// Compares secrets without an early exit that would leak a matching prefix's length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn sync(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(refused) = admin.refusal(&peer, &headers) {
        return refused;
    }
    let store = &admin.relay.store;
    let wanted = uri
        .query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "target"))
        .map(|(_, v)| v.into_owned());
    let indexes: Vec<usize> = match &wanted {
        None => (0..admin.relay.syncer.len()).collect(),
        Some(name) => match store.target_index(name) {
            Some(i) => vec![i],
            None => {
                return json_response(
                    StatusCode::NOT_FOUND,
                    json!({ "error": format!("no target named '{name}'") }),
                );
            }
        },
    };
    let syncs = indexes.iter().map(|&i| admin.relay.syncer.sync_now(i));
    let outcomes = futures_util::future::join_all(syncs).await;
    let names: Vec<&str> = store.target_names().collect();
    let results: Vec<Value> = indexes
        .iter()
        .zip(outcomes)
        .map(|(&i, outcome)| match outcome {
            Ok(()) => json!({ "target": names[i], "ok": true }),
            Err(e) => json!({ "target": names[i], "ok": false, "error": e }),
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "results": results, "targets": store.statuses() }),
    )
}

async fn catalog(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = admin.refusal(&peer, &headers) {
        return refused;
    }
    let store = &admin.relay.store;
    let snapshot = store.snapshot();
    let raw: serde_json::Map<String, Value> = store
        .target_names()
        .enumerate()
        .map(|(i, name)| {
            (
                name.to_string(),
                serde_json::to_value(store.raw_listing(i).as_deref()).unwrap_or(Value::Null),
            )
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "targets": store.statuses(),
            "collisions": snapshot.collisions,
            "normalized": snapshot.normalized,
            "upstream_definitions": raw,
        }),
    )
}
