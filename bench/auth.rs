//! Inbound JWT auth cost, measured in one run against one upstream:
//!
//!   cargo build --release && cargo bench --bench auth
//!
//! Two release sidecars front the same stateless demo upstream, one without inbound auth and
//! one with a JWT authorizer (ES256 keys from an in-process issuer). Reports `tools/call`
//! p50/p99 for each (a repeated token: the hot path), p50 with a never-seen token on every
//! request (full signature check), and throughput of both under the same load.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/issuer.rs"]
mod issuer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

const SEQUENTIAL_CALLS: usize = 3_000;
const FRESH_TOKEN_CALLS: usize = 1_000;
const CONCURRENCY: usize = 32;
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(3);

async fn call(client: &reqwest::Client, url: &str, token: Option<&str>) -> Duration {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "demo___echo", "arguments": {"text": "hello"}}});
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let started = Instant::now();
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        status.is_success() && text.contains("hello"),
        "{status} {text}"
    );
    started.elapsed()
}

async fn throughput(client: &reqwest::Client, url: &str, token: Option<&str>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + THROUGHPUT_WINDOW;
    let workers = (0..CONCURRENCY).map(|_| {
        let (client, url, token, done) = (
            client.clone(),
            url.to_string(),
            token.map(str::to_string),
            done.clone(),
        );
        tokio::spawn(async move {
            while Instant::now() < deadline {
                call(&client, &url, token.as_deref()).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    futures_util::future::join_all(workers).await;
    done.load(Ordering::Relaxed) as f64 / THROUGHPUT_WINDOW.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`
    // (which passes --bench), so the test suite never builds release or runs a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benchmark skipped: run it with `cargo bench --bench auth`");
        return;
    }
    let bin = common::sidecar_bin().expect("the release binary");
    let issuer = issuer::Issuer::start().await;
    let (_upstream, upstream_url) = common::spawn_listening(
        &bin,
        &["demo-upstream", "--listen", "127.0.0.1:0", "--stateless"],
    );
    let (_open, open_url) = common::spawn_listening(
        &bin,
        &[
            "serve",
            "--upstream-url",
            &upstream_url,
            "--target-name",
            "demo",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let discovery = format!("{}/.well-known/openid-configuration", issuer.url);
    let (_guarded, guarded_url) = common::spawn_listening(
        &bin,
        &[
            "serve",
            "--upstream-url",
            &upstream_url,
            "--target-name",
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--jwt-discovery-url",
            &discovery,
            "--jwt-allowed-clients",
            "client-a",
            "--jwt-allowed-scopes",
            "gateway:read",
        ],
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let token = issuer.token("k1", json!({}));
    // Both sidecars ready (synced, keys loaded): a call succeeds.
    let ready = Instant::now() + Duration::from_secs(30);
    for (url, token) in [(&open_url, None), (&guarded_url, Some(token.as_str()))] {
        loop {
            let mut request = client.post(url).header("content-type", "application/json").body(
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo___echo","arguments":{"text":"hello"}}}).to_string(),
            );
            if let Some(t) = token {
                request = request.header("authorization", format!("Bearer {t}"));
            }
            if let Ok(r) = request.send().await
                && r.text().await.is_ok_and(|t| t.contains("hello"))
            {
                break;
            }
            assert!(
                Instant::now() < ready,
                "sidecar at {url} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Warm-up, then interleaved sequential calls so drift hits both sides alike.
    for _ in 0..300 {
        call(&client, &open_url, None).await;
        call(&client, &guarded_url, Some(&token)).await;
    }
    let (mut open, mut guarded) = (Vec::new(), Vec::new());
    for _ in 0..SEQUENTIAL_CALLS {
        open.push(call(&client, &open_url, None).await);
        guarded.push(call(&client, &guarded_url, Some(&token)).await);
    }
    let fresh_tokens: Vec<String> = (0..FRESH_TOKEN_CALLS)
        .map(|_| issuer.token("k1", json!({})))
        .collect();
    let mut fresh = Vec::new();
    for t in &fresh_tokens {
        fresh.push(call(&client, &guarded_url, Some(t)).await);
    }
    let (open_p50, open_p99) = (
        common::quantile(&mut open, 0.5),
        common::quantile(&mut open, 0.99),
    );
    let (guarded_p50, guarded_p99) = (
        common::quantile(&mut guarded, 0.5),
        common::quantile(&mut guarded, 0.99),
    );
    let fresh_p50 = common::quantile(&mut fresh, 0.5);

    let mut open_rps = 0.0;
    let mut guarded_rps = 0.0;
    for _ in 0..2 {
        open_rps += throughput(&client, &open_url, None).await;
        guarded_rps += throughput(&client, &guarded_url, Some(&token)).await;
    }
    let ratio = guarded_rps / open_rps;
    let added = guarded_p50.as_secs_f64() - open_p50.as_secs_f64();

    println!("\n## Inbound JWT auth (ES256), tools/call through the sidecar, same upstream\n");
    println!("| measure | auth off | auth on | target |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| p50 latency (repeated token) | {} | {} | |",
        common::ms(open_p50),
        common::ms(guarded_p50)
    );
    println!(
        "| p99 latency (repeated token) | {} | {} | |",
        common::ms(open_p99),
        common::ms(guarded_p99)
    );
    println!(
        "| added p50, repeated token (cache hit) | | {:.3} ms | microseconds |",
        added * 1000.0
    );
    println!(
        "| added p50, new token every call (signature check) | | {:.3} ms | |",
        (fresh_p50.as_secs_f64() - open_p50.as_secs_f64()) * 1000.0
    );
    println!(
        "| throughput, {CONCURRENCY} in flight | {:.0} req/s | {:.0} req/s ({:.1} %) | ≥ 95 % of auth off: {} |",
        open_rps / 2.0,
        guarded_rps / 2.0,
        ratio * 100.0,
        if ratio >= 0.95 { "met" } else { "MISSED" }
    );
    println!(
        "\n{SEQUENTIAL_CALLS} sequential calls each (interleaved), {FRESH_TOKEN_CALLS} fresh-token calls, throughput 2 × {} s windows per side.",
        THROUGHPUT_WINDOW.as_secs()
    );
}
