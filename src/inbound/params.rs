//! A request's `params`, split into raw members: nothing that is relayed is decoded, only
//! `_meta` (small, and the protocol's own) and the few strings the sidecar routes on.
//!
//! The members are a small list in the caller's order rather than a hash map: params have
//! a handful of members, so a scan beats hashing, and the upstream receives them in the
//! order the caller sent them. A key given twice keeps its last value (as a map would).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::jsonrpc::{INVALID_PARAMS, RpcError};
use crate::protocol::{META_CLIENT_CAPABILITIES, META_LOG_LEVEL, META_PROTOCOL_PREFIX, Text};
use crate::targets::ClientContext;

pub struct Params<'a> {
    pub members: Members<'a>,
    pub meta: Option<Map<String, Value>>,
}

/// The members of a JSON object, raw, in order: borrowed from the request's body, owned
/// only where the sidecar set them (a key with escapes is decoded, so owned too).
#[derive(Default)]
pub struct Members<'a>(Vec<(Cow<'a, str>, Cow<'a, RawValue>)>);

impl<'a> Members<'a> {
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`, in place when it is there already.
    pub fn insert(&mut self, key: &'a str, value: Box<RawValue>) {
        self.set(Cow::Borrowed(key), Cow::Owned(value));
    }

    fn set(&mut self, key: Cow<'a, str>, value: Cow<'a, RawValue>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Cow<'a, RawValue>> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl std::ops::Index<&str> for Members<'_> {
    type Output = RawValue;

    fn index(&self, key: &str) -> &RawValue {
        self.get(key).expect("no such member")
    }
}

fn read_members<'de, A: MapAccess<'de>>(mut map: A) -> Result<Members<'de>, A::Error> {
    let mut members = Members(Vec::with_capacity(map.size_hint().unwrap_or(4)));
    while let Some((Text(key), value)) = map.next_entry::<Text, &RawValue>()? {
        members.set(key, Cow::Borrowed(value));
    }
    Ok(members)
}

/// `params` as the envelope reads it, in the same pass (rather than kept raw and read
/// again): an object's members, or a note that it was something else, which
/// [`Members::of`] refuses with INVALID_PARAMS once the request's id is known.
pub enum RawParams<'a> {
    Object(Members<'a>),
    NotAnObject,
}

impl<'a> RawParams<'a> {
    pub fn members(&self) -> Option<&Members<'a>> {
        match self {
            RawParams::Object(members) => Some(members),
            RawParams::NotAnObject => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawParams<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = RawParams<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawParams<'de>, A::Error> {
                read_members(map).map(RawParams::Object)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawParams<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawParams::NotAnObject)
            }

            fn visit_bool<E>(self, _: bool) -> Result<RawParams<'de>, E> {
                Ok(RawParams::NotAnObject)
            }

            fn visit_i64<E>(self, _: i64) -> Result<RawParams<'de>, E> {
                Ok(RawParams::NotAnObject)
            }

            fn visit_u64<E>(self, _: u64) -> Result<RawParams<'de>, E> {
                Ok(RawParams::NotAnObject)
            }

            fn visit_f64<E>(self, _: f64) -> Result<RawParams<'de>, E> {
                Ok(RawParams::NotAnObject)
            }

            fn visit_str<E>(self, _: &str) -> Result<RawParams<'de>, E> {
                Ok(RawParams::NotAnObject)
            }

            fn visit_unit<E>(self) -> Result<RawParams<'de>, E> {
                Ok(RawParams::NotAnObject)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

impl<'a> Members<'a> {
    /// The members of a request's `params` (none when it has none).
    pub fn of(raw: Option<RawParams<'a>>) -> Result<Self, RpcError> {
        match raw {
            None => Ok(Members::default()),
            Some(RawParams::Object(members)) => Ok(members),
            Some(RawParams::NotAnObject) => {
                Err(RpcError::new(INVALID_PARAMS, "`params` must be an object"))
            }
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, RpcError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw.get())
                .map(Some)
                .map_err(|_| {
                    RpcError::new(INVALID_PARAMS, format!("`params.{key}` must be a string"))
                }),
        }
    }
}

impl<'a> Params<'a> {
    /// Splits the protocol's `_meta` off the members.
    pub fn new(mut members: Members<'a>) -> Result<Self, RpcError> {
        let meta =
            match members.remove("_meta") {
                None => None,
                Some(m) => Some(serde_json::from_str(m.get()).map_err(|_| {
                    RpcError::new(INVALID_PARAMS, "`params._meta` must be an object")
                })?),
            };
        Ok(Self { members, meta })
    }

    /// Params from their JSON text, as [`super::jsonrpc::parse`] reads them.
    #[cfg(test)]
    pub fn parse(raw: Option<&'a RawValue>) -> Result<Self, RpcError> {
        let raw = raw.map(|raw| serde_json::from_str(raw.get()).expect("valid JSON"));
        Self::new(Members::of(raw)?)
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, RpcError> {
        self.members.string(key)
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
        for (name, value) in self.members.iter() {
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

/// `s` as a JSON string, escaped as serde_json escapes (only `"`, `\\` and control
/// characters), which nearly no name or URI needs: those are copied as they are.
fn push_string(out: &mut String, s: &str) {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut bytes = std::mem::take(out).into_bytes();
    serde_json::to_writer(&mut bytes, s).expect("a string serializes");
    *out = String::from_utf8(bytes).expect("JSON is UTF-8");
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
        assert_eq!(out, r#"{"name":"echo","arguments":{"text":"hi"}}"#);
        assert_eq!(Value::Object(meta), json!({"progressToken": 7}));
    }

    #[test]
    fn names_are_written_as_serde_json_writes_them() {
        for s in [
            "echo",
            "t\u{e9}",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{7f}del",
            "\u{1}",
            "",
        ] {
            let mut out = String::from("x");
            push_string(&mut out, s);
            assert_eq!(
                out,
                format!("x{}", serde_json::to_string(s).unwrap()),
                "{s:?}"
            );
        }
    }

    #[test]
    fn members_keep_the_callers_order_and_the_last_of_a_repeated_key() {
        let raw = RawValue::from_string(
            r#"{"z":1,"name":"a\"b","y":[2],"z":3,"x":{"k":"\u00e9"}}"#.into(),
        )
        .unwrap();
        let params = Params::parse(Some(&raw)).unwrap();
        assert_eq!(params.members["z"].get(), "3");
        assert_eq!(params.string("name").unwrap().as_deref(), Some("a\"b"));
        let (out, _) = params.into_upstream("name", "t\u{e9}\"");
        assert_eq!(out, r#"{"name":"té\"","z":3,"y":[2],"x":{"k":"\u00e9"}}"#);
        let (out, _) = Params::parse(Some(&raw)).unwrap().into_upstream("", "");
        assert_eq!(out, r#"{"z":3,"name":"a\"b","y":[2],"x":{"k":"\u00e9"}}"#);
        assert!(Params::parse(Some(&RawValue::from_string("[1]".into()).unwrap())).is_err());
    }

    #[test]
    fn members_are_borrowed_unless_a_key_has_escapes() {
        let raw = RawValue::from_string(r#"{"n\u0061me":"t","arguments":{"a":1}}"#.into()).unwrap();
        let params = Params::parse(Some(&raw)).unwrap();
        assert_eq!(params.string("name").unwrap().as_deref(), Some("t"));
        let Members(members) = &params.members;
        assert!(matches!(members[0].0, Cow::Owned(_)));
        assert!(matches!(members[1].0, Cow::Borrowed("arguments")));
        assert!(members.iter().all(|(_, v)| matches!(v, Cow::Borrowed(_))));
        let (out, _) = params.into_upstream("name", "echo");
        assert_eq!(out, r#"{"name":"echo","arguments":{"a":1}}"#);
    }
}
