//! Inbound authorization config, in AgentCore's `customJWTAuthorizer` vocabulary, and the
//! per-tool rules.

use serde::Deserialize;

use super::ConfigError;

/// One accepted token issuer (AgentCore `customJWTAuthorizer`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerConfig {
    /// OIDC discovery or OAuth AS metadata URL; the issuer and `jwks_uri` come from it.
    pub discovery_url: String,
    /// The token's `aud` must contain one of these (when given).
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    /// The token's `client_id` must be one of these (when given).
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// The token's `scope` must contain at least one of these (when given).
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    #[serde(default)]
    pub custom_claims: Vec<ClaimCondition>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// How often the signing keys are refreshed.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// A token with an unknown `kid` triggers a key refetch at most this often.
    #[serde(default = "default_jwks_min_refetch_secs")]
    pub jwks_min_refetch_secs: u64,
}

fn default_leeway_secs() -> u64 {
    30
}
fn default_jwks_refresh_secs() -> u64 {
    3600
}
fn default_jwks_min_refetch_secs() -> u64 {
    10
}

impl AuthorizerConfig {
    pub fn new(discovery_url: impl Into<String>) -> Self {
        Self {
            discovery_url: discovery_url.into(),
            allowed_audiences: Vec::new(),
            allowed_clients: Vec::new(),
            allowed_scopes: Vec::new(),
            custom_claims: Vec::new(),
            leeway_secs: default_leeway_secs(),
            jwks_refresh_secs: default_jwks_refresh_secs(),
            jwks_min_refetch_secs: default_jwks_min_refetch_secs(),
        }
    }

    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.discovery_url).map_err(|e| {
            ConfigError::new(format!("{at}.discovery_url"), format!("not a URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                format!("{at}.discovery_url"),
                "must be http:// or https://",
            ));
        }
        if self.jwks_refresh_secs == 0 || self.jwks_min_refetch_secs == 0 {
            return Err(ConfigError::new(
                format!("{at}.jwks_refresh_secs"),
                "key refresh intervals must be at least 1",
            ));
        }
        for (i, c) in self.custom_claims.iter().enumerate() {
            c.validate()
                .map_err(|p| ConfigError::new(format!("{at}.custom_claims[{i}]"), p))?;
        }
        Ok(())
    }
}

/// A condition on one claim (AgentCore `customClaims`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimCondition {
    pub name: String,
    pub value_type: ClaimValueType,
    pub operator: ClaimOperator,
    /// For EQUALS and CONTAINS.
    #[serde(default)]
    pub value: Option<String>,
    /// For CONTAINS_ANY.
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimValueType {
    String,
    StringArray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimOperator {
    /// STRING claim equal to `value`.
    Equals,
    /// STRING_ARRAY claim containing `value`.
    Contains,
    /// STRING claim equal to, or STRING_ARRAY claim containing, one of `values`.
    ContainsAny,
}

impl ClaimCondition {
    fn validate(&self) -> Result<(), String> {
        use ClaimOperator::*;
        use ClaimValueType::*;
        match (self.value_type, self.operator) {
            (String, Equals) | (StringArray, Contains) => {
                if self.value.is_none() {
                    return Err(format!("{:?} needs `value`", self.operator).to_uppercase());
                }
            }
            (_, ContainsAny) => {
                if self.values.is_empty() {
                    return Err("CONTAINS_ANY needs a non-empty `values` list".into());
                }
            }
            (String, Contains) => {
                return Err(
                    "CONTAINS applies to STRING_ARRAY claims; use EQUALS for STRING".into(),
                );
            }
            (StringArray, Equals) => {
                return Err("EQUALS applies to STRING claims; use CONTAINS or CONTAINS_ANY for STRING_ARRAY".into());
            }
        }
        Ok(())
    }
}

/// Which callers may see and call which tools. The first rule whose pattern matches a tool
/// decides; tools matching no rule are open to every authenticated caller.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRuleConfig {
    /// Glob patterns over exposed tool names, e.g. `"*___get_*"`.
    pub tools: Vec<String>,
    /// Every one of these scopes must be in the token.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Every condition must hold; otherwise the tool is hidden from the caller.
    #[serde(default)]
    pub custom_claims: Vec<ClaimCondition>,
}

impl ToolRuleConfig {
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.tools.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.tools"),
                "needs at least one pattern",
            ));
        }
        for (i, pattern) in self.tools.iter().enumerate() {
            globset::Glob::new(pattern).map_err(|e| {
                ConfigError::new(format!("{at}.tools[{i}]"), format!("bad pattern: {e}"))
            })?;
        }
        for (i, c) in self.custom_claims.iter().enumerate() {
            c.validate()
                .map_err(|p| ConfigError::new(format!("{at}.custom_claims[{i}]"), p))?;
        }
        Ok(())
    }
}
