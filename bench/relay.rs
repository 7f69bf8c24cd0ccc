//! Relay benchmark for mcp-sidecar: `cargo bench --bench relay`.
//!
//! A plain `main` (no criterion). In one run it starts, on 127.0.0.1 only:
//! - a fast upstream (`mcp-sidecar demo-upstream --stateless`) with a sidecar in front of it,
//! - a slow upstream (the Python FastMCP fixture in tests/peers) with its own sidecar,
//! - a demo-upstream with 1,000 extra tools behind a sidecar whose page size holds them all,
//!
//! and measures, with one hand-written keep-alive client (reqwest, HTTP/1.1):
//! - tools/call (echo) latency p50/p99, sequential, direct vs through the sidecar,
//! - tools/call throughput with a fixed number of requests in flight for a fixed window,
//! - tools/list latency with 1,000 cached tools,
//! - the sidecar's RSS idle after sync (VmRSS) and peak after load (VmHWM),
//! - the time from spawning a sidecar to its first tools/list answer holding the upstream's tools.
//!
//! It prints a Markdown table and writes it to bench/results/latest.md (child stderr logs go to
//! bench/results/logs/). Every child process is killed when the bench ends, also on error.
//!
//! The sidecar binary is the one cargo builds for this bench (`target/release/mcp-sidecar`);
//! `MCP_SIDECAR_BIN=/path` overrides it. The slow upstream needs `tests/setup.sh` to have made
//! `.venv` (override with `MCP_SIDECAR_BENCH_PYTHON`, `MCP_SIDECAR_BENCH_FIXTURE`); without it
//! that part is reported as skipped. `MCP_SIDECAR_BENCH_QUICK=1` runs a short smoke version whose
//! figures are not meant to be quoted.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use serde_json::{Value, json};

const PROTOCOL_VERSION: &str = "2025-06-18";
const ACCEPT: &str = "application/json, text/event-stream";
/// Upper bound on polling for a catalog or an upstream to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Hard cap on requests per throughput window, on top of the time bound.
const THROUGHPUT_MAX_REQUESTS: u64 = 5_000_000;
/// A throughput window stops early once this many requests have failed.
const THROUGHPUT_MAX_ERRORS: u64 = 1_000;

#[derive(Clone, Copy)]
struct Settings {
    quick: bool,
    warmup: usize,
    /// Sequential calls per endpoint, split into `rounds` alternating blocks
    /// (direct, sidecar, direct, ...) so background noise hits both alike.
    seq_calls: usize,
    rounds: usize,
    list_calls: usize,
    concurrency: usize,
    window: Duration,
    startup_spawns: usize,
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
                list_calls: 50,
                concurrency: 32,
                window: Duration::from_millis(500),
                startup_spawns: 2,
            }
        } else {
            Settings {
                quick,
                warmup: 200,
                seq_calls: 2_000,
                rounds: 4,
                list_calls: 1_000,
                concurrency: 32,
                window: Duration::from_secs(5),
                startup_spawns: 5,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process that is killed (and reaped) when dropped.
/// Ticks the whole machine spent in user, nice and system mode (from /proc/stat).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some(f.first()? + f.get(1)? + f.get(2)?)
}

/// The ephemeral ends of the loopback TCP connections that have `port` at one end, in any
/// state (TIME_WAIT included, so connections closed in the last minute still count).
fn tcp_peers_of_port(port: u16) -> std::collections::HashSet<u16> {
    let mut peers = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port_of = |a: &str| {
                a.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            let (Some(local), Some(remote)) = (
                f.get(1).and_then(|a| port_of(a)),
                f.get(2).and_then(|a| port_of(a)),
            ) else {
                continue;
            };
            if remote == port {
                peers.insert(local);
            } else if local == port && remote != 0 {
                peers.insert(remote);
            }
        }
    }
    peers
}

fn url_port(url: &str) -> Option<u16> {
    let authority = url.split("://").nth(1)?.split('/').next()?;
    authority.rsplit(':').next()?.parse().ok()
}

/// CPU used per successful call during a throughput window, in microseconds.
#[derive(Clone, Copy, Default)]
struct CpuPerCall {
    client: f64,
    sidecar: Option<f64>,
    upstream: f64,
}

impl CpuPerCall {
    fn total(&self) -> f64 {
        self.client + self.sidecar.unwrap_or(0.0) + self.upstream
    }

    fn describe(&self) -> String {
        match self.sidecar {
            Some(side) => format!(
                "client {:.0} + sidecar {:.0} + upstream {:.0} = {:.0} µs",
                self.client,
                side,
                self.upstream,
                self.total()
            ),
            None => format!(
                "client {:.0} + upstream {:.0} = {:.0} µs",
                self.client,
                self.upstream,
                self.total()
            ),
        }
    }
}

/// Throughput windows of one endpoint added up, with the CPU ticks of the client (this
/// process), the upstream and the sidecar (when there is one) over those windows.
#[derive(Default)]
struct Load {
    tput: Tput,
    first_error: Option<String>,
    client_ticks: u64,
    upstream_ticks: u64,
    sidecar_ticks: Option<u64>,
}

impl Load {
    /// Runs one throughput window and adds it up.
    async fn window(
        &mut self,
        ep: &Endpoint,
        body: &Bytes,
        s: Settings,
        upstream: &common::Proc,
        sidecar: Option<&common::Proc>,
    ) -> Result<()> {
        let ticks =
            |p: Option<&common::Proc>| p.and_then(|p| common::cpu_ticks(&p.pid().to_string()));
        let before = (
            common::cpu_ticks("self"),
            ticks(Some(upstream)),
            ticks(sidecar),
        );
        let (t, err) = throughput(ep, body, s, s.window / s.rounds as u32).await?;
        let after = (
            common::cpu_ticks("self"),
            ticks(Some(upstream)),
            ticks(sidecar),
        );
        let delta = |a: Option<u64>, b: Option<u64>| -> Result<u64> {
            Ok(b.ok_or_else(|| anyhow!("no CPU time"))?
                - a.ok_or_else(|| anyhow!("no CPU time"))?)
        };
        self.tput.ok += t.ok;
        self.tput.errors += t.errors;
        self.tput.elapsed += t.elapsed;
        if self.first_error.is_none() {
            self.first_error = err;
        }
        self.client_ticks += delta(before.0, after.0)?;
        self.upstream_ticks += delta(before.1, after.1)?;
        if sidecar.is_some() {
            *self.sidecar_ticks.get_or_insert(0) += delta(before.2, after.2)?;
        }
        Ok(())
    }

    fn cpu_per_call(&self, tick_us: f64) -> CpuPerCall {
        let per_call = |ticks: u64| ticks as f64 * tick_us / self.tput.ok.max(1) as f64;
        CpuPerCall {
            client: per_call(self.client_ticks),
            upstream: per_call(self.upstream_ticks),
            sidecar: self.sidecar_ticks.map(per_call),
        }
    }
}

fn free_loopback_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// The MCP client: JSON-RPC over streamable HTTP, one keep-alive pool.

#[derive(Clone)]
struct Endpoint {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

struct Reply {
    status: reqwest::StatusCode,
    content_type: String,
    body: Bytes,
}

impl Reply {
    /// The JSON-RPC message, from a JSON body or from the last `data:` event of an SSE body.
    fn message(&self) -> Result<Value> {
        if !self.status.is_success() {
            bail!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        if self.content_type.starts_with("text/event-stream") {
            let text = std::str::from_utf8(&self.body)?;
            let mut last = None;
            for line in text.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let v: Value = serde_json::from_str(data.trim())?;
                    if v.get("id").is_some() {
                        last = Some(v);
                    }
                }
            }
            last.ok_or_else(|| anyhow!("SSE body without a response"))
        } else {
            Ok(serde_json::from_slice(&self.body)?)
        }
    }

    fn result(&self) -> Result<Value> {
        let mut msg = self.message()?;
        if let Some(err) = msg.get("error") {
            bail!("JSON-RPC error: {err}");
        }
        msg.get_mut("result")
            .map(Value::take)
            .ok_or_else(|| anyhow!("no result in {msg}"))
    }

    /// A tools/call answer that succeeded (a result without `isError: true`).
    fn call_ok(&self) -> Result<()> {
        let result = self.result()?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("tool returned isError: {result}");
        }
        Ok(())
    }
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn rpc_body(method: &str, params: Value) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .unwrap(),
    )
}

impl Endpoint {
    fn new(http: &reqwest::Client, url: &str) -> Self {
        Endpoint {
            http: http.clone(),
            url: url.to_string(),
            session: None,
        }
    }

    async fn post(&self, body: Bytes) -> Result<Reply> {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("mcp-protocol-version", PROTOCOL_VERSION);
        if let Some(session) = &self.session {
            req = req.header("mcp-session-id", session);
        }
        let resp = req.body(body).send().await?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await?;
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    /// Makes the endpoint usable: stateless servers answer straight away; a server that wants a
    /// session gets one initialize (plus notifications/initialized) and its Mcp-Session-Id is
    /// reused for every later request.
    async fn prepare(&mut self) -> Result<()> {
        if self
            .post(rpc_body("tools/list", json!({})))
            .await
            .and_then(|r| r.result())
            .is_ok()
        {
            return Ok(());
        }
        let init = rpc_body(
            "initialize",
            json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "mcp-sidecar-bench", "version": "0"}}),
        );
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .body(init)
            .send()
            .await?;
        self.session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Reply {
            status,
            content_type,
            body: resp.bytes().await?,
        }
        .result()
        .context("initialize")?;
        let note =
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        let _ = self.post(Bytes::from(note)).await?;
        self.post(rpc_body("tools/list", json!({})))
            .await?
            .result()
            .context("tools/list after initialize")?;
        Ok(())
    }

    /// All tools, following nextCursor. Returns the tools and the number of pages.
    async fn list_all(&self) -> Result<(Vec<Value>, usize)> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for pages in 1..=10_000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let mut result = self.post(rpc_body("tools/list", params)).await?.result()?;
            if let Some(Value::Array(page)) = result.get_mut("tools").map(Value::take) {
                tools.extend(page);
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            if cursor.is_none() {
                return Ok((tools, pages));
            }
        }
        bail!("tools/list did not end after 10,000 pages")
    }
}

fn tool_name(tool: &Value) -> &str {
    tool.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The exposed name of a tool: `name` itself, or a prefixed `{target}___name`.
fn find_tool<'a>(tools: &'a [Value], name: &str) -> Option<&'a Value> {
    let suffix = format!("___{name}");
    tools
        .iter()
        .find(|t| tool_name(t) == name)
        .or_else(|| tools.iter().find(|t| tool_name(t).ends_with(&suffix)))
}

/// A tools/call body for the echo tool, with a short string in each required string argument
/// (and in `text` when the schema has one), so it fits whichever fixture exposes it.
fn echo_call_body(tool: &Value) -> Bytes {
    let schema = tool.get("inputSchema").cloned().unwrap_or(Value::Null);
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut args = serde_json::Map::new();
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for name in required
        .iter()
        .map(String::as_str)
        .chain(props.contains_key("text").then_some("text"))
    {
        args.insert(name.to_string(), json!("hello from the relay bench"));
    }
    rpc_body(
        "tools/call",
        json!({"name": tool_name(tool), "arguments": args}),
    )
}

/// Polls tools/list until `ready` accepts the full tool list (or the process dies / time runs out).
async fn wait_catalog(
    ep: &Endpoint,
    proc_: &mut common::Proc,
    ready: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last_err = match ep.list_all().await {
            Ok((tools, _)) if ready(&tools) => return Ok(tools),
            Ok((tools, _)) => format!("{} tools so far", tools.len()),
            Err(e) => format!("{e:#}"),
        };
        proc_.ensure_alive()?;
        if Instant::now() > deadline {
            bail!(
                "{}: catalog not ready after {READY_TIMEOUT:?} ({last_err}){}",
                proc_.name,
                proc_.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
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
    samples.sort_unstable();
    let n = samples.len();
    // Nearest-rank percentile.
    let at = |p: f64| samples[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
    Lat {
        p50: at(50.0),
        p99: at(99.0),
        n,
    }
}

/// Times `n` sequential requests: from sending to the last byte of the body. The body is
/// checked after the clock stops, so parsing costs are not part of the figure.
async fn sequential(
    ep: &Endpoint,
    body: &Bytes,
    n: usize,
    check: fn(&Reply) -> Result<()>,
) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let reply = ep.post(body.clone()).await?;
        samples.push(start.elapsed());
        check(&reply)?;
    }
    Ok(samples)
}

/// Sequential latency of two endpoints, measured in alternating blocks after a warm-up.
async fn compare_latency(
    direct: &Endpoint,
    dbody: &Bytes,
    side: &Endpoint,
    sbody: &Bytes,
    s: Settings,
) -> Result<(Lat, Lat)> {
    sequential(direct, dbody, s.warmup, Reply::call_ok)
        .await
        .context("warm-up direct")?;
    sequential(side, sbody, s.warmup, Reply::call_ok)
        .await
        .context("warm-up via sidecar")?;
    let (mut d, mut v) = (Vec::new(), Vec::new());
    let block = s.seq_calls / s.rounds;
    for _ in 0..s.rounds {
        d.extend(
            sequential(direct, dbody, block, Reply::call_ok)
                .await
                .context("latency direct")?,
        );
        v.extend(
            sequential(side, sbody, block, Reply::call_ok)
                .await
                .context("latency via sidecar")?,
        );
    }
    Ok((percentiles(d), percentiles(v)))
}

#[derive(Clone, Copy, Default)]
struct Tput {
    ok: u64,
    errors: u64,
    elapsed: Duration,
}

impl Tput {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// `concurrency` workers each send requests back to back until the window closes; only
/// successful tool results count. Elapsed time runs until the last in-flight request ends.
async fn throughput(
    ep: &Endpoint,
    body: &Bytes,
    s: Settings,
    window: Duration,
) -> Result<(Tput, Option<String>)> {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let deadline = start + window;
    let mut workers = Vec::new();
    for _ in 0..s.concurrency {
        let (ep, body) = (ep.clone(), body.clone());
        let (ok, errors, first_error) = (ok.clone(), errors.clone(), first_error.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline
                && ok.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed)
                    < THROUGHPUT_MAX_REQUESTS
                && errors.load(Ordering::Relaxed) < THROUGHPUT_MAX_ERRORS
            {
                match ep.post(body.clone()).await.and_then(|r| r.call_ok()) {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let t = Tput {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    };
    let first = first_error.lock().unwrap().clone();
    Ok((t, first))
}

// ---------------------------------------------------------------------------------------------
// Scenarios

struct UpstreamFigures {
    label: String,
    lat_direct: Lat,
    lat_side: Lat,
    tput_direct: Tput,
    tput_side: Tput,
    tput_errors: Vec<String>,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    cpu_direct: CpuPerCall,
    cpu_side: CpuPerCall,
    /// TCP connections between the sidecar and the upstream opened during the sidecar's
    /// throughput window (0 when it reused its pooled connections).
    upstream_conns: usize,
}

struct Ctx {
    bin: PathBuf,
    logs: PathBuf,
    tmp: PathBuf,
    http: reqwest::Client,
    s: Settings,
    tick_us: f64,
}

impl Ctx {
    fn sidecar_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve").args(args);
        cmd
    }

    /// Spawns a sidecar and polls it until tools/list holds what `ready` wants. Returns the
    /// process, its endpoint and the time from spawn to that first good answer.
    async fn start_sidecar(
        &self,
        name: &str,
        cmd: Command,
        ready: impl Fn(&[Value]) -> bool,
    ) -> Result<(common::Proc, Endpoint, Duration, Vec<Value>)> {
        let t0 = Instant::now();
        let mut p = common::Proc::spawn(name, cmd, &self.logs)?;
        let url = p.wait_listening()?;
        let ep = Endpoint::new(&self.http, &url);
        let tools = wait_catalog(&ep, &mut p, ready).await?;
        Ok((p, ep, t0.elapsed(), tools))
    }

    /// Latency and throughput of one upstream, direct and through `sidecar`.
    async fn measure_upstream(
        &self,
        label: &str,
        direct: &Endpoint,
        side: &Endpoint,
        upstream: &common::Proc,
        sidecar: &mut common::Proc,
        side_tools: &[Value],
    ) -> Result<UpstreamFigures> {
        let (direct_tools, _) = direct.list_all().await.context("direct tools/list")?;
        let d_echo = find_tool(&direct_tools, "echo")
            .ok_or_else(|| anyhow!("{label}: upstream has no echo tool"))?;
        let s_echo = find_tool(side_tools, "echo")
            .ok_or_else(|| anyhow!("{label}: sidecar exposes no echo tool"))?;
        let (dbody, sbody) = (echo_call_body(d_echo), echo_call_body(s_echo));
        // Both answer the same call before anything is timed.
        direct
            .post(dbody.clone())
            .await?
            .call_ok()
            .context("echo direct")?;
        side.post(sbody.clone())
            .await?
            .call_ok()
            .context("echo via sidecar")?;

        tokio::time::sleep(Duration::from_millis(300)).await;
        let (idle_rss_kib, _) = sidecar.memory_kib()?;

        eprintln!("  {label}: sequential tools/call latency ...");
        let (lat_direct, lat_side) = compare_latency(direct, &dbody, side, &sbody, self.s).await?;
        // Throughput in alternating windows (direct, sidecar, direct, ...), so load from
        // elsewhere on the machine falls on both alike.
        eprintln!("  {label}: throughput ...");
        let up_port = url_port(&direct.url).ok_or_else(|| anyhow!("no port in {}", direct.url))?;
        let (mut load_direct, mut load_side) = (Load::default(), Load::default());
        let mut conns_before = None;
        for _ in 0..self.s.rounds {
            load_direct
                .window(direct, &dbody, self.s, upstream, None)
                .await?;
            // Taken after the client's own pool to the upstream has grown, so only the
            // sidecar's connections to the upstream are new after this.
            conns_before.get_or_insert_with(|| tcp_peers_of_port(up_port));
            load_side
                .window(side, &sbody, self.s, upstream, Some(sidecar))
                .await?;
        }
        let conns_before = conns_before.unwrap_or_default();
        let upstream_conns = tcp_peers_of_port(up_port).difference(&conns_before).count();
        let (tput_direct, tput_side) = (load_direct.tput, load_side.tput);
        let (cpu_direct, cpu_side) = (
            load_direct.cpu_per_call(self.tick_us),
            load_side.cpu_per_call(self.tick_us),
        );
        let (e1, e2) = (load_direct.first_error, load_side.first_error);
        sidecar.ensure_alive()?;
        let (_, peak_rss_kib) = sidecar.memory_kib()?;
        let mut tput_errors = Vec::new();
        if let Some(e) = e1 {
            tput_errors.push(format!(
                "{label} direct: {} errors, first: {e}",
                tput_direct.errors
            ));
        }
        if let Some(e) = e2 {
            tput_errors.push(format!(
                "{label} via sidecar: {} errors, first: {e}",
                tput_side.errors
            ));
        }
        Ok(UpstreamFigures {
            label: label.to_string(),
            lat_direct,
            lat_side,
            tput_direct,
            tput_side,
            tput_errors,
            idle_rss_kib,
            peak_rss_kib,
            cpu_direct,
            cpu_side,
            upstream_conns,
        })
    }

    async fn fast(&self) -> Result<(UpstreamFigures, Vec<Duration>)> {
        let mut up = common::Proc::spawn(
            "fast-upstream",
            {
                let mut c = Command::new(&self.bin);
                c.args(["demo-upstream", "--listen", "127.0.0.1:0", "--stateless"]);
                c
            },
            &self.logs,
        )?;
        let up_url = up.wait_listening()?;
        let mut direct = Endpoint::new(&self.http, &up_url);
        direct.prepare().await.context("fast upstream")?;

        let args = [
            "--upstream-url",
            up_url.as_str(),
            "--target-name",
            "fast",
            "--listen",
            "127.0.0.1:0",
        ];
        let has_echo = |t: &[Value]| find_tool(t, "echo").is_some();
        // Start-up time: the first spawn is the sidecar used for the load; the others are
        // spawned, timed and stopped one after another.
        let (mut sidecar, side, first, side_tools) = self
            .start_sidecar("fast-sidecar", self.sidecar_cmd(&args), has_echo)
            .await?;
        let mut startups = vec![first];
        for i in 1..self.s.startup_spawns {
            let (p, _, t, _) = self
                .start_sidecar(
                    &format!("fast-sidecar-startup-{i}"),
                    self.sidecar_cmd(&args),
                    has_echo,
                )
                .await?;
            drop(p);
            startups.push(t);
        }
        let figs = self
            .measure_upstream("fast", &direct, &side, &up, &mut sidecar, &side_tools)
            .await?;
        up.ensure_alive()?;
        Ok((figs, startups))
    }

    async fn slow(&self, python: &Path, fixture: &Path) -> Result<UpstreamFigures> {
        let port = free_loopback_port()?;
        let mut cmd = Command::new(python);
        cmd.arg(fixture).args(["--port", &port.to_string()]);
        let mut up = common::Proc::spawn("slow-upstream", cmd, &self.logs)?;
        let up_url = format!("http://127.0.0.1:{port}/mcp");
        let mut direct = Endpoint::new(&self.http, &up_url);
        let deadline = Instant::now() + READY_TIMEOUT;
        while direct.prepare().await.is_err() {
            up.ensure_alive()?;
            if Instant::now() > deadline {
                bail!("slow upstream not answering at {up_url}{}", up.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--upstream-url",
            up_url.as_str(),
            "--target-name",
            "slow",
            "--listen",
            "127.0.0.1:0",
        ];
        let (mut sidecar, side, _, side_tools) = self
            .start_sidecar("slow-sidecar", self.sidecar_cmd(&args), |t| {
                find_tool(t, "echo").is_some()
            })
            .await?;
        let figs = self
            .measure_upstream("slow", &direct, &side, &up, &mut sidecar, &side_tools)
            .await?;
        up.ensure_alive()?;
        Ok(figs)
    }

    async fn many_tools(&self) -> Result<ListFigures> {
        const EXTRA: usize = 1_000;
        let mut up = common::Proc::spawn(
            "many-upstream",
            {
                let mut c = Command::new(&self.bin);
                c.args([
                    "demo-upstream",
                    "--listen",
                    "127.0.0.1:0",
                    "--stateless",
                    "--extra-tools",
                    &EXTRA.to_string(),
                ]);
                c
            },
            &self.logs,
        )?;
        let up_url = up.wait_listening()?;
        let mut direct = Endpoint::new(&self.http, &up_url);
        direct.prepare().await.context("1,000-tool upstream")?;
        let (direct_tools, direct_pages) = direct.list_all().await?;

        let config = self.tmp.join("many.toml");
        std::fs::write(
            &config,
            format!(
                "[inbound]\nlisten = \"127.0.0.1:0\"\npath = \"/mcp\"\n\n[catalog]\npage_size = 2000\n\n\
                 [[targets]]\nname = \"many\"\nkind = \"mcp_server\"\nurl = \"{up_url}\"\n"
            ),
        )?;
        let config_str = config.to_string_lossy().into_owned();
        let want = direct_tools.len();
        let (mut sidecar, side, _, tools) = self
            .start_sidecar(
                "many-sidecar",
                self.sidecar_cmd(&["--config", &config_str]),
                |t| t.len() >= want,
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (idle_rss_kib, _) = sidecar.memory_kib()?;

        // One request per page; when everything fits in one page this is one tools/list.
        let (_, pages) = side.list_all().await?;
        let list_body = rpc_body("tools/list", json!({}));
        eprintln!("  1,000 tools: tools/list latency ({pages} page(s) per listing) ...");
        for _ in 0..self.s.warmup.min(100) {
            timed_listing(&side, &list_body, pages).await?;
            timed_listing(&direct, &list_body, direct_pages).await?;
        }
        let (mut via, mut dir) = (Vec::new(), Vec::new());
        let block = self.s.list_calls / self.s.rounds;
        for _ in 0..self.s.rounds {
            for _ in 0..block {
                via.push(timed_listing(&side, &list_body, pages).await?);
            }
            // Reference: the same listing straight from the upstream (built live by rmcp).
            for _ in 0..block / 4 {
                dir.push(timed_listing(&direct, &list_body, direct_pages).await?);
            }
        }
        sidecar.ensure_alive()?;
        up.ensure_alive()?;
        let (_, peak_rss_kib) = sidecar.memory_kib()?;
        let body_bytes = side
            .post(rpc_body("tools/list", json!({})))
            .await?
            .body
            .len();
        Ok(ListFigures {
            tools: tools.len(),
            pages,
            body_bytes,
            via: percentiles(via),
            direct: percentiles(dir),
            idle_rss_kib,
            peak_rss_kib,
        })
    }
}

/// One complete listing: a single tools/list when everything fits in one
/// page (timed like a tools/call, checked afterwards), otherwise every page in turn.
async fn timed_listing(ep: &Endpoint, body: &Bytes, pages: usize) -> Result<Duration> {
    if pages == 1 {
        let d = sequential(ep, body, 1, check_list).await?;
        Ok(d[0])
    } else {
        let start = Instant::now();
        ep.list_all().await?;
        Ok(start.elapsed())
    }
}

fn check_list(r: &Reply) -> Result<()> {
    let result = r.result()?;
    if result
        .get("tools")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        bail!("tools/list answer without tools");
    }
    if result.get("nextCursor").is_some_and(|c| !c.is_null()) {
        bail!("tools/list answer unexpectedly paged");
    }
    Ok(())
}

struct ListFigures {
    tools: usize,
    pages: usize,
    body_bytes: usize,
    via: Lat,
    direct: Lat,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
}

// ---------------------------------------------------------------------------------------------
// Report

fn signed_ms(a: Duration, b: Duration) -> (f64, String) {
    let diff = (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
    (diff, format!("{diff:+.3} ms"))
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**NO**" }
}

struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    fn row(
        &mut self,
        measure: impl Into<String>,
        value: impl Into<String>,
        target: &str,
        met: Option<bool>,
    ) {
        let met = met.map(verdict).unwrap_or("").to_string();
        self.rows
            .push([measure.into(), value.into(), target.to_string(), met]);
    }

    fn upstream(&mut self, f: &UpstreamFigures, tput_target_pct: f64, s: Settings) {
        let l = &f.label;
        self.row(
            format!(
                "{l}: tools/call p50, direct → via sidecar ({} calls each)",
                f.lat_direct.n
            ),
            format!(
                "{} → {}",
                common::ms(f.lat_direct.p50),
                common::ms(f.lat_side.p50)
            ),
            "",
            None,
        );
        self.row(
            format!("{l}: tools/call p99, direct → via sidecar"),
            format!(
                "{} → {}",
                common::ms(f.lat_direct.p99),
                common::ms(f.lat_side.p99)
            ),
            "",
            None,
        );
        let (added, added_s) = signed_ms(f.lat_side.p50, f.lat_direct.p50);
        self.row(
            format!("{l}: added p50 latency (sidecar − direct)"),
            added_s,
            "≤ 0.2 ms",
            Some(added <= 0.2),
        );
        self.row(
            format!(
                "{l}: throughput, {} in flight, {} × {:.2} s per endpoint (alternating), direct → via sidecar",
                s.concurrency,
                s.rounds,
                s.window.as_secs_f64() / s.rounds as f64
            ),
            format!(
                "{} → {} calls/s",
                thousands(f.tput_direct.per_sec()),
                thousands(f.tput_side.per_sec())
            ),
            "",
            None,
        );
        let ratio = 100.0 * f.tput_side.per_sec() / f.tput_direct.per_sec();
        self.row(
            format!("{l}: throughput ratio (sidecar / direct)"),
            format!("{ratio:.1} %"),
            &format!("≥ {tput_target_pct:.0} %"),
            Some(ratio >= tput_target_pct),
        );
        self.row(
            format!("{l}: CPU per call during the throughput windows, direct → via sidecar"),
            format!("{} → {}", f.cpu_direct.describe(), f.cpu_side.describe()),
            "",
            None,
        );
    }

    fn markdown(&self) -> String {
        let mut out = String::from("| Measure | Value | Target | Met |\n|---|---|---|---|\n");
        for [a, b, c, d] in &self.rows {
            let _ = writeln!(out, "| {a} | {b} | {c} | {d} |");
        }
        out
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`
    // (which passes --bench), so the test suite never builds release or runs a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benchmark skipped: run it with `cargo bench --bench relay`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // SIGINT/SIGTERM end the run the same way an error does: the scenario futures are dropped,
    // and with them every child process.
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run() => r,
            sig = shutdown_signal() => Err(anyhow!("interrupted by {sig}")),
        }
    });
    drop(runtime);
    if let Err(e) = outcome {
        eprintln!("relay bench failed: {e:#}");
        std::process::exit(1);
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

async fn run() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let s = Settings::from_env();
    let bin = common::sidecar_bin()?;
    let results = root.join("bench/results");
    let logs = results.join("logs");
    std::fs::create_dir_all(&logs)?;
    let tmp = std::env::temp_dir().join(format!("mcp-sidecar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let _cleanup_tmp = scopeguard(tmp.clone());

    let python = std::env::var_os("MCP_SIDECAR_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let fixture = std::env::var_os("MCP_SIDECAR_BENCH_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/peers/fixtures/fastmcp_server.py"));

    let ctx = Ctx {
        bin: bin.clone(),
        logs,
        tmp,
        http: http_client()?,
        s,
        tick_us: 1e6 / common::clock_ticks_per_sec(),
    };
    let load_start = loadavg();
    let run_start = Instant::now();
    let busy_start = machine_busy_ticks();
    let own_start = common::cpu_ticks("self");
    eprintln!(
        "relay bench: binary {}{}",
        bin.display(),
        if s.quick { " (QUICK smoke run)" } else { "" }
    );

    eprintln!("fast upstream (demo-upstream --stateless) ...");
    let (fast, startups) = ctx.fast().await?;

    let slow = if python.is_file() && fixture.is_file() {
        eprintln!("slow upstream (FastMCP fixture) ...");
        Some(ctx.slow(&python, &fixture).await?)
    } else {
        eprintln!(
            "slow upstream skipped: {} or {} missing (run tests/setup.sh, or set MCP_SIDECAR_BENCH_PYTHON / MCP_SIDECAR_BENCH_FIXTURE)",
            python.display(),
            fixture.display()
        );
        None
    };

    eprintln!("1,000-tool catalog ...");
    let many = ctx.many_tools().await?;
    let load_end = loadavg();
    // CPU that neither this bench nor its children used, as a share of the machine.
    let foreign_pct = (|| {
        let busy = machine_busy_ticks()? - busy_start?;
        let ours =
            common::cpu_ticks("self")? - own_start? + common::CHILD_TICKS.load(Ordering::Relaxed);
        let capacity = run_start.elapsed().as_secs_f64()
            * common::clock_ticks_per_sec()
            * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Some(100.0 * busy.saturating_sub(ours) as f64 / capacity)
    })();

    // ---- the table
    let mut t = Table { rows: Vec::new() };
    t.upstream(&fast, 50.0, s);
    match &slow {
        Some(f) => t.upstream(f, 90.0, s),
        None => t.row(
            "slow (FastMCP fixture): all figures",
            "skipped: fixture or .venv missing",
            "",
            None,
        ),
    }
    let paging = if many.pages == 1 {
        "one tools/list, page_size = 2000".to_string()
    } else {
        format!("paged: {} tools/list requests per listing", many.pages)
    };
    t.row(
        format!(
            "tools/list, {} cached tools, p50 / p99 ({paging}, {} bytes)",
            thousands(many.tools as f64),
            thousands(many.body_bytes as f64)
        ),
        format!(
            "{} / {}",
            common::ms(many.via.p50),
            common::ms(many.via.p99)
        ),
        "≤ 1 ms p50",
        Some(many.via.p50 <= Duration::from_millis(1)),
    );
    t.row(
        format!(
            "tools/list, same {} tools straight from the upstream, p50 / p99 (reference)",
            thousands(many.tools as f64)
        ),
        format!(
            "{} / {}",
            common::ms(many.direct.p50),
            common::ms(many.direct.p99)
        ),
        "",
        None,
    );
    let mut idle = vec![("fast", fast.idle_rss_kib)];
    let mut peak = vec![("fast", fast.peak_rss_kib)];
    if let Some(f) = &slow {
        idle.push(("slow", f.idle_rss_kib));
        peak.push(("slow", f.peak_rss_kib));
    }
    idle.push(("1,000-tool", many.idle_rss_kib));
    peak.push(("1,000-tool", many.peak_rss_kib));
    for (name, kib) in &idle {
        t.row(
            format!("sidecar idle RSS after sync ({name})"),
            mb(*kib),
            "≤ 30 MB",
            Some(*kib as f64 * 1024.0 <= 30e6),
        );
    }
    t.row(
        "sidecar peak RSS (VmHWM) after load",
        peak.iter()
            .map(|(n, k)| format!("{n} {}", mb(*k)))
            .collect::<Vec<_>>()
            .join(", "),
        "",
        None,
    );
    let mut sorted = startups.clone();
    sorted.sort_unstable();
    t.row(
        format!("spawn → first tools/list with the upstream's tools (median / max of {}, polled every ~1 ms)", sorted.len()),
        format!("{} / {}", common::ms(sorted[sorted.len() / 2]), common::ms(*sorted.last().unwrap())),
        "",
        None,
    );

    // ---- notes
    let mut notes = String::new();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(
        notes,
        "- Binary: `{}`{}",
        bin.display(),
        if s.quick {
            " — QUICK smoke run, figures not representative"
        } else {
            ""
        }
    );
    if let Some(rev) = command_line(
        "git",
        &[
            "-C",
            &root.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    ) {
        let dirty = command_line(
            "git",
            &[
                "-C",
                &root.to_string_lossy(),
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
        )
        .is_some_and(|s| !s.is_empty());
        let _ = writeln!(
            notes,
            "- Commit: {rev}{}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        notes,
        "- Machine: {cores} CPU(s), shared by the client, the sidecars and the upstreams; load average at start {load_start}, at end {load_end} \
         (these include the bench's own processes); CPU used by other processes during the run: {}.",
        foreign_pct.map_or("unknown".to_string(), |p| format!(
            "about {p:.0} % of the machine"
        ))
    );
    let _ = writeln!(
        notes,
        "- Client: reqwest keep-alive HTTP/1.1, JSON-RPC POST, `MCP-Protocol-Version: {PROTOCOL_VERSION}`; a latency sample runs from send to the last body byte; \
         sequential calls after {} warm-up calls, in {} alternating direct/sidecar blocks; throughput counts successful tool results only.",
        s.warmup, s.rounds
    );
    let _ = writeln!(
        notes,
        "- Fast upstream: `mcp-sidecar demo-upstream --stateless`; slow upstream: Python FastMCP fixture (`{}`); both called with their `echo` tool; sidecars in zero-file mode.",
        fixture.strip_prefix(&root).unwrap_or(&fixture).display()
    );
    let _ = writeln!(
        notes,
        "- tools/list: demo-upstream `--extra-tools 1000` behind a sidecar configured with `[catalog] page_size = 2000`; {paging}."
    );
    for f in std::iter::once(&fast).chain(slow.iter()) {
        let _ = writeln!(
            notes,
            "- {}: the sidecar opened {} TCP connection(s) to the upstream while relaying {} calls in its throughput windows.",
            f.label,
            f.upstream_conns,
            thousands(f.tput_side.ok as f64)
        );
    }
    let _ = writeln!(
        notes,
        "- CPU per call: utime + stime of each process over the throughput windows, divided by the successful calls; \
         with all processes on {cores} CPU(s), throughput is bounded by about {cores} s of CPU per second divided by the total."
    );
    for e in fast
        .tput_errors
        .iter()
        .chain(slow.iter().flat_map(|f| f.tput_errors.iter()))
    {
        let _ = writeln!(notes, "- Errors during throughput: {e}");
    }

    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let report = format!(
        "# mcp-sidecar relay benchmark ({date})\n\n{}\n{notes}",
        t.markdown()
    );
    println!("{report}");
    let out = results.join("latest.md");
    std::fs::write(&out, &report)?;
    eprintln!("written to {}", out.display());
    Ok(())
}

/// Removes the temp directory when dropped.
struct TmpDir(PathBuf);
fn scopeguard(p: PathBuf) -> TmpDir {
    TmpDir(p)
}
impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
