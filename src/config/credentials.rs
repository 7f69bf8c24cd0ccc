//! Outbound credential providers: how the sidecar authenticates to a target.
//! (Never the inbound caller's token: that is not forwarded.)
//!
//! AgentCore's vocabulary: `none`, `api_key`, `sigv4` (a.k.a. `gateway_iam_role`) and
//! `oauth_client_credentials`. Secrets come from `${VAR}` interpolation or from a file.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Secret, validate_header};

/// How outbound requests to a target are authenticated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialProviderConfig {
    #[default]
    None,
    /// A static secret in one header, e.g. `x-api-key: …` or `Authorization: Bearer …`.
    ApiKey {
        #[serde(default = "default_api_key_header")]
        header: String,
        #[serde(default)]
        prefix: String,
        /// The secret itself (usually `${VAR}`); or give `value_file`.
        #[serde(default = "empty_secret")]
        value: Secret,
        /// A file holding the secret (read once at start-up; surrounding whitespace trimmed).
        #[serde(default)]
        value_file: Option<PathBuf>,
        /// Send the key as this query parameter (e.g. `api_key`) instead of in `header`.
        #[serde(default)]
        query_param: Option<String>,
    },
    /// AWS Signature Version 4 over every request (AgentCore's `GATEWAY_IAM_ROLE`).
    #[serde(alias = "gateway_iam_role")]
    Sigv4(Sigv4Config),
    /// An OAuth 2.0 access token from the client-credentials grant (RFC 6749 §4.4).
    OauthClientCredentials(OAuthClientCredentialsConfig),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sigv4Config {
    /// Signing name; inferred from the URL when absent (see [`SigningScope`]).
    pub service: Option<String>,
    /// Signing region; config, then the URL, then `AWS_REGION` / `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// A named profile from the shared config files instead of the default chain.
    pub profile: Option<String>,
    /// Assume this role (with the profile's or the default chain's credentials).
    pub assume_role: Option<AssumeRoleConfig>,
    /// `sigv4` (HMAC, scoped to one region; the default) or `sigv4a` (ECDSA P-256, valid in
    /// every region of `region_set`: multi-Region endpoints).
    #[serde(default)]
    pub algorithm: SigningAlgorithm,
    /// SigV4a only: the regions the signature is valid in, e.g. `["us-east-1", "us-west-2"]`
    /// or `["*"]`. Defaults to the signing region.
    pub region_set: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningAlgorithm {
    #[default]
    Sigv4,
    Sigv4a,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleConfig {
    pub role_arn: String,
    #[serde(default)]
    pub external_id: Option<Secret>,
    #[serde(default)]
    pub session_name: Option<String>,
    /// Session duration, 900 to 43200 seconds (STS's range); STS's default when absent.
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientCredentialsConfig {
    /// The token endpoint; or give `discovery_url`.
    pub token_url: Option<String>,
    /// OIDC discovery or RFC 8414 metadata; its `token_endpoint` is used.
    pub discovery_url: Option<String>,
    pub client_id: String,
    /// The client secret (usually `${VAR}`); or give `client_secret_file`.
    pub client_secret: Option<Secret>,
    /// A file holding the client secret, read at every token request (rotation-friendly).
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Sent as `audience` (Auth0 and others need it).
    pub audience: Option<String>,
    /// Sent as `resource` (RFC 8707).
    pub resource: Option<String>,
    /// How the client authenticates to the token endpoint.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1, the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl CredentialProviderConfig {
    /// Checks what types cannot; `url` is the target's URL (SigV4 infers its signing scope
    /// from it). The error is (".sub.field" or "", problem).
    /// `None`: the URL is known only later (from an API definition); the SigV4 scope is
    /// then resolved when it is.
    pub fn validate(&self, url: Option<&url::Url>) -> Result<(), (String, String)> {
        match self {
            CredentialProviderConfig::None => Ok(()),
            CredentialProviderConfig::ApiKey {
                header,
                prefix,
                value,
                value_file,
                query_param,
            } => {
                match (value.expose().is_empty(), value_file) {
                    (true, None) => {
                        return Err((".value".into(), "give `value` or `value_file`".into()));
                    }
                    (false, Some(_)) => {
                        return Err((
                            ".value_file".into(),
                            "give either `value` or `value_file`, not both".into(),
                        ));
                    }
                    _ => {}
                }
                if let Some(name) = query_param {
                    if name.is_empty()
                        || name
                            .chars()
                            .any(|c| c.is_control() || c.is_whitespace() || "&=#".contains(c))
                    {
                        return Err((
                            ".query_param".into(),
                            format!("`{name}` is not a query parameter name"),
                        ));
                    }
                    return Ok(());
                }
                validate_header(header, &format!("{prefix}{}", value.expose()))
                    .map_err(|p| (String::new(), p))
            }
            CredentialProviderConfig::Sigv4(c) => c.validate(url),
            CredentialProviderConfig::OauthClientCredentials(c) => c.validate(),
        }
    }
}

impl Sigv4Config {
    fn validate(&self, url: Option<&url::Url>) -> Result<(), (String, String)> {
        for (field, value) in [
            (".service", &self.service),
            (".region", &self.region),
            (".profile", &self.profile),
        ] {
            if let Some(v) = value
                && (v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            {
                return Err((
                    field.into(),
                    format!("`{v}` must be non-empty and use only A-Z, a-z, 0-9, '-', '_', '.'"),
                ));
            }
        }
        if let Some(role) = &self.assume_role {
            role.validate()
                .map_err(|(f, p)| (format!(".assume_role{f}"), p))?;
        }
        if let Some(set) = &self.region_set {
            if self.algorithm != SigningAlgorithm::Sigv4a {
                return Err((
                    ".region_set".into(),
                    "a region set is SigV4a's: add `algorithm = \"sigv4a\"` or use `region`".into(),
                ));
            }
            if set.is_empty() {
                return Err((
                    ".region_set".into(),
                    "name at least one region, or \"*\"".into(),
                ));
            }
            if let Some(bad) = set.iter().find(|r| {
                r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '*'))
            }) {
                return Err((
                    ".region_set".into(),
                    format!(
                        "`{bad}` is not a region or a wildcard pattern (A-Z, a-z, 0-9, '-', '*')"
                    ),
                ));
            }
        }
        let Some(url) = url else {
            return Ok(());
        };
        self.scope(url, &|name| std::env::var(name).ok())
            .map(|_| ())
            .map_err(|p| (".region".into(), p))
    }

    /// Resolves the signing service and region (config, then the URL, then the environment).
    pub fn scope(
        &self,
        url: &url::Url,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SigningScope, String> {
        let inferred = infer_scope(url);
        let (service, service_source) = match (&self.service, inferred.service) {
            (Some(s), _) => (s.clone(), ScopeSource::Config),
            (None, Some(s)) => (s, ScopeSource::Url),
            (None, None) => {
                return Err(format!(
                    "cannot infer the SigV4 service from `{}`; set credential_provider.service",
                    url.host_str().unwrap_or_default()
                ));
            }
        };
        let from_env = || {
            ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (v, name)))
        };
        let configured_set = match self.algorithm {
            SigningAlgorithm::Sigv4 => None,
            SigningAlgorithm::Sigv4a => self.region_set.as_ref().map(|set| set.join(",")),
        };
        let (region, region_source) = match (&self.region, inferred.region) {
            (Some(r), _) => (r.clone(), ScopeSource::Config),
            (None, Some(r)) => (r, ScopeSource::Url),
            (None, None) => match from_env() {
                Some((r, name)) => (r, ScopeSource::Env(name)),
                // A SigV4a signature with its own region set needs no region; credentials
                // (STS for assume_role) then use the global partition's home region.
                None if configured_set.is_some() => ("us-east-1".to_string(), ScopeSource::Default),
                None => {
                    return Err(format!(
                        "no SigV4 region: `{}` names none; set credential_provider.region or AWS_REGION",
                        url.host_str().unwrap_or_default()
                    ));
                }
            },
        };
        // SigV4a signs over the configured set, else over the signing region alone.
        let region_set =
            (self.algorithm == SigningAlgorithm::Sigv4a).then(|| match configured_set {
                Some(set) => (set, ScopeSource::Config),
                None => (region.clone(), region_source),
            });
        Ok(SigningScope {
            service,
            service_source,
            region,
            region_source,
            region_set,
        })
    }
}

/// The SigV4 signing name and region of a target, and where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningScope {
    pub service: String,
    pub service_source: ScopeSource,
    /// The SigV4 signing region; with SigV4a, the region credentials are fetched in.
    pub region: String,
    pub region_source: ScopeSource,
    /// SigV4a: the comma-separated region set signed as `x-amz-region-set`.
    pub region_set: Option<(String, ScopeSource)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeSource {
    Config,
    Url,
    Env(&'static str),
    Default,
}

impl std::fmt::Display for ScopeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopeSource::Config => f.write_str("from config"),
            ScopeSource::Url => f.write_str("from the URL"),
            ScopeSource::Env(name) => write!(f, "from {name}"),
            ScopeSource::Default => f.write_str("by default"),
        }
    }
}

/// What the URL alone says about the signing scope.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InferredScope {
    pub service: Option<String>,
    pub region: Option<String>,
}

/// Service and region from an AWS host name (the rules mcp-proxy-for-aws uses, plus Lambda
/// function URLs and API Gateway):
/// - `*.bedrock-agentcore.{region}.amazonaws.com` and `bedrock-agentcore.{region}.amazonaws.com`
///   → `bedrock-agentcore` (AgentCore Runtime invocations and Gateways);
/// - `{svc}.{region}.api.aws` → `{svc}` (e.g. the AWS MCP Server, `aws-mcp`);
/// - `*.lambda-url.{region}.on.aws` → `lambda`;
/// - `*.execute-api.{region}.amazonaws.com` → `execute-api`;
/// - `{svc}.{region}.amazonaws.com` (and `.amazonaws.com.cn`) → `{svc}`;
/// - any other host: the first label as the service, no region.
///
/// IP addresses and `localhost` yield nothing.
pub fn infer_scope(url: &url::Url) -> InferredScope {
    let Some(url::Host::Domain(host)) = url.host() else {
        return InferredScope::default();
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return InferredScope::default();
    }
    let n = labels.len();
    let found = |service: &str, region: &str| InferredScope {
        service: Some(service.to_string()),
        region: looks_like_region(region).then(|| region.to_string()),
    };
    let amazonaws = if host.ends_with(".amazonaws.com") {
        Some(n - 2)
    } else if host.ends_with(".amazonaws.com.cn") {
        Some(n - 3)
    } else {
        None
    };
    if let Some(suffix_at) = amazonaws {
        // labels[..suffix_at] = [..., service, region]
        if let Some(i) = labels[..suffix_at]
            .iter()
            .position(|l| *l == "bedrock-agentcore" || *l == "execute-api")
            && i + 1 < suffix_at
        {
            return found(labels[i], labels[i + 1]);
        }
        if suffix_at >= 2 {
            let service = labels[suffix_at - 2];
            let region = labels[suffix_at - 1];
            if looks_like_region(region) {
                return found(service, region);
            }
        }
        return InferredScope {
            service: Some(labels[0].to_string()),
            region: None,
        };
    }
    if host.ends_with(".on.aws")
        && let Some(i) = labels.iter().position(|l| *l == "lambda-url")
        && i + 1 < n
    {
        return found("lambda", labels[i + 1]);
    }
    if host.ends_with(".api.aws") && n >= 4 {
        // {svc}.{region}.api.aws, possibly with more labels in front.
        return found(labels[n - 4], labels[n - 3]);
    }
    if host == "localhost" {
        return InferredScope::default();
    }
    InferredScope {
        service: Some(labels[0].to_string()),
        region: None,
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-5`, …
fn looks_like_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

impl AssumeRoleConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if !self.role_arn.starts_with("arn:") || self.role_arn.split(':').count() < 6 {
            return Err((
                ".role_arn".into(),
                format!("`{}` is not a role ARN", self.role_arn),
            ));
        }
        if let Some(name) = &self.session_name
            && (name.len() < 2
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)))
        {
            return Err((
                ".session_name".into(),
                "must be 2 to 64 characters of A-Z, a-z, 0-9 and _+=,.@-".into(),
            ));
        }
        if let Some(d) = self.duration_secs
            && !(900..=43_200).contains(&d)
        {
            return Err((
                ".duration_secs".into(),
                "must be between 900 and 43200".into(),
            ));
        }
        if let Some(id) = &self.external_id
            && (id.expose().len() < 2 || id.expose().len() > 1224)
        {
            return Err((".external_id".into(), "must be 2 to 1224 characters".into()));
        }
        Ok(())
    }
}

impl OAuthClientCredentialsConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let endpoint = match (&self.token_url, &self.discovery_url) {
            (Some(u), None) => ("token_url", u),
            (None, Some(u)) => ("discovery_url", u),
            _ => {
                return Err((
                    ".token_url".into(),
                    "give exactly one of `token_url` and `discovery_url`".into(),
                ));
            }
        };
        let parsed = url::Url::parse(endpoint.1)
            .map_err(|e| (format!(".{}", endpoint.0), format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err((
                format!(".{}", endpoint.0),
                "must be an http:// or https:// URL".into(),
            ));
        }
        if self.client_id.is_empty() {
            return Err((".client_id".into(), "must not be empty".into()));
        }
        match (&self.client_secret, &self.client_secret_file) {
            (None, None) => Err((
                ".client_secret".into(),
                "give `client_secret` or `client_secret_file`".into(),
            )),
            (Some(_), Some(_)) => Err((
                ".client_secret_file".into(),
                "give either `client_secret` or `client_secret_file`, not both".into(),
            )),
            _ => Ok(()),
        }?;
        if let Some(s) = self
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"'))
        {
            return Err((".scopes".into(), format!("`{s}` is not a valid scope")));
        }
        Ok(())
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

fn empty_secret() -> Secret {
    Secret::new("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(u: &str) -> (Option<String>, Option<String>) {
        let s = infer_scope(&url::Url::parse(u).unwrap());
        (s.service, s.region)
    }

    fn pair(s: &str, r: Option<&str>) -> (Option<String>, Option<String>) {
        (Some(s.to_string()), r.map(str::to_string))
    }

    #[test]
    fn infers_service_and_region_from_aws_hosts() {
        assert_eq!(
            infer("https://aws-mcp.us-east-1.api.aws/mcp"),
            pair("aws-mcp", Some("us-east-1"))
        );
        assert_eq!(
            infer(
                "https://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2Fx/invocations?qualifier=DEFAULT"
            ),
            pair("bedrock-agentcore", Some("us-west-2"))
        );
        assert_eq!(
            infer("https://my-gw-abc123.gateway.bedrock-agentcore.eu-central-1.amazonaws.com/mcp"),
            pair("bedrock-agentcore", Some("eu-central-1"))
        );
        assert_eq!(
            infer("https://abcdefg.lambda-url.ap-southeast-2.on.aws/"),
            pair("lambda", Some("ap-southeast-2"))
        );
        assert_eq!(
            infer("https://a1b2c3.execute-api.us-gov-west-1.amazonaws.com/prod/mcp"),
            pair("execute-api", Some("us-gov-west-1"))
        );
        assert_eq!(
            infer("https://lambda.cn-north-1.amazonaws.com.cn/2015-03-31/functions/f/invocations"),
            pair("lambda", Some("cn-north-1"))
        );
        assert_eq!(
            infer("https://mcp.example.com/mcp"),
            pair("mcp", None),
            "other hosts: the first label, no region"
        );
        assert_eq!(infer("http://127.0.0.1:9000/mcp"), (None, None));
        assert_eq!(infer("http://localhost:9000/mcp"), (None, None));
    }

    #[test]
    fn scope_prefers_config_then_url_then_env() {
        let url = url::Url::parse("https://aws-mcp.us-east-1.api.aws/mcp").unwrap();
        let none = |_: &str| None;
        let c = Sigv4Config::default();
        let s = c.scope(&url, &none).unwrap();
        assert_eq!(
            (s.service.as_str(), s.region.as_str()),
            ("aws-mcp", "us-east-1")
        );
        assert_eq!(s.region_source, ScopeSource::Url);

        let c = Sigv4Config {
            region: Some("eu-west-1".into()),
            service: Some("execute-api".into()),
            ..Default::default()
        };
        let s = c.scope(&url, &none).unwrap();
        assert_eq!(
            (s.service.as_str(), s.region.as_str()),
            ("execute-api", "eu-west-1")
        );
        assert_eq!(s.service_source, ScopeSource::Config);

        let local = url::Url::parse("http://127.0.0.1:1/mcp").unwrap();
        let c = Sigv4Config {
            service: Some("aws-mcp".into()),
            ..Default::default()
        };
        assert!(c.scope(&local, &none).unwrap_err().contains("region"));
        let env = |n: &str| (n == "AWS_REGION").then(|| "ap-south-1".to_string());
        let s = c.scope(&local, &env).unwrap();
        assert_eq!(s.region, "ap-south-1");
        assert_eq!(s.region_source, ScopeSource::Env("AWS_REGION"));
        assert!(
            Sigv4Config::default()
                .scope(&local, &env)
                .unwrap_err()
                .contains("service")
        );
    }

    #[test]
    fn sigv4a_region_set_from_config_or_the_signing_region() {
        let url = url::Url::parse("https://aws-mcp.us-east-1.api.aws/mcp").unwrap();
        let local = url::Url::parse("http://127.0.0.1:1/mcp").unwrap();
        let none = |_: &str| None;
        let v4a = |set: Option<&[&str]>| Sigv4Config {
            algorithm: SigningAlgorithm::Sigv4a,
            region_set: set.map(|s| s.iter().map(|r| r.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(
            Sigv4Config::default()
                .scope(&url, &none)
                .unwrap()
                .region_set,
            None
        );
        assert_eq!(
            v4a(None).scope(&url, &none).unwrap().region_set,
            Some(("us-east-1".into(), ScopeSource::Url))
        );
        let s = v4a(Some(&["us-east-1", "us-west-2"]))
            .scope(&url, &none)
            .unwrap();
        assert_eq!(
            s.region_set,
            Some(("us-east-1,us-west-2".into(), ScopeSource::Config))
        );
        // A region set needs no signing region; without one SigV4a still needs a region.
        let c = Sigv4Config {
            service: Some("s3".into()),
            ..v4a(Some(&["*"]))
        };
        let s = c.scope(&local, &none).unwrap();
        assert_eq!(s.region_set, Some(("*".into(), ScopeSource::Config)));
        assert_eq!(s.region_source, ScopeSource::Default);
        let c = Sigv4Config {
            service: Some("s3".into()),
            ..v4a(None)
        };
        assert!(c.scope(&local, &none).unwrap_err().contains("region"));

        let field = |c: Sigv4Config| c.validate(Some(&url)).unwrap_err();
        let e = field(Sigv4Config {
            region_set: Some(vec!["us-east-1".into()]),
            ..Default::default()
        });
        assert!(e.0 == ".region_set" && e.1.contains("sigv4a"), "{e:?}");
        assert_eq!(field(v4a(Some(&[]))).0, ".region_set");
        assert!(field(v4a(Some(&["us east"]))).1.contains("`us east`"));
        assert!(
            v4a(Some(&["us-*", "eu-west-1"]))
                .validate(Some(&url))
                .is_ok()
        );
    }

    #[test]
    fn region_shapes() {
        for r in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-5",
        ] {
            assert!(looks_like_region(r), "{r}");
        }
        for r in ["api", "us-east", "prod", "my-gw-abc123", "1-2-3"] {
            assert!(!looks_like_region(r), "{r}");
        }
    }
}
