//! Inbound authentication: bearer JWTs checked the way AgentCore's `customJWTAuthorizer`
//! does (issuer from discovery, allowed audiences, clients, scopes, custom claims), answers
//! shaped by the MCP authorization spec (401 with RFC 9728 `resource_metadata`, 403
//! `insufficient_scope`), and per-tool rules.
//!
//! Hot path: a token seen before is found in a cache keyed by its SHA-256 until it expires,
//! so a repeat caller costs one hash and one lookup, not a signature check.

mod claims;
mod keys;
pub mod rules;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use moka::sync::Cache;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use self::keys::IssuerKeys;
use self::rules::ToolRules;
use crate::config::{AuthorizerConfig, InboundAuth, InboundConfig};

/// A caller whose token was verified: its claims, for authorization and later stages.
/// The token itself is not kept (it is never forwarded upstream).
#[derive(Debug)]
pub struct Caller {
    pub claims: Map<String, Value>,
    pub scopes: Vec<String>,
    expires_at: SystemTime,
}

impl Caller {
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Self {
            scopes: claims::scopes(&claims),
            expires_at: UNIX_EPOCH + Duration::from_secs(exp),
            claims,
        }
    }

    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    fn expires_in(&self) -> Duration {
        self.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }
}

/// Why a request was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No bearer token: 401 that points at the protected-resource metadata.
    Missing,
    /// The token is not acceptable (bad signature, expired, wrong issuer, client, …): 401.
    Invalid(String),
    /// The token lacks the scopes needed: 403 `insufficient_scope`.
    InsufficientScope(Vec<String>),
}

impl AuthError {
    /// Outcome and reason as bounded metric labels.
    pub fn metric_labels(&self) -> (&'static str, &'static str) {
        match self {
            AuthError::Missing => ("missing", "no_token"),
            AuthError::InsufficientScope(_) => ("insufficient_scope", "scope"),
            AuthError::Invalid(why) => ("invalid", invalid_reason(why)),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing | AuthError::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }

    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => {
                "authentication required: send `Authorization: Bearer <token>`".into()
            }
            AuthError::Invalid(why) => format!("invalid token: {why}"),
            AuthError::InsufficientScope(needed) => {
                format!("insufficient scope: needs {}", needed.join(" "))
            }
        }
    }
}

struct Authorizer {
    config: AuthorizerConfig,
    keys: Arc<IssuerKeys>,
}

pub struct Authenticator {
    authorizers: Vec<Authorizer>,
    verified: Cache<[u8; 32], Arc<Caller>>,
    pub rules: ToolRules,
    resource: Option<String>,
    path: String,
    /// The key refresh loops, ended when the authenticator is dropped (a reload that
    /// changes the auth config replaces it).
    refreshers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Authenticator {
    fn drop(&mut self) {
        for handle in self.refreshers.get_mut().unwrap().drain(..) {
            handle.abort();
        }
    }
}

/// Cache entries live until their token expires.
struct UntilTokenExpiry;

impl moka::Expiry<[u8; 32], Arc<Caller>> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        caller: &Arc<Caller>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(caller.expires_in())
    }
}

impl Authenticator {
    /// `None` when inbound auth is not JWT.
    pub fn new(config: &InboundConfig) -> anyhow::Result<Option<Arc<Self>>> {
        if config.auth_mode() != Some(InboundAuth::Jwt) {
            return Ok(None);
        }
        let http = crate::tls::client_builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(crate::USER_AGENT)
            .build()?;
        let authorizers = config
            .authorizers
            .iter()
            .map(|c| Authorizer {
                keys: Arc::new(IssuerKeys::new(c, http.clone())),
                config: c.clone(),
            })
            .collect();
        Ok(Some(Arc::new(Self {
            authorizers,
            verified: Cache::builder()
                .max_capacity(10_000)
                .expire_after(UntilTokenExpiry)
                .build(),
            rules: ToolRules::new(&config.tool_rules)?,
            resource: config.resource.clone(),
            path: config.path.clone(),
            refreshers: std::sync::Mutex::new(Vec::new()),
        })))
    }

    /// Loads every authorizer's keys in the background and keeps them fresh.
    pub fn spawn_key_refresh(&self) {
        let mut refreshers = self.refreshers.lock().unwrap();
        for a in &self.authorizers {
            let every = Duration::from_secs(a.config.jwks_refresh_secs);
            refreshers.push(tokio::spawn(a.keys.clone().keep_fresh(every)));
        }
    }

    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, AuthError> {
        let token = bearer_token(headers)?;
        let fingerprint: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(caller) = self.verified.get(&fingerprint) {
            return Ok(caller);
        }
        let caller = Arc::new(self.verify(token).await?);
        if caller.expires_in() > Duration::ZERO {
            self.verified.insert(fingerprint, caller.clone());
        }
        Ok(caller)
    }

    async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = decode_header(token).map_err(|e| match unverified_header_alg(token) {
            // Say plainly that the algorithm is refused (e.g. `none`), not how serde failed.
            Some(alg) => AuthError::Invalid(format!(
                "malformed token: algorithm `{alg}` is not accepted"
            )),
            None => AuthError::Invalid(format!("malformed token ({e})")),
        })?;
        let issuer = unverified_issuer(token)
            .ok_or_else(|| AuthError::Invalid("token has no `iss`".into()))?;
        let (authorizer, issuer) = self.authorizer_for(&issuer).await?;
        let config = &authorizer.config;
        let key = authorizer
            .keys
            .key(header.kid.as_deref())
            .await
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "unknown signing key (kid {:?})",
                    header.kid.unwrap_or_default()
                ))
            })?;
        if !key.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} does not fit the signing key",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        if config.allowed_audiences.is_empty() {
            // Cognito access tokens carry no `aud`; tokens that do are fine when none is set.
            validation.set_required_spec_claims(&["exp", "iss"]);
            validation.validate_aud = false;
        } else {
            // Without `aud` in the required claims a token lacking it would pass.
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.set_audience(&config.allowed_audiences);
        }
        let claims = decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| AuthError::Invalid(describe(e.kind())))?
            .claims;
        check_claims(config, &claims)?;
        Ok(Caller::from_claims(claims))
    }

    /// The authorizer whose discovered issuer is `iss`.
    async fn authorizer_for(&self, iss: &str) -> Result<(&Authorizer, String), AuthError> {
        for a in &self.authorizers {
            if a.keys.issuer_or_discover().await.as_deref() == Some(iss) {
                return Ok((a, iss.to_string()));
            }
        }
        Err(AuthError::Invalid("issuer is not accepted".into()))
    }

    /// `WWW-Authenticate` for an error, per RFC 6750 and the MCP authorization spec.
    pub fn challenge(&self, headers: &HeaderMap, error: &AuthError) -> String {
        let metadata = self.metadata_url(headers);
        match error {
            AuthError::Missing => format!(r#"Bearer resource_metadata="{metadata}""#),
            AuthError::Invalid(why) => format!(
                r#"Bearer error="invalid_token", error_description="{}", resource_metadata="{metadata}""#,
                quote_safe(why)
            ),
            AuthError::InsufficientScope(needed) => format!(
                r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{metadata}""#,
                quote_safe(&needed.join(" "))
            ),
        }
    }

    /// The RFC 9728 protected-resource metadata document.
    pub fn metadata(&self, headers: &HeaderMap) -> Value {
        let issuers: Vec<String> = self
            .authorizers
            .iter()
            .filter_map(|a| a.keys.issuer())
            .collect();
        let mut scopes: Vec<&str> = self
            .authorizers
            .iter()
            .flat_map(|a| a.config.allowed_scopes.iter().map(String::as_str))
            .chain(self.rules.scopes())
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        json!({
            "resource": self.resource_uri(headers),
            "authorization_servers": issuers,
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-sidecar",
        })
    }

    fn resource_uri(&self, headers: &HeaderMap) -> String {
        self.resource
            .clone()
            .unwrap_or_else(|| format!("{}{}", origin(headers), self.path))
    }

    /// RFC 9728 §3.1: the well-known path is inserted between the host and the resource path.
    fn metadata_url(&self, headers: &HeaderMap) -> String {
        if let Some(resource) = &self.resource
            && let Ok(url) = url::Url::parse(resource)
        {
            let authority = &url[url::Position::BeforeScheme..url::Position::AfterPort];
            let path = url.path().trim_end_matches('/');
            return format!("{authority}{WELL_KNOWN}{path}");
        }
        format!("{}{WELL_KNOWN}{}", origin(headers), self.path)
    }
}

/// Fetches an authorizer's discovery document and JWKS now, as `serve` would at start-up
/// (for `mcp-sidecar doctor`): the issuer and key count, or what failed.
pub async fn probe_authorizer(
    config: &AuthorizerConfig,
    timeout: Duration,
) -> Result<String, String> {
    let http = crate::tls::client_builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(crate::USER_AGENT)
        .build()
        .map_err(|e| e.to_string())?;
    let keys = IssuerKeys::new(config, http);
    let count = keys.refresh().await?;
    if count == 0 {
        return Err(format!(
            "the JWKS of {} holds no usable signing key",
            config.discovery_url
        ));
    }
    Ok(format!(
        "issuer {}, {count} signing key(s)",
        keys.issuer().unwrap_or_default()
    ))
}

pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|s| matches!(*s, "http" | "https"))
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("Authorization header is not text".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Invalid("empty bearer token".into()));
    }
    Ok(token)
}

/// The `iss` claim read without verification, only to choose which authorizer verifies.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

/// The `alg` a token's header names, read without trusting it (for error messages).
fn unverified_header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_string)
}

/// The authorizer's checks beyond signature and standard claims.
fn check_claims(config: &AuthorizerConfig, claims: &Map<String, Value>) -> Result<(), AuthError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if claims
        .get("iat")
        .and_then(Value::as_u64)
        .is_some_and(|iat| iat > now + config.leeway_secs)
    {
        return Err(AuthError::Invalid(
            "token is issued in the future (iat)".into(),
        ));
    }
    if !config.allowed_clients.is_empty() {
        // Cognito access tokens name the client in `client_id`; other IdPs in `azp`.
        let client = claims
            .get("client_id")
            .or_else(|| claims.get("azp"))
            .and_then(Value::as_str);
        if !client.is_some_and(|c| config.allowed_clients.iter().any(|a| a == c)) {
            return Err(AuthError::Invalid("client is not allowed".into()));
        }
    }
    for condition in &config.custom_claims {
        claims::check(condition, claims).map_err(AuthError::Invalid)?;
    }
    if !config.allowed_scopes.is_empty() {
        let have = claims::scopes(claims);
        if !config.allowed_scopes.iter().any(|s| have.contains(s)) {
            return Err(AuthError::InsufficientScope(config.allowed_scopes.clone()));
        }
    }
    Ok(())
}

/// A fixed word for why a token was refused (from the messages this module writes).
fn invalid_reason(why: &str) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("has expired", "expired"),
        ("not valid yet", "not_yet_valid"),
        ("issued in the future", "not_yet_valid"),
        ("signature does not verify", "bad_signature"),
        ("issuer is not accepted", "issuer"),
        ("has no `iss`", "issuer"),
        ("audience is not accepted", "audience"),
        ("client is not allowed", "client"),
        ("unknown signing key", "unknown_key"),
        ("algorithm", "algorithm"),
        ("malformed", "malformed"),
        ("is not text", "malformed"),
        ("empty bearer token", "malformed"),
        ("claim", "claims"),
    ];
    REASONS
        .iter()
        .find(|(needle, _)| why.contains(needle))
        .map_or("other", |(_, reason)| reason)
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "audience is not accepted".into(),
        ErrorKind::InvalidSignature => "signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "algorithm is not allowed".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("claim `{claim}` is required"),
        other => format!("{other:?}"),
    }
}

/// Text safe inside a quoted-string header parameter.
fn quote_safe(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_bounded_metric_reasons() {
        let reason = |why: &str| AuthError::Invalid(why.into()).metric_labels().1;
        assert_eq!(reason(&describe(&ErrorKind::ExpiredSignature)), "expired");
        assert_eq!(
            reason(&describe(&ErrorKind::InvalidSignature)),
            "bad_signature"
        );
        assert_eq!(reason("unknown signing key (kid \"x\")"), "unknown_key");
        assert_eq!(reason("client is not allowed"), "client");
        assert_eq!(reason("something new"), "other");
        assert_eq!(AuthError::Missing.metric_labels(), ("missing", "no_token"));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Err(AuthError::Missing));
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Err(AuthError::Missing));
        h.insert(AUTHORIZATION, "bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer_token(&h), Ok("abc.def.ghi"));
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(matches!(bearer_token(&h), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn issuer_is_read_without_trusting_it() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://idp.example"}"#);
        assert_eq!(
            unverified_issuer(&format!("x.{payload}.y")).as_deref(),
            Some("https://idp.example")
        );
        assert_eq!(unverified_issuer("garbage"), None);
    }

    #[test]
    fn challenges_quote_safely_and_point_at_metadata() {
        let config: InboundConfig = toml::from_str(
            "auth = \"jwt\"\nresource = \"https://sidecar.example/mcp\"\n[[authorizers]]\ndiscovery_url = \"https://idp.example/.well-known/openid-configuration\"\n",
        )
        .unwrap();
        let auth = Authenticator::new(&config).unwrap().unwrap();
        let h = HeaderMap::new();
        let c = auth.challenge(&h, &AuthError::Invalid("bad \"quoted\" thing".into()));
        assert!(c.contains(r#"error_description="bad quoted thing""#), "{c}");
        assert!(c.contains(r#"resource_metadata="https://sidecar.example/.well-known/oauth-protected-resource/mcp""#), "{c}");
        let c = auth.challenge(
            &h,
            &AuthError::InsufficientScope(vec!["a".into(), "b".into()]),
        );
        assert!(
            c.starts_with(r#"Bearer error="insufficient_scope", scope="a b""#),
            "{c}"
        );
        assert_eq!(auth.metadata(&h)["resource"], "https://sidecar.example/mcp");
    }
}
