//! The catalog: every target's last good definitions (tools, prompts, resources), merged
//! under exposed names.
//!
//! `tools/list` and call routing read an immutable [`Catalog`] snapshot (one atomic load,
//! no locks on the hot path); a sync that succeeds builds a new snapshot and swaps it in. A
//! sync that fails leaves the target's previous definitions in place (see [`store`]).

pub mod curation;
pub mod events;
pub mod naming;
pub mod persist;
pub mod schema;
pub mod search;
pub mod store;
pub mod sync;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use self::curation::Curation;
pub use self::events::{CatalogEvent, Events};
pub use self::store::{CatalogStore, SyncState, TargetStatus};
use crate::protocol::param_headers::{self, ParamHeader};

/// One exposed tool, prompt or resource.
#[derive(Debug)]
pub struct Entry {
    /// The name (tools, prompts) or URI (resources) the client sees.
    pub exposed: String,
    /// Index of the owning target in config order.
    pub target: usize,
    /// The name or URI on its upstream.
    pub original: String,
    /// The full definition as the client sees it.
    pub json: Box<RawValue>,
    /// A tool's `x-mcp-header` arguments, when it has any.
    pub param_headers: Option<Box<ToolHeaders>>,
}

/// A tool's `x-mcp-header` annotations: those a caller sees (checked against its
/// headers) and the upstream's own (sent upstream); they differ when schemas are normalized.
#[derive(Debug, Default)]
pub struct ToolHeaders {
    pub exposed: Vec<ParamHeader>,
    pub upstream: Vec<ParamHeader>,
}

/// Entries of one kind, sorted by exposed key, with an index.
#[derive(Debug, Default)]
pub struct Entries {
    entries: Vec<Entry>,
    /// foldhash, not std's SipHash: looked up on every call, with short keys, where SipHash
    /// cost several times more; still seeded per process, and the keys are the upstreams'.
    index: foldhash::HashMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Entries {
    fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.exposed.clone(), i))
            .collect();
        Self { entries, index }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn lookup(&self, exposed: &str) -> Option<&Entry> {
        self.index.get(exposed).map(|&i| &self.entries[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// One page of the entries `visible` admits, after `cursor`, and the cursor for the next.
    ///
    /// The cursor encodes the last exposed key of the previous page (opaque to clients).
    /// Paging by key rather than by offset keeps pages consistent when a sync changes the
    /// catalog between two requests: nothing is skipped or repeated.
    pub fn page(
        &self,
        cursor: Option<&str>,
        size: usize,
        visible: impl Fn(&Entry) -> bool,
    ) -> Result<(Vec<&Entry>, Option<String>), InvalidCursor> {
        let start = match cursor {
            None => 0,
            Some(c) => {
                let after = decode_cursor(c).ok_or(InvalidCursor)?;
                self.entries
                    .partition_point(|e| e.exposed.as_str() <= after.as_str())
            }
        };
        let mut rest = self.entries[start..].iter().filter(|e| visible(e));
        let page: Vec<&Entry> = rest.by_ref().take(size).collect();
        let more = rest.next().is_some();
        let next = match page.last() {
            Some(last) if more => Some(encode_cursor(&last.exposed)),
            _ => None,
        };
        Ok((page, next))
    }
}

fn encode_cursor(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// What the targets offer between them, for `initialize` and `server/discover`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Offers {
    pub prompts: bool,
    pub resources: bool,
    /// Some target sends resource updates (`resources.subscribe`).
    pub subscribe: bool,
    pub completions: bool,
    pub logging: bool,
}

/// An immutable, merged view of all targets' definitions.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Entries,
    pub prompts: Entries,
    /// Keyed by exposed URI.
    pub resources: Entries,
    /// In target order: `resources/read` of a URI outside `resources` goes to the first
    /// target whose template matches it.
    pub resource_templates: Vec<TemplateEntry>,
    /// The targets' `instructions`, combined.
    pub instructions: Option<String>,
    /// Name and URI collisions found while merging, as human-readable notes.
    pub collisions: Vec<String>,
    pub offers: Offers,
    /// Notes about definitions changed for the Gateway (schema normalization).
    pub normalized: Vec<String>,
    /// Tools left out because their definitions break a protocol rule, as notes.
    pub rejected: Vec<String>,
    /// The tool-search index over `tools`, when `[search]` is enabled. Set by the store
    /// right after `build`, before the snapshot is published (see `search/mod.rs`).
    pub search: Option<Arc<search::SearchIndex>>,
}

#[derive(Debug)]
pub struct TemplateEntry {
    pub target: usize,
    pub json: Box<RawValue>,
    matcher: UriTemplate,
}

impl TemplateEntry {
    pub fn matches(&self, uri: &str) -> bool {
        self.matcher.matches(uri)
    }
}

/// What one target contributes to a catalog build.
pub struct Contribution<'a> {
    pub target: &'a str,
    pub prefix: bool,
    pub listing: &'a crate::targets::Listing,
    pub curation: &'a Curation,
    pub normalize_schemas: bool,
}

/// Where exposed URIs of colliding resources live (see [`Catalog::build`]).
pub const COLLISION_URI_PREFIX: &str = "mcp-sidecar://";

impl Catalog {
    /// Merges the contributions; `max_name_len` bounds exposed tool and prompt names.
    pub fn build(contributions: &[Contribution<'_>], max_name_len: usize) -> Catalog {
        let mut collisions = Vec::new();
        let mut normalized = Vec::new();
        let mut rejected = Vec::new();
        let tools = named_entries(contributions, "tool", max_name_len, &mut collisions, |c| {
            c.listing
                .tools
                .iter()
                .filter(|t| name_of(t).is_some_and(|n| c.curation.admits(n, t)))
                .filter_map(|t| {
                    let upstream = name_of(t).unwrap_or_default();
                    let headers = match tool_headers(t) {
                        Ok(headers) => headers,
                        Err(why) => {
                            let note = format!(
                                "target '{}' tool `{upstream}` is left out: {why}",
                                c.target
                            );
                            tracing::warn!("{note}");
                            rejected.push(note);
                            return None;
                        }
                    };
                    // Copy a definition only when something in it changes besides the name.
                    let mut def = Cow::Borrowed(t);
                    if c.curation.rewrites(upstream) {
                        c.curation.rewrite(upstream, def.to_mut());
                    }
                    if c.normalize_schemas {
                        normalize_tool(c.target, upstream, def.to_mut(), &mut normalized);
                    }
                    let headers = headers.map(|upstream_headers| {
                        Box::new(ToolHeaders {
                            exposed: tool_headers(&def).ok().flatten().unwrap_or_default(),
                            upstream: upstream_headers,
                        })
                    });
                    Some((
                        upstream.to_string(),
                        c.curation.local_name(upstream).to_string(),
                        def,
                        headers,
                    ))
                })
                .collect()
        });
        let prompts = named_entries(
            contributions,
            "prompt",
            max_name_len,
            &mut collisions,
            |c| {
                c.listing
                    .prompts
                    .iter()
                    .filter_map(|p| {
                        name_of(p).map(|n| (n.to_string(), n.to_string(), Cow::Borrowed(p), None))
                    })
                    .collect()
            },
        );
        Catalog {
            tools,
            prompts,
            resources: resource_entries(contributions, &mut collisions),
            resource_templates: template_entries(contributions),
            instructions: combine_instructions(contributions),
            collisions,
            offers: offers(contributions),
            normalized,
            rejected,
            search: None,
        }
    }
}

/// A tool's `x-mcp-header` annotations (`None`: it has none), or why they break the rules.
fn tool_headers(definition: &Map<String, Value>) -> Result<Option<Vec<ParamHeader>>, String> {
    match definition.get("inputSchema") {
        None => Ok(None),
        Some(schema) => param_headers::annotations(schema).map(|h| (!h.is_empty()).then_some(h)),
    }
}

fn name_of(definition: &Map<String, Value>) -> Option<&str> {
    definition.get("name").and_then(Value::as_str)
}

/// Tools and prompts: `{target}___{name}` (or bare), within the name rules; on a collision
/// the first claimant (config order, then name) keeps the name and the other gets a hashed
/// variant. Every candidate is (upstream name, local name, definition).
fn named_entries(
    contributions: &[Contribution<'_>],
    kind: &str,
    max_len: usize,
    collisions: &mut Vec<String>,
    mut candidates_of: impl for<'c> FnMut(
        &Contribution<'c>,
    ) -> Vec<(
        String,
        String,
        Cow<'c, Map<String, Value>>,
        Option<Box<ToolHeaders>>,
    )>,
) -> Entries {
    let mut taken: HashMap<String, (usize, String)> = HashMap::new();
    let mut entries = Vec::new();
    for (t, c) in contributions.iter().enumerate() {
        let mut candidates = candidates_of(c);
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        candidates.dedup_by(|a, b| a.0 == b.0);
        for (upstream, local, def, param_headers) in candidates {
            let wanted = naming::exposed_name(c.target, &local, c.prefix, max_len);
            let exposed = match taken.get(&wanted) {
                None => wanted,
                Some((other_t, other)) => {
                    let renamed = naming::disambiguated_name(&wanted, c.target, &upstream, max_len);
                    let note = format!(
                        "{kind} `{wanted}` is claimed by target '{}' ({other}) and target '{}' ({upstream}); the latter is exposed as `{renamed}`",
                        contributions[*other_t].target, c.target
                    );
                    tracing::warn!("name collision: {note}");
                    collisions.push(note);
                    renamed
                }
            };
            taken.insert(exposed.clone(), (t, upstream.clone()));
            let renamed = Renamed {
                definition: &def,
                name: &exposed,
            };
            entries.push(Entry {
                json: serde_json::value::to_raw_value(&renamed).expect("a JSON object serializes"),
                exposed,
                target: t,
                original: upstream,
                param_headers,
            });
        }
    }
    Entries::new(entries)
}

/// A definition serialized with another `name`, without copying it.
struct Renamed<'a> {
    definition: &'a Map<String, Value>,
    name: &'a str,
}

impl serde::Serialize for Renamed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let has_name = self.definition.contains_key("name");
        let mut map =
            serializer.serialize_map(Some(self.definition.len() + usize::from(!has_name)))?;
        if !has_name {
            map.serialize_entry("name", self.name)?;
        }
        for (key, value) in self.definition {
            if key == "name" {
                map.serialize_entry(key, self.name)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Resources keep their URIs. When two targets list the same URI, the first (config order)
/// keeps it and the other's is exposed as `mcp-sidecar://{target}/{percent-encoded URI}`,
/// which reads back to the original by decoding.
fn resource_entries(contributions: &[Contribution<'_>], collisions: &mut Vec<String>) -> Entries {
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::new();
    for (t, c) in contributions.iter().enumerate() {
        for resource in &c.listing.resources {
            let Some(uri) = resource.get("uri").and_then(Value::as_str) else {
                continue;
            };
            let exposed = match taken.get(uri) {
                None => uri.to_string(),
                Some(other) => {
                    let renamed = collision_uri(c.target, uri);
                    let note = format!(
                        "resource `{uri}` is listed by targets '{}' and '{}'; the latter's is exposed as `{renamed}`",
                        contributions[*other].target, c.target
                    );
                    tracing::warn!("URI collision: {note}");
                    collisions.push(note);
                    renamed
                }
            };
            if taken.contains_key(&exposed) {
                continue;
            }
            taken.insert(exposed.clone(), t);
            let mut def = resource.clone();
            def.insert("uri".into(), Value::String(exposed.clone()));
            entries.push(Entry {
                json: serde_json::value::to_raw_value(&def).expect("a JSON object serializes"),
                exposed,
                target: t,
                original: uri.to_string(),
                param_headers: None,
            });
        }
    }
    Entries::new(entries)
}

pub fn collision_uri(target: &str, uri: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
    format!("{COLLISION_URI_PREFIX}{target}/{encoded}")
}

fn template_entries(contributions: &[Contribution<'_>]) -> Vec<TemplateEntry> {
    let mut out = Vec::new();
    for (t, c) in contributions.iter().enumerate() {
        for template in &c.listing.resource_templates {
            let Some(pattern) = template.get("uriTemplate").and_then(Value::as_str) else {
                continue;
            };
            out.push(TemplateEntry {
                target: t,
                json: serde_json::value::to_raw_value(template).expect("a JSON object serializes"),
                matcher: UriTemplate::new(pattern),
            });
        }
    }
    out
}

fn offers(contributions: &[Contribution<'_>]) -> Offers {
    let has = |key: &str| {
        contributions.iter().any(|c| {
            c.listing
                .capabilities
                .get(key)
                .is_some_and(|v| !v.is_null())
        })
    };
    Offers {
        prompts: has("prompts"),
        resources: has("resources"),
        subscribe: contributions
            .iter()
            .any(|c| c.listing.capabilities["resources"]["subscribe"].as_bool() == Some(true)),
        completions: has("completions"),
        logging: has("logging"),
    }
}

fn normalize_tool(target: &str, tool: &str, def: &mut Map<String, Value>, notes: &mut Vec<String>) {
    for key in ["inputSchema", "outputSchema"] {
        if let Some(schema) = def.get(key) {
            let (rewritten, changes) = schema::normalize_for_gateway(schema);
            if !changes.is_empty() {
                notes.push(format!("{target}/{tool} {key}: {}", changes.join("; ")));
                def.insert(key.into(), rewritten);
            }
        }
    }
}

/// A URI template (RFC 6570) reduced to what routing needs: literal text must match, each
/// `{…}` expression matches any run of characters (`{+…}`, `{#…}` may span `/`).
#[derive(Debug)]
struct UriTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Debug)]
enum TemplatePart {
    Literal(String),
    Segment,
    Any,
}

impl UriTemplate {
    fn new(template: &str) -> Self {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                parts.push(TemplatePart::Literal(rest[open..].to_string()));
                rest = "";
                break;
            };
            let expression = &rest[open + 1..open + close];
            parts.push(if expression.starts_with(['+', '#']) {
                TemplatePart::Any
            } else {
                TemplatePart::Segment
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_string()));
        }
        Self { parts }
    }

    fn matches(&self, uri: &str) -> bool {
        fn go(parts: &[TemplatePart], s: &str) -> bool {
            match parts.split_first() {
                None => s.is_empty(),
                Some((TemplatePart::Literal(l), rest)) => {
                    s.strip_prefix(l.as_str()).is_some_and(|s| go(rest, s))
                }
                Some((part, rest)) => {
                    let stop = |c: char| {
                        matches!(part, TemplatePart::Segment) && (c == '/' || c == '?' || c == '#')
                    };
                    let mut end = 0;
                    loop {
                        if end > 0 && go(rest, &s[end..]) {
                            return true;
                        }
                        match s[end..].chars().next() {
                            Some(c) if !stop(c) => end += c.len_utf8(),
                            _ => return false,
                        }
                    }
                }
            }
        }
        go(&self.parts, uri)
    }
}

/// With one target its instructions pass through unchanged; with several, each keeps its
/// own text under a heading naming the target (combined, never replaced).
fn combine_instructions(contributions: &[Contribution<'_>]) -> Option<String> {
    let present: Vec<(&str, &str)> = contributions
        .iter()
        .filter_map(|c| {
            c.listing
                .instructions
                .as_deref()
                .filter(|i| !i.trim().is_empty())
                .map(|i| (c.target, i))
        })
        .collect();
    match present.as_slice() {
        [] => None,
        [(_, only)] => Some(only.to_string()),
        many => Some(
            many.iter()
                .map(|(target, text)| format!("## Target '{target}'\n{}", text.trim()))
                .collect::<Vec<_>>()
                .join("\n\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Listing;
    use serde_json::json;

    fn objects(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_object().unwrap().clone())
            .collect()
    }

    fn tools(names: &[&str]) -> Listing {
        Listing {
            tools: names
                .iter()
                .map(|n| {
                    json!({"name": n, "description": format!("does {n}"), "inputSchema": {"type": "object"},
                           "annotations": {"readOnlyHint": n.starts_with("get")}, "_meta": {"k": 1}})
                    .as_object()
                    .unwrap()
                    .clone()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn contribution<'a>(
        target: &'a str,
        listing: &'a Listing,
        curation: &'a Curation,
    ) -> Contribution<'a> {
        Contribution {
            target,
            prefix: true,
            listing,
            curation,
            normalize_schemas: false,
        }
    }

    fn json_of(e: &Entry) -> Value {
        serde_json::from_str(e.json.get()).unwrap()
    }

    #[test]
    fn merges_prefixes_and_keeps_every_field() {
        let (a, b, c) = (
            tools(&["echo", "add"]),
            tools(&["echo"]),
            Curation::default(),
        );
        let cat = Catalog::build(&[contribution("a", &a, &c), contribution("b", &b, &c)], 64);
        assert_eq!(cat.tools.len(), 3);
        let e = cat.tools.lookup("b___echo").unwrap();
        assert_eq!((e.target, e.original.as_str()), (1, "echo"));
        let def = json_of(e);
        assert_eq!(def["name"], "b___echo");
        assert_eq!(def["_meta"]["k"], 1);
        assert!(cat.collisions.is_empty());
    }

    #[test]
    fn collisions_are_reported_and_both_tools_kept() {
        let (a, b, c) = (tools(&["search"]), tools(&["search"]), Curation::default());
        let mut ca = contribution("a", &a, &c);
        let mut cb = contribution("b", &b, &c);
        ca.prefix = false;
        cb.prefix = false;
        let cat = Catalog::build(&[ca, cb], 64);
        assert_eq!(cat.tools.len(), 2);
        assert_eq!(cat.tools.lookup("search").unwrap().target, 0);
        let other = cat.tools.iter().find(|e| e.target == 1).unwrap();
        assert!(naming::is_valid_name(&other.exposed));
        assert!(cat.collisions[0].contains(&other.exposed));
    }

    #[test]
    fn curation_filters_renames_and_rewrites_before_naming() {
        let listing = tools(&["get_item", "put_item", "echo"]);
        let curation = Curation::new(&crate::config::CurationConfig {
            deny_tools: vec!["put_*".into()],
            rename_tools: [("echo".to_string(), "say".to_string())].into(),
            tool_descriptions: [("echo".to_string(), "Says it back".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
        let cat = Catalog::build(&[contribution("t", &listing, &curation)], 64);
        let names: Vec<&str> = cat.tools.iter().map(|e| e.exposed.as_str()).collect();
        assert_eq!(names, ["t___get_item", "t___say"]);
        let say = cat.tools.lookup("t___say").unwrap();
        assert_eq!(
            say.original, "echo",
            "calls go out under the upstream's name"
        );
        assert_eq!(json_of(say)["description"], "Says it back");

        let read_only = Curation::new(&crate::config::CurationConfig {
            read_only: true,
            ..Default::default()
        })
        .unwrap();
        let cat = Catalog::build(&[contribution("t", &listing, &read_only)], 64);
        let names: Vec<&str> = cat.tools.iter().map(|e| e.exposed.as_str()).collect();
        assert_eq!(names, ["t___get_item"]);
    }

    #[test]
    fn pages_follow_key_order_and_survive_catalog_changes() {
        let names: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (listing, c) = (tools(&refs), Curation::default());
        let cat = Catalog::build(&[contribution("x", &listing, &c)], 64);
        let all = |_: &Entry| true;
        let (p1, c1) = cat.tools.page(None, 10, all).unwrap();
        assert_eq!((p1.len(), p1[0].exposed.as_str()), (10, "x___t00"));
        let (p2, c2) = cat.tools.page(c1.as_deref(), 10, all).unwrap();
        assert_eq!(p2[0].exposed, "x___t10");
        let (p3, c3) = cat.tools.page(c2.as_deref(), 10, all).unwrap();
        assert_eq!((p3.len(), c3), (5, None));
        let fewer: Vec<&str> = refs
            .iter()
            .copied()
            .filter(|n| !["t10", "t11", "t12"].contains(n))
            .collect();
        let listing2 = tools(&fewer);
        let cat2 = Catalog::build(&[contribution("x", &listing2, &c)], 64);
        assert_eq!(
            cat2.tools.page(c1.as_deref(), 10, all).unwrap().0[0].exposed,
            "x___t13"
        );
        assert!(cat.tools.page(Some("***"), 10, all).is_err());
        // A filter fills pages with visible entries and stops cleanly.
        let odd = |e: &Entry| e.exposed.ends_with(['1', '3', '5', '7', '9']);
        let (p, next) = cat.tools.page(None, 10, odd).unwrap();
        assert_eq!((p.len(), p[0].exposed.as_str()), (10, "x___t01"));
        let (p, next) = cat.tools.page(next.as_deref(), 10, odd).unwrap();
        assert_eq!((p.len(), next), (2, None));
    }

    #[test]
    fn prompts_resources_and_templates_are_merged() {
        let a = Listing {
            prompts: objects(json!([{"name": "greet", "arguments": [{"name": "who"}]}])),
            resources: objects(json!([{"uri": "file:///readme", "name": "readme"}])),
            resource_templates: objects(
                json!([{"uriTemplate": "docs://{section}/page", "name": "docs"}]),
            ),
            capabilities: json!({"prompts": {}, "resources": {}}),
            ..Default::default()
        };
        let b = Listing {
            resources: objects(json!([{"uri": "file:///readme", "name": "other readme"}])),
            capabilities: json!({"logging": {}}),
            ..Default::default()
        };
        let c = Curation::default();
        let cat = Catalog::build(&[contribution("a", &a, &c), contribution("b", &b, &c)], 64);
        assert_eq!(cat.prompts.lookup("a___greet").unwrap().original, "greet");
        assert_eq!(cat.resources.lookup("file:///readme").unwrap().target, 0);
        let moved = collision_uri("b", "file:///readme");
        assert_eq!(moved, "mcp-sidecar://b/file%3A%2F%2F%2Freadme");
        let e = cat.resources.lookup(&moved).unwrap();
        assert_eq!((e.target, e.original.as_str()), (1, "file:///readme"));
        assert_eq!(json_of(e)["uri"], moved.as_str());
        assert_eq!(cat.collisions.len(), 1);
        assert!(cat.resource_templates[0].matches("docs://intro/page"));
        assert!(!cat.resource_templates[0].matches("docs://a/b/page"));
        assert!(!cat.resource_templates[0].matches("docs:///page"));
        assert!(
            cat.offers.prompts
                && cat.offers.resources
                && cat.offers.logging
                && !cat.offers.completions
        );
    }

    #[test]
    fn uri_templates_match_like_rfc6570_expansions() {
        let t = UriTemplate::new("test://template/{id}/data");
        assert!(t.matches("test://template/42/data"));
        assert!(!t.matches("test://template/42/other"));
        let any = UriTemplate::new("file:///{+path}");
        assert!(any.matches("file:///a/b/c.txt"));
        assert!(UriTemplate::new("plain://x").matches("plain://x"));
    }

    #[test]
    fn instructions_are_combined_not_replaced() {
        let c = Curation::default();
        let x = Listing {
            instructions: Some("Use x.".into()),
            ..tools(&["a"])
        };
        let y = Listing {
            instructions: Some("Use y.".into()),
            ..tools(&["a"])
        };
        let one = Catalog::build(&[contribution("x", &x, &c)], 64);
        assert_eq!(one.instructions.as_deref(), Some("Use x."));
        let two = Catalog::build(&[contribution("x", &x, &c), contribution("y", &y, &c)], 64);
        let text = two.instructions.unwrap();
        assert!(text.contains("Use x.") && text.contains("Use y.") && text.contains("'y'"));
    }
}
