//! The floor: a minimal HTTP/1.1 pass-through reverse proxy on hyper, for `bench/proxy.rs`.
//!
//! What any proxy in front of an MCP server must do at the least, and nothing more: accept
//! keep-alive connections, send each request to the upstream over a pool of keep-alive
//! connections (hyper-util's client, the one reqwest is built on; Nagle off on both sides),
//! and stream the request and response bodies through unchanged. Method, path, headers
//! (`Host` included) and bodies are forwarded as they arrive; only the connection-level
//! framing is hyper's. No parsing of the body, no limits, no metrics, no logging: its CPU
//! per call is what the kernel, tokio and hyper cost on this machine, the practical floor
//! the sidecar is compared with.
//!
//! It runs as its own process (so its CPU is read from `/proc` like the sidecar's): the
//! bench binary re-executes itself as `floor-proxy --upstream URL --listen ADDR`, and the
//! proxy prints `listening http://ADDR/mcp` like the sidecar does.

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// `floor-proxy --upstream http://HOST:PORT[/…] --listen ADDR`: serves until killed.
pub fn main(args: &[String]) {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("floor-proxy needs {name}"))
            .clone()
    };
    let upstream: Uri = arg("--upstream").parse().expect("--upstream is a URL");
    let authority = upstream
        .authority()
        .expect("--upstream has a host and port")
        .clone();
    let listen: SocketAddr = arg("--listen").parse().expect("--listen is HOST:PORT");
    // The sidecar's runtime: one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.expect("bind");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector);
        println!("listening http://{}/mcp", listener.local_addr().unwrap());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, authority) = (client.clone(), authority.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    forward(client.clone(), authority.clone(), request)
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    authority: http::uri::Authority,
    request: Request<Incoming>,
) -> Result<Response<http_body_util::Either<Incoming, String>>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .expect("a valid URI");
    Ok(
        match client.request(Request::from_parts(parts, body)).await {
            Ok(response) => response.map(http_body_util::Either::Left),
            Err(e) => Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(http_body_util::Either::Right(format!("floor proxy: {e}\n")))
                .expect("a valid response"),
        },
    )
}
