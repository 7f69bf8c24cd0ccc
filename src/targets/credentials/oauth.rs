//! OAuth 2.0 client credentials (RFC 6749 §4.4) for targets behind a JWT authorizer (e.g.
//! AgentCore Runtime with a Cognito user pool) or any OAuth-protected MCP server.
//!
//! The token endpoint is given or read from discovery metadata (OIDC or RFC 8414). The token
//! is cached until shortly before it expires (one fetch at a time) and replaced once when
//! the target answers 401 for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::Engine;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;
use url::form_urlencoded;

use super::{CredentialProvider, Refusal, read_secret_file};
use crate::config::{ClientAuthMethod, OAuthClientCredentialsConfig, Secret};
use crate::targets::BoxFuture;
use crate::targets::error::quote;

/// Longest time before expiry at which the token is replaced.
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// Tokens without `expires_in` are reused this long (or until refused).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a failed token fetch is reported without trying again.
const FAILURE_HOLD: Duration = Duration::from_secs(1);

pub struct ClientCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    client_id: String,
    secret: SecretSource,
    scopes: String,
    audience: Option<String>,
    resource: Option<String>,
    auth_method: ClientAuthMethod,
    client: reqwest::Client,
    token_url: OnceCell<reqwest::Url>,
    current: ArcSwapOption<Token>,
    /// Held while fetching; the last failure (when, message).
    fetch: Mutex<Option<(Instant, String)>>,
    description: String,
}

enum Endpoint {
    Token(String),
    Discovery(String),
}

enum SecretSource {
    Inline(Secret),
    File(PathBuf),
}

struct Token {
    header: HeaderValue,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl ClientCredentials {
    pub fn new(
        config: &OAuthClientCredentialsConfig,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let (endpoint, shown) = match (&config.token_url, &config.discovery_url) {
            (Some(u), _) => (Endpoint::Token(u.clone()), format!("token endpoint {u}")),
            (None, Some(u)) => (Endpoint::Discovery(u.clone()), format!("discovery {u}")),
            (None, None) => {
                anyhow::bail!("oauth_client_credentials needs token_url or discovery_url")
            }
        };
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (_, Some(path)) => SecretSource::File(path.clone()),
            (Some(s), None) => SecretSource::Inline(s.clone()),
            (None, None) => anyhow::bail!("oauth_client_credentials needs a client secret"),
        };
        let client = crate::tls::client_builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout.min(Duration::from_secs(30)))
            .user_agent(crate::USER_AGENT)
            .build()?;
        let scopes = config.scopes.join(" ");
        let description = format!(
            "oauth_client_credentials (client {} at {shown}{})",
            config.client_id,
            if scopes.is_empty() {
                String::new()
            } else {
                format!(", scopes {scopes}")
            }
        );
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                client_id: config.client_id.clone(),
                secret,
                scopes,
                audience: config.audience.clone(),
                resource: config.resource.clone(),
                auth_method: config.auth_method,
                client,
                token_url: OnceCell::new(),
                current: ArcSwapOption::empty(),
                fetch: Mutex::new(None),
                description,
            }),
        })
    }
}

impl CredentialProvider for ClientCredentials {
    fn describe(&self) -> String {
        self.inner.description.clone()
    }

    fn probe(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            let token = self.inner.token(None).await?;
            let left = token.refresh_at.saturating_duration_since(Instant::now());
            Ok(format!(
                "{}: access token obtained, used for {} s before it is renewed",
                self.inner.description,
                left.as_secs()
            ))
        })
    }

    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let token = self.inner.token(None).await?;
            request
                .headers_mut()
                .insert(AUTHORIZATION, token.header.clone());
            Ok(())
        })
    }

    fn refused<'a>(&'a self, refusal: &'a Refusal<'a>) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            if refusal.status != 401 {
                return false;
            }
            let Some(sent) = refusal.sent_authorization else {
                return false;
            };
            match self.inner.token(Some(sent)).await {
                Ok(token) if token.header != *sent => {
                    tracing::info!(source = %self.inner.description,
                        "target answered 401; retrying once with a new access token");
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(source = %self.inner.description, "no new access token after a 401: {e:#}");
                    false
                }
            }
        })
    }

    fn explain(&self, refusal: &Refusal<'_>) -> Option<String> {
        let challenge = refusal
            .headers
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        Some(match (refusal.status, challenge) {
            (_, Some(c)) => format!("the target refused the access token (WWW-Authenticate: {c})"),
            (401, None) => {
                "the target refused the access token even after a new one was fetched".into()
            }
            _ => "the token's client or scopes are not allowed this call".into(),
        })
    }
}

impl Inner {
    /// The current token; with `refused`, that token is known bad and replaced.
    async fn token(&self, refused: Option<&HeaderValue>) -> anyhow::Result<Arc<Token>> {
        if refused.is_none()
            && let Some(t) = self.current.load_full()
            && Instant::now() < t.refresh_at
        {
            return Ok(t);
        }
        let mut last_failure = self.fetch.lock().await;
        if let Some(t) = self.current.load_full()
            && Instant::now() < t.refresh_at
            && refused.is_none_or(|r| *r != t.header)
        {
            return Ok(t);
        }
        if let Some((at, message)) = last_failure.as_ref()
            && at.elapsed() < FAILURE_HOLD
        {
            anyhow::bail!("{message}");
        }
        match self.fetch_token().await {
            Ok(token) => {
                *last_failure = None;
                let token = Arc::new(token);
                self.current.store(Some(token.clone()));
                Ok(token)
            }
            Err(e) => {
                let message = format!("{} failed: {e:#}", self.description);
                *last_failure = Some((Instant::now(), message.clone()));
                anyhow::bail!("{message}")
            }
        }
    }

    async fn token_url(&self) -> anyhow::Result<&reqwest::Url> {
        self.token_url
            .get_or_try_init(|| async {
                match &self.endpoint {
                    Endpoint::Token(u) => Ok(reqwest::Url::parse(u)?),
                    Endpoint::Discovery(u) => self.discover(u).await,
                }
            })
            .await
    }

    async fn discover(&self, url: &str) -> anyhow::Result<reqwest::Url> {
        #[derive(Deserialize)]
        struct Metadata {
            token_endpoint: Option<String>,
        }
        let response = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("discovery {url}: {}", e.without_url()))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            anyhow::bail!("discovery {url} answered {status}: {}", quote(&body));
        }
        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("discovery {url}: not metadata JSON: {e}"))?;
        let endpoint = metadata
            .token_endpoint
            .ok_or_else(|| anyhow::anyhow!("discovery {url} has no token_endpoint"))?;
        Ok(reqwest::Url::parse(&endpoint)?)
    }

    /// The form body and, for `client_secret_basic`, the `Authorization` header.
    fn token_request(&self, secret: &str) -> anyhow::Result<(String, Option<HeaderValue>)> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes);
        }
        if let Some(a) = &self.audience {
            form.append_pair("audience", a);
        }
        if let Some(r) = &self.resource {
            form.append_pair("resource", r);
        }
        let basic = match self.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before Base64.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&self.client_id),
                    enc(secret)
                ));
                let mut value = HeaderValue::from_str(&format!("Basic {basic}"))?;
                value.set_sensitive(true);
                Some(value)
            }
            ClientAuthMethod::ClientSecretPost => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", secret);
                None
            }
        };
        Ok((form.finish(), basic))
    }

    async fn fetch_token(&self) -> anyhow::Result<Token> {
        let fetched = self.fetch_token_uncounted().await;
        crate::telemetry::metrics().credential_refresh("oauth_client_credentials", fetched.is_ok());
        fetched
    }

    async fn fetch_token_uncounted(&self) -> anyhow::Result<Token> {
        let url = self.token_url().await?.clone();
        let secret = match &self.secret {
            SecretSource::Inline(s) => s.expose().to_string(),
            SecretSource::File(path) => read_secret_file(path)?,
        };
        let (form, basic) = self.token_request(&secret)?;
        let mut request = self
            .client
            .post(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(basic) = basic {
            request = request.header(AUTHORIZATION, basic);
        }
        let started = Instant::now();
        let response = request
            .body(form)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("token endpoint {url}: {}", e.without_url()))?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            anyhow::bail!("token endpoint {url} answered {status}: {}", quote(&body));
        }
        let answer: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            anyhow::anyhow!("token endpoint {url}: the answer is not a token response ({e})")
        })?;
        if let Some(t) = &answer.token_type
            && !t.eq_ignore_ascii_case("bearer")
        {
            anyhow::bail!("token endpoint {url}: token_type `{t}` is not Bearer");
        }
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_LIFETIME, Duration::from_secs_f64);
        let ahead = MAX_REFRESH_AHEAD.min(lifetime / 5);
        let mut header = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| {
                anyhow::anyhow!("token endpoint {url}: the access token is not a header value")
            })?;
        header.set_sensitive(true);
        tracing::debug!(source = %self.description, lifetime_s = lifetime.as_secs_f64(), "fetched an access token");
        Ok(Token {
            header,
            refresh_at: started + lifetime - ahead,
        })
    }
}
