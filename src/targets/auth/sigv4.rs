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
//! [`sign_request`] here.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::{v4, v4a};
use aws_smithy_runtime_api::client::identity::Identity;
use http::HeaderValue;
use http::header::HOST;

use super::aws_credentials::{CachedCredentials, Source};
use super::sigv4_template::SigningTemplate;
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
    pub fn new(
        config: &Sigv4Config,
        url: &url::Url,
        _connect_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
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

/// The `Host` header value for a URL (the port only when it is not the scheme's default).
pub fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Signing choices beyond service, region and time.
#[derive(Debug, Clone, Copy)]
pub struct SignOptions {
    /// Normalize the path (RFC 3986 dot segments, duplicate slashes) in the canonical URI.
    /// Every service but S3 expects it.
    pub normalize_path: bool,
    /// Add and sign `x-amz-content-sha256` (the hex SHA-256 of the body).
    pub content_sha256_header: bool,
    /// Sign `x-amz-security-token` (every service but a few legacy ones expects it signed);
    /// when false it is added after signing.
    pub sign_session_token: bool,
}

impl SignOptions {
    /// What the sidecar uses for its outbound requests.
    pub const OUTBOUND: SignOptions = SignOptions {
        normalize_path: true,
        content_sha256_header: true,
        sign_session_token: true,
    };
}

/// A header a signature adds: (name, value, sensitive).
pub type SignedHeader = (&'static str, String, bool);

/// Where a signature is valid, which also picks the algorithm.
#[derive(Debug, Clone, Copy)]
pub enum SigningRegion<'a> {
    /// SigV4 (`AWS4-HMAC-SHA256`), scoped to one region.
    Single(&'a str),
    /// SigV4a (`AWS4-ECDSA-P256-SHA256`) over a comma-separated region set (`*` for all).
    Set(&'a str),
}

/// Signs one request: `headers` are the headers to sign besides those the signature adds
/// (`x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token`, and for SigV4a
/// `x-amz-region-set`), `url` is the URL as sent (already percent-encoded; its path is
/// encoded once more in the canonical request).
/// Returns the headers to add, `authorization` included.
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    identity: &Identity,
    service: &str,
    region: SigningRegion<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
    options: SignOptions,
) -> anyhow::Result<Vec<SignedHeader>> {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = if options.content_sha256_header {
        PayloadChecksumKind::XAmzSha256
    } else {
        PayloadChecksumKind::NoHeader
    };
    settings.uri_path_normalization_mode = if options.normalize_path {
        UriPathNormalizationMode::Enabled
    } else {
        UriPathNormalizationMode::Disabled
    };
    settings.session_token_mode = if options.sign_session_token {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    let params = match region {
        SigningRegion::Single(region) => v4::SigningParams::builder()
            .identity(identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(settings)
            .build()?
            .into(),
        SigningRegion::Set(region_set) => v4a::SigningParams::builder()
            .identity(identity)
            .region_set(region_set)
            .name(service)
            .time(time)
            .settings(settings)
            .build()?
            .into(),
    };
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string(), h.sensitive()))
        .collect())
}

/// `AKID` from `AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/svc/aws4_request, …`
/// (or SigV4a's `AWS4-ECDSA-P256-SHA256 Credential=AKID/20260101/svc/aws4_request, …`).
fn access_key_of(authorization: &str) -> Option<&str> {
    let (_, rest) = authorization.split_once("Credential=")?;
    rest.split('/').next().filter(|k| !k.is_empty())
}

/// What AWS said when it refused a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    /// `SignatureDoesNotMatch`, `ExpiredTokenException`, `AccessDeniedException`, …
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    SignatureMismatch,
    ClockSkew,
    ExpiredToken,
    UnknownCredentials,
    AccessDenied,
    NotSigned,
    Other,
}

impl AwsErrorKind {
    pub fn meaning(self) -> &'static str {
        match self {
            AwsErrorKind::SignatureMismatch => {
                "signature mismatch: the secret key, the signing service or region, or the request \
                 as received (a proxy rewriting the body or a signed header) differ from what was signed"
            }
            AwsErrorKind::ClockSkew => "request time outside AWS's window: check this host's clock",
            AwsErrorKind::ExpiredToken => "the credentials (session token) have expired",
            AwsErrorKind::UnknownCredentials => {
                "AWS does not recognize the access key or session token"
            }
            AwsErrorKind::AccessDenied => {
                "access denied: the credentials are valid, but IAM policy does not allow this call"
            }
            AwsErrorKind::NotSigned => "the request did not carry a SigV4 signature AWS accepts",
            AwsErrorKind::Other => "credentials rejected",
        }
    }
}

impl AwsError {
    /// Reads the error type from `x-amzn-ErrorType`, a JSON body (`__type`/`code`,
    /// `message`) or an XML body (`<Code>`, `<Message>`).
    pub fn parse(refusal: &Refusal<'_>) -> Self {
        let mut error = AwsError {
            status: refusal.status,
            ..Default::default()
        };
        if let Some(t) = refusal
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
        {
            error.code = Some(t.split(':').next().unwrap_or(t).to_string());
        }
        let text = String::from_utf8_lossy(refusal.body);
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text)
        {
            let get = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| map.get(*k).and_then(|v| v.as_str()))
                    .map(str::to_string)
            };
            if error.code.is_none() {
                error.code = get(&["__type", "code", "Code", "error"])
                    .map(|c| c.rsplit('#').next().unwrap_or(&c).to_string());
            }
            error.message = get(&["message", "Message", "error_description"]);
        } else if text.trim_start().starts_with('<') {
            let tag = |name: &str| {
                let open = format!("<{name}>");
                let start = text.find(&open)? + open.len();
                let end = text[start..].find(&format!("</{name}>"))? + start;
                Some(text[start..end].trim().to_string())
            };
            if error.code.is_none() {
                error.code = tag("Code");
            }
            error.message = tag("Message");
        } else if !text.trim().is_empty() {
            error.message = Some(text.trim().chars().take(300).collect());
        }
        error
    }

    pub fn kind(&self) -> AwsErrorKind {
        let code = self.code.as_deref().unwrap_or_default();
        let message = self
            .message
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let code_is = |names: &[&str]| names.iter().any(|n| code.eq_ignore_ascii_case(n));
        if code_is(&["RequestTimeTooSkewed", "RequestExpired"])
            || message.contains("signature expired")
            || message.contains("signature not yet current")
        {
            AwsErrorKind::ClockSkew
        } else if code_is(&[
            "ExpiredToken",
            "ExpiredTokenException",
            "TokenRefreshRequired",
        ]) || message.contains("token included in the request is expired")
        {
            AwsErrorKind::ExpiredToken
        } else if code_is(&["SignatureDoesNotMatch"])
            || message.contains("signature we calculated does not match")
        {
            AwsErrorKind::SignatureMismatch
        } else if code_is(&[
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "InvalidAccessKeyId",
        ]) || message.contains("security token included in the request is invalid")
        {
            AwsErrorKind::UnknownCredentials
        } else if code_is(&["AccessDenied", "AccessDeniedException"])
            || message.contains("not authorized to perform")
        {
            AwsErrorKind::AccessDenied
        } else if code_is(&[
            "MissingAuthenticationToken",
            "MissingAuthenticationTokenException",
            "IncompleteSignature",
            "IncompleteSignatureException",
            "InvalidSignatureException",
        ]) {
            AwsErrorKind::NotSigned
        } else {
            AwsErrorKind::Other
        }
    }

    pub fn code_or_status(&self) -> String {
        match &self.code {
            Some(code) => code.clone(),
            None => format!("HTTP {}", self.status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn parse(status: u16, headers: &[(&str, &str)], body: &str) -> AwsError {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        AwsError::parse(&Refusal {
            status,
            headers: &map,
            body: body.as_bytes(),
            sent_authorization: None,
        })
    }

    #[test]
    fn classifies_what_aws_answers() {
        let e = parse(
            403,
            &[(
                "x-amzn-ErrorType",
                "InvalidSignatureException:http://internal.amazon.com/coral/",
            )],
            r#"{"message":"The request signature we calculated does not match the signature you provided."}"#,
        );
        assert_eq!(e.code.as_deref(), Some("InvalidSignatureException"));
        assert_eq!(e.kind(), AwsErrorKind::SignatureMismatch);

        let e = parse(
            403,
            &[],
            r#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#,
        );
        assert_eq!(e.code.as_deref(), Some("ExpiredTokenException"));
        assert_eq!(e.kind(), AwsErrorKind::ExpiredToken);

        let e = parse(
            403,
            &[],
            "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User is not authorized to perform: x</Message></Error></ErrorResponse>",
        );
        assert_eq!(e.kind(), AwsErrorKind::AccessDenied);
        assert_eq!(
            e.message.as_deref(),
            Some("User is not authorized to perform: x")
        );

        let e = parse(
            403,
            &[],
            r#"{"message":"Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z"}"#,
        );
        assert_eq!(e.kind(), AwsErrorKind::ClockSkew);

        let e = parse(
            403,
            &[("x-amzn-errortype", "UnrecognizedClientException")],
            r#"{"message":"The security token included in the request is invalid."}"#,
        );
        assert_eq!(e.kind(), AwsErrorKind::UnknownCredentials);
        assert_eq!(parse(403, &[], "").kind(), AwsErrorKind::Other);
        assert_eq!(parse(403, &[], "").code_or_status(), "HTTP 403");
    }

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

    #[test]
    fn host_header_omits_default_ports() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            host_header(&u("https://aws-mcp.us-east-1.api.aws/mcp")),
            "aws-mcp.us-east-1.api.aws"
        );
        assert_eq!(host_header(&u("https://h:443/mcp")), "h");
        assert_eq!(
            host_header(&u("http://127.0.0.1:8080/mcp")),
            "127.0.0.1:8080"
        );
        assert_eq!(host_header(&u("http://[::1]:9/mcp")), "[::1]:9");
    }

    #[test]
    fn signs_the_minimal_header_set() {
        use aws_credential_types::Credentials;
        let identity: Identity = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "t",
        )
        .into();
        let url = "https://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2Fmcp-x/invocations?qualifier=DEFAULT";
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
        let host = "bedrock-agentcore.us-west-2.amazonaws.com";
        let sign = |url: &str| {
            sign_request(
                &identity,
                "bedrock-agentcore",
                SigningRegion::Single("us-west-2"),
                "POST",
                url,
                &[("host", host)],
                b"{}",
                time,
                SignOptions::OUTBOUND,
            )
            .unwrap()
            .into_iter()
            .find(|h| h.0 == "authorization")
            .unwrap()
            .1
        };
        // The canonical URI keeps `%3A` as `%253A` (checked against botocore in
        // tests/peers/test_sigv4.py and by the `double-encode-path` vector); here: the
        // minimal signed header set, and no session token header without a token.
        let auth = sign(url);
        assert!(
            auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"),
            "{auth}"
        );
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-west-2/bedrock-agentcore/aws4_request"), "{auth}");
    }
}
