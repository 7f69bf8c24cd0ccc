//! MCP protocol facts both sides of the relay use: versions, header names, `_meta` keys and
//! the notifications that mean "list again". One place, so the inbound endpoint and the
//! upstream clients never disagree about them.

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

/// `_meta` key that carries the protocol version of a 2026-07-28 request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// Prefix of the `_meta` keys the protocol itself defines (per-request, per-hop).
pub const META_PROTOCOL_PREFIX: &str = "io.modelcontextprotocol/";

/// HTTP headers of the streamable-HTTP transport (lower case, as `http` stores them).
pub const PROTOCOL_HEADER: &str = "mcp-protocol-version";
pub const SESSION_HEADER: &str = "mcp-session-id";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";

/// The notifications that mean "sync again".
pub const LIST_CHANGED: &[&str] = &[
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
];
