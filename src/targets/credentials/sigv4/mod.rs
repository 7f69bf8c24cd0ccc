//! AWS Signature Version 4 for every outbound request (AgentCore's `GATEWAY_IAM_ROLE`).
//!
//! Each request is signed over its exact body (`x-amz-content-sha256`) just before it is
//! sent, with the target's credentials (see [`super::aws_credentials`]). Only headers that
//! intermediaries leave alone are signed: `host`, `x-amz-date`, `x-amz-content-sha256` and,
//! for temporary credentials, `x-amz-security-token`. The canonical URI double-encodes the
//! path, so AgentCore Runtime invocation URLs with an encoded ARN (`arn%3Aaws%3A…`) sign as
//! AWS expects (`arn%253Aaws%253A…`).
//!
//! SigV4a (`algorithm = "sigv4a"`) signs the same canonical request with an ECDSA P-256 key
//! derived from the secret, over a region set sent and signed as `x-amz-region-set`.
//!
//! Requests to the target's own URL are signed through its [`SigningTemplate`] (the same
//! signatures, computed in a third of the time); anything else goes through aws-sigv4's
//! general [`sign_request`].
//!
//! - [`sign`]: aws-sigv4's general signer and the types both paths share;
//! - [`template`]: the per-target fast path, checked against [`sign`] when it is built;
//! - [`aws_error`]: what AWS said when it refused a request, in words.
//!
//! (`template` depends on `sign`, never the other way round.)

pub mod aws_error;
pub mod sign;
pub mod template;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use http::HeaderValue;
use http::header::HOST;

pub use self::aws_error::{AwsError, AwsErrorKind};
pub use self::sign::{SignOptions, SignedHeader, SigningRegion, host_header, sign_request};
use self::template::SigningTemplate;
use super::aws_credentials::{CachedCredentials, Source};
use super::{CredentialProvider, Refusal};
use crate::config::{SigningScope, Sigv4Config};
use crate::targets::BoxFuture;

pub struct SigV4Provider {
    scope: SigningScope,
    credentials: CachedCredentials,
    /// The fast path for the target's URL (`None`: every request through aws-sigv4).
    template: Option<SigningTemplate>,
}

impl SigV4Provider {
    pub fn new(config: &Sigv4Config, url: &url::Url) -> anyhow::Result<Self> {
        let scope = config
            .scope(url, &|name| std::env::var(name).ok())
            .map_err(|e| anyhow::anyhow!(e))?;
        let source = match &config.assume_role {
            Some(role) => Source::AssumeRole {
                profile: config.profile.clone(),
                role: role.clone(),
            },
            None => Source::Chain {
                profile: config.profile.clone(),
            },
        };
        let credentials = CachedCredentials::new(source, &scope.region);
        let template =
            SigningTemplate::new(url, &host_header(url), &scope.service, region_of(&scope));
        Ok(Self {
            scope,
            credentials,
            template,
        })
    }

    pub fn scope(&self) -> &SigningScope {
        &self.scope
    }
}

impl CredentialProvider for SigV4Provider {
    fn probe(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            let current = self.credentials.get().await?;
            let expiry = match current.expiry {
                Some(at) => format!(
                    "expire {} (in {} s)",
                    crate::catalog::store::rfc3339(at),
                    at.duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .as_secs()
                ),
                None => "do not expire".to_string(),
            };
            Ok(format!(
                "AWS credentials {} from {} ({}), {expiry}",
                current.access_key_id.chars().take(4).collect::<String>() + "…",
                current.supplied_by,
                self.credentials.describe()
            ))
        })
    }

    fn describe(&self) -> String {
        let region = match &self.scope.region_set {
            None => format!(
                "sigv4 (service {} {}, region {} {}",
                self.scope.service,
                self.scope.service_source,
                self.scope.region,
                self.scope.region_source
            ),
            Some((set, source)) => format!(
                "sigv4a (service {} {}, region set {set} {source}",
                self.scope.service, self.scope.service_source
            ),
        };
        format!(
            "{region}; credentials from {})",
            self.credentials.describe()
        )
    }

    fn authorize<'a>(
        &'a self,
        request: &'a mut reqwest::Request,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let current = self.credentials.get().await?;
            let host = host_header(request.url());
            let body: &[u8] = match request.body() {
                None => &[],
                Some(body) => body
                    .as_bytes()
                    .ok_or_else(|| anyhow::anyhow!("a streaming body cannot be signed"))?,
            };
            let (method, url, now) = (
                request.method().as_str(),
                request.url().as_str(),
                SystemTime::now(),
            );
            let fast = self
                .template
                .as_ref()
                .zip(current.identity.data::<Credentials>())
                .and_then(|(template, credentials)| {
                    template.sign(credentials, method, url, body, now)
                });
            let signed = match fast {
                Some(signed) => signed,
                None => sign_request(
                    &current.identity,
                    &self.scope.service,
                    region_of(&self.scope),
                    method,
                    url,
                    &[("host", &host)],
                    body,
                    now,
                    SignOptions::OUTBOUND,
                )?,
            };
            let headers = request.headers_mut();
            headers.insert(HOST, HeaderValue::from_str(&host)?);
            for (name, value, sensitive) in signed {
                let mut value = HeaderValue::from_str(&value)?;
                value.set_sensitive(sensitive || name == "authorization");
                headers.insert(name, value);
            }
            Ok(())
        })
    }

    fn refused<'a>(&'a self, refusal: &'a Refusal<'a>) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let error = AwsError::parse(refusal);
            if !matches!(
                error.kind(),
                AwsErrorKind::ExpiredToken | AwsErrorKind::UnknownCredentials
            ) {
                return false;
            }
            let Some(key) = refusal
                .sent_authorization
                .and_then(|v| v.to_str().ok())
                .and_then(access_key_of)
            else {
                return false;
            };
            let retry = self.credentials.refused(key).await;
            tracing::info!(source = %self.credentials.describe(),
                "AWS refused the credentials ({}); {}", error.code_or_status(),
                if retry { "retrying once with fresh ones" } else { "no fresh credentials to retry with" });
            retry
        })
    }

    fn explain(&self, refusal: &Refusal<'_>) -> Option<String> {
        let error = AwsError::parse(refusal);
        Some(format!(
            "AWS answered {}: {}{}",
            error.code_or_status(),
            error.kind().meaning(),
            error
                .message
                .as_deref()
                .map(|m| format!(" (\"{m}\")"))
                .unwrap_or_default()
        ))
    }
}

fn region_of(scope: &SigningScope) -> SigningRegion<'_> {
    match &scope.region_set {
        None => SigningRegion::Single(&scope.region),
        Some((set, _)) => SigningRegion::Set(set),
    }
}

/// `AKID` from `AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/svc/aws4_request, …`
/// (or SigV4a's `AWS4-ECDSA-P256-SHA256 Credential=AKID/20260101/svc/aws4_request, …`).
fn access_key_of(authorization: &str) -> Option<&str> {
    let (_, rest) = authorization.split_once("Credential=")?;
    rest.split('/').next().filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_from_authorization() {
        assert_eq!(
            access_key_of(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
            ),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(access_key_of("Bearer x"), None);
    }
}
