//! `x-mcp-header` (2026-07-28, SEP-2243): a tool may mark primitive arguments to be
//! mirrored into `Mcp-Param-{token}` HTTP headers, so intermediaries can route on them
//! without reading the body.
//!
//! The relay meets them twice. As a server, it checks a caller's headers against the body
//! ([`validate`]: present together and equal, or absent together; a mismatch is 400,
//! -32020). As a client of a 2026-07-28 upstream, it sends them ([`headers_for`]). And a
//! tool whose annotations break the rules ([`annotations`] says why) must be left out of
//! `tools/list`, as the spec requires of clients.
//!
//! The rules follow the specification's streamable-HTTP page: an annotation sits on a
//! property reachable from the root through `properties` keys only, names an RFC 9110
//! token, unique ignoring case, on an `integer`, `string` or `boolean` property. Values are
//! written as the client writes them (`true`/`false`, decimal integers, strings as they
//! are) and Base64-wrapped (`=?base64?…?=`) when not plain visible ASCII.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

pub const PREFIX: &str = "Mcp-Param-";
const KEY: &str = "x-mcp-header";

/// One annotated argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The token after `Mcp-Param-`.
    pub token: String,
    /// The chain of `properties` keys from the schema root to the argument.
    pub path: Vec<String>,
    /// Declared `integer`: compared numerically (`42` matches `42.0`).
    pub integer: bool,
}

impl ParamHeader {
    pub fn header_name(&self) -> String {
        format!("{PREFIX}{}", self.token)
    }
}

/// Keywords whose values are schemas but leave the pure-`properties` chain.
const SUBSCHEMA_ONE: &[&str] = &[
    "items",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
const SUBSCHEMA_LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
const SUBSCHEMA_MAP: &[&str] = &[
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];
/// A schema deeper than this is not walked further (its annotations would be unreachable
/// by any sane client anyway).
const MAX_DEPTH: usize = 64;

/// Every annotation of an `inputSchema`, or why the tool must be rejected.
pub fn annotations(schema: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut found = Vec::new();
    // (path from the root through `properties` only, or None once off it; schema; depth)
    let mut stack: Vec<(Option<Vec<String>>, &Value, usize)> = vec![(Some(Vec::new()), schema, 0)];
    while let Some((path, node, depth)) = stack.pop() {
        let Some(object) = node.as_object() else {
            continue;
        };
        if depth > MAX_DEPTH {
            continue;
        }
        if let Some(token) = object.get(KEY) {
            let path = match &path {
                Some(p) if !p.is_empty() => p.clone(),
                _ => {
                    return Err(format!(
                        "{KEY} found where no pure `properties` chain reaches it"
                    ));
                }
            };
            let at = path.join(".");
            let token = token
                .as_str()
                .ok_or_else(|| format!("property `{at}`: {KEY} must be a string"))?;
            if !is_token(token) {
                return Err(format!(
                    "property `{at}`: {KEY} `{token}` is not an RFC 9110 token"
                ));
            }
            let kind = object.get("type").and_then(Value::as_str);
            if !matches!(kind, Some("integer" | "string" | "boolean")) {
                return Err(format!(
                    "property `{at}`: {KEY} is only allowed on integer, string or boolean properties"
                ));
            }
            if found
                .iter()
                .any(|h: &ParamHeader| h.token.eq_ignore_ascii_case(token))
            {
                return Err(format!("{KEY} `{token}` is used twice"));
            }
            found.push(ParamHeader {
                token: token.to_string(),
                path,
                integer: kind == Some("integer"),
            });
        }
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, child) in properties {
                let child_path = path.as_ref().map(|p| {
                    let mut p = p.clone();
                    p.push(name.clone());
                    p
                });
                stack.push((child_path, child, depth + 1));
            }
        }
        for key in SUBSCHEMA_ONE {
            if let Some(child) = object.get(*key) {
                stack.push((None, child, depth + 1));
            }
        }
        for key in SUBSCHEMA_LIST {
            if let Some(Value::Array(children)) = object.get(*key) {
                stack.extend(children.iter().map(|c| (None, c, depth + 1)));
            }
        }
        for key in SUBSCHEMA_MAP {
            if let Some(Value::Object(children)) = object.get(*key) {
                stack.extend(children.values().map(|c| (None, c, depth + 1)));
            }
        }
    }
    found.sort_by(|a, b| a.token.cmp(&b.token));
    Ok(found)
}

/// RFC 9110 `token`: the characters of a header field name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn value_at<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = arguments;
    for key in path {
        node = node.as_object()?.get(key)?;
    }
    (!node.is_null()).then_some(node)
}

/// How a client writes an argument into its header (before encoding); `None` for a value
/// no header can carry.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A header value: as it is when plain visible ASCII without surrounding blanks, else the
/// Base64 sentinel (which a value that looks like one also gets).
pub fn encode(value: &str) -> String {
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_string()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value.as_bytes()))
    }
}

/// A header value's text: itself, or the UTF-8 behind a Base64 sentinel; `None` when the
/// sentinel does not decode, or the value has characters no header may carry.
pub fn decode(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        None => value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
            .then(|| value.to_string()),
        Some(encoded) => STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
    }
}

/// The `Mcp-Param-*` headers a `tools/call` with these arguments sends.
pub fn headers_for(annotations: &[ParamHeader], arguments: &Value) -> Vec<(String, String)> {
    annotations
        .iter()
        .filter_map(|h| {
            let rendered = render(value_at(arguments, &h.path)?)?;
            Some((h.header_name(), encode(&rendered)))
        })
        .collect()
}

/// Checks a caller's `Mcp-Param-*` headers against its arguments. `header` reads one
/// header (case-insensitively); `Err(())` when it appears more than once.
pub fn validate<'h>(
    annotations: &[ParamHeader],
    arguments: &Value,
    header: impl Fn(&str) -> Result<Option<&'h str>, ()>,
) -> Result<(), String> {
    for h in annotations {
        let name = h.header_name();
        let argument = h.path.join(".");
        let sent = header(&name).map_err(|()| format!("{name} header appears more than once"))?;
        let rendered = value_at(arguments, &h.path).map(|v| (v, render(v)));
        match (rendered, sent) {
            (None, None) | (Some((_, None)), None) => {}
            (None, Some(_)) => {
                return Err(format!(
                    "{name} header is present but the body's `{argument}` argument is absent"
                ));
            }
            (Some((_, None)), Some(_)) => {
                return Err(format!(
                    "{name} header does not match the body's `{argument}` argument"
                ));
            }
            (Some((_, Some(_))), None) => {
                return Err(format!(
                    "{name} header is missing but the body's `{argument}` argument is present"
                ));
            }
            (Some((value, Some(rendered))), Some(sent)) => {
                let decoded = decode(sent).ok_or_else(|| {
                    format!("{name} header carries an invalid or malformed value")
                })?;
                if !agrees(h.integer, value, &rendered, &decoded) {
                    return Err(format!(
                        "{name} header does not match the body's `{argument}` argument"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A decoded header value against the body's argument: integers numerically (a canonical
/// decimal header, `42` = `42.0`), anything else as the client would have written it.
fn agrees(integer: bool, value: &Value, rendered: &str, decoded: &str) -> bool {
    if integer
        && let Some(n) = value.as_i64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
    {
        let (whole, fraction) = decoded.split_once('.').unwrap_or((decoded, ""));
        let canonical = !whole.is_empty()
            && whole
                .strip_prefix('-')
                .unwrap_or(whole)
                .bytes()
                .all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b == b'0');
        return canonical && whole.parse::<i64>() == Ok(n);
    }
    decoded == rendered
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}}},
            "query": {"type": "string"}
        }})
    }

    #[test]
    fn annotations_are_found_and_bad_ones_rejected() {
        let found = annotations(&schema()).unwrap();
        let tokens: Vec<&str> = found.iter().map(|h| h.token.as_str()).collect();
        assert_eq!(tokens, ["Count", "Dry", "Region"]);
        assert_eq!(found[1].path, ["opts", "dry"]);
        let bad = [
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A"}, "b": {"type": "string", "x-mcp-header": "a"}}}),
            json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
            json!({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
            json!({"type": "string", "x-mcp-header": "Root"}),
        ];
        for schema in bad {
            assert!(annotations(&schema).is_err(), "{schema}");
        }
        assert_eq!(annotations(&json!({"type": "object"})).unwrap(), vec![]);
    }

    #[test]
    fn values_are_encoded_as_clients_send_them() {
        let found = annotations(&schema()).unwrap();
        let args =
            json!({"region": "Hello, 世界", "count": 42, "opts": {"dry": true}, "query": "x"});
        let headers = headers_for(&found, &args);
        assert_eq!(
            headers,
            [
                ("Mcp-Param-Count".to_string(), "42".to_string()),
                ("Mcp-Param-Dry".to_string(), "true".to_string()),
                (
                    "Mcp-Param-Region".to_string(),
                    "=?base64?SGVsbG8sIOS4lueVjA==?=".to_string()
                ),
            ]
        );
        assert_eq!(encode(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(
            decode("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode("=?base64?!!?="), None);
    }

    #[test]
    fn headers_must_agree_with_the_body() {
        let found = annotations(&schema()).unwrap();
        let args = json!({"region": "us-west1", "count": 42});
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| -> Result<Option<&'static str>, ()> {
                Ok(pairs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v))
            }
        };
        assert!(
            validate(
                &found,
                &args,
                with(&[
                    ("mcp-param-region", "us-west1"),
                    ("Mcp-Param-Count", "42.0")
                ])
            )
            .is_ok()
        );
        assert!(
            validate(
                &found,
                &args,
                with(&[
                    ("Mcp-Param-Region", "=?base64?dXMtd2VzdDE=?="),
                    ("Mcp-Param-Count", "42")
                ])
            )
            .is_ok()
        );
        // Missing while the body has the value.
        assert!(validate(&found, &args, with(&[("Mcp-Param-Count", "42")])).is_err());
        // Different value, bad Base64, a fractional integer.
        assert!(
            validate(
                &found,
                &args,
                with(&[("Mcp-Param-Region", "eu"), ("Mcp-Param-Count", "42")])
            )
            .is_err()
        );
        assert!(
            validate(
                &found,
                &args,
                with(&[
                    ("Mcp-Param-Region", "=?base64?dXMtd2VzdDE?="),
                    ("Mcp-Param-Count", "42")
                ])
            )
            .is_err()
        );
        assert!(
            validate(
                &found,
                &args,
                with(&[
                    ("Mcp-Param-Region", "us-west1"),
                    ("Mcp-Param-Count", "42.5")
                ])
            )
            .is_err()
        );
        // Present while the body lacks the value.
        assert!(
            validate(
                &found,
                &json!({}),
                with(&[("Mcp-Param-Region", "us-west1")])
            )
            .is_err()
        );
        assert!(validate(&found, &json!({}), with(&[])).is_ok());
        // Twice.
        assert!(validate(&found, &args, |_| Err(())).is_err());
    }
}
