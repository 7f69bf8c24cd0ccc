//! The search tool (`x_amz_bedrock_agentcore_search` unless renamed): the Gateway's
//! semantic tool search, answered from the catalog snapshot's index with no network.
//!
//! Contract (CONTRACTS.md §6): listed first in `tools/list` with the Gateway's description
//! and input schema (plus an optional `limit`); the result carries the matching tools'
//! full definitions, exactly as `tools/list` shows them, in `structuredContent.tools` and
//! the same JSON as one text block, best match first, no scores. AWS's search plugin and
//! Strands read `structuredContent.tools` first, older clients the text.
//!
//! Invariants:
//! - Results pass the same visibility check as `tools/list` (tool rules and claims): a tool
//!   the caller cannot see is never returned, and hiding it changes nothing else.
//! - The search tool itself obeys tool rules like any tool (a rule matching its name
//!   decides who sees and may call it).
//! - With `expose = "search_only"`, `tools/list` shows the search tool and the `pinned`
//!   tools only; every tool stays callable by name (listing is not authorization).

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::jsonrpc::{INVALID_PARAMS, RpcError};
use crate::catalog::search::Mode;
use crate::catalog::{Catalog, CatalogStore};
use crate::config::{Expose, SearchConfig};

/// The Gateway's description of its search tool, verbatim.
pub const DESCRIPTION: &str = "A special tool that returns a trimmed down list of tools given a context. Use this tool only when there are many tools available and you want to get a subset that matches the provided context.";

pub struct SearchTool {
    name: String,
    definition: String,
    search_only: bool,
    pinned: GlobSet,
    default_limit: usize,
    max_limit: usize,
}

impl SearchTool {
    /// None when search is off.
    pub fn new(config: &SearchConfig) -> anyhow::Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        let mut pinned = GlobSetBuilder::new();
        for pattern in &config.pinned {
            pinned.add(Glob::new(pattern)?);
        }
        let definition = json!({
            "name": config.tool_name,
            "description": DESCRIPTION,
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": { "type": "string" },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": config.max_limit,
                        "description": format!("How many tools to return (default {}, at most {}).", config.default_limit, config.max_limit),
                    },
                },
                "required": ["query"],
            },
        });
        Ok(Some(Self {
            name: config.tool_name.clone(),
            definition: definition.to_string(),
            search_only: config.expose == Expose::SearchOnly,
            pinned: pinned.build()?,
            default_limit: config.default_limit,
            max_limit: config.max_limit,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The search tool's definition (JSON), as `tools/list` shows it.
    pub fn definition(&self) -> &str {
        &self.definition
    }

    /// Whether `tools/list` shows catalog tool `exposed` (all, or only pinned ones). A
    /// catalog tool under the search tool's own name is shadowed: never listed nor returned
    /// (calls under that name reach the search tool).
    pub fn lists(&self, exposed: &str) -> bool {
        exposed != self.name && (!self.search_only || self.pinned.is_match(exposed))
    }

    /// Runs one search call. `arguments` is the call's raw `arguments`; `visible` is the
    /// caller's visibility check. Returns the `CallToolResult` as JSON.
    pub fn call(
        &self,
        catalog: &Catalog,
        arguments: Option<&RawValue>,
        visible: impl Fn(&str) -> bool,
    ) -> Result<String, RpcError> {
        let (query, limit) = self.arguments(arguments)?;
        Ok(self.rank(catalog, &query, None, limit, visible))
    }

    /// [`SearchTool::call`] against the store's current snapshot, with the query embedded by
    /// the remote embedder when the snapshot's index has its vectors (within the embedder's
    /// query timeout; else, or on failure, the built-in encoder answers).
    pub async fn answer(
        &self,
        store: &CatalogStore,
        arguments: Option<&RawValue>,
        visible: impl Fn(&str) -> bool,
    ) -> Result<String, RpcError> {
        let (query, limit) = self.arguments(arguments)?;
        let catalog = store.snapshot();
        let remote_index = catalog.search.as_ref().and_then(|i| i.remote_identity());
        let vector = match (store.embedder(), remote_index) {
            (Some(embedder), Some(identity)) if identity == *embedder.identity() => {
                embedder.embed_query(&query).await
            }
            _ => None,
        };
        Ok(self.rank(&catalog, &query, vector.as_deref(), limit, visible))
    }

    fn rank(
        &self,
        catalog: &Catalog,
        query: &str,
        remote_query: Option<&[f32]>,
        limit: usize,
        visible: impl Fn(&str) -> bool,
    ) -> String {
        let mut tools = String::from(r#"{"tools":["#);
        if let Some(index) = &catalog.search {
            let hits = index.search_with(query, remote_query, Mode::Hybrid, limit, |tool| {
                tool != self.name && visible(tool)
            });
            let mut first = true;
            for hit in hits {
                // The index was built with this snapshot: every hit is one of its tools.
                let Some(entry) = catalog.tools.lookup(hit.name) else {
                    continue;
                };
                if !first {
                    tools.push(',');
                }
                first = false;
                tools.push_str(entry.json.get());
            }
        }
        tools.push_str("]}");
        let text = Value::String(tools.clone()).to_string();
        format!(
            r#"{{"content":[{{"type":"text","text":{text}}}],"structuredContent":{tools},"isError":false}}"#
        )
    }

    fn arguments(&self, arguments: Option<&RawValue>) -> Result<(String, usize), RpcError> {
        let bad = |what: String| {
            RpcError::new(INVALID_PARAMS, format!("`{}`: {what}", self.name))
                .with_data(json!({ "tool": self.name }))
        };
        let arguments: serde_json::Map<String, Value> = match arguments {
            None => Default::default(),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|_| bad("`arguments` must be an object".into()))?,
        };
        let query = match arguments.get("query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
            _ => return Err(bad("`arguments.query` must be a non-empty string".into())),
        };
        let limit = match arguments.get("limit") {
            None | Some(Value::Null) => self.default_limit,
            Some(v) => match v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 1.0)
                    .map(|f| f as u64)
            }) {
                Some(n) if n >= 1 => (n as usize).min(self.max_limit),
                _ => {
                    return Err(bad(format!(
                        "`arguments.limit` must be an integer from 1 to {}",
                        self.max_limit
                    )));
                }
            },
        };
        Ok((query, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Contribution, Curation};
    use crate::targets::Listing;

    fn tool(config: &str) -> SearchTool {
        let config: SearchConfig = toml::from_str(config).unwrap();
        SearchTool::new(&config).unwrap().unwrap()
    }

    fn catalog() -> Catalog {
        let listing: Listing = serde_json::from_value(json!({"tools": [
            {"name": "get_forecast", "description": "Weather forecast for a city", "inputSchema": {"type": "object"}},
            {"name": "create_issue", "description": "Open a GitHub issue", "inputSchema": {"type": "object"}},
            {"name": "read_file", "description": "Read a file from disk", "inputSchema": {"type": "object"}},
        ]}))
        .unwrap();
        let curation = Curation::default();
        let contribution = Contribution {
            target: "t",
            prefix: true,
            listing: &listing,
            curation: &curation,
            normalize_schemas: false,
        };
        let mut catalog = Catalog::build(&[contribution], 64);
        let tools = catalog.tools.iter().map(|e| (e.exposed.as_str(), &*e.json));
        catalog.search = Some(std::sync::Arc::new(
            crate::catalog::search::SearchIndex::build(tools, None),
        ));
        catalog
    }

    fn args(v: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    #[test]
    fn definition_is_the_gateways_plus_limit() {
        let t = tool("enabled = true");
        let def: Value = serde_json::from_str(t.definition()).unwrap();
        assert_eq!(def["name"], "x_amz_bedrock_agentcore_search");
        assert_eq!(def["description"], DESCRIPTION);
        assert_eq!(def["inputSchema"]["required"], json!(["query"]));
        assert_eq!(
            def["inputSchema"]["properties"]["query"],
            json!({"type": "string"})
        );
        assert_eq!(def["inputSchema"]["properties"]["limit"]["maximum"], 50);
        assert_eq!(
            tool("enabled = true\ntool_name = \"find_tools\"").name(),
            "find_tools"
        );
    }

    #[test]
    fn result_has_the_gateways_shape() {
        let t = tool("enabled = true");
        let out = t
            .call(
                &catalog(),
                Some(&args(json!({"query": "weather in Paris", "limit": 2}))),
                |_| true,
            )
            .unwrap();
        let result: Value = serde_json::from_str(&out).unwrap();
        let tools = result["structuredContent"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[0]["name"], "t___get_forecast");
        assert_eq!(
            tools[0]["inputSchema"],
            json!({"type": "object"}),
            "full definitions"
        );
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, result["structuredContent"]);
    }

    #[test]
    fn hidden_tools_are_left_out() {
        let t = tool("enabled = true");
        let out = t
            .call(
                &catalog(),
                Some(&args(json!({"query": "weather forecast"}))),
                |n| n != "t___get_forecast",
            )
            .unwrap();
        assert!(!out.contains("get_forecast"));
        assert!(out.contains("t___read_file"));
    }

    #[test]
    fn bad_arguments_name_the_problem_and_limits_are_capped() {
        let t = tool("enabled = true\nmax_limit = 2\ndefault_limit = 1");
        for bad in [
            json!({}),
            json!({"query": " "}),
            json!({"query": "x", "limit": 0}),
            json!({"query": "x", "limit": "3"}),
            json!([1]),
        ] {
            let err = t
                .call(&catalog(), Some(&args(bad.clone())), |_| true)
                .unwrap_err();
            assert!(
                err.message.contains("x_amz_bedrock_agentcore_search"),
                "{bad}: {}",
                err.message
            );
        }
        let count = |limit: Value| {
            let out = t
                .call(
                    &catalog(),
                    Some(&args(json!({"query": "file", "limit": limit}))),
                    |_| true,
                )
                .unwrap();
            let v: Value = serde_json::from_str(&out).unwrap();
            v["structuredContent"]["tools"].as_array().unwrap().len()
        };
        assert_eq!(count(json!(50)), 2, "capped at max_limit");
        assert_eq!(count(Value::Null), 1, "default_limit");
    }

    #[test]
    fn search_only_lists_pinned_tools() {
        let all = tool("enabled = true");
        assert!(all.lists("t___read_file"));
        assert!(
            !all.lists("x_amz_bedrock_agentcore_search"),
            "a same-named tool is shadowed"
        );
        let deferred = tool("enabled = true\nexpose = \"search_only\"\npinned = [\"t___read_*\"]");
        assert!(deferred.lists("t___read_file"));
        assert!(!deferred.lists("t___create_issue"));
    }
}
