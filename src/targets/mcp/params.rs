//! The `params` a request carries upstream: the caller's, with the `_meta` its protocol
//! needs.
//!
//! Relayed params arrive without `_meta` (the inbound side keeps the caller's own entries
//! apart), so adding it is a splice before the closing brace rather than a decode and
//! re-encode of the arguments, which may be large. A 2026-07-28 session gets the protocol's
//! keys on every request (version, client info, the caller's capabilities and log level);
//! a legacy session only the caller's own entries and the target's `meta`.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::McpClient;
use super::session::client_info;
use super::transport::{Transport, Wire};
use crate::protocol::{
    META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROTOCOL_VERSION,
};
use crate::targets::{ClientContext, Operation};

/// The capabilities a caller may pass on: what it can answer mid-call. Others (e.g. an
/// extension the sidecar does not relay) stay with the sidecar.
const RELAYED_CAPABILITIES: &[&str] = &["sampling", "elicitation", "roots"];

impl<T: Transport> McpClient<T> {
    /// `params` (an object without `_meta`) with the `_meta` this session needs.
    pub(super) fn compose_params<'a>(
        &self,
        params: &'a str,
        wire: &Wire<T::Link>,
        client: Option<&ClientContext>,
        meta: &Map<String, Value>,
    ) -> Cow<'a, str> {
        if !wire.is_modern() {
            return splice_meta(params, meta);
        }
        let mut meta = meta.clone();
        meta.insert(
            META_PROTOCOL_VERSION.into(),
            Value::String(wire.protocol_version.to_str().unwrap_or_default().into()),
        );
        meta.insert(META_CLIENT_INFO.into(), client_info());
        let capabilities: Map<String, Value> = client
            .and_then(|c| c.capabilities.as_ref())
            .map(|caps| {
                caps.iter()
                    .filter(|(k, _)| RELAYED_CAPABILITIES.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        meta.insert(META_CLIENT_CAPABILITIES.into(), Value::Object(capabilities));
        // A 2026-07-28 caller gets log messages at the level it asks for, and none without
        // one; a legacy caller expects them as a legacy server sends them, i.e. all of them
        // (it has no way to ask per request, and the relay keeps no session to remember a
        // `logging/setLevel`). The relay's own requests (syncs) want none.
        let level = client.and_then(|c| match &c.log_level {
            Some(level) => Some(level.as_str()),
            None if !c.modern => Some("debug"),
            None => None,
        });
        if let Some(level) = level {
            meta.insert(META_LOG_LEVEL.into(), Value::String(level.into()));
        }
        Cow::Owned(splice_meta(params, &meta).into_owned())
    }
}

/// The caller's `_meta` with the target's configured entries added to `tools/call` (the
/// caller's keys win).
pub fn with_target_meta(
    mut caller: Map<String, Value>,
    target: &Map<String, Value>,
    operation: Operation,
) -> Map<String, Value> {
    if operation == Operation::CallTool {
        for (k, v) in target {
            caller.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    caller
}

/// Appends `"_meta": meta` to a JSON object text (`params` holds no `_meta` of its own).
fn splice_meta<'a>(params: &'a str, meta: &Map<String, Value>) -> Cow<'a, str> {
    if meta.is_empty() {
        return Cow::Borrowed(params);
    }
    let body = params.trim_end();
    let Some(open) = body.strip_suffix('}') else {
        return Cow::Borrowed(params); // not an object: sent as it is, the upstream says why
    };
    let meta = Value::Object(meta.clone()).to_string();
    let mut out = String::with_capacity(body.len() + meta.len() + 12);
    out.push_str(open.trim_end());
    if !out.trim_start().ends_with('{') {
        out.push(',');
    }
    out.push_str(r#""_meta":"#);
    out.push_str(&meta);
    out.push('}');
    Cow::Owned(out)
}

/// RFC 5424 severities, as MCP's `logging` uses them, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn parse(level: &str) -> Option<Self> {
        Some(match level {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }

    /// The level of a `notifications/message`.
    pub fn of_message(bytes: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Message<'a> {
            #[serde(borrow)]
            params: Params<'a>,
        }
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            level: &'a str,
        }
        serde_json::from_slice::<Message>(bytes)
            .ok()
            .and_then(|m| Self::parse(m.params.level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_is_spliced_without_touching_the_rest() {
        let mut meta = Map::new();
        assert_eq!(splice_meta(r#"{"a":1}"#, &meta), r#"{"a":1}"#);
        meta.insert("k".into(), json!("v"));
        let out = splice_meta(r#"{"name":"t","arguments":{"x":[1,2]}}"#, &meta);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"name":"t","arguments":{"x":[1,2]},"_meta":{"k":"v"}})
        );
        let v: Value = serde_json::from_str(&splice_meta("{ }", &meta)).unwrap();
        assert_eq!(v, json!({"_meta":{"k":"v"}}));
    }

    #[test]
    fn target_meta_fills_in_for_tool_calls_only() {
        let mut target = Map::new();
        target.insert("AWS_REGION".into(), json!("eu-west-1"));
        target.insert("progressToken".into(), json!(1));
        let mut caller = Map::new();
        caller.insert("progressToken".into(), json!(7));
        let merged = with_target_meta(caller.clone(), &target, Operation::CallTool);
        assert_eq!(
            Value::Object(merged),
            json!({"progressToken": 7, "AWS_REGION": "eu-west-1"})
        );
        let merged = with_target_meta(caller, &target, Operation::GetPrompt);
        assert_eq!(Value::Object(merged), json!({"progressToken": 7}));
    }

    #[test]
    fn log_levels_order_and_parse() {
        assert!(LogLevel::Error > LogLevel::Info);
        let m = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"warning","data":"x"}}"#;
        assert_eq!(LogLevel::of_message(m), Some(LogLevel::Warning));
        assert_eq!(LogLevel::parse("verbose"), None);
    }
}
