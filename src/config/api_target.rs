//! The keys of the kinds whose tools are derived from an API definition: `openapi` (an
//! OpenAPI 3.0/3.1 document) and `smithy` (a Smithy JSON AST model of an AWS service).
//!
//! Nothing here reads the definition: it is loaded at every sync (a URL may be down at
//! start-up; a changed file is picked up by the next sync), so the config only checks what it
//! can see (paths, URLs, globs).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, Secret, validate_header};

/// `kind = "openapi"`: each operation of an OpenAPI document becomes a tool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenapiSpec {
    /// The document: a file path (relative to the working directory) or an `http(s)://` URL;
    /// JSON or YAML.
    pub spec: String,
    /// Where calls go; default: the document's first server (relative server URLs resolve
    /// against the document's URL).
    pub base_url: Option<String>,
    /// Which operations become tools.
    #[serde(default)]
    pub operations: OperationFilter,
    /// Static headers sent on every call (e.g. a tenant header).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

/// `kind = "smithy"`: each operation of a service in a Smithy JSON AST model becomes a tool,
/// called over the service's AWS protocol and signed with SigV4.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmithySpec {
    /// The model file (Smithy JSON AST, e.g. `aws-models/dynamodb.json`).
    pub model: String,
    /// The service shape id (`com.amazonaws.dynamodb#DynamoDB_20120810`); may be left out
    /// when the model has one service.
    pub service: Option<String>,
    /// Which operations become tools.
    #[serde(default)]
    pub operations: OperationFilter,
    /// The AWS region calls go to and are signed for; default: the credential provider's
    /// `region`, then `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Where calls go; default `https://{endpointPrefix}.{region}.amazonaws.com` from the
    /// model's `aws.api#service` trait.
    pub endpoint: Option<String>,
}

/// Operation globs: `allow` (empty: every operation) then `deny`. A pattern matches an
/// operation's tool name (OpenAPI `operationId`, Smithy operation name) or, for OpenAPI,
/// `"METHOD /path"` as written in the document (e.g. `"GET /pets/*"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationFilter {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl OperationFilter {
    fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        for (field, patterns) in [("allow", &self.allow), ("deny", &self.deny)] {
            for (j, p) in patterns.iter().enumerate() {
                globset::Glob::new(p).map_err(|e| {
                    ConfigError::new(
                        at(&format!("operations.{field}[{j}]")),
                        format!("bad pattern: {e}"),
                    )
                })?;
            }
        }
        Ok(())
    }
}

fn http_url(at: String, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value)
        .map_err(|e| ConfigError::new(at.clone(), format!("`{value}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(at, "must be an http:// or https:// URL"));
    }
    Ok(url)
}

impl OpenapiSpec {
    /// The document's URL, when it is one (else a file path).
    pub fn spec_url(&self) -> Option<url::Url> {
        url::Url::parse(&self.spec)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
    }

    pub(super) fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.spec.trim().is_empty() {
            return Err(ConfigError::new(
                at("spec"),
                "give the OpenAPI document's file path or URL",
            ));
        }
        if self.spec.contains("://") && self.spec_url().is_none() {
            return Err(ConfigError::new(
                at("spec"),
                format!("`{}` is neither a file path nor an http(s) URL", self.spec),
            ));
        }
        if let Some(base) = &self.base_url {
            http_url(at("base_url"), base)?;
        }
        for (name, value) in &self.headers {
            validate_header(name, value.expose())
                .map_err(|p| ConfigError::new(at(&format!("headers.{name}")), p))?;
        }
        self.operations.validate(at)
    }
}

impl SmithySpec {
    pub(super) fn validate(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.model.trim().is_empty() {
            return Err(ConfigError::new(
                at("model"),
                "give the Smithy JSON AST model's file path",
            ));
        }
        if let Some(service) = &self.service
            && !service.contains('#')
        {
            return Err(ConfigError::new(
                at("service"),
                format!("`{service}` is not a shape id (namespace#Name)"),
            ));
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(ConfigError::new(
                at("region"),
                format!("`{region}` is not a region name"),
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            http_url(at("endpoint"), endpoint)?;
        }
        self.operations.validate(at)
    }
}
