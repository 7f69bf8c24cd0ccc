//! Multi round-trip requests (MRTR, 2026-07-28) through the relay.
//!
//! An upstream that needs input (elicitation, sampling, roots) answers `tools/call`,
//! `prompts/get` or `resources/read` with `{"resultType":"input_required", "inputRequests",
//! "requestState"}`; the client retries the original request under a new id with
//! `inputResponses` and the `requestState` echoed. The relay passes all of it through
//! unchanged except `requestState`, which it seals ([`super::sealed`]) around the upstream's
//! own state together with what the retry must match: the target, the method, the exposed
//! name (or URI) and the caller (issuer and subject, when inbound auth is on), under a
//! short expiry. The retry is routed by its name as usual; its sealed state must open and
//! match, else it gets -32602 and never reaches an upstream, and the upstream gets back
//! exactly the state it issued (or none, if it issued none).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::params::Params;
use super::sealed::Sealer;

const PURPOSE: &str = "request-state";

/// What a retry must match to use a sealed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The target that asked for input.
    #[serde(rename = "t")]
    pub target: String,
    #[serde(rename = "m")]
    pub method: String,
    /// The exposed tool or prompt name, or the resource URI.
    #[serde(rename = "n")]
    pub name: String,
    /// Issuer and subject of the caller's token; none without inbound auth.
    #[serde(rename = "p")]
    pub principal: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SealedState {
    #[serde(flatten)]
    binding: Binding,
    /// The upstream's own `requestState`.
    #[serde(rename = "s")]
    upstream: Option<String>,
    /// A call parked in this sidecar waiting for the answer (a legacy upstream asked
    /// mid-call, see [`super::bridge`]).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    parked: Option<String>,
}

/// `result` with its `requestState` sealed, when it is an `input_required` result.
pub fn seal_result(
    result: &str,
    sealer: &Sealer,
    ttl: Duration,
    binding: Binding,
) -> Option<String> {
    if !result.contains("\"input_required\"") {
        return None;
    }
    let mut members: BTreeMap<String, Box<RawValue>> = serde_json::from_str(result).ok()?;
    if members.get("resultType").map(|r| r.get()) != Some("\"input_required\"") {
        return None;
    }
    let upstream = match members.remove("requestState") {
        None => None,
        Some(raw) => Some(serde_json::from_str::<String>(raw.get()).ok()?),
    };
    let state = SealedState {
        binding,
        upstream,
        parked: None,
    };
    let sealed = sealer.seal(PURPOSE, ttl, &state);
    members.insert(
        "requestState".into(),
        serde_json::value::to_raw_value(&sealed).expect("a string serializes"),
    );
    Some(serde_json::to_string(&members).expect("raw members serialize"))
}

/// The `input_required` result for a call parked under `key`, asking the caller `method`.
pub fn parked_result(
    key: &str,
    method: &str,
    params: Option<&RawValue>,
    sealer: &Sealer,
    ttl: Duration,
    binding: Binding,
) -> String {
    let state = SealedState {
        binding,
        upstream: None,
        parked: Some(key.to_string()),
    };
    let mut request = serde_json::json!({ "method": method });
    if let Some(params) = params {
        request["params"] = serde_json::from_str(params.get()).unwrap_or_default();
    }
    serde_json::json!({
        "resultType": "input_required",
        "inputRequests": { key: request },
        "requestState": sealer.seal(PURPOSE, ttl, &state),
    })
    .to_string()
}

/// For a retry that carries a `requestState`: opens it, checks it was issued for this
/// request and caller, and puts the upstream's own state (or none) back in its place.
/// Returns the key of the parked call it resumes, if it resumes one.
pub fn open_retry(
    params: &mut Params,
    sealer: &Sealer,
    expected: &Binding,
) -> Result<Option<String>, RpcError> {
    let Some(raw) = params.members.remove("requestState") else {
        return Ok(None);
    };
    let refuse = |why: String| {
        RpcError::new(INVALID_PARAMS, format!("`requestState` {why}"))
            .with_data(serde_json::json!({ "requestState": "rejected" }))
    };
    let token: String =
        serde_json::from_str(raw.get()).map_err(|_| refuse("must be a string".into()))?;
    let state: SealedState = sealer
        .open(PURPOSE, &token)
        .map_err(|e| refuse(e.to_string()))?;
    if state.binding != *expected {
        return Err(refuse("was issued for another request or caller".into()));
    }
    if let Some(upstream) = state.upstream {
        params.members.insert(
            "requestState",
            serde_json::value::to_raw_value(&upstream).expect("a string serializes"),
        );
    }
    Ok(state.parked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn binding(name: &str) -> Binding {
        Binding {
            target: "t".into(),
            method: "tools/call".into(),
            name: name.into(),
            principal: Some("iss alice".into()),
        }
    }

    /// Params borrow from the request's body; here the body lives as long as the test.
    fn params(state: &str) -> Params<'static> {
        let raw = RawValue::from_string(
            json!({"name": "t___x", "inputResponses": {"a": {}}, "requestState": state})
                .to_string(),
        )
        .unwrap();
        Params::parse(Some(Box::leak(raw))).unwrap()
    }

    #[test]
    fn the_upstream_state_goes_back_only_to_a_matching_retry() {
        let sealer = Sealer::new(None);
        let ttl = Duration::from_secs(60);
        let result = r#"{"resultType":"input_required","inputRequests":{"a":{"method":"elicitation/create","params":{}}},"requestState":"UPSTREAM"}"#;
        let sealed = seal_result(result, &sealer, ttl, binding("t___x")).unwrap();
        let v: Value = serde_json::from_str(&sealed).unwrap();
        assert_eq!(v["inputRequests"]["a"]["method"], "elicitation/create");
        let token = v["requestState"].as_str().unwrap().to_string();
        assert_ne!(token, "UPSTREAM");

        let mut retry = params(&token);
        open_retry(&mut retry, &sealer, &binding("t___x")).unwrap();
        assert_eq!(retry.members["requestState"].get(), "\"UPSTREAM\"");

        let mut other_tool = params(&token);
        let e = open_retry(&mut other_tool, &sealer, &binding("t___y")).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        let mut other_caller = params(&token);
        let mut bob = binding("t___x");
        bob.principal = Some("iss bob".into());
        assert!(open_retry(&mut other_caller, &sealer, &bob).is_err());
        let mut tampered = params(&format!("{token}x"));
        assert!(open_retry(&mut tampered, &sealer, &binding("t___x")).is_err());
        let mut forged = params("UPSTREAM");
        assert!(open_retry(&mut forged, &sealer, &binding("t___x")).is_err());
    }

    #[test]
    fn complete_results_and_stateless_asks_pass() {
        let sealer = Sealer::new(None);
        let ttl = Duration::from_secs(60);
        assert!(
            seal_result(
                r#"{"content":[],"resultType":"complete"}"#,
                &sealer,
                ttl,
                binding("x")
            )
            .is_none()
        );
        let sealed = seal_result(
            r#"{"resultType":"input_required","inputRequests":{}}"#,
            &sealer,
            ttl,
            binding("x"),
        )
        .unwrap();
        let token = serde_json::from_str::<Value>(&sealed).unwrap()["requestState"]
            .as_str()
            .unwrap()
            .to_string();
        let mut retry = params(&token);
        open_retry(&mut retry, &sealer, &binding("x")).unwrap();
        assert!(!retry.members.contains_key("requestState"));
    }
}
