//! One `[[targets]]` entry: the keys every kind shares, and a [`TargetSpec`] per kind.
//!
//! The TOML stays flat, the way AgentCore's own target definitions read:
//!
//! ```toml
//! [[targets]]
//! name = "weather"              # common
//! kind = "mcp_server"           # picks the spec
//! url = "https://…/mcp"         # mcp_server's own key
//! request_timeout_ms = 30000    # common
//! ```
//!
//! Before deserializing, [`nest_kind_keys`] moves `kind` and every key that is not common
//! into `kind_spec = { <kind> = { … } }` ([`NESTED_KEY`], a name no kind uses: `openapi` has
//! a `spec` key of its own), so the typed config is a plain struct with an
//! externally tagged enum: serde then checks each kind's keys on their own
//! (`deny_unknown_fields` per kind) and the field path of an error stays exact
//! (`targets[0].kind_spec.mcp_server.url`, which [`display_path`] prints as `targets[0].url`).
//! A new kind is one enum arm with its own struct here.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::api_target::{OpenapiSpec, SmithySpec};
use super::lambda::LambdaSpec;
use super::stdio::StdioSpec;
use super::{ConfigError, CredentialProviderConfig, Secret, Sigv4Config, validate_header};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    /// What the target is and how to reach it: `kind` and that kind's own keys.
    #[serde(rename = "kind_spec")]
    pub spec: TargetSpec,
    #[serde(default = "default_true")]
    pub prefix_tools: bool,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_sync_timeout_ms")]
    pub sync_timeout_ms: u64,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How long a request waits for one of the `max_concurrency` slots before it fails as
    /// overloaded (a fast, clear failure instead of a slow timeout).
    #[serde(default = "default_queue_timeout_ms")]
    pub queue_timeout_ms: u64,
    /// Largest single upstream message (JSON body, SSE event or stdio line) accepted.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    pub sync_interval_secs: Option<u64>,
    #[serde(default)]
    pub credential_provider: CredentialProviderConfig,
    /// Which tools are exposed, and how.
    #[serde(default)]
    pub curation: CurationConfig,
    /// Overrides `catalog.normalize_schemas` for this target.
    pub normalize_schemas: Option<bool>,
    /// Entries merged into `params._meta` of every `tools/call` sent to this target (the
    /// caller's own `_meta` keys win), e.g. `{ AWS_REGION = "us-west-2" }` for the AWS MCP
    /// Server's operating region.
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// Retries of a throttled request (HTTP 429, or 503 with `Retry-After`), with jittered
    /// backoff that honours `Retry-After`, always within `request_timeout_ms`.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

/// The kinds of target, each with its own keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSpec {
    /// An MCP server over streamable HTTP (JSON or SSE answers, stateful or stateless).
    McpServer(McpServerSpec),
    /// A local MCP server the sidecar runs, over its stdin and stdout.
    Stdio(StdioSpec),
    /// An AWS Lambda function with declared tools, invoked as AgentCore Gateway invokes it.
    Lambda(LambdaSpec),
    /// A REST API described by an OpenAPI document: one tool per operation.
    Openapi(OpenapiSpec),
    /// An AWS service described by a Smithy model: one tool per operation, SigV4-signed.
    Smithy(SmithySpec),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// `http://` or `https://` endpoint.
    pub url: String,
    /// Static headers sent on every request, e.g. `{ "X-Tenant" = "${TENANT}" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// `"auto"` (default: the newest the upstream speaks, probing with `server/discover`)
    /// or one protocol version to speak exactly.
    pub protocol_version: Option<String>,
}

impl TargetSpec {
    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::McpServer(_) => "mcp_server",
            TargetSpec::Stdio(_) => "stdio",
            TargetSpec::Lambda(_) => "lambda",
            TargetSpec::Openapi(_) => "openapi",
            TargetSpec::Smithy(_) => "smithy",
        }
    }

    /// The HTTP endpoint requests go to, when the kind has one (SigV4 infers its signing
    /// service and region from it).
    pub fn endpoint(&self) -> Option<url::Url> {
        match self {
            TargetSpec::McpServer(s) => url::Url::parse(&s.url).ok(),
            TargetSpec::Stdio(_) => None,
            TargetSpec::Lambda(s) => s.endpoint().and_then(|e| url::Url::parse(&e).ok()),
            TargetSpec::Openapi(s) => s.base_url.as_deref().and_then(|u| url::Url::parse(u).ok()),
            TargetSpec::Smithy(_) => None,
        }
    }

    /// Whether the kind sends HTTP requests (so credentials apply) even when [`Self::endpoint`]
    /// is known only once its definition is loaded (an OpenAPI document's servers, a Smithy
    /// model's endpoint prefix and signing name).
    pub fn sends_http(&self) -> bool {
        match self {
            TargetSpec::McpServer(_)
            | TargetSpec::Lambda(_)
            | TargetSpec::Openapi(_)
            | TargetSpec::Smithy(_) => true,
            TargetSpec::Stdio(_) => false,
        }
    }

    /// The credential provider the kind actually uses, given the configured one: Lambda's
    /// Invoke API always takes SigV4 (service `lambda`, the function's region), so `none`
    /// there means SigV4 with the default credential chain, as a Gateway's IAM role would.
    pub fn credentials<'a>(
        &self,
        configured: &'a CredentialProviderConfig,
    ) -> Result<Cow<'a, CredentialProviderConfig>, String> {
        let TargetSpec::Lambda(lambda) = self else {
            return Ok(Cow::Borrowed(configured));
        };
        let mut sigv4 = match configured {
            CredentialProviderConfig::None => Sigv4Config::default(),
            CredentialProviderConfig::Sigv4(c) => c.clone(),
            _ => {
                return Err(
                    "a lambda target signs with SigV4: use type = \"sigv4\" (or leave credential_provider out)"
                        .into(),
                );
            }
        };
        sigv4.service.get_or_insert_with(|| "lambda".into());
        if sigv4.region.is_none() {
            sigv4.region = lambda.region();
        }
        Ok(Cow::Owned(CredentialProviderConfig::Sigv4(sigv4)))
    }

    /// Checks what types cannot. `at` turns a key into its field path.
    fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        match self {
            TargetSpec::McpServer(s) => {
                let url = url::Url::parse(&s.url).map_err(|e| {
                    ConfigError::new(at("url"), format!("`{}` is not a URL: {e}", s.url))
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(ConfigError::new(
                        at("url"),
                        "must be an http:// or https:// URL",
                    ));
                }
                for (name, value) in &s.headers {
                    validate_header(name, value.expose())
                        .map_err(|p| ConfigError::new(at(&format!("headers.{name}")), p))?;
                }
                validate_protocol_version(s.protocol_version.as_deref())
                    .map_err(|p| ConfigError::new(at("protocol_version"), p))
            }
            TargetSpec::Stdio(s) => s.validate(at),
            TargetSpec::Lambda(s) => s.validate(at),
            TargetSpec::Openapi(s) => s.validate(at),
            TargetSpec::Smithy(s) => s.validate(at),
        }
    }
}

/// Per-target curation of the upstream's tools (names are the upstream's own).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurationConfig {
    /// Only tools matching one of these globs are exposed (empty: all).
    pub allow_tools: Vec<String>,
    /// Tools matching one of these globs are not exposed.
    pub deny_tools: Vec<String>,
    /// New names (before the target prefix), e.g. `{ get_forecast = "forecast" }`.
    pub rename_tools: BTreeMap<String, String>,
    /// Replacement descriptions.
    pub tool_descriptions: BTreeMap<String, String>,
    /// Expose (and allow calls to) only tools annotated `readOnlyHint: true`.
    pub read_only: bool,
}

fn default_true() -> bool {
    true
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    60_000
}
fn default_sync_timeout_ms() -> u64 {
    20_000
}
fn default_max_concurrency() -> usize {
    64
}
fn default_queue_timeout_ms() -> u64 {
    5_000
}
fn default_max_message_bytes() -> usize {
    32 * 1024 * 1024
}
fn default_max_retries() -> u32 {
    3
}

impl TargetConfig {
    /// A target with defaults for everything but its name and spec (zero-file mode).
    pub fn new(name: impl Into<String>, spec: TargetSpec) -> Self {
        Self {
            name: name.into(),
            spec,
            prefix_tools: true,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            sync_timeout_ms: default_sync_timeout_ms(),
            max_concurrency: default_max_concurrency(),
            queue_timeout_ms: default_queue_timeout_ms(),
            max_message_bytes: default_max_message_bytes(),
            sync_interval_secs: None,
            credential_provider: CredentialProviderConfig::None,
            curation: CurationConfig::default(),
            normalize_schemas: None,
            meta: serde_json::Map::new(),
            max_retries: default_max_retries(),
        }
    }

    /// An MCP server over streamable HTTP with every default.
    pub fn mcp_server(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(
            name,
            TargetSpec::McpServer(McpServerSpec {
                url: url.into(),
                headers: BTreeMap::new(),
                protocol_version: None,
            }),
        )
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn sync_timeout(&self) -> Duration {
        Duration::from_millis(self.sync_timeout_ms)
    }
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }

    /// Checks what types cannot; `index` is the target's place in `targets`.
    pub(super) fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let at = |f: &str| format!("targets[{index}].{f}");
        validate_target_name(&self.name).map_err(|p| ConfigError::new(at("name"), p))?;
        self.spec.validate(&at)?;
        for (field, v) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("sync_timeout_ms", self.sync_timeout_ms),
            ("queue_timeout_ms", self.queue_timeout_ms),
        ] {
            if v == 0 {
                return Err(ConfigError::new(at(field), "must be greater than 0"));
            }
        }
        if self.max_concurrency == 0 {
            return Err(ConfigError::new(
                at("max_concurrency"),
                "must be at least 1",
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::new(
                at("max_message_bytes"),
                "must be at least 1024",
            ));
        }
        if self.sync_interval_secs == Some(0) {
            return Err(ConfigError::new(
                at("sync_interval_secs"),
                "must be at least 1",
            ));
        }
        for (field, patterns) in [
            ("allow_tools", &self.curation.allow_tools),
            ("deny_tools", &self.curation.deny_tools),
        ] {
            for (j, p) in patterns.iter().enumerate() {
                globset::Glob::new(p).map_err(|e| {
                    ConfigError::new(
                        at(&format!("curation.{field}[{j}]")),
                        format!("bad pattern: {e}"),
                    )
                })?;
            }
        }
        let credentials = |(field, problem): (String, String)| {
            ConfigError::new(at(&format!("credential_provider{field}")), problem)
        };
        let provider = self
            .spec
            .credentials(&self.credential_provider)
            .map_err(|p| ConfigError::new(at("credential_provider"), p))?;
        match self.spec.endpoint() {
            Some(endpoint) => provider.validate(Some(&endpoint)).map_err(credentials)?,
            // The endpoint comes with the definition: the SigV4 scope is resolved then.
            None if self.spec.sends_http() => provider.validate(None).map_err(credentials)?,
            None if !matches!(*provider, CredentialProviderConfig::None) => {
                return Err(ConfigError::new(
                    at("credential_provider"),
                    format!(
                        "a `{}` target makes no HTTP requests to sign or authorize",
                        self.spec.kind()
                    ),
                ));
            }
            None => {}
        }
        if matches!(self.spec, TargetSpec::Smithy(_))
            && !matches!(
                self.credential_provider,
                CredentialProviderConfig::None | CredentialProviderConfig::Sigv4(_)
            )
        {
            return Err(ConfigError::new(
                at("credential_provider"),
                "a `smithy` target always signs with SigV4: leave it out (the default AWS \
                 credential chain) or use type = \"sigv4\"",
            ));
        }
        Ok(())
    }
}

/// `"auto"` or a version the sidecar speaks.
fn validate_protocol_version(setting: Option<&str>) -> Result<(), String> {
    match setting {
        None | Some("auto") => Ok(()),
        Some(v) if crate::protocol::SUPPORTED_VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(format!(
            "`{v}` is not \"auto\" nor a version the sidecar speaks ({})",
            crate::protocol::SUPPORTED_VERSIONS.join(", ")
        )),
    }
}

/// Target names become tool-name prefixes (`{target}___{tool}`), so they use the same
/// alphabet as tool names and must not contain the separator itself.
fn validate_target_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 48 {
        return Err("must be 1 to 48 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{name}` may only contain A-Z, a-z, 0-9, '_' and '-'"
        ));
    }
    if name.contains("___") {
        return Err(format!(
            "`{name}` must not contain \"___\" (the tool-name separator)"
        ));
    }
    Ok(())
}

/// Where [`nest_kind_keys`] puts `kind` and the kind's keys (the serde name of
/// [`TargetConfig::spec`]).
const NESTED_KEY: &str = "kind_spec";

/// Rewrites each flat `[[targets]]` table into the nested shape [`TargetConfig`] reads:
/// `kind` and every key that is not one of the common keys move to `kind_spec.<kind>`.
pub(super) fn nest_kind_keys(raw: &mut toml::Value) -> Result<(), ConfigError> {
    let Some(targets) = raw.get_mut("targets").and_then(toml::Value::as_array_mut) else {
        return Ok(()); // absent, or not a list: serde says so with the right path
    };
    let common = field_names::<TargetConfig>();
    for (i, target) in targets.iter_mut().enumerate() {
        let Some(table) = target.as_table_mut() else {
            continue;
        };
        if table.contains_key(NESTED_KEY) {
            return Err(ConfigError::new(
                format!("targets[{i}].{NESTED_KEY}"),
                "is not a target key (write the kind's keys beside `kind`)",
            ));
        }
        let kind = match table.remove("kind") {
            Some(toml::Value::String(kind)) => kind,
            Some(_) => {
                return Err(ConfigError::new(
                    format!("targets[{i}].kind"),
                    "must be a string, e.g. \"mcp_server\"",
                ));
            }
            None => {
                return Err(ConfigError::new(
                    format!("targets[{i}].kind"),
                    "missing: say what the target is, e.g. kind = \"mcp_server\"",
                ));
            }
        };
        let own: Vec<String> = table
            .keys()
            .filter(|k| !common.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut spec = toml::Table::new();
        for key in own {
            let value = table.remove(&key).expect("key listed above");
            spec.insert(key, value);
        }
        let mut tagged = toml::Table::new();
        tagged.insert(kind, toml::Value::Table(spec));
        table.insert(NESTED_KEY.into(), toml::Value::Table(tagged));
    }
    Ok(())
}

/// A serde field path as the user wrote it: `targets[0].kind_spec.mcp_server.url` is
/// `targets[0].url`, and an unknown kind (`targets[0].kind_spec`) is `targets[0].kind`.
pub(super) fn display_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if part == NESTED_KEY && out.last().is_some_and(|p| p.starts_with("targets[")) {
            match parts.next() {
                Some(_kind) => continue,
                None => {
                    out.push("kind");
                    break;
                }
            }
        }
        out.push(part);
    }
    out.join(".")
}

/// The field names a derived `Deserialize` struct reads. serde exposes them only to the
/// deserializer it is handed, so a deserializer that records them and stops is the one way
/// to ask (the list then never drifts from the struct).
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_are_the_struct_fields() {
        let fields = field_names::<TargetConfig>();
        assert!(fields.contains(&"request_timeout_ms") && fields.contains(&"curation"));
        assert!(!fields.contains(&"url") && !fields.contains(&"kind"));
    }

    #[test]
    fn paths_read_as_written() {
        assert_eq!(
            display_path("targets[2].kind_spec.mcp_server.url"),
            "targets[2].url"
        );
        assert_eq!(
            display_path("targets[0].kind_spec.mcp_server.headers.X"),
            "targets[0].headers.X"
        );
        assert_eq!(display_path("targets[0].kind_spec"), "targets[0].kind");
        assert_eq!(
            display_path("targets[1].kind_spec.openapi.spec"),
            "targets[1].spec"
        );
        assert_eq!(
            display_path("targets[0].request_timeout_ms"),
            "targets[0].request_timeout_ms"
        );
        assert_eq!(display_path("inbound.listen"), "inbound.listen");
    }

    #[test]
    fn kind_keys_move_under_spec() {
        let mut raw: toml::Value = toml::from_str(
            "[[targets]]\nname = \"a\"\nkind = \"mcp_server\"\nurl = \"http://x/mcp\"\nmax_retries = 1\n",
        )
        .unwrap();
        nest_kind_keys(&mut raw).unwrap();
        let t = &raw["targets"][0];
        assert_eq!(
            t["kind_spec"]["mcp_server"]["url"].as_str(),
            Some("http://x/mcp")
        );
        assert_eq!(t["max_retries"].as_integer(), Some(1));
        assert!(t.get("kind").is_none() && t.get("url").is_none());
    }
}
