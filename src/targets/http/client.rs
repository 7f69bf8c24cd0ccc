//! The HTTP client under every target's requests ([`UpstreamClient`]).
//!
//! Requests go straight to the target on hyper's HTTP/1.1 connections, kept alive in
//! [`super::pool`]. reqwest runs each request through a redirect policy, a retry layer and
//! proxy matching, and parses its URL twice: about 25,000 instructions per call, more than
//! the relay's own work (issue 15's callgrind profile). reqwest stays what kinds
//! build requests with (`RequestBuilder`: queries, JSON bodies) and what credential
//! providers sign, and it carries the requests when the environment names an HTTP proxy
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, with `NO_PROXY`): it implements proxying
//! (CONNECT tunnels), the direct client does not.
//!
//! Neither path follows redirects: a redirect would carry a signed request or an API key to
//! wherever its `Location` points, while a target's URL is configuration. A 3xx answer is
//! returned like any other, and errors say where it points ([`redirect_hint`]).

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, LOCATION, USER_AGENT};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;

use super::pool::{Lease, Pool};
use crate::protocol::header_values as values;
use crate::targets::FailureKind;

/// Idle upstream connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);

pub struct UpstreamClient {
    /// Builds requests; sends them when a proxy is configured.
    reqwest: reqwest::Client,
    /// `None` when the environment configures a proxy.
    direct: Option<std::sync::Arc<Pool>>,
    /// The URL last sent, as a `Uri`: a target sends to one URL (an API target to a few),
    /// and parsing it for every request cost about 1,500 instructions.
    last_uri: std::sync::Mutex<Option<(reqwest::Url, http::Uri)>>,
}

/// A request that got no answer: why, in words that name the endpoint (never its query).
#[derive(Debug)]
pub struct SendError {
    pub kind: FailureKind,
    pub message: String,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration) -> anyhow::Result<Self> {
        let reqwest = crate::tls::client_builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(crate::USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let direct = (!proxy_configured())
            .then(|| Pool::new(crate::tls::https_connector(connect_timeout), POOL_IDLE));
        Ok(Self {
            reqwest,
            direct,
            last_uri: Default::default(),
        })
    }

    /// The reqwest client to build requests with (`client.post(url)…build()`).
    pub fn builder(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// Sends `request` as it is (no retries, no redirects).
    pub async fn execute(&self, request: reqwest::Request) -> Result<HttpResponse, SendError> {
        let Some(direct) = &self.direct else {
            return match self.reqwest.execute(request).await {
                Ok(response) => {
                    let (head, body) = http::Response::<reqwest::Body>::from(response).into_parts();
                    Ok(HttpResponse {
                        head,
                        body: Body::Proxied(body),
                        lease: None,
                    })
                }
                Err(e) => {
                    let endpoint = e.url().map(super::printable_url).unwrap_or_default();
                    Err(send_error(&endpoint, &e.without_url()))
                }
            };
        };
        let mut request = self.to_http(request)?;
        // What reqwest adds to every request.
        let headers = request.headers_mut();
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, values::USER_AGENT.clone());
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, values::ANY.clone());
        }
        let uri = request.uri().clone();
        match direct.send(request).await {
            Ok((response, lease)) => {
                let (head, body) = response.into_parts();
                let mut response = HttpResponse {
                    head,
                    body: Body::Direct(body),
                    lease: Some(lease),
                };
                // An answer without a body (202 to a notification) frees its connection now.
                response.release_if_read();
                Ok(response)
            }
            Err(e) => Err(send_error(&printable_uri(&uri), &e)),
        }
    }

    /// `request` as hyper sends it (what reqwest's own conversion does, with the `Uri` of a
    /// URL sent before reused).
    fn to_http(
        &self,
        mut request: reqwest::Request,
    ) -> Result<http::Request<reqwest::Body>, SendError> {
        let uri = {
            let mut last = self.last_uri.lock().expect("uri lock");
            match &*last {
                Some((url, uri)) if url == request.url() => uri.clone(),
                _ => {
                    let uri =
                        http::Uri::try_from(request.url().as_str()).map_err(|e| SendError {
                            kind: FailureKind::Unreachable,
                            message: format!("cannot build the request: {e}"),
                        })?;
                    *last = Some((request.url().clone(), uri.clone()));
                    uri
                }
            }
        };
        let body = (request.body_mut().take()).unwrap_or_else(|| Bytes::new().into());
        let mut out = http::Request::new(body);
        *out.method_mut() = request.method().clone();
        *out.uri_mut() = uri;
        *out.version_mut() = request.version();
        *out.headers_mut() = std::mem::take(request.headers_mut());
        Ok(out)
    }
}

/// Whether the environment routes requests through an HTTP proxy (reqwest's variables).
fn proxy_configured() -> bool {
    ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"]
        .iter()
        .any(|name| {
            [name.to_string(), name.to_ascii_lowercase()]
                .iter()
                .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
        })
}

fn send_error(endpoint: &str, e: &(dyn std::error::Error + 'static)) -> SendError {
    let kind = if timed_out(e) {
        FailureKind::Timeout
    } else {
        FailureKind::Unreachable
    };
    SendError {
        kind,
        message: format!("{endpoint} {e}{}", causes(e)),
    }
}

/// Whether a connect (or read) timed out, anywhere down the error's chain.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `e`'s causes, outermost first (": a: b"): the clients' own messages stop at "client
/// error (Connect)", while the reason (connection refused, an untrusted certificate, DNS)
/// is further down the chain.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// A URI fit for messages: no query (it may carry keys), no userinfo.
fn printable_uri(uri: &http::Uri) -> String {
    let authority = uri.authority().map_or("", |a| {
        let a = a.as_str();
        a.rsplit_once('@').map_or(a, |(_, host)| host)
    });
    format!(
        "{}://{authority}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.path()
    )
}

/// An answer whose head has arrived; the body is read with [`HttpResponse::chunk`].
pub struct HttpResponse {
    head: http::response::Parts,
    body: Body,
    /// The pooled connection the answer arrives on, returned once the body has been read
    /// whole (an answer dropped half-read closes it).
    lease: Option<Lease>,
}

enum Body {
    Direct(hyper::body::Incoming),
    Proxied(reqwest::Body),
}

impl Drop for HttpResponse {
    fn drop(&mut self) {
        // Its last data read but not its end (a reader that stopped at a limit, say).
        self.release_if_read();
    }
}

/// The body of an answer broke off (connection lost, malformed chunking).
#[derive(Debug)]
pub struct BodyError(String);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl BodyError {
    fn new(e: &dyn std::error::Error) -> Self {
        Self(format!("{e}{}", causes(e)))
    }
}

impl HttpResponse {
    pub fn status(&self) -> StatusCode {
        self.head.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// Returns the connection to the pool when nothing of the answer is left to read.
    fn release_if_read(&mut self) {
        if let Body::Direct(body) = &self.body
            && body.is_end_stream()
        {
            self.release();
        }
    }

    /// Returns the connection to the pool (once).
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            let frame = match &mut self.body {
                Body::Direct(body) => body
                    .frame()
                    .await
                    .map(|f| f.map_err(|e| BodyError::new(&e))),
                Body::Proxied(body) => body
                    .frame()
                    .await
                    .map(|f| f.map_err(|e| BodyError::new(&e))),
            };
            match frame {
                None => {
                    // Read whole: the connection can carry another request.
                    self.release();
                    return Ok(None);
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// For a redirect, where it points (redirects are not followed, see the module docs).
pub fn redirect_hint(status: StatusCode, headers: &HeaderMap) -> Option<String> {
    if !status.is_redirection() {
        return None;
    }
    Some(match headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        Some(location) => format!(
            " (redirects are not followed; it points to {}: set the target's url to that)",
            location.split('?').next().unwrap_or(location)
        ),
        None => " (a redirect without a Location; redirects are not followed)".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn printable_uris_drop_query_and_userinfo() {
        let uri: http::Uri = "https://user:pw@h.example:8443/mcp?key=secret"
            .parse()
            .unwrap();
        assert_eq!(printable_uri(&uri), "https://h.example:8443/mcp");
        let uri: http::Uri = "http://127.0.0.1:9/".parse().unwrap();
        assert_eq!(printable_uri(&uri), "http://127.0.0.1:9/");
    }

    #[test]
    fn requests_keep_their_own_url_when_the_last_one_is_reused() {
        let client = UpstreamClient::new(Duration::from_secs(1)).unwrap();
        let request = |url: &str| {
            let mut request = reqwest::Request::new(http::Method::POST, url.parse().unwrap());
            request
                .headers_mut()
                .insert(ACCEPT, HeaderValue::from_static("application/json"));
            *request.body_mut() = Some(Bytes::from_static(b"{}").into());
            request
        };
        for url in [
            "http://127.0.0.1:9/mcp",
            "http://127.0.0.1:9/mcp",
            "http://127.0.0.1:9/other?q=1",
            "http://127.0.0.1:9/mcp",
        ] {
            let converted = client.to_http(request(url)).unwrap();
            assert_eq!(converted.uri(), url);
            assert_eq!(converted.method(), http::Method::POST);
            assert_eq!(converted.headers()[ACCEPT], "application/json");
            assert_eq!(
                hyper::body::Body::size_hint(converted.body()).exact(),
                Some(2)
            );
        }
    }

    #[test]
    fn redirects_name_their_location_without_its_query() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://new.example/mcp?t=1"),
        );
        let hint = redirect_hint(StatusCode::PERMANENT_REDIRECT, &headers).unwrap();
        assert!(hint.contains("https://new.example/mcp:"), "{hint}");
        assert!(!hint.contains("t=1"));
        assert_eq!(redirect_hint(StatusCode::OK, &headers), None);
    }
}
