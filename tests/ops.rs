//! Operations in-process, with raw TCP clients where a well-behaved client would not show
//! the problem: half requests cut by the header and body timeouts, the connection and
//! in-flight limits answering 503 fast, the shutdown drain, and config reloads.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use mcp_sidecar::live::Reloaded;
use serde_json::{Value, json};

async fn start(config_toml: &str) -> mcp_sidecar::Running {
    let config = mcp_sidecar::config::Config::parse(config_toml, &|_| None).expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    mcp_sidecar::start(&config, listener).await.unwrap()
}

/// Sends `data` on a new connection and reads until the server closes it or `limit`
/// passes. Returns what was read and how long the server took to close (None: still open).
fn exchange(
    addr: std::net::SocketAddr,
    data: &[u8],
    limit: Duration,
) -> (String, Option<Duration>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(data).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                return (
                    String::from_utf8_lossy(&got).into(),
                    Some(started.elapsed()),
                );
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (
                    String::from_utf8_lossy(&got).into(),
                    Some(started.elapsed()),
                );
            }
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn slow_call(url: &str, tool: &str, ms: u64) -> tokio::task::JoinHandle<(u16, Value)> {
    let (url, tool) = (url.to_string(), tool.to_string());
    tokio::spawn(async move {
        post(
            &url,
            &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                    "params": {"name": tool, "arguments": {"text": "slow", "ms": ms}}}),
        )
        .await
    })
}

const HARDENED: &str = "[inbound]\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 300\nmax_connections = 3\nmax_in_flight = 1\nretry_after_secs = 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_requests_are_cut_by_the_header_and_body_timeouts() {
    let up = upstream("alpha", 1, false).await;
    let running = start(&format!("{HARDENED}{}", target_toml("alpha", &up.url, ""))).await;
    let addr = running.local_addr;
    let limit = Duration::from_secs(5);

    // Headers started but never finished: dropped once the header timeout passes.
    let (_, closed) =
        blocking(move || exchange(addr, b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n", limit)).await;
    let closed = closed.expect("a half-sent head must not hold the connection");
    assert!(
        closed >= Duration::from_millis(250) && closed < Duration::from_secs(2),
        "{closed:?}"
    );

    // A connection that sends nothing at all: the same.
    let (_, closed) = blocking(move || exchange(addr, b"", limit)).await;
    assert!(closed.expect("silent connection closed") < Duration::from_secs(2));

    // A whole head and half a body: 408 with a JSON-RPC error once the body timeout passes.
    let half_body = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"";
    let (answer, closed) = blocking(move || exchange(addr, half_body, limit)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout_ms"), "{answer}");
    assert!(closed.expect("closed after the 408") < Duration::from_secs(2));

    // A complete request on the same kind of connection still works.
    let reply = call_tool(&running.url, "alpha___tool_000", json!({"text": "hi"})).await;
    assert_eq!(
        reply["result"]["content"][0]["text"], "alpha:tool_000:hi",
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limits_callers_get_a_fast_503_with_retry_after() {
    let up = upstream("alpha", 1, false).await;
    let config = HARDENED.replace(
        "header_read_timeout_ms = 300",
        "header_read_timeout_ms = 5000",
    );
    let running = start(&format!("{config}{}", target_toml("alpha", &up.url, ""))).await;
    let base = format!("http://{}", running.local_addr);

    // max_in_flight = 1: a second request while a slow call runs is refused at once. (The
    // slow call may take a moment to start on a busy machine: ask until it has.)
    let slow = slow_call(&running.url, "alpha___tool_000", 1500);
    let deadline = Instant::now() + Duration::from_millis(1200);
    let (response, took) = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let response = client()
            .post(&running.url)
            .header("content-type", "application/json")
            .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
            .send()
            .await
            .unwrap();
        if response.status() == 503 || Instant::now() > deadline {
            break (response, started.elapsed());
        }
    };
    assert_eq!(response.status(), 503);
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_in_flight"),
        "{body}"
    );
    // Probes are outside the bound.
    let ready = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (status, reply) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["result"]["content"][0]["text"], "alpha:tool_000:slow");

    // max_connections = 3: three idle keep-alive connections fill it; a fourth is refused
    // with a canned 503 and closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = running.local_addr;
    let held = blocking(move || {
        (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
                s
            })
            .collect::<Vec<_>>()
    })
    .await;
    // (The client waits for the answer before sending: the refusal is written on accept.)
    let (answer, closed) = blocking(move || exchange(addr, b"", Duration::from_secs(2))).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 2"), "{answer}");
    assert!(closed.is_some());
    drop(held);
    // Slots free again once connections close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (answer, _) = blocking(move || {
        exchange(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        )
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_calls_in_flight_and_closes_idle_and_half_open_connections() {
    let up = upstream("alpha", 1, true).await;
    let config = format!(
        "[inbound]\nshutdown_grace_secs = 4\n{}",
        target_toml("alpha", &up.url, "")
    );
    let running = start(&config).await;
    wait_for_state(&format!("http://{}", running.local_addr), "alpha", "ready").await;
    let addr = running.local_addr;

    let slow = slow_call(&running.url, "alpha___tool_000", 1000);
    wait_for_slow_calls(&up, 1).await;
    // An idle keep-alive connection and a half-open one (part of a head).
    let (idle, half_open) = blocking(move || {
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let _ = idle.read(&mut buf).unwrap();
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0")
            .unwrap();
        (idle, half)
    })
    .await;

    let started = Instant::now();
    running.shutdown();
    let closed_at = blocking(move || {
        [idle, half_open].map(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 64];
            // Closed: end of stream, or a reset (unread bytes of the half-open head).
            let closed = match s.read(&mut buf) {
                Ok(n) => n == 0,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            };
            (closed, t.elapsed())
        })
    })
    .await;
    for (closed, took) in closed_at {
        assert!(closed, "closed without an answer");
        assert!(
            took < Duration::from_millis(500),
            "closed at once, took {took:?}"
        );
    }
    let (status, reply) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        reply["result"]["content"][0]["text"], "alpha:tool_000:slow",
        "{reply}"
    );
    tokio::time::timeout(Duration::from_secs(4), running.wait())
        .await
        .expect("exits within the grace")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outliving_the_grace_is_answered_with_an_error_not_dropped() {
    let up = upstream("alpha", 1, false).await;
    let config = format!(
        "[inbound]\nshutdown_grace_secs = 1\n{}",
        target_toml("alpha", &up.url, "")
    );
    let running = start(&config).await;
    let slow = slow_call(&running.url, "alpha___tool_000", 10_000);
    wait_for_slow_calls(&up, 1).await;
    let started = Instant::now();
    running.shutdown();
    let (status, reply) = slow.await.unwrap();
    assert_eq!(status, 503);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{reply}"
    );
    tokio::time::timeout(Duration::from_secs(3), running.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
}

fn tool_names(tools: &[Value]) -> Vec<String> {
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_targets_and_refuses_invalid_configs() {
    let a = upstream("alpha", 2, true).await;
    let b = upstream("beta", 1, false).await;
    let c = upstream("gamma", 1, false).await;
    let first = format!(
        "{}{}",
        target_toml("alpha", &a.url, ""),
        target_toml("beta", &b.url, "")
    );
    let running = start(&first).await;
    let base = format!("http://{}", running.local_addr);
    wait_for_state(&base, "alpha", "ready").await;
    wait_for_state(&base, "beta", "ready").await;
    let parse = |text: &str| mcp_sidecar::config::Config::parse(text, &|_| None);

    // Whatever handshake alpha's upstream needed (initialize, or server/discover) was done.
    let handshakes = a.knobs.initializes.load(Ordering::SeqCst);
    // A call to alpha is in flight while beta changes and gamma arrives.
    let slow = slow_call(&running.url, "alpha___tool_000", 700);
    wait_for_slow_calls(&a, 1).await;
    let second = format!(
        "{}{}{}",
        target_toml("alpha", &a.url, ""),
        target_toml("beta", &b.url, "request_timeout_ms = 30000"),
        target_toml("gamma", &c.url, "")
    );
    let outcome = running.live.reload(parse(&second)).await.unwrap();
    assert_eq!(
        outcome,
        Reloaded::Applied {
            added: vec!["gamma".into()],
            changed: vec!["beta".into()],
            removed: vec![],
        }
    );
    // No gap: alpha's and beta's tools are listed at once after the swap.
    let names = tool_names(&list_all(&running.url).await);
    assert!(
        names.contains(&"alpha___tool_001".to_string())
            && names.contains(&"beta___tool_000".to_string()),
        "{names:?}"
    );
    let (status, reply) = slow.await.unwrap();
    assert_eq!(
        (status, &reply["result"]["content"][0]["text"]),
        (200, &json!("alpha:tool_000:slow"))
    );
    wait_for_state(&base, "gamma", "ready").await;
    let reply = call_tool(&running.url, "gamma___tool_000", json!({"text": "new"})).await;
    assert_eq!(reply["result"]["content"][0]["text"], "gamma:tool_000:new");
    // Alpha kept its session and was not re-synced; beta (changed) was.
    let reply = call_tool(&running.url, "alpha___tool_001", json!({"text": "x"})).await;
    assert_eq!(reply["result"]["content"][0]["text"], "alpha:tool_001:x");
    assert_eq!(a.knobs.initializes.load(Ordering::SeqCst), handshakes);
    assert_eq!(a.knobs.lists.load(Ordering::SeqCst), 1);
    assert!(b.knobs.lists.load(Ordering::SeqCst) >= 2);

    // The same config again changes nothing.
    assert_eq!(
        running.live.reload(parse(&second)).await.unwrap(),
        Reloaded::Unchanged
    );

    // An invalid config keeps everything and says why in /readyz.
    let broken = second.replace("url = \"http://", "url = \"ftp://");
    let error = running.live.reload(parse(&broken)).await.unwrap_err();
    assert!(error.contains("targets[0].url"), "{error}");
    let (_, ready) = readyz(&base).await;
    assert!(
        ready["config"]["error"]
            .as_str()
            .unwrap()
            .contains("targets[0].url"),
        "{ready}"
    );
    assert_eq!(ready["config"]["generation"], 2);
    assert_eq!(tool_names(&list_all(&running.url).await).len(), 4);

    // Removing beta: its tools go, the others stay; the error is cleared.
    let third = format!(
        "{}{}",
        target_toml("alpha", &a.url, ""),
        target_toml("gamma", &c.url, "")
    );
    let outcome = running.live.reload(parse(&third)).await.unwrap();
    assert_eq!(
        outcome,
        Reloaded::Applied {
            added: vec![],
            changed: vec![],
            removed: vec!["beta".into()]
        }
    );
    let names = tool_names(&list_all(&running.url).await);
    assert_eq!(
        names,
        ["alpha___tool_000", "alpha___tool_001", "gamma___tool_000"]
    );
    let (_, ready) = readyz(&base).await;
    assert_eq!(ready["config"]["error"], Value::Null);
    assert_eq!(ready["config"]["generation"], 3);
    assert_eq!(a.knobs.initializes.load(Ordering::SeqCst), handshakes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_one_idle_timeout_after_their_last_answer() {
    let up = upstream("alpha", 1, false).await;
    let config = format!(
        "[inbound]\nidle_timeout_secs = 1\n{}",
        target_toml("alpha", &up.url, "")
    );
    let running = start(&config).await;
    let addr = running.local_addr;
    wait_for_state(&format!("http://{addr}"), "alpha", "ready").await;
    // One call that outlasts the idle timeout, then silence, on one keep-alive connection:
    // the call is not cut (a busy connection has no idle deadline), and the connection
    // closes about one idle timeout after the answer.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "alpha___tool_000", "arguments": {"text": "slow", "ms": 1500}}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (answer, closed) =
        blocking(move || exchange(addr, request.as_bytes(), Duration::from_secs(8))).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("alpha:tool_000:slow"), "{answer}");
    let closed = closed.expect("an idle connection must be closed");
    assert!(
        closed >= Duration::from_millis(2300) && closed < Duration::from_millis(5000),
        "closed {closed:?} after the request (1.5 s call + 1 s idle)"
    );
}
