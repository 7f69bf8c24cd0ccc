//! What the upstream announces outside any request: list changes (a sync follows) and
//! resource updates.
//!
//! A legacy session sends them on its standalone GET stream (the transport's `listen`); a
//! 2026-07-28 upstream on the response stream of a `subscriptions/listen` request, which
//! the client keeps open and reopens when it ends. Both may also arrive inside any answer,
//! where [`announced`] picks them out.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::session::Session;
use super::transport::{Outgoing, Replies, StreamEnd, Transport};
use super::{Ask, McpClient};
use crate::backoff::{Backoff, Jitter};
use crate::protocol::METHOD_NOT_FOUND;
use crate::targets::{Change, ChangeCallback, FailureKind, Reply, TargetError};

/// How long one listen request may stay open before it is renewed (a stream that quietly
/// died behind a proxy is noticed at the latest then).
const LISTEN_RENEWAL: Duration = Duration::from_secs(3600);

/// The upstream resources clients want updates of, and what the current legacy session is
/// subscribed to (a new session starts with nothing, so the set is sent again).
#[derive(Default)]
pub(super) struct ResourceInterest {
    wanted: std::sync::Mutex<BTreeSet<String>>,
    /// Wakes the `subscriptions/listen` loop to reopen with the new set.
    changed: Notify,
    subscribed: tokio::sync::Mutex<BTreeSet<String>>,
}

/// The change a server message announces, if it announces one.
pub(super) fn announced(method: &str, bytes: &[u8]) -> Option<Change> {
    match method {
        "notifications/tools/list_changed" => Some(Change::Tools),
        "notifications/prompts/list_changed" => Some(Change::Prompts),
        "notifications/resources/list_changed" => Some(Change::Resources),
        "notifications/resources/updated" => {
            #[derive(Deserialize)]
            struct Updated {
                params: UpdatedParams,
            }
            #[derive(Deserialize)]
            struct UpdatedParams {
                uri: String,
            }
            serde_json::from_slice::<Updated>(bytes)
                .ok()
                .map(|u| Change::ResourceUpdated(u.params.uri))
        }
        _ => None,
    }
}

impl<T: Transport> McpClient<T> {
    /// Follows the upstream's announcements until it cannot make any.
    pub(super) async fn watch(&self, on_change: ChangeCallback) {
        if self.on_change.set(on_change).is_err() {
            return; // already watched
        }
        let mut backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Jitter::Spread,
        );
        loop {
            match self.follow_changes().await {
                Ok(StreamEnd::Unsupported) => return,
                Ok(StreamEnd::Closed | StreamEnd::SessionGone) => backoff.reset(),
                Err(e) => tracing::debug!(target_name = %self.name, "change stream: {e}"),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Replaces the set of upstream resources clients want updates of.
    pub(super) async fn set_resource_interest(&self, uris: Vec<String>) {
        *self.resources.wanted.lock().unwrap() = uris.into_iter().collect();
        self.resources.changed.notify_waiters();
        if let Some(session) = self.current.load_full()
            && !session.wire.is_modern()
        {
            self.sync_legacy_subscriptions(&session).await;
        }
    }

    /// Brings a legacy session's `resources/subscribe` state to the wanted set.
    async fn sync_legacy_subscriptions(&self, session: &Session<T::Link>) {
        if session.capabilities["resources"]["subscribe"].as_bool() != Some(true) {
            return;
        }
        let wanted = self.resources.wanted.lock().unwrap().clone();
        let mut subscribed = self.resources.subscribed.lock().await;
        let (add, remove): (Vec<String>, Vec<String>) = (
            wanted.difference(&subscribed).cloned().collect(),
            subscribed.difference(&wanted).cloned().collect(),
        );
        for (method, uris) in [
            ("resources/subscribe", add),
            ("resources/unsubscribe", remove),
        ] {
            for uri in uris {
                let params = json!({ "uri": uri }).to_string();
                let ask = Ask {
                    method,
                    name: None,
                    params: &params,
                    meta: &Default::default(),
                    client: None,
                    notify: None,
                    headers: &[],
                    bridge: None,
                };
                let deadline = Instant::now() + self.request_timeout;
                match self.request(ask, deadline).await {
                    Ok(Reply::Result(_)) if method == "resources/subscribe" => {
                        subscribed.insert(uri);
                    }
                    Ok(Reply::Result(_)) => {
                        subscribed.remove(&uri);
                    }
                    outcome => {
                        tracing::debug!(target_name = %self.name, %uri, "{method}: {outcome:?}")
                    }
                }
            }
        }
    }

    /// One stream of announcements, on the current session's terms.
    async fn follow_changes(&self) -> Result<StreamEnd, TargetError> {
        let session = self.session().await?;
        let end = if session.wire.is_modern() {
            self.listen_modern(&session).await?
        } else {
            // A (new) session knows no subscriptions yet.
            self.resources.subscribed.lock().await.clear();
            self.sync_legacy_subscriptions(&session).await;
            let on_message = |bytes: &[u8]| self.take_announcement(bytes);
            self.transport.listen(&session.wire, &on_message).await?
        };
        if end == StreamEnd::SessionGone {
            self.drop_session(&session).await;
        }
        Ok(end)
    }

    fn take_announcement(&self, bytes: &[u8]) {
        #[derive(Deserialize)]
        struct Method<'a> {
            #[serde(borrow)]
            method: Option<std::borrow::Cow<'a, str>>,
        }
        if let Ok(Method { method: Some(m) }) = serde_json::from_slice(bytes)
            && let Some(change) = announced(&m, bytes)
            && let Some(on_change) = self.on_change.get()
        {
            on_change(change);
        }
    }

    /// `subscriptions/listen` for every list the upstream can announce changes of, and the
    /// resources clients want updates of; reopened whenever that set changes.
    async fn listen_modern(&self, session: &Session<T::Link>) -> Result<StreamEnd, TargetError> {
        loop {
            let changed = self.resources.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            tokio::select! {
                end = self.listen_once(session) => return end,
                _ = changed => {}
            }
        }
    }

    async fn listen_once(&self, session: &Session<T::Link>) -> Result<StreamEnd, TargetError> {
        let mut filter = json!({
            "toolsListChanged": true,
            "promptsListChanged": session.offers("prompts"),
            "resourcesListChanged": session.offers("resources"),
        });
        let wanted = self.resources.wanted.lock().unwrap().clone();
        if !wanted.is_empty() {
            filter["resourceSubscriptions"] = json!(wanted);
        }
        let params = json!({ "notifications": filter }).to_string();
        let params = self.compose_params(&params, &session.wire, None, &Default::default());
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"subscriptions/listen","params":{params}}}"#
        );
        let deadline = Instant::now() + LISTEN_RENEWAL;
        let (_, mut replies) = self
            .transport
            .send(Outgoing {
                wire: Some(&session.wire),
                id,
                method: "subscriptions/listen",
                name: None,
                headers: &[],
                body: body.into(),
                deadline,
            })
            .await?;
        let renewal = tokio::time::sleep_until(deadline);
        tokio::pin!(renewal);
        loop {
            let message = tokio::select! {
                message = replies.next() => message?,
                _ = &mut renewal => return Ok(StreamEnd::Closed),
            };
            let Some(message) = message else {
                return Ok(StreamEnd::Closed);
            };
            if let Some(code) = error_code(&message, id) {
                // An upstream that cannot listen (or not to these lists) has nothing to say.
                return if code == METHOD_NOT_FOUND {
                    Ok(StreamEnd::Unsupported)
                } else {
                    Err(self.error(
                        FailureKind::Rejected,
                        format!("subscriptions/listen answered error {code}"),
                    ))
                };
            }
            self.take_announcement(&message);
        }
    }
}

/// The code of a JSON-RPC error answering request `id`.
fn error_code(message: &[u8], id: u64) -> Option<i64> {
    #[derive(Deserialize)]
    struct Answer {
        id: Option<serde_json::Value>,
        error: Option<Code>,
    }
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    let answer: Answer = serde_json::from_slice(message).ok()?;
    (answer.id.as_ref()?.as_u64() == Some(id))
        .then_some(answer.error?)
        .map(|e| e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_recognized() {
        assert_eq!(
            announced("notifications/tools/list_changed", b"{}"),
            Some(Change::Tools)
        );
        let updated =
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://b"}}"#;
        assert_eq!(
            announced("notifications/resources/updated", updated),
            Some(Change::ResourceUpdated("a://b".into()))
        );
        assert_eq!(announced("notifications/progress", b"{}"), None);
        assert_eq!(
            error_code(
                br#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"x"}}"#,
                4
            ),
            Some(-32601)
        );
        assert_eq!(
            error_code(br#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 4),
            None
        );
    }
}
