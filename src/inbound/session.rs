//! Sessions for legacy clients (before 2026-07-28), kept stateless.
//!
//! A legacy client declares what it can answer mid-call (sampling, elicitation, roots) once,
//! in `initialize`, and then only sends its `Mcp-Session-Id`. The sidecar answers
//! `initialize` itself and keeps no session table, so when a client declares such
//! capabilities the session id it gets *is* the declaration: sealed (see
//! [`super::sealed`]) so any replica with the same state key can read it back and trust it.
//! A client that declares nothing gets no session id, exactly as before.
//!
//! What a session may hold beyond that, the resources it subscribed to for its GET stream,
//! lives in this process only ([`SessionSubscriptions`], bounded and expiring): behind a
//! load balancer, legacy resource subscriptions need stickiness; 2026-07-28 clients, whose
//! subscriptions are one request, do not.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sealed::Sealer;
use super::subscriptions::Watching;
use crate::protocol::SESSION_HEADER;

const PURPOSE: &str = "session";
/// How long a session id stays valid (a client past it simply initializes again).
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// What a legacy client may declare that the relay can carry to it mid-call.
const BRIDGED: &[&str] = &["sampling", "elicitation", "roots"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientSession {
    /// The capabilities the client declared in `initialize` that the relay can bridge.
    #[serde(rename = "c")]
    pub capabilities: Map<String, Value>,
    /// Makes every session id unique (and the key of its subscriptions).
    #[serde(rename = "n")]
    pub nonce: String,
}

impl ClientSession {
    /// A session for `initialize` params declaring `capabilities`, if it declared any the
    /// relay can bridge; its sealed id goes into the answer's `Mcp-Session-Id`.
    pub fn mint(sealer: &Sealer, capabilities: Option<&Value>) -> Option<String> {
        let declared: Map<String, Value> = capabilities?
            .as_object()?
            .iter()
            .filter(|(k, _)| BRIDGED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if declared.is_empty() {
            return None;
        }
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let session = ClientSession {
            capabilities: declared,
            nonce: hex::encode(nonce),
        };
        Some(sealer.seal(PURPOSE, LIFETIME, &session))
    }

    /// The session a request's `Mcp-Session-Id` names, if it is one this sidecar (or a
    /// replica with its key) issued. Any other id is ignored: AgentCore Runtime adds ids
    /// of its own.
    pub fn of_request(sealer: &Sealer, headers: &HeaderMap) -> Option<(String, Self)> {
        let id = headers.get(SESSION_HEADER)?.to_str().ok()?;
        let session = sealer.open(PURPOSE, id).ok()?;
        Some((id.to_string(), session))
    }
}

/// The resources each legacy session subscribed to, with the upstream subscriptions they
/// hold (dropped with the entry).
pub struct SessionSubscriptions {
    sessions: moka::sync::Cache<String, Arc<Mutex<Subscribed>>>,
}

#[derive(Default)]
pub struct Subscribed {
    pub uris: BTreeSet<String>,
    pub watching: Vec<(String, Watching)>,
}

impl Default for SessionSubscriptions {
    fn default() -> Self {
        Self {
            sessions: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl SessionSubscriptions {
    pub fn of(&self, nonce: &str) -> Arc<Mutex<Subscribed>> {
        self.sessions.get_with(nonce.to_string(), Default::default)
    }

    pub fn get(&self, nonce: &str) -> Option<Arc<Mutex<Subscribed>>> {
        self.sessions.get(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_bridgeable_declarations_get_a_session_that_reads_back() {
        let sealer = Sealer::new(None);
        assert!(ClientSession::mint(&sealer, None).is_none());
        assert!(ClientSession::mint(&sealer, Some(&json!({"experimental": {}}))).is_none());
        let id = ClientSession::mint(&sealer, Some(&json!({"elicitation": {"form": {}}, "x": 1})))
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(SESSION_HEADER, id.parse().unwrap());
        let (read, session) = ClientSession::of_request(&sealer, &headers).unwrap();
        assert_eq!(read, id);
        assert_eq!(
            Value::Object(session.capabilities),
            json!({"elicitation": {"form": {}}})
        );
        headers.insert(SESSION_HEADER, "runtime-added-id".parse().unwrap());
        assert!(ClientSession::of_request(&sealer, &headers).is_none());
    }
}
