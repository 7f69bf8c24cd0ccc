//! aws-sigv4's general request signer, and the types every signing path shares.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::{v4, v4a};
use aws_smithy_runtime_api::client::identity::Identity;

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

#[cfg(test)]
mod tests {
    use super::*;

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
