//! `[search]`: the tool-search tool the sidecar offers (the Gateway's
//! `x_amz_bedrock_agentcore_search`, answered in-process from the catalog).
//!
//! Off by default: a sidecar without this section lists and relays exactly as before.
//! Every validation error names its field (`search.<key>`).

use std::path::PathBuf;

use serde::Deserialize;

use super::credentials::AssumeRoleConfig;
use super::{ConfigError, Secret};

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
    /// An optional remote embedding service; the built-in encoder always stays the
    /// fallback (see `catalog::search::remote`).
    pub embedder: Option<EmbedderConfig>,
}

/// `[search] embedder = { kind = "openai" | "bedrock", … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// Any OpenAI-compatible `POST …/embeddings` endpoint.
    Openai(OpenAiEmbedderConfig),
    /// Amazon Bedrock `InvokeModel` with a Titan text-embeddings model, signed with SigV4.
    Bedrock(BedrockEmbedderConfig),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEmbedderConfig {
    /// The API base (`https://api.example.com/v1`, `/embeddings` is appended) or the full
    /// embeddings URL (ending in `/embeddings`).
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …` (inline, e.g. `"${OPENAI_API_KEY}"`, or from a file).
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Asked of models that can shorten their vectors (`dimensions` in the request).
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Texts per request when embedding the catalog.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Deadline for embedding a whole catalog (in the background, after it is published).
    #[serde(default = "default_embed_timeout_ms")]
    pub timeout_ms: u64,
    /// Deadline for embedding one query; past it, that search uses the built-in encoder.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockEmbedderConfig {
    /// The Bedrock region; else `AWS_REGION` / `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_bedrock_model")]
    pub model: String,
    /// Another endpoint than `https://bedrock-runtime.{region}.amazonaws.com` (VPC
    /// endpoints, tests).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Output size Titan v2 is asked for: 256, 512 or 1024.
    #[serde(default = "default_bedrock_dimensions")]
    pub dimensions: u32,
    /// Credentials: a named profile, and/or a role to assume; else the default chain.
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub assume_role: Option<AssumeRoleConfig>,
    /// `InvokeModel` calls in flight while embedding the catalog (one text per call).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Deadline for embedding a whole catalog (in the background, after it is published).
    #[serde(default = "default_embed_timeout_ms")]
    pub timeout_ms: u64,
    /// Deadline for embedding one query; past it, that search uses the built-in encoder.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
}

/// Deadlines shared by both kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderTiming {
    pub timeout_ms: u64,
    pub query_timeout_ms: u64,
}

fn default_batch_size() -> usize {
    64
}
fn default_bedrock_model() -> String {
    "amazon.titan-embed-text-v2:0".into()
}
fn default_bedrock_dimensions() -> u32 {
    512
}
fn default_concurrency() -> usize {
    8
}
fn default_embed_timeout_ms() -> u64 {
    120_000
}
fn default_query_timeout_ms() -> u64 {
    1_500
}

impl EmbedderConfig {
    pub fn timing(&self) -> EmbedderTiming {
        match self {
            Self::Openai(c) => EmbedderTiming {
                timeout_ms: c.timeout_ms,
                query_timeout_ms: c.query_timeout_ms,
            },
            Self::Bedrock(c) => EmbedderTiming {
                timeout_ms: c.timeout_ms,
                query_timeout_ms: c.query_timeout_ms,
            },
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let field = |key: &str| format!("search.embedder.{key}");
        let timing = self.timing();
        if timing.timeout_ms == 0 || timing.query_timeout_ms == 0 {
            return Err(ConfigError::new(
                field("timeout_ms"),
                "timeout_ms and query_timeout_ms must be positive",
            ));
        }
        let http_url = |key: &str, value: &str| -> Result<(), ConfigError> {
            match url::Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
                _ => Err(ConfigError::new(
                    field(key),
                    format!("`{value}` is not an http(s) URL"),
                )),
            }
        };
        match self {
            Self::Openai(c) => {
                http_url("url", &c.url)?;
                if c.model.trim().is_empty() {
                    return Err(ConfigError::new(field("model"), "must not be empty"));
                }
                if c.api_key.is_some() && c.api_key_file.is_some() {
                    return Err(ConfigError::new(
                        field("api_key"),
                        "give api_key or api_key_file, not both",
                    ));
                }
                if !(1..=2048).contains(&c.batch_size) {
                    return Err(ConfigError::new(
                        field("batch_size"),
                        "must be between 1 and 2048",
                    ));
                }
                if c.dimensions == Some(0) {
                    return Err(ConfigError::new(field("dimensions"), "must be positive"));
                }
            }
            Self::Bedrock(c) => {
                if let Some(endpoint) = &c.endpoint {
                    http_url("endpoint", endpoint)?;
                }
                if c.model.trim().is_empty() {
                    return Err(ConfigError::new(field("model"), "must not be empty"));
                }
                if ![256, 512, 1024].contains(&c.dimensions) {
                    return Err(ConfigError::new(
                        field("dimensions"),
                        "Titan text embeddings v2 offers 256, 512 or 1024",
                    ));
                }
                if !(1..=64).contains(&c.concurrency) {
                    return Err(ConfigError::new(
                        field("concurrency"),
                        "must be between 1 and 64",
                    ));
                }
            }
        }
        Ok(())
    }
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
            embedder: None,
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
        if let Some(embedder) = &self.embedder {
            if !self.enabled {
                return Err(ConfigError::new(
                    "search.embedder",
                    "an embedder needs search.enabled = true",
                ));
            }
            embedder.validate()?;
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
    fn embedders_parse_with_defaults() {
        let c = parse(
            "enabled = true\nembedder = { kind = \"openai\", url = \"http://127.0.0.1:9/v1\", model = \"text-embedding-3-small\", api_key = \"k\" }",
        )
        .unwrap();
        let Some(super::EmbedderConfig::Openai(o)) = &c.search.embedder else {
            panic!("openai embedder expected")
        };
        assert_eq!((o.batch_size, o.query_timeout_ms), (64, 1500));
        let c = parse("enabled = true\nembedder = { kind = \"bedrock\", region = \"eu-west-1\" }")
            .unwrap();
        let Some(super::EmbedderConfig::Bedrock(b)) = &c.search.embedder else {
            panic!("bedrock embedder expected")
        };
        assert_eq!(b.model, "amazon.titan-embed-text-v2:0");
        assert_eq!((b.dimensions, b.concurrency), (512, 8));
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
            (
                "enabled = true\nembedder = { kind = \"openai\", url = \"ftp://x\", model = \"m\" }",
                "search.embedder.url",
            ),
            (
                "enabled = true\nembedder = { kind = \"bedrock\", dimensions = 300 }",
                "search.embedder.dimensions",
            ),
            ("enabled = true\nembedder = { kind = \"cohere\" }", "search"),
            (
                "enabled = true\nembedder = { kind = \"openai\", url = \"http://h/v1\", model = \"m\", colour = 1 }",
                "search",
            ),
            ("embedder = { kind = \"bedrock\" }", "search.embedder"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.field.starts_with(field), "{text}: {err}");
        }
    }
}
