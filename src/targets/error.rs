//! Why a request to a target failed, in words every kind of target can use. Every message
//! names the target; `FailureKind::label` is what clients see in `error.data.kind`.

use std::fmt;

/// How much of an upstream body an error message quotes.
pub const ERROR_BODY_QUOTE: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer within the deadline.
    Timeout,
    /// The upstream cannot be reached: connection refused or reset, DNS or TLS failure, a
    /// process that cannot start or has exited.
    Unreachable,
    /// An HTTP-speaking upstream answered with a non-success status.
    HttpStatus(u16),
    /// The answer was not the message expected.
    BadResponse,
    /// The target's concurrency bound was full for the whole queue timeout.
    Overloaded,
    /// The upstream session is gone (HTTP 404 or a session error, a restarted process); the
    /// MCP client re-initializes and retries once.
    SessionExpired,
    /// The target refused a lifecycle or listing request (a JSON-RPC error to `initialize`
    /// or `tools/list`).
    Rejected,
    /// No outbound credentials could be obtained (AWS credential source, token endpoint).
    Credentials,
}

impl FailureKind {
    /// A short machine-readable label (used in JSON-RPC `error.data.kind` and status).
    pub fn label(&self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Unreachable => "unreachable",
            FailureKind::HttpStatus(_) => "http_status",
            FailureKind::BadResponse => "bad_response",
            FailureKind::Overloaded => "overloaded",
            FailureKind::SessionExpired => "session_expired",
            FailureKind::Rejected => "rejected",
            FailureKind::Credentials => "credentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub target: String,
    pub kind: FailureKind,
    pub detail: String,
}

impl TargetError {
    pub fn new(target: &str, kind: FailureKind, detail: impl Into<String>) -> Self {
        Self {
            target: target.to_string(),
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.kind {
            FailureKind::Timeout => "timed out".to_string(),
            FailureKind::Unreachable => "is unreachable".to_string(),
            FailureKind::HttpStatus(code) => format!("answered HTTP {code}"),
            FailureKind::BadResponse => "sent an invalid response".to_string(),
            FailureKind::Overloaded => "is at its concurrency limit".to_string(),
            FailureKind::SessionExpired => "lost its session".to_string(),
            FailureKind::Rejected => "rejected the request".to_string(),
            FailureKind::Credentials => "has no usable credentials".to_string(),
        };
        write!(
            f,
            "upstream target '{}' {what}: {}",
            self.target, self.detail
        )
    }
}

impl std::error::Error for TargetError {}

/// A short, printable excerpt of an upstream body for error messages (control characters
/// blanked, cut at [`ERROR_BODY_QUOTE`] bytes with an ellipsis).
pub fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_QUOTE)]);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > ERROR_BODY_QUOTE {
        format!("{}…", text.trim())
    } else {
        text.trim().to_string()
    }
}
