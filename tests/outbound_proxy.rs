//! With `HTTP_PROXY` set, every request to a target goes through that proxy (the only test
//! of this binary: the environment is process-wide).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A forward proxy for `http://` targets: records each connection's first request line and
/// then relays the bytes both ways to `upstream`.
async fn forward_proxy(upstream: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut head = vec![0u8; 4096];
                let n = client.read(&mut head).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&head[..n])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                log.lock().unwrap().push(line);
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                if server.write_all(&head[..n]).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn requests_to_targets_go_through_the_configured_proxy() {
    let up = upstream("far", 2, false).await;
    let authority = up
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (proxy, seen) = forward_proxy(authority.clone()).await;
    // SAFETY: the only test of this binary sets it before anything reads the environment.
    unsafe {
        std::env::set_var("HTTP_PROXY", &proxy);
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let sidecar = sidecar(&target_toml("far", &up.url, "")).await;
    wait_for_state(&sidecar.base, "far", "ready").await;
    let reply = call_tool(&sidecar.url, "far___tool_001", json!({"text": "via"})).await;
    assert_eq!(
        reply["result"]["content"][0]["text"], "far:tool_001:via",
        "{reply}"
    );
    let lines = seen.lock().unwrap().clone();
    assert!(!lines.is_empty(), "the proxy saw no request");
    // Absolute-form request lines: the proxy, not the target, was connected to.
    for line in &lines {
        assert!(
            line.starts_with(&format!("POST http://{authority}/mcp ")),
            "{line}"
        );
    }
}
