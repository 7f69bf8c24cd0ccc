//! What every benchmark needs: the release binary, child processes that announce their
//! `listening URL` line and are killed when dropped, and CPU and memory readings from /proc.
//! Included by each bench with `#[path = "common/mod.rs"] mod common;`.

#![allow(dead_code)] // each bench uses its own subset

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// How long a child may take to print its `listening` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `MCP_SIDECAR_BIN`, or the binary cargo builds for the bench (bench profile, which takes
/// the release settings).
pub fn sidecar_bin() -> Result<PathBuf> {
    let bin = match std::env::var_os("MCP_SIDECAR_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_mcp-sidecar")),
    };
    if !bin.is_file() {
        bail!(
            "{} not found: run `cargo build --release --bin mcp-sidecar` (or set MCP_SIDECAR_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Where the children's logs go.
pub fn logs_dir() -> Result<PathBuf> {
    let dir = root().join("bench/results/logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Starts `bin args…` with warn-level logs and waits for its listening line: (the process,
/// its URL). Panics on failure, naming the log to read.
pub fn spawn_listening(bin: &Path, args: &[&str]) -> (Proc, String) {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "{}-{}-{}",
        env!("CARGO_CRATE_NAME"),
        args.first().copied().unwrap_or("run"),
        STARTED.fetch_add(1, Ordering::Relaxed)
    );
    let start = || -> Result<(Proc, String)> {
        let mut cmd = Command::new(bin);
        cmd.args(args).env("MCP_SIDECAR_LOG", "warn");
        let mut proc = Proc::spawn(&name, cmd, &logs_dir()?)?;
        let url = proc.wait_listening()?;
        Ok((proc, url))
    };
    start().unwrap_or_else(|e| panic!("starting {name}: {e:#}"))
}

/// The demo upstream (stateless) with `extra_tools` synthetic tools besides its own five.
pub fn spawn_demo_upstream(bin: &Path, extra_tools: &str) -> (Proc, String) {
    spawn_listening(
        bin,
        &[
            "demo-upstream",
            "--listen",
            "127.0.0.1:0",
            "--stateless",
            "--extra-tools",
            extra_tools,
        ],
    )
}

/// A child process with its stderr in a log file; killed (by PID) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    log: PathBuf,
    listening: Option<mpsc::Receiver<String>>,
}

impl Proc {
    /// Starts `cmd`, logging its stderr to `{logs}/{name}.log`.
    pub fn spawn(name: &str, mut cmd: Command, logs: &Path) -> Result<Proc> {
        let log = logs.join(format!("{name}.log"));
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .env_remove("RUST_LOG");
        // The children run with their defaults: no MCP_SIDECAR_* setting from the caller's
        // environment (a config path, a log level, auth) leaks into what is measured; only
        // what the bench sets on `cmd` itself applies.
        let explicit: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_os_string()).collect();
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MCP_SIDECAR_") && !explicit.contains(&key) {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the one `listening http://HOST:PORT/mcp` line, then keeps draining stdout so
        // the child can never block on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("listening ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
            listening: Some(rx),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the `listening URL` stdout line and returns the URL.
    pub fn wait_listening(&mut self) -> Result<String> {
        let rx = self
            .listening
            .take()
            .ok_or_else(|| anyhow!("{}: already waited", self.name))?;
        let wait = || rx.recv_timeout(START_TIMEOUT);
        // Blocking is fine in a bench, but not on the only thread of a runtime.
        let received = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        match received {
            Ok(url) => Ok(url),
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "{}: no `listening` line within {START_TIMEOUT:?}{}",
                self.name,
                self.log_tail()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                bail!(
                    "{}: exited ({status}) before listening{}",
                    self.name,
                    self.log_tail()
                )
            }
        }
    }

    pub fn ensure_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{}: exited unexpectedly ({status}){}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        format!("\n--- last lines of {} ---\n{tail}", self.log.display())
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .with_context(|| format!("{}: reading /proc/{}/status", self.name, self.pid()))?;
        let field = |key: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("{key} missing from /proc/PID/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Its CPU time counts as the bench's own when telling how busy the rest of the
        // machine was.
        if let Some(t) = cpu_ticks(&self.pid().to_string()) {
            CHILD_TICKS.fetch_add(t, Ordering::Relaxed);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU ticks (utime + stime, all threads) used by the children the bench has stopped so far.
pub static CHILD_TICKS: AtomicU64 = AtomicU64::new(0);

/// utime + stime of a process (`self` or a PID), in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`, usually 100).
pub fn clock_ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let ticks = cpu_ticks(&pid.to_string())?;
    Some(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_sec(),
    ))
}

/// The `q` quantile (0.5 for the median, 0.99 for p99) of some durations.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// A duration in milliseconds, three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// A size in KiB as MiB, one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The machine's load averages (1, 5 and 15 minutes) as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
