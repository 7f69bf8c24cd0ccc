//! stdio benchmark for mcp-sidecar: `cargo bench --bench stdio`.
//!
//! A plain `main` (no criterion). In one run it starts, on 127.0.0.1 only, the demo MCP server
//! over stdio (`mcp-sidecar demo-upstream --stdio`) twice:
//! - once as the child of a direct stdio client written here (one pipe pair, JSON-RPC lines,
//!   many requests in flight routed back by id: what an MCP host does with a stdio server),
//! - once as the child of a sidecar (`kind = "stdio"`), called over HTTP (JSON answers) with a
//!   keep-alive client,
//!
//! and measures `tools/call` (echo) on both paths in the same run:
//! - latency p50/p99, sequential, in alternating blocks (direct, sidecar, direct, …);
//! - throughput with a fixed number of calls in flight, in alternating windows, and the ratio.
//!
//! It prints a Markdown table and writes it to bench/results/stdio.md (child logs go to
//! bench/results/logs/). Every child process is killed when the bench ends, also on error.
//! `MCP_SIDECAR_BIN=/path` overrides the binary; `MCP_SIDECAR_BENCH_QUICK=1` runs a short
//! smoke version whose figures are not meant to be quoted.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

const PROTOCOL_VERSION: &str = "2025-06-18";
/// A throughput window stops early once this many calls have failed.
const MAX_ERRORS: u64 = 1_000;

#[derive(Clone, Copy)]
struct Settings {
    quick: bool,
    warmup: usize,
    seq_calls: usize,
    rounds: usize,
    concurrency: usize,
    window: Duration,
    windows: usize,
}

impl Settings {
    fn from_env() -> Self {
        let quick =
            std::env::var("MCP_SIDECAR_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Settings {
                quick,
                warmup: 20,
                seq_calls: 200,
                rounds: 2,
                concurrency: 32,
                window: Duration::from_millis(500),
                windows: 1,
            }
        } else {
            Settings {
                quick,
                warmup: 300,
                seq_calls: 3_000,
                rounds: 6,
                concurrency: 32,
                window: Duration::from_secs(4),
                windows: 3,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The two clients

/// Something that answers one `tools/call` (echo) and says whether it succeeded.
trait Caller: Clone + Send + Sync + 'static {
    fn call(&self) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// A direct MCP stdio client: the server is its child; requests are numbered and written
/// as lines; one reader task routes response lines back by id.
#[derive(Clone)]
struct StdioClient {
    writer: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_id: Arc<AtomicU64>,
    _child: Arc<ChildGuard>,
}

/// Kills (and reaps) the direct client's server when the last handle goes.
struct ChildGuard(Mutex<Option<tokio::process::Child>>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.lock().unwrap().take() {
            let _ = child.start_kill();
            let _ = child.try_wait();
        }
    }
}

impl StdioClient {
    async fn start(bin: &Path, logs: &Path) -> Result<Self> {
        let log = std::fs::File::create(logs.join("stdio-direct-server.log"))?;
        let mut child = tokio::process::Command::new(bin)
            .args(["demo-upstream", "--stdio"])
            .env("MCP_SIDECAR_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting the direct stdio server")?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let (writer, mut queue) = mpsc::channel::<Vec<u8>>(1024);
        tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(&mut stdin);
            while let Some(first) = queue.recv().await {
                let mut line = Some(first);
                while let Some(l) = line.take().or_else(|| queue.try_recv().ok()) {
                    if out.write_all(&l).await.is_err() || out.write_all(b"\n").await.is_err() {
                        return;
                    }
                }
                if out.flush().await.is_err() {
                    return;
                }
            }
        });
        let routes = pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(id) = message.get("id").and_then(Value::as_u64)
                    && let Some(tx) = routes.lock().unwrap().remove(&id)
                {
                    let _ = tx.send(message);
                }
            }
        });
        let client = StdioClient {
            writer,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            _child: Arc::new(ChildGuard(Mutex::new(Some(child)))),
        };
        let init = client
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": "bench-direct", "version": "0"}}),
            )
            .await?;
        if init.get("result").is_none() {
            bail!("initialize failed: {init}");
        }
        client
            .writer
            .send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec())
            .await?;
        Ok(client)
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let line = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )?;
        self.writer.send(line).await?;
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| anyhow!("{method}: no answer within 30 s"))?
            .map_err(|_| anyhow!("{method}: the server went away"))
    }
}

impl Caller for StdioClient {
    async fn call(&self) -> Result<()> {
        let answer = self
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "hello"}}),
            )
            .await?;
        check_echo(answer.get("result"))
    }
}

/// The sidecar's MCP endpoint over a keep-alive HTTP client.
#[derive(Clone)]
struct HttpCaller {
    http: reqwest::Client,
    url: String,
    body: bytes::Bytes,
}

impl Caller for HttpCaller {
    async fn call(&self) -> Result<()> {
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(self.body.clone())
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        let message: Value = serde_json::from_slice(&body)?;
        check_echo(message.get("result"))
    }
}

fn check_echo(result: Option<&Value>) -> Result<()> {
    match result.and_then(|r| r["content"][0]["text"].as_str()) {
        Some("hello") => Ok(()),
        _ => bail!("unexpected echo answer: {result:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

#[derive(Clone, Copy, Default)]
struct Lat {
    p50: Duration,
    p99: Duration,
    n: usize,
}

fn percentiles(mut samples: Vec<Duration>) -> Lat {
    let n = samples.len();
    Lat {
        p50: common::quantile(&mut samples, 0.50),
        p99: common::quantile(&mut samples, 0.99),
        n,
    }
}

async fn sequential(caller: &impl Caller, n: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        caller.call().await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// `concurrency` workers call back to back until the window closes; calls per second.
async fn throughput(caller: &impl Caller, s: Settings) -> Result<f64> {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + s.window;
    let workers: Vec<_> = (0..s.concurrency)
        .map(|_| {
            let (caller, ok, errors, first_error) = (
                caller.clone(),
                ok.clone(),
                errors.clone(),
                first_error.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline && errors.load(Ordering::Relaxed) < MAX_ERRORS {
                    match caller.call().await {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            first_error
                                .lock()
                                .unwrap()
                                .get_or_insert_with(|| format!("{e:#}"));
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    if let Some(e) = first_error.lock().unwrap().take() {
        bail!(
            "{} calls failed in a throughput window; first: {e}",
            errors.load(Ordering::Relaxed)
        );
    }
    Ok(ok.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benchmark skipped: run it with `cargo bench --bench stdio`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run() => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    drop(runtime);
    if let Err(e) = outcome {
        eprintln!("stdio bench failed: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let s = Settings::from_env();
    let bin = common::sidecar_bin()?;
    let logs = common::logs_dir()?;
    let results = common::root().join("bench/results");
    let config = results.join("stdio-bench.toml");
    std::fs::write(
        &config,
        format!(
            "[inbound]\nlisten = \"127.0.0.1:0\"\n\n[[targets]]\nname = \"demo\"\nkind = \"stdio\"\n\
             command = {}\nargs = [\"demo-upstream\", \"--stdio\"]\nenv = {{ MCP_SIDECAR_LOG = \"warn\" }}\n",
            json!(bin.display().to_string())
        ),
    )?;
    let (mut sidecar, url) =
        common::spawn_listening(&bin, &["serve", "--config", &config.display().to_string()]);
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let via = HttpCaller {
        http,
        url,
        body: bytes::Bytes::from(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "demo___echo", "arguments": {"text": "hello"}}})
            .to_string(),
        ),
    };
    // The catalog fills in the background: wait (bounded) until the tool answers.
    let ready_by = Instant::now() + Duration::from_secs(60);
    while let Err(e) = via.call().await {
        if Instant::now() > ready_by {
            bail!(
                "the sidecar's stdio target never answered: {e:#}{}",
                sidecar.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let direct = StdioClient::start(&bin, &logs).await?;

    // Latency, alternating blocks after a warm-up of each.
    sequential(&direct, s.warmup)
        .await
        .context("warm-up direct")?;
    sequential(&via, s.warmup)
        .await
        .context("warm-up via sidecar")?;
    let (mut d, mut v) = (Vec::new(), Vec::new());
    for _ in 0..s.rounds {
        d.extend(sequential(&direct, s.seq_calls / s.rounds).await?);
        v.extend(sequential(&via, s.seq_calls / s.rounds).await?);
    }
    let (lat_d, lat_v) = (percentiles(d), percentiles(v));

    // Throughput, alternating windows.
    let (mut tput_d, mut tput_v) = (Vec::new(), Vec::new());
    for _ in 0..s.windows {
        tput_d.push(throughput(&direct, s).await.context("throughput direct")?);
        tput_v.push(
            throughput(&via, s)
                .await
                .context("throughput via sidecar")?,
        );
    }
    sidecar.ensure_alive()?;
    let (rss, hwm) = sidecar.memory_kib()?;
    let median = |mut xs: Vec<f64>| {
        xs.sort_by(|a, b| a.total_cmp(b));
        xs[xs.len() / 2]
    };
    let (td, tv) = (median(tput_d), median(tput_v));

    let mut out = String::new();
    writeln!(
        out,
        "## stdio relay (`cargo bench --bench stdio`{})\n",
        if s.quick {
            ", QUICK: not for quoting"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "The demo server over stdio (`mcp-sidecar demo-upstream --stdio`), `tools/call` echo; \
         direct: a stdio client holding the server's pipes; via sidecar: HTTP to a sidecar \
         whose `kind = \"stdio\"` target runs the same server.\n"
    )?;
    writeln!(
        out,
        "| measure | direct stdio | via sidecar | sidecar − direct |"
    )?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    for (label, a, b) in [("p50", lat_d.p50, lat_v.p50), ("p99", lat_d.p99, lat_v.p99)] {
        writeln!(
            out,
            "| latency {label} (sequential, n = {}) | {} | {} | {:+.3} ms |",
            lat_d.n,
            common::ms(a),
            common::ms(b),
            (b.as_secs_f64() - a.as_secs_f64()) * 1000.0
        )?;
    }
    writeln!(
        out,
        "| throughput, {} in flight (median of {} × {:.1} s windows) | {:.0} calls/s | {:.0} calls/s | ratio {:.2} |",
        s.concurrency,
        s.windows,
        s.window.as_secs_f64(),
        td,
        tv,
        tv / td
    )?;
    writeln!(
        out,
        "| sidecar memory after the run | | RSS {:.1} MiB (peak {:.1} MiB) | |",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    )?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    writeln!(
        out,
        "\nMachine: {} CPUs, load average at the end {}.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    print!("{out}");
    let file: PathBuf = results.join("stdio.md");
    std::fs::write(&file, &out)?;
    eprintln!("written to {}", file.display());
    drop(direct);
    // SIGTERM first, so the sidecar stops its own stdio server (the drop would SIGKILL it).
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(sidecar.pid() as libc::pid_t, libc::SIGTERM) };
    let stopped_by = Instant::now() + Duration::from_secs(5);
    while Instant::now() < stopped_by && sidecar.child.try_wait()?.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(sidecar);
    let _ = std::fs::remove_file(&config);
    Ok(())
}
