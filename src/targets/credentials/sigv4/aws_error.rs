//! What AWS said when it refused a request (401/403), read from its headers and body, and
//! what that means for whoever has to fix it.

use super::super::Refusal;

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
}
