//! SigV4 benchmark for mcp-sidecar: `cargo bench --bench sigv4`.
//!
//! In one run, against one loopback upstream (`mcp-sidecar demo-upstream --stateless`), it
//! starts three sidecars in front of it, one unsigned, one signing every request with SigV4 and
//! one with SigV4a (static test keys with a session token; the demo upstream ignores the
//! signature), and
//! measures with a Rust keep-alive client (reqwest, HTTP/1.1):
//! - tools/call (echo) latency p50/p99: direct, via the unsigned sidecar, via the signing
//!   sidecar (alternating blocks so background noise hits all alike);
//! - throughput, 32 in flight for a fixed window, on each path, with the CPU time per call
//!   of the sidecar and of the upstream over each window (from /proc/PID/stat);
//! - signing alone, in-process: the per-target template against aws-sigv4's `sign`;
//! - each sidecar's RSS (idle after sync, peak after load) and the SigV4 sidecar's start-up
//!   time (spawn → first tools/list holding the upstream's tools).
//!
//! Then, when `.venv-aws-proxy` exists (`bash bench/setup_aws_proxy.sh`; override the Python
//! with `MCP_SIDECAR_BENCH_AWS_PROXY_PYTHON`), `bench/sigv4_peer.py` drives three paths with
//! one client, the Python MCP SDK: direct, via the signing sidecar (streamable HTTP), and via
//! mcp-proxy-for-aws (stdio, spawned by the SDK) signing to the same upstream.
//!
//! Prints a Markdown table and writes it to bench/results/sigv4.md (child logs go to
//! bench/results/logs/sigv4-*). Binary: `target/release/mcp-sidecar`, or `MCP_SIDECAR_BIN`.
//! `MCP_SIDECAR_BENCH_QUICK=1` runs a short smoke version whose figures are not for quoting.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REQUESTS: u64 = 5_000_000;

/// Static test credentials (nothing checks them: the upstream ignores signatures).
const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARKONLY01"),
    ("AWS_SECRET_ACCESS_KEY", "bench/secret/not+a+real+key"),
    (
        "AWS_SESSION_TOKEN",
        "IQoJb3JpZ2luX2VjEBenchmarkSessionToken",
    ),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

#[derive(Clone, Copy)]
struct Settings {
    quick: bool,
    warmup: usize,
    seq_calls: usize,
    rounds: usize,
    concurrency: usize,
    window: Duration,
    tput_rounds: usize,
    startup_spawns: usize,
    peer_calls: usize,
    peer_rounds: usize,
}

impl Settings {
    fn from_env() -> Self {
        if std::env::var("MCP_SIDECAR_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0") {
            Settings {
                quick: true,
                warmup: 20,
                seq_calls: 300,
                rounds: 3,
                concurrency: 32,
                window: Duration::from_millis(500),
                tput_rounds: 1,
                startup_spawns: 2,
                peer_calls: 100,
                peer_rounds: 1,
            }
        } else {
            Settings {
                quick: false,
                warmup: 300,
                seq_calls: 3_000,
                rounds: 6,
                concurrency: 32,
                window: Duration::from_secs(4),
                tput_rounds: 5,
                startup_spawns: 5,
                peer_calls: 1_000,
                peer_rounds: 2,
            }
        }
    }
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn call_body(tool: &str) -> Bytes {
    Bytes::from(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": {"text": "bench"}}})
        .to_string(),
    )
}

async fn post(http: &reqwest::Client, url: &str, body: Bytes) -> Result<Value> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    let v: Value = serde_json::from_slice(&bytes)?;
    if v.get("error").is_some() || v["result"]["isError"] == true {
        bail!("call failed: {v}");
    }
    Ok(v)
}

#[derive(Clone)]
struct Path3 {
    label: &'static str,
    url: String,
    body: Bytes,
    /// The sidecar on this path, whose CPU time is read around each throughput window.
    sidecar_pid: Option<u32>,
}

/// One throughput window: calls per second, errors, and the CPU µs per call of the sidecar
/// and of the upstream.
async fn throughput(
    http: &reqwest::Client,
    path: &Path3,
    upstream_pid: u32,
    s: Settings,
) -> Result<Window> {
    let cpu_before = path.sidecar_pid.and_then(common::cpu_time);
    let upstream_before = common::cpu_time(upstream_pid);
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + s.window;
    let mut tasks = Vec::new();
    for _ in 0..s.concurrency {
        let (http, url, body) = (http.clone(), path.url.clone(), path.body.clone());
        let (ok, errors) = (ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end && ok.load(Ordering::Relaxed) < MAX_REQUESTS {
                match post(&http, &url, body.clone()).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let calls = ok.load(Ordering::Relaxed);
    let per_call = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(before), Some(after)) if calls > 0 => {
            Some((after - before).as_secs_f64() * 1e6 / calls as f64)
        }
        _ => None,
    };
    Ok(Window {
        rate: calls as f64 / started.elapsed().as_secs_f64(),
        errors: errors.load(Ordering::Relaxed),
        sidecar_cpu: per_call(cpu_before, path.sidecar_pid.and_then(common::cpu_time)),
        upstream_cpu: per_call(upstream_before, common::cpu_time(upstream_pid)),
    })
}

struct Window {
    rate: f64,
    errors: u64,
    /// CPU µs per call.
    sidecar_cpu: Option<f64>,
    upstream_cpu: Option<f64>,
}

/// The median of some figures (None when there are none).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

async fn wait_tools(http: &reqwest::Client, url: &str) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let body = Bytes::from(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    loop {
        if let Ok(v) = post(http, url, body.clone()).await
            && v["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url}: no tools within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`
    // (which passes --bench), so the test suite never builds release or runs a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benchmark skipped: run it with `cargo bench --bench sigv4`");
        return Ok(());
    }
    let s = Settings::from_env();
    let bin = common::sidecar_bin()?;
    let logs = common::logs_dir()?;
    let http = http_client()?;
    let load_start = common::load_average();

    let mut upstream = common::Proc::spawn(
        "sigv4-upstream",
        {
            let mut c = Command::new(&bin);
            c.args(["demo-upstream", "--listen", "127.0.0.1:0", "--stateless"]);
            c
        },
        &logs,
    )?;
    let upstream_url = upstream.wait_listening()?;

    let mut unsigned = common::Proc::spawn(
        "sigv4-sidecar-unsigned",
        {
            let mut c = Command::new(&bin);
            c.args([
                "serve",
                "--upstream-url",
                &upstream_url,
                "--listen",
                "127.0.0.1:0",
            ]);
            c
        },
        &logs,
    )?;
    let unsigned_url = unsigned.wait_listening()?;

    // One config per signing algorithm (the demo upstream ignores the signatures).
    let write_config = |algorithm: &str, provider: &str| -> Result<PathBuf> {
        let path = std::env::temp_dir().join(format!(
            "mcp-sidecar-bench-{algorithm}-{}.toml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            format!(
                "[inbound]\nlisten = \"127.0.0.1:0\"\n\n[[targets]]\nname = \"upstream\"\nkind = \"mcp_server\"\nurl = \"{upstream_url}\"\ncredential_provider = {{ {provider} }}\n"
            ),
        )?;
        Ok(path)
    };
    let config = write_config(
        "sigv4",
        r#"type = "sigv4", service = "aws-mcp", region = "us-east-1""#,
    )?;
    let config_v4a = write_config(
        "sigv4a",
        r#"type = "sigv4", algorithm = "sigv4a", service = "aws-mcp", region_set = ["us-east-1", "us-west-2"]"#,
    )?;
    let signed_cmd = |config: &Path| {
        let mut c = Command::new(&bin);
        c.args(["serve", "--config"]).arg(config);
        for (k, v) in AWS_ENV {
            c.env(k, v);
        }
        c
    };
    let mut signed = common::Proc::spawn("sigv4-sidecar-signed", signed_cmd(&config), &logs)?;
    let signed_url = signed.wait_listening()?;
    let mut signed_v4a =
        common::Proc::spawn("sigv4-sidecar-signed-v4a", signed_cmd(&config_v4a), &logs)?;
    let signed_v4a_url = signed_v4a.wait_listening()?;
    wait_tools(&http, &unsigned_url).await?;
    wait_tools(&http, &signed_url).await?;
    wait_tools(&http, &signed_v4a_url).await?;

    let paths = [
        Path3 {
            label: "direct",
            url: upstream_url.clone(),
            body: call_body("echo"),
            sidecar_pid: None,
        },
        Path3 {
            label: "sidecar, unsigned",
            url: unsigned_url.clone(),
            body: call_body("upstream___echo"),
            sidecar_pid: Some(unsigned.child.id()),
        },
        Path3 {
            label: "sidecar, SigV4",
            url: signed_url.clone(),
            body: call_body("upstream___echo"),
            sidecar_pid: Some(signed.child.id()),
        },
        Path3 {
            label: "sidecar, SigV4a (ECDSA P-256)",
            url: signed_v4a_url.clone(),
            body: call_body("upstream___echo"),
            sidecar_pid: Some(signed_v4a.child.id()),
        },
    ];
    for p in &paths {
        for _ in 0..s.warmup {
            post(&http, &p.url, p.body.clone()).await?;
        }
    }
    let idle = [
        unsigned.memory_kib()?,
        signed.memory_kib()?,
        signed_v4a.memory_kib()?,
    ];

    // Sequential latency, alternating blocks.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let block = s.seq_calls / s.rounds;
    for _ in 0..s.rounds {
        for (i, p) in paths.iter().enumerate() {
            for _ in 0..block {
                let t = Instant::now();
                post(&http, &p.url, p.body.clone()).await?;
                samples[i].push(t.elapsed());
            }
        }
    }
    let p50: Vec<Duration> = samples
        .iter()
        .map(|v| common::quantile(&mut v.clone(), 0.5))
        .collect();
    let p99: Vec<Duration> = samples
        .iter()
        .map(|v| common::quantile(&mut v.clone(), 0.99))
        .collect();

    // Throughput: alternating windows, median per path (drift in background load hits all).
    let mut windows: Vec<Vec<Window>> = paths.iter().map(|_| Vec::new()).collect();
    let upstream_pid = upstream.child.id();
    for _ in 0..s.tput_rounds {
        for (i, p) in paths.iter().enumerate() {
            windows[i].push(throughput(&http, p, upstream_pid, s).await?);
        }
    }
    let tput: Vec<(f64, u64)> = windows
        .iter()
        .map(|w| {
            let rate = median(w.iter().map(|x| x.rate).collect()).unwrap_or_default();
            (rate, w.iter().map(|x| x.errors).sum())
        })
        .collect();
    // CPU per call (median window) of the sidecar and of the upstream: on a machine shared
    // by load, sidecar and upstream, where the time per call goes.
    let cpu: Vec<Option<f64>> = windows
        .iter()
        .map(|w| median(w.iter().filter_map(|x| x.sidecar_cpu).collect()))
        .collect();
    let upstream_cpu: Vec<Option<f64>> = windows
        .iter()
        .map(|w| median(w.iter().filter_map(|x| x.upstream_cpu).collect()))
        .collect();
    let peak = [
        unsigned.memory_kib()?.1,
        signed.memory_kib()?.1,
        signed_v4a.memory_kib()?.1,
    ];

    // Start-up of the signing sidecar.
    let mut startups = Vec::new();
    for i in 0..s.startup_spawns {
        let t = Instant::now();
        let mut p = common::Proc::spawn(
            &format!("sigv4-sidecar-signed-startup-{i}"),
            signed_cmd(&config),
            &logs,
        )?;
        let url = p.wait_listening()?;
        wait_tools(&http, &url).await?;
        startups.push(t.elapsed());
    }
    let startup = common::quantile(&mut startups.clone(), 0.5);

    // The Python peer comparison.
    let peer = run_peer(&upstream_url, &signed_url, s, &logs);

    let mut out = String::new();
    let now = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    writeln!(out, "# mcp-sidecar SigV4 benchmark ({now})\n")?;
    if s.quick {
        writeln!(
            out,
            "**Quick run (MCP_SIDECAR_BENCH_QUICK): not for quoting.**\n"
        )?;
    }
    writeln!(
        out,
        "## Rust client (reqwest keep-alive), {} sequential calls per path, then {} in flight for {:.1} s ({} alternating windows per path, median)\n",
        block * s.rounds,
        s.concurrency,
        s.window.as_secs_f64(),
        s.tput_rounds
    )?;
    writeln!(
        out,
        "| Path | p50 | p99 | throughput | sidecar CPU per call | upstream CPU per call |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for (i, p) in paths.iter().enumerate() {
        writeln!(
            out,
            "| {} | {} | {} | {:.0} calls/s{} | {} | {} |",
            p.label,
            common::ms(p50[i]),
            common::ms(p99[i]),
            tput[i].0,
            if tput[i].1 > 0 {
                format!(" ({} errors)", tput[i].1)
            } else {
                String::new()
            },
            cpu[i].map_or(String::new(), |c| format!("{c:.1} µs")),
            upstream_cpu[i].map_or(String::new(), |c| format!("{c:.1} µs"))
        )?;
    }
    let signing_p50 = p50[2].as_secs_f64() * 1000.0 - p50[1].as_secs_f64() * 1000.0;
    let signed_over_direct = p50[2].as_secs_f64() * 1000.0 - p50[0].as_secs_f64() * 1000.0;
    let ratio = tput[2].0 / tput[1].0 * 100.0;
    writeln!(out, "\n| Measure | Value | Target | Met |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| signed path p50 added over direct | {signed_over_direct:+.3} ms | ≤ 0.3 ms | {} |",
        yes(signed_over_direct <= 0.3)
    )?;
    writeln!(
        out,
        "| signing's own p50 cost (signed − unsigned sidecar) | {signing_p50:+.3} ms |  |  |"
    )?;
    writeln!(
        out,
        "| signed throughput / unsigned throughput | {ratio:.1} % | ≥ 90 % | {} |",
        yes(ratio >= 90.0)
    )?;
    if let (Some(unsigned_cpu), Some(signed_cpu), Some(v4a_cpu)) = (cpu[1], cpu[2], cpu[3]) {
        writeln!(
            out,
            "| signing's CPU per call: SigV4 / SigV4a (signed − unsigned sidecar) | {:+.1} µs / {:+.1} µs |  |  |",
            signed_cpu - unsigned_cpu,
            v4a_cpu - unsigned_cpu
        )?;
        let cpu_ratio = unsigned_cpu / signed_cpu * 100.0;
        writeln!(
            out,
            "| signed throughput / unsigned, by the sidecar's CPU per call (unsigned ÷ signed) | {cpu_ratio:.1} % | ≥ 90 % | {} |",
            yes(cpu_ratio >= 90.0)
        )?;
    }
    let v4a_over_direct = p50[3].as_secs_f64() * 1000.0 - p50[0].as_secs_f64() * 1000.0;
    writeln!(
        out,
        "| SigV4a path p50 added over direct (no target) | {v4a_over_direct:+.3} ms |  |  |"
    )?;
    writeln!(
        out,
        "| SigV4a throughput / unsigned throughput (no target) | {:.1} % |  |  |",
        tput[3].0 / tput[1].0 * 100.0
    )?;
    let mb = |kib: u64| kib as f64 / 1024.0;
    writeln!(
        out,
        "| RSS idle after sync: unsigned / SigV4 / SigV4a sidecar | {:.1} / {:.1} / {:.1} MB |  |  |",
        mb(idle[0].0),
        mb(idle[1].0),
        mb(idle[2].0)
    )?;
    writeln!(
        out,
        "| peak RSS after load: unsigned / SigV4 / SigV4a sidecar | {:.1} / {:.1} / {:.1} MB |  |  |",
        mb(peak[0]),
        mb(peak[1]),
        mb(peak[2])
    )?;
    writeln!(
        out,
        "| signed sidecar start-up: spawn → first tools/list with tools (median of {}) | {} |  |  |",
        startups.len(),
        common::ms(startup)
    )?;

    write_signing_cost(&mut out, s)?;

    match peer {
        Ok(peer) => write_peer(&mut out, &peer)?,
        Err(e) => writeln!(out, "\nPython peer comparison skipped: {e:#}")?,
    }
    let load_end = common::load_average();
    writeln!(out, "\n- Binary: `{}`", bin.display())?;
    writeln!(
        out,
        "- Upstream: `mcp-sidecar demo-upstream --stateless` on loopback, `echo` tool; the signing sidecars use static keys with a session token (host, x-amz-date, x-amz-content-sha256, x-amz-security-token, and for SigV4a x-amz-region-set, signed over each body); the upstream does not check signatures (the tests do)."
    )?;
    writeln!(
        out,
        "- Machine: {} CPU(s) shared by clients, sidecars, proxy and upstream; load average at start {}, at end {}.",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load_start,
        load_end
    )?;
    print!("{out}");
    std::fs::write(common::root().join("bench/results/sigv4.md"), &out)?;
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&config_v4a);
    drop(signed_v4a);
    drop(signed);
    drop(unsigned);
    drop(upstream);
    Ok(())
}

/// Signing alone, in this process: the per-target template the sidecar uses against
/// aws-sigv4's general `sign` (what it falls back to), for one `tools/call` body.
fn write_signing_cost(out: &mut String, s: Settings) -> Result<()> {
    use aws_credential_types::Credentials;
    use mcp_sidecar::targets::credentials::sigv4::template::SigningTemplate;
    use mcp_sidecar::targets::credentials::sigv4::{SignOptions, SigningRegion, sign_request};
    use std::time::SystemTime;

    let credentials = Credentials::new(
        AWS_ENV[0].1,
        AWS_ENV[1].1,
        Some(AWS_ENV[2].1.to_string()),
        None,
        "bench",
    );
    let identity = credentials.clone().into();
    let url = "http://127.0.0.1:8000/mcp";
    let body = call_body("upstream___echo");
    let n = if s.quick { 2_000 } else { 50_000 };
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    writeln!(out, "\n## Signing one request, in-process (mean of {n})\n")?;
    writeln!(
        out,
        "| Algorithm | per-target template | aws-sigv4 `sign` |"
    )?;
    writeln!(out, "|---|---|---|")?;
    for (label, region) in [
        ("SigV4", SigningRegion::Single("us-east-1")),
        ("SigV4a", SigningRegion::Set("us-east-1,us-west-2")),
    ] {
        let template = SigningTemplate::new(&url.parse()?, "127.0.0.1:8000", "aws-mcp", region)
            .context("no template for the bench URL")?;
        let fast = time(&mut || {
            std::hint::black_box(template.sign(
                &credentials,
                "POST",
                url,
                &body,
                SystemTime::now(),
            ));
        });
        let general = time(&mut || {
            std::hint::black_box(
                sign_request(
                    &identity,
                    "aws-mcp",
                    region,
                    "POST",
                    url,
                    &[("host", "127.0.0.1:8000")],
                    &body,
                    SystemTime::now(),
                    SignOptions::OUTBOUND,
                )
                .ok(),
            );
        });
        writeln!(out, "| {label} | {fast:.2} µs | {general:.2} µs |")?;
    }
    Ok(())
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**NO**" }
}

fn run_peer(upstream: &str, sidecar: &str, s: Settings, logs: &Path) -> Result<Value> {
    let python = std::env::var_os("MCP_SIDECAR_BENCH_AWS_PROXY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join(".venv-aws-proxy/bin/python"));
    let proxy = python.with_file_name("mcp-proxy-for-aws");
    if !python.is_file() || !proxy.is_file() {
        bail!(
            "{} or {} missing (bash bench/setup_aws_proxy.sh)",
            python.display(),
            proxy.display()
        );
    }
    let mut cmd = Command::new(&python);
    cmd.arg(common::root().join("bench/sigv4_peer.py"))
        .args(["--upstream", upstream, "--sidecar", sidecar, "--proxy"])
        .arg(&proxy)
        .args([
            "--calls",
            &s.peer_calls.to_string(),
            "--warmup",
            &(s.peer_calls / 10).to_string(),
            "--window",
            &s.window.as_secs_f64().to_string(),
            "--concurrency",
            &s.concurrency.to_string(),
            "--rounds",
            &s.peer_rounds.to_string(),
        ])
        .stderr(Stdio::from(File::create(logs.join("sigv4-peer.log"))?));
    for (k, v) in AWS_ENV {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "bench/sigv4_peer.py failed ({}); see bench/results/logs/sigv4-peer.log",
            out.status
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn write_peer(out: &mut String, peer: &Value) -> Result<()> {
    // Median over rounds of each figure.
    let fig = |path: &str, key: &str| -> f64 {
        let mut v: Vec<f64> = peer[path]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r[key].as_f64()).collect())
            .unwrap_or_default();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let rounds = peer["direct"].as_array().map_or(0, Vec::len);
    writeln!(
        out,
        "\n## One client for all three paths: Python MCP SDK ({} sequential calls per path per round, {rounds} rounds, medians)\n",
        fig("direct", "calls")
    )?;
    writeln!(
        out,
        "| Path | p50 | p99 | added p50 over direct | throughput | start-up (client start → tools listed) |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    let direct = fig("direct", "p50_ms");
    for (path, label) in [
        ("direct", "direct (streamable HTTP)"),
        ("sidecar", "mcp-sidecar, SigV4 (streamable HTTP)"),
        ("proxy", "mcp-proxy-for-aws 1.7.0, SigV4 (stdio)"),
    ] {
        writeln!(
            out,
            "| {label} | {:.3} ms | {:.3} ms | {:+.3} ms | {:.0} calls/s | {:.0} ms |",
            fig(path, "p50_ms"),
            fig(path, "p99_ms"),
            fig(path, "p50_ms") - direct,
            fig(path, "throughput_per_s"),
            fig(path, "startup_ms")
        )?;
    }
    let sidecar_added = fig("sidecar", "p50_ms") - direct;
    let proxy_added = fig("proxy", "p50_ms") - direct;
    writeln!(out, "\n| Measure | Value | Target | Met |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| sidecar's added p50 / mcp-proxy-for-aws's added p50 | {sidecar_added:.3} / {proxy_added:.3} ms = 1/{:.1} | ≤ 1/20 | {} |",
        proxy_added / sidecar_added.max(1e-9),
        yes(sidecar_added * 20.0 <= proxy_added)
    )?;
    writeln!(
        out,
        "| mcp-proxy-for-aws RSS after load (VmRSS / VmHWM) | {:.1} MB / {:.1} MB |  |  |",
        fig("proxy", "rss_kib") / 1024.0,
        fig("proxy", "hwm_kib") / 1024.0
    )?;
    Ok(())
}
