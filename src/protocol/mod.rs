//! MCP protocol facts both sides of the relay use: versions, header names, `_meta` keys and
//! the notifications that mean "list again". One place, so the inbound endpoint and the
//! upstream clients never disagree about them.

use std::borrow::Cow;

use http::HeaderName;

/// Every version the sidecar speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];
/// The newest version that still has an `initialize` handshake.
pub const LATEST_WITH_INITIALIZE: &str = "2025-11-25";
/// The first stateless version (`server/discover`, per-request `_meta`).
pub const STATELESS_SINCE: &str = "2026-07-28";

/// Versions an upstream may choose in its `initialize` answer (every handshake version).
pub fn is_handshake_version(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version) && version < STATELESS_SINCE
}

/// Parses one JSON-RPC message from bytes with a single UTF-8 check for the whole message:
/// serde_json's byte reader checks each string and raw value apart, which for the short
/// strings of a message costs more than one pass over all of it. Invalid UTF-8 is left to
/// the byte reader, so its error (kind and position) is the one reported.
pub fn parse_message<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// A JSON string borrowed from the message when it has no escapes, decoded otherwise.
/// serde's own `Cow<str>` always copies, and `#[serde(borrow)]` cannot reach one inside an
/// `Option` or a map key, where the envelope's `jsonrpc` and `method` and the params' keys
/// are.
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }

            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Whether `version` is a modern (per-request `_meta`, no handshake) version.
pub fn is_modern(version: &str) -> bool {
    version >= STATELESS_SINCE
}

/// `_meta` keys a 2026-07-28 request carries (SEP-2575): its protocol version, who sends it,
/// what it can answer mid-call, and the log level it wants (no logs without one).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of a `server/discover` result that names the server.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key every notification on a `subscriptions/listen` stream carries.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// Prefix of the `_meta` keys the protocol itself defines (per-request, per-hop).
pub const META_PROTOCOL_PREFIX: &str = "io.modelcontextprotocol/";

/// HTTP headers of the streamable-HTTP transport. Parsed names: a lookup by `&str` would
/// parse and validate the name again on every request.
pub const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
pub const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
pub const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");

/// JSON-RPC's own error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// Error codes MCP defines.
pub const HEADER_MISMATCH: i64 = -32020;
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

pub mod header_values;
pub mod param_headers;
