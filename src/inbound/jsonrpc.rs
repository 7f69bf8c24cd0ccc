//! JSON-RPC 2.0 framing for the inbound endpoint: parsing with the right error codes, and
//! writing responses around raw (already serialized) results.

use std::borrow::Cow;

use http::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::params::RawParams;
use crate::protocol::Text;

pub use crate::protocol::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};
/// MCP: the resource does not exist.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// Server-defined: the caller is not authenticated or not authorized (sent with HTTP 401/403).
pub const UNAUTHORIZED: i64 = -32001;
/// MCP 2026-07-28: a header contradicts the body; a capability the request needs was not
/// declared; the requested protocol version is not supported.
pub use crate::protocol::{
    HEADER_MISMATCH, MISSING_REQUIRED_CLIENT_CAPABILITY, UNSUPPORTED_PROTOCOL_VERSION,
};

/// A JSON-RPC error answer, with the HTTP status it travels with.
#[derive(Debug)]
pub struct RpcError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        // Errors that mean "this is not a valid request at all" are HTTP 400; errors about a
        // valid request (unknown method or tool, bad params, upstream failure) are JSON-RPC
        // errors in a 200, as MCP clients expect.
        let status = match code {
            PARSE_ERROR
            | INVALID_REQUEST
            | HEADER_MISMATCH
            | MISSING_REQUIRED_CLIENT_CAPABILITY
            | UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        Self {
            status,
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn body(&self, id: Option<&RawValue>) -> Vec<u8> {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        let id = id.map_or("null", RawValue::get);
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#).into_bytes()
    }
}

/// A message from the client.
pub enum Incoming<'a> {
    Request(Request<'a>),
    /// A response to a request the sidecar sent the client (mid-call questions).
    Response,
    /// Notifications need no answer beyond 202.
    NoReply,
}

/// Borrowed from the request's body, which outlives the handling of it.
pub struct Request<'a> {
    pub id: &'a RawValue,
    pub method: Cow<'a, str>,
    pub params: Option<RawParams<'a>>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    /// Borrowed unless it has escapes, as the method is.
    #[serde(default, borrow)]
    jsonrpc: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Text<'a>>,
    #[serde(default, borrow)]
    params: Option<RawParams<'a>>,
    #[serde(default)]
    result: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

/// Keeps an explicit `"id": null` (invalid for a request) apart from a missing id.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses one JSON-RPC message; on failure returns the error and the id if one was readable.
pub fn parse(body: &[u8]) -> Result<Incoming<'_>, (RpcError, Option<&RawValue>)> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err((
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => RpcError::new(
                    INVALID_REQUEST,
                    "JSON-RPC batches are not supported; send one message per request",
                ),
                Err(e) => RpcError::new(PARSE_ERROR, format!("malformed JSON: {e}")),
            },
            None,
        ));
    }
    let envelope: Envelope = crate::protocol::parse_message(body).map_err(|e| {
        let error = match e.classify() {
            serde_json::error::Category::Data => {
                RpcError::new(INVALID_REQUEST, format!("not a JSON-RPC message: {e}"))
            }
            _ => RpcError::new(PARSE_ERROR, format!("malformed JSON: {e}")),
        };
        (error, None)
    })?;
    if envelope.jsonrpc.as_ref().map(|t| &*t.0) != Some("2.0") {
        return Err((
            RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""),
            envelope.id,
        ));
    }
    if let Some(id) = &envelope.id {
        let valid = matches!(id.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9'));
        if !valid {
            return Err((
                RpcError::new(INVALID_REQUEST, "`id` must be a string or a number"),
                None,
            ));
        }
    }
    match (envelope.method, envelope.id) {
        (Some(Text(method)), Some(id)) => Ok(Incoming::Request(Request {
            id,
            method,
            params: envelope.params,
        })),
        (Some(_), None) => Ok(Incoming::NoReply),
        (None, Some(_)) if envelope.result.is_some() || envelope.error.is_some() => {
            Ok(Incoming::Response)
        }
        (None, id) => Err((
            RpcError::new(INVALID_REQUEST, "a request needs a `method`"),
            id,
        )),
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` around an already-serialized result.
pub fn result_body(id: &RawValue, result: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(result.len() + id.get().len() + 36);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result.as_bytes());
    out.push(b'}');
    out
}

/// The HTTP status a relayed error travels with: the protocol's request errors (-32020,
/// -32021, -32022) are HTTP 400 as the spec requires; everything else a 200.
pub fn raw_error_status(error: &RawValue) -> StatusCode {
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    match serde_json::from_str::<Code>(error.get()).map(|c| c.code) {
        Ok(HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION) => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

/// `{"jsonrpc":"2.0","id":…,"error":…}` around an upstream's raw error object.
pub fn raw_error_body(id: &RawValue, error: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{},"error":{error}}}"#, id.get()).into_bytes()
}

/// `params.name` of a request, if it is a string (for metrics and span names).
pub fn param_name(params: Option<&RawParams>) -> Option<String> {
    params?.members()?.string("name").ok()?
}

/// The error code of a response body this module wrote ([`result_body`], [`raw_error_body`],
/// [`RpcError::body`]), or None for a result. Reads only the envelope's head and the error
/// object, never a result.
pub fn error_code(body: &[u8]) -> Option<i64> {
    let rest = body.strip_prefix(br#"{"jsonrpc":"2.0","id":"#)?;
    // Skip the id: a number, null, or a string (whose quotes inside are escaped).
    let id_len = if rest.first() == Some(&b'"') {
        let mut i = 1;
        while i < rest.len() && rest[i] != b'"' {
            i += if rest[i] == b'\\' { 2 } else { 1 };
        }
        i + 1
    } else {
        rest.iter().position(|b| *b == b',')?
    };
    let error = rest.get(id_len..)?.strip_prefix(br#","error":"#)?;
    #[derive(Deserialize)]
    struct Code {
        code: i64,
    }
    let mut de = serde_json::Deserializer::from_slice(error);
    Code::deserialize(&mut de).ok().map(|c| c.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_the_envelope() {
        let id = RawValue::from_string(r#""a\",\"error\":1""#.into()).unwrap();
        assert_eq!(
            error_code(&result_body(&id, r#"{"error":{"code":5}}"#)),
            None
        );
        assert_eq!(
            error_code(&RpcError::new(INVALID_PARAMS, "x").body(Some(&id))),
            Some(INVALID_PARAMS)
        );
        let n = RawValue::from_string("12".into()).unwrap();
        assert_eq!(
            error_code(&raw_error_body(&n, r#"{"message":"m","code":-32000}"#)),
            Some(-32000)
        );
        assert_eq!(
            error_code(&RpcError::new(PARSE_ERROR, "x").body(None)),
            Some(PARSE_ERROR)
        );
        assert_eq!(
            param_name(Some(
                &serde_json::from_str(r#"{"name":"t","arguments":{}}"#).unwrap()
            )),
            Some("t".into())
        );
        assert_eq!(
            param_name(Some(&serde_json::from_str(r#"{"name":5}"#).unwrap())),
            None
        );
        assert_eq!(
            param_name(Some(&serde_json::from_str("[1]").unwrap())),
            None
        );
    }

    fn err_code(body: &str) -> i64 {
        match parse(body.as_bytes()) {
            Err((e, _)) => e.code,
            Ok(_) => 0,
        }
    }

    #[test]
    fn classifies_bad_messages() {
        assert_eq!(err_code("{not json"), PARSE_ERROR);
        assert_eq!(err_code(""), PARSE_ERROR);
        assert_eq!(err_code(r#"{"jsonrpc":"2.0","id":1}"#), INVALID_REQUEST);
        assert_eq!(err_code(r#"{"id":1,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(
            err_code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            err_code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            err_code(r#"{"jsonrpc":"2.0","id":1,"method":5}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            err_code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(err_code("[1,"), PARSE_ERROR);
        // Invalid UTF-8 is malformed JSON wherever it is, a string or a raw value.
        for body in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}"[..],
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\xc3\"}}",
        ] {
            match parse(body) {
                Err((e, _)) => assert_eq!(e.code, PARSE_ERROR, "{}", e.message),
                Ok(_) => panic!("accepted invalid UTF-8"),
            }
        }
    }

    #[test]
    fn params_that_are_not_an_object_are_refused_as_invalid_params_with_the_id() {
        for params in ["[1,[2]]", "\"x\"", "5", "-1.5", "true"] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{params}}}"#);
            match parse(body.as_bytes()) {
                Ok(Incoming::Request(r)) => {
                    assert_eq!(r.id.get(), "9");
                    let e = super::super::params::Members::of(r.params).err().unwrap();
                    assert_eq!(e.code, INVALID_PARAMS, "{params}");
                }
                _ => panic!("{params}: expected a request"),
            }
        }
        match parse(br#"{"jsonrpc":"2.0","id":9,"method":"ping","params":null}"#) {
            Ok(Incoming::Request(r)) => assert!(r.params.is_none()),
            _ => panic!("expected a request"),
        }
        // Malformed JSON inside the params is still malformed JSON.
        assert_eq!(
            err_code(r#"{"jsonrpc":"2.0","id":9,"method":"ping","params":{"a":[1,}}"#),
            PARSE_ERROR
        );
    }

    #[test]
    fn accepts_requests_notifications_and_responses() {
        match parse(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"cursor":"x"}}"#)
        {
            Ok(Incoming::Request(r)) => {
                assert_eq!(r.id.get(), "\"a\"");
                assert!(matches!(r.method, Cow::Borrowed("tools/list")));
                let params = r.params.unwrap();
                assert_eq!(params.members().unwrap()["cursor"].get(), r#""x""#);
            }
            _ => panic!("expected a request"),
        }
        // Escapes are decoded (a copy then).
        match parse(br#"{"jsonrpc":"2\u002e0","id":1,"method":"p\u0069ng"}"#) {
            Ok(Incoming::Request(r)) => assert!(matches!(r.method, Cow::Owned(m) if m == "ping")),
            _ => panic!("expected a request"),
        }
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::NoReply)
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Ok(Incoming::Response)
        ));
    }

    #[test]
    fn bodies_are_valid_json() {
        let id = RawValue::from_string("7".into()).unwrap();
        let v: Value = serde_json::from_slice(&result_body(&id, r#"{"a":1}"#)).unwrap();
        assert_eq!(v, json!({"jsonrpc":"2.0","id":7,"result":{"a":1}}));
        let e = RpcError::new(INVALID_PARAMS, "bad \"tool\"").with_data(json!({"x":1}));
        let v: Value = serde_json::from_slice(&e.body(Some(&id))).unwrap();
        assert_eq!(v["error"]["message"], "bad \"tool\"");
        assert_eq!(v["error"]["data"]["x"], 1);
        assert_eq!(e.status, StatusCode::OK);
        let v: Value = serde_json::from_slice(&RpcError::new(PARSE_ERROR, "x").body(None)).unwrap();
        assert_eq!(v["id"], Value::Null);
    }
}
