//! Outbound credentials: how a request to a target is authorized. ("Credentials", not
//! "auth": `inbound::auth` is the other direction, who may call the sidecar.)
//!
//! One trait for every provider so SigV4 and OAuth client credentials (which must see the
//! final request, body included) plug in beside the static ones. The inbound caller's token
//! is never an input here: it is never forwarded upstream.
//!
//! - [`static_headers`]: fixed headers and API keys (in a header or a query parameter);
//! - [`sigv4`]: AWS Signature Version 4 (or SigV4a) over each request, with credentials from
//!   [`aws_credentials`] (default chain, a profile or an assumed role; cached and refreshed
//!   ahead of expiry, one refresh at a time), through a per-target signing template;
//! - [`oauth`]: an access token from the client-credentials grant, cached until shortly
//!   before it expires and refreshed once when the target answers 401.

pub mod aws_credentials;
pub mod oauth;
pub mod sigv4;
pub mod static_headers;

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue};

use super::BoxFuture;
use crate::config::{CredentialProviderConfig, Secret, TargetConfig};

pub use static_headers::StaticHeaders;

pub trait CredentialProvider: Send + Sync {
    /// A short description for `check` and errors (never the secret).
    fn describe(&self) -> String;
    /// Adds whatever the target needs to `request` just before it is sent.
    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The target refused a request carrying these credentials (HTTP 401 or 403). Returns
    /// true when fresh credentials were obtained and one retry may succeed (an OAuth token
    /// revoked early, AWS credentials that expired ahead of their stated expiry).
    fn refused<'a>(&'a self, _refusal: &'a Refusal<'a>) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(false))
    }
    /// Explains a refusal in this credential source's terms, e.g. what AWS answered.
    fn explain(&self, _refusal: &Refusal<'_>) -> Option<String> {
        None
    }
    /// Obtains credentials now and says where they came from and until when (for
    /// `mcp-sidecar doctor`). Static sources have nothing to fetch.
    fn probe(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(std::future::ready(Ok(self.describe())))
    }
}

/// An HTTP 401/403 answer from a target, with what the refused request carried.
pub struct Refusal<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    /// The start of the answer's body.
    pub body: &'a [u8],
    /// The `Authorization` header the refused request carried.
    pub sent_authorization: Option<&'a HeaderValue>,
}

/// Several providers applied in order (static headers, then the credential provider, so a
/// signer sees the final request).
struct Layered {
    layers: Vec<Box<dyn CredentialProvider>>,
}

impl CredentialProvider for Layered {
    fn describe(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            for layer in &self.layers {
                layer.authorize(request).await?;
            }
            Ok(())
        })
    }

    fn refused<'a>(&'a self, refusal: &'a Refusal<'a>) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let mut retry = false;
            for layer in &self.layers {
                retry |= layer.refused(refusal).await;
            }
            retry
        })
    }

    fn explain(&self, refusal: &Refusal<'_>) -> Option<String> {
        self.layers.iter().find_map(|l| l.explain(refusal))
    }

    fn probe(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            let mut found = Vec::new();
            for layer in &self.layers {
                found.push(layer.probe().await?);
            }
            Ok(found.join(" + "))
        })
    }
}

/// Builds the provider for a target that sends HTTP requests to `endpoint`: its static
/// `headers` (a kind's own, e.g. `mcp_server.headers`), then its `credential_provider`.
pub fn provider_for(
    config: &TargetConfig,
    endpoint: &url::Url,
    headers: &BTreeMap<String, Secret>,
) -> anyhow::Result<Box<dyn CredentialProvider>> {
    let mut layers: Vec<Box<dyn CredentialProvider>> = Vec::new();
    if !headers.is_empty() {
        layers.push(Box::new(StaticHeaders::from_headers(headers)?));
    }
    match &config.credential_provider {
        CredentialProviderConfig::None => {}
        CredentialProviderConfig::ApiKey {
            query_param: Some(param),
            prefix,
            value,
            value_file,
            ..
        } => layers.push(Box::new(static_headers::QueryKey::new(
            param,
            prefix,
            value,
            value_file.as_deref(),
        )?)),
        CredentialProviderConfig::ApiKey {
            header,
            prefix,
            value,
            value_file,
            query_param: None,
        } => layers.push(Box::new(StaticHeaders::api_key(
            header,
            prefix,
            value,
            value_file.as_deref(),
        )?)),
        CredentialProviderConfig::Sigv4(c) => {
            layers.push(Box::new(sigv4::SigV4Provider::new(c, endpoint)?));
        }
        CredentialProviderConfig::OauthClientCredentials(c) => {
            layers.push(Box::new(oauth::ClientCredentials::new(
                c,
                config.connect_timeout(),
                config.request_timeout(),
            )?));
        }
    }
    Ok(match layers.len() {
        0 => Box::new(StaticHeaders::none()),
        1 => layers.pop().expect("one layer"),
        _ => Box::new(Layered { layers }),
    })
}

/// Marks a header value sensitive so HTTP libraries never print it.
pub(crate) fn sensitive(value: &str) -> anyhow::Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value)?;
    v.set_sensitive(true);
    Ok(v)
}

/// A secret from a file: its content with surrounding whitespace trimmed.
pub(crate) fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        anyhow::bail!("{} is empty", path.display());
    }
    Ok(text.to_string())
}
