//! Reading an API definition: a file (read at every sync, so edits are picked up) or an
//! `http(s)://` URL (fetched without the target's credentials), JSON or YAML, at most
//! `max_message_bytes`. Every error names the source.
//!
//! YAML goes through serde_norway (the maintained fork of serde_yaml) straight into a
//! `serde_json::Value`, so both formats give the same tree; anchors and aliases are expanded
//! by the parser, which bounds their expansion.

use std::fmt;
use std::path::PathBuf;

use crate::targets::FailureKind;
use crate::targets::http::printable_url;

#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Url(url::Url),
}

impl Source {
    /// A file path, or a URL when `location` is an `http(s)://` URL.
    pub fn parse(location: &str) -> Source {
        match url::Url::parse(location) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Source::Url(url),
            _ => Source::File(PathBuf::from(location)),
        }
    }

    /// The URL relative references in the definition resolve against (none for a file).
    pub fn url(&self) -> Option<&url::Url> {
        match self {
            Source::Url(url) => Some(url),
            Source::File(_) => None,
        }
    }

    /// Reads and parses the definition.
    pub async fn read(
        &self,
        client: &reqwest::Client,
        limit: usize,
    ) -> Result<serde_json::Value, (FailureKind, String)> {
        let bytes = match self {
            Source::File(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| (FailureKind::Unreachable, format!("{self}: {e}")))?;
                if meta.len() > limit as u64 {
                    return Err((
                        FailureKind::BadResponse,
                        format!("{self}: larger than max_message_bytes ({limit})"),
                    ));
                }
                tokio::fs::read(path)
                    .await
                    .map_err(|e| (FailureKind::Unreachable, format!("{self}: {e}")))?
            }
            Source::Url(url) => fetch(client, url, limit)
                .await
                .map_err(|(k, e)| (k, format!("{self}: {e}")))?,
        };
        parse(&bytes).map_err(|e| (FailureKind::BadResponse, format!("{self}: {e}")))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Url(url) => f.write_str(&printable_url(url)),
        }
    }
}

async fn fetch(
    client: &reqwest::Client,
    url: &url::Url,
    limit: usize,
) -> Result<Vec<u8>, (FailureKind, String)> {
    let failed = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            FailureKind::Timeout
        } else {
            FailureKind::Unreachable
        };
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        (kind, format!("{}{cause}", e.without_url()))
    };
    let mut response = client
        .get(url.clone())
        .header(
            http::header::ACCEPT,
            "application/json, application/yaml;q=0.9, */*;q=0.5",
        )
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > limit {
            return Err((
                FailureKind::BadResponse,
                format!("larger than max_message_bytes ({limit})"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err((
            FailureKind::HttpStatus(status.as_u16()),
            format!("answered {status}: {}", crate::targets::error::quote(&body)),
        ));
    }
    Ok(body)
}

/// JSON when the text starts with `{` (after whitespace and a byte-order mark), else YAML.
pub fn parse(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_give_the_same_tree() {
        let json = parse(br#"{"openapi": "3.0.0", "paths": {"/a": {"get": {"responses": {"200": {"description": "ok"}}}}}}"#).unwrap();
        let yaml = parse(
            b"\xef\xbb\xbfopenapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        200:\n          description: ok\n",
        )
        .unwrap();
        assert_eq!(json, yaml, "unquoted status codes become string keys");
        assert!(parse(b"{nope").unwrap_err().contains("invalid JSON"));
        assert!(parse(b"a: [1,\n").unwrap_err().contains("invalid YAML"));
    }

    #[test]
    fn locations_are_files_or_urls() {
        assert!(matches!(Source::parse("specs/a.yaml"), Source::File(_)));
        assert!(matches!(
            Source::parse("http://127.0.0.1:1/openapi.json"),
            Source::Url(_)
        ));
        let s = Source::parse("https://u:p@h.example/o.json?key=secret");
        assert_eq!(s.to_string(), "https://h.example/o.json");
    }
}
