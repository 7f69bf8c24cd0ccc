//! A Smithy 2.0 JSON AST model (`{"smithy": "2.0", "shapes": {…}}`) read as it is, with the
//! few model transformations a reader must apply itself: `apply` shapes add traits to other
//! shapes, and `mixins` contribute their members and traits. Prelude shapes
//! (`smithy.api#String`, …) are known by name.
//!
//! Why no Smithy crate: the Rust ones generate code from models at build time; reading the
//! AST here is a few lookups in a `serde_json::Value`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How deep mixins may nest (a loop otherwise).
const MAX_MIXIN_DEPTH: usize = 16;

pub struct Model {
    shapes: Map<String, Value>,
}

/// A shape with its mixins and applied traits merged in.
#[derive(Debug, Clone)]
pub struct Shape {
    pub id: String,
    pub kind: String,
    pub traits: Map<String, Value>,
    /// Structure and union members, enum values (in model order), or a list's `member`,
    /// a map's `key` and `value`: name → (target, member traits).
    pub members: Vec<(String, String, Map<String, Value>)>,
    pub raw: Value,
}

impl Shape {
    pub fn has(&self, name: &str) -> bool {
        self.traits.contains_key(name)
    }

    pub fn member(&self, name: &str) -> Option<&(String, String, Map<String, Value>)> {
        self.members.iter().find(|(n, _, _)| n == name)
    }
}

/// The name part of a shape id (`com.example#Thing` → `Thing`).
pub fn local_name(id: &str) -> &str {
    id.rsplit_once('#').map_or(id, |(_, n)| n)
}

impl Model {
    pub fn parse(doc: Value) -> Result<Model, String> {
        let version = doc
            .get("smithy")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !version.starts_with('1') && !version.starts_with('2') {
            return Err("not a Smithy JSON AST model (no `smithy` version)".into());
        }
        let Some(Value::Object(mut shapes)) = doc.get("shapes").cloned() else {
            return Err("a Smithy model needs a `shapes` object".into());
        };
        // `apply` shapes add their traits to the shape they name.
        let applies: Vec<(String, Map<String, Value>)> = shapes
            .iter()
            .filter(|(_, s)| s.get("type").and_then(Value::as_str) == Some("apply"))
            .map(|(id, s)| {
                let traits = s
                    .get("traits")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                (id.clone(), traits)
            })
            .collect();
        for (id, traits) in applies {
            shapes.remove(&id);
            let (shape_id, member) = match id.split_once('$') {
                Some((s, m)) => (s.to_string(), Some(m.to_string())),
                None => (id.clone(), None),
            };
            let Some(shape) = shapes.get_mut(&shape_id).and_then(Value::as_object_mut) else {
                continue;
            };
            let target = match member {
                Some(m) => shape
                    .get_mut("members")
                    .and_then(|ms| ms.get_mut(&m))
                    .and_then(Value::as_object_mut),
                None => Some(shape),
            };
            if let Some(target) = target {
                let existing = target
                    .entry("traits")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(existing) = existing.as_object_mut() {
                    existing.extend(traits);
                }
            }
        }
        Ok(Model { shapes })
    }

    /// The service shape: `wanted`, or the model's only service.
    pub fn service(&self, wanted: Option<&str>) -> Result<Shape, String> {
        let services: Vec<&String> = self
            .shapes
            .iter()
            .filter(|(_, s)| s.get("type").and_then(Value::as_str) == Some("service"))
            .map(|(id, _)| id)
            .collect();
        let id = match wanted {
            Some(w) => services.iter().find(|id| id.as_str() == w).ok_or_else(|| {
                format!(
                    "no service `{w}` in the model (services: {})",
                    join(&services)
                )
            })?,
            None => match services.as_slice() {
                [one] => one,
                [] => return Err("the model has no service shape".into()),
                _ => {
                    return Err(format!(
                        "the model has several services ({}): set `service`",
                        join(&services)
                    ));
                }
            },
        };
        self.shape(id)
            .ok_or_else(|| format!("service `{id}` unreadable"))
    }

    /// The operations of a service, its resources' included (ids, in model order, once).
    pub fn operations(&self, service: &Shape) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending = vec![service.raw.clone()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(shape) = pending.pop() {
            for key in ["operations", "collectionOperations"] {
                for op in targets(shape.get(key)) {
                    if seen.insert(op.clone()) {
                        out.push(op);
                    }
                }
            }
            for key in ["create", "put", "read", "update", "delete", "list"] {
                if let Some(op) = shape
                    .get(key)
                    .and_then(|t| t.get("target"))
                    .and_then(Value::as_str)
                    && seen.insert(op.to_string())
                {
                    out.push(op.to_string());
                }
            }
            for resource in targets(shape.get("resources")) {
                if seen.insert(resource.clone())
                    && let Some(r) = self.shapes.get(&resource)
                {
                    pending.push(r.clone());
                }
            }
        }
        out
    }

    /// A shape by id, mixins merged; prelude shapes by their simple type.
    pub fn shape(&self, id: &str) -> Option<Shape> {
        self.shape_at(id, 0)
    }

    fn shape_at(&self, id: &str, depth: usize) -> Option<Shape> {
        let Some(raw) = self.shapes.get(id) else {
            return prelude(id);
        };
        let kind = raw.get("type").and_then(Value::as_str)?.to_string();
        let mut traits = Map::new();
        let mut members = Vec::new();
        if depth < MAX_MIXIN_DEPTH {
            for mixin in targets(raw.get("mixins")) {
                if let Some(m) = self.shape_at(&mixin, depth + 1) {
                    traits.extend(
                        m.traits
                            .into_iter()
                            .filter(|(k, _)| k != "smithy.api#mixin"),
                    );
                    members.extend(m.members);
                }
            }
        }
        if let Some(own) = raw.get("traits").and_then(Value::as_object) {
            traits.extend(own.clone());
        }
        let member = |name: &str, m: &Value| {
            (
                name.to_string(),
                m.get("target")
                    .and_then(Value::as_str)
                    .unwrap_or("smithy.api#Document")
                    .to_string(),
                m.get("traits")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            )
        };
        if let Some(ms) = raw.get("members").and_then(Value::as_object) {
            for (name, m) in ms {
                members.retain(|(n, _, _)| n != name);
                members.push(member(name, m));
            }
        }
        for key in ["member", "key", "value"] {
            if let Some(m) = raw.get(key) {
                members.push(member(key, m));
            }
        }
        Some(Shape {
            id: id.to_string(),
            kind,
            traits,
            members,
            raw: raw.clone(),
        })
    }
}

fn targets(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|t| t.get("target").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn join(ids: &[&String]) -> String {
    ids.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The prelude's simple shapes (`smithy.api#String`, `smithy.api#PrimitiveInteger`, …).
fn prelude(id: &str) -> Option<Shape> {
    let name = id.strip_prefix("smithy.api#")?;
    let kinds: BTreeMap<&str, &str> = [
        ("String", "string"),
        ("Blob", "blob"),
        ("BigInteger", "bigInteger"),
        ("BigDecimal", "bigDecimal"),
        ("Timestamp", "timestamp"),
        ("Document", "document"),
        ("Boolean", "boolean"),
        ("PrimitiveBoolean", "boolean"),
        ("Byte", "byte"),
        ("PrimitiveByte", "byte"),
        ("Short", "short"),
        ("PrimitiveShort", "short"),
        ("Integer", "integer"),
        ("PrimitiveInteger", "integer"),
        ("Long", "long"),
        ("PrimitiveLong", "long"),
        ("Float", "float"),
        ("PrimitiveFloat", "float"),
        ("Double", "double"),
        ("PrimitiveDouble", "double"),
        ("Unit", "structure"),
    ]
    .into_iter()
    .collect();
    Some(Shape {
        id: id.to_string(),
        kind: kinds.get(name)?.to_string(),
        traits: Map::new(),
        members: Vec::new(),
        raw: Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn applies_mixins_resources_and_prelude() {
        let model = Model::parse(json!({"smithy": "2.0", "shapes": {
            "ex#Svc": {"type": "service", "operations": [{"target": "ex#A"}], "resources": [{"target": "ex#R"}]},
            "ex#R": {"type": "resource", "read": {"target": "ex#B"}, "operations": [{"target": "ex#A"}]},
            "ex#A": {"type": "operation"}, "ex#B": {"type": "operation"},
            "ex#Base": {"type": "structure", "mixins": [], "members": {"id": {"target": "smithy.api#String"}}, "traits": {"smithy.api#mixin": {}}},
            "ex#In": {"type": "structure", "mixins": [{"target": "ex#Base"}], "members": {"n": {"target": "smithy.api#Integer"}}},
            "ex#In$n": {"type": "apply", "traits": {"smithy.api#required": {}}}
        }}))
        .unwrap();
        let svc = model.service(None).unwrap();
        assert_eq!(model.operations(&svc), ["ex#A", "ex#B"]);
        let input = model.shape("ex#In").unwrap();
        let names: Vec<&str> = input.members.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "n"]);
        assert!(
            input
                .member("n")
                .unwrap()
                .2
                .contains_key("smithy.api#required")
        );
        assert!(!input.has("smithy.api#mixin"));
        assert_eq!(
            model.shape("smithy.api#PrimitiveLong").unwrap().kind,
            "long"
        );
        assert!(
            model
                .service(Some("ex#Other"))
                .unwrap_err()
                .contains("ex#Svc")
        );
        assert!(Model::parse(json!({"shapes": {}})).is_err());
    }
}
