//! The direct client's upstream connections ([`super::client`]): idle HTTP/1.1 connections
//! kept per origin, the most recently used taken first.
//!
//! Written here rather than using hyper-util's pooled `Client`: its per-request work (the
//! pool key hashed with SipHash three times, the checkout raced against a connect, the Host
//! header rebuilt through `format!`) cost about 5,000 instructions per relayed call in
//! issue 15's callgrind profile, a twentieth of the sidecar's. A target talks to one origin
//! (an API target to a few), so a short list and a stack of idle connections serve. What
//! hyper-util does that matters is kept:
//! - a connection is reused only once its previous answer was read whole;
//! - a request that a reused connection dropped before sending any of it (the server closed
//!   the idle connection meanwhile) is sent again on another, then on a fresh one;
//! - idle connections are not reused after `idle_timeout`;
//! - the request goes out in origin form with a Host header (default ports left out).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Sender = http1::SendRequest<reqwest::Body>;

/// At most this many idle connections are kept per origin; more are closed when returned.
const MAX_IDLE_PER_ORIGIN: usize = 256;
/// Origins remembered per pool (a target has one, an API target a few).
const MAX_ORIGINS: usize = 64;

pub struct Pool {
    connector: Connector,
    idle_timeout: Duration,
    origins: Mutex<Vec<Origin>>,
}

struct Origin {
    scheme: Scheme,
    authority: Authority,
    /// The Host header its requests carry.
    host: HeaderValue,
    /// Oldest first; taken from the end.
    idle: Vec<(Sender, Instant)>,
}

/// A connection in use. Returned to the pool with [`Lease::release`] once its answer has
/// been read whole; dropped otherwise, which closes it.
pub struct Lease {
    pool: Arc<Pool>,
    origin: (Scheme, Authority),
    sender: Sender,
}

impl Lease {
    pub fn release(self) {
        self.pool.put(self.origin, self.sender);
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum PoolError {
    /// The URI names no origin to connect to.
    NotAbsolute,
    Connect(Box<dyn std::error::Error + Send + Sync>),
    Handshake(hyper::Error),
    Send(hyper::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolError::NotAbsolute => "the request URI names no host",
            PoolError::Connect(_) => "cannot connect",
            PoolError::Handshake(_) => "the connection failed as it opened",
            PoolError::Send(_) => "the request failed",
        })
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::NotAbsolute => None,
            PoolError::Connect(e) => Some(e.as_ref()),
            PoolError::Handshake(e) | PoolError::Send(e) => Some(e),
        }
    }
}

impl Pool {
    pub fn new(connector: Connector, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            connector,
            idle_timeout,
            origins: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` (absolute URI) on an idle connection to its origin, or a new one.
    /// The lease comes back with the answer's head; the body is still being read.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<reqwest::Body>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        let uri = request.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(PoolError::NotAbsolute);
        };
        let origin = (scheme.clone(), authority.clone());
        let (host, newest) = self.at_origin(&origin, &uri, |o| (o.host.clone(), o.idle.pop()));
        if !request.headers().contains_key(HOST) {
            request.headers_mut().insert(HOST, host);
        }
        *request.uri_mut() = origin_form(&uri);
        let mut idle = self.usable(&origin, newest).await;
        loop {
            let (mut sender, reused) = match idle {
                Some(sender) => (sender, true),
                // Boxed: a cold path whose large future would otherwise be part of (and
                // copied with) every request's, the search embedder's included.
                None => (Box::pin(self.connect(&uri)).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        pool: self.clone(),
                        origin,
                        sender,
                    };
                    return Ok((response, lease));
                }
                Err(mut failed) => match failed.take_message() {
                    // Nothing was sent: the idle connection had been closed meanwhile.
                    Some(unsent) if reused => {
                        request = unsent;
                        let next = self.at_origin(&origin, &uri, |o| o.idle.pop());
                        idle = self.usable(&origin, next).await;
                    }
                    _ => return Err(PoolError::Send(failed.into_error())),
                },
            }
        }
    }

    /// Runs `f` on `origin`'s entry, made on first use (with `uri`'s Host header).
    fn at_origin<R>(
        &self,
        (scheme, authority): &(Scheme, Authority),
        uri: &Uri,
        f: impl FnOnce(&mut Origin) -> R,
    ) -> R {
        let mut origins = self.origins.lock().expect("pool lock");
        let at = match origins
            .iter()
            .position(|o| o.scheme == *scheme && o.authority == *authority)
        {
            Some(at) => at,
            None => {
                if origins.len() >= MAX_ORIGINS {
                    // The oldest entry goes, with its idle connections.
                    origins.remove(0);
                }
                origins.push(Origin {
                    scheme: scheme.clone(),
                    authority: authority.clone(),
                    host: host_header(uri),
                    idle: Vec::new(),
                });
                origins.len() - 1
            }
        };
        f(&mut origins[at])
    }

    /// The first still open of `newest` and the idle connections under it.
    async fn usable(
        &self,
        origin: &(Scheme, Authority),
        mut newest: Option<(Sender, Instant)>,
    ) -> Option<Sender> {
        while let Some((mut sender, since)) = newest {
            if since.elapsed() > self.idle_timeout {
                // The rest of the stack is older still.
                self.drop_idle(origin);
                return None;
            }
            // Returned after its answer was read: ready at once, or as soon as the
            // connection's task has seen that answer end.
            if !sender.is_closed() && (sender.is_ready() || sender.ready().await.is_ok()) {
                return Some(sender);
            }
            newest = self.with_known(origin, |o| o.idle.pop()).flatten();
        }
        None
    }

    /// Runs `f` on `origin`'s entry, if there is one.
    fn with_known<R>(
        &self,
        (scheme, authority): &(Scheme, Authority),
        f: impl FnOnce(&mut Origin) -> R,
    ) -> Option<R> {
        let mut origins = self.origins.lock().expect("pool lock");
        origins
            .iter_mut()
            .find(|o| o.scheme == *scheme && o.authority == *authority)
            .map(f)
    }

    /// Closes every idle connection to `origin` (the newest outlived the idle timeout).
    fn drop_idle(&self, origin: &(Scheme, Authority)) {
        self.with_known(origin, |o| o.idle.clear());
    }

    async fn connect(&self, uri: &Uri) -> Result<Sender, PoolError> {
        let io = self
            .connector
            .clone()
            .oneshot(uri.clone())
            .await
            .map_err(PoolError::Connect)?;
        let (sender, connection) = http1::handshake(io).await.map_err(PoolError::Handshake)?;
        // Ends when the connection closes, or once its sender is dropped and idle.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream connection closed: {e}");
            }
        });
        Ok(sender)
    }

    fn put(&self, origin: (Scheme, Authority), sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let idle_timeout = self.idle_timeout;
        self.with_known(&origin, |o| {
            let now = Instant::now();
            // Connections left below the ones in use expire here (oldest first).
            let expired = o
                .idle
                .iter()
                .take_while(|(_, since)| now.duration_since(*since) > idle_timeout)
                .count();
            o.idle.drain(..expired);
            if o.idle.len() < MAX_IDLE_PER_ORIGIN {
                o.idle.push((sender, now));
            }
        });
    }
}

/// The Host header for `uri`: its host, and its port unless the scheme's default.
fn host_header(uri: &Uri) -> HeaderValue {
    let host = uri.host().unwrap_or_default();
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => HeaderValue::from_str(&format!("{host}:{port}")),
        _ => HeaderValue::from_str(host),
    };
    value.unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `uri`'s path and query alone, as an HTTP/1.1 request line carries them.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(path.clone());
            Uri::from_parts(parts).expect("a path and query make a URI")
        }
        _ => Uri::from_static("/"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A plain HTTP/1.1 server on 127.0.0.1 that answers every request `ok` and counts the
    /// connections it accepts; with `close_idle`, it closes a connection that long after
    /// each answer (as servers with a short keep-alive timeout do).
    async fn upstream(close_idle: Option<Duration>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.clear();
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        if let Some(after) = close_idle {
                            tokio::time::sleep(after).await;
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn pool() -> Arc<Pool> {
        pool_with_idle_timeout(Duration::from_secs(90))
    }

    fn pool_with_idle_timeout(idle_timeout: Duration) -> Arc<Pool> {
        Pool::new(
            crate::tls::https_connector(Duration::from_secs(2)),
            idle_timeout,
        )
    }

    fn get(url: &str) -> Request<reqwest::Body> {
        Request::get(url).body(reqwest::Body::from("")).unwrap()
    }

    /// Sends a GET and reads the answer whole; returns the body and the lease.
    async fn fetch(pool: &Arc<Pool>, url: &str) -> (Vec<u8>, Lease) {
        let (response, lease) = pool.send(get(url)).await.expect("an answer");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (body.to_vec(), lease)
    }

    #[tokio::test]
    async fn a_connection_read_whole_is_reused() {
        let (url, accepted) = upstream(None).await;
        let pool = pool();
        for _ in 0..3 {
            let (body, lease) = fetch(&pool, &url).await;
            assert_eq!(body, b"ok");
            lease.release();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_not_returned_is_not_reused() {
        let (url, accepted) = upstream(None).await;
        let pool = pool();
        let (_, lease) = fetch(&pool, &url).await;
        drop(lease);
        let (body, lease) = fetch(&pool, &url).await;
        assert_eq!(body, b"ok");
        lease.release();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced() {
        let (url, accepted) = upstream(Some(Duration::from_millis(20))).await;
        let pool = pool();
        for _ in 0..3 {
            let (body, lease) = fetch(&pool, &url).await;
            assert_eq!(body, b"ok");
            lease.release();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let (url, accepted) = upstream(None).await;
        let pool = pool_with_idle_timeout(Duration::from_millis(50));
        let (_, lease) = fetch(&pool, &url).await;
        lease.release();
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (body, lease) = fetch(&pool, &url).await;
        assert_eq!(body, b"ok");
        lease.release();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn answers_read_through_the_client_free_their_connection() {
        let (url, accepted) = upstream(None).await;
        let client = super::super::UpstreamClient::new(Duration::from_secs(2)).unwrap();
        for _ in 0..3 {
            let request = reqwest::Request::new(http::Method::GET, url.parse().unwrap());
            let mut response = client.execute(request).await.unwrap();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.unwrap() {
                body.extend_from_slice(&chunk);
            }
            assert_eq!(body, b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        drop(listener);
        let error = pool().send(get(&url)).await.err().expect("refused");
        assert!(matches!(error, PoolError::Connect(_)), "{error:?}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(!cause.is_empty());
    }

    #[test]
    fn host_headers_leave_default_ports_out() {
        let host = |u: &str| host_header(&u.parse().unwrap());
        assert_eq!(host("http://127.0.0.1:8080/mcp"), "127.0.0.1:8080");
        assert_eq!(host("http://h.example:80/mcp"), "h.example");
        assert_eq!(host("https://h.example:443/mcp"), "h.example");
        assert_eq!(host("https://h.example:80/mcp"), "h.example:80");
        assert_eq!(host("https://h.example/mcp"), "h.example");
    }

    #[test]
    fn requests_go_out_in_origin_form() {
        let form = |u: &str| origin_form(&u.parse().unwrap()).to_string();
        assert_eq!(form("http://h.example:9/mcp?key=1"), "/mcp?key=1");
        assert_eq!(form("http://h.example:9/"), "/");
        assert_eq!(form("http://h.example:9"), "/");
    }
}
