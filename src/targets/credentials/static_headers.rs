//! Static headers and API keys: fixed values added to every request, in a header or (for
//! APIs that want it there, as some OpenAPI `apiKey` schemes do) a query parameter.
//! Query values never reach logs or messages: every printed URL drops its query
//! (`targets::http::printable_url`).

use std::collections::BTreeMap;
use std::path::Path;

use http::{HeaderMap, HeaderName};

use super::{CredentialProvider, read_secret_file, sensitive};
use crate::config::Secret;
use crate::targets::BoxFuture;

pub struct StaticHeaders {
    headers: HeaderMap,
    description: String,
}

impl StaticHeaders {
    /// No credentials at all.
    pub fn none() -> Self {
        Self {
            headers: HeaderMap::new(),
            description: "none".into(),
        }
    }

    /// A target's `headers` table (values may be secrets: they are marked sensitive).
    pub fn from_headers(headers: &BTreeMap<String, Secret>) -> anyhow::Result<Self> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes())?,
                sensitive(value.expose())?,
            );
        }
        Ok(Self {
            headers: map,
            description: format!(
                "static headers ({})",
                headers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// `header: {prefix}{secret}`, the secret given inline or in a file.
    pub fn api_key(
        header: &str,
        prefix: &str,
        value: &Secret,
        value_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let (secret, from) = secret_of(value, value_file)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_bytes(header.as_bytes())?,
            sensitive(&format!("{prefix}{secret}"))?,
        );
        Ok(Self {
            headers,
            description: format!("api_key in {header}{from}"),
        })
    }
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

/// The secret, inline or from its file, and where it came from (for descriptions).
fn secret_of(value: &Secret, value_file: Option<&Path>) -> anyhow::Result<(String, String)> {
    Ok(match value_file {
        Some(path) => (
            read_secret_file(path)?,
            format!(" (from {})", path.display()),
        ),
        None => (value.expose().to_string(), String::new()),
    })
}

/// An API key sent as a query parameter: `?{param}={prefix}{secret}` added to every request.
pub struct QueryKey {
    param: String,
    value: String,
    description: String,
}

impl QueryKey {
    pub fn new(
        param: &str,
        prefix: &str,
        value: &Secret,
        value_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let (secret, from) = secret_of(value, value_file)?;
        Ok(Self {
            param: param.to_string(),
            value: format!("{prefix}{secret}"),
            description: format!("api_key in query parameter {param}{from}"),
        })
    }
}

impl CredentialProvider for QueryKey {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        // A retry re-authorizes a clone of the unauthorized request, so the key is never
        // added twice.
        request
            .url_mut()
            .query_pairs_mut()
            .append_pair(&self.param, &self.value);
        Box::pin(std::future::ready(Ok(())))
    }
}
