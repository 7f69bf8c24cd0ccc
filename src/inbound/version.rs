//! Which protocol version an inbound request speaks, and the per-request rules of
//! 2026-07-28 (SEP-2575 and the streamable-HTTP binding's "Server Validation").
//!
//! Before 2026-07-28 the version is agreed in `initialize` and repeated in the
//! `MCP-Protocol-Version` header; from 2026-07-28 there is no handshake and every request
//! carries its version in `params._meta` and the header, plus `Mcp-Method` / `Mcp-Name`
//! headers that intermediaries may route on. A stateless relay treats every request on its
//! own, so it checks each one, in this order:
//!
//! 1. headers that contradict the body, or appear twice: 400, -32020 (any version);
//! 2. the version must be one the sidecar speaks: 400, -32022;
//! 3. at 2026-07-28: `MCP-Protocol-Version`, `Mcp-Method` and (for a named request)
//!    `Mcp-Name` must be present: 400, -32020;
//! 4. at 2026-07-28: a method the version does not have (`initialize`, `ping`,
//!    `logging/setLevel`, `resources/subscribe`, …) or does not know: 404, -32601;
//! 5. at 2026-07-28: `_meta` must carry the protocol version and the client's capabilities:
//!    400, -32602.

use std::borrow::Cow;

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::jsonrpc::{
    HEADER_MISMATCH, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, UNSUPPORTED_PROTOCOL_VERSION,
};
pub use crate::protocol::{LATEST_WITH_INITIALIZE, STATELESS_SINCE, SUPPORTED_VERSIONS};
use crate::protocol::{
    META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, METHOD_HEADER, NAME_HEADER, PROTOCOL_HEADER,
    is_modern,
};

/// What a request without any version signal is taken to speak (the spec's default).
const DEFAULT_VERSION: &str = "2025-03-26";

/// The requests a 2026-07-28 client may send (the sidecar answers all of them).
pub const MODERN_METHODS: &[&str] = &[
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
    "subscriptions/listen",
];

/// The version a request speaks, checked.
#[derive(Debug, Clone)]
pub struct Version {
    /// Our own copy of a version we support (no copy per request); only an `initialize`
    /// may ask for another.
    pub version: Cow<'static, str>,
    /// 2026-07-28 or later.
    pub modern: bool,
}

fn static_version(version: &str) -> Cow<'static, str> {
    match SUPPORTED_VERSIONS.iter().find(|v| **v == version) {
        Some(v) => Cow::Borrowed(v),
        None => Cow::Owned(version.to_string()),
    }
}

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

/// Works out the version a request speaks and applies the rules above. `name` is the
/// request's `params.name` (or `params.uri`) when the method has one.
pub fn check_request(
    headers: &HeaderMap,
    method: &str,
    meta: Option<&Map<String, Value>>,
    name: Option<&str>,
) -> Result<Version, RpcError> {
    let header = header_str(headers, &PROTOCOL_HEADER)?;
    let from_meta = meta
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    if let (Some(h), Some(m)) = (header, from_meta)
        && h != m
    {
        return Err(mismatch(format!(
            "MCP-Protocol-Version header ({h}) does not match _meta protocolVersion ({m})"
        )));
    }
    let sent_method = header_str(headers, &METHOD_HEADER)?;
    if let Some(sent) = sent_method
        && sent != method
    {
        return Err(mismatch(format!(
            "Mcp-Method header `{sent}` does not match body method `{method}`"
        )));
    }
    let sent_name = header_str(headers, &NAME_HEADER)?
        .map(|sent| decode_header_value(sent).ok_or_else(|| bad_encoding(NAME_HEADER.as_str())))
        .transpose()?;
    if let (Some(sent), Some(name)) = (&sent_name, name)
        && sent != name
    {
        return Err(mismatch(format!(
            "Mcp-Name header `{sent}` does not match `{name}` in the body"
        )));
    }
    let version = from_meta.or(header).unwrap_or(DEFAULT_VERSION);
    // `initialize` names the version it wants in its params; negotiation answers it.
    if method != "initialize" && !is_supported(version) {
        return Err(unsupported(version));
    }
    if !is_modern(version) {
        return Ok(Version {
            version: static_version(version),
            modern: false,
        });
    }
    if header.is_none() {
        return Err(mismatch(
            "a 2026-07-28 request needs the MCP-Protocol-Version header",
        ));
    }
    if sent_method.is_none() {
        return Err(mismatch("a 2026-07-28 request needs the Mcp-Method header"));
    }
    if name.is_some() && sent_name.is_none() {
        return Err(mismatch(format!(
            "a 2026-07-28 {method} request needs the Mcp-Name header"
        )));
    }
    if !MODERN_METHODS.contains(&method) {
        return Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method `{method}` does not exist at protocol version {version}"),
        )
        .with_status(StatusCode::NOT_FOUND));
    }
    let meta = meta.ok_or_else(|| missing_meta("`params._meta`"))?;
    if from_meta.is_none() {
        return Err(missing_meta(&format!(
            "`_meta[\"{META_PROTOCOL_VERSION}\"]`"
        )));
    }
    if !meta
        .get(META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(missing_meta(&format!(
            "`_meta[\"{META_CLIENT_CAPABILITIES}\"]` (an object)"
        )));
    }
    Ok(Version {
        version: static_version(version),
        modern: true,
    })
}

/// The text of an `Mcp-Name` header (a Base64 sentinel decoded).
pub fn decode_header_value(value: &str) -> Option<String> {
    crate::protocol::param_headers::decode(value)
}

fn mismatch(message: impl Into<String>) -> RpcError {
    RpcError::new(HEADER_MISMATCH, message).with_status(StatusCode::BAD_REQUEST)
}

fn bad_encoding(header: &str) -> RpcError {
    mismatch(format!("{header} header has an invalid Base64 value"))
}

fn missing_meta(what: &str) -> RpcError {
    RpcError::new(
        INVALID_PARAMS,
        format!("a 2026-07-28 request must carry {what}"),
    )
    .with_status(StatusCode::BAD_REQUEST)
}

pub fn header_str<K>(headers: &HeaderMap, name: K) -> Result<Option<&str>, RpcError>
where
    K: http::header::AsHeaderName + Copy + std::fmt::Display,
{
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(mismatch(format!("{name} header given more than once")));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| mismatch(format!("{name} header is not valid text")))
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

    fn modern_meta() -> Map<String, Value> {
        serde_json::from_str(
            r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#,
        )
        .unwrap()
    }

    fn modern_headers(method: &str) -> Vec<(&'static str, String)> {
        vec![
            ("mcp-protocol-version", "2026-07-28".to_string()),
            ("mcp-method", method.to_string()),
        ]
    }

    fn hv(pairs: Vec<(&'static str, String)>) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(k, v.parse().unwrap());
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
        let mut headers = modern_headers("tools/call");
        headers.push(("mcp-name", "a___b".into()));
        let v = check_request(
            &hv(headers),
            "tools/call",
            Some(&modern_meta()),
            Some("a___b"),
        )
        .unwrap();
        assert!(v.modern && v.version == "2026-07-28");
        let v = check_request(
            &h(&[("mcp-protocol-version", "2025-06-18")]),
            "tools/list",
            None,
            None,
        )
        .unwrap();
        assert_eq!((&*v.version, v.modern), ("2025-06-18", false));
        let v = check_request(&HeaderMap::new(), "tools/list", None, None).unwrap();
        assert_eq!(v.version, "2025-03-26");
    }

    #[test]
    fn mismatches_and_unknown_versions_are_rejected() {
        let e = check_request(
            &h(&[("mcp-protocol-version", "2025-06-18")]),
            "tools/list",
            Some(&modern_meta()),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        let e = check_request(
            &h(&[("mcp-method", "tools/list")]),
            "tools/call",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        let e = check_request(&h(&[("mcp-name", "x")]), "tools/call", None, Some("y")).unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        let e = check_request(
            &h(&[("mcp-protocol-version", "1999-01-01")]),
            "tools/list",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn modern_requests_need_their_headers_meta_and_a_modern_method() {
        let meta = modern_meta();
        // No Mcp-Method header.
        let e = check_request(
            &h(&[("mcp-protocol-version", "2026-07-28")]),
            "tools/list",
            Some(&meta),
            None,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.status),
            (HEADER_MISMATCH, StatusCode::BAD_REQUEST)
        );
        // No Mcp-Name header for a named request.
        let e = check_request(
            &hv(modern_headers("tools/call")),
            "tools/call",
            Some(&meta),
            Some("t"),
        )
        .unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        // Removed at 2026-07-28, and unknown: 404.
        for method in [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/subscribe",
            "x/y",
        ] {
            let e =
                check_request(&hv(modern_headers(method)), method, Some(&meta), None).unwrap_err();
            assert_eq!(
                (e.code, e.status),
                (METHOD_NOT_FOUND, StatusCode::NOT_FOUND),
                "{method}"
            );
        }
        // _meta missing, or missing its keys: 400 -32602.
        let headers = hv(modern_headers("server/discover"));
        let e = check_request(&headers, "server/discover", None, None).unwrap_err();
        assert_eq!(
            (e.code, e.status),
            (INVALID_PARAMS, StatusCode::BAD_REQUEST)
        );
        let mut no_caps = meta.clone();
        no_caps.remove(META_CLIENT_CAPABILITIES);
        let e = check_request(&headers, "server/discover", Some(&no_caps), None).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        let mut no_version = meta.clone();
        no_version.remove(META_PROTOCOL_VERSION);
        let e = check_request(&headers, "server/discover", Some(&no_version), None).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        assert!(check_request(&headers, "server/discover", Some(&meta), None).is_ok());
    }

    #[test]
    fn base64_names_are_decoded_before_comparing() {
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header_value("plain").as_deref(), Some("plain"));
        assert_eq!(decode_header_value("=?base64?***?="), None);
        let mut headers = modern_headers("tools/call");
        headers.push(("mcp-name", "=?base64?dMOpbA==?=".into()));
        assert!(
            check_request(
                &hv(headers),
                "tools/call",
                Some(&modern_meta()),
                Some("tél")
            )
            .is_ok()
        );
    }
}
