//! A request's `params`, split into raw members: nothing that is relayed is decoded, only
//! `_meta` (small, and the protocol's own) and the few strings the sidecar routes on.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::jsonrpc::{INVALID_PARAMS, RpcError};
use crate::protocol::{META_CLIENT_CAPABILITIES, META_LOG_LEVEL, META_PROTOCOL_PREFIX};
use crate::targets::ClientContext;

pub struct Params {
    pub members: HashMap<String, Box<RawValue>>,
    pub meta: Option<Map<String, Value>>,
}

impl Params {
    pub fn parse(raw: Option<&RawValue>) -> Result<Self, RpcError> {
        let mut members: HashMap<String, Box<RawValue>> = match raw {
            None => HashMap::new(),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|_| RpcError::new(INVALID_PARAMS, "`params` must be an object"))?,
        };
        let meta =
            match members.remove("_meta") {
                None => None,
                Some(m) => Some(serde_json::from_str(m.get()).map_err(|_| {
                    RpcError::new(INVALID_PARAMS, "`params._meta` must be an object")
                })?),
            };
        Ok(Self { members, meta })
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, RpcError> {
        match self.members.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw.get())
                .map(Some)
                .map_err(|_| {
                    RpcError::new(INVALID_PARAMS, format!("`params.{key}` must be a string"))
                }),
        }
    }

    /// What the caller told about itself in a 2026-07-28 request's `_meta` (a legacy
    /// caller's capabilities come from its session instead).
    pub fn client_context(&self, modern: bool) -> ClientContext {
        let meta = self.meta.as_ref();
        ClientContext {
            capabilities: meta
                .filter(|_| modern)
                .and_then(|m| m.get(META_CLIENT_CAPABILITIES))
                .and_then(Value::as_object)
                .cloned(),
            log_level: meta
                .filter(|_| modern)
                .and_then(|m| m.get(META_LOG_LEVEL))
                .and_then(Value::as_str)
                .map(str::to_string),
            modern,
        }
    }

    /// The params for the upstream: the caller's members with `key` (the name or URI) set
    /// to the upstream's own (`key` empty: unchanged), and apart from them the caller's own
    /// `_meta` entries (the protocol's per-request keys are the upstream session's to set).
    pub fn into_upstream(self, key: &str, original: &str) -> (String, Map<String, Value>) {
        let mut out = String::with_capacity(256);
        out.push('{');
        if !key.is_empty() {
            push_string(&mut out, key);
            out.push(':');
            push_string(&mut out, original);
        }
        for (name, value) in &self.members {
            if name == key {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            push_string(&mut out, name);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        let mut meta = self.meta.unwrap_or_default();
        meta.retain(|k, _| !k.starts_with(META_PROTOCOL_PREFIX));
        (out, meta)
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_params_swap_the_name_and_keep_meta_apart() {
        let raw = RawValue::from_string(
            r#"{"name":"t___echo","arguments":{"text":"hi"},"_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/logLevel":"info","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}"#.into(),
        )
        .unwrap();
        let params = Params::parse(Some(&raw)).unwrap();
        let client = params.client_context(true);
        assert_eq!(client.log_level.as_deref(), Some("info"));
        assert!(client.capabilities.unwrap().contains_key("elicitation"));
        assert!(params.client_context(false).capabilities.is_none());
        let (out, meta) = params.into_upstream("name", "echo");
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out, json!({"name":"echo","arguments":{"text":"hi"}}));
        assert_eq!(Value::Object(meta), json!({"progressToken": 7}));
    }
}
