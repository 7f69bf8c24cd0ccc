//! Schema normalization for the Gateway: rewrites a tool's `inputSchema` or `outputSchema`
//! into the JSON Schema subset that Amazon Bedrock AgentCore Gateway and Bedrock tool use
//! accept.
//!
//! The Gateway's own tool model (botocore `SchemaDefinition`) knows the types `string`,
//! `number`, `integer`, `boolean`, `object`, `array` and the keys `type`, `properties`,
//! `required`, `items`, `description`; schemas with `anyOf: [X, {type: null}]`,
//! `"default": null` or `"items": {}` are known to break Gateway and Bedrock tool use.
//! [`normalize_for_gateway`] returns the rewritten schema and one human-readable line per
//! changed node (`#/properties/limit: anyOf with null collapsed to integer; …`); an empty
//! list means the schema was already in the subset and is returned unchanged.
//!
//! # Output
//!
//! Every node of the result is a JSON object with only these keys:
//!
//! - `type`: always present, one of `string`, `number`, `integer`, `boolean`, `object`,
//!   `array` (never a list, never `null`);
//! - `description`: when the input had one (or when keywords were folded into it, below);
//! - `enum`: only on `string`, `number`, `integer` and `boolean` nodes, non-empty, every
//!   value of the node's type, no duplicates, no `null`;
//! - `properties` and `required`: only on `object` nodes; `required` is non-empty and names
//!   only properties that exist, each once;
//! - `items`: present on every `array` node and only there, a single schema.
//!
//! The root is always `{"type": "object", "properties": {…}}` (MCP tool arguments and
//! structured results are always JSON objects).
//!
//! Guiding principle where a choice had to be made: any value valid under the rewritten
//! schema should also be valid under the original, so that a model that follows the
//! rewritten schema sends arguments the upstream accepts (the relay forwards arguments
//! unmodified). The few rules that widen instead are marked *(widens)*.
//!
//! # Rules
//!
//! Applied to every node, recursively through `properties` and `items`:
//!
//! 1. **Null.** `type: [X, "null"]` becomes `type: X`; `anyOf`/`oneOf` alternatives that
//!    admit only null (`{type: "null"}`, `{const: null}`, `{enum: [null]}`, `false`) are
//!    removed; `null` is removed from `enum`; `nullable` (OpenAPI 3.0) and `default: null`
//!    are dropped. A property that was required-but-nullable **stays required**: dropping it
//!    from `required` would let the model omit a key the upstream insists on, whereas an
//!    X-typed value is always valid for `X | null`. A schema that admits only null is
//!    treated as an untyped schema (rule 9).
//! 2. **`anyOf` / `oneOf`** (after removing null alternatives, and resolving `$ref`s inside
//!    them): one alternative left: it replaces the combinator. Several left:
//!    - all of type `object`: merged into one object whose `properties` are the union of
//!      the alternatives' properties (a property defined by several alternatives is itself
//!      merged by this rule) and whose `required` holds only the names every alternative
//!      requires *(widens: the model may mix fields of different alternatives)*;
//!    - all of the same scalar type and each with an `enum` (or `const`): one `enum` with
//!      the union of the values, in order;
//!    - otherwise the **first** alternative is kept (its type is what the author listed
//!      first, and every value valid for it is valid for the union).
//!
//!    Keywords next to the combinator (`description`, `default`, …) apply to the result and
//!    win over the alternatives' own.
//! 3. **`type` lists** without null (`["string", "integer"]`) keep the first type; unknown
//!    type names (`"any"`, `"file"`) are ignored.
//! 4. **`allOf`** members are merged into the node: `properties` united (the first definition
//!    of a name wins), `required` united, for every other keyword the node's own value wins,
//!    then the members' in order.
//! 5. **`$ref`** to the same document (`#`, `#/$defs/…`, `#/definitions/…`, any JSON
//!    Pointer, percent-encoded or not) is inlined; keywords next to the `$ref` win over the
//!    target's (as in rule 4). A `$ref` that is already being expanded on the way from the
//!    root to this node (recursion) is not expanded again: the node becomes just the
//!    target's type and description (for a recursive `TreeNode`, `children.items` becomes
//!    `{"type": "object"}`). A `$ref` that does not resolve, points to another document or
//!    names an anchor (`#foo`) is treated as an untyped schema (rule 9). `$defs` and `definitions` are then dropped.
//! 6. **`const: v`** becomes `enum: [v]` (`const` wins over an `enum` next to it).
//! 7. **`enum`** values that are not of the node's type are dropped, and so are duplicates;
//!    an `enum` left empty is dropped *(widens)*; an `enum` on an `object` or `array` node is
//!    dropped *(widens)*.
//! 8. **Constraints folded into the description.** The Gateway's model has no place for
//!    them, but the model calling the tool still benefits from knowing them, so these
//!    keywords are removed and appended to the description, in this order, as
//!    `"<description> (default: 3; minimum: 1; maximum: 10)"` (just the parenthesis when
//!    there was no description): `default` (when not null), `format`, `pattern`,
//!    `minLength`, `maxLength`, `minimum`, `exclusiveMinimum`, `maximum`,
//!    `exclusiveMaximum`, `multipleOf`, `minItems`, `maxItems`. Values are written as
//!    compact JSON (`format` and `pattern` as plain text), each cut to 120 characters.
//! 9. **Missing types.** A node without a usable `type` gets one inferred from its keywords:
//!    `properties` or `required` → `object`; `items` → `array`; `enum`/`const` → the values'
//!    type (`integer` when all are whole numbers, `number` when all are numbers, otherwise
//!    the first value's type, rule 7 then drops the others); `format`, `pattern`, `minLength`,
//!    `maxLength` → `string`; `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
//!    `multipleOf` → `number`; `minItems`, `maxItems` → `array`. Nothing to go by (`{}`,
//!    `true`, a null-only or unresolvable schema): `string` at any inner node — every value
//!    is valid for an unconstrained schema and a string is the value a model produces most
//!    reliably; `object` at the root.
//! 10. **Arrays** always get `items`: missing or empty (`{}`, `true`, `[]`) items become
//!     `{"type": "string"}` by rule 9. A tuple (`items: [A, B]`) keeps only `A`.
//! 11. **Objects**: `required` entries that name no property, are not strings or repeat an
//!     earlier entry are dropped; an empty `required` is dropped. `properties` is kept as
//!     given (possibly `{}`); the root gets `properties: {}` when it has none.
//! 12. **Root.** A root without `type` but with properties is typed `object`. A root whose
//!     type is not `object`, or that is not a JSON object at all, is replaced by
//!     `{"type": "object", "properties": {}}` (keeping its description).
//! 13. **Everything else is dropped**, including `title`, `examples`, `$schema`, `$id`,
//!     `$anchor`, `$comment`, `additionalProperties`, `patternProperties`, `propertyNames`,
//!     `unevaluatedProperties`, `unevaluatedItems`, `prefixItems`, `contains`,
//!     `minProperties`, `maxProperties`, `uniqueItems`, `dependentRequired`,
//!     `dependentSchemas`, `if`/`then`/`else`, `not`, `discriminator`, `readOnly`,
//!     `writeOnly`, `deprecated`, `contentEncoding`, `contentMediaType` and vendor `x-…`
//!     keys. Keywords that do not fit the node's type (`properties` on a `string`, `items`
//!     on an `object`) are dropped too.
//!
//! # Limits
//!
//! So that a hostile or broken schema cannot blow up memory or time:
//!
//! - nodes nested deeper than [`MAX_DEPTH`] levels, and every node after the first
//!   [`MAX_NODES`] (depth-first, properties in name order), are reduced to their type
//!   (`{"type": "object"}`; an array to `{"type": "array", "items": {"type": "string"}}`),
//!   which also stops exponential growth from `$ref`s that are reused but not recursive;
//! - resolving one node (following `$ref`, `allOf`, `anyOf`, `oneOf`) takes at most
//!   [`MAX_RESOLVE_STEPS`] steps; further alternatives are ignored;
//! - when the whole run has visited more than [`MAX_WORK`] keys and entries, the schema is
//!   replaced by `{"type": "object", "properties": {}}` (keeping the root description);
//! - the list of changes holds at most [`MAX_CHANGES`] node lines (after up to two lines
//!   naming the limits above that were hit), then a count of the rest.
//!
//! The function is pure and deterministic (the output depends only on the input value), and
//! idempotent: normalizing its output again returns the same schema and no changes. Object
//! keys come out in serde_json's map order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Nodes nested deeper than this (the root is depth 0) are reduced to their type.
pub const MAX_DEPTH: usize = 32;
/// Nodes after this many are reduced to their type.
pub const MAX_NODES: usize = 10_000;
/// Steps (`$ref` hops, combinator members) allowed while resolving one node.
pub const MAX_RESOLVE_STEPS: usize = 256;
/// Keys and entries visited in one run before the schema is given up on.
pub const MAX_WORK: usize = 1_000_000;
/// Lines in the change list before the rest are only counted.
pub const MAX_CHANGES: usize = 100;

/// Longest rendering of one folded keyword value, in characters.
const MAX_FOLDED_CHARS: usize = 120;
/// Longest list of names quoted in one change line.
const MAX_LISTED: usize = 10;

/// Keywords moved into the description (rule 8), in the order they are written.
const FOLDED: &[&str] = &[
    "default",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
];
const STRING_KEYWORDS: &[&str] = &["format", "pattern", "minLength", "maxLength"];
const NUMBER_KEYWORDS: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
];
const ARRAY_KEYWORDS: &[&str] = &["minItems", "maxItems"];

/// Stands in for a missing `items` schema.
static ANY: Value = Value::Bool(true);

/// Rewrites `schema` into the Gateway subset; returns it with the list of changes made
/// (empty when the schema was already in the subset). See the module documentation for
/// the exact rules.
pub fn normalize_for_gateway(schema: &Value) -> (Value, Vec<String>) {
    if !schema.is_object() {
        let out = empty_object(None);
        let line = format!(
            "#: {} is not a JSON Schema object; replaced by {}",
            kind_of(schema),
            out
        );
        return (out, vec![line]);
    }
    let mut cx = Cx {
        root: schema,
        nodes: 0,
        work: 0,
        over_work: false,
        cut_depth: false,
        cut_nodes: false,
        changes: Vec::new(),
        more_changes: 0,
    };
    let mut active = BTreeSet::new();
    let out = cx.emit(&[schema], 0, "#", &mut active);
    if cx.over_work {
        let description = schema.get("description").and_then(Value::as_str);
        let out = empty_object(description);
        let line = format!(
            "#: schema too complex (more than {MAX_WORK} keys and entries visited); replaced by an empty object schema"
        );
        return (out, vec![line]);
    }
    let mut changes = Vec::new();
    if cx.cut_depth {
        changes.push(format!(
            "#: subschemas nested deeper than {MAX_DEPTH} levels reduced to their type"
        ));
    }
    if cx.cut_nodes {
        changes.push(format!(
            "#: schema has more than {MAX_NODES} nodes; the rest reduced to their type"
        ));
    }
    changes.append(&mut cx.changes);
    if cx.more_changes > 0 {
        changes.push(format!("… and {} more changed nodes", cx.more_changes));
    }
    if changes.is_empty() && out != *schema {
        // Not expected: every rewrite above leaves a line. Never report "unchanged" falsely.
        changes.push("#: schema rewritten".to_string());
    }
    (out, changes)
}

fn empty_object(description: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String("object".into()));
    if let Some(d) = description {
        m.insert("description".into(), Value::String(d.to_string()));
    }
    m.insert("properties".into(), Value::Object(Map::new()));
    Value::Object(m)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "string" => Ty::String,
            "number" => Ty::Number,
            "integer" => Ty::Integer,
            "boolean" => Ty::Boolean,
            "object" => Ty::Object,
            "array" => Ty::Array,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Number => "number",
            Ty::Integer => "integer",
            Ty::Boolean => "boolean",
            Ty::Object => "object",
            Ty::Array => "array",
        }
    }

    fn is_scalar(self) -> bool {
        !matches!(self, Ty::Object | Ty::Array)
    }

    /// Whether `v` is a value of this (scalar) type.
    fn admits(self, v: &Value) -> bool {
        match self {
            Ty::String => v.is_string(),
            Ty::Boolean => v.is_boolean(),
            Ty::Number => v.is_number(),
            Ty::Integer => is_whole(v),
            Ty::Object => v.is_object(),
            Ty::Array => v.is_array(),
        }
    }

    /// The type of a JSON value, if it has one in the subset.
    fn of_value(v: &Value) -> Option<Ty> {
        match v {
            Value::String(_) => Some(Ty::String),
            Value::Bool(_) => Some(Ty::Boolean),
            Value::Number(_) if is_whole(v) => Some(Ty::Integer),
            Value::Number(_) => Some(Ty::Number),
            Value::Object(_) => Some(Ty::Object),
            Value::Array(_) => Some(Ty::Array),
            Value::Null => None,
        }
    }
}

fn is_whole(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One node's keywords after `$ref`, `allOf`, `anyOf` and `oneOf` are resolved, borrowing
/// from the input. Subschemas (`properties`, `items`) stay unresolved; each is a list of
/// alternatives merged by rule 2 when it is emitted.
#[derive(Default)]
struct Flat<'a> {
    ty: Option<Ty>,
    /// Admits only null (or nothing); meaningful only when nothing else is known.
    null_only: bool,
    description: Option<&'a str>,
    has_properties: bool,
    properties: BTreeMap<&'a str, Vec<&'a Value>>,
    required: Option<Vec<&'a str>>,
    has_items: bool,
    items: Vec<&'a Value>,
    enumv: Option<Vec<&'a Value>>,
    folded: Vec<(&'static str, &'a Value)>,
}

impl<'a> Flat<'a> {
    fn is_null(&self) -> bool {
        self.null_only
            && self.ty.is_none()
            && self.enumv.is_none()
            && !self.has_properties
            && !self.has_items
    }

    /// The type rule 9 infers, with the reason, when `type` is missing.
    fn inferred(&self) -> Option<(Ty, &'static str)> {
        if self.has_properties {
            return Some((Ty::Object, "properties"));
        }
        if self.required.is_some() {
            return Some((Ty::Object, "required"));
        }
        if self.has_items {
            return Some((Ty::Array, "items"));
        }
        if let Some(vals) = &self.enumv
            && let Some(first) = vals.first()
        {
            let all_num = vals.iter().all(|v| v.is_number());
            let ty = if all_num && vals.iter().all(|v| is_whole(v)) {
                Ty::Integer
            } else if all_num {
                Ty::Number
            } else {
                Ty::of_value(first)?
            };
            return Some((ty, "enum values"));
        }
        for (k, _) in &self.folded {
            if STRING_KEYWORDS.contains(k) {
                return Some((Ty::String, k));
            }
            if NUMBER_KEYWORDS.contains(k) {
                return Some((Ty::Number, k));
            }
            if ARRAY_KEYWORDS.contains(k) {
                return Some((Ty::Array, k));
            }
        }
        None
    }

    fn effective_type(&self) -> Option<Ty> {
        self.ty.or_else(|| self.inferred().map(|(t, _)| t))
    }

    fn describe(&self) -> &'static str {
        self.effective_type()
            .map_or("an untyped schema", Ty::as_str)
    }

    /// allOf semantics (rule 4): `self` wins, `other` fills in.
    fn absorb(&mut self, other: Flat<'a>) {
        self.ty = self.ty.or(other.ty);
        self.null_only |= other.null_only;
        self.description = self.description.or(other.description);
        self.has_properties |= other.has_properties;
        for (name, variants) in other.properties {
            self.properties.entry(name).or_insert(variants);
        }
        if let Some(req) = other.required {
            self.required.get_or_insert_with(Vec::new).extend(req);
        }
        self.has_items |= other.has_items;
        if self.items.is_empty() {
            self.items = other.items;
        }
        if self.enumv.is_none() {
            self.enumv = other.enumv;
        }
        for (k, v) in other.folded {
            if !self.folded.iter().any(|(have, _)| *have == k) {
                self.folded.push((k, v));
            }
        }
    }
}

/// Per-node resolution state.
struct Walk<'a> {
    /// `$ref`s being expanded right now (cycle detection within the node).
    stack: Vec<&'a str>,
    /// Every `$ref` expanded for this node; its subschemas must not expand them again.
    expanded: BTreeSet<&'a str>,
    fuel: usize,
    notes: Vec<String>,
    /// Keywords dropped by rule 13 (and `nullable`, `default: null`), listed in one note.
    dropped: BTreeSet<&'a str>,
}

impl<'a> Walk<'a> {
    fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !self.notes.contains(&s) {
            self.notes.push(s);
        }
    }

    fn drop_keyword(&mut self, k: &'a str) {
        self.dropped.insert(k);
    }
}

struct Cx<'a> {
    root: &'a Value,
    nodes: usize,
    work: usize,
    over_work: bool,
    cut_depth: bool,
    cut_nodes: bool,
    changes: Vec<String>,
    more_changes: usize,
}

impl<'a> Cx<'a> {
    fn charge(&mut self, n: usize) {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_WORK {
            self.over_work = true;
        }
    }

    fn record(&mut self, path: &str, notes: &[String]) {
        if notes.is_empty() {
            return;
        }
        if self.changes.len() < MAX_CHANGES {
            self.changes.push(format!("{path}: {}", notes.join("; ")));
        } else {
            self.more_changes += 1;
        }
    }

    /// Emits the node at `path` whose schema is `alts` (one schema, or several alternatives
    /// merged by rule 2).
    fn emit(
        &mut self,
        alts: &[&'a Value],
        depth: usize,
        path: &str,
        active: &mut BTreeSet<&'a str>,
    ) -> Value {
        let is_root = depth == 0;
        if self.over_work {
            return Value::Null; // discarded by the caller
        }
        if depth > MAX_DEPTH {
            let (stub, changed) = self.stub(alts);
            self.cut_depth |= changed;
            return stub;
        }
        if self.nodes >= MAX_NODES {
            let (stub, changed) = self.stub(alts);
            self.cut_nodes |= changed;
            return stub;
        }
        self.nodes += 1;

        let mut w = Walk {
            stack: Vec::new(),
            expanded: BTreeSet::new(),
            fuel: MAX_RESOLVE_STEPS,
            notes: Vec::new(),
            dropped: BTreeSet::new(),
        };
        let mut flat = match alts {
            [one] => self.flatten(one, active, &mut w),
            _ => self.collapse("merged alternatives", alts, active, &mut w),
        };
        if !w.dropped.is_empty() {
            let dropped: Vec<&str> = std::mem::take(&mut w.dropped).into_iter().collect();
            w.note(format!("dropped {}", list(&dropped)));
        }

        // Rules 9 and 12: the type.
        let mut ty = match flat.ty {
            Some(t) => t,
            None => match flat.inferred() {
                Some((t, why)) => {
                    w.note(format!("no type; {} inferred from {why}", t.as_str()));
                    t
                }
                None if is_root => {
                    w.note("no type; object assumed at the root");
                    Ty::Object
                }
                None if flat.is_null() => {
                    w.note("admits only null; string assumed");
                    Ty::String
                }
                None => {
                    w.note("no type; string assumed");
                    Ty::String
                }
            },
        };
        if is_root && ty != Ty::Object {
            w.note(format!(
                "type {} is not object; replaced by an empty object schema",
                ty.as_str()
            ));
            ty = Ty::Object;
            flat = Flat {
                description: flat.description,
                ..Flat::default()
            };
        }

        let mut out = Map::new();
        out.insert("type".into(), Value::String(ty.as_str().into()));

        // Rule 8: the description, with constraints folded in.
        let mut description = flat.description.map(str::to_owned);
        if !flat.folded.is_empty() {
            flat.folded
                .sort_by_key(|(k, _)| FOLDED.iter().position(|f| f == k));
            let text: Vec<String> = flat
                .folded
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_folded(k, v)))
                .collect();
            let text = text.join("; ");
            description = Some(match description {
                Some(d) if !d.is_empty() => format!("{d} ({text})"),
                _ => format!("({text})"),
            });
            let names: Vec<&str> = flat.folded.iter().map(|(k, _)| *k).collect();
            w.note(format!("moved {} into the description", names.join(", ")));
        }
        if let Some(d) = description {
            out.insert("description".into(), Value::String(d));
        }

        // Rule 7: enum.
        if let Some(vals) = flat.enumv.take() {
            if ty.is_scalar() {
                let mut seen = BTreeSet::new();
                let mut kept = Vec::new();
                let (mut wrong, mut dups) = (0usize, 0usize);
                for v in vals {
                    if !ty.admits(v) {
                        wrong += 1;
                    } else if !seen.insert(v.to_string()) {
                        dups += 1;
                    } else {
                        kept.push(v.clone());
                    }
                }
                if wrong > 0 {
                    w.note(format!(
                        "{wrong} enum value(s) not of type {} dropped",
                        ty.as_str()
                    ));
                }
                if dups > 0 {
                    w.note(format!("{dups} duplicate enum value(s) dropped"));
                }
                if kept.is_empty() {
                    w.note("empty enum dropped");
                } else {
                    out.insert("enum".into(), Value::Array(kept));
                }
            } else {
                w.note(format!("enum dropped (not kept on {})", ty.as_str()));
            }
        }

        // Rules 10 and 11: keywords that do not fit the type, and `required`.
        let mut misfit = Vec::new();
        if ty != Ty::Object {
            if flat.has_properties {
                misfit.push("properties");
            }
            if flat.required.is_some() {
                misfit.push("required");
            }
        }
        if ty != Ty::Array && flat.has_items {
            misfit.push("items");
        }
        if !misfit.is_empty() {
            w.note(format!(
                "dropped {} (type is {})",
                misfit.join(", "),
                ty.as_str()
            ));
        }
        let mut required = Vec::new();
        if ty == Ty::Object {
            if let Some(req) = flat.required.take() {
                let mut seen = BTreeSet::new();
                let mut unknown = Vec::new();
                let mut dups = 0usize;
                for name in &req {
                    if !flat.properties.contains_key(name) {
                        unknown.push(*name);
                    } else if !seen.insert(*name) {
                        dups += 1;
                    } else {
                        required.push(Value::String((*name).to_string()));
                    }
                }
                if !unknown.is_empty() {
                    w.note(format!(
                        "required names without a property dropped: {}",
                        list(&unknown)
                    ));
                }
                if dups > 0 {
                    w.note(format!("{dups} duplicate required name(s) dropped"));
                }
                if required.is_empty() && unknown.is_empty() && dups == 0 {
                    w.note("empty required dropped");
                }
            }
            if is_root && !flat.has_properties {
                w.note("added properties: {}");
            }
        }
        if ty == Ty::Array && flat.items.is_empty() {
            w.note("array without items; items set to {\"type\": \"string\"}");
        }

        let notes = std::mem::take(&mut w.notes);
        self.record(path, &notes);

        // Subschemas, with this node's expanded `$ref`s marked as in progress.
        let added: Vec<&'a str> = w
            .expanded
            .into_iter()
            .filter(|r| active.insert(r))
            .collect();
        if ty == Ty::Object {
            let mut props = Map::new();
            for (name, variants) in &flat.properties {
                let child_path = format!("{path}/properties/{}", escape_pointer(name));
                let child = self.emit(variants, depth + 1, &child_path, active);
                props.insert((*name).to_string(), child);
            }
            if flat.has_properties || is_root {
                out.insert("properties".into(), Value::Object(props));
            }
            if !required.is_empty() {
                out.insert("required".into(), Value::Array(required));
            }
        }
        if ty == Ty::Array {
            let items: Vec<&'a Value> = if flat.items.is_empty() {
                vec![&ANY]
            } else {
                flat.items
            };
            let child = self.emit(&items, depth + 1, &format!("{path}/items"), active);
            out.insert("items".into(), child);
        }
        for r in added {
            active.remove(r);
        }
        Value::Object(out)
    }

    /// A node past the depth or size limit: just its type; and whether that differs from
    /// the input (a second pass meets the same limits on nodes that are stubs already).
    fn stub(&mut self, alts: &[&'a Value]) -> (Value, bool) {
        let ty = alts
            .first()
            .and_then(|v| shallow_type(self.root, v))
            .unwrap_or(Ty::String);
        let mut m = Map::new();
        m.insert("type".into(), Value::String(ty.as_str().into()));
        self.nodes += 1;
        if ty == Ty::Array {
            let mut items = Map::new();
            items.insert("type".into(), Value::String("string".into()));
            m.insert("items".into(), Value::Object(items));
            self.nodes += 1;
        }
        let stub = Value::Object(m);
        let changed = !matches!(alts, [one] if **one == stub);
        (stub, changed)
    }

    /// Resolves one schema's keywords (rules 1–6 and 13 at this node).
    fn flatten(&mut self, v: &'a Value, active: &BTreeSet<&'a str>, w: &mut Walk<'a>) -> Flat<'a> {
        if self.over_work {
            return Flat::default();
        }
        if w.fuel == 0 {
            w.note(out_of_steps());
            return Flat::default();
        }
        w.fuel -= 1;
        self.charge(1);
        let m = match v {
            Value::Object(m) => m,
            Value::Bool(true) => return Flat::default(),
            Value::Bool(false) => {
                return Flat {
                    null_only: true,
                    ..Flat::default()
                };
            }
            other => {
                w.note(format!(
                    "{} is not a schema; treated as {{}}",
                    kind_of(other)
                ));
                return Flat::default();
            }
        };
        self.charge(m.len());

        let mut own = Flat::default();
        let mut reference = None;
        let mut all_of = None;
        let mut combinators: Vec<(&'static str, &'a Value)> = Vec::new();
        let mut konst = None;
        for (k, val) in m {
            match k.as_str() {
                "type" => self.read_type(val, &mut own, w),
                "description" => match val {
                    Value::String(s) => own.description = Some(s),
                    _ => w.drop_keyword(k),
                },
                "properties" => match val {
                    Value::Object(p) => {
                        self.charge(p.len());
                        own.has_properties = true;
                        for (name, schema) in p {
                            own.properties.insert(name, vec![schema]);
                        }
                    }
                    _ => w.drop_keyword(k),
                },
                "required" => match val {
                    Value::Array(r) => {
                        self.charge(r.len());
                        let names: Vec<&str> = r.iter().filter_map(Value::as_str).collect();
                        if names.len() < r.len() {
                            w.note("non-string required entries dropped");
                        }
                        own.required = Some(names);
                    }
                    _ => w.drop_keyword(k),
                },
                "items" => match val {
                    Value::Object(_) | Value::Bool(_) => {
                        own.has_items = true;
                        own.items = vec![val];
                    }
                    Value::Array(t) => {
                        own.has_items = true;
                        if let Some(first) = t.first() {
                            own.items = vec![first];
                        }
                        w.note("tuple items reduced to the first item schema");
                    }
                    _ => w.drop_keyword(k),
                },
                "enum" => match val {
                    Value::Array(e) => {
                        self.charge(e.len());
                        let vals: Vec<&Value> = e.iter().filter(|x| !x.is_null()).collect();
                        if vals.len() < e.len() {
                            w.note("null removed from enum");
                            if vals.is_empty() {
                                own.null_only = true;
                            }
                        }
                        if !(vals.is_empty() && own.null_only) {
                            own.enumv = Some(vals);
                        }
                    }
                    _ => w.drop_keyword(k),
                },
                "const" => {
                    if val.is_null() {
                        w.note("const null dropped");
                        own.null_only = true;
                    } else {
                        w.note("const replaced by a one-value enum");
                        konst = Some(val);
                    }
                }
                "default" if val.is_null() => w.drop_keyword("default: null"),
                "nullable" => w.drop_keyword(k),
                "$ref" => reference = Some(val),
                "allOf" => all_of = Some(val),
                "anyOf" => combinators.push(("anyOf", val)),
                "oneOf" => combinators.push(("oneOf", val)),
                key => match FOLDED.iter().find(|f| **f == key) {
                    Some(f) => own.folded.push((f, val)),
                    None => w.drop_keyword(k),
                },
            }
        }
        if let Some(c) = konst {
            own.enumv = Some(vec![c]);
        }

        let mut flat = own;
        if let Some(r) = reference {
            let target = self.resolve_ref(r, active, w);
            flat.absorb(target);
        }
        if let Some(members) = all_of {
            match members {
                Value::Array(a) => {
                    self.charge(a.len());
                    w.note(format!("allOf of {} merged", a.len()));
                    for member in a {
                        if w.fuel == 0 {
                            w.note(out_of_steps());
                            break;
                        }
                        let f = self.flatten(member, active, w);
                        flat.absorb(f);
                    }
                }
                _ => w.drop_keyword("allOf"),
            }
        }
        for (kw, val) in combinators {
            match val {
                Value::Array(a) => {
                    self.charge(a.len());
                    let alts: Vec<&'a Value> = a.iter().collect();
                    let f = self.collapse(kw, &alts, active, w);
                    flat.absorb(f);
                }
                _ => w.drop_keyword(kw),
            }
        }
        flat
    }

    fn read_type(&mut self, val: &'a Value, own: &mut Flat<'a>, w: &mut Walk<'a>) {
        match val {
            Value::String(s) if s == "null" => own.null_only = true,
            Value::String(s) => match Ty::parse(s) {
                Some(t) => own.ty = Some(t),
                None => w.note(format!("unknown type {s:?} ignored")),
            },
            Value::Array(list) => {
                self.charge(list.len());
                let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                let known: Vec<Ty> = names.iter().filter_map(|s| Ty::parse(s)).collect();
                let shown = Value::Array(list.clone());
                match known.first() {
                    Some(t) => {
                        own.ty = Some(*t);
                        w.note(format!("type {} reduced to {}", shown, t.as_str()));
                    }
                    None => {
                        if names.contains(&"null") {
                            own.null_only = true;
                        }
                        w.note(format!("type {shown} ignored"));
                    }
                }
            }
            other => w.note(format!("type that is {} ignored", kind_of(other))),
        }
    }

    fn resolve_ref(
        &mut self,
        r: &'a Value,
        active: &BTreeSet<&'a str>,
        w: &mut Walk<'a>,
    ) -> Flat<'a> {
        let Some(r) = r.as_str() else {
            w.note("non-string $ref ignored");
            return Flat::default();
        };
        let Some(target) = lookup(self.root, r) else {
            w.note(format!("$ref {r} not resolvable in this document; ignored"));
            return Flat::default();
        };
        if active.contains(r) || w.stack.contains(&r) {
            w.note(format!("recursive $ref {r} not expanded again"));
            return Flat {
                ty: shallow_type(self.root, target),
                description: target.get("description").and_then(Value::as_str),
                ..Flat::default()
            };
        }
        w.note(format!("$ref {r} inlined"));
        w.stack.push(r);
        w.expanded.insert(r);
        let flat = self.flatten(target, active, w);
        w.stack.pop();
        flat
    }

    /// Rule 2 over `alts` (`kw` names the source in the change line).
    fn collapse(
        &mut self,
        kw: &str,
        alts: &[&'a Value],
        active: &BTreeSet<&'a str>,
        w: &mut Walk<'a>,
    ) -> Flat<'a> {
        let mut keep = Vec::new();
        let mut nulls = 0usize;
        for alt in alts {
            if w.fuel == 0 {
                w.note(out_of_steps());
                break;
            }
            let f = self.flatten(alt, active, w);
            if f.is_null() {
                nulls += 1;
            } else {
                keep.push(f);
            }
        }
        let with_null = if nulls > 0 { " with null" } else { "" };
        if keep.len() <= 1 {
            let Some(only) = keep.pop() else {
                w.note(format!("{kw} admits only null"));
                return Flat {
                    null_only: true,
                    ..Flat::default()
                };
            };
            w.note(format!("{kw}{with_null} collapsed to {}", only.describe()));
            return only;
        }
        let n = keep.len();
        let types: Vec<Option<Ty>> = keep.iter().map(Flat::effective_type).collect();
        let first = types[0];
        let same = types.iter().all(|t| *t == first);
        if same && first == Some(Ty::Object) {
            w.note(format!(
                "{kw}{with_null} of {n} object schemas merged (properties united, required only where all require)"
            ));
            return merge_objects(keep);
        }
        if same && first.is_some_and(Ty::is_scalar) && keep.iter().all(|f| f.enumv.is_some()) {
            w.note(format!("{kw}{with_null} of {n} enums merged into one enum"));
            let mut it = keep.into_iter();
            let mut out = it.next().unwrap_or_default();
            out.ty = first;
            for f in it {
                if let (Some(have), Some(more)) = (out.enumv.as_mut(), f.enumv) {
                    have.extend(more);
                }
                out.description = out.description.or(f.description);
            }
            return out;
        }
        let out = keep.swap_remove(0);
        w.note(format!(
            "{kw}{with_null} of {n} schemas reduced to the first ({})",
            out.describe()
        ));
        out
    }
}

/// Rule 2 for object alternatives: union of properties (a name's definitions become
/// alternatives of one another), intersection of `required`.
fn merge_objects(alts: Vec<Flat<'_>>) -> Flat<'_> {
    let mut out = Flat {
        ty: Some(Ty::Object),
        has_properties: alts.iter().any(|f| f.has_properties),
        ..Flat::default()
    };
    let all_required: Vec<Vec<&str>> = alts
        .iter()
        .map(|f| f.required.clone().unwrap_or_default())
        .collect();
    let required: Vec<&str> = all_required[0]
        .iter()
        .copied()
        .filter(|name| all_required[1..].iter().all(|r| r.contains(name)))
        .collect();
    if !required.is_empty() {
        out.required = Some(required);
    }
    for f in alts {
        out.description = out.description.or(f.description);
        for (name, variants) in f.properties {
            let slot = out.properties.entry(name).or_default();
            for v in variants {
                if !slot.iter().any(|have| std::ptr::eq(*have, v)) {
                    slot.push(v);
                }
            }
        }
        for (k, v) in f.folded {
            if !out.folded.iter().any(|(have, _)| *have == k) {
                out.folded.push((k, v));
            }
        }
    }
    out
}

/// The type of a schema without resolving it fully (for nodes past the limits and
/// recursive `$ref`s): its `type`, else what its keywords or its first `$ref` or
/// non-null combinator alternative say, following at most 16 hops.
fn shallow_type(root: &Value, v: &Value) -> Option<Ty> {
    let mut cur = v;
    for _ in 0..16 {
        let m = cur.as_object()?;
        match m.get("type") {
            Some(Value::String(s)) => {
                if let Some(t) = Ty::parse(s) {
                    return Some(t);
                }
            }
            Some(Value::Array(list)) => {
                if let Some(t) = list.iter().filter_map(Value::as_str).find_map(Ty::parse) {
                    return Some(t);
                }
            }
            _ => {}
        }
        if m.contains_key("properties") || m.contains_key("required") {
            return Some(Ty::Object);
        }
        if m.contains_key("items") {
            return Some(Ty::Array);
        }
        if let Some(c) = m.get("const") {
            return Ty::of_value(c);
        }
        if let Some(Value::Array(e)) = m.get("enum")
            && let Some(first) = e.iter().find(|x| !x.is_null())
        {
            return Ty::of_value(first);
        }
        if let Some(target) = m
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| lookup(root, r))
        {
            cur = target;
            continue;
        }
        let next = ["allOf", "anyOf", "oneOf"].iter().find_map(|kw| {
            m.get(*kw)?
                .as_array()?
                .iter()
                .find(|alt| alt.get("type").and_then(Value::as_str) != Some("null"))
        });
        cur = next?;
    }
    None
}

/// Resolves a same-document `$ref` (`#` or a JSON Pointer fragment, possibly
/// percent-encoded) against `root`.
fn lookup<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let fragment = r.strip_prefix('#')?;
    if fragment.is_empty() {
        return Some(root);
    }
    if !fragment.starts_with('/') {
        return None; // a named anchor: not supported
    }
    root.pointer(&percent_decode(fragment)?)
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn out_of_steps() -> String {
    format!("more than {MAX_RESOLVE_STEPS} resolution steps; further subschemas ignored")
}

fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// Up to [`MAX_LISTED`] names, then a count.
fn list(names: &[&str]) -> String {
    let shown: Vec<&str> = names.iter().copied().take(MAX_LISTED).collect();
    let mut s = shown.join(", ");
    if names.len() > MAX_LISTED {
        s.push_str(&format!(" and {} more", names.len() - MAX_LISTED));
    }
    s
}

/// A folded keyword's value as it appears in the description (rule 8).
fn render_folded(keyword: &str, v: &Value) -> String {
    let mut s = String::new();
    match (keyword, v) {
        ("format" | "pattern", Value::String(text)) => s.push_str(text),
        _ => render_json(v, &mut s, 0),
    }
    truncate_chars(s, MAX_FOLDED_CHARS)
}

/// Compact JSON, stopping early once the text is long enough to be cut anyway (and at
/// nesting depth 4), so a huge or deep value costs little.
fn render_json(v: &Value, out: &mut String, depth: usize) {
    if out.len() > MAX_FOLDED_CHARS * 4 {
        return;
    }
    match v {
        Value::Array(a) if depth < 4 => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if out.len() > MAX_FOLDED_CHARS * 4 {
                    break;
                }
                if i > 0 {
                    out.push(',');
                }
                render_json(x, out, depth + 1);
            }
            out.push(']');
        }
        Value::Object(m) if depth < 4 => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if out.len() > MAX_FOLDED_CHARS * 4 {
                    break;
                }
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                render_json(x, out, depth + 1);
            }
            out.push('}');
        }
        Value::Array(_) => out.push_str("[…]"),
        Value::Object(_) => out.push_str("{…}"),
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn truncate_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Normalizes `before` and checks: the result is `after`; it is in the Gateway subset;
    /// changes are reported exactly when something changed; a second pass changes nothing.
    /// Returns the change lines.
    fn check(before: Value, after: Value) -> Vec<String> {
        let (out, changes) = normalize_for_gateway(&before);
        assert_eq!(out, after, "normalized schema (changes: {changes:#?})");
        assert_subset(&out);
        assert_eq!(
            changes.is_empty(),
            before == after,
            "changes reported: {changes:#?}"
        );
        assert_idempotent(&out);
        changes
    }

    fn assert_idempotent(out: &Value) {
        let (again, changes) = normalize_for_gateway(out);
        assert_eq!(&again, out, "a second pass changed the schema");
        assert!(changes.is_empty(), "a second pass reported {changes:#?}");
    }

    fn has(changes: &[String], needle: &str) {
        assert!(
            changes.iter().any(|c| c.contains(needle)),
            "no change line contains {needle:?}: {changes:#?}"
        );
    }

    /// The output contract from the module documentation.
    fn assert_subset(root: &Value) {
        assert_eq!(root["type"], "object", "root type: {root}");
        assert!(root["properties"].is_object(), "root properties: {root}");
        check_node(root);
    }

    fn check_node(v: &Value) {
        let m = v
            .as_object()
            .unwrap_or_else(|| panic!("node {v} is not an object"));
        for k in m.keys() {
            assert!(
                [
                    "type",
                    "description",
                    "enum",
                    "properties",
                    "required",
                    "items"
                ]
                .contains(&k.as_str()),
                "unexpected key {k} in {v}"
            );
        }
        let ty = m
            .get("type")
            .and_then(Value::as_str)
            .and_then(Ty::parse)
            .unwrap_or_else(|| panic!("node {v} has no valid type"));
        if let Some(d) = m.get("description") {
            assert!(d.is_string(), "description in {v}");
        }
        if let Some(e) = m.get("enum") {
            assert!(ty.is_scalar(), "enum on {v}");
            let e = e.as_array().expect("enum is an array");
            assert!(!e.is_empty(), "empty enum in {v}");
            let mut seen = BTreeSet::new();
            for x in e {
                assert!(ty.admits(x), "enum value {x} not of type in {v}");
                assert!(seen.insert(x.to_string()), "duplicate enum value in {v}");
            }
        }
        assert_eq!(m.contains_key("items"), ty == Ty::Array, "items in {v}");
        if ty != Ty::Object {
            assert!(!m.contains_key("properties") && !m.contains_key("required"));
        }
        if let Some(p) = m.get("properties") {
            for child in p.as_object().expect("properties is an object").values() {
                check_node(child);
            }
        }
        if let Some(r) = m.get("required") {
            let r = r.as_array().expect("required is an array");
            assert!(!r.is_empty(), "empty required in {v}");
            let mut seen = BTreeSet::new();
            for name in r {
                let name = name.as_str().expect("required entry is a string");
                assert!(
                    m["properties"].get(name).is_some(),
                    "required {name} in {v}"
                );
                assert!(seen.insert(name), "duplicate required {name} in {v}");
            }
        }
        if let Some(items) = m.get("items") {
            check_node(items);
        }
    }

    fn count_nodes(v: &Value) -> usize {
        let mut n = 1;
        if let Some(p) = v.get("properties").and_then(Value::as_object) {
            n += p.values().map(count_nodes).sum::<usize>();
        }
        if let Some(items) = v.get("items") {
            n += count_nodes(items);
        }
        n
    }

    fn max_depth(v: &Value) -> usize {
        let mut d = 0;
        if let Some(p) = v.get("properties").and_then(Value::as_object) {
            d = d.max(p.values().map(|c| 1 + max_depth(c)).max().unwrap_or(0));
        }
        if let Some(items) = v.get("items") {
            d = d.max(1 + max_depth(items));
        }
        d
    }

    // ------------------------------------------------------------------ unchanged input

    #[test]
    fn a_schema_already_in_the_subset_is_unchanged() {
        let s = json!({
            "type": "object",
            "description": "Search.",
            "properties": {
                "q": {"type": "string", "description": "Query"},
                "n": {"type": "integer", "enum": [1, 2, 3]},
                "f": {"type": "number"},
                "b": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                "filter": {
                    "type": "object",
                    "properties": {"k": {"type": "string"}},
                    "required": ["k"]
                },
                "empty": {"type": "object", "properties": {}},
                "map": {"type": "object"}
            },
            "required": ["q", "n"]
        });
        let changes = check(s.clone(), s);
        assert!(changes.is_empty());
    }

    // ------------------------------------------------------------------ rule 12: root

    #[test]
    fn root_without_type_gets_object() {
        let changes = check(
            json!({"properties": {"a": {"type": "string"}}}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
        );
        has(&changes, "#: no type; object inferred from properties");
    }

    #[test]
    fn empty_root_becomes_an_empty_object_schema() {
        let changes = check(json!({}), json!({"type": "object", "properties": {}}));
        has(&changes, "no type; object assumed at the root");
        has(&changes, "added properties: {}");
    }

    #[test]
    fn root_object_without_properties_gets_empty_properties() {
        let changes = check(
            json!({"type": "object"}),
            json!({"type": "object", "properties": {}}),
        );
        assert_eq!(changes, vec!["#: added properties: {}"]);
    }

    #[test]
    fn non_object_root_type_is_replaced_keeping_the_description() {
        let changes = check(
            json!({"type": "string", "description": "A name", "minLength": 1}),
            json!({"type": "object", "description": "A name", "properties": {}}),
        );
        has(
            &changes,
            "type string is not object; replaced by an empty object schema",
        );
        check(
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"type": "object", "properties": {}}),
        );
    }

    #[test]
    fn root_that_is_not_a_json_object_is_replaced() {
        for bad in [json!(null), json!(true), json!("x"), json!([1]), json!(3)] {
            let (out, changes) = normalize_for_gateway(&bad);
            assert_eq!(out, json!({"type": "object", "properties": {}}));
            has(&changes, "is not a JSON Schema object");
            assert_idempotent(&out);
        }
    }

    #[test]
    fn nullable_object_root_is_an_object() {
        check(
            json!({"type": ["object", "null"], "properties": {}}),
            json!({"type": "object", "properties": {}}),
        );
    }

    // ------------------------------------------------------------------ rule 1: null

    #[test]
    fn anyof_with_null_collapses_and_the_property_stays_required() {
        let changes = check(
            json!({
                "type": "object",
                "properties": {
                    "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null, "title": "Limit"},
                    "name": {"anyOf": [{"type": "null"}, {"type": "string", "description": "inner"}], "description": "outer"}
                },
                "required": ["name"]
            }),
            json!({
                "type": "object",
                "properties": {
                    "limit": {"type": "integer"},
                    "name": {"type": "string", "description": "outer"}
                },
                "required": ["name"]
            }),
        );
        has(&changes, "#/properties/limit: ");
        has(&changes, "anyOf with null collapsed to integer");
        has(&changes, "dropped default: null, title");
    }

    #[test]
    fn oneof_with_null_collapses() {
        let changes = check(
            json!({"type": "object", "properties": {"x": {"oneOf": [{"type": "null"}, {"type": "number"}]}}}),
            json!({"type": "object", "properties": {"x": {"type": "number"}}}),
        );
        has(&changes, "oneOf with null collapsed to number");
    }

    #[test]
    fn type_list_with_null_keeps_the_other_type() {
        let changes = check(
            json!({"type": "object", "properties": {"x": {"type": ["string", "null"]}, "y": {"type": ["null", "array"], "items": {"type": "integer"}}}}),
            json!({"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "array", "items": {"type": "integer"}}}}),
        );
        has(&changes, r#"type ["string","null"] reduced to string"#);
    }

    #[test]
    fn nullable_keyword_null_enum_values_and_null_const_are_dropped() {
        let changes = check(
            json!({"type": "object", "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"type": "string", "enum": ["x", null, "y"]},
                "c": {"const": null}
            }}),
            json!({"type": "object", "properties": {
                "a": {"type": "string"},
                "b": {"type": "string", "enum": ["x", "y"]},
                "c": {"type": "string"}
            }}),
        );
        has(&changes, "dropped nullable");
        has(&changes, "null removed from enum");
        has(
            &changes,
            "#/properties/c: const null dropped; admits only null; string assumed",
        );
    }

    #[test]
    fn null_only_schemas_and_false_become_strings() {
        check(
            json!({"type": "object", "properties": {
                "a": {"type": "null"},
                "b": {"anyOf": [{"type": "null"}]},
                "c": false
            }}),
            json!({"type": "object", "properties": {
                "a": {"type": "string"},
                "b": {"type": "string"},
                "c": {"type": "string"}
            }}),
        );
    }

    #[test]
    fn non_null_defaults_are_not_dropped_but_folded() {
        check(
            json!({"type": "object", "properties": {"a": {"type": "boolean", "default": false}}}),
            json!({"type": "object", "properties": {"a": {"type": "boolean", "description": "(default: false)"}}}),
        );
    }

    // ------------------------------------------------------------------ rule 2: anyOf / oneOf

    #[test]
    fn anyof_of_objects_is_merged() {
        let changes = check(
            json!({"type": "object", "properties": {"shape": {"anyOf": [
                {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}}, "required": ["kind", "r"]},
                {"type": "object", "properties": {"kind": {"const": "rect"}, "w": {"type": "number"}}, "required": ["kind", "w"]},
                {"type": "null"}
            ]}}}),
            json!({"type": "object", "properties": {"shape": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": ["circle", "rect"]},
                    "r": {"type": "number"},
                    "w": {"type": "number"}
                },
                "required": ["kind"]
            }}}),
        );
        has(&changes, "anyOf with null of 2 object schemas merged");
        has(&changes, "#/properties/shape/properties/kind: ");
        has(
            &changes,
            "merged alternatives of 2 enums merged into one enum",
        );
    }

    #[test]
    fn anyof_of_same_type_enums_is_one_enum() {
        let changes = check(
            json!({"type": "object", "properties": {"c": {"oneOf": [
                {"const": "red", "title": "Red"}, {"const": "green"}, {"enum": ["blue", "red"]}
            ]}}}),
            json!({"type": "object", "properties": {"c": {"type": "string", "enum": ["red", "green", "blue"]}}}),
        );
        has(&changes, "oneOf of 3 enums merged into one enum");
        has(&changes, "1 duplicate enum value(s) dropped");
    }

    #[test]
    fn anyof_of_mixed_types_keeps_the_first() {
        let changes = check(
            json!({"type": "object", "properties": {
                "v": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}], "default": null},
                "w": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
            }}),
            json!({"type": "object", "properties": {"v": {"type": "integer"}, "w": {"type": "string"}}}),
        );
        has(
            &changes,
            "anyOf with null of 2 schemas reduced to the first (integer)",
        );
        has(&changes, "anyOf of 2 schemas reduced to the first (string)");
    }

    #[test]
    fn keywords_next_to_anyof_win() {
        check(
            json!({"type": "object", "properties": {"x": {
                "description": "outer",
                "default": 5,
                "anyOf": [{"type": "integer", "description": "inner", "default": 1}, {"type": "null"}]
            }}}),
            json!({"type": "object", "properties": {"x": {"type": "integer", "description": "outer (default: 5)"}}}),
        );
    }

    #[test]
    fn root_anyof_of_objects_is_merged() {
        check(
            json!({"anyOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]}
            ]}),
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}),
        );
    }

    // ------------------------------------------------------------------ rule 3: type lists

    #[test]
    fn type_list_keeps_the_first_known_type() {
        let changes = check(
            json!({"type": "object", "properties": {
                "a": {"type": ["integer", "string"]},
                "b": {"type": ["any", "boolean"]},
                "c": {"type": "file"}
            }}),
            json!({"type": "object", "properties": {
                "a": {"type": "integer"},
                "b": {"type": "boolean"},
                "c": {"type": "string"}
            }}),
        );
        has(&changes, r#"unknown type "file" ignored"#);
    }

    // ------------------------------------------------------------------ rule 4: allOf

    #[test]
    fn allof_is_merged_with_the_nodes_own_keywords_winning() {
        let changes = check(
            json!({"type": "object", "properties": {"p": {
                "description": "own",
                "allOf": [
                    {"type": "object", "description": "first", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "string"}, "c": {"type": "boolean"}}, "required": ["c"]}
                ]
            }}}),
            json!({"type": "object", "properties": {"p": {
                "type": "object",
                "description": "own",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}},
                "required": ["a", "c"]
            }}}),
        );
        has(&changes, "allOf of 2 merged");
    }

    // ------------------------------------------------------------------ rule 5: $ref

    #[test]
    fn refs_to_defs_and_definitions_are_inlined_with_siblings_winning() {
        let changes = check(
            json!({
                "$defs": {"Priority": {"enum": ["low", "high"], "title": "Priority", "type": "string", "description": "How urgent"}},
                "definitions": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
                "type": "object",
                "properties": {
                    "priority": {"$ref": "#/$defs/Priority", "default": "low"},
                    "at": {"$ref": "#/definitions/Point", "description": "Where"}
                }
            }),
            json!({
                "type": "object",
                "properties": {
                    "priority": {"type": "string", "enum": ["low", "high"], "description": "How urgent (default: \"low\")"},
                    "at": {"type": "object", "description": "Where", "properties": {"x": {"type": "number"}}, "required": ["x"]}
                }
            }),
        );
        has(&changes, "#: dropped $defs, definitions");
        has(&changes, "$ref #/$defs/Priority inlined");
    }

    #[test]
    fn escaped_and_percent_encoded_pointers_resolve() {
        check(
            json!({
                "$defs": {"a/b": {"type": "integer"}, "c~d": {"type": "boolean"}, "e f": {"type": "number"}},
                "type": "object",
                "properties": {
                    "x": {"$ref": "#/$defs/a~1b"},
                    "y": {"$ref": "#/$defs/c~0d"},
                    "z": {"$ref": "#/%24defs/e%20f"}
                }
            }),
            json!({"type": "object", "properties": {
                "x": {"type": "integer"}, "y": {"type": "boolean"}, "z": {"type": "number"}
            }}),
        );
    }

    #[test]
    fn unresolvable_and_external_refs_become_strings() {
        let changes = check(
            json!({"type": "object", "properties": {
                "a": {"$ref": "#/$defs/Missing"},
                "b": {"$ref": "https://example.com/schema.json#/Thing", "description": "ext"},
                "c": {"$ref": "#anchor"},
                "d": {"$ref": 7}
            }}),
            json!({"type": "object", "properties": {
                "a": {"type": "string"},
                "b": {"type": "string", "description": "ext"},
                "c": {"type": "string"},
                "d": {"type": "string"}
            }}),
        );
        has(
            &changes,
            "$ref #/$defs/Missing not resolvable in this document; ignored",
        );
        has(&changes, "non-string $ref ignored");
    }

    #[test]
    fn a_recursive_ref_is_expanded_once() {
        let changes = check(
            json!({
                "$defs": {"TreeNode": {
                    "type": "object",
                    "description": "A node",
                    "properties": {
                        "label": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/TreeNode"}, "default": []}
                    },
                    "required": ["label"]
                }},
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/TreeNode"}},
                "required": ["root"]
            }),
            json!({
                "type": "object",
                "properties": {"root": {
                    "type": "object",
                    "description": "A node",
                    "properties": {
                        "label": {"type": "string"},
                        "children": {"type": "array", "description": "(default: [])", "items": {"type": "object", "description": "A node"}}
                    },
                    "required": ["label"]
                }},
                "required": ["root"]
            }),
        );
        has(
            &changes,
            "#/properties/root/properties/children/items: recursive $ref #/$defs/TreeNode not expanded again",
        );
    }

    #[test]
    fn a_ref_to_the_root_is_expanded_once() {
        check(
            json!({"type": "object", "properties": {"next": {"$ref": "#"}, "v": {"type": "integer"}}}),
            json!({"type": "object", "properties": {
                "next": {"type": "object", "properties": {"next": {"type": "object"}, "v": {"type": "integer"}}},
                "v": {"type": "integer"}
            }}),
        );
    }

    #[test]
    fn mutually_recursive_refs_without_structure_end() {
        let changes = check(
            json!({"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}},
                   "type": "object", "properties": {"x": {"$ref": "#/$defs/A"}}}),
            json!({"type": "object", "properties": {"x": {"type": "string"}}}),
        );
        has(&changes, "recursive $ref #/$defs/A not expanded again");
    }

    #[test]
    fn a_reused_but_not_recursive_ref_is_inlined_everywhere() {
        check(
            json!({"$defs": {"P": {"type": "object", "properties": {"x": {"type": "number"}}}},
                   "type": "object",
                   "properties": {"from": {"$ref": "#/$defs/P"}, "to": {"$ref": "#/$defs/P"},
                                  "path": {"type": "array", "items": {"$ref": "#/$defs/P"}}}}),
            json!({"type": "object", "properties": {
                "from": {"type": "object", "properties": {"x": {"type": "number"}}},
                "to": {"type": "object", "properties": {"x": {"type": "number"}}},
                "path": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}}}
            }}),
        );
    }

    // ------------------------------------------------------------------ rules 6 and 7: const, enum

    #[test]
    fn const_becomes_a_one_value_enum() {
        let changes = check(
            json!({"type": "object", "properties": {
                "mode": {"const": "replace", "type": "string"},
                "n": {"const": 3},
                "both": {"const": "a", "enum": ["a", "b"]}
            }}),
            json!({"type": "object", "properties": {
                "mode": {"type": "string", "enum": ["replace"]},
                "n": {"type": "integer", "enum": [3]},
                "both": {"type": "string", "enum": ["a"]}
            }}),
        );
        has(&changes, "const replaced by a one-value enum");
        has(
            &changes,
            "#/properties/n: const replaced by a one-value enum; no type; integer inferred from enum values",
        );
    }

    #[test]
    fn enum_values_of_the_wrong_type_and_duplicates_are_dropped() {
        let changes = check(
            json!({"type": "object", "properties": {
                "s": {"type": "string", "enum": ["a", 1, "a", true]},
                "i": {"type": "integer", "enum": [1, 2.5, 3.0, "4"]},
                "none": {"type": "boolean", "enum": ["yes"]},
                "empty": {"type": "string", "enum": []},
                "mixed": {"enum": ["x", 1]},
                "nums": {"enum": [1, 2.5]}
            }}),
            json!({"type": "object", "properties": {
                "s": {"type": "string", "enum": ["a"]},
                "i": {"type": "integer", "enum": [1, 3.0]},
                "none": {"type": "boolean"},
                "empty": {"type": "string"},
                "mixed": {"type": "string", "enum": ["x"]},
                "nums": {"type": "number", "enum": [1, 2.5]}
            }}),
        );
        has(
            &changes,
            "2 enum value(s) not of type string dropped; 1 duplicate enum value(s) dropped",
        );
        has(
            &changes,
            "#/properties/none: 1 enum value(s) not of type boolean dropped; empty enum dropped",
        );
    }

    #[test]
    fn enum_on_objects_and_arrays_is_dropped() {
        check(
            json!({"type": "object", "properties": {
                "o": {"type": "object", "enum": [{"a": 1}]},
                "a": {"type": "array", "items": {"type": "integer"}, "enum": [[1]]}
            }}),
            json!({"type": "object", "properties": {
                "o": {"type": "object"},
                "a": {"type": "array", "items": {"type": "integer"}}
            }}),
        );
    }

    // ------------------------------------------------------------------ rule 8: folding

    #[test]
    fn constraints_are_folded_into_the_description_in_a_fixed_order() {
        let changes = check(
            json!({"type": "object", "properties": {
                "n": {"type": "integer", "maximum": 10, "minimum": 1, "default": 3, "description": "How many", "multipleOf": 1},
                "u": {"type": "string", "format": "uri", "pattern": "^https://", "maxLength": 2048},
                "l": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5, "uniqueItems": true},
                "e": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": ""}
            }}),
            json!({"type": "object", "properties": {
                "n": {"type": "integer", "description": "How many (default: 3; minimum: 1; maximum: 10; multipleOf: 1)"},
                "u": {"type": "string", "description": "(format: uri; pattern: ^https://; maxLength: 2048)"},
                "l": {"type": "array", "items": {"type": "string"}, "description": "(minItems: 1; maxItems: 5)"},
                "e": {"type": "number", "description": "(exclusiveMinimum: 0; exclusiveMaximum: 1)"}
            }}),
        );
        has(
            &changes,
            "#/properties/n: moved default, minimum, maximum, multipleOf into the description",
        );
        has(&changes, "#/properties/l: dropped uniqueItems");
    }

    #[test]
    fn long_and_structured_folded_values_are_cut() {
        let long = "x".repeat(500);
        let (out, _) = normalize_for_gateway(&json!({"type": "object", "properties": {
            "a": {"type": "string", "default": long},
            "b": {"type": "object", "default": {"k": [1, 2, {"deep": [[[[1]]]]}]}}
        }}));
        let a = out["properties"]["a"]["description"].as_str().unwrap();
        assert_eq!(
            a.chars().count(),
            "(default: )".len() + MAX_FOLDED_CHARS + 1
        );
        assert!(a.ends_with("…)"));
        assert_eq!(
            out["properties"]["b"]["description"],
            r#"(default: {"k":[1,2,{"deep":[[…]]}]})"#
        );
        assert_idempotent(&out);
    }

    // ------------------------------------------------------------------ rule 9: missing types

    #[test]
    fn missing_types_are_inferred_or_default_to_string() {
        let changes = check(
            json!({"type": "object", "properties": {
                "obj": {"properties": {"a": {"type": "string"}}},
                "req": {"required": []},
                "arr": {"items": {"type": "integer"}},
                "en": {"enum": ["a", "b"]},
                "fmt": {"format": "date-time"},
                "num": {"minimum": 0},
                "cnt": {"maxItems": 3},
                "any": {},
                "desc": {"description": "Anything", "title": "Any"},
                "yes": true,
                "odd": 42
            }}),
            json!({"type": "object", "properties": {
                "obj": {"type": "object", "properties": {"a": {"type": "string"}}},
                "req": {"type": "object"},
                "arr": {"type": "array", "items": {"type": "integer"}},
                "en": {"type": "string", "enum": ["a", "b"]},
                "fmt": {"type": "string", "description": "(format: date-time)"},
                "num": {"type": "number", "description": "(minimum: 0)"},
                "cnt": {"type": "array", "items": {"type": "string"}, "description": "(maxItems: 3)"},
                "any": {"type": "string"},
                "desc": {"type": "string", "description": "Anything"},
                "yes": {"type": "string"},
                "odd": {"type": "string"}
            }}),
        );
        has(&changes, "#/properties/any: no type; string assumed");
        has(
            &changes,
            "#/properties/req: no type; object inferred from required; empty required dropped",
        );
        has(
            &changes,
            "#/properties/odd: a number is not a schema; treated as {}",
        );
    }

    // ------------------------------------------------------------------ rule 10: arrays

    #[test]
    fn arrays_always_get_items() {
        let changes = check(
            json!({"type": "object", "properties": {
                "empty": {"type": "array", "items": {}},
                "missing": {"type": "array"},
                "yes": {"type": "array", "items": true},
                "tuple": {"type": "array", "items": [{"type": "integer"}, {"type": "string"}]},
                "none": {"type": "array", "items": []},
                "prefix": {"type": "array", "prefixItems": [{"type": "integer"}]}
            }}),
            json!({"type": "object", "properties": {
                "empty": {"type": "array", "items": {"type": "string"}},
                "missing": {"type": "array", "items": {"type": "string"}},
                "yes": {"type": "array", "items": {"type": "string"}},
                "tuple": {"type": "array", "items": {"type": "integer"}},
                "none": {"type": "array", "items": {"type": "string"}},
                "prefix": {"type": "array", "items": {"type": "string"}}
            }}),
        );
        has(
            &changes,
            "#/properties/empty/items: no type; string assumed",
        );
        has(
            &changes,
            "#/properties/missing: array without items; items set to {\"type\": \"string\"}",
        );
        has(&changes, "tuple items reduced to the first item schema");
    }

    // ------------------------------------------------------------------ rule 11: objects

    #[test]
    fn required_is_cleaned() {
        let changes = check(
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "required": ["a", "ghost", "a", 5, "b"]}),
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "required": ["a", "b"]}),
        );
        has(&changes, "non-string required entries dropped");
        has(&changes, "required names without a property dropped: ghost");
        has(&changes, "1 duplicate required name(s) dropped");
        check(
            json!({"type": "object", "properties": {}, "required": []}),
            json!({"type": "object", "properties": {}}),
        );
        check(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": "a"}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
        );
    }

    #[test]
    fn keywords_that_do_not_fit_the_type_are_dropped() {
        let changes = check(
            json!({"type": "object", "properties": {
                "s": {"type": "string", "properties": {"x": {"type": "string"}}, "required": ["x"], "items": {"type": "string"}},
                "o": {"type": "object", "items": {"type": "string"}}
            }}),
            json!({"type": "object", "properties": {"s": {"type": "string"}, "o": {"type": "object"}}}),
        );
        has(
            &changes,
            "#/properties/s: dropped properties, required, items (type is string)",
        );
        has(&changes, "#/properties/o: dropped items (type is object)");
    }

    // ------------------------------------------------------------------ rule 13: unsupported keywords

    #[test]
    fn unsupported_keywords_are_dropped_and_listed() {
        let changes = check(
            json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "$id": "urn:x", "$comment": "c", "title": "Args",
                "type": "object",
                "additionalProperties": false,
                "patternProperties": {"^x": {"type": "string"}},
                "properties": {
                    "a": {"type": "string", "examples": ["e"], "readOnly": true, "deprecated": true, "x-vendor": 1,
                          "contentMediaType": "text/plain", "description": 7},
                    "m": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1,
                          "propertyNames": {"pattern": "^[a-z]+$"}, "unevaluatedProperties": false},
                    "c": {"type": "string", "not": {"const": "x"}, "if": {}, "then": {}, "else": {}}
                }
            }),
            json!({"type": "object", "properties": {
                "a": {"type": "string"}, "m": {"type": "object"}, "c": {"type": "string"}
            }}),
        );
        has(
            &changes,
            "#: dropped $comment, $id, $schema, additionalProperties, patternProperties, title",
        );
        has(
            &changes,
            "#/properties/a: dropped contentMediaType, deprecated, description, examples, readOnly, x-vendor",
        );
        has(&changes, "#/properties/c: dropped else, if, not, then");
    }

    #[test]
    fn long_dropped_lists_are_cut() {
        let mut m = Map::new();
        m.insert("type".into(), json!("string"));
        for i in 0..25 {
            m.insert(format!("x-{i:02}"), json!(i));
        }
        let (_, changes) =
            normalize_for_gateway(&json!({"type": "object", "properties": {"a": m}}));
        has(&changes, "x-09 and 15 more");
    }

    // ------------------------------------------------------------------ limits

    /// `D0` … `D39`, each an object with two properties referring to the next: 2^40 nodes
    /// if inlined naively. The depth and node limits stop it.
    #[test]
    fn exponential_refs_are_bounded() {
        let mut defs = Map::new();
        for i in 0..40 {
            let next = json!({"$ref": format!("#/$defs/D{}", i + 1)});
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {"a": next, "b": next}}),
            );
        }
        defs.insert("D40".into(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "$ref": "#/$defs/D0"});
        let started = std::time::Instant::now();
        let (out, changes) = normalize_for_gateway(&schema);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_subset(&out);
        let n = count_nodes(&out);
        assert!(n <= MAX_NODES + 2 * (MAX_DEPTH + 2), "{n} nodes");
        assert!(n >= MAX_NODES, "{n} nodes");
        has(
            &changes,
            "more than 10000 nodes; the rest reduced to their type",
        );
        assert!(changes.len() <= MAX_CHANGES + 3);
        has(&changes, "more changed nodes");
        assert_idempotent(&out);
    }

    #[test]
    fn deep_nesting_is_cut_at_max_depth() {
        let mut s = json!({"type": "array", "items": {"type": "integer"}});
        for i in 0..100 {
            s = if i % 2 == 0 {
                json!({"type": "object", "properties": {"n": s}, "required": ["n"]})
            } else {
                json!({"type": "array", "items": s})
            };
        }
        let s = json!({"type": "object", "properties": {"n": s}});
        let (out, changes) = normalize_for_gateway(&s);
        assert_subset(&out);
        // The node at depth MAX_DEPTH + 1 is an array stub, with its items one level lower.
        assert_eq!(max_depth(&out), MAX_DEPTH + 2);
        has(
            &changes,
            "nested deeper than 32 levels reduced to their type",
        );
        assert_idempotent(&out);
    }

    #[test]
    fn deep_recursion_through_refs_is_cut_at_max_depth() {
        // Each level is a different definition, so recursion detection does not apply.
        let mut defs = Map::new();
        for i in 0..100 {
            defs.insert(
                format!("L{i}"),
                json!({"type": "array", "items": {"$ref": format!("#/$defs/L{}", i + 1)}}),
            );
        }
        defs.insert("L100".into(), json!({"type": "integer"}));
        let s =
            json!({"$defs": defs, "type": "object", "properties": {"x": {"$ref": "#/$defs/L0"}}});
        let (out, _) = normalize_for_gateway(&s);
        assert_subset(&out);
        assert_eq!(max_depth(&out), MAX_DEPTH + 2);
        assert_idempotent(&out);
    }

    #[test]
    fn long_ref_chains_run_out_of_resolution_steps() {
        let mut defs = Map::new();
        for i in 0..400 {
            defs.insert(
                format!("R{i}"),
                json!({"$ref": format!("#/$defs/R{}", i + 1)}),
            );
        }
        defs.insert("R400".into(), json!({"type": "integer"}));
        let s =
            json!({"$defs": defs, "type": "object", "properties": {"x": {"$ref": "#/$defs/R0"}}});
        let (out, changes) = normalize_for_gateway(&s);
        assert_eq!(out["properties"]["x"], json!({"type": "string"}));
        has(
            &changes,
            "more than 256 resolution steps; further subschemas ignored",
        );
        assert_idempotent(&out);
    }

    #[test]
    fn huge_unions_run_out_of_resolution_steps() {
        let alts: Vec<Value> = (0..5000)
            .map(|i| json!({"const": format!("v{i}")}))
            .collect();
        let s = json!({"type": "object", "properties": {"x": {"anyOf": alts}}});
        let (out, changes) = normalize_for_gateway(&s);
        let e = out["properties"]["x"]["enum"].as_array().unwrap();
        assert_eq!(e.len(), MAX_RESOLVE_STEPS - 1);
        has(&changes, "more than 256 resolution steps");
        assert_idempotent(&out);
    }

    #[test]
    fn too_much_work_gives_up_on_the_schema() {
        // 1,000 properties that each refer to a definition with 3,000 unknown keywords.
        let mut big = Map::new();
        big.insert("type".into(), json!("string"));
        for i in 0..3000 {
            big.insert(format!("x-{i}"), json!(i));
        }
        let mut props = Map::new();
        for i in 0..1000 {
            props.insert(format!("p{i}"), json!({"$ref": "#/$defs/Big"}));
        }
        let s = json!({"$defs": {"Big": big}, "type": "object", "description": "d", "properties": props});
        let (out, changes) = normalize_for_gateway(&s);
        assert_eq!(
            out,
            json!({"type": "object", "description": "d", "properties": {}})
        );
        assert_eq!(changes.len(), 1);
        has(&changes, "schema too complex");
        assert_idempotent(&out);
    }

    #[test]
    fn large_enums_are_deduplicated_quickly() {
        let vals: Vec<Value> = (0..200_000)
            .map(|i| json!(format!("v{}", i % 1000)))
            .collect();
        let s = json!({"type": "object", "properties": {"x": {"type": "string", "enum": vals}}});
        let (out, _) = normalize_for_gateway(&s);
        assert_eq!(
            out["properties"]["x"]["enum"].as_array().unwrap().len(),
            1000
        );
    }

    #[test]
    fn output_is_deterministic() {
        let s = json!({"$defs": {"A": {"anyOf": [{"type": "object", "properties": {"k": {"const": 1}}}, {"type": "object", "properties": {"k": {"const": 2}}}]}},
                       "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"allOf": [{"$ref": "#/$defs/A"}]}}});
        let first = normalize_for_gateway(&s);
        for _ in 0..5 {
            assert_eq!(normalize_for_gateway(&s), first);
        }
        assert_idempotent(&first.0);
    }

    // ------------------------------------------------------------------ generated schemas

    /// A random schema mixing every keyword the rules handle, with `$ref`s into `$defs`
    /// (which may refer to each other and to the root).
    fn random_schema(rng: &mut impl rand::Rng, depth: usize) -> Value {
        if rng.random_ratio(1, 12) {
            return json!(rng.random_bool(0.8));
        }
        let mut m = Map::new();
        let types = [
            json!("string"),
            json!("number"),
            json!("integer"),
            json!("boolean"),
            json!("object"),
            json!("array"),
            json!("null"),
            json!("any"),
            json!(["string", "null"]),
            json!(["null", "object"]),
            json!(["integer", "string"]),
        ];
        let scalars = [
            json!("a"),
            json!("b"),
            json!(1),
            json!(2.5),
            json!(true),
            json!(null),
        ];
        if rng.random_bool(0.6) {
            m.insert(
                "type".into(),
                types[rng.random_range(0..types.len())].clone(),
            );
        }
        if rng.random_bool(0.3) {
            m.insert(
                "description".into(),
                json!(format!("d{}", rng.random_range(0..3))),
            );
        }
        if rng.random_bool(0.15) {
            let n = rng.random_range(0..4);
            let e: Vec<Value> = (0..n)
                .map(|_| scalars[rng.random_range(0..scalars.len())].clone())
                .collect();
            m.insert("enum".into(), Value::Array(e));
        }
        if rng.random_bool(0.08) {
            m.insert(
                "const".into(),
                scalars[rng.random_range(0..scalars.len())].clone(),
            );
        }
        if rng.random_bool(0.2) {
            m.insert(
                "default".into(),
                scalars[rng.random_range(0..scalars.len())].clone(),
            );
        }
        for (kw, v) in [
            ("title", json!("T")),
            ("format", json!("uri")),
            ("minimum", json!(0)),
            ("maxItems", json!(3)),
            ("nullable", json!(true)),
            ("additionalProperties", json!(false)),
            ("examples", json!([1])),
        ] {
            if rng.random_bool(0.07) {
                m.insert(kw.into(), v);
            }
        }
        if depth < 4 && rng.random_bool(0.35) {
            let mut props = Map::new();
            for i in 0..rng.random_range(0..4) {
                props.insert(format!("p{i}"), random_schema(rng, depth + 1));
            }
            m.insert("properties".into(), Value::Object(props));
        }
        if rng.random_bool(0.25) {
            let names = ["p0", "p1", "p2", "ghost", "p0"];
            let r: Vec<Value> = (0..rng.random_range(0..4))
                .map(|_| json!(names[rng.random_range(0..names.len())]))
                .collect();
            m.insert("required".into(), Value::Array(r));
        }
        if depth < 4 && rng.random_bool(0.25) {
            let items = match rng.random_range(0..4) {
                0 => json!({}),
                1 => json!([random_schema(rng, depth + 1)]),
                _ => random_schema(rng, depth + 1),
            };
            m.insert("items".into(), items);
        }
        if depth < 4 {
            for kw in ["anyOf", "oneOf", "allOf"] {
                if rng.random_bool(0.12) {
                    let alts: Vec<Value> = (0..rng.random_range(1..4))
                        .map(|_| {
                            if rng.random_ratio(1, 4) {
                                json!({"type": "null"})
                            } else {
                                random_schema(rng, depth + 1)
                            }
                        })
                        .collect();
                    m.insert(kw.into(), Value::Array(alts));
                }
            }
        }
        if rng.random_bool(0.15) {
            let refs = [
                "#/$defs/A",
                "#/$defs/B",
                "#/$defs/C",
                "#",
                "#/$defs/Missing",
            ];
            m.insert("$ref".into(), json!(refs[rng.random_range(0..refs.len())]));
        }
        Value::Object(m)
    }

    #[test]
    fn generated_schemas_keep_every_invariant() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x005c_4e3a);
        let mut changed = 0;
        for _ in 0..3000 {
            let mut root = random_schema(&mut rng, 0);
            if let Value::Object(m) = &mut root {
                let defs: Map<String, Value> = ["A", "B", "C"]
                    .iter()
                    .map(|k| (k.to_string(), random_schema(&mut rng, 1)))
                    .collect();
                m.insert("$defs".into(), Value::Object(defs));
            }
            let (out, changes) = normalize_for_gateway(&root);
            assert_subset(&out);
            assert_eq!(changes.is_empty(), out == root, "{root}\n{changes:#?}");
            assert!(
                !changes.iter().any(|c| c.contains("schema rewritten")),
                "{root}\n{changes:#?}"
            );
            assert_eq!(normalize_for_gateway(&root), (out.clone(), changes.clone()));
            let (again, changes2) = normalize_for_gateway(&out);
            assert_eq!(again, out, "not idempotent for {root}");
            assert!(changes2.is_empty(), "second pass of {root}: {changes2:#?}");
            changed += usize::from(!changes.is_empty());
        }
        assert!(changed > 2000, "{changed}");
    }

    // ------------------------------------------------------------------ real tool schemas

    const EVERYTHING: &str =
        include_str!("../../tests/fixtures/schema/server-everything-tools.json");
    const FASTMCP: &str = include_str!("../../tests/fixtures/schema/fastmcp-pydantic-tools.json");

    fn fixture_tools(text: &str) -> Vec<Value> {
        let v: Value = serde_json::from_str(text).expect("fixture is JSON");
        v["tools"].as_array().expect("fixture has tools").clone()
    }

    fn tool<'t>(tools: &'t [Value], name: &str) -> &'t Value {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no tool {name}"))
    }

    /// Every schema of every fixture tool: in the subset, idempotent, and changes reported
    /// exactly when it changed.
    #[test]
    fn every_fixture_schema_normalizes_into_the_subset() {
        let mut schemas = 0;
        for text in [EVERYTHING, FASTMCP] {
            for t in fixture_tools(text) {
                for key in ["inputSchema", "outputSchema"] {
                    let Some(s) = t.get(key) else { continue };
                    let (out, changes) = normalize_for_gateway(s);
                    assert_subset(&out);
                    assert_eq!(changes.is_empty(), out == *s, "{}: {changes:#?}", t["name"]);
                    assert_idempotent(&out);
                    schemas += 1;
                }
            }
        }
        assert_eq!(schemas, 16 + 1 + 4 + 3);
    }

    #[test]
    fn server_everything_schemas() {
        let tools = fixture_tools(EVERYTHING);
        assert_eq!(tools.len(), 16);

        let changes = check(
            tool(&tools, "echo")["inputSchema"].clone(),
            json!({"type": "object", "properties": {"message": {"type": "string", "description": "Message to echo"}}, "required": ["message"]}),
        );
        assert_eq!(changes, vec!["#: dropped $schema"]);

        check(
            tool(&tools, "get-env")["inputSchema"].clone(),
            json!({"type": "object", "properties": {}}),
        );

        check(
            tool(&tools, "get-resource-links")["inputSchema"].clone(),
            json!({"type": "object", "properties": {"count": {
                "type": "number",
                "description": "Number of resource links to return (1-10) (default: 3; minimum: 1; maximum: 10)"
            }}}),
        );

        check(
            tool(&tools, "get-resource-reference")["inputSchema"].clone(),
            json!({"type": "object", "properties": {
                "resourceType": {"type": "string", "enum": ["Text", "Blob"], "description": "(default: \"Text\")"},
                "resourceId": {"type": "number", "description": "ID of the text resource to fetch (default: 1)"}
            }}),
        );

        check(
            tool(&tools, "gzip-file-as-resource")["inputSchema"].clone(),
            json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "Name of the output file (default: \"README.md.gz\")"},
                "data": {"type": "string", "description": "URL or data URI of the file content to compress (default: \"https://raw.githubusercontent.com/modelcontextprotocol/servers/refs/heads/main/README.md\"; format: uri)"},
                "outputType": {"type": "string", "enum": ["resourceLink", "resource"], "description": "How the resulting gzipped file should be returned. 'resourceLink' returns a link to a resource that can be read later, 'resource' returns a full resource object. (default: \"resourceLink\")"}
            }}),
        );

        let structured = tool(&tools, "get-structured-content");
        check(
            structured["inputSchema"].clone(),
            json!({"type": "object", "properties": {"location": {"type": "string", "enum": ["New York", "Chicago", "Los Angeles"], "description": "Choose city"}}, "required": ["location"]}),
        );
        let changes = check(
            structured["outputSchema"].clone(),
            json!({"type": "object", "properties": {
                "temperature": {"type": "number", "description": "Temperature in celsius"},
                "conditions": {"type": "string", "description": "Weather conditions description"},
                "humidity": {"type": "number", "description": "Humidity percentage"}
            }, "required": ["temperature", "conditions", "humidity"]}),
        );
        assert_eq!(changes, vec!["#: dropped $schema, additionalProperties"]);
    }

    #[test]
    fn fastmcp_pydantic_schemas() {
        let tools = fixture_tools(FASTMCP);

        let search = tool(&tools, "search_tickets");
        let changes = check(
            search["inputSchema"].clone(),
            json!({"type": "object", "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer"},
                "priority": {"type": "string", "enum": ["low", "high"], "description": "(default: \"low\")"},
                "status": {"type": "string", "enum": ["open", "closed"], "description": "(default: \"open\")"},
                "labels": {"type": "array", "items": {"type": "string"}}
            }, "required": ["query"]}),
        );
        has(&changes, "#: dropped $defs, title");
        has(
            &changes,
            "#/properties/labels: anyOf with null collapsed to array; dropped default: null, title",
        );
        has(
            &changes,
            "#/properties/priority: $ref #/$defs/Priority inlined; dropped title; moved default into the description",
        );

        let address = json!({"type": "object", "properties": {
            "street": {"type": "string"}, "city": {"type": "string"}, "zip": {"type": "string"}
        }, "required": ["street", "city"]});
        let person = json!({"type": "object", "properties": {
            "name": {"type": "string", "description": "Full name"},
            "email": {"type": "string", "description": "Contact email"},
            "address": address,
            "tags": {"type": "array", "items": {"type": "string"}, "description": "(default: [])"}
        }, "required": ["name"]});
        check(
            search["outputSchema"].clone(),
            json!({"type": "object", "properties": {"result": {"type": "array", "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "assignee": person},
                "required": ["id", "title"]
            }}}, "required": ["result"]}),
        );

        let contact = tool(&tools, "create_contact");
        check(
            contact["inputSchema"].clone(),
            json!({"type": "object", "properties": {
                "person": person,
                "notify": {"type": "boolean", "description": "(default: false)"}
            }, "required": ["person"]}),
        );
        check(contact["outputSchema"].clone(), person);

        let changes = check(
            tool(&tools, "store_tree")["inputSchema"].clone(),
            json!({"type": "object", "properties": {
                "root": {"type": "object", "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"type": "object"}, "description": "(default: [])"}
                }, "required": ["label"]},
                "metadata": {"type": "object"}
            }, "required": ["root"]}),
        );
        has(
            &changes,
            "recursive $ref #/$defs/TreeNode not expanded again",
        );

        let set_value = tool(&tools, "set_value");
        check(
            set_value["inputSchema"].clone(),
            json!({"type": "object", "properties": {
                "key": {"type": "string"},
                "value": {"type": "integer"},
                "mode": {"type": "string", "enum": ["replace"], "description": "(default: \"replace\")"}
            }, "required": ["key"]}),
        );
        check(
            set_value["outputSchema"].clone(),
            json!({"type": "object", "properties": {"result": {"type": "string"}}, "required": ["result"]}),
        );
    }
}
