//! Catalog sync, persistence and restart cost, measured in one run:
//!
//!   cargo build --release && cargo bench --bench catalog
//!
//! For a target of 1,000 and of 10,000 synthetic tools (the demo upstream's `--extra-tools`):
//! a release sidecar with a state directory and the admin endpoint syncs it; reports the time
//! from spawn until `/readyz` shows the target ready with every tool, a second sync through
//! `POST /admin/sync` timed on its own, the sidecar's peak memory (VmHWM), the saved state
//! file's size and `tools/list` latency for one 100-tool page. Then the upstream is stopped
//! and the sidecar restarted on the same state directory several times: the time from spawn
//! to the first `tools/list` answer carrying tools (target: ≤ 100 ms).
//! The table is printed and written to `bench/results/catalog.md`.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SIZES: [usize; 2] = [1_000, 10_000];
/// The demo upstream's own tools besides the synthetic ones.
const DEMO_TOOLS: usize = 5;
const TARGET: &str = "big";
const RESTARTS: usize = 5;
const LIST_CALLS: usize = 1_000;
const STARTUP_TARGET: Duration = Duration::from_millis(100);
const SYNC_DEADLINE: Duration = Duration::from_secs(120);
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(1);
const SETTLE: Duration = Duration::from_millis(250);

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mcp-sidecar-bench-catalog-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_config(dir: &Path, upstream_url: &str) -> PathBuf {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let state_dir = dir.join("state");
    let text = format!(
        "[inbound]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nenabled = true\n\n\
         [catalog]\nstate_dir = {}\n\n\
         [[targets]]\nname = \"{TARGET}\"\nkind = \"mcp_server\"\nurl = {}\n",
        quote(&state_dir.to_string_lossy()),
        quote(upstream_url),
    );
    let path = dir.join("sidecar.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// VmHWM (peak resident set) of a live process, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// `http://127.0.0.1:PORT/mcp` → `http://127.0.0.1:PORT`.
fn base_of(mcp_url: &str) -> String {
    mcp_url
        .strip_suffix("/mcp")
        .expect("url ends in /mcp")
        .to_string()
}

/// Polls `/readyz` until the target is `ready` with `tools` tools published.
async fn wait_synced(client: &reqwest::Client, base: &str, tools: usize) {
    let deadline = Instant::now() + SYNC_DEADLINE;
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && let Ok(text) = r.text().await
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            let t = &v["targets"][0];
            if t["state"] == "ready"
                && t["tools"].as_u64() == Some(tools as u64)
                && v["tools"].as_u64() == Some(tools as u64)
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "target never synced {tools} tools at {base}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// One `tools/list`; the page's tools and next cursor, or `None` unless a 200 with tools.
async fn list(
    client: &reqwest::Client,
    url: &str,
    cursor: Option<&str>,
) -> Option<(usize, Option<String>)> {
    let params = match cursor {
        Some(c) => json!({ "cursor": c }),
        None => json!({}),
    };
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if response.status() != reqwest::StatusCode::OK {
        return None;
    }
    let v: Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
    let tools = v["result"]["tools"].as_array()?.len();
    (tools > 0).then(|| {
        (
            tools,
            v["result"]["nextCursor"].as_str().map(str::to_string),
        )
    })
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.2} ms")
    }
}

struct SizeResult {
    sync: Duration,
    saved: Duration,
    admin_sync: Duration,
    peak_after_sync: u64,
    peak_after_resync: u64,
    state_bytes: u64,
    list_p50: Duration,
    list_p99: Duration,
    /// Only measured for the largest size.
    restart: Option<RestartResult>,
}

struct RestartResult {
    /// Spawn → `listening` line (the saved catalog is loaded before it), median.
    listening: Duration,
    median: Duration,
    max: Duration,
    peak: u64,
}

async fn measure(bin: &Path, client: &reqwest::Client, n: usize, restart: bool) -> SizeResult {
    let dir = TempDir::new(&n.to_string());
    let extra = n.to_string();
    let (upstream, upstream_url) = common::spawn_demo_upstream(bin, &extra);
    let config = write_config(&dir.0, &upstream_url);
    let config_arg = config.to_string_lossy().into_owned();
    let serve = ["serve", "--config", config_arg.as_str()];
    let total = n + DEMO_TOOLS;

    // First sync: from spawn (process start-up included) to ready with every tool.
    let started = Instant::now();
    let (sidecar, url) = common::spawn_listening(bin, &serve);
    let base = base_of(&url);
    wait_synced(client, &base, total).await;
    let sync = started.elapsed();
    // The sync saves after it publishes: wait for the file, so the admin call below starts a
    // sync of its own instead of joining this one (single flight) while it is still saving.
    let state_file = dir.0.join("state").join(format!("{TARGET}.catalog.json"));
    let deadline = Instant::now() + SYNC_DEADLINE;
    while !state_file.exists() {
        assert!(Instant::now() < deadline, "the catalog was never saved");
        tokio::time::sleep(POLL).await;
    }
    let saved = started.elapsed();
    // The rename is followed by a directory fsync before the sync counts as finished.
    tokio::time::sleep(SETTLE).await;
    let peak_after_sync = peak_kib(sidecar.pid());

    // Second sync, on demand: the admin call returns once it is recorded and saved.
    let started = Instant::now();
    let response = client
        .post(format!("{base}/admin/sync?target={TARGET}"))
        .send()
        .await
        .expect("admin sync");
    let admin_sync = started.elapsed();
    let status = response.status();
    let v: Value =
        serde_json::from_str(&response.text().await.expect("admin sync answer")).unwrap();
    assert!(
        status.is_success() && v["results"][0]["ok"] == true,
        "admin sync failed: {status} {v}"
    );
    assert_eq!(v["targets"][0]["tools"].as_u64(), Some(total as u64));
    let peak_after_resync = peak_kib(sidecar.pid());
    let state_bytes = std::fs::metadata(&state_file)
        .expect("saved state file")
        .len();

    // tools/list: walk every page once for the cursors, then time pages in turn.
    let mut cursors = vec![None];
    let mut seen = 0;
    loop {
        let (tools, next) = list(client, &url, cursors.last().unwrap().as_deref())
            .await
            .expect("tools/list page");
        assert_eq!(tools, 100.min(total - seen), "page size");
        seen += tools;
        match next {
            Some(c) => cursors.push(Some(c)),
            None => break,
        }
    }
    assert_eq!(seen, total, "pages cover the catalog");
    for c in cursors.iter().take(50) {
        list(client, &url, c.as_deref()).await.expect("warm-up");
    }
    let mut samples = Vec::with_capacity(LIST_CALLS);
    for i in 0..LIST_CALLS {
        let cursor = cursors[i % cursors.len()].as_deref();
        let t = Instant::now();
        list(client, &url, cursor).await.expect("tools/list");
        samples.push(t.elapsed());
    }
    let list_p50 = common::quantile(&mut samples, 0.5);
    let list_p99 = common::quantile(&mut samples, 0.99);
    drop(sidecar);

    let restart = if restart {
        // Upstream down (killed by PID), then restarts on the same state directory.
        drop(upstream);
        let mut times = Vec::with_capacity(RESTARTS);
        let mut listening = Vec::with_capacity(RESTARTS);
        let mut peak = 0;
        for _ in 0..RESTARTS {
            let started = Instant::now();
            let (sidecar, url) = common::spawn_listening(bin, &serve);
            listening.push(started.elapsed());
            let deadline = started + STARTUP_DEADLINE;
            loop {
                if list(client, &url, None).await.is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no tools/list answer from the saved catalog"
                );
                tokio::time::sleep(POLL).await;
            }
            times.push(started.elapsed());
            peak = peak.max(peak_kib(sidecar.pid()));
        }
        let max = *times.iter().max().unwrap();
        Some(RestartResult {
            listening: common::quantile(&mut listening, 0.5),
            median: common::quantile(&mut times, 0.5),
            max,
            peak,
        })
    } else {
        drop(upstream);
        None
    };

    SizeResult {
        sync,
        saved,
        admin_sync,
        peak_after_sync,
        peak_after_resync,
        state_bytes,
        list_p50,
        list_p99,
        restart,
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`
    // (which passes --bench), so the test suite never builds release or runs a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benchmark skipped: run it with `cargo bench --bench catalog`");
        return;
    }
    let bin = common::sidecar_bin().expect("the release binary");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut results = Vec::new();
    for (i, &n) in SIZES.iter().enumerate() {
        let last = i + 1 == SIZES.len();
        results.push(measure(&bin, &client, n, last).await);
    }
    let (small, large) = (&results[0], &results[1]);
    let restart = large.restart.as_ref().expect("restart measured");

    let mut out = String::new();
    let cols = SIZES.map(|n| format!("{n} tools"));
    let _ = writeln!(
        out,
        "## Catalog: sync, memory, persistence and restart (one target, stateless demo upstream)\n"
    );
    let _ = writeln!(out, "| measure | {} | {} | target |", cols[0], cols[1]);
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let mut row = |name: &str, a: String, b: String, target: &str| {
        let _ = writeln!(out, "| {name} | {a} | {b} | {target} |");
    };
    row(
        "first sync: spawn → `/readyz` ready with every tool",
        ms(small.sync),
        ms(large.sync),
        "—",
    );
    row(
        "first sync saved: spawn → state file in place",
        ms(small.saved),
        ms(large.saved),
        "—",
    );
    row(
        "second sync: `POST /admin/sync` (incl. save)",
        ms(small.admin_sync),
        ms(large.admin_sync),
        "—",
    );
    row(
        "peak memory (VmHWM) after first sync",
        common::mib(small.peak_after_sync),
        common::mib(large.peak_after_sync),
        "—",
    );
    row(
        "peak memory (VmHWM) after second sync",
        common::mib(small.peak_after_resync),
        common::mib(large.peak_after_resync),
        "—",
    );
    row(
        "saved state file",
        format!("{:.1} KiB", small.state_bytes as f64 / 1024.0),
        format!("{:.1} KiB", large.state_bytes as f64 / 1024.0),
        "—",
    );
    row(
        "`tools/list` p50 / p99, one 100-tool page",
        format!("{} / {}", ms(small.list_p50), ms(small.list_p99)),
        format!("{} / {}", ms(large.list_p50), ms(large.list_p99)),
        "—",
    );
    row(
        &format!(
            "restart, upstream down: spawn → first `tools/list` with tools (median / max of {RESTARTS})"
        ),
        String::new(),
        format!("{} / {}", ms(restart.median), ms(restart.max)),
        &format!(
            "≤ {} ms: {}",
            STARTUP_TARGET.as_millis(),
            if restart.max <= STARTUP_TARGET {
                "met"
            } else if restart.median <= STARTUP_TARGET {
                "met (median; max MISSED)"
            } else {
                "MISSED"
            }
        ),
    );
    row(
        "of which spawn → `listening` line (saved catalog loaded), median",
        String::new(),
        ms(restart.listening),
        "—",
    );
    row(
        "peak memory (VmHWM) after restart from the saved catalog",
        String::new(),
        common::mib(restart.peak),
        "—",
    );
    let _ = writeln!(
        out,
        "\nEach target also has the demo's {DEMO_TOOLS} own tools. First sync: process start-up, \
         `initialize`, one `tools/list` of every tool and the catalog build (`/readyz` turns \
         ready when the catalog is published; the state file is written after that). The \
         admin sync starts {} ms after the file appeared and returns once the new listing is \
         published and saved. `/readyz`, the state file and `tools/list` on restart polled \
         every {} ms. `tools/list` p50/p99 over {LIST_CALLS} sequential calls cycling through \
         every page. Release binary, 127.0.0.1 only.",
        SETTLE.as_millis(),
        POLL.as_millis()
    );

    println!("\n{out}");
    let results_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&results_dir).expect("bench/results");
    std::fs::write(results_dir.join("catalog.md"), &out).expect("write catalog.md");
}
