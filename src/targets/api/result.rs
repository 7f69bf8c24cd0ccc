//! MCP tool results from HTTP answers.
//!
//! - Success (2xx): one text block with the body as sent (so the model sees exactly what the
//!   API said), and `structuredContent` when the body is JSON: the body itself when it is an
//!   object, else `{"result": body}` (MCP structured content is always an object). A kind that
//!   declared an `outputSchema` asks for [`Structured::Declared`]: `null` members are then
//!   dropped (the Gateway's schema subset cannot say "or null", and a client validates the
//!   content against the schema), and a body that is not JSON gives `{}`.
//! - Failure (any other status): `isError: true` and one text block
//!   `HTTP 404 Not Found: <the API's message>`, then the body (cut at [`ERROR_BODY_SHOWN`]),
//!   so the model can tell what to change.

use serde_json::{Map, Value, json};

use crate::targets::http::HttpAnswer;

/// How much of an error body the tool result shows.
pub const ERROR_BODY_SHOWN: usize = 4096;
/// How much of a message extracted from an error body is kept.
const MESSAGE_MAX: usize = 1000;

/// What the kind declared about structured output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structured {
    /// No `outputSchema`: JSON bodies are passed as they are (wrapped when not objects).
    Free,
    /// An `outputSchema` was declared; a non-object JSON body is wrapped as `result`.
    Declared,
}

/// A tool error with one text block.
pub fn tool_error(text: String) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": true })
}

/// Whether the answer's content type is JSON (`application/json`, `…+json`).
pub fn is_json(answer: &HttpAnswer) -> bool {
    answer
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| m == "application/json" || m.ends_with("+json") || m.contains("amz-json"))
}

/// The body as text: UTF-8 as it is, anything else described.
pub fn body_text(answer: &HttpAnswer) -> String {
    match std::str::from_utf8(&answer.body) {
        Ok(text) => text.to_string(),
        Err(_) => format!(
            "(binary body of {} bytes, {})",
            answer.body.len(),
            answer
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type")
        ),
    }
}

/// `HTTP 404 Not Found`.
pub fn status_line(status: u16) -> String {
    match http::StatusCode::from_u16(status) {
        Ok(s) => format!("HTTP {s}"),
        Err(_) => format!("HTTP {status}"),
    }
}

/// A successful answer as a tool result.
pub fn success(answer: &HttpAnswer, structured: Structured) -> Value {
    let parsed: Option<Value> = (!answer.body.is_empty())
        .then(|| serde_json::from_slice(&answer.body).ok())
        .flatten()
        .filter(|_| is_json(answer) || answer.body.first().is_some_and(|b| *b == b'{'));
    let text = if answer.body.is_empty() {
        status_line(answer.status)
    } else {
        body_text(answer)
    };
    let mut result = Map::new();
    result.insert("content".into(), json!([{ "type": "text", "text": text }]));
    let content = match (parsed, structured) {
        (Some(Value::Object(body)), Structured::Free) => Some(Value::Object(body)),
        (Some(Value::Object(mut body)), Structured::Declared) => {
            drop_nulls(&mut body);
            Some(Value::Object(body))
        }
        (Some(mut other), Structured::Declared) => {
            drop_nulls_in(&mut other);
            Some(json!({ "result": other }))
        }
        (Some(other), Structured::Free) => Some(json!({ "result": other })),
        (None, Structured::Declared) => Some(json!({})),
        (None, Structured::Free) => None,
    };
    if let Some(content) = content {
        result.insert("structuredContent".into(), content);
    }
    Value::Object(result)
}

/// A failed answer as a tool error: the status, the API's message (found by `message_of`,
/// or the common fields of JSON error bodies), why the sender gave up, then the body.
pub fn failure(answer: &HttpAnswer, message_of: impl Fn(&HttpAnswer) -> Option<String>) -> Value {
    let mut text = status_line(answer.status);
    let message = message_of(answer).or_else(|| {
        serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| json_message(&v))
    });
    if let Some(message) = message {
        text.push_str(": ");
        text.push_str(&cut(&message, MESSAGE_MAX));
    }
    if let Some(note) = &answer.note {
        text.push_str(&format!(" ({note})"));
    }
    if !answer.body.is_empty() {
        text.push_str("\n\n");
        text.push_str(&cut(&body_text(answer), ERROR_BODY_SHOWN));
    }
    tool_error(text)
}

/// The message of a JSON error body, from the fields APIs commonly use: `message`,
/// `detail` (FastAPI: a string, or a list of `{loc, msg}`), `error` (a string or an object
/// with a message), `error_description`, `title` (RFC 9457), `errors[0].message`.
pub fn json_message(body: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let obj = body.as_object()?;
    for key in ["message", "Message", "errorMessage"] {
        if let Some(m) = obj.get(key).and_then(text) {
            return Some(m);
        }
    }
    if let Some(detail) = obj.get("detail") {
        if let Some(m) = text(detail) {
            return Some(m);
        }
        if let Some(items) = detail.as_array() {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|item| {
                    let msg = item.get("msg").and_then(Value::as_str)?;
                    let loc = item
                        .get("loc")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|p| p.as_str().map(str::to_string).unwrap_or(p.to_string()))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    Some(if loc.is_empty() {
                        msg.to_string()
                    } else {
                        format!("{loc}: {msg}")
                    })
                })
                .collect();
            if !parts.is_empty() {
                return Some(parts.join("; "));
            }
        }
    }
    if let Some(error) = obj.get("error") {
        if let Some(m) = text(error) {
            let description = obj.get("error_description").and_then(Value::as_str);
            return Some(match description {
                Some(d) => format!("{m}: {d}"),
                None => m,
            });
        }
        if let Some(m) = json_message(error) {
            return Some(m);
        }
    }
    if let Some(title) = obj.get("title").and_then(text) {
        return Some(title);
    }
    obj.get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .and_then(json_message)
}

/// Removes `null` members from objects, recursively (array elements stay).
fn drop_nulls(object: &mut Map<String, Value>) {
    object.retain(|_, v| !v.is_null());
    for value in object.values_mut() {
        drop_nulls_in(value);
    }
}

fn drop_nulls_in(value: &mut Value) {
    match value {
        Value::Object(o) => drop_nulls(o),
        Value::Array(items) => items.iter_mut().for_each(drop_nulls_in),
        _ => {}
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: &str, body: &str) -> HttpAnswer {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        HttpAnswer {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            note: None,
        }
    }

    #[test]
    fn json_bodies_become_structured_content() {
        let r = success(
            &answer(200, "application/json", r#"{"a":1,"b":null}"#),
            Structured::Free,
        );
        assert_eq!(r["content"][0]["text"], r#"{"a":1,"b":null}"#);
        assert_eq!(r["structuredContent"], json!({"a": 1, "b": null}));
        let r = success(
            &answer(
                200,
                "application/json",
                r#"{"a":{"b":null,"c":[{"d":null}]}}"#,
            ),
            Structured::Declared,
        );
        assert_eq!(r["structuredContent"], json!({"a": {"c": [{}]}}));
        let r = success(&answer(200, "application/json", "[1,2]"), Structured::Free);
        assert_eq!(r["structuredContent"], json!({"result": [1, 2]}));
        let r = success(&answer(200, "text/plain", "hello"), Structured::Free);
        assert!(r.get("structuredContent").is_none());
        assert_eq!(r["content"][0]["text"], "hello");
        let r = success(&answer(204, "text/plain", ""), Structured::Declared);
        assert_eq!(r["content"][0]["text"], "HTTP 204 No Content");
        assert_eq!(r["structuredContent"], json!({}));
        assert!(r.get("isError").is_none());
    }

    #[test]
    fn failures_carry_status_and_message() {
        let r = failure(
            &answer(404, "application/json", r#"{"detail":"Item not found"}"#),
            |_| None,
        );
        assert_eq!(r["isError"], true);
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("HTTP 404 Not Found: Item not found\n\n{"),
            "{text}"
        );
        let fastapi = r#"{"detail":[{"type":"int_parsing","loc":["path","item_id"],"msg":"Input should be a valid integer"}]}"#;
        let r = failure(&answer(422, "application/json", fastapi), |_| None);
        assert!(r["content"][0]["text"].as_str().unwrap().starts_with(
            "HTTP 422 Unprocessable Entity: path.item_id: Input should be a valid integer"
        ));
        let r = failure(&answer(500, "text/plain", "boom"), |_| None);
        assert_eq!(
            r["content"][0]["text"],
            "HTTP 500 Internal Server Error\n\nboom"
        );
        for (body, message) in [
            (
                json!({"error": "invalid_grant", "error_description": "expired"}),
                "invalid_grant: expired",
            ),
            (json!({"error": {"code": 7, "message": "quota"}}), "quota"),
            (json!({"title": "Not Found", "status": 404}), "Not Found"),
            (json!({"errors": [{"message": "bad id"}]}), "bad id"),
        ] {
            assert_eq!(json_message(&body).as_deref(), Some(message));
        }
    }
}
