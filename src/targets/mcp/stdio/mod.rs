//! MCP's stdio transport, client side: the sidecar runs the server as a child process and
//! exchanges one JSON-RPC message per line over its stdin and stdout, many requests at once
//! (routed back by id, see [`routing`]).
//!
//! A session is a process. The [`Wire`] link is the run's generation number: `initialize`
//! (sent without a session) always starts a fresh process, replacing one that is still
//! running (a server that never answered `initialize` is killed, not reused); a request on
//! an older generation than the current run is `SessionExpired`, so the MCP client
//! re-initializes, which starts the next run. Nothing is started before the first use
//! (`check` builds targets); the sync loop's first sync starts the server.
//!
//! Supervision. A run that ends fails its requests in flight at once with the exit status
//! (see [`child`]); the catalog keeps serving the last listing meanwhile. The next request,
//! or the change listener (which resubscribes about a second after the end), starts the
//! next run, no sooner than the restart backoff allows: 250 ms after the end, doubling for
//! each run that lasted under [`STABLE_RUN`], up to 30 s (the shared [`Backoff`]). A start
//! that the backoff would push past the request's deadline fails at once instead, naming
//! the last exit. After `shutdown` nothing starts again. Each restarted run is synced as if
//! it had announced a list change (it may be another version of the server).
//!
//! - [`child`]: one run (process group, reader, writer, stderr logger);
//! - [`routing`]: requests in flight, and where each line from the server goes;
//! - [`lines`]: bounded line splitting of the server's output.

pub mod child;
pub mod lines;
pub mod routing;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use self::child::{Child, Counters, Launch, StdioReplies};
use super::McpClient;
use super::session::Negotiation;
use super::transport::{Outgoing, StreamEnd, Transport, Wire};
use crate::backoff::{Backoff, Jitter};
use crate::config::{StdioSpec, TargetConfig};
use crate::protocol::LATEST_WITH_INITIALIZE;
use crate::targets::{Description, FailureKind, TargetError};

/// A run that lasted at least this long resets the restart backoff.
pub const STABLE_RUN: Duration = Duration::from_secs(10);
const RESTART_FIRST: Duration = Duration::from_millis(250);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// A `stdio` target: the MCP client over a child process's stdin and stdout. It speaks the
/// handshake versions (`initialize`): the stdio servers in use today answer nothing else, and
/// a process is a session here, so there is nothing to probe for.
pub fn target(config: &TargetConfig, spec: &StdioSpec) -> anyhow::Result<McpClient<Stdio>> {
    Ok(McpClient::new(
        config,
        Stdio::new(config, spec),
        Negotiation::Pinned(LATEST_WITH_INITIALIZE),
    ))
}

pub struct Stdio {
    target: Arc<str>,
    launch: Launch,
    max_message_bytes: usize,
    counters: Arc<Counters>,
    /// The current run, read lock-free on every request.
    current: arc_swap::ArcSwapOption<Child>,
    /// Held while a run is being replaced: one start at a time.
    restarts: tokio::sync::Mutex<Restarts>,
    generations: AtomicU64,
    shut: AtomicBool,
}

struct Restarts {
    backoff: Backoff,
    /// Consecutive runs shorter than [`STABLE_RUN`].
    short_runs: u32,
    /// The earliest the next run may start, and why the last one ended.
    not_before: Option<(Instant, String)>,
}

impl Stdio {
    pub fn new(config: &TargetConfig, spec: &StdioSpec) -> Self {
        let shown = std::iter::once(&spec.command)
            .chain(&spec.args)
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            target: config.name.as_str().into(),
            launch: Launch {
                command: spec.command.clone(),
                args: spec.args.clone(),
                env: spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                inherit_env: spec.inherit_env,
                cwd: spec.cwd.clone(),
                shown,
            },
            max_message_bytes: config.max_message_bytes,
            counters: Arc::default(),
            current: arc_swap::ArcSwapOption::empty(),
            restarts: tokio::sync::Mutex::new(Restarts {
                backoff: Backoff::new(RESTART_FIRST, RESTART_MAX, Jitter::Spread),
                short_runs: 0,
                not_before: None,
            }),
            generations: AtomicU64::new(0),
            shut: AtomicBool::new(false),
        }
    }

    fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.target, kind, detail)
    }

    /// The pid of the current run, if one is running (tests and diagnostics).
    pub fn pid(&self) -> Option<u32> {
        self.current
            .load()
            .as_ref()
            .filter(|c| c.exited().is_none())
            .map(|c| c.pid)
    }

    /// The current run if it is generation `generation` and still running.
    fn live(&self, generation: u64) -> Result<Arc<Child>, TargetError> {
        match self.current.load_full() {
            Some(child) if child.generation == generation => match child.exited() {
                None => Ok(child),
                Some(exit) => Err(self.error(
                    FailureKind::SessionExpired,
                    format!("the server process {}", exit.status),
                )),
            },
            _ => Err(self.error(
                FailureKind::SessionExpired,
                "the server process was replaced",
            )),
        }
    }

    /// Starts a new run (replacing the current one), within the restart backoff.
    async fn start(&self, deadline: Instant) -> Result<Arc<Child>, TargetError> {
        let mut restarts = self.restarts.lock().await;
        if let Some(old) = self.current.swap(None) {
            if old.exited().is_none() {
                tracing::info!(target_name = %self.target, pid = old.pid,
                    "replacing the server process (a new session needs a new process)");
                old.stop(false).await;
            }
            if let Some(exit) = old.exited() {
                restarts.ended(exit.at, exit.lived, &exit.status);
            }
        }
        if self.shut.load(Ordering::SeqCst) {
            return Err(self.error(FailureKind::Unreachable, "the target is shut down"));
        }
        if let Some((at, why)) = &restarts.not_before
            && *at > Instant::now()
        {
            if *at > deadline {
                return Err(self.error(
                    FailureKind::Unreachable,
                    format!(
                        "the server process {why}; the next start is due in {} ms (restart backoff), after this request's deadline",
                        at.saturating_duration_since(Instant::now()).as_millis()
                    ),
                ));
            }
            tokio::time::sleep_until(*at).await;
        }
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let child = match Child::spawn(
            &self.launch,
            &self.target,
            generation,
            self.max_message_bytes,
            self.counters.clone(),
        ) {
            Ok(child) => child,
            Err(why) => {
                restarts.ended(Instant::now(), Duration::ZERO, &why);
                return Err(self.error(FailureKind::Unreachable, why));
            }
        };
        self.current.store(Some(child.clone()));
        if self.shut.load(Ordering::SeqCst) {
            // Shut down while starting: this run must not outlive the shutdown.
            self.current.store(None);
            child.stop(false).await;
            return Err(self.error(FailureKind::Unreachable, "the target is shut down"));
        }
        Ok(child)
    }
}

impl Restarts {
    /// Records the end of a run and when the next may start.
    fn ended(&mut self, at: Instant, lived: Duration, why: &str) {
        let delay = if lived >= STABLE_RUN {
            self.short_runs = 0;
            self.backoff.delay(0)
        } else {
            let delay = self.backoff.delay(self.short_runs);
            self.short_runs = self.short_runs.saturating_add(1);
            delay
        };
        self.not_before = Some((at + delay, why.to_string()));
    }
}

impl Transport for Stdio {
    type Link = u64;
    type Replies = StdioReplies;

    fn describe(&self) -> Description {
        let names: Vec<&str> = self.launch.env.iter().map(|(k, _)| k.as_str()).collect();
        let inherited = if self.launch.inherit_env {
            "the sidecar's whole environment"
        } else {
            "PATH, HOME and a few harmless variables"
        };
        let credentials = if names.is_empty() {
            format!("none (environment: {inherited})")
        } else {
            format!(
                "none (environment: {inherited}, plus {} set by the config; values not shown)",
                names.join(", ")
            )
        };
        let endpoint = match &self.launch.cwd {
            Some(cwd) => format!("{} (in {})", self.launch.shown, cwd.display()),
            None => self.launch.shown.clone(),
        };
        Description {
            kind: "stdio",
            endpoint,
            credentials,
        }
    }

    fn fingerprint(&self) -> String {
        let cwd = self
            .launch
            .cwd
            .as_ref()
            .map(|c| format!(" in {}", c.display()))
            .unwrap_or_default();
        format!("stdio:{}{cwd}", self.launch.shown)
    }

    async fn send(&self, out: Outgoing<'_, u64>) -> Result<(u64, StdioReplies), TargetError> {
        let prepared = routing::prepare(out.body, Some(out.id))
            .map_err(|e| self.error(FailureKind::BadResponse, format!("{}: {e}", out.method)))?;
        let child = match out.wire {
            None => self.start(out.deadline).await?,
            // Link 0 is "no session": this transport opens none without `initialize`.
            Some(wire) if wire.link == 0 => {
                return Err(self.error(
                    FailureKind::SessionExpired,
                    format!("{}: a stdio session starts with initialize", out.method),
                ));
            }
            Some(wire) => self.live(wire.link)?,
        };
        let replies = child.request(prepared, out.method).await?;
        Ok((child.generation, replies))
    }

    async fn post(
        &self,
        wire: Option<&Wire<u64>>,
        body: Bytes,
        _deadline: Instant,
        what: &str,
    ) -> Result<(), TargetError> {
        let prepared = routing::prepare(body, None)
            .map_err(|e| self.error(FailureKind::BadResponse, format!("{what}: {e}")))?;
        let child = match wire {
            Some(wire) => self.live(wire.link)?,
            None => match self.current.load_full() {
                Some(child) => child,
                None => return Ok(()),
            },
        };
        child.write(prepared.line, what).await
    }

    async fn listen(
        &self,
        wire: &Wire<u64>,
        on_message: &(dyn Fn(&[u8]) + Send + Sync),
    ) -> Result<StreamEnd, TargetError> {
        let Ok(child) = self.live(wire.link) else {
            return Ok(StreamEnd::SessionGone);
        };
        if child.generation > 1 {
            // A restarted server may not list what the last one did (it crashed on a bad
            // deploy and came back as another version): sync it as if it had said so.
            on_message(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
        }
        while let Some(message) = child.next_unsolicited().await {
            on_message(&message);
        }
        Ok(StreamEnd::SessionGone)
    }

    async fn close(&self, wire: &Wire<u64>) {
        if let Ok(child) = self.live(wire.link) {
            child.stop(true).await;
        }
    }

    async fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        if let Some(child) = self.current.swap(None) {
            child.stop(true).await;
        }
    }
}

/// A command-line word as a shell would need it (for messages only).
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
