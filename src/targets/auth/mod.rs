//! Outbound credentials: how a request to a target is authorized.
//!
//! One trait for every provider so SigV4 and OAuth client credentials (which must see the
//! final request, body included) plug in beside the static ones. The inbound caller's token
//! is never an input here: it is never forwarded upstream.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::BoxFuture;
use crate::config::{CredentialProviderConfig, TargetConfig};

pub trait CredentialProvider: Send + Sync {
    /// A short description for `check` and errors (never the secret).
    fn describe(&self) -> String;
    /// Adds whatever the target needs to `request` just before it is sent.
    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Static headers and API keys: fixed values added to every request.
pub struct StaticHeaders {
    headers: HeaderMap,
    description: String,
}

impl CredentialProvider for StaticHeaders {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        for (name, value) in &self.headers {
            request.headers_mut().insert(name, value.clone());
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Builds the provider for a target: its static `headers` plus its `credential_provider`.
pub fn provider_for(config: &TargetConfig) -> anyhow::Result<Box<dyn CredentialProvider>> {
    let mut headers = HeaderMap::new();
    let mut parts = Vec::new();
    for (name, value) in &config.headers {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes())?,
            sensitive(value.expose())?,
        );
    }
    if !config.headers.is_empty() {
        parts.push(format!(
            "static headers ({})",
            config
                .headers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match &config.credential_provider {
        CredentialProviderConfig::None => {}
        CredentialProviderConfig::ApiKey {
            header,
            prefix,
            value,
        } => {
            headers.insert(
                HeaderName::from_bytes(header.as_bytes())?,
                sensitive(&format!("{prefix}{}", value.expose()))?,
            );
            parts.push(format!("api_key in {header}"));
        }
    }
    let description = if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(" + ")
    };
    Ok(Box::new(StaticHeaders {
        headers,
        description,
    }))
}

/// Marks a header value sensitive so HTTP libraries never print it.
fn sensitive(value: &str) -> anyhow::Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value)?;
    v.set_sensitive(true);
    Ok(v)
}
