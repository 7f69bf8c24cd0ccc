//! `initialize`, `server/discover` and `ping`: answered by the sidecar itself, from its
//! catalog, with no upstream round trip (the Gateway initializes targets per request).

use serde_json::{Value, json};

use super::framing::respond;
use super::handler::{Answer, Call, Failure};
use super::jsonrpc::{self, INVALID_PARAMS, RpcError};
use super::session::ClientSession;
use super::version::{self, SUPPORTED_VERSIONS};
use crate::catalog::Catalog;
use crate::protocol::{META_SERVER_INFO, SESSION_HEADER};
use http::StatusCode;

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
    let declared: Option<Value> = call
        .params
        .members
        .get("capabilities")
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    // A client that can answer questions mid-call gets a session that says so.
    let session = ClientSession::mint(&call.relay.sealer, declared.as_ref());
    let catalog = call.relay.store.snapshot();
    let mut capabilities = capabilities(&catalog, false);
    if session.is_some() {
        // With a session the client may open the GET stream, which carries list changes
        // and the updates of the resources it subscribed to.
        for (kind, offered) in [
            ("tools", true),
            ("prompts", catalog.offers.prompts),
            ("resources", catalog.offers.resources),
        ] {
            if offered {
                capabilities[kind]["listChanged"] = json!(true);
            }
        }
        if catalog.offers.resources && catalog.offers.subscribe {
            capabilities["resources"]["subscribe"] = json!(true);
        }
    }
    let mut result = json!({
        "protocolVersion": version::negotiate_initialize(&requested),
        "capabilities": capabilities,
        "serverInfo": server_info(),
    });
    if let Some(instructions) = &catalog.instructions {
        result["instructions"] = json!(instructions);
    }
    let body = jsonrpc::result_body(call.id, &result.to_string());
    let Some(session) = session else {
        return Ok(Answer::ok(body));
    };
    let mut response = respond(StatusCode::OK, body, call.accepts);
    if let Ok(id) = http::HeaderValue::from_str(&session) {
        response.headers_mut().insert(SESSION_HEADER, id);
    }
    Ok(Answer::Stream(response))
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
