//! Proxy cost against the floor (issue 15): `cargo bench --bench proxy`.
//!
//! In one run, on 127.0.0.1 only, in front of one demo upstream (`mcp-sidecar demo-upstream
//! --stateless`), `wrk` drives `tools/call` of `echo` along these paths:
//!
//! - `direct`: straight to the upstream;
//! - `floor`: through a minimal hyper pass-through proxy (`bench/floor_proxy.rs`, run as a
//!   process of its own: this bench binary re-executes itself as `floor-proxy`);
//! - `sidecar`: through a release sidecar, no auth;
//! - `sidecar+auth`: through a sidecar with a JWT authorizer (ES256 keys from an in-process
//!   issuer; one token, so the validation cache answers) and SigV4 upstream (static test
//!   keys with a session token; the upstream does not check signatures);
//! - with `MCP_SIDECAR_BENCH_MODERN=1` also `sidecar@2026` (a sidecar that negotiates the
//!   newest version, 2026-07-28, with the upstream) and `direct@2026` (a 2026-07-28 client
//!   straight to the upstream), to see what that version costs each side.
//!
//! Like with like: the client speaks 2025-06-18 (what `direct` and `floor` send the
//! upstream); the sidecars of the first two paths pin their target to 2025-06-18
//! (`protocol_version`), so the upstream does the same work on every path and the
//! difference is the proxy's.
//!
//! Measures, alternating the paths window by window over several rounds (so load from
//! elsewhere on the machine falls on all of them alike):
//! - throughput with 32 connections (`wrk -t1 -c32`), and the CPU per call of each process
//!   (utime + stime from `/proc/PID/stat` over the window; wrk's from `getrusage`);
//! - p50 latency on one connection (`wrk -t1 -c1`), and what each path adds over `direct`;
//! - CPU used by other processes during each window (the machine is shared).
//!
//! Every answer is checked by the wrk script (HTTP 200, the echoed text, no error); a window
//! with a bad answer fails the run. Reports medians over the rounds with the spread
//! (min–max), and the targets of issue 15 against the floor. Written to
//! `bench/results/proxy.md`.
//!
//! Settings: `MCP_SIDECAR_BENCH_WINDOW_SECS` (default 10), `MCP_SIDECAR_BENCH_ROUNDS` (3),
//! `MCP_SIDECAR_BENCH_LATENCY_SECS` (5), `MCP_SIDECAR_BENCH_QUICK=1` (2 s windows, 2
//! rounds: a smoke run whose figures are not meant to be quoted). Needs `wrk` (Debian
//! package `wrk`).

#[path = "common/mod.rs"]
mod common;
#[path = "floor_proxy.rs"]
mod floor_proxy;
#[path = "../tests/common/issuer.rs"]
mod issuer;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

/// The sidecar's allocator, so the floor proxy (this binary re-executed) is not judged on a
/// slower malloc than the proxy it is compared with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENT_VERSION: &str = "2025-06-18";
const ECHO_TEXT: &str = "hello from the proxy bench";
const CONNECTIONS: usize = 32;
/// Test keys only; the demo upstream does not check signatures.
const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARKONLY01"),
    ("AWS_SECRET_ACCESS_KEY", "bench/secret/not+a+real+key"),
    ("AWS_SESSION_TOKEN", "bench-session-token"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

#[derive(Clone, Copy)]
struct Settings {
    quick: bool,
    window: Duration,
    latency_window: Duration,
    rounds: usize,
    modern: bool,
}

impl Settings {
    fn from_env() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty() && v != "0");
        let quick = env("MCP_SIDECAR_BENCH_QUICK").is_some();
        let secs = |k: &str, default: u64| {
            env(k)
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(default), Duration::from_secs)
        };
        let (window, latency, rounds) = if quick { (2, 2, 2) } else { (10, 5, 3) };
        Settings {
            quick,
            window: secs("MCP_SIDECAR_BENCH_WINDOW_SECS", window),
            latency_window: secs("MCP_SIDECAR_BENCH_LATENCY_SECS", latency),
            rounds: env("MCP_SIDECAR_BENCH_ROUNDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(rounds),
            modern: env("MCP_SIDECAR_BENCH_MODERN").is_some(),
        }
    }
}

/// One way to the upstream.
struct Route {
    key: &'static str,
    label: &'static str,
    url: String,
    script: PathBuf,
    /// The proxy in the middle (floor or sidecar), whose CPU is measured.
    middle: Option<u32>,
}

/// What one wrk run reported.
#[derive(Clone, Copy, Debug, Default)]
struct WrkRun {
    requests: u64,
    bad: u64,
    errors: u64,
    p50_us: f64,
    seconds: f64,
    /// CPU per call (µs) of the upstream, the middle process and wrk.
    upstream_cpu: f64,
    middle_cpu: f64,
    wrk_cpu: f64,
    /// CPU other processes used during the window, as a share of the machine (%).
    foreign_pct: f64,
}

impl WrkRun {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("floor-proxy") {
        floor_proxy::main(&args[2..]);
        return;
    }
    // `cargo test --all-targets` runs bench targets too; measure only under `cargo bench`.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("benchmark skipped: run it with `cargo bench --bench proxy`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("proxy bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn wrk_script(dir: &Path, name: &str, body: &str, headers: &[(&str, String)]) -> Result<PathBuf> {
    let mut lua = String::new();
    let _ = writeln!(lua, "wrk.method = \"POST\"");
    let _ = writeln!(lua, "wrk.body = [==[{body}]==]");
    let mut all = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", "application/json, text/event-stream".to_string()),
    ];
    all.extend(headers.iter().map(|(k, v)| (*k, v.clone())));
    for (k, v) in all {
        let _ = writeln!(lua, "wrk.headers[\"{k}\"] = [==[{v}]==]");
    }
    let _ = write!(
        lua,
        r#"local threads = {{}}
function setup(thread) table.insert(threads, thread) end
bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "{ECHO_TEXT}", 1, true)
     or string.find(body, '"isError":true', 1, true) or string.find(body, '"error":', 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format("BENCH requests=%d bad=%d errors=%d p50_us=%d duration_us=%d\n",
    summary.requests, b, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), summary.duration))
end
"#
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// CPU (user + system) of the children this process has waited for, in microseconds.
fn children_cpu_us() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Busy ticks of the whole machine (user, nice, system, irq, softirq).
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().find(|l| l.starts_with("cpu ")).unwrap_or("");
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    [0, 1, 2, 5, 6].iter().filter_map(|&i| f.get(i)).sum()
}

fn ticks(pid: u32) -> u64 {
    common::cpu_ticks(&pid.to_string()).unwrap_or(0)
}

/// One wrk window on `route`.
fn wrk(route: &Route, upstream: u32, connections: usize, window: Duration) -> Result<WrkRun> {
    let tick_us = 1e6 / common::clock_ticks_per_sec();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let before = (
        ticks(upstream),
        route.middle.map(ticks),
        children_cpu_us(),
        machine_busy_ticks(),
        common::cpu_ticks("self").unwrap_or(0),
        Instant::now(),
    );
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", window.as_secs()),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(&route.script)
        .arg(&route.url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let elapsed = before.5.elapsed().as_secs_f64();
    let upstream_ticks = ticks(upstream) - before.0;
    let middle_ticks = route.middle.map(ticks).zip(before.1).map(|(a, b)| a - b);
    let wrk_us = children_cpu_us() - before.2;
    let busy = machine_busy_ticks() - before.3;
    let own = common::cpu_ticks("self").unwrap_or(0) - before.4;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk on {}: {}\n{stdout}{}",
            route.label,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .ok_or_else(|| anyhow!("wrk on {}: no summary in\n{stdout}", route.label))?;
    let field = |name: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("wrk summary without {name}: {line}"))
    };
    let requests = field("requests")? as u64;
    let per_call = |us: f64| us / requests.max(1) as f64;
    let ours = upstream_ticks + middle_ticks.unwrap_or(0) + own;
    let capacity_ticks = elapsed * common::clock_ticks_per_sec() * cores;
    let foreign_ticks = (busy as f64 - ours as f64 - wrk_us / tick_us).max(0.0);
    let run = WrkRun {
        requests,
        bad: field("bad")? as u64,
        errors: field("errors")? as u64,
        p50_us: field("p50_us")?,
        seconds: field("duration_us")? / 1e6,
        upstream_cpu: per_call(upstream_ticks as f64 * tick_us),
        middle_cpu: middle_ticks.map_or(0.0, |t| per_call(t as f64 * tick_us)),
        wrk_cpu: per_call(wrk_us),
        foreign_pct: 100.0 * foreign_ticks / capacity_ticks,
    };
    if run.bad > 0 || run.errors > 0 || run.requests == 0 {
        bail!(
            "{}: {} bad answers and {} socket/status errors out of {} requests",
            route.label,
            run.bad,
            run.errors,
            run.requests
        );
    }
    Ok(run)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
}

/// `median (min–max)` with `digits` decimals.
fn summary(v: &[f64], digits: usize, unit: &str) -> String {
    let (lo, hi) = spread(v);
    format!(
        "{:.digits$}{unit} ({lo:.digits$}–{hi:.digits$})",
        median(v.to_vec())
    )
}

fn sidecar_config(
    dir: &Path,
    name: &str,
    upstream: &str,
    extra_target: &str,
    inbound: &str,
) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[inbound]\nlisten = \"127.0.0.1:0\"\n{inbound}\n[[targets]]\nname = \"demo\"\nkind = \"mcp_server\"\nurl = \"{upstream}\"\n{extra_target}\n"
        ),
    )?;
    Ok(path)
}

/// Polls until `url` answers the echo call (the sidecar has synced its catalog).
async fn wait_echo(url: &str, body: &str, headers: &[(&str, String)]) -> Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if status.is_success() && text.contains(ECHO_TEXT) && !text.contains("\"error\":") {
                    return Ok(());
                }
                last = format!("{status} {text}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} never answered the echo call: {last}")
}

fn call_body(tool: &str, meta: Option<serde_json::Value>) -> String {
    let mut params = json!({"name": tool, "arguments": {"text": ECHO_TEXT}});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string()
}

async fn run() -> Result<()> {
    let s = Settings::from_env();
    let bin = common::sidecar_bin()?;
    let logs = common::logs_dir()?;
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk not found: apt-get install -y wrk");
    }
    let tmp = std::env::temp_dir().join(format!("mcp-sidecar-bench-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let _cleanup = TmpDir(tmp.clone());
    let load_start = common::load_average();

    let (upstream, upstream_url) = common::spawn_demo_upstream(&bin, "0");
    let upstream_pid = upstream.pid();

    let me = std::env::current_exe()?;
    let mut floor_cmd = Command::new(&me);
    floor_cmd.args([
        "floor-proxy",
        "--upstream",
        &upstream_url,
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut floor = common::Proc::spawn("proxy-floor", floor_cmd, &logs)?;
    let floor_url = floor.wait_listening()?;

    let pin = format!("protocol_version = \"{CLIENT_VERSION}\"");
    let plain_cfg = sidecar_config(&tmp, "plain", &upstream_url, &pin, "")?;
    let (sidecar, sidecar_url) =
        common::spawn_listening(&bin, &["serve", "--config", &plain_cfg.to_string_lossy()]);

    let issuer = issuer::Issuer::start().await;
    let token = issuer.token("k1", json!({"exp": issuer::now() + 4 * 3600}));
    let discovery = format!("{}/.well-known/openid-configuration", issuer.url);
    let auth_cfg = sidecar_config(
        &tmp,
        "auth",
        &upstream_url,
        &format!(
            "{pin}\ncredential_provider = {{ type = \"sigv4\", service = \"aws-mcp\", region = \"us-east-1\" }}"
        ),
        &format!(
            "\n[[inbound.authorizers]]\ndiscovery_url = \"{discovery}\"\nallowed_clients = [\"client-a\"]\nallowed_scopes = [\"gateway:read\"]\n"
        ),
    )?;
    let mut auth_cmd = Command::new(&bin);
    auth_cmd.args(["serve", "--config", &auth_cfg.to_string_lossy()]);
    auth_cmd.env("MCP_SIDECAR_LOG", "warn");
    for (k, v) in AWS_ENV {
        auth_cmd.env(k, v);
    }
    let mut auth = common::Proc::spawn("proxy-sidecar-auth", auth_cmd, &logs)?;
    let auth_url = auth.wait_listening()?;

    let legacy_headers = vec![("MCP-Protocol-Version", CLIENT_VERSION.to_string())];
    let direct_body = call_body("echo", None);
    let sidecar_body = call_body("demo___echo", None);
    let mut auth_headers = legacy_headers.clone();
    auth_headers.push(("Authorization", format!("Bearer {token}")));

    wait_echo(&upstream_url, &direct_body, &legacy_headers).await?;
    wait_echo(&floor_url, &direct_body, &legacy_headers).await?;
    wait_echo(&sidecar_url, &sidecar_body, &legacy_headers).await?;
    wait_echo(&auth_url, &sidecar_body, &auth_headers).await?;

    let mut routes = vec![
        Route {
            key: "direct",
            label: "direct to the upstream",
            url: upstream_url.clone(),
            script: wrk_script(&tmp, "direct", &direct_body, &legacy_headers)?,
            middle: None,
        },
        Route {
            key: "floor",
            label: "floor proxy (hyper pass-through)",
            url: floor_url.clone(),
            script: wrk_script(&tmp, "floor", &direct_body, &legacy_headers)?,
            middle: Some(floor.pid()),
        },
        Route {
            key: "sidecar",
            label: "sidecar, no auth",
            url: sidecar_url.clone(),
            script: wrk_script(&tmp, "sidecar", &sidecar_body, &legacy_headers)?,
            middle: Some(sidecar.pid()),
        },
        Route {
            key: "auth",
            label: "sidecar, JWT in (cached) + SigV4 out",
            url: auth_url.clone(),
            script: wrk_script(&tmp, "auth", &sidecar_body, &auth_headers)?,
            middle: Some(auth.pid()),
        },
    ];
    let mut modern_sidecar = None;
    if s.modern {
        let cfg = sidecar_config(&tmp, "modern", &upstream_url, "", "")?;
        let (p, url) =
            common::spawn_listening(&bin, &["serve", "--config", &cfg.to_string_lossy()]);
        wait_echo(&url, &sidecar_body, &legacy_headers).await?;
        routes.push(Route {
            key: "sidecar@2026",
            label: "sidecar, no auth, upstream at 2026-07-28 (negotiated)",
            url,
            script: wrk_script(&tmp, "modern", &sidecar_body, &legacy_headers)?,
            middle: Some(p.pid()),
        });
        modern_sidecar = Some(p);
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let modern_headers = vec![
            ("MCP-Protocol-Version", "2026-07-28".to_string()),
            ("Mcp-Method", "tools/call".to_string()),
            ("Mcp-Name", "echo".to_string()),
        ];
        let body = call_body("echo", Some(meta));
        wait_echo(&upstream_url, &body, &modern_headers).await?;
        routes.push(Route {
            key: "direct@2026",
            label: "direct to the upstream at 2026-07-28",
            url: upstream_url.clone(),
            script: wrk_script(&tmp, "direct-modern", &body, &modern_headers)?,
            middle: None,
        });
    }
    let rss_idle = sidecar.memory_kib()?.0;

    // Warm-up: every path, every connection.
    for r in &routes {
        wrk(r, upstream_pid, CONNECTIONS, Duration::from_secs(1))?;
    }
    let n = routes.len();
    let mut tput: Vec<Vec<WrkRun>> = vec![Vec::new(); n];
    let mut lat: Vec<Vec<WrkRun>> = vec![Vec::new(); n];
    for round in 0..s.rounds {
        // Rotate the order each round, so no path always follows the same neighbour.
        for k in 0..n {
            let i = (k + round) % n;
            eprintln!(
                "round {}: {} ({} connections) ...",
                round + 1,
                routes[i].key,
                CONNECTIONS
            );
            tput[i].push(wrk(&routes[i], upstream_pid, CONNECTIONS, s.window)?);
        }
        for k in 0..n {
            let i = (k + round) % n;
            eprintln!(
                "round {}: {} (one connection) ...",
                round + 1,
                routes[i].key
            );
            lat[i].push(wrk(&routes[i], upstream_pid, 1, s.latency_window)?);
        }
    }
    if let Some(dir) = std::env::var_os("MCP_SIDECAR_BENCH_PROFILE") {
        profile(&routes, upstream_pid, Path::new(&dir), s.window)?;
    }
    if s.rounds == 0 {
        return Ok(());
    }
    let (rss_after, hwm) = sidecar.memory_kib()?;
    let (auth_rss, auth_hwm) = auth.memory_kib()?;
    for p in [&mut floor, &mut auth] {
        p.ensure_alive()?;
    }
    drop(modern_sidecar);
    let load_end = common::load_average();

    // ---- report
    let idx = |key: &str| routes.iter().position(|r| r.key == key).unwrap();
    let (direct, floor_i, side, auth_i) =
        (idx("direct"), idx("floor"), idx("sidecar"), idx("auth"));
    let rates = |i: usize| tput[i].iter().map(WrkRun::rate).collect::<Vec<_>>();
    let per_round =
        |i: usize, j: usize, f: &dyn Fn(&WrkRun, &WrkRun) -> f64, runs: &[Vec<WrkRun>]| {
            runs[i]
                .iter()
                .zip(&runs[j])
                .map(|(a, b)| f(a, b))
                .collect::<Vec<f64>>()
        };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Proxy cost against the floor ({} round(s) of alternating windows: {} s at {CONNECTIONS} connections, {} s on one connection; wrk -t1)\n",
        s.rounds,
        s.window.as_secs(),
        s.latency_window.as_secs()
    );
    let _ = writeln!(
        out,
        "| path | req/s, {CONNECTIONS} connections | vs direct | vs floor | p50, one connection | added p50 over direct | CPU per call: proxy | upstream | wrk | other load |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (i, r) in routes.iter().enumerate() {
        let vs = |j: usize| {
            if i == j {
                "100 %".to_string()
            } else {
                summary(
                    &per_round(i, j, &|a, b| 100.0 * a.rate() / b.rate(), &tput),
                    1,
                    " %",
                )
            }
        };
        let added = if i == direct {
            String::new()
        } else {
            summary(
                &per_round(i, direct, &|a, b| a.p50_us - b.p50_us, &lat),
                0,
                " µs",
            )
        };
        let middle = if r.middle.is_some() {
            summary(
                &tput[i].iter().map(|w| w.middle_cpu).collect::<Vec<_>>(),
                1,
                " µs",
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {added} | {middle} | {} | {} | {} |",
            r.label,
            summary(&rates(i), 0, ""),
            vs(direct),
            vs(floor_i),
            summary(
                &lat[i].iter().map(|w| w.p50_us).collect::<Vec<_>>(),
                0,
                " µs"
            ),
            summary(
                &tput[i].iter().map(|w| w.upstream_cpu).collect::<Vec<_>>(),
                1,
                " µs"
            ),
            summary(
                &tput[i].iter().map(|w| w.wrk_cpu).collect::<Vec<_>>(),
                1,
                " µs"
            ),
            summary(
                &tput[i].iter().map(|w| w.foreign_pct).collect::<Vec<_>>(),
                0,
                " %"
            ),
        );
    }

    // ---- targets (issue 15), each a median over rounds of a same-round ratio
    let cpu_ratio = |i: usize| per_round(i, floor_i, &|a, b| a.middle_cpu / b.middle_cpu, &tput);
    let tput_ratio = |i: usize| per_round(i, floor_i, &|a, b| a.rate() / b.rate(), &tput);
    let added = |i: usize| per_round(i, direct, &|a, b| a.p50_us - b.p50_us, &lat);
    let mut rows = Vec::new();
    for (i, what, cpu_max, tput_min, added_max) in [
        (side, "no auth", 1.5, 0.90, 100.0),
        (auth_i, "JWT + SigV4", 2.0, 0.80, 150.0),
    ] {
        let c = cpu_ratio(i);
        let t = tput_ratio(i);
        let a = added(i);
        rows.push((
            format!("{what}: sidecar CPU per call / floor's"),
            summary(&c, 2, "×"),
            format!("≤ {cpu_max}×"),
            median(c) <= cpu_max,
        ));
        rows.push((
            format!("{what}: throughput / floor's"),
            summary(&t.iter().map(|x| x * 100.0).collect::<Vec<_>>(), 1, " %"),
            format!("≥ {:.0} %", tput_min * 100.0),
            median(t) >= tput_min,
        ));
        rows.push((
            format!("{what}: added p50 on one connection"),
            summary(&a, 0, " µs"),
            format!("≤ {added_max:.0} µs"),
            median(a) <= added_max,
        ));
    }
    let _ = writeln!(
        out,
        "\n| target (issue 15) | median (spread) | target | met |\n| --- | --- | --- | --- |"
    );
    for (what, value, target, met) in &rows {
        let _ = writeln!(
            out,
            "| {what} | {value} | {target} | {} |",
            if *met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(
        out,
        "\n- Sidecar (no auth) RSS: {} idle after sync, {} after the run, peak {}; with auth: {} after the run, peak {}.",
        common::mib(rss_idle),
        common::mib(rss_after),
        common::mib(hwm),
        common::mib(auth_rss),
        common::mib(auth_hwm)
    );
    let _ = writeln!(
        out,
        "- Client: wrk, one thread, `tools/call` of `echo` at {CLIENT_VERSION}; every answer checked (200, the echoed text, no error). Sidecars of the first two paths pin their target to {CLIENT_VERSION}, the version the direct client and the floor proxy speak to the upstream."
    );
    let _ = writeln!(
        out,
        "- CPU per call: utime + stime over each {CONNECTIONS}-connection window divided by the calls answered. Other load: CPU used by processes outside this bench during the window, share of the {} cores. Load average at start {}, at end {}.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_start,
        load_end
    );
    if s.quick {
        let _ = writeln!(out, "- QUICK smoke run: figures not representative.");
    }
    println!("\n{out}");
    let results = common::root().join("bench/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("proxy.md"), &out)?;
    drop((upstream, floor, sidecar, auth));
    Ok(())
}

/// `perf record` of each proxy in the middle during one more window at full load:
/// `{dir}/{key}.perf.data`, read with `perf report -i … --no-children`.
fn profile(routes: &[Route], upstream: u32, dir: &Path, window: Duration) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for r in routes {
        let Some(pid) = r.middle else { continue };
        let out = dir.join(format!("{}.perf.data", r.key.replace('@', "-")));
        let mut perf = Command::new("perf")
            .args(["record", "-F", "999", "-g", "-p", &pid.to_string(), "-o"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("perf (Debian package linux-perf)")?;
        eprintln!("profiling {} ...", r.key);
        let run = wrk(r, upstream, CONNECTIONS, window);
        // SAFETY: a signal to the perf process this function started.
        unsafe { libc::kill(perf.id() as i32, libc::SIGINT) };
        perf.wait()?;
        run?;
    }
    Ok(())
}

/// Removes the temp directory when dropped.
struct TmpDir(PathBuf);
impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
