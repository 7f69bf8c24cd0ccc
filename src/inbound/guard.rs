//! Host and Origin checks on the MCP endpoint, against DNS rebinding.
//!
//! A browser tricked into calling a loopback sidecar sends a foreign `Host` (the attacker's
//! name) or a foreign `Origin`. Loopback names are always accepted; anything else must be
//! listed in `inbound.allowed_hosts` / `inbound.allowed_origins` (`"*"` accepts any, for a
//! load balancer or AgentCore Runtime, whose Host names are not known in advance).

use http::HeaderMap;
use http::header::{HOST, ORIGIN};

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

pub struct HostGuard {
    any_host: bool,
    hosts: Vec<String>,
    any_origin: bool,
    origins: Vec<String>,
}

impl HostGuard {
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let norm = |v: &[String]| {
            v.iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        Self {
            any_host: allowed_hosts.iter().any(|h| h == "*"),
            hosts: norm(allowed_hosts),
            any_origin: allowed_origins.iter().any(|o| o == "*"),
            origins: norm(allowed_origins),
        }
    }

    /// `Err` carries the reason, for a 403.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        if !self.any_host {
            let host = headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .ok_or("missing Host header")?;
            // Lowercased only when it has to be (a copy per request otherwise).
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(host.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(host)
            };
            if !self.host_allowed(&host) {
                return Err(format!(
                    "Host `{host}` is not allowed (see inbound.allowed_hosts)"
                ));
            }
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin
                .to_str()
                .map_err(|_| "Origin header is not valid text")?
                .to_ascii_lowercase();
            if !self.any_origin && !self.origin_allowed(&origin) {
                return Err(format!(
                    "Origin `{origin}` is not allowed (see inbound.allowed_origins)"
                ));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let name = host_name(authority);
        LOOPBACK_HOSTS.contains(&name) || self.hosts.iter().any(|h| h == authority || h == name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https") && LOOPBACK_HOSTS.contains(&host_name(authority))
    }
}

/// The host part of `host[:port]` or `[v6][:port]`.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            authority
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(HOST, v.parse().unwrap());
        }
        if let Some(v) = origin {
            h.insert(ORIGIN, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn loopback_is_allowed_by_default_and_foreign_names_are_not() {
        let g = HostGuard::new(&[], &[]);
        for host in ["localhost:8080", "127.0.0.1:1", "[::1]:80", "LOCALHOST"] {
            assert!(g.check(&headers(Some(host), None)).is_ok(), "{host}");
        }
        assert!(g.check(&headers(Some("evil.example"), None)).is_err());
        assert!(
            g.check(&headers(Some("127.0.0.1.evil.example:80"), None))
                .is_err()
        );
        assert!(g.check(&headers(None, None)).is_err());
        assert!(
            g.check(&headers(Some("localhost"), Some("http://localhost:3000")))
                .is_ok()
        );
        assert!(
            g.check(&headers(Some("localhost"), Some("https://evil.example")))
                .is_err()
        );
    }

    #[test]
    fn configured_and_wildcard_entries() {
        let g = HostGuard::new(
            &["sidecar.internal".into()],
            &["https://app.example".into()],
        );
        assert!(
            g.check(&headers(Some("sidecar.internal:8000"), None))
                .is_ok()
        );
        assert!(
            g.check(&headers(
                Some("sidecar.internal"),
                Some("https://app.example")
            ))
            .is_ok()
        );
        let any = HostGuard::new(&["*".into()], &[]);
        assert!(any.check(&headers(Some("anything.example"), None)).is_ok());
        assert!(
            any.check(&headers(Some("x"), Some("https://evil.example")))
                .is_err()
        );
    }
}
