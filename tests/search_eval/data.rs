//! The evaluation data as the sidecar's own types, shared by tests/search_eval.rs and
//! bench/search.rs (each includes this file with `#[path]`).

#![allow(dead_code)] // each includer uses its own subset

use std::path::{Path, PathBuf};

use mcp_sidecar::catalog::{Catalog, Contribution, Curation};
use mcp_sidecar::targets::Listing;
use serde::Deserialize;

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/search_eval")
}

#[derive(Deserialize)]
struct ToolsFile {
    servers: Vec<ServerTools>,
}

#[derive(Deserialize)]
struct ServerTools {
    server: String,
    tools: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// tools.json: each server's tools as a listing, in file order.
pub fn listings() -> Vec<(String, Listing)> {
    let text = std::fs::read_to_string(dir().join("tools.json")).expect("tools.json");
    let file: ToolsFile = serde_json::from_str(&text).expect("tools.json parses");
    file.servers
        .into_iter()
        .map(|s| {
            let listing = Listing {
                tools: s.tools,
                ..Default::default()
            };
            (s.server, listing)
        })
        .collect()
}

/// A catalog built the way the sidecar builds its own: one target per listing, tool names
/// prefixed `{target}___{tool}`, no curation.
pub fn catalog(listings: &[(String, Listing)]) -> Catalog {
    let curation = Curation::default();
    let contributions: Vec<Contribution<'_>> = listings
        .iter()
        .map(|(target, listing)| Contribution {
            target,
            prefix: true,
            listing,
            curation: &curation,
            normalize_schemas: false,
        })
        .collect();
    Catalog::build(&contributions, 64)
}

#[derive(Deserialize)]
struct QueriesFile {
    queries: Vec<Query>,
}

/// One labelled query: its set (`keyword` or `paraphrase`) and every tool that answers it.
#[derive(Deserialize, Clone)]
pub struct Query {
    pub set: String,
    pub query: String,
    pub relevant: Vec<String>,
}

pub fn queries() -> Vec<Query> {
    let text = std::fs::read_to_string(dir().join("queries.json")).expect("queries.json");
    let file: QueriesFile = serde_json::from_str(&text).expect("queries.json parses");
    file.queries
}
