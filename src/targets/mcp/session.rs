//! Agreeing on a protocol with the upstream: the newest version both sides speak.
//!
//! In `auto` mode the client first probes with `server/discover` at 2026-07-28 (modern:
//! stateless, every request carries its version and the caller's capabilities in `_meta`).
//! A server that answers it with 2026-07-28 among its versions is spoken to that way; any
//! other answer that is not a transport failure (HTTP 400/404/405 without a modern error, a
//! JSON-RPC error such as -32601) marks a legacy server, which gets an `initialize`
//! handshake at the newest version with one (the spec's fallback rule, "Backward
//! compatibility" in 2026-07-28's streamable HTTP page). A target may also pin a version.
//!
//! The result is cached as the session: a legacy one until the server forgets it, a modern
//! one until the server stops speaking 2026-07-28 (then the next request negotiates anew).

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::{Instant, timeout_at};

use super::McpClient;
use super::transport::{Transport, Wire};
use crate::protocol::{
    LATEST_WITH_INITIALIZE, META_SERVER_INFO, STATELESS_SINCE, is_handshake_version, is_modern,
};
use crate::targets::{FailureKind, Reply, TargetError};

/// Which protocol versions a target may be spoken to in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// The newest the upstream speaks (`server/discover`, else `initialize`).
    Auto,
    /// Exactly this version (`initialize` offers it; a modern one needs `server/discover`).
    Pinned(&'static str),
}

impl Negotiation {
    /// From a target's `protocol_version` setting (`None` or `"auto"`: [`Negotiation::Auto`]).
    pub fn from_config(setting: Option<&str>) -> Self {
        match setting {
            None | Some("auto") => Negotiation::Auto,
            Some(v) => crate::protocol::SUPPORTED_VERSIONS
                .iter()
                .find(|s| **s == v)
                .map_or(Negotiation::Auto, |s| Negotiation::Pinned(s)),
        }
    }
}

/// One upstream session, as negotiated.
#[derive(Debug)]
pub(super) struct Session<L> {
    pub wire: Wire<L>,
    pub instructions: Option<String>,
    pub server_info: Option<Value>,
    pub capabilities: Value,
}

impl<L> Session<L> {
    pub fn offers(&self, capability: &str) -> bool {
        self.capabilities
            .get(capability)
            .is_some_and(|c| !c.is_null())
    }
}

fn header_value(version: &str) -> HeaderValue {
    HeaderValue::from_str(version).expect("protocol versions are header-safe")
}

impl<T: Transport> McpClient<T> {
    /// Agrees on a version with the upstream and opens a session in it.
    pub(super) async fn negotiate(&self) -> Result<Arc<Session<T::Link>>, TargetError> {
        match self.negotiation {
            Negotiation::Pinned(version) if is_modern(version) => {
                self.discover().await?.ok_or_else(|| {
                    self.error(
                        FailureKind::Rejected,
                        format!(
                            "protocol_version is pinned to {version}, but the upstream does not answer server/discover at it"
                        ),
                    )
                })
            }
            Negotiation::Pinned(version) => self.initialize(version).await,
            Negotiation::Auto => match self.discover().await? {
                Some(session) => Ok(session),
                None => self.initialize(LATEST_WITH_INITIALIZE).await,
            },
        }
    }

    /// `server/discover` at 2026-07-28. `Ok(None)`: the upstream is a legacy server.
    async fn discover(&self) -> Result<Option<Arc<Session<T::Link>>>, TargetError> {
        let probe = Wire {
            link: T::Link::default(),
            protocol_version: header_value(STATELESS_SINCE),
        };
        let deadline = Instant::now() + self.request_timeout;
        let params = self.compose_params("{}", &probe, None, &Map::new());
        let reply = match self
            .exchange(
                Some(&probe),
                ("server/discover", None, &[]),
                &params,
                None,
                deadline,
            )
            .await
        {
            Ok((reply, _)) => reply,
            Err(e) if is_legacy_refusal(&e) => {
                tracing::debug!(target_name = %self.name, "server/discover refused ({e}); speaking a legacy version");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let result = match reply {
            Reply::Result(result) => result,
            Reply::Error(e) => {
                tracing::debug!(target_name = %self.name, "server/discover answered {e}; speaking a legacy version");
                return Ok(None);
            }
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct DiscoverResult {
            #[serde(default)]
            supported_versions: Vec<String>,
            #[serde(default)]
            capabilities: Value,
            #[serde(default)]
            instructions: Option<String>,
            #[serde(default, rename = "_meta")]
            meta: Map<String, Value>,
        }
        let discovered: DiscoverResult = serde_json::from_str(result.get()).map_err(|e| {
            self.error(
                FailureKind::BadResponse,
                format!("server/discover result is not valid: {e}"),
            )
        })?;
        if !discovered
            .supported_versions
            .iter()
            .any(|v| v == STATELESS_SINCE)
        {
            return Ok(None);
        }
        tracing::info!(target_name = %self.name, protocol = STATELESS_SINCE, "upstream speaks the stateless protocol");
        Ok(Some(Arc::new(Session {
            wire: probe,
            instructions: discovered.instructions,
            server_info: discovered.meta.get(META_SERVER_INFO).cloned(),
            capabilities: discovered.capabilities,
        })))
    }

    /// The `initialize` handshake, offering `version`.
    async fn initialize(&self, version: &str) -> Result<Arc<Session<T::Link>>, TargetError> {
        // The session is shared by every caller; declaring what some callers can answer
        // lets the upstream ask, and the relay carries each question to the caller of that
        // call (or refuses it there). Roots are not declared: servers ask for them outside
        // any call, where there is no caller to carry them to.
        let params = json!({
            "protocolVersion": version,
            "capabilities": { "sampling": {}, "elicitation": {} },
            "clientInfo": client_info(),
        })
        .to_string();
        let deadline = Instant::now() + self.request_timeout;
        let (reply, link) = self
            .exchange(None, ("initialize", None, &[]), &params, None, deadline)
            .await?;
        let result = match reply {
            Reply::Result(r) => r,
            Reply::Error(e) => {
                return Err(self.error(FailureKind::Rejected, format!("initialize failed: {e}")));
            }
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InitializeResult {
            protocol_version: String,
            #[serde(default)]
            instructions: Option<String>,
            #[serde(default)]
            server_info: Option<Value>,
            #[serde(default)]
            capabilities: Value,
        }
        let init: InitializeResult = serde_json::from_str(result.get()).map_err(|e| {
            self.error(
                FailureKind::BadResponse,
                format!("initialize result is not valid: {e}"),
            )
        })?;
        if !is_handshake_version(&init.protocol_version) {
            return Err(self.error(
                FailureKind::BadResponse,
                format!(
                    "negotiated protocol version {} is not supported",
                    init.protocol_version
                ),
            ));
        }
        let session = Arc::new(Session {
            wire: Wire {
                link,
                protocol_version: header_value(&init.protocol_version),
            },
            instructions: init.instructions,
            server_info: init.server_info,
            capabilities: init.capabilities,
        });
        let initialized =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        timeout_at(
            deadline,
            self.transport.post(
                Some(&session.wire),
                initialized,
                deadline,
                "notifications/initialized",
            ),
        )
        .await
        .map_err(|_| {
            self.error(
                FailureKind::Timeout,
                "no answer to notifications/initialized",
            )
        })??;
        tracing::info!(target_name = %self.name, protocol = %init.protocol_version,
            "initialized upstream session");
        Ok(session)
    }
}

/// What the sidecar says it is, to upstreams.
pub(super) fn client_info() -> Value {
    json!({ "name": "mcp-sidecar", "version": env!("CARGO_PKG_VERSION") })
}

/// A failure of the discovery probe that says "legacy server", not "down": an HTTP client
/// error other than credentials and throttling (a legacy server answers a request without
/// its session with 400, or has no such endpoint shape), or an answer that is not the
/// response (e.g. a legacy error body with another id).
fn is_legacy_refusal(e: &TargetError) -> bool {
    match e.kind {
        FailureKind::HttpStatus(status) => {
            (400..500).contains(&status) && !matches!(status, 401 | 403 | 407 | 408 | 429)
        }
        FailureKind::BadResponse | FailureKind::Rejected | FailureKind::SessionExpired => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_come_from_the_supported_list() {
        assert_eq!(Negotiation::from_config(None), Negotiation::Auto);
        assert_eq!(Negotiation::from_config(Some("auto")), Negotiation::Auto);
        assert_eq!(
            Negotiation::from_config(Some("2025-06-18")),
            Negotiation::Pinned("2025-06-18")
        );
    }

    #[test]
    fn legacy_refusals_are_told_from_outages() {
        let e = |kind| TargetError::new("t", kind, "x");
        assert!(is_legacy_refusal(&e(FailureKind::HttpStatus(400))));
        assert!(is_legacy_refusal(&e(FailureKind::HttpStatus(405))));
        assert!(!is_legacy_refusal(&e(FailureKind::HttpStatus(401))));
        assert!(!is_legacy_refusal(&e(FailureKind::HttpStatus(503))));
        assert!(!is_legacy_refusal(&e(FailureKind::Unreachable)));
        assert!(!is_legacy_refusal(&e(FailureKind::Timeout)));
    }
}
