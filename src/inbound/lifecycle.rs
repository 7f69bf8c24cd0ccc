//! `initialize`, `server/discover` and `ping`: answered by the sidecar itself, from its
//! catalog, with no upstream round trip (the Gateway initializes targets per request).

use serde_json::{Value, json};

use super::handler::{Answer, Call, Failure};
use super::jsonrpc::{self, INVALID_PARAMS, RpcError};
use super::version::{self, SUPPORTED_VERSIONS};
use crate::catalog::Catalog;
use crate::protocol::META_SERVER_INFO;

/// Tools always (the Gateway requires them); the rest when some target offers it.
/// `modern`: list changes are announced on `subscriptions/listen` streams, which only
/// 2026-07-28 clients open.
pub fn capabilities(catalog: &Catalog, modern: bool) -> Value {
    let mut caps = json!({ "tools": { "listChanged": modern } });
    let offers = catalog.offers;
    if offers.prompts {
        caps["prompts"] = json!({ "listChanged": modern });
    }
    if offers.resources {
        caps["resources"] = json!({
            "listChanged": modern,
            "subscribe": modern && offers.subscribe,
        });
    }
    if offers.completions {
        caps["completions"] = json!({});
    }
    if offers.logging && !modern {
        caps["logging"] = json!({});
    }
    caps
}

pub fn server_info() -> Value {
    json!({ "name": "mcp-sidecar", "title": "mcp-sidecar", "version": env!("CARGO_PKG_VERSION") })
}

pub fn initialize(call: &Call<'_>) -> Result<Answer, Failure> {
    let requested = call.params.string("protocolVersion")?.ok_or_else(|| {
        RpcError::new(INVALID_PARAMS, "initialize needs `params.protocolVersion`")
    })?;
    let catalog = call.relay.store.snapshot();
    let mut result = json!({
        "protocolVersion": version::negotiate_initialize(&requested),
        "capabilities": capabilities(&catalog, false),
        "serverInfo": server_info(),
    });
    if let Some(instructions) = &catalog.instructions {
        result["instructions"] = json!(instructions);
    }
    Ok(Answer::ok(jsonrpc::result_body(
        call.id,
        &result.to_string(),
    )))
}

pub fn discover(call: &Call<'_>) -> Answer {
    let catalog = call.relay.store.snapshot();
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": SUPPORTED_VERSIONS,
        "capabilities": capabilities(&catalog, true),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { META_SERVER_INFO: server_info() },
    });
    if let Some(instructions) = &catalog.instructions {
        result["instructions"] = json!(instructions);
    }
    Answer::ok(jsonrpc::result_body(call.id, &result.to_string()))
}

pub fn ping(call: &Call<'_>) -> Answer {
    Answer::ok(jsonrpc::result_body(
        call.id,
        &with_result_type("{}".into(), call.version.modern),
    ))
}

/// From 2026-07-28 every result names its type.
pub fn with_result_type(mut object: String, modern: bool) -> String {
    if modern {
        object.pop();
        if object.len() > 1 {
            object.push(',');
        }
        object.push_str(r#""resultType":"complete"}"#);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_type_is_added_only_for_modern_clients() {
        assert_eq!(with_result_type("{}".into(), false), "{}");
        assert_eq!(
            with_result_type("{}".into(), true),
            r#"{"resultType":"complete"}"#
        );
        assert_eq!(
            with_result_type(r#"{"a":1}"#.into(), true),
            r#"{"a":1,"resultType":"complete"}"#
        );
    }
}
