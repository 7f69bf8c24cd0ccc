//! `[search]`: the tool-search tool the sidecar offers (the Gateway's
//! `x_amz_bedrock_agentcore_search`, answered in-process from the catalog).
//!
//! Off by default: a sidecar without this section lists and relays exactly as before.
//! Every validation error names its field (`search.<key>`).

use serde::Deserialize;

use super::ConfigError;

/// The Gateway's own name for its search tool; clients and AWS's plugins look for it.
pub const GATEWAY_SEARCH_TOOL: &str = "x_amz_bedrock_agentcore_search";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Offer the search tool (listed first in `tools/list`).
    pub enabled: bool,
    /// The search tool's exposed name, for clients that expect another.
    pub tool_name: String,
    /// What `tools/list` shows: every tool (`all`), or only the search tool and `pinned`
    /// (`search_only`: deferred listing; every tool stays callable by name).
    pub expose: Expose,
    /// Globs over exposed names listed beside the search tool with `expose = "search_only"`.
    pub pinned: Vec<String>,
    /// Results when the caller gives no `limit`.
    pub default_limit: usize,
    /// The largest `limit` a caller may ask for (larger asks are capped, not refused).
    pub max_limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expose {
    All,
    SearchOnly,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            tool_name: GATEWAY_SEARCH_TOOL.into(),
            expose: Expose::All,
            pinned: Vec::new(),
            default_limit: 10,
            max_limit: 50,
        }
    }
}

impl SearchConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = &self.tool_name;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ConfigError::new(
                "search.tool_name",
                format!("`{name}` must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"),
            ));
        }
        if self.max_limit == 0 || self.max_limit > 1000 {
            return Err(ConfigError::new(
                "search.max_limit",
                "must be between 1 and 1000",
            ));
        }
        if self.default_limit == 0 || self.default_limit > self.max_limit {
            return Err(ConfigError::new(
                "search.default_limit",
                format!("must be between 1 and max_limit ({})", self.max_limit),
            ));
        }
        for (i, pattern) in self.pinned.iter().enumerate() {
            globset::Glob::new(pattern).map_err(|e| {
                ConfigError::new(format!("search.pinned[{i}]"), format!("bad pattern: {e}"))
            })?;
        }
        if !self.enabled && (self.expose == Expose::SearchOnly || !self.pinned.is_empty()) {
            return Err(ConfigError::new(
                "search.expose",
                "expose = \"search_only\" and pinned need search.enabled = true",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const TARGET: &str =
        "[[targets]]\nname = \"t\"\nkind = \"mcp_server\"\nurl = \"http://127.0.0.1:9/mcp\"\n";

    fn parse(search: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(&format!("[search]\n{search}\n{TARGET}"), &|_| None)
    }

    #[test]
    fn defaults_are_the_gateways() {
        let c = parse("enabled = true").unwrap();
        assert_eq!(c.search.tool_name, "x_amz_bedrock_agentcore_search");
        assert_eq!((c.search.default_limit, c.search.max_limit), (10, 50));
        assert_eq!(c.search.expose, super::Expose::All);
        assert!(!Config::parse(TARGET, &|_| None).unwrap().search.enabled);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            (
                "enabled = true\ntool_name = \"has space\"",
                "search.tool_name",
            ),
            ("enabled = true\ndefault_limit = 60", "search.default_limit"),
            ("enabled = true\nmax_limit = 0", "search.max_limit"),
            ("enabled = true\npinned = [\"a[\"]", "search.pinned[0]"),
            ("expose = \"search_only\"", "search.expose"),
            ("enabled = true\nexpose = \"some\"", "search.expose"),
            ("enabled = true\nlimit = 3", "search"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.field.starts_with(field), "{text}: {err}");
        }
    }
}
