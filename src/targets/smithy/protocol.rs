//! The AWS protocols a `smithy` target speaks, as their Smithy specifications define them:
//!
//! - `aws.protocols#awsJson1_0` / `awsJson1_1`: `POST /`, `Content-Type:
//!   application/x-amz-json-1.0` (or `1.1`), `X-Amz-Target: {Service}.{Operation}` (the
//!   service shape's name), the whole input as a JSON object (member names as they are;
//!   timestamps as epoch seconds);
//! - `aws.protocols#restJson1`: the operation's `smithy.api#http` method and URI, members
//!   bound by `httpLabel` (percent-encoded; greedy labels keep `/`), `httpQuery`,
//!   `httpQueryParams`, `httpHeader`, `httpPrefixHeaders` and `httpPayload`, every other
//!   member in a JSON body under its `jsonName`; timestamps as epoch seconds in the body,
//!   RFC 3339 in URIs and queries, HTTP dates in headers.
//!
//! Errors (any of them): the code from `X-Amzn-ErrorType` or the body's `__type` / `code`
//! (namespace and `:…` suffix removed), the message from `message` / `Message`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::model::{Model, Shape, local_name};
use crate::targets::http::HttpAnswer;

/// RFC 3986 unreserved characters stay; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    AwsJson1_0,
    AwsJson1_1,
    RestJson1,
}

impl Protocol {
    /// The service's protocol, from its traits.
    pub fn of(service: &Shape) -> Result<Protocol, String> {
        for (name, protocol) in [
            ("aws.protocols#awsJson1_0", Protocol::AwsJson1_0),
            ("aws.protocols#awsJson1_1", Protocol::AwsJson1_1),
            ("aws.protocols#restJson1", Protocol::RestJson1),
        ] {
            if service.has(name) {
                return Ok(protocol);
            }
        }
        let named: Vec<&str> = service
            .traits
            .keys()
            .filter(|k| k.starts_with("aws.protocols#"))
            .map(String::as_str)
            .collect();
        Err(format!(
            "the service's protocol ({}) is not supported: awsJson1_0, awsJson1_1 and restJson1 are",
            if named.is_empty() {
                "none named".to_string()
            } else {
                named.join(", ")
            }
        ))
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::AwsJson1_0 => "awsJson1_0",
            Protocol::AwsJson1_1 => "awsJson1_1",
            Protocol::RestJson1 => "restJson1",
        }
    }
}

/// The `smithy.api#http` trait of a restJson1 operation.
#[derive(Debug, Clone)]
pub struct HttpBinding {
    pub method: http::Method,
    pub uri: String,
}

/// Everything a call of one operation needs to be sent.
pub struct Call<'a> {
    pub model: &'a Model,
    pub protocol: Protocol,
    /// `{ServiceName}.{OperationName}` (awsJson).
    pub target: &'a str,
    pub http: Option<&'a HttpBinding>,
    pub input: Option<&'a str>,
}

pub fn build(
    call: &Call<'_>,
    client: &reqwest::Client,
    endpoint: &url::Url,
    mut args: Map<String, Value>,
) -> Result<reqwest::Request, String> {
    args.retain(|_, v| !v.is_null());
    let input = call.input.and_then(|id| call.model.shape(id));
    if let Some(input) = &input {
        check_members(input, &args)?;
    } else if !args.is_empty() {
        return Err("this operation takes no arguments".into());
    }
    let base = endpoint.as_str().trim_end_matches('/');
    match (call.protocol, call.http) {
        (Protocol::AwsJson1_0 | Protocol::AwsJson1_1, _) => {
            let body = match &input {
                Some(shape) => wire(call.model, shape, Value::Object(args), false)?,
                None => json!({}),
            };
            let version = if call.protocol == Protocol::AwsJson1_0 {
                "1.0"
            } else {
                "1.1"
            };
            client
                .post(format!("{base}/"))
                .header("content-type", format!("application/x-amz-json-{version}"))
                .header("x-amz-target", call.target)
                .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
                .build()
                .map_err(|e| e.without_url().to_string())
        }
        (Protocol::RestJson1, Some(binding)) => {
            rest_json(call.model, input.as_ref(), binding, client, base, args)
        }
        (Protocol::RestJson1, None) => Err("the operation has no smithy.api#http trait".into()),
    }
}

/// Missing required members and unknown arguments, named.
fn check_members(input: &Shape, args: &Map<String, Value>) -> Result<(), String> {
    let missing: Vec<String> = input
        .members
        .iter()
        .filter(|(name, _, traits)| {
            traits.contains_key("smithy.api#required") && !args.contains_key(name)
        })
        .map(|(name, _, _)| format!("`{name}`"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing required argument(s): {}",
            missing.join(", ")
        ));
    }
    let unknown: Vec<String> = args
        .keys()
        .filter(|k| input.member(k).is_none())
        .map(|k| format!("`{k}`"))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = input.members.iter().map(|(n, _, _)| n.as_str()).collect();
        return Err(format!(
            "unknown argument(s) {}; this tool takes: {}",
            unknown.join(", "),
            known.join(", ")
        ));
    }
    Ok(())
}

fn rest_json(
    model: &Model,
    input: Option<&Shape>,
    binding: &HttpBinding,
    client: &reqwest::Client,
    base: &str,
    mut args: Map<String, Value>,
) -> Result<reqwest::Request, String> {
    let (path_template, literal_query) = binding.uri.split_once('?').unwrap_or((&binding.uri, ""));
    let mut path = path_template.to_string();
    let mut query: Vec<String> = literal_query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .collect();
    let mut headers = http::HeaderMap::new();
    let mut body_members = Map::new();
    let mut has_body_members = false;
    let mut payload: Option<(String, Value)> = None;
    let members = input.map(|i| i.members.clone()).unwrap_or_default();
    for (name, target, traits) in &members {
        let shape = model.shape(target);
        let kind = shape
            .as_ref()
            .map(|s| s.kind.as_str())
            .unwrap_or("document");
        let value = args.remove(name);
        if traits.contains_key("smithy.api#httpLabel") {
            let value = value.ok_or_else(|| format!("missing required argument(s): `{name}`"))?;
            let text = scalar(&value, kind, TimeFormat::DateTime);
            let greedy = format!("{{{name}+}}");
            if path.contains(&greedy) {
                let encoded: Vec<String> = text
                    .split('/')
                    .map(|s| utf8_percent_encode(s, COMPONENT).to_string())
                    .collect();
                path = path.replace(&greedy, &encoded.join("/"));
            } else {
                path = path.replace(
                    &format!("{{{name}}}"),
                    &utf8_percent_encode(&text, COMPONENT).to_string(),
                );
            }
        } else if let Some(key) = traits.get("smithy.api#httpQuery").and_then(Value::as_str) {
            let Some(value) = value else { continue };
            let item_kind = list_item_kind(model, shape.as_ref());
            let values = match &value {
                Value::Array(items) => items
                    .iter()
                    .map(|v| scalar(v, &item_kind, TimeFormat::DateTime))
                    .collect(),
                v => vec![scalar(v, kind, TimeFormat::DateTime)],
            };
            for v in values {
                query.push(format!(
                    "{}={}",
                    utf8_percent_encode(key, COMPONENT),
                    utf8_percent_encode(&v, COMPONENT)
                ));
            }
        } else if traits.contains_key("smithy.api#httpQueryParams") {
            if let Some(Value::Object(map)) = value {
                for (k, v) in map {
                    let values = match v {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for v in values {
                        query.push(format!(
                            "{}={}",
                            utf8_percent_encode(&k, COMPONENT),
                            utf8_percent_encode(
                                &scalar(&v, "string", TimeFormat::DateTime),
                                COMPONENT
                            )
                        ));
                    }
                }
            }
        } else if let Some(header) = traits.get("smithy.api#httpHeader").and_then(Value::as_str) {
            let Some(value) = value else { continue };
            let item_kind = list_item_kind(model, shape.as_ref());
            let text = match &value {
                Value::Array(items) => items
                    .iter()
                    .map(|v| scalar(v, &item_kind, TimeFormat::HttpDate))
                    .collect::<Vec<_>>()
                    .join(", "),
                v => scalar(v, kind, TimeFormat::HttpDate),
            };
            insert_header(&mut headers, header, &text, name)?;
        } else if let Some(prefix) = traits
            .get("smithy.api#httpPrefixHeaders")
            .and_then(Value::as_str)
        {
            if let Some(Value::Object(map)) = value {
                for (k, v) in map {
                    insert_header(
                        &mut headers,
                        &format!("{prefix}{k}"),
                        &scalar(&v, "string", TimeFormat::HttpDate),
                        name,
                    )?;
                }
            }
        } else if traits.contains_key("smithy.api#httpPayload") {
            if let Some(v) = value {
                payload = Some((target.clone(), v));
            }
        } else if !traits.contains_key("smithy.api#httpResponseCode") {
            has_body_members = true;
            if let Some(v) = value {
                let key = traits
                    .get("smithy.api#jsonName")
                    .and_then(Value::as_str)
                    .unwrap_or(name);
                body_members.insert(key.to_string(), member_wire(model, target, v, true)?);
            }
        }
    }
    let mut url = format!("{base}{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    let mut builder = client.request(binding.method.clone(), url).headers(headers);
    if let Some((target, value)) = payload {
        let kind = model.shape(&target).map(|s| s.kind).unwrap_or_default();
        builder = match (kind.as_str(), value) {
            ("blob", Value::String(b64)) => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| format!("the payload is not base64: {e}"))?;
                builder
                    .header("content-type", "application/octet-stream")
                    .body(bytes)
            }
            ("string", Value::String(text)) => {
                builder.header("content-type", "text/plain").body(text)
            }
            (_, value) => builder.header("content-type", "application/json").body(
                serde_json::to_vec(&member_wire(model, &target, value, true)?)
                    .map_err(|e| e.to_string())?,
            ),
        };
    } else if has_body_members {
        builder = builder
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&Value::Object(body_members)).map_err(|e| e.to_string())?);
    }
    builder.build().map_err(|e| e.without_url().to_string())
}

fn insert_header(
    headers: &mut http::HeaderMap,
    name: &str,
    value: &str,
    member: &str,
) -> Result<(), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a header name"))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| format!("argument `{member}` cannot be sent in a header"))?;
    headers.insert(name, value);
    Ok(())
}

fn list_item_kind(model: &Model, shape: Option<&Shape>) -> String {
    shape
        .and_then(|s| s.member("member"))
        .and_then(|(_, t, _)| model.shape(t))
        .map(|s| s.kind)
        .unwrap_or_else(|| "string".into())
}

#[derive(Clone, Copy)]
enum TimeFormat {
    DateTime,
    HttpDate,
}

/// A value in a URI, query or header.
fn scalar(value: &Value, kind: &str, time: TimeFormat) -> String {
    if kind == "timestamp"
        && let Some(t) = instant(value)
    {
        return match time {
            TimeFormat::DateTime => humantime::format_rfc3339_seconds(t).to_string(),
            TimeFormat::HttpDate => http_date(t),
        };
    }
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp argument: an RFC 3339 string or epoch seconds.
fn instant(value: &Value) -> Option<SystemTime> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0))),
        Value::String(s) => humantime::parse_rfc3339_weak(s).ok(),
        _ => None,
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    // humantime prints RFC 3339; the fields are rearranged, the weekday computed.
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rfc = humantime::format_rfc3339_seconds(t).to_string(); // 1994-11-06T08:49:37Z
    let (date, time) = rfc
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or(("1970-01-01", "00:00:00"));
    let parts: Vec<&str> = date.split('-').collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = parts
        .get(1)
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(1);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][((secs / 86_400) % 7) as usize];
    format!(
        "{weekday}, {} {} {} {time} GMT",
        parts.get(2).unwrap_or(&"01"),
        months[month.clamp(1, 12) - 1],
        parts.first().unwrap_or(&"1970")
    )
}

fn member_wire(
    model: &Model,
    target: &str,
    value: Value,
    json_names: bool,
) -> Result<Value, String> {
    match model.shape(target) {
        Some(shape) => wire(model, &shape, value, json_names),
        None => Ok(value),
    }
}

/// A value as the protocol's JSON: timestamps as epoch seconds, structure keys by
/// `jsonName` (restJson1), the rest as given.
fn wire(model: &Model, shape: &Shape, value: Value, json_names: bool) -> Result<Value, String> {
    Ok(match (shape.kind.as_str(), value) {
        ("structure" | "union", Value::Object(map)) => {
            let mut out = Map::new();
            for (k, v) in map {
                match shape.member(&k) {
                    Some((_, target, traits)) => {
                        let key = if json_names {
                            traits
                                .get("smithy.api#jsonName")
                                .and_then(Value::as_str)
                                .unwrap_or(&k)
                                .to_string()
                        } else {
                            k.clone()
                        };
                        out.insert(key, member_wire(model, target, v, json_names)?);
                    }
                    None => {
                        return Err(format!(
                            "`{k}` is not a member of {}",
                            local_name(&shape.id)
                        ));
                    }
                }
            }
            Value::Object(out)
        }
        ("list" | "set", Value::Array(items)) => {
            let target = shape
                .member("member")
                .map(|(_, t, _)| t.clone())
                .unwrap_or_default();
            Value::Array(
                items
                    .into_iter()
                    .map(|v| member_wire(model, &target, v, json_names))
                    .collect::<Result<_, _>>()?,
            )
        }
        ("map", Value::Object(map)) => {
            let target = shape
                .member("value")
                .map(|(_, t, _)| t.clone())
                .unwrap_or_default();
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k, member_wire(model, &target, v, json_names)?);
            }
            Value::Object(out)
        }
        ("timestamp", v) => match (instant(&v), &v) {
            (_, Value::Number(_)) => v,
            (Some(t), _) => {
                let secs = t
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                if secs.fract() == 0.0 {
                    json!(secs as u64)
                } else {
                    json!(secs)
                }
            }
            (None, _) => {
                return Err(format!(
                    "`{v}` is not a timestamp (RFC 3339 or epoch seconds)"
                ));
            }
        },
        (_, v) => v,
    })
}

/// The AWS error code and message of a failed answer.
pub fn error_message(answer: &HttpAnswer) -> Option<String> {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let code = answer
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            ["__type", "code", "Code"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_string))
        })
        .map(|c| {
            let c = c.split(':').next().unwrap_or(&c);
            c.rsplit_once('#').map_or(c, |(_, n)| n).to_string()
        });
    let message = ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_string));
    match (code, message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (Some(c), None) => Some(c),
        (None, m) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::parse(json!({"smithy": "2.0", "shapes": {
            "ex#In": {"type": "structure", "members": {
                "Id": {"target": "smithy.api#String", "traits": {"smithy.api#httpLabel": {}, "smithy.api#required": {}}},
                "Key": {"target": "smithy.api#String", "traits": {"smithy.api#httpLabel": {}, "smithy.api#required": {}}},
                "Limit": {"target": "smithy.api#Integer", "traits": {"smithy.api#httpQuery": "limit"}},
                "Kinds": {"target": "ex#Strings", "traits": {"smithy.api#httpQuery": "kind"}},
                "Since": {"target": "smithy.api#Timestamp", "traits": {"smithy.api#httpHeader": "X-Since"}},
                "Meta": {"target": "ex#Meta", "traits": {"smithy.api#httpPrefixHeaders": "x-meta-"}},
                "Name": {"target": "smithy.api#String", "traits": {"smithy.api#jsonName": "name"}},
                "At": {"target": "smithy.api#Timestamp"}
            }},
            "ex#Strings": {"type": "list", "member": {"target": "smithy.api#String"}},
            "ex#Meta": {"type": "map", "key": {"target": "smithy.api#String"}, "value": {"target": "smithy.api#String"}}
        }})).unwrap()
    }

    #[test]
    fn rest_json_binds_members_where_the_model_says() {
        let model = model();
        let http = HttpBinding {
            method: http::Method::PUT,
            uri: "/things/{Id}/keys/{Key+}?x-id=Put".into(),
        };
        let call = Call {
            model: &model,
            protocol: Protocol::RestJson1,
            target: "",
            http: Some(&http),
            input: Some("ex#In"),
        };
        let endpoint = url::Url::parse("http://127.0.0.1:9").unwrap();
        let args = json!({"Id": "a b/c", "Key": "x/y z", "Limit": 5, "Kinds": ["p", "q"], "Since": "1994-11-06T08:49:37Z",
                          "Meta": {"color": "blue"}, "Name": "n", "At": "2026-01-02T03:04:05Z"});
        let request = build(
            &call,
            &reqwest::Client::new(),
            &endpoint,
            args.as_object().unwrap().clone(),
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/things/a%20b%2Fc/keys/x/y%20z?x-id=Put&kind=p&kind=q&limit=5"
        );
        assert_eq!(
            request.headers()["x-since"],
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(request.headers()["x-meta-color"], "blue");
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body, json!({"name": "n", "At": 1767323045}));
        let e = build(
            &call,
            &reqwest::Client::new(),
            &endpoint,
            json!({"Id": "a"}).as_object().unwrap().clone(),
        )
        .unwrap_err();
        assert_eq!(e, "missing required argument(s): `Key`");
        let e = build(
            &call,
            &reqwest::Client::new(),
            &endpoint,
            json!({"Id": "a", "Key": "b", "Nope": 1})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap_err();
        assert!(
            e.starts_with("unknown argument(s) `Nope`; this tool takes: At, Id, Key"),
            "{e}"
        );
    }

    #[test]
    fn aws_json_posts_the_input_with_its_target() {
        let model = model();
        let call = Call {
            model: &model,
            protocol: Protocol::AwsJson1_1,
            target: "Svc_2020.DoIt",
            http: None,
            input: Some("ex#In"),
        };
        let endpoint = url::Url::parse("https://svc.us-east-1.amazonaws.com").unwrap();
        let args = json!({"Id": "i", "Key": "k", "Name": "n", "At": 10});
        let request = build(
            &call,
            &reqwest::Client::new(),
            &endpoint,
            args.as_object().unwrap().clone(),
        )
        .unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.url().as_str(),
            "https://svc.us-east-1.amazonaws.com/"
        );
        assert_eq!(request.headers()["x-amz-target"], "Svc_2020.DoIt");
        assert_eq!(
            request.headers()["content-type"],
            "application/x-amz-json-1.1"
        );
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"Id": "i", "Key": "k", "Name": "n", "At": 10}),
            "awsJson ignores jsonName"
        );
    }

    #[test]
    fn errors_name_the_code_and_message() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            "ResourceNotFoundException:http://internal.amazon.com/"
                .parse()
                .unwrap(),
        );
        let answer = HttpAnswer {
            status: 400,
            headers,
            body: br#"{"message":"Requested resource not found"}"#.to_vec(),
            note: None,
        };
        assert_eq!(
            error_message(&answer).unwrap(),
            "ResourceNotFoundException: Requested resource not found"
        );
        let answer = HttpAnswer {
            status: 400,
            headers: http::HeaderMap::new(),
            body: br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceInUseException","Message":"in use"}"#.to_vec(),
            note: None,
        };
        assert_eq!(
            error_message(&answer).unwrap(),
            "ResourceInUseException: in use"
        );
    }
}
