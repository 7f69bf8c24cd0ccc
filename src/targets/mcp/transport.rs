//! What the MCP client needs from a transport: send a JSON-RPC message and read what the
//! server sends back for it, post a message that gets no answer, follow the messages the
//! server sends outside any request, and end a session.
//!
//! The client above ([`super::McpClient`]) owns everything MCP: the session lifecycle,
//! request ids, matching the response, notifications, server-to-client requests, retries
//! after an expired session. A transport only moves bytes and reports what its own layer
//! knows (HTTP status codes, a session the server no longer knows, a process that exited).

use std::future::Future;

use bytes::Bytes;
use http::HeaderValue;
use tokio::time::Instant;

use crate::targets::{Description, TargetError};

/// What a transport puts on every message of an established session.
#[derive(Debug)]
pub struct Wire<L> {
    /// The transport's handle on the session (streamable HTTP: the `Mcp-Session-Id` the
    /// server assigned, if it assigned one).
    pub link: L,
    /// The negotiated protocol version (streamable HTTP sends it as `MCP-Protocol-Version`).
    pub protocol_version: HeaderValue,
}

impl<L> Wire<L> {
    /// The session speaks 2026-07-28 or later: per-request `_meta`, no handshake.
    pub fn is_modern(&self) -> bool {
        self.protocol_version
            .to_str()
            .is_ok_and(crate::protocol::is_modern)
    }
}

/// One JSON-RPC request on its way out.
pub struct Outgoing<'a, L> {
    /// The session it belongs to; `None` before there is one (`initialize`).
    pub wire: Option<&'a Wire<L>>,
    /// Its JSON-RPC id (a transport may find its answer by it, even in an error body).
    pub id: u64,
    /// The method, for messages and for transports that route on it.
    pub method: &'a str,
    /// The tool or prompt name, or the resource URI, for transports that route on it
    /// (streamable HTTP's `Mcp-Name` at 2026-07-28).
    pub name: Option<&'a str>,
    /// Headers that travel with it on HTTP (`Mcp-Param-*`), name and value.
    pub headers: &'a [(String, String)],
    /// The whole JSON-RPC message.
    pub body: Bytes,
    /// When the caller gives up; retries inside the transport stay within it.
    pub deadline: Instant,
}

/// Why a stream of server-initiated messages ended.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream offers no such stream (a stateless server, or GET answered 405):
    /// stop watching.
    Unsupported,
    /// It closed; open it again.
    Closed,
    /// The server no longer knows the session: start a new one, then open it again.
    SessionGone,
}

/// The messages a server sends back for one request, in order: notifications and requests
/// tied to it, and its response.
pub trait Replies: Send {
    /// The next raw message; `None` once the answer has ended.
    fn next(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, TargetError>> + Send;
}

pub trait Transport: Send + Sync + 'static {
    /// The transport's handle on a session (see [`Wire::link`]); the default is "no
    /// session" (a 2026-07-28 upstream, or a request before `initialize`).
    type Link: Default + Send + Sync + 'static;
    type Replies: Replies;

    /// Kind, endpoint and credentials, for `check` and `/readyz`.
    fn describe(&self) -> Description;
    /// The upstream's identity for persistence.
    fn fingerprint(&self) -> String;

    /// Sends one request. Returns the link the answer carries (what `initialize` establishes)
    /// and the messages that follow. A session the server no longer knows is
    /// `FailureKind::SessionExpired`.
    fn send(
        &self,
        out: Outgoing<'_, Self::Link>,
    ) -> impl Future<Output = Result<(Self::Link, Self::Replies), TargetError>> + Send;

    /// Sends a message that gets no answer (a notification, or the client's answer to a
    /// server's request). A refusal is an error.
    fn post(
        &self,
        wire: Option<&Wire<Self::Link>>,
        body: Bytes,
        deadline: Instant,
        what: &str,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;

    /// Passes each message the server sends outside any request to `on_message`, until the
    /// stream ends.
    fn listen(
        &self,
        wire: &Wire<Self::Link>,
        on_message: &(dyn Fn(&[u8]) + Send + Sync),
    ) -> impl Future<Output = Result<StreamEnd, TargetError>> + Send;

    /// Ends the session at shutdown. Best effort.
    fn close(&self, wire: &Wire<Self::Link>) -> impl Future<Output = ()> + Send;
}
