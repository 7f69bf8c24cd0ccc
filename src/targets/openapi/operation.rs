//! One OpenAPI operation → one MCP tool, and what a call needs to build its request.
//!
//! Rules (the README's "OpenAPI targets" section says the same for users):
//!
//! 1. **Name**: the `operationId` with characters outside `[A-Za-z0-9_-]` replaced by `_`;
//!    without one, `{method}_{path}` (`get_pets_petId`). A name already taken gets `_2`,
//!    `_3`, …. The catalog then applies the prefix and the 64-character rule.
//! 2. **Description**: `summary`, then `description`; `Deprecated.` in front when the
//!    operation is; `METHOD /path` when there is neither. `title` is the summary.
//! 3. **Arguments**: one `inputSchema` object. Each parameter (path item's, then the
//!    operation's, which override by name and location) is a property named after it, with
//!    characters outside `[A-Za-z0-9_.-]` replaced by `_`; when two parameters would share
//!    a name, the later one gets `_{in}` (`id_query`). Path parameters are required. Header
//!    parameters named `Accept`, `Content-Type` or `Authorization` are ignored (as OpenAPI
//!    says). The JSON or form request body's properties are arguments of their own when it
//!    is an object with properties none of which collides with a parameter; otherwise the
//!    whole body is the argument `body`. Every schema goes through the Gateway normalizer
//!    (`catalog::schema`), which inlines `$ref`s and handles recursion, `nullable`, `allOf`,
//!    `oneOf` and the rest by its numbered rules.
//! 4. **Request body media types**, in order of preference: `application/json` (and
//!    `*/*+json`), `application/x-www-form-urlencoded`, `text/plain`. A body with none of
//!    these (multipart, binary, XML) is unsupported: the operation is left out when the
//!    body is required, and the body is when it is not.
//! 5. **Output**: when every 2xx response is JSON with a schema and the first is an object
//!    (or an array, exposed as `{"result": […]}`), it becomes the `outputSchema`, normalized
//!    and with `required` removed (an API may omit fields; `null`s are dropped from the
//!    structured content, which the subset cannot type).
//! 6. **Annotations**: GET, HEAD and OPTIONS are `readOnlyHint: true`; PUT and DELETE
//!    `idempotentHint: true`; DELETE `destructiveHint: true`; every tool `openWorldHint: true`.
//! 7. **Not supported** (reported per operation by `check` and in the log, the rest work):
//!    `$ref`s to other documents, parameters with a non-JSON `content`, a style a location
//!    does not define, a path variable with no parameter; callbacks are ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::document::{bundle, resolve, server_url};
use super::style::{Location, Style};
use crate::catalog::schema::normalize_for_gateway;
use crate::targets::api::result::Structured;

pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The longest argument name model APIs take.
const MAX_ARG_LEN: usize = 64;

#[derive(Debug)]
pub struct Operation {
    pub method: http::Method,
    /// The path template as written, e.g. `/pets/{petId}`.
    pub path: String,
    /// The operation's (or its path item's) own server, when the target has no `base_url`.
    pub base: Option<url::Url>,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub accept: &'static str,
    pub structured: Structured,
}

#[derive(Debug)]
pub struct Param {
    /// The name as sent.
    pub name: String,
    /// The argument's name in the tool's input.
    pub arg: String,
    pub location: Location,
    pub style: Style,
    pub explode: bool,
    pub allow_reserved: bool,
    pub required: bool,
    /// A `content: application/json` parameter: its value is sent as JSON text.
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Form,
    Text,
}

#[derive(Debug)]
pub struct Body {
    pub content_type: String,
    pub encoding: Encoding,
    pub required: bool,
    pub shape: BodyShape,
}

#[derive(Debug)]
pub enum BodyShape {
    /// The body's properties are top-level arguments; `open`: the schema explicitly allows
    /// more (`additionalProperties`), so other arguments go into the body too.
    Flat { keys: BTreeSet<String>, open: bool },
    /// The whole body is this one argument.
    Whole(String),
}

/// Tools, and notes about what could not be mapped.
pub struct Mapped {
    pub tools: Vec<(Map<String, Value>, Operation)>,
    pub notes: Vec<String>,
}

/// What decides which operations become tools, and where they go.
pub struct Scope<'a> {
    pub admit: &'a dyn Fn(&str, &str) -> bool,
    /// Operation-level servers apply only when the target has no `base_url`.
    pub own_servers: bool,
    pub document_url: Option<&'a url::Url>,
}

/// Maps every operation of `doc` that `scope` admits.
pub fn map_document(doc: &Value, scope: &Scope<'_>) -> Mapped {
    let mut tools = Vec::new();
    let mut notes = Vec::new();
    let mut taken = BTreeSet::new();
    let paths = doc.get("paths").and_then(Value::as_object);
    for (path, item) in paths.into_iter().flatten() {
        let item = match resolve(doc, item) {
            Ok(item) => item,
            Err(e) => {
                notes.push(format!("{path}: left out: {e}"));
                continue;
            }
        };
        for method in METHODS {
            let Some(op) = item.get(method).filter(|o| o.is_object()) else {
                continue;
            };
            let base_name = tool_name(op, method, path);
            let signature = format!("{} {path}", method.to_ascii_uppercase());
            if !(scope.admit)(&base_name, &signature) {
                continue;
            }
            let mut name = base_name.clone();
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{base_name}_{n}");
                n += 1;
            }
            let mut op_notes = Vec::new();
            match map_operation(doc, scope, path, item, method, op, &name, &mut op_notes) {
                Ok((tool, operation)) => {
                    notes.extend(
                        op_notes
                            .into_iter()
                            .map(|n| format!("{name} ({signature}): {n}")),
                    );
                    tools.push((tool, operation));
                }
                Err(e) => {
                    taken.remove(&name);
                    notes.push(format!("{name} ({signature}): left out: {e}"));
                }
            }
        }
    }
    Mapped { tools, notes }
}

/// Rule 1.
fn tool_name(op: &Value, method: &str, path: &str) -> String {
    match op
        .get("operationId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(id) => id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None => {
            let mut name = method.to_string();
            for c in path.chars() {
                let c = if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                };
                if !(c == '_' && name.ends_with('_')) {
                    name.push(c);
                }
            }
            name.trim_end_matches('_').to_string()
        }
    }
}

/// An argument name from a parameter name (rule 3).
fn arg_name(name: &str) -> String {
    let mut arg: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    arg.truncate(MAX_ARG_LEN);
    if arg.is_empty() { "_".into() } else { arg }
}

#[allow(clippy::too_many_arguments)]
fn map_operation(
    doc: &Value,
    scope: &Scope<'_>,
    path: &str,
    item: &Value,
    method: &str,
    op: &Value,
    name: &str,
    notes: &mut Vec<String>,
) -> Result<(Map<String, Value>, Operation), String> {
    let mut properties = Map::new();
    let mut required = Vec::new();

    // Parameters: the path item's, overridden by the operation's (same name and location).
    let mut declared: Vec<(String, Location, &Value)> = Vec::new();
    for list in [item.get("parameters"), op.get("parameters")]
        .into_iter()
        .flatten()
    {
        for p in list.as_array().ok_or("`parameters` must be a list")? {
            let p = resolve(doc, p)?;
            let pname = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a parameter without `name`")?;
            let loc = p.get("in").and_then(Value::as_str).unwrap_or_default();
            let location = Location::parse(loc)
                .ok_or_else(|| format!("parameter `{pname}`: unknown location `in: {loc}`"))?;
            declared.retain(|(n, l, _)| !(n == pname && *l == location));
            declared.push((pname.to_string(), location, p));
        }
    }
    let mut params = Vec::new();
    for (pname, location, p) in declared {
        if location == Location::Header
            && ["accept", "content-type", "authorization"]
                .contains(&pname.to_ascii_lowercase().as_str())
        {
            continue;
        }
        let (schema, json_content) =
            match (p.get("schema"), p.get("content").and_then(Value::as_object)) {
                (Some(schema), _) => (schema.clone(), false),
                (None, Some(content)) => {
                    let (media, m) = content
                        .iter()
                        .next()
                        .ok_or_else(|| format!("parameter `{pname}`: empty `content`"))?;
                    if !is_json_media(media) {
                        return Err(format!(
                            "parameter `{pname}`: content `{media}` is not supported (only JSON)"
                        ));
                    }
                    (m.get("schema").cloned().unwrap_or_else(|| json!({})), true)
                }
                (None, None) => (json!({"type": "string"}), false),
            };
        let style = match p.get("style").and_then(Value::as_str) {
            Some(s) => {
                Style::parse(s, location).map_err(|e| format!("parameter `{pname}`: {e}"))?
            }
            None => Style::default_for(location),
        };
        let explode = p
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == Style::Form);
        let required_here = location == Location::Path
            || p.get("required").and_then(Value::as_bool).unwrap_or(false);
        let mut arg = arg_name(&pname);
        if properties.contains_key(&arg) {
            arg = format!("{arg}_{}", location.as_str());
        }
        let mut n = 2;
        while properties.contains_key(&arg) {
            arg = format!("{}_{}_{n}", arg_name(&pname), location.as_str());
            n += 1;
        }
        let mut schema = normalize_piece(doc, &schema, Side::Request, notes);
        let mut description = p
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if p.get("deprecated").and_then(Value::as_bool) == Some(true) {
            description = format!("Deprecated. {description}");
        }
        let place = format!("{} parameter `{pname}`", location.as_str());
        describe(
            &mut schema,
            &description,
            &place,
            &arg,
            &pname,
            json_content,
        );
        properties.insert(arg.clone(), schema);
        if required_here {
            required.push(arg.clone());
        }
        params.push(Param {
            name: pname,
            arg,
            location,
            style,
            explode,
            allow_reserved: p
                .get("allowReserved")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            required: required_here,
            json: json_content,
        });
    }
    for variable in path_variables(path) {
        if !params
            .iter()
            .any(|p| p.location == Location::Path && p.name == variable)
        {
            return Err(format!(
                "path variable `{{{variable}}}` has no path parameter"
            ));
        }
    }

    let body = match op.get("requestBody") {
        None => None,
        Some(b) => request_body(doc, resolve(doc, b)?, &mut properties, &mut required, notes)?,
    };

    if op.get("callbacks").is_some() {
        notes.push("callbacks are ignored".into());
    }
    let (output_schema, structured) = output(doc, op, notes);
    let base = if scope.own_servers {
        server_url(
            &[op.get("servers"), item.get("servers")],
            scope.document_url,
        )?
    } else {
        None
    };

    let mut input = Map::new();
    input.insert("type".into(), json!("object"));
    input.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        input.insert("required".into(), json!(required));
    }
    let (input, _) = normalize_for_gateway(&Value::Object(input));

    let summary = op
        .get("summary")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let details = op
        .get("description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut description = match (summary, details) {
        (Some(s), Some(d)) if d.starts_with(s) => d.to_string(),
        (Some(s), Some(d)) => format!("{s}\n\n{d}"),
        (Some(s), None) => s.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => format!("{} {path}", method.to_ascii_uppercase()),
    };
    if op.get("deprecated").and_then(Value::as_bool) == Some(true) {
        description = format!("Deprecated. {description}");
    }

    let mut tool = Map::new();
    tool.insert("name".into(), json!(name));
    if let Some(s) = summary {
        tool.insert("title".into(), json!(s));
    }
    tool.insert("description".into(), json!(description));
    tool.insert("inputSchema".into(), input);
    if let Some(schema) = output_schema {
        tool.insert("outputSchema".into(), schema);
    }
    tool.insert("annotations".into(), annotations(method));

    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|e| e.to_string())?;
    Ok((
        tool,
        Operation {
            method,
            path: path.to_string(),
            base,
            params,
            body,
            accept: if responds_json(doc, op) {
                "application/json, */*;q=0.5"
            } else {
                "*/*"
            },
            structured,
        },
    ))
}

/// Adds the parameter's description to its (normalized) schema, saying where it goes.
fn describe(
    schema: &mut Value,
    description: &str,
    place: &str,
    arg: &str,
    name: &str,
    json_content: bool,
) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let own = map
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut parts: Vec<String> = [description, own.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    parts.dedup();
    if arg != name || json_content {
        parts.push(format!(
            "(sent as {place}{})",
            if json_content { ", JSON-encoded" } else { "" }
        ));
    }
    if !parts.is_empty() {
        map.insert("description".into(), json!(parts.join(" ")));
    }
}

/// `{name}` variables of a path template.
pub fn path_variables(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(v, _)| v))
        .collect()
}

fn is_json_media(media: &str) -> bool {
    let m = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    m == "application/json" || m.ends_with("+json")
}

/// Rule 4: the request body's media type, schema and arguments.
fn request_body(
    doc: &Value,
    body: &Value,
    properties: &mut Map<String, Value>,
    required: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Option<Body>, String> {
    let body_required = body
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let content = body
        .get("content")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let pick = |want: &dyn Fn(&str) -> bool| content.iter().find(|(m, _)| want(m));
    let chosen = pick(&|m| is_json_media(m))
        .map(|(m, v)| (m, v, Encoding::Json))
        .or_else(|| {
            pick(&|m| m.starts_with("application/x-www-form-urlencoded"))
                .map(|(m, v)| (m, v, Encoding::Form))
        })
        .or_else(|| pick(&|m| m.starts_with("text/plain")).map(|(m, v)| (m, v, Encoding::Text)));
    let Some((media, media_object, encoding)) = chosen else {
        let types = content.keys().cloned().collect::<Vec<_>>().join(", ");
        if body_required {
            return Err(format!(
                "request body media types [{types}] are not supported (JSON, form or text are)"
            ));
        }
        notes.push(format!(
            "optional request body [{types}] is not supported and never sent"
        ));
        return Ok(None);
    };
    let raw_schema = media_object
        .get("schema")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let schema = normalize_piece(doc, &raw_schema, Side::Request, notes);
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let flat_keys: Option<Vec<String>> = schema
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty() && schema.get("type") == Some(&json!("object")))
        .map(|p| p.keys().cloned().collect())
        .filter(|keys: &Vec<String>| {
            keys.iter()
                .all(|k| !properties.contains_key(k) && arg_name(k) == *k)
        });
    let shape = match (encoding, flat_keys) {
        (Encoding::Json | Encoding::Form, Some(keys)) => {
            let body_props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let body_required_keys: Vec<String> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in body_props {
                properties.insert(k, v);
            }
            if body_required {
                required.extend(body_required_keys);
            }
            let open = resolve(doc, &raw_schema)
                .ok()
                .and_then(|s| s.get("additionalProperties"))
                .is_some_and(|a| a == &json!(true) || a.is_object());
            BodyShape::Flat {
                keys: keys.into_iter().collect(),
                open,
            }
        }
        (Encoding::Form, None) => {
            return Err("a form body must be an object with properties".into());
        }
        _ => {
            let mut arg = "body".to_string();
            if properties.contains_key(&arg) {
                arg = "request_body".into();
            }
            let mut schema = schema;
            if let Some(map) = schema.as_object_mut()
                && !description.is_empty()
            {
                let own = map
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let text = if own.is_empty() {
                    description.to_string()
                } else {
                    format!("{description} {own}")
                };
                map.insert("description".into(), json!(text));
            }
            properties.insert(arg.clone(), schema);
            if body_required {
                required.push(arg.clone());
            }
            BodyShape::Whole(arg)
        }
    };
    Ok(Some(Body {
        content_type: media.clone(),
        encoding,
        required: body_required,
        shape,
    }))
}

/// Rule 5: the `outputSchema` and how structured content is shaped.
fn output(doc: &Value, op: &Value, notes: &mut Vec<String>) -> (Option<Value>, Structured) {
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return (None, Structured::Free);
    };
    let success: Vec<&Value> = responses
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .filter_map(|(_, r)| resolve(doc, r).ok())
        .collect();
    let schemas: Vec<Option<&Value>> = success
        .iter()
        .map(|r| {
            r.get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.iter().find(|(m, _)| is_json_media(m)))
                .and_then(|(_, m)| m.get("schema"))
        })
        .collect();
    let Some(Some(first)) = schemas.first() else {
        return (None, Structured::Free);
    };
    if schemas.iter().any(Option::is_none) {
        return (None, Structured::Free);
    }
    let mut schema = normalize_piece(doc, first, Side::Response, notes);
    let wrapped = match schema.get("type").and_then(Value::as_str) {
        Some("object") => schema,
        Some("array") => {
            schema = json!({"type": "object", "properties": {"result": schema}});
            schema
        }
        _ => return (None, Structured::Free),
    };
    let mut out = wrapped;
    strip_required(&mut out);
    // As a root it gets `properties` (rule 12) even when it is a map.
    let (out, _) = normalize_for_gateway(&out);
    (Some(out), Structured::Declared)
}

fn strip_required(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("required");
            for key in ["properties", "items"] {
                match map.get_mut(key) {
                    Some(Value::Object(props)) if key == "properties" => {
                        props.values_mut().for_each(strip_required)
                    }
                    Some(items) if key == "items" => strip_required(items),
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_required),
        _ => {}
    }
}

fn responds_json(doc: &Value, op: &Value) -> bool {
    op.get("responses")
        .and_then(Value::as_object)
        .is_some_and(|rs| {
            rs.values().filter_map(|r| resolve(doc, r).ok()).any(|r| {
                r.get("content")
                    .and_then(Value::as_object)
                    .is_some_and(|c| c.keys().any(|m| is_json_media(m)))
            })
        })
}

/// Rule 6.
fn annotations(method: &str) -> Value {
    let read_only = matches!(method, "get" | "head" | "options");
    let mut a = Map::new();
    a.insert("readOnlyHint".into(), json!(read_only));
    if !read_only {
        a.insert("destructiveHint".into(), json!(method == "delete"));
        a.insert(
            "idempotentHint".into(),
            json!(matches!(method, "put" | "delete")),
        );
    }
    a.insert("openWorldHint".into(), json!(true));
    Value::Object(a)
}

/// Which side of a call a schema describes: properties marked `readOnly` are left out of
/// what the model sends, `writeOnly` ones out of what it gets back (OpenAPI's visibility
/// rules; servers reject writes of read-only fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// One schema of the document, normalized into the Gateway subset with its `$ref`s
/// resolved against the document (the normalizer needs the root object it resolves against,
/// so the schema is wrapped as a property of a root that carries the referenced values).
pub fn normalize_piece(doc: &Value, schema: &Value, side: Side, notes: &mut Vec<String>) -> Value {
    let mut root = Map::new();
    for foreign in bundle(doc, schema, &mut root) {
        let note = format!("`$ref: {foreign}` points to another document; typed as a string");
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    root.insert("type".into(), json!("object"));
    root.insert("properties".into(), json!({ "v": schema }));
    root.remove("required");
    let mut root = Value::Object(root);
    hide(&mut root, doc, side);
    let (out, _) = normalize_for_gateway(&root);
    out.get("properties")
        .and_then(|p| p.get("v"))
        .cloned()
        .unwrap_or_else(|| json!({"type": "string"}))
}

/// Removes the properties `side` does not see (see [`Side`]), everywhere in `value`.
fn hide(value: &mut Value, doc: &Value, side: Side) {
    let flag = match side {
        Side::Request => "readOnly",
        Side::Response => "writeOnly",
    };
    let hidden = |property: &Value| {
        let target = resolve(doc, property).unwrap_or(property);
        property.get(flag) == Some(&json!(true)) || target.get(flag) == Some(&json!(true))
    };
    match value {
        Value::Object(map) => {
            let mut gone = Vec::new();
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                props.retain(|name, p| {
                    let keep = !hidden(p);
                    if !keep {
                        gone.push(name.clone());
                    }
                    keep
                });
            }
            if !gone.is_empty()
                && let Some(Value::Array(required)) = map.get_mut("required")
            {
                required.retain(|r| r.as_str().is_none_or(|r| !gone.iter().any(|g| g == r)));
            }
            map.values_mut().for_each(|v| hide(v, doc, side));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| hide(v, doc, side)),
        _ => {}
    }
}

/// The security schemes the document asks for, in words, for a target without credentials.
pub fn security_hint(doc: &Value) -> Option<String> {
    let schemes = doc.pointer("/components/securitySchemes")?.as_object()?;
    let described: BTreeMap<&String, String> = schemes
        .iter()
        .map(|(name, s)| {
            let kind = s.get("type").and_then(Value::as_str).unwrap_or("?");
            let detail = match kind {
                "apiKey" => format!(
                    "apiKey in {} `{}`",
                    s.get("in").and_then(Value::as_str).unwrap_or("?"),
                    s.get("name").and_then(Value::as_str).unwrap_or("?")
                ),
                "http" => format!(
                    "http {}",
                    s.get("scheme").and_then(Value::as_str).unwrap_or("?")
                ),
                other => other.to_string(),
            };
            (name, detail)
        })
        .collect();
    (!described.is_empty()).then(|| {
        described
            .iter()
            .map(|(n, d)| format!("{n} ({d})"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(doc: &Value) -> Mapped {
        map_document(
            doc,
            &Scope {
                admit: &|_, _| true,
                own_servers: false,
                document_url: None,
            },
        )
    }

    #[test]
    fn names_follow_operation_ids_or_method_and_path() {
        assert_eq!(
            tool_name(&json!({"operationId": "get pet.by/id"}), "get", "/x"),
            "get_pet_by_id"
        );
        assert_eq!(
            tool_name(&json!({}), "get", "/pets/{petId}/toys"),
            "get_pets_petId_toys"
        );
        assert_eq!(
            tool_name(&json!({"operationId": ""}), "delete", "/"),
            "delete"
        );
        assert_eq!(arg_name("filter[status]"), "filter_status_");
    }

    #[test]
    fn parameters_and_body_become_one_input_schema() {
        let doc = json!({
            "openapi": "3.0.3",
            "paths": {"/pets/{petId}": {
                "parameters": [{"name": "petId", "in": "path", "schema": {"type": "integer"}}],
                "put": {
                    "operationId": "updatePet",
                    "summary": "Update a pet",
                    "parameters": [
                        {"name": "petId", "in": "query", "schema": {"type": "string"}, "description": "shadow"},
                        {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                        {"name": "Accept", "in": "header", "schema": {"type": "string"}},
                        {"name": "filter", "in": "query", "content": {"application/json": {"schema": {"type": "object"}}}}
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                }
            }},
            "components": {"schemas": {"Pet": {"type": "object", "required": ["name", "id"], "properties": {
                "name": {"type": "string"}, "tag": {"type": "string", "nullable": true},
                "id": {"$ref": "#/components/schemas/Id"}, "secret": {"type": "string", "writeOnly": true}
            }}, "Id": {"type": "integer", "readOnly": true}}}
        });
        let mapped = map(&doc);
        assert!(mapped.notes.is_empty(), "{:?}", mapped.notes);
        let (tool, op) = &mapped.tools[0];
        assert_eq!(tool["name"], "updatePet");
        assert_eq!(tool["annotations"]["idempotentHint"], true);
        let input = &tool["inputSchema"];
        let props = input["properties"].as_object().unwrap();
        let keys: Vec<&str> = props.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "X-Trace",
                "filter",
                "name",
                "petId",
                "petId_query",
                "secret",
                "tag"
            ]
        );
        assert_eq!(input["required"], json!(["petId", "name"]));
        assert_eq!(props["tag"], json!({"type": "string"}));
        assert!(
            props["filter"]["description"]
                .as_str()
                .unwrap()
                .contains("JSON-encoded")
        );
        assert!(matches!(
            &op.body,
            Some(Body {
                shape: BodyShape::Flat { .. },
                required: true,
                ..
            })
        ));
        assert_eq!(
            tool["outputSchema"]["properties"]["name"],
            json!({"type": "string"})
        );
        assert!(tool["outputSchema"].get("required").is_none());
        let output = tool["outputSchema"]["properties"].as_object().unwrap();
        assert!(
            output.contains_key("id") && !output.contains_key("secret"),
            "{output:?}"
        );
        assert_eq!(op.structured, Structured::Declared);
        let (normalized, changes) = normalize_for_gateway(input);
        assert!(changes.is_empty(), "already in the subset: {changes:?}");
        assert_eq!(&normalized, input);
    }

    #[test]
    fn unsupported_constructs_are_reported_and_the_rest_works() {
        let doc = json!({"openapi": "3.1.0", "paths": {
            "/upload": {"post": {"operationId": "upload", "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object"}}}}, "responses": {}}},
            "/items/{id}": {"get": {"operationId": "getItem", "responses": {}}},
            "/deep/{x}": {"get": {"operationId": "deep", "parameters": [{"name": "x", "in": "path", "style": "deepObject", "schema": {"type": "object"}}], "responses": {}}},
            "/ok": {"get": {"operationId": "ok", "callbacks": {}, "requestBody": {"content": {"application/xml": {}}}, "responses": {"200": {"description": "list", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}}}}}}
        }});
        let mapped = map(&doc);
        let names: Vec<&str> = mapped
            .tools
            .iter()
            .map(|(t, _)| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ok"]);
        let notes = mapped.notes.join("\n");
        for expected in [
            "upload (POST /upload): left out: request body media types [multipart/form-data] are not supported",
            "getItem (GET /items/{id}): left out: path variable `{id}` has no path parameter",
            "deep (GET /deep/{x}): left out: parameter `x`: style `deepObject` is not defined for path parameters",
            "ok (GET /ok): optional request body [application/xml] is not supported",
            "ok (GET /ok): callbacks are ignored",
        ] {
            assert!(
                notes.contains(expected),
                "missing `{expected}` in:\n{notes}"
            );
        }
        let (tool, _) = &mapped.tools[0];
        assert_eq!(
            tool["outputSchema"]["properties"]["result"]["items"],
            json!({"type": "string"})
        );
        assert_eq!(tool["annotations"]["readOnlyHint"], true);
    }

    #[test]
    fn bodies_that_cannot_be_flattened_are_one_argument() {
        let doc = json!({"openapi": "3.0.0", "paths": {"/tags/{name}": {"post": {
            "parameters": [{"name": "name", "in": "path", "schema": {"type": "string"}}],
            "requestBody": {"description": "the new tags", "content": {"application/json": {"schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}},
            "responses": {}
        }}, "/list": {"post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "items": {"type": "integer"}}}}}, "responses": {}}}}});
        let mapped = map(&doc);
        let (list, _) = &mapped.tools[0];
        assert_eq!(list["name"], "post_list");
        assert_eq!(list["inputSchema"]["required"], json!(["body"]));
        let (tags, op) = &mapped.tools[1];
        assert_eq!(tags["name"], "post_tags_name");
        assert_eq!(
            tags["inputSchema"]["properties"]["body"]["description"],
            "the new tags"
        );
        assert!(matches!(&op.body, Some(Body { shape: BodyShape::Whole(a), .. }) if a == "body"));
    }
}
