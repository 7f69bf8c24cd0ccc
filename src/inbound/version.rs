//! Which protocol version an inbound request speaks, and the per-request version rules of
//! 2026-07-28.
//!
//! Before 2026-07-28 the version is agreed in `initialize` and repeated in the
//! `MCP-Protocol-Version` header; from 2026-07-28 there is no handshake and every request
//! carries its version in `params._meta` (and the header), plus `Mcp-Method` / `Mcp-Name`
//! headers that intermediaries may route on. A stateless relay treats every request on its own.

use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::jsonrpc::{HEADER_MISMATCH, RpcError, UNSUPPORTED_PROTOCOL_VERSION};
pub use crate::protocol::{LATEST_WITH_INITIALIZE, STATELESS_SINCE, SUPPORTED_VERSIONS};
use crate::protocol::{META_PROTOCOL_VERSION, METHOD_HEADER, NAME_HEADER, PROTOCOL_HEADER};

/// What a request without any version signal is taken to speak (the spec's default).
const DEFAULT_VERSION: &str = "2025-03-26";

pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The version `initialize` answers with: the client's if supported, else the newest
/// handshake version (the client then decides whether it can continue).
pub fn negotiate_initialize(requested: &str) -> &'static str {
    SUPPORTED_VERSIONS
        .iter()
        .copied()
        .find(|v| *v == requested && *v < STATELESS_SINCE)
        .unwrap_or(LATEST_WITH_INITIALIZE)
}

pub fn unsupported(requested: &str) -> RpcError {
    RpcError::new(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!("protocol version {requested} is not supported"),
    )
    .with_data(json!({ "supported": SUPPORTED_VERSIONS, "requested": requested }))
}

/// Works out the version a request speaks and checks its headers against its body.
/// `name` is the request's `params.name` (or `params.uri`) when the method has one.
pub fn request_version(
    headers: &HeaderMap,
    method: &str,
    meta: Option<&Map<String, Value>>,
    name: Option<&str>,
) -> Result<String, RpcError> {
    let header = header_str(headers, PROTOCOL_HEADER)?;
    let from_meta = meta
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    if let (Some(h), Some(m)) = (header, from_meta)
        && h != m
    {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("MCP-Protocol-Version header ({h}) does not match _meta protocolVersion ({m})"),
        ));
    }
    if let Some(sent) = header_str(headers, METHOD_HEADER)?
        && sent != method
    {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("Mcp-Method header `{sent}` does not match body method `{method}`"),
        ));
    }
    if let (Some(sent), Some(name)) = (header_str(headers, NAME_HEADER)?, name)
        && sent != name
    {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("Mcp-Name header `{sent}` does not match `{name}` in the body"),
        ));
    }
    let version = from_meta.or(header).unwrap_or(DEFAULT_VERSION);
    // `initialize` names the version it wants in its params; negotiation answers it.
    if method != "initialize" && !is_supported(version) {
        return Err(unsupported(version));
    }
    Ok(version.to_string())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, RpcError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("{name} header given more than once"),
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| RpcError::new(HEADER_MISMATCH, format!("{name} header is not valid text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn negotiation_echoes_supported_and_falls_back() {
        assert_eq!(negotiate_initialize("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate_initialize("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate_initialize("2099-01-01"), LATEST_WITH_INITIALIZE);
        assert_eq!(negotiate_initialize("2026-07-28"), LATEST_WITH_INITIALIZE);
    }

    #[test]
    fn version_comes_from_meta_then_header_then_default() {
        let meta: Map<String, Value> =
            serde_json::from_str(r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#)
                .unwrap();
        let headers = h(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "a___b"),
        ]);
        assert_eq!(
            request_version(&headers, "tools/call", Some(&meta), Some("a___b")).unwrap(),
            "2026-07-28"
        );
        assert_eq!(
            request_version(
                &h(&[("mcp-protocol-version", "2025-06-18")]),
                "tools/list",
                None,
                None
            )
            .unwrap(),
            "2025-06-18"
        );
        assert_eq!(
            request_version(&HeaderMap::new(), "tools/list", None, None).unwrap(),
            "2025-03-26"
        );
    }

    #[test]
    fn mismatches_and_unknown_versions_are_rejected() {
        let meta: Map<String, Value> =
            serde_json::from_str(r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#)
                .unwrap();
        let e = request_version(
            &h(&[("mcp-protocol-version", "2025-06-18")]),
            "tools/list",
            Some(&meta),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        let e = request_version(
            &h(&[("mcp-method", "tools/list")]),
            "tools/call",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        let e =
            request_version(&h(&[("mcp-name", "x")]), "tools/call", None, Some("y")).unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        let e = request_version(
            &h(&[("mcp-protocol-version", "1999-01-01")]),
            "tools/list",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    }
}
