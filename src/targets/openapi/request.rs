//! A tool call's arguments → the operation's HTTP request: the path template filled in
//! (values percent-encoded, see [`super::style`]), query, header and cookie parameters in
//! their styles, and the body as JSON, a form or text.
//!
//! Arguments are checked only as far as building the request needs: a missing required
//! parameter, an unknown argument or a header value that cannot be sent is an error the
//! model is told about; types are the API's to check (its 4xx answer reaches the model too).
//! A `null` argument counts as absent.

use http::HeaderValue;
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE};
use serde_json::{Map, Value};

use super::operation::{BodyShape, Encoding, Operation};
use super::style::{self, Location};

pub fn build(
    client: &reqwest::Client,
    endpoint: &url::Url,
    op: &Operation,
    mut args: Map<String, Value>,
) -> Result<reqwest::Request, String> {
    args.retain(|_, v| !v.is_null());
    let mut missing = Vec::new();
    let mut path = op.path.clone();
    let mut query: Vec<String> = Vec::new();
    let mut headers = http::HeaderMap::new();
    let mut cookies = Vec::new();
    for p in &op.params {
        let Some(value) = args.remove(&p.arg) else {
            if p.required {
                missing.push(format!("`{}` ({} parameter)", p.arg, p.location.as_str()));
            }
            continue;
        };
        let value = if p.json {
            Value::String(value.to_string())
        } else {
            value
        };
        match p.location {
            Location::Path => {
                path = path.replace(
                    &format!("{{{}}}", p.name),
                    &style::path(&p.name, &value, p.style, p.explode),
                );
            }
            Location::Query => query.extend(style::query(
                &p.name,
                &value,
                p.style,
                p.explode,
                p.allow_reserved,
            )),
            Location::Header => {
                let text = style::header(&value, p.explode);
                let value = HeaderValue::from_str(&text).map_err(|_| {
                    format!(
                        "argument `{}` cannot be sent in a header (control characters?)",
                        p.arg
                    )
                })?;
                let name = http::HeaderName::from_bytes(p.name.as_bytes())
                    .map_err(|_| format!("`{}` is not a header name", p.name))?;
                headers.insert(name, value);
            }
            Location::Cookie => cookies.push(style::cookie(&p.name, &value)),
        }
    }
    let body = match &op.body {
        None => None,
        Some(body) => {
            let value = match &body.shape {
                BodyShape::Whole(arg) => match args.remove(arg) {
                    Some(v) => Some(v),
                    None if body.required => {
                        missing.push(format!("`{arg}` (request body)"));
                        None
                    }
                    None => None,
                },
                BodyShape::Flat { keys, open } => {
                    let taken: Vec<String> = args
                        .keys()
                        .filter(|k| *open || keys.contains(*k))
                        .cloned()
                        .collect();
                    let mut object = Map::new();
                    for k in taken {
                        let v = args.remove(&k).expect("listed above");
                        object.insert(k, v);
                    }
                    (!object.is_empty() || body.required).then_some(Value::Object(object))
                }
            };
            value.map(|v| encode_body(body.encoding, &v).map(|b| (body.content_type.clone(), b)))
        }
    }
    .transpose()?;
    if !missing.is_empty() {
        return Err(format!(
            "missing required argument(s): {}",
            missing.join(", ")
        ));
    }
    if !args.is_empty() {
        let unknown: Vec<String> = args.keys().map(|k| format!("`{k}`")).collect();
        return Err(format!(
            "unknown argument(s) {}; this tool takes: {}",
            unknown.join(", "),
            expected(op)
        ));
    }

    let base = op.base.as_ref().unwrap_or(endpoint);
    let mut text = format!("{}{path}", base.as_str().trim_end_matches('/'));
    if !query.is_empty() {
        text.push(if base.query().is_some() { '&' } else { '?' });
        text.push_str(&query.join("&"));
    }
    let url = url::Url::parse(&text).map_err(|e| format!("request URL: {e}"))?;
    let mut builder = client
        .request(op.method.clone(), url)
        .header(ACCEPT, op.accept);
    if !cookies.is_empty() {
        let cookie = HeaderValue::from_str(&cookies.join("; ")).map_err(|e| e.to_string())?;
        builder = builder.header(COOKIE, cookie);
    }
    builder = builder.headers(headers);
    if let Some((content_type, bytes)) = body {
        builder = builder.header(CONTENT_TYPE, content_type).body(bytes);
    }
    builder.build().map_err(|e| e.without_url().to_string())
}

fn encode_body(encoding: Encoding, value: &Value) -> Result<Vec<u8>, String> {
    Ok(match encoding {
        Encoding::Json => serde_json::to_vec(value).map_err(|e| e.to_string())?,
        Encoding::Text => style::scalar(value).into_bytes(),
        Encoding::Form => {
            let Value::Object(fields) = value else {
                return Err("a form body must be an object".into());
            };
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                match v {
                    Value::Array(items) => {
                        for item in items {
                            form.append_pair(k, &style::scalar(item));
                        }
                    }
                    other => {
                        form.append_pair(k, &style::scalar(other));
                    }
                }
            }
            form.finish().into_bytes()
        }
    })
}

/// The arguments an operation takes, for error messages.
fn expected(op: &Operation) -> String {
    let mut names: Vec<String> = op.params.iter().map(|p| p.arg.clone()).collect();
    match op.body.as_ref().map(|b| &b.shape) {
        Some(BodyShape::Whole(arg)) => names.push(arg.clone()),
        Some(BodyShape::Flat { keys, .. }) => names.extend(keys.iter().cloned()),
        None => {}
    }
    if names.is_empty() {
        "no arguments".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::openapi::operation::{Scope, map_document};
    use serde_json::json;

    fn operation(doc: Value) -> Operation {
        let mut mapped = map_document(
            &doc,
            &Scope {
                admit: &|_, _| true,
                own_servers: true,
                document_url: None,
            },
        );
        assert!(mapped.notes.is_empty(), "{:?}", mapped.notes);
        mapped.tools.remove(0).1
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn builds_the_exact_request() {
        let op = operation(
            json!({"openapi": "3.0.0", "paths": {"/v1/items/{item id}/tags/{tag}": {"post": {
                "parameters": [
                    {"name": "item id", "in": "path", "schema": {"type": "integer"}},
                    {"name": "tag", "in": "path", "schema": {"type": "string"}},
                    {"name": "ids", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
                    {"name": "fields", "in": "query", "explode": false, "schema": {"type": "array", "items": {"type": "string"}}},
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "X-Request-Id", "in": "header", "schema": {"type": "string"}},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}}
                ],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"name": {"type": "string"}, "price": {"type": "number"}}}}}},
                "responses": {"201": {"description": "made"}}
            }}}}),
        );
        let endpoint = url::Url::parse("http://127.0.0.1:9/api/").unwrap();
        let client = reqwest::Client::new();
        let request = build(&client, &endpoint, &op, args(json!({
            "item_id": 7, "tag": "a/b c", "ids": [1, 2], "fields": ["x", "y"], "q": "é&=", "X-Request-Id": "r-1",
            "session": "s 1", "name": "widget", "price": 2.5, "ignored": null
        }))).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/api/v1/items/7/tags/a%2Fb%20c?ids=1&ids=2&fields=x,y&q=%C3%A9%26%3D"
        );
        assert_eq!(request.headers()["x-request-id"], "r-1");
        assert_eq!(request.headers()["cookie"], "session=s%201");
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body, json!({"name": "widget", "price": 2.5}));

        let e = build(
            &client,
            &endpoint,
            &op,
            args(json!({"tag": "t", "colour": 1})),
        )
        .unwrap_err();
        assert!(
            e.contains("missing required argument(s): `item_id` (path parameter)"),
            "{e}"
        );
        let e = build(
            &client,
            &endpoint,
            &op,
            args(json!({"item_id": 1, "tag": "t", "colour": 1})),
        )
        .unwrap_err();
        assert!(
            e.contains("unknown argument(s) `colour`; this tool takes: item_id, tag, ids"),
            "{e}"
        );
        let e = build(
            &client,
            &endpoint,
            &op,
            args(json!({"item_id": 1, "tag": "t", "X-Request-Id": "a\nb"})),
        )
        .unwrap_err();
        assert!(e.contains("cannot be sent in a header"), "{e}");
    }

    #[test]
    fn form_and_whole_bodies() {
        let op = operation(
            json!({"openapi": "3.0.0", "paths": {"/pet/{petId}": {"post": {
                "parameters": [{"name": "petId", "in": "path", "schema": {"type": "integer"}}],
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"name": {"type": "string"}, "status": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {}
            }}}}),
        );
        let endpoint = url::Url::parse("http://h.example").unwrap();
        let request = build(
            &reqwest::Client::new(),
            &endpoint,
            &op,
            args(json!({"petId": 3, "name": "Rex B", "tags": ["a", "b&c"]})),
        )
        .unwrap();
        assert_eq!(request.url().as_str(), "http://h.example/pet/3");
        assert_eq!(
            request.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            request.body().unwrap().as_bytes().unwrap(),
            b"name=Rex+B&tags=a&tags=b%26c"
        );

        let op = operation(
            json!({"openapi": "3.0.0", "servers": [{"url": "http://other.example/v2"}], "paths": {"/batch": {"put": {
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "items": {"type": "integer"}}}}},
                "responses": {}
            }}}}),
        );
        assert!(
            build(&reqwest::Client::new(), &endpoint, &op, Map::new())
                .unwrap_err()
                .contains("`body` (request body)")
        );
        let request = build(
            &reqwest::Client::new(),
            &endpoint,
            &op,
            args(json!({"body": [1, 2]})),
        )
        .unwrap();
        assert_eq!(request.body().unwrap().as_bytes().unwrap(), b"[1,2]");
        assert_eq!(
            request.url().as_str(),
            "http://h.example/batch",
            "document servers are the target's endpoint, not per operation"
        );
    }
}
