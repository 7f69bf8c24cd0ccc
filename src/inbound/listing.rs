//! Listings (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`),
//! answered from the catalog snapshot: stable order, keyset cursors, and a caller sees only
//! the tools it may call.

use serde_json::Value;

use super::auth::rules::ToolAccess;
use super::handler::{Answer, Call, Failure};
use super::jsonrpc::{self, INVALID_PARAMS, RpcError};
use crate::catalog::{Catalog, Entries, Entry};

/// 2026-07-28 results name their type and say how long they may be cached. The catalog
/// changes whenever a sync does, so the hint never promises more than this answer.
pub const CACHE_HINTS: &str = r#""resultType":"complete","ttlMs":0,"cacheScope":"private""#;

fn listing_hints(modern: bool) -> &'static str {
    if modern {
        concat!(
            ",",
            r#""resultType":"complete","ttlMs":0,"cacheScope":"private""#
        )
    } else {
        ""
    }
}

pub fn tools(call: &Call<'_>) -> Result<Answer, Failure> {
    // A caller sees only the tools it may call (hidden and out-of-scope ones alike). With
    // search on, its tool heads the first page; `search_only` lists only pinned tools.
    let gate = call.gate;
    let search = call.relay.search.as_ref();
    let visible = |e: &Entry| {
        gate.access(&e.exposed) == ToolAccess::Allowed && search.is_none_or(|s| s.lists(&e.exposed))
    };
    let first = search
        .filter(|_| !call.params.members.contains_key("cursor"))
        .filter(|s| gate.access(s.name()) == ToolAccess::Allowed)
        .map(|s| s.definition());
    page(call, "tools", |c| &c.tools, visible, first)
}

pub fn prompts(call: &Call<'_>) -> Result<Answer, Failure> {
    page(call, "prompts", |c| &c.prompts, |_| true, None)
}

pub fn resources(call: &Call<'_>) -> Result<Answer, Failure> {
    page(call, "resources", |c| &c.resources, |_| true, None)
}

/// One page of a listing from the catalog: `{"<key>":[…],"nextCursor":…}`, with `first`
/// (a definition that is not in the catalog, e.g. the search tool) ahead of the entries.
fn page(
    call: &Call<'_>,
    key: &str,
    entries: impl Fn(&Catalog) -> &Entries,
    visible: impl Fn(&Entry) -> bool,
    first: Option<&str>,
) -> Result<Answer, Failure> {
    let cursor = call.params.string("cursor")?;
    let catalog = call.relay.store.snapshot();
    let (page, next) = entries(&catalog)
        .page(cursor.as_deref(), call.relay.page_size, visible)
        .map_err(|_| RpcError::new(INVALID_PARAMS, "invalid cursor"))?;
    let size: usize = page.iter().map(|e| e.json.get().len() + 1).sum();
    let mut out = String::with_capacity(size + 96);
    out.push_str(&format!(r#"{{"{key}":["#));
    if let Some(first) = first {
        out.push_str(first);
    }
    for (i, entry) in page.iter().enumerate() {
        if i > 0 || first.is_some() {
            out.push(',');
        }
        out.push_str(entry.json.get());
    }
    out.push(']');
    if let Some(next) = next {
        out.push_str(r#","nextCursor":"#);
        out.push_str(&Value::String(next).to_string());
    }
    out.push_str(listing_hints(call.version.modern));
    out.push('}');
    Ok(Answer::ok(jsonrpc::result_body(call.id, &out)))
}

/// All resource templates in one page (there are few; their order routes reads).
pub fn templates(call: &Call<'_>) -> Answer {
    let catalog = call.relay.store.snapshot();
    let items: Vec<&str> = catalog
        .resource_templates
        .iter()
        .map(|t| t.json.get())
        .collect();
    let out = format!(
        r#"{{"resourceTemplates":[{}]{}}}"#,
        items.join(","),
        listing_hints(call.version.modern)
    );
    Answer::ok(jsonrpc::result_body(call.id, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_only_for_modern_clients() {
        assert_eq!(listing_hints(false), "");
        let v: Value =
            serde_json::from_str(&format!(r#"{{"prompts":[]{}}}"#, listing_hints(true))).unwrap();
        assert_eq!(v["prompts"], serde_json::json!([]));
        assert_eq!(v["ttlMs"], 0);
        assert_eq!(format!(",{CACHE_HINTS}"), listing_hints(true));
    }
}
