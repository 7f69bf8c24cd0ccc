//! Change notifications for clients: `subscriptions/listen` (2026-07-28), merged across
//! targets.
//!
//! The answer is one long event stream. Its first message acknowledges the filter actually
//! accepted (list kinds the catalog has, resource URIs some target serves); every message
//! carries `_meta["io.modelcontextprotocol/subscriptionId"]`, the listen request's id; only
//! the requested kinds are sent. List changes come from the sidecar's own catalog (a
//! published snapshot whose listing differs, or a sync that followed an upstream's
//! announcement: [`crate::catalog::events`]); resource updates come from the upstream that
//! owns the URI, which the sidecar subscribes to for as long as some client listens
//! ([`ResourceWatch`]). The client ends the subscription by closing the stream.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::framing::{sse_frame, sse_response};
use super::handler::{Answer, Call, Failure};
use super::jsonrpc::{INVALID_PARAMS, INVALID_REQUEST, RpcError};
use crate::Relay;
use crate::catalog::CatalogEvent;
use crate::protocol::META_SUBSCRIPTION_ID;

/// An SSE comment this often keeps intermediaries from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(25);

/// The notifications a client opts in to (`SubscriptionFilter`).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "is_false")]
    pub tools_list_changed: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub prompts_list_changed: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub resources_list_changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subscriptions: Option<BTreeSet<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Filter {
    /// Whether `event` is one the client asked for; the notification to send if so.
    pub fn notification(&self, event: &CatalogEvent) -> Option<Value> {
        let method = match event {
            CatalogEvent::ToolsChanged if self.tools_list_changed => {
                "notifications/tools/list_changed"
            }
            CatalogEvent::PromptsChanged if self.prompts_list_changed => {
                "notifications/prompts/list_changed"
            }
            CatalogEvent::ResourcesChanged if self.resources_list_changed => {
                "notifications/resources/list_changed"
            }
            CatalogEvent::ResourceUpdated(uri)
                if self
                    .resource_subscriptions
                    .as_ref()
                    .is_some_and(|s| s.contains(uri)) =>
            {
                return Some(json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/resources/updated",
                    "params": { "uri": uri },
                }));
            }
            _ => return None,
        };
        Some(json!({ "jsonrpc": "2.0", "method": method, "params": {} }))
    }
}

/// `subscriptions/listen`.
pub async fn listen(call: Call<'_>) -> Result<Answer, Failure> {
    if !call.accepts.sse {
        return Err(RpcError::new(
            INVALID_REQUEST,
            "subscriptions/listen answers with an event stream: accept text/event-stream",
        )
        .with_status(StatusCode::NOT_ACCEPTABLE)
        .into());
    }
    let requested: Filter = call
        .params
        .members
        .get("notifications")
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map_err(|e| RpcError::new(INVALID_PARAMS, format!("`notifications`: {e}")))?
        .ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                "subscriptions/listen needs `params.notifications`",
            )
        })?;
    let relay = call.relay;
    let catalog = relay.store.snapshot();
    let mut routed = Vec::new();
    let accepted = Filter {
        tools_list_changed: requested.tools_list_changed,
        prompts_list_changed: requested.prompts_list_changed && catalog.offers.prompts,
        resources_list_changed: requested.resources_list_changed && catalog.offers.resources,
        resource_subscriptions: requested.resource_subscriptions.map(|uris| {
            uris.into_iter()
                .filter(|uri| match super::relay::route(relay, &catalog, uri) {
                    Some(route) => {
                        routed.push(route);
                        true
                    }
                    None => false,
                })
                .collect()
        }),
    };
    let subscription = call.id.to_owned();
    let watch = relay.resources.watch(relay, routed).await;
    let events = relay.store.events.subscribe();
    let ack = tagged(
        json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": { "notifications": accepted },
        }),
        &subscription,
    );
    let state = (events, accepted, subscription, watch);
    let rest = futures_util::stream::unfold(state, |(mut events, filter, id, watch)| async move {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some((Bytes::from_static(b":\n\n"), (events, filter, id, watch)));
                }
            };
            let notifications: Vec<Value> = match event {
                Ok(event) => filter.notification(&event).into_iter().collect(),
                // Fell behind: some changes were missed, so say every list may have changed.
                Err(RecvError::Lagged(_)) => [
                    CatalogEvent::ToolsChanged,
                    CatalogEvent::PromptsChanged,
                    CatalogEvent::ResourcesChanged,
                ]
                .iter()
                .filter_map(|e| filter.notification(e))
                .collect(),
                Err(RecvError::Closed) => return None,
            };
            if notifications.is_empty() {
                continue;
            }
            let frames: Vec<u8> = notifications
                .into_iter()
                .flat_map(|n| sse_frame(&tagged(n, &id)).to_vec())
                .collect();
            return Some((Bytes::from(frames), (events, filter, id, watch)));
        }
    });
    let stream = futures_util::stream::once(async move { sse_frame(&ack) })
        .chain(rest)
        .map(Ok::<_, Infallible>);
    Ok(Answer::Stream(sse_response(Body::from_stream(stream))))
}

/// A notification with the subscription's id in `params._meta`.
fn tagged(mut notification: Value, subscription: &RawValue) -> Vec<u8> {
    let id: Value = serde_json::from_str(subscription.get()).unwrap_or(Value::Null);
    notification["params"]["_meta"] = json!({ META_SUBSCRIPTION_ID: id });
    serde_json::to_vec(&notification).expect("a JSON value serializes")
}

/// Which upstream resources some client wants updates of, counted per target, so each
/// target is subscribed upstream while anyone listens and unsubscribed after.
#[derive(Default)]
pub struct ResourceWatch {
    counts: Mutex<HashMap<(usize, String), usize>>,
}

/// Holds a listener's resource subscriptions; dropping it releases them.
pub struct Watching {
    relay_targets: Vec<Arc<dyn crate::targets::Target>>,
    watch: Arc<ResourceWatch>,
    routes: Vec<(usize, String)>,
}

impl ResourceWatch {
    /// Adds `routes` (target, upstream URI) and tells the targets whose set grew.
    pub async fn watch(self: &Arc<Self>, relay: &Relay, routes: Vec<(usize, String)>) -> Watching {
        let changed = {
            let mut counts = self.counts.lock().unwrap();
            let mut changed = BTreeSet::new();
            for route in &routes {
                let count = counts.entry(route.clone()).or_insert(0);
                *count += 1;
                if *count == 1 {
                    changed.insert(route.0);
                }
            }
            changed
        };
        self.tell(&relay.targets, changed).await;
        Watching {
            relay_targets: relay.targets.clone(),
            watch: self.clone(),
            routes,
        }
    }

    fn uris_of(&self, target: usize) -> Vec<String> {
        self.counts
            .lock()
            .unwrap()
            .keys()
            .filter(|(t, _)| *t == target)
            .map(|(_, uri)| uri.clone())
            .collect()
    }

    async fn tell(&self, targets: &[Arc<dyn crate::targets::Target>], changed: BTreeSet<usize>) {
        for index in changed {
            targets[index].watch_resources(self.uris_of(index)).await;
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if self.routes.is_empty() {
            return;
        }
        let mut changed = BTreeSet::new();
        {
            let mut counts = self.watch.counts.lock().unwrap();
            for route in &self.routes {
                if let Some(count) = counts.get_mut(route) {
                    *count -= 1;
                    if *count == 0 {
                        counts.remove(route);
                        changed.insert(route.0);
                    }
                }
            }
        }
        let (watch, targets) = (self.watch.clone(), self.relay_targets.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { watch.tell(&targets, changed).await });
        }
    }
}

/// Legacy `resources/subscribe` and `resources/unsubscribe`: `{}` once the URI is known to
/// be served. A caller with a session gets the resource's updates on its GET stream (the
/// upstream is subscribed while anyone wants them); without one there is no stream to
/// carry them, and the subscription has no effect beyond the answer.
pub async fn legacy_subscribe(call: Call<'_>) -> Result<Answer, Failure> {
    let uri = call.params.string("uri")?.ok_or_else(|| {
        RpcError::new(
            INVALID_PARAMS,
            format!("{} needs `params.uri`", call.method),
        )
    })?;
    let relay = call.relay;
    let route = super::relay::route(relay, &relay.store.snapshot(), &uri).ok_or_else(|| {
        RpcError::new(
            super::jsonrpc::RESOURCE_NOT_FOUND,
            format!("resource `{uri}` is not served by any target"),
        )
        .with_data(json!({ "uri": uri }))
    })?;
    if let Some((_, session)) = &call.session {
        let entry = relay.sessions.of(&session.nonce);
        if call.method == "resources/subscribe" {
            let fresh = entry.lock().unwrap().uris.insert(uri.clone());
            if fresh {
                let watching = relay.resources.watch(relay, vec![route]).await;
                entry.lock().unwrap().watching.push((uri, watching));
            }
        } else {
            let mut subscribed = entry.lock().unwrap();
            subscribed.uris.remove(&uri);
            subscribed.watching.retain(|(u, _)| *u != uri);
        }
    }
    Ok(Answer::ok(super::jsonrpc::result_body(call.id, "{}")))
}

/// The GET stream of a legacy session: list changes, and updates of the resources the
/// session subscribed to.
pub fn legacy_stream(relay: &Relay, nonce: String) -> axum::response::Response {
    let events = relay.store.events.subscribe();
    let sessions = relay.sessions.clone();
    let stream = futures_util::stream::unfold(events, move |mut events| {
        let (sessions, nonce) = (sessions.clone(), nonce.clone());
        async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    _ = tokio::time::sleep(KEEP_ALIVE) => {
                        return Some((Bytes::from_static(b":\n\n"), events));
                    }
                };
                let subscribed = |uri: &str| {
                    sessions
                        .get(&nonce)
                        .is_some_and(|s| s.lock().unwrap().uris.contains(uri))
                };
                let all = Filter {
                    tools_list_changed: true,
                    prompts_list_changed: true,
                    resources_list_changed: true,
                    resource_subscriptions: None,
                };
                let notification = match event {
                    Ok(CatalogEvent::ResourceUpdated(uri)) if subscribed(&uri) => Some(json!({
                        "jsonrpc": "2.0",
                        "method": "notifications/resources/updated",
                        "params": { "uri": uri },
                    })),
                    Ok(event) => all.notification(&event),
                    Err(RecvError::Lagged(_)) => all.notification(&CatalogEvent::ToolsChanged),
                    Err(RecvError::Closed) => return None,
                };
                if let Some(n) = notification {
                    let frame = sse_frame(&serde_json::to_vec(&n).expect("serializes"));
                    return Some((frame, events));
                }
            }
        }
    });
    sse_response(Body::from_stream(stream.map(Ok::<_, Infallible>)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requested_kinds_pass_the_filter() {
        let filter = Filter {
            prompts_list_changed: true,
            resource_subscriptions: Some(["a://1".to_string()].into()),
            ..Default::default()
        };
        assert!(filter.notification(&CatalogEvent::ToolsChanged).is_none());
        let n = filter.notification(&CatalogEvent::PromptsChanged).unwrap();
        assert_eq!(n["method"], "notifications/prompts/list_changed");
        assert!(
            filter
                .notification(&CatalogEvent::ResourceUpdated("a://2".into()))
                .is_none()
        );
        let n = filter
            .notification(&CatalogEvent::ResourceUpdated("a://1".into()))
            .unwrap();
        assert_eq!(n["params"]["uri"], "a://1");
        let id = RawValue::from_string("7".into()).unwrap();
        let tagged: Value = serde_json::from_slice(&tagged(n, &id)).unwrap();
        assert_eq!(tagged["params"]["_meta"][META_SUBSCRIPTION_ID], 7);
        assert_eq!(tagged["params"]["uri"], "a://1");
        let echoed = serde_json::to_value(&filter).unwrap();
        assert_eq!(
            echoed,
            json!({"promptsListChanged": true, "resourceSubscriptions": ["a://1"]})
        );
    }
}
