//! Typed configuration: the TOML file, the zero-file mode (flags/env), and validation.
//!
//! Vocabulary follows AgentCore Gateway: the sidecar has `targets`, each with a `kind` and a
//! `credential_provider`. Every validation error names the field it is about.

mod api_target;
mod authorizer;
mod credentials;
mod interpolate;
mod lambda;
mod search;
mod secret;
mod stdio;
mod target;

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use api_target::{OpenapiSpec, OperationFilter, SmithySpec};
pub use authorizer::{
    AuthorizerConfig, ClaimCondition, ClaimOperator, ClaimValueType, ToolRuleConfig,
};
pub use credentials::{
    AssumeRoleConfig, ClientAuthMethod, CredentialProviderConfig, OAuthClientCredentialsConfig,
    ScopeSource, SigningAlgorithm, SigningScope, Sigv4Config, infer_scope,
};
pub use interpolate::interpolate_env;
pub use lambda::LambdaSpec;
pub use search::{
    BedrockEmbedderConfig, EmbedderConfig, EmbedderTiming, Expose, GATEWAY_SEARCH_TOOL,
    OpenAiEmbedderConfig, SearchConfig,
};
pub use secret::Secret;
pub use stdio::StdioSpec;
pub use target::{CurationConfig, McpServerSpec, TargetConfig, TargetSpec};

/// A configuration problem, always tied to the field that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub inbound: InboundConfig,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    /// The tool-search tool (off unless `[search] enabled = true`).
    #[serde(default)]
    pub search: SearchConfig,
}

/// Logs, metrics and traces.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` (human-readable) or `json` (one object per line, same fields).
    pub log_format: LogFormat,
    /// Serve Prometheus metrics at `metrics_path` on the inbound listener.
    pub metrics: bool,
    pub metrics_path: String,
    /// Distinct tool names that get their own metric label; calls to further tools are
    /// counted under `other` (bounds the series count whatever the catalogs hold).
    pub max_tool_labels: usize,
    /// OTLP/HTTP endpoint for traces, e.g. `http://127.0.0.1:4318` (`/v1/traces` is added).
    /// Unset: traces are exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; otherwise tracing is off.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME` wins when set).
    pub service_name: String,
    /// Fraction of new traces sampled (a caller's sampled `traceparent` is always followed).
    pub sample_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            metrics: true,
            metrics_path: "/metrics".into(),
            max_tool_labels: 200,
            otlp_endpoint: None,
            service_name: "mcp-sidecar".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Hot reload of the config file (SIGHUP always reloads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the config file and reload when it changes.
    pub watch: bool,
    /// How often the file is checked.
    pub interval_ms: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            interval_ms: 2000,
        }
    }
}

/// The admin endpoints (`POST /admin/sync`, `GET /admin/catalog`) on the inbound listener.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    /// Required as `Authorization: Bearer <token>` when set; without one, only loopback
    /// callers may use the admin endpoints.
    pub token: Option<Secret>,
}

/// The listener the Gateway (or any MCP client) calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    pub listen: String,
    pub path: String,
    pub max_body_bytes: usize,
    /// Extra `Host` values accepted on `/mcp`; loopback names are always accepted; `"*"` = any.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted on `/mcp`; loopback origins are always accepted; `"*"` = any.
    pub allowed_origins: Vec<String>,
    /// Inbound authentication: `"jwt"` (the authorizers below) or `"none"`. Unset means
    /// `"jwt"` when authorizers are given, else "no auth, loopback only"; `"none"` is the
    /// explicit opt-in to an unauthenticated listener beyond loopback.
    pub auth: Option<InboundAuth>,
    /// Accepted token issuers (AgentCore `customJWTAuthorizer`s).
    pub authorizers: Vec<AuthorizerConfig>,
    /// Per-tool authorization rules (need `auth = "jwt"`).
    pub tool_rules: Vec<ToolRuleConfig>,
    /// This endpoint's canonical URI for RFC 9728 metadata; default: from the request's Host.
    pub resource: Option<String>,
    /// A request head must arrive whole within this time once its first byte has.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive whole within this time once its head has (408 otherwise).
    pub body_read_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this long. Longer than the idle
    /// timeout of the load balancer in front (ALB: 60 s), so that the balancer closes first.
    pub idle_timeout_secs: u64,
    /// Open connections at most; one more is answered 503 and closed at once.
    pub max_connections: usize,
    /// Requests being handled at most (MCP and admin paths); one more gets a fast 503 with
    /// `Retry-After`. Health and metrics endpoints are not counted.
    pub max_in_flight: usize,
    /// The `Retry-After` value of those 503 answers.
    pub retry_after_secs: u64,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish before they are
    /// answered with an error and the process exits.
    pub shutdown_grace_secs: u64,
    /// On SIGTERM/SIGINT, how long the listener keeps accepting (answering `/readyz` with
    /// 503) before it closes, for load balancers that poll readiness before deregistering.
    pub drain_delay_secs: u64,
    /// Seals state handed to clients (MRTR `requestState`): at least 32 bytes. Unset: a
    /// random key per process, so replicas behind one load balancer need a shared one.
    pub state_key: Option<Secret>,
    /// How long a sealed `requestState` stays valid (the time a user has to answer).
    pub request_state_ttl_secs: u64,
    /// Calls held in memory while a 2026-07-28 caller answers what a legacy upstream asked
    /// mid-call; beyond it such questions are refused.
    pub max_waiting_calls: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundAuth {
    None,
    Jwt,
}

impl InboundConfig {
    /// The effective mode: explicit, or JWT when authorizers are configured.
    pub fn auth_mode(&self) -> Option<InboundAuth> {
        self.auth
            .or((!self.authorizers.is_empty()).then_some(InboundAuth::Jwt))
    }
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            path: "/mcp".into(),
            max_body_bytes: 4 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            auth: None,
            authorizers: Vec::new(),
            tool_rules: Vec::new(),
            resource: None,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_secs: 75,
            max_connections: 1024,
            max_in_flight: 256,
            retry_after_secs: 1,
            shutdown_grace_secs: 10,
            drain_delay_secs: 0,
            state_key: None,
            request_state_ttl_secs: 600,
            max_waiting_calls: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Tools per `tools/list` page.
    pub page_size: usize,
    /// Seconds between successful syncs of a target (targets may override).
    pub sync_interval_secs: u64,
    /// Where each target's last good listing is kept across restarts (none: not kept).
    pub state_dir: Option<std::path::PathBuf>,
    /// The target name this sidecar is registered under in an AgentCore Gateway: exposed
    /// names are kept short enough that `{gateway_target_name}___{name}` fits 64 characters.
    pub gateway_target_name: Option<String>,
    /// A sync whose tool count falls below this fraction of the previous count is refused
    /// (the previous definitions stay). An empty listing after a non-empty one always is.
    pub min_kept_fraction: f64,
    /// Rewrite tool schemas into the subset AgentCore Gateway and Bedrock accept (targets
    /// may override).
    pub normalize_schemas: bool,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            page_size: 100,
            sync_interval_secs: 300,
            state_dir: None,
            gateway_target_name: None,
            min_kept_fraction: 0.0,
            normalize_schemas: false,
        }
    }
}

impl Config {
    /// Every section at its defaults, with these targets (zero-file mode, the demo).
    pub fn with_targets(targets: Vec<TargetConfig>) -> Self {
        Self {
            inbound: Default::default(),
            catalog: Default::default(),
            targets,
            admin: Default::default(),
            telemetry: Default::default(),
            reload: Default::default(),
            search: Default::default(),
        }
    }

    /// Reads, interpolates `${VAR}`s and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parses config text; `env` resolves `${VAR}` references (injectable for tests).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw: toml::Value = toml::from_str(text).map_err(|e| {
            let span = e
                .span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default();
            ConfigError::new("config", format!("{}{span}", e.message()))
        })?;
        interpolate_env(&mut raw, "", env)?;
        target::nest_kind_keys(&mut raw)?;
        let config = deserialize_with_path(raw)?;
        config.validate()?;
        Ok(config)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.inbound.listen.parse().map_err(|_| {
            ConfigError::new(
                "inbound.listen",
                format!("`{}` is not an IP:port address", self.inbound.listen),
            )
        })
    }

    /// Checks everything that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let listen = self.listen_addr()?;
        self.validate_inbound_auth()?;
        self.search.validate()?;
        if !listen.ip().is_loopback() && self.inbound.auth_mode().is_none() {
            return Err(ConfigError::new(
                "inbound.auth",
                format!(
                    "listening on {listen} (beyond loopback) needs inbound authentication; \
                     set inbound.auth = \"none\" (or MCP_SIDECAR_INBOUND_AUTH=none) to accept \
                     unauthenticated callers explicitly, e.g. behind AgentCore Runtime's own JWT authorizer"
                ),
            ));
        }
        if !self.inbound.path.starts_with('/') || self.inbound.path.len() < 2 {
            return Err(ConfigError::new(
                "inbound.path",
                "must start with '/' and name a path, e.g. \"/mcp\"",
            ));
        }
        if self.inbound.max_body_bytes < 1024 {
            return Err(ConfigError::new(
                "inbound.max_body_bytes",
                "must be at least 1024",
            ));
        }
        self.validate_limits()?;
        if self.catalog.page_size == 0 {
            return Err(ConfigError::new("catalog.page_size", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.catalog.min_kept_fraction) {
            return Err(ConfigError::new(
                "catalog.min_kept_fraction",
                "must be between 0 and 1",
            ));
        }
        if let Some(name) = &self.catalog.gateway_target_name {
            let valid = !name.is_empty()
                && name.len() <= 40
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !valid {
                return Err(ConfigError::new(
                    "catalog.gateway_target_name",
                    "must be 1 to 40 characters of A-Z, a-z, 0-9 and '-' (as AgentCore target names are)",
                ));
            }
        }
        if self.catalog.sync_interval_secs == 0 {
            return Err(ConfigError::new(
                "catalog.sync_interval_secs",
                "must be at least 1",
            ));
        }
        if self.targets.is_empty() {
            return Err(ConfigError::new(
                "targets",
                "at least one target is needed (a [[targets]] table, or --upstream-url)",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            t.validate(i)?;
            if !seen.insert(t.name.as_str()) {
                return Err(ConfigError::new(
                    format!("targets[{i}].name"),
                    format!("`{}` is used by two targets", t.name),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Hardening and telemetry keys: every bound must be positive (a zero would turn a
    /// safety limit into an outage).
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let i = &self.inbound;
        let positive = [
            ("inbound.header_read_timeout_ms", i.header_read_timeout_ms),
            ("inbound.body_read_timeout_ms", i.body_read_timeout_ms),
            ("inbound.idle_timeout_secs", i.idle_timeout_secs),
            ("inbound.max_connections", i.max_connections as u64),
            ("inbound.max_in_flight", i.max_in_flight as u64),
            ("reload.interval_ms", self.reload.interval_ms),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if i.shutdown_grace_secs > 3600 {
            return Err(ConfigError::new(
                "inbound.shutdown_grace_secs",
                "must be at most 3600",
            ));
        }
        let t = &self.telemetry;
        if !t.metrics_path.starts_with('/') || t.metrics_path.len() < 2 {
            return Err(ConfigError::new(
                "telemetry.metrics_path",
                "must start with '/' and name a path, e.g. \"/metrics\"",
            ));
        }
        if t.metrics
            && [i.path.as_str(), "/ping", "/healthz", "/readyz"].contains(&t.metrics_path.as_str())
        {
            return Err(ConfigError::new(
                "telemetry.metrics_path",
                format!("`{}` is already served by another endpoint", t.metrics_path),
            ));
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            return Err(ConfigError::new(
                "telemetry.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        if let Some(endpoint) = &t.otlp_endpoint {
            let url = url::Url::parse(endpoint).map_err(|e| {
                ConfigError::new("telemetry.otlp_endpoint", format!("not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::new(
                    "telemetry.otlp_endpoint",
                    "must be an http:// or https:// URL (OTLP over HTTP/protobuf)",
                ));
            }
        }
        Ok(())
    }

    fn validate_inbound_auth(&self) -> Result<(), ConfigError> {
        let inbound = &self.inbound;
        match inbound.auth_mode() {
            Some(InboundAuth::Jwt) if inbound.authorizers.is_empty() => {
                return Err(ConfigError::new(
                    "inbound.authorizers",
                    "auth = \"jwt\" needs at least one [[inbound.authorizers]] entry",
                ));
            }
            Some(InboundAuth::None) if !inbound.authorizers.is_empty() => {
                return Err(ConfigError::new(
                    "inbound.auth",
                    "is \"none\" but authorizers are configured; remove one or the other",
                ));
            }
            Some(InboundAuth::Jwt) => {}
            _ if !inbound.tool_rules.is_empty() => {
                return Err(ConfigError::new(
                    "inbound.tool_rules",
                    "per-tool rules need JWT authorizers",
                ));
            }
            _ => {}
        }
        for (i, a) in inbound.authorizers.iter().enumerate() {
            a.validate(&format!("inbound.authorizers[{i}]"))?;
        }
        for (i, r) in inbound.tool_rules.iter().enumerate() {
            r.validate(&format!("inbound.tool_rules[{i}]"))?;
        }
        if inbound
            .state_key
            .as_ref()
            .is_some_and(|k| k.expose().len() < 32)
        {
            return Err(ConfigError::new(
                "inbound.state_key",
                "must be at least 32 bytes (e.g. `openssl rand -base64 32`)",
            ));
        }
        if inbound.request_state_ttl_secs == 0 {
            return Err(ConfigError::new(
                "inbound.request_state_ttl_secs",
                "must be at least 1",
            ));
        }
        if let Some(resource) = &inbound.resource {
            url::Url::parse(resource)
                .map_err(|e| ConfigError::new("inbound.resource", format!("not a URL: {e}")))?;
        }
        Ok(())
    }
}

pub(crate) fn validate_header(name: &str, value: &str) -> Result<(), String> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    http::HeaderValue::from_str(value)
        .map_err(|_| "header value has characters not allowed in HTTP headers".to_string())?;
    Ok(())
}

/// Deserializes the interpolated TOML tree; serde_path_to_error supplies the field path.
fn deserialize_with_path(raw: toml::Value) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "config".to_string()
        } else {
            target::display_path(&path)
        };
        ConfigError::new(field, e.into_inner().message().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const MINIMAL: &str = r#"
        [[targets]]
        name = "weather"
        kind = "mcp_server"
        url = "http://127.0.0.1:9000/mcp"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL, &no_env).unwrap();
        assert_eq!(c.inbound.listen, "127.0.0.1:8080");
        assert_eq!(c.inbound.path, "/mcp");
        assert_eq!(c.targets[0].request_timeout_ms, 60_000);
        assert!(c.targets[0].prefix_tools);
    }

    #[test]
    fn non_loopback_listener_requires_explicit_auth_choice() {
        let text = format!("[inbound]\nlisten = \"0.0.0.0:8000\"\n{MINIMAL}");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "inbound.auth");
        let text = format!("[inbound]\nlisten = \"0.0.0.0:8000\"\nauth = \"none\"\n{MINIMAL}");
        assert!(Config::parse(&text, &no_env).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let text = format!(
            "{MINIMAL}\n[[targets]]\nname = \"b\"\nkind = \"mcp_server\"\nurl = \"ftp://x\"\n"
        );
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "targets[1].url");

        let text = format!("{MINIMAL}request_timeout_ms = \"soon\"\n");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "targets[0].request_timeout_ms", "{err}");

        let text = format!("{MINIMAL}bogus = 1\n");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");

        let text = MINIMAL.replace("weather", "a___b");
        assert_eq!(
            Config::parse(&text, &no_env).unwrap_err().field,
            "targets[0].name"
        );
    }

    #[test]
    fn kind_keys_are_checked_per_kind_and_named_as_written() {
        let err =
            Config::parse(&MINIMAL.replace("mcp_server", "carrier_pigeon"), &no_env).unwrap_err();
        assert_eq!(err.field, "targets[0].kind", "{err}");
        assert!(err.problem.contains("carrier_pigeon"), "{err}");

        let err =
            Config::parse(&MINIMAL.replace("kind = \"mcp_server\"", ""), &no_env).unwrap_err();
        assert_eq!(err.field, "targets[0].kind", "{err}");

        let text = MINIMAL.replace("\"http://127.0.0.1:9000/mcp\"", "5");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "targets[0].url", "{err}");

        let text = format!("{MINIMAL}headers = {{ X-Tenant = 7 }}\n");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "targets[0].headers.X-Tenant", "{err}");

        let c = Config::parse(
            &format!("{MINIMAL}headers = {{ X-Tenant = \"a\" }}\n"),
            &no_env,
        )
        .unwrap();
        match &c.targets[0].spec {
            TargetSpec::McpServer(s) => {
                assert_eq!(s.url, "http://127.0.0.1:9000/mcp");
                assert_eq!(s.headers["X-Tenant"].expose(), "a");
            }
            other => panic!("not an mcp_server: {other:?}"),
        }
    }

    #[test]
    fn duplicate_target_names_are_rejected() {
        let text = format!("{MINIMAL}{MINIMAL}");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "targets[1].name");
    }

    #[test]
    fn secrets_come_from_env_and_are_redacted_in_debug() {
        let text = format!(
            "{MINIMAL}[targets.credential_provider]\ntype = \"api_key\"\nvalue = \"${{KEY}}\"\n"
        );
        let env = |n: &str| (n == "KEY").then(|| "s3cr3t".to_string());
        let c = Config::parse(&text, &env).unwrap();
        match &c.targets[0].credential_provider {
            CredentialProviderConfig::ApiKey { header, value, .. } => {
                assert_eq!(header, "x-api-key");
                assert_eq!(value.expose(), "s3cr3t");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn missing_env_var_names_field_and_variable() {
        let text = format!("{MINIMAL}headers = {{ X-Key = \"${{NOPE}}\" }}\n");
        let err = Config::parse(&text, &no_env).unwrap_err();
        assert_eq!(err.field, "targets[0].headers.X-Key");
        assert!(err.problem.contains("NOPE"));
    }
}
