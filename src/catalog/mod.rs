//! The catalog: every target's last good tool definitions, merged under exposed names.
//!
//! `tools/list` and `tools/call` routing read an immutable [`Catalog`] snapshot (one atomic
//! load, no locks on the hot path); a sync that succeeds builds a new snapshot and swaps it
//! in. A sync that fails leaves the target's previous definitions in place.

pub mod naming;
pub mod schema;
pub mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::targets::{Listing, TargetError};

/// One exposed tool.
#[derive(Debug)]
pub struct ToolEntry {
    pub exposed: String,
    /// Index of the owning target in config order.
    pub target: usize,
    /// The tool's name on its upstream.
    pub original: String,
    /// The full definition as the client sees it (upstream definition, exposed name).
    pub json: Box<RawValue>,
}

/// An immutable, merged view of all targets' tools, sorted by exposed name.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: Vec<ToolEntry>,
    index: HashMap<String, usize>,
    /// The targets' `instructions`, combined.
    pub instructions: Option<String>,
    /// Name collisions found while merging, as human-readable notes.
    pub collisions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

/// What one target contributes to a catalog build.
pub struct Contribution<'a> {
    pub target: &'a str,
    pub prefix: bool,
    pub tools: &'a [Map<String, Value>],
    pub instructions: Option<&'a str>,
}

impl Catalog {
    pub fn build(contributions: &[Contribution<'_>]) -> Catalog {
        // Candidates in a deterministic order: config order of targets, then tool name.
        let mut candidates: Vec<(usize, &str, &Map<String, Value>)> = Vec::new();
        for (t, c) in contributions.iter().enumerate() {
            let mut tools: Vec<(&str, &Map<String, Value>)> = c
                .tools
                .iter()
                .filter_map(|tool| match tool.get("name") {
                    Some(Value::String(name)) => Some((name.as_str(), tool)),
                    _ => {
                        tracing::warn!(
                            target_name = c.target,
                            "skipping a tool definition without a string name"
                        );
                        None
                    }
                })
                .collect();
            tools.sort_by(|a, b| a.0.cmp(b.0));
            tools.dedup_by(|a, b| a.0 == b.0);
            candidates.extend(tools.into_iter().map(|(name, def)| (t, name, def)));
        }

        let mut taken: HashMap<String, (usize, String)> = HashMap::new();
        let mut collisions = Vec::new();
        let mut entries = Vec::with_capacity(candidates.len());
        for (t, original, def) in candidates {
            let c = &contributions[t];
            let wanted = naming::exposed_name(c.target, original, c.prefix);
            let exposed = match taken.get(&wanted) {
                None => wanted,
                Some((other_t, other_tool)) => {
                    let renamed = naming::disambiguated_name(&wanted, c.target, original);
                    let note = format!(
                        "`{wanted}` is claimed by target '{}' tool '{other_tool}' and target '{}' tool '{original}'; the latter is exposed as `{renamed}`",
                        contributions[*other_t].target, c.target
                    );
                    tracing::warn!("tool name collision: {note}");
                    collisions.push(note);
                    renamed
                }
            };
            taken.insert(exposed.clone(), (t, original.to_string()));
            let mut def = def.clone();
            def.insert("name".into(), Value::String(exposed.clone()));
            let json =
                serde_json::value::to_raw_value(&def).expect("a JSON object always serializes");
            entries.push(ToolEntry {
                exposed,
                target: t,
                original: original.to_string(),
                json,
            });
        }
        entries.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.exposed.clone(), i))
            .collect();
        Catalog {
            entries,
            index,
            instructions: combine_instructions(contributions),
            collisions,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn lookup(&self, exposed: &str) -> Option<&ToolEntry> {
        self.index.get(exposed).map(|&i| &self.entries[i])
    }

    /// One page of the tools `visible` admits, after `cursor`, and the cursor for the next.
    ///
    /// The cursor is the last exposed name of the previous page (opaque to clients). Paging
    /// by name rather than by offset keeps pages consistent when a sync changes the catalog
    /// between two requests: nothing is skipped or repeated.
    pub fn page(
        &self,
        cursor: Option<&str>,
        size: usize,
        visible: impl Fn(&ToolEntry) -> bool,
    ) -> Result<(Vec<&ToolEntry>, Option<String>), InvalidCursor> {
        let start = match cursor {
            None => 0,
            Some(c) => {
                let after = decode_cursor(c).ok_or(InvalidCursor)?;
                self.entries
                    .partition_point(|e| e.exposed.as_str() <= after)
            }
        };
        let mut rest = self.entries[start..].iter().filter(|e| visible(e));
        let page: Vec<&ToolEntry> = rest.by_ref().take(size).collect();
        let more = rest.next().is_some();
        let next = match page.last() {
            Some(last) if more => Some(encode_cursor(&last.exposed)),
            _ => None,
        };
        Ok((page, next))
    }
}

const CURSOR_PREFIX: &str = "after:";

fn encode_cursor(last: &str) -> String {
    format!("{CURSOR_PREFIX}{last}")
}

fn decode_cursor(cursor: &str) -> Option<&str> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .filter(|name| naming::is_valid_name(name))
}

/// With one target its instructions pass through unchanged; with several, each keeps its
/// own text under a heading naming the target (combined, never replaced).
fn combine_instructions(contributions: &[Contribution<'_>]) -> Option<String> {
    let present: Vec<(&str, &str)> = contributions
        .iter()
        .filter_map(|c| {
            c.instructions
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

/// A target's sync state, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Never synced yet.
    Pending,
    /// The last sync succeeded.
    Ready,
    /// The last sync failed; earlier definitions (if any) are still served.
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub state: SyncState,
    pub tools: usize,
    /// Always present (null until the first success / while there is no error), so
    /// monitoring can rely on the keys.
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub protocol_version: Option<String>,
}

struct TargetSlot {
    name: String,
    prefix: bool,
    inner: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    listing: Option<Arc<Listing>>,
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
}

/// The catalog snapshot plus each target's last good listing and status.
pub struct CatalogStore {
    current: ArcSwap<Catalog>,
    slots: Vec<TargetSlot>,
    /// Serializes rebuilds so two syncs finishing together cannot publish out of order.
    rebuild: Mutex<()>,
}

impl CatalogStore {
    /// `targets` are (name, prefix_tools) in config order.
    pub fn new(targets: impl IntoIterator<Item = (String, bool)>) -> Self {
        Self {
            current: ArcSwap::from_pointee(Catalog::default()),
            slots: targets
                .into_iter()
                .map(|(name, prefix)| TargetSlot {
                    name,
                    prefix,
                    inner: Mutex::new(SlotState::default()),
                })
                .collect(),
            rebuild: Mutex::new(()),
        }
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Records a sync outcome for target `index`. A success replaces that target's
    /// definitions and republishes the catalog; a failure only records the error.
    /// Returns the error kept, if the outcome was rejected.
    pub fn record_sync(
        &self,
        index: usize,
        outcome: Result<Listing, TargetError>,
    ) -> Result<(), String> {
        let slot = &self.slots[index];
        let now = SystemTime::now();
        let outcome = outcome.map_err(|e| e.to_string()).and_then(|listing| {
            let previous = slot.inner.lock().unwrap().listing.as_ref().map_or(0, |l| l.tools.len());
            if listing.tools.is_empty() && previous > 0 {
                // An empty answer from a target that had tools is far more often throttling or
                // a half-started upstream than a real change: keep the good definitions.
                Err(format!(
                    "upstream target '{}' returned an empty tool list; keeping the previous {previous} tools",
                    slot.name
                ))
            } else {
                Ok(listing)
            }
        });
        match outcome {
            Ok(listing) => {
                {
                    let mut state = slot.inner.lock().unwrap();
                    state.listing = Some(Arc::new(listing));
                    state.last_success = Some(now);
                    state.last_error = None;
                }
                self.republish();
                Ok(())
            }
            Err(message) => {
                slot.inner.lock().unwrap().last_error = Some((now, message.clone()));
                Err(message)
            }
        }
    }

    fn republish(&self) {
        let _guard = self.rebuild.lock().unwrap();
        let listings: Vec<Option<Arc<Listing>>> = self
            .slots
            .iter()
            .map(|s| s.inner.lock().unwrap().listing.clone())
            .collect();
        let contributions: Vec<Contribution<'_>> = self
            .slots
            .iter()
            .zip(&listings)
            .map(|(slot, listing)| Contribution {
                target: &slot.name,
                prefix: slot.prefix,
                tools: listing.as_deref().map_or(&[], |l| &l.tools),
                instructions: listing.as_deref().and_then(|l| l.instructions.as_deref()),
            })
            .collect();
        let catalog = Catalog::build(&contributions);
        tracing::info!(tools = catalog.len(), "catalog published");
        self.current.store(Arc::new(catalog));
    }

    /// Ready once any target has synced successfully: from then on `tools/list` has
    /// definitions to serve.
    pub fn is_ready(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.inner.lock().unwrap().listing.is_some())
    }

    pub fn target_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    pub fn statuses(&self) -> Vec<TargetStatus> {
        self.slots
            .iter()
            .map(|slot| {
                let s = slot.inner.lock().unwrap();
                let state = match (&s.last_error, &s.listing) {
                    (Some(_), _) => SyncState::Failing,
                    (None, Some(_)) => SyncState::Ready,
                    (None, None) => SyncState::Pending,
                };
                TargetStatus {
                    name: slot.name.clone(),
                    state,
                    tools: s.listing.as_ref().map_or(0, |l| l.tools.len()),
                    last_success: s.last_success.map(rfc3339),
                    last_error: s.last_error.as_ref().map(|(_, m)| m.clone()),
                    last_error_at: s.last_error.as_ref().map(|(t, _)| rfc3339(*t)),
                    protocol_version: s.listing.as_ref().map(|l| l.protocol_version.clone()),
                }
            })
            .collect()
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools(names: &[&str]) -> Vec<Map<String, Value>> {
        names
            .iter()
            .map(|n| {
                json!({"name": n, "description": format!("does {n}"), "inputSchema": {"type": "object"},
                       "annotations": {"readOnlyHint": true}, "_meta": {"k": 1}})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect()
    }

    #[test]
    fn merges_prefixes_and_keeps_every_field() {
        let a = tools(&["echo", "add"]);
        let b = tools(&["echo"]);
        let cat = Catalog::build(&[
            Contribution {
                target: "a",
                prefix: true,
                tools: &a,
                instructions: None,
            },
            Contribution {
                target: "b",
                prefix: true,
                tools: &b,
                instructions: None,
            },
        ]);
        assert_eq!(cat.len(), 3);
        let e = cat.lookup("b___echo").unwrap();
        assert_eq!((e.target, e.original.as_str()), (1, "echo"));
        let def: Value = serde_json::from_str(e.json.get()).unwrap();
        assert_eq!(def["name"], "b___echo");
        assert_eq!(def["annotations"]["readOnlyHint"], true);
        assert_eq!(def["_meta"]["k"], 1);
        assert!(cat.collisions.is_empty());
    }

    #[test]
    fn collisions_are_reported_and_both_tools_kept() {
        let a = tools(&["search"]);
        let b = tools(&["search"]);
        let cat = Catalog::build(&[
            Contribution {
                target: "a",
                prefix: false,
                tools: &a,
                instructions: None,
            },
            Contribution {
                target: "b",
                prefix: false,
                tools: &b,
                instructions: None,
            },
        ]);
        assert_eq!(cat.len(), 2);
        assert_eq!(cat.lookup("search").unwrap().target, 0);
        assert_eq!(cat.collisions.len(), 1);
        let other = cat.entries.iter().find(|e| e.target == 1).unwrap();
        assert!(naming::is_valid_name(&other.exposed));
        assert!(cat.collisions[0].contains(&other.exposed));
    }

    #[test]
    fn pages_follow_name_order_and_survive_catalog_changes() {
        let names: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = tools(&refs);
        let cat = Catalog::build(&[Contribution {
            target: "x",
            prefix: true,
            tools: &t,
            instructions: None,
        }]);
        let (p1, c1) = cat.page(None, 10, |_| true).unwrap();
        assert_eq!(p1.len(), 10);
        assert_eq!(p1[0].exposed, "x___t00");
        let (p2, c2) = cat.page(c1.as_deref(), 10, |_| true).unwrap();
        assert_eq!(p2[0].exposed, "x___t10");
        let (p3, c3) = cat.page(c2.as_deref(), 10, |_| true).unwrap();
        assert_eq!(p3.len(), 5);
        assert!(c3.is_none());
        // A catalog without t10..t12 still continues right after the cursor's name.
        let fewer: Vec<&str> = refs
            .iter()
            .copied()
            .filter(|n| !["t10", "t11", "t12"].contains(n))
            .collect();
        let t2 = tools(&fewer);
        let cat2 = Catalog::build(&[Contribution {
            target: "x",
            prefix: true,
            tools: &t2,
            instructions: None,
        }]);
        assert_eq!(
            cat2.page(c1.as_deref(), 10, |_| true).unwrap().0[0].exposed,
            "x___t13"
        );
        assert!(cat.page(Some("garbage"), 10, |_| true).is_err());
    }

    #[test]
    fn instructions_are_combined_not_replaced() {
        let t = tools(&["a"]);
        let one = Catalog::build(&[Contribution {
            target: "x",
            prefix: true,
            tools: &t,
            instructions: Some("Use x."),
        }]);
        assert_eq!(one.instructions.as_deref(), Some("Use x."));
        let two = Catalog::build(&[
            Contribution {
                target: "x",
                prefix: true,
                tools: &t,
                instructions: Some("Use x."),
            },
            Contribution {
                target: "y",
                prefix: true,
                tools: &t,
                instructions: Some("Use y."),
            },
        ]);
        let text = two.instructions.unwrap();
        assert!(text.contains("Use x.") && text.contains("Use y.") && text.contains("'y'"));
    }

    #[test]
    fn failed_or_emptied_sync_keeps_previous_definitions() {
        let store = CatalogStore::new([("a".to_string(), true)]);
        let listing = Listing {
            tools: tools(&["one", "two"]),
            ..Default::default()
        };
        store.record_sync(0, Ok(listing)).unwrap();
        assert_eq!(store.snapshot().len(), 2);
        let err = TargetError::new("a", crate::targets::FailureKind::Timeout, "slow");
        assert!(store.record_sync(0, Err(err)).is_err());
        assert_eq!(store.snapshot().len(), 2);
        assert!(store.record_sync(0, Ok(Listing::default())).is_err());
        assert_eq!(store.snapshot().len(), 2);
        let status = &store.statuses()[0];
        assert_eq!(status.state, SyncState::Failing);
        assert!(
            status
                .last_error
                .as_ref()
                .unwrap()
                .contains("empty tool list")
        );
        assert!(status.last_success.is_some());
    }
}
