//! Smithy shapes → JSON Schema, then the Gateway normalizer.
//!
//! Structures and unions become objects (members with `smithy.api#required` required; a
//! union's description says that exactly one member is set), lists arrays, maps objects
//! without fixed properties, enums string or integer enums, timestamps date-time strings on
//! input (converted to the protocol's format when sent) and epoch-second numbers on output,
//! blobs base64 strings, documents untyped. `length`, `range`, `pattern` and `default`
//! traits become the keywords the normalizer folds into descriptions. Every structure and
//! union is a `$defs` entry, so recursive shapes (DynamoDB's `AttributeValue`) are expanded
//! once by the normalizer's rule 5.
//!
//! On the output side `required` and `enum` are left out: AWS adds enum values and omits
//! members freely, and clients validate structured content against the output schema.
//!
//! Documentation is HTML in AWS models; it is turned into plain text and cut.

use serde_json::{Map, Value, json};

use super::model::{Model, Shape, local_name};
use crate::catalog::schema::normalize_for_gateway;

/// The longest member description kept, in characters.
const MEMBER_DOC_MAX: usize = 600;
/// The longest tool description kept, in characters.
pub const OPERATION_DOC_MAX: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Input,
    Output,
}

/// The normalized schema of a structure shape (an operation's input or output).
pub fn structure_schema(model: &Model, id: &str, side: Side) -> Value {
    let mut defs = Map::new();
    let mut root = match model.shape(id) {
        Some(shape) => structure(model, &shape, side, &mut defs),
        None => json!({"type": "object", "properties": {}}),
    };
    if let Some(map) = root.as_object_mut() {
        map.remove("description");
        map.insert("$defs".into(), Value::Object(defs));
    }
    normalize_for_gateway(&root).0
}

fn reference(model: &Model, id: &str, side: Side, defs: &mut Map<String, Value>) -> Value {
    let Some(shape) = model.shape(id) else {
        return json!({});
    };
    let mut schema = match shape.kind.as_str() {
        "structure" | "union" => {
            let key = id.replace(['#', '.'], "_");
            if !defs.contains_key(&key) {
                defs.insert(key.clone(), json!({})); // placeholder: recursion stops here
                let s = structure(model, &shape, side, defs);
                defs.insert(key.clone(), s);
            }
            json!({ "$ref": format!("#/$defs/{key}") })
        }
        "list" | "set" => {
            let item = shape
                .member("member")
                .map(|(_, t, _)| reference(model, t, side, defs))
                .unwrap_or_else(|| json!({}));
            json!({"type": "array", "items": item})
        }
        "map" => {
            let value = shape
                .member("value")
                .map(|(_, t, _)| local_name(t).to_string())
                .unwrap_or_default();
            json!({"type": "object", "description": format!("A map from names to {value} values.")})
        }
        "enum" | "intEnum" if side == Side::Input => {
            let values: Vec<Value> = shape
                .members
                .iter()
                .map(|(name, _, traits)| {
                    traits
                        .get("smithy.api#enumValue")
                        .cloned()
                        .unwrap_or_else(|| json!(name))
                })
                .collect();
            let ty = if shape.kind == "enum" {
                "string"
            } else {
                "integer"
            };
            json!({"type": ty, "enum": values})
        }
        "enum" => json!({"type": "string"}),
        "intEnum" => json!({"type": "integer"}),
        "string" => match shape
            .traits
            .get("smithy.api#enum")
            .and_then(Value::as_array)
        {
            Some(values) if side == Side::Input => {
                let values: Vec<Value> = values
                    .iter()
                    .filter_map(|v| v.get("value").cloned())
                    .collect();
                json!({"type": "string", "enum": values})
            }
            _ => json!({"type": "string"}),
        },
        "blob" => json!({"type": "string", "description": "Base64-encoded bytes."}),
        "timestamp" if side == Side::Input => json!({"type": "string", "format": "date-time"}),
        "timestamp" => json!({"type": "number", "description": "Seconds since the Unix epoch."}),
        "boolean" => json!({"type": "boolean"}),
        "byte" | "short" | "integer" | "long" | "bigInteger" => json!({"type": "integer"}),
        "float" | "double" | "bigDecimal" => json!({"type": "number"}),
        _ => json!({}), // document: any JSON value
    };
    constraints(&shape.traits, &mut schema);
    schema
}

fn structure(model: &Model, shape: &Shape, side: Side, defs: &mut Map<String, Value>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, target, traits) in &shape.members {
        let mut member = reference(model, target, side, defs);
        constraints(traits, &mut member);
        if let Some(doc) = traits
            .get("smithy.api#documentation")
            .and_then(Value::as_str)
        {
            let text = plain_text(doc, MEMBER_DOC_MAX);
            if let (Some(map), false) = (member.as_object_mut(), text.is_empty()) {
                map.insert("description".into(), json!(text));
            }
        }
        if side == Side::Input
            && traits.contains_key("smithy.api#required")
            && shape.kind != "union"
        {
            required.push(name.clone());
        }
        properties.insert(name.clone(), member);
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        out.insert("required".into(), json!(required));
    }
    let mut doc = shape
        .traits
        .get("smithy.api#documentation")
        .and_then(Value::as_str)
        .map(|d| plain_text(d, MEMBER_DOC_MAX))
        .unwrap_or_default();
    if shape.kind == "union" {
        doc = format!("{doc} (Set exactly one member.)")
            .trim()
            .to_string();
    }
    if !doc.is_empty() {
        out.insert("description".into(), json!(doc));
    }
    Value::Object(out)
}

/// `length`, `range`, `pattern` and `default` as the JSON Schema keywords they mean.
fn constraints(traits: &Map<String, Value>, schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let array = map.get("type") == Some(&json!("array"));
    if let Some(length) = traits.get("smithy.api#length") {
        let (lo, hi) = if array {
            ("minItems", "maxItems")
        } else {
            ("minLength", "maxLength")
        };
        if let Some(v) = length.get("min") {
            map.insert(lo.into(), v.clone());
        }
        if let Some(v) = length.get("max") {
            map.insert(hi.into(), v.clone());
        }
    }
    if let Some(range) = traits.get("smithy.api#range") {
        for (from, to) in [("min", "minimum"), ("max", "maximum")] {
            if let Some(v) = range.get(from) {
                map.insert(to.into(), v.clone());
            }
        }
    }
    if let Some(p) = traits.get("smithy.api#pattern") {
        map.insert("pattern".into(), p.clone());
    }
    if let Some(d) = traits.get("smithy.api#default")
        && !d.is_null()
    {
        map.insert("default".into(), d.clone());
    }
}

/// AWS documentation HTML as plain text: tags removed (paragraphs and list items become
/// line breaks), the common entities decoded, whitespace collapsed, cut at `max` characters.
pub fn plain_text(html: &str, max: usize) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = rest[start + 1..start + end]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        if tag.starts_with('p') || tag.starts_with("li") || tag.starts_with("br") {
            out.push('\n');
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    let lines: Vec<String> = decoded
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines.join("\n");
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{}…", cut.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_documentation_becomes_plain_text() {
        assert_eq!(
            plain_text(
                "<p>Creates a <code>Table</code> &amp; more.</p> <ul><li><p>One</p></li><li>Two</li></ul>",
                100
            ),
            "Creates a Table & more.\nOne\nTwo"
        );
        assert_eq!(plain_text("<p>abcdef</p>", 3), "abc…");
    }

    #[test]
    fn shapes_become_normalized_schemas_and_recursion_is_bounded() {
        let model = Model::parse(json!({"smithy": "2.0", "shapes": {
            "ex#In": {"type": "structure", "members": {
                "Name": {"target": "ex#Name", "traits": {"smithy.api#required": {}, "smithy.api#documentation": "<p>The name.</p>"}},
                "When": {"target": "smithy.api#Timestamp"},
                "Kind": {"target": "ex#Kind"},
                "Value": {"target": "ex#Attr"},
                "Tags": {"target": "ex#Tags"}
            }},
            "ex#Name": {"type": "string", "traits": {"smithy.api#length": {"min": 3, "max": 255}}},
            "ex#Kind": {"type": "enum", "members": {"A": {"target": "smithy.api#Unit", "traits": {"smithy.api#enumValue": "a"}}, "B": {"target": "smithy.api#Unit"}}},
            "ex#Attr": {"type": "union", "members": {"S": {"target": "smithy.api#String"}, "L": {"target": "ex#AttrList"}}},
            "ex#AttrList": {"type": "list", "member": {"target": "ex#Attr"}},
            "ex#Tags": {"type": "map", "key": {"target": "smithy.api#String"}, "value": {"target": "smithy.api#String"}}
        }})).unwrap();
        let input = structure_schema(&model, "ex#In", Side::Input);
        assert_eq!(input["required"], json!(["Name"]));
        assert_eq!(
            input["properties"]["Name"],
            json!({"type": "string", "description": "The name. (minLength: 3; maxLength: 255)"})
        );
        assert_eq!(
            input["properties"]["When"],
            json!({"type": "string", "description": "(format: date-time)"})
        );
        assert_eq!(input["properties"]["Kind"]["enum"], json!(["a", "B"]));
        let attr = &input["properties"]["Value"];
        assert_eq!(attr["description"], "(Set exactly one member.)");
        assert_eq!(
            attr["properties"]["L"]["items"]["type"], "object",
            "the recursion is cut"
        );
        assert_eq!(input["properties"]["Tags"]["type"], "object");
        let (_, changes) = normalize_for_gateway(&input);
        assert!(changes.is_empty(), "{changes:?}");
        let output = structure_schema(&model, "ex#In", Side::Output);
        assert!(output.get("required").is_none());
        assert_eq!(output["properties"]["When"]["type"], "number");
        assert!(output["properties"]["Kind"].get("enum").is_none());
    }
}
