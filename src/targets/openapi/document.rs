//! The OpenAPI document as a plain `serde_json::Value`: its version, local `$ref`s and
//! servers.
//!
//! Why no OpenAPI crate: the tools need the raw JSON Schema of parameters and bodies (to
//! hand to the schema normalizer, which already inlines `$ref`s, merges `allOf` and handles
//! recursion), 3.0 and 3.1 side by side (3.1 schemas are JSON Schema 2020-12, which typed
//! OpenAPI models either reject or reshape), and per-operation tolerance (one broken
//! operation must not fail the document). Walking the `Value` with a small `$ref` resolver
//! gives all three.
//!
//! `$ref`s are resolved within the document only (`#/components/…`, or any JSON Pointer); a
//! reference to another document is reported for the operation that uses it.

use serde_json::{Map, Value};

/// How many `$ref` hops resolving one object may take (a longer chain is a loop).
const MAX_REF_HOPS: usize = 32;
/// How many referenced schemas one tool may pull in.
const MAX_BUNDLED: usize = 2_000;

/// The OpenAPI version the document declares (`3.0.x` or `3.1.x`), or why it is not one
/// this kind reads.
pub fn version(doc: &Value) -> Result<String, String> {
    if let Some(v) = doc.get("swagger") {
        return Err(format!(
            "Swagger {} documents are not supported: convert it to OpenAPI 3 (e.g. with swagger2openapi)",
            v.as_str().unwrap_or("2.0")
        ));
    }
    let version = match doc.get("openapi") {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("not an OpenAPI document: no `openapi` version field".into()),
    };
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(format!(
            "OpenAPI {version} is not supported (3.0 and 3.1 are)"
        ));
    }
    if !doc.get("paths").is_none_or(Value::is_object) {
        return Err("`paths` must be an object".into());
    }
    Ok(version)
}

/// The value a local reference (`#/components/schemas/Pet`) points to.
pub fn pointer<'a>(doc: &'a Value, reference: &str) -> Result<&'a Value, String> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(format!(
            "`$ref: {reference}` points to another document (only references within the document are resolved)"
        ));
    };
    let decoded = percent_encoding::percent_decode_str(fragment)
        .decode_utf8()
        .map_err(|_| format!("`$ref: {reference}` is not valid UTF-8"))?;
    doc.pointer(&decoded)
        .ok_or_else(|| format!("`$ref: {reference}` points to nothing in the document"))
}

/// `value` with its `$ref` chain followed (parameters, request bodies, responses).
pub fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..MAX_REF_HOPS {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => value = pointer(doc, reference)?,
            None => return Ok(value),
        }
    }
    Err("`$ref` chain too long (a loop?)".into())
}

/// Collects every local `$ref` reachable from `schema` into `skeleton`: a copy of the
/// document holding only the referenced values, each at its own place. A schema placed at
/// the root of a tool's schema beside `skeleton`'s keys then resolves exactly as in the
/// document, and the normalizer inlines it. References to other documents are returned.
pub fn bundle(doc: &Value, schema: &Value, skeleton: &mut Map<String, Value>) -> Vec<String> {
    let mut foreign = Vec::new();
    let mut pending = vec![schema];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(node) = pending.pop() {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref")
                    && seen.len() < MAX_BUNDLED
                    && seen.insert(reference.clone())
                {
                    match pointer(doc, reference) {
                        Ok(target) => {
                            place(skeleton, reference, target);
                            pending.push(target);
                        }
                        Err(_) if !reference.starts_with('#') => foreign.push(reference.clone()),
                        Err(_) => {} // the normalizer reports it as unresolvable
                    }
                }
                pending.extend(map.iter().filter(|(k, _)| *k != "$ref").map(|(_, v)| v));
            }
            Value::Array(items) => pending.extend(items.iter()),
            _ => {}
        }
    }
    foreign
}

/// Inserts `value` into `skeleton` at the JSON Pointer of `reference`.
fn place(skeleton: &mut Map<String, Value>, reference: &str, value: &Value) {
    let Some(decoded) = reference
        .strip_prefix('#')
        .and_then(|f| percent_encoding::percent_decode_str(f).decode_utf8().ok())
    else {
        return;
    };
    let tokens: Vec<String> = decoded
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return; // `#` itself: the whole document is not bundled
    };
    let mut map = skeleton;
    for token in parents {
        let entry = map
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            return; // a pointer into an array: rare; left unresolved
        }
        map = entry.as_object_mut().expect("checked above");
    }
    map.insert(last.clone(), value.clone());
}

/// The base URL of an operation from `servers` (operation, then path item, then document):
/// the first server, its `{variables}` replaced by their defaults, resolved against the
/// document's own URL when relative.
pub fn server_url(
    servers: &[Option<&Value>],
    document_url: Option<&url::Url>,
) -> Result<Option<url::Url>, String> {
    let Some(server) = servers
        .iter()
        .flatten()
        .filter_map(|s| s.as_array())
        .find_map(|list| list.first())
    else {
        return Ok(None);
    };
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .ok_or("a server without `url`")?
        .to_string();
    if let Some(variables) = server.get("variables").and_then(Value::as_object) {
        for (name, variable) in variables {
            let default = match variable.get("default") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(format!("server variable `{name}` has no default")),
            };
            url = url.replace(&format!("{{{name}}}"), &default);
        }
    }
    if url.contains('{') {
        return Err(format!("server `{url}` has variables without a definition"));
    }
    match url::Url::parse(&url) {
        Ok(u) => Ok(Some(u)),
        Err(url::ParseError::RelativeUrlWithoutBase) => match document_url {
            Some(base) => base
                .join(&url)
                .map(Some)
                .map_err(|e| format!("server `{url}`: {e}")),
            None => Err(format!(
                "server `{url}` is relative and the document is a file: set base_url"
            )),
        },
        Err(e) => Err(format!("server `{url}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        assert_eq!(
            version(&json!({"openapi": "3.1.0", "paths": {}})).unwrap(),
            "3.1.0"
        );
        assert!(
            version(&json!({"swagger": "2.0"}))
                .unwrap_err()
                .contains("Swagger 2.0")
        );
        assert!(
            version(&json!({"openapi": "4.0.0"}))
                .unwrap_err()
                .contains("4.0.0")
        );
        assert!(version(&json!({})).unwrap_err().contains("not an OpenAPI"));
    }

    #[test]
    fn refs_resolve_and_bundle() {
        let doc = json!({"components": {"schemas": {
            "Pet": {"type": "object", "properties": {"tag": {"$ref": "#/components/schemas/Tag"}, "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}},
            "Tag": {"type": "string"},
            "a/b": {"type": "integer"}
        }, "parameters": {"Id": {"$ref": "#/components/parameters/Real"}, "Real": {"name": "id", "in": "path"}}}});
        let reference = json!({"$ref": "#/components/parameters/Id"});
        let param = resolve(&doc, &reference).unwrap();
        assert_eq!(param["name"], "id");
        let mut skeleton = Map::new();
        let foreign = bundle(
            &doc,
            &json!({"allOf": [{"$ref": "#/components/schemas/Pet"}, {"$ref": "other.yaml#/X"}, {"$ref": "#/components/schemas/a~1b"}]}),
            &mut skeleton,
        );
        assert_eq!(foreign, vec!["other.yaml#/X".to_string()]);
        let schemas = &skeleton["components"]["schemas"];
        assert!(
            schemas.get("Pet").is_some()
                && schemas.get("Tag").is_some()
                && schemas.get("a/b").is_some()
        );
        let looping = json!({"a": {"$ref": "#/b"}, "b": {"$ref": "#/a"}});
        assert!(
            resolve(&looping, &looping["a"])
                .unwrap_err()
                .contains("loop")
        );
    }

    #[test]
    fn servers_with_variables_and_relative_urls() {
        let doc_url = url::Url::parse("http://127.0.0.1:9/api/v3/openapi.json").unwrap();
        let root = json!([{"url": "https://{env}.example.com:{port}/v1", "variables": {"env": {"default": "prod"}, "port": {"default": "8443"}}}]);
        assert_eq!(
            server_url(&[None, Some(&root)], None)
                .unwrap()
                .unwrap()
                .as_str(),
            "https://prod.example.com:8443/v1"
        );
        let relative = json!([{"url": "/api/v3"}]);
        assert_eq!(
            server_url(&[Some(&relative)], Some(&doc_url))
                .unwrap()
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/api/v3"
        );
        assert!(
            server_url(&[Some(&relative)], None)
                .unwrap_err()
                .contains("base_url")
        );
        assert_eq!(server_url(&[None], None).unwrap(), None);
    }
}
