//! mcp-sidecar: a stateless MCP endpoint over synced upstream tools.
//!
//! The module tree follows the request path:
//! `inbound` (listener, HTTP, JSON-RPC, MCP methods) → `catalog` (names, cache, sync) →
//! `targets` (one client per upstream kind, outbound credentials). Around it: `live` (the
//! running config and its reload), `telemetry` (logs, metrics, traces), `doctor`.
//!
//! The start-up story is [`start_with`]: build the first config generation (targets, the
//! catalog with its saved listings, sync loops), open the listener at once, and run until
//! SIGTERM/SIGINT; then drain (see [`lifecycle`]).

pub mod backoff;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod inbound;
pub mod live;
pub mod protocol;
pub mod reload;
pub mod targets;
pub mod telemetry;
pub mod tls;

/// What every outbound HTTP request names itself.
pub const USER_AGENT: &str = concat!("mcp-sidecar/", env!("CARGO_PKG_VERSION"));

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::catalog::CatalogStore;
use crate::catalog::sync::Syncer;
use crate::config::Config;
use crate::inbound::server::{ConnectionLimits, EndpointSource, Server};
use crate::live::{ConfigSource, Live, Shared};
use crate::targets::Target;

/// What the inbound side needs to answer: the catalog and the targets to relay to (one
/// config generation's worth; see `live`).
pub struct Relay {
    pub store: Arc<CatalogStore>,
    /// Targets in config order (catalog entries refer to them by index).
    pub targets: Vec<Arc<dyn Target>>,
    pub page_size: usize,
    /// Runs and coalesces syncs (admin triggers go through it).
    pub syncer: Arc<Syncer>,
    /// Seals state handed to clients (MRTR `requestState`).
    pub sealer: Arc<inbound::sealed::Sealer>,
    /// How long a sealed `requestState` stays valid.
    pub request_state_ttl: Duration,
    /// The upstream resources some client wants updates of.
    pub resources: Arc<inbound::subscriptions::ResourceWatch>,
    /// Calls waiting for a 2026-07-28 caller's answer to their upstream's question.
    pub parked: Arc<inbound::bridge::ParkedCalls>,
    /// Questions sent to legacy callers, waiting for the answers they POST back.
    pub answers: Arc<inbound::bridge::ClientAnswers>,
    /// What legacy sessions subscribed to (this process only).
    pub sessions: Arc<inbound::session::SessionSubscriptions>,
    /// The tool-search tool, when `[search]` is enabled.
    pub search: Option<inbound::search::SearchTool>,
}

/// How [`start_with`] runs beyond the config itself.
#[derive(Default)]
pub struct Options {
    /// Re-reads the config on SIGHUP (and, with `config_file`, when the file changes).
    pub config_source: Option<ConfigSource>,
    /// The file the config came from (watched when `reload.watch` is on).
    pub config_file: Option<PathBuf>,
}

/// A running sidecar.
pub struct Running {
    pub local_addr: std::net::SocketAddr,
    pub url: String,
    /// Serves until SIGTERM, SIGINT or [`Running::shutdown`], then drains and closes.
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    pub live: Arc<Live>,
    stop: Arc<Notify>,
}

impl Running {
    /// Waits until the sidecar has shut down.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }

    /// Begins a graceful shutdown, exactly as SIGTERM does.
    pub fn shutdown(&self) {
        self.stop.notify_one();
    }
}

/// Starts with no reload source (tests, the demo).
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<Running> {
    start_with(config.clone(), listener, Options::default()).await
}

/// Builds the first generation, starts its sync loops in the background and the listener
/// at once.
pub async fn start_with(
    config: Config,
    listener: TcpListener,
    options: Options,
) -> anyhow::Result<Running> {
    // Before anything starts that shutdown must stop (see `shutdown_signal`).
    let signal = shutdown_signal();
    warm_up_rng();
    let shared = Shared::new(options.config_file.clone());
    let limits = ConnectionLimits::from_config(&config.inbound);
    let grace = Duration::from_secs(config.inbound.shutdown_grace_secs);
    let drain_delay = Duration::from_secs(config.inbound.drain_delay_secs);
    let reload = config.reload.clone();
    let path = config.inbound.path.clone();
    let live = Live::start(config, shared)?;
    let endpoints: EndpointSource = {
        let live = live.clone();
        Arc::new(move || live.current().endpoint.clone())
    };
    let local_addr = listener.local_addr()?;
    let server = inbound::server::spawn(listener, endpoints, limits);
    if let Some(source) = options.config_source {
        reload::spawn(
            &live,
            source,
            options.config_file,
            reload.watch,
            Duration::from_millis(reload.interval_ms),
        );
    }
    let stop = Arc::new(Notify::new());
    let server = tokio::spawn(lifecycle(
        live.clone(),
        server,
        (signal, stop.clone()),
        drain_delay,
        grace,
    ));
    Ok(Running {
        local_addr,
        url: format!("http://{local_addr}{path}"),
        server,
        live,
        stop,
    })
}

/// aws-lc seeds its random generator on first use from CPU jitter entropy, about 25 ms of
/// CPU: done here on a thread of its own, so neither start-up nor the first request that
/// needs randomness (a TLS handshake, a SigV4a signature, a sealed nonce) waits for it.
fn warm_up_rng() {
    std::thread::spawn(|| {
        let mut byte = [0u8; 1];
        let _ = aws_lc_rs::rand::fill(&mut byte);
    });
}

/// Serves until a shutdown signal, then drains:
/// 1. `/readyz` answers 503 at once; the listener stops accepting (after `drain_delay`);
/// 2. connections with no request in progress (idle, half-open) are closed at once;
/// 3. requests in flight get the grace to finish (most of `shutdown_grace_secs`);
/// 4. what is still in flight then is answered with an error and logged, never dropped
///    silently, and its connection closed;
/// 5. sync loops stop and every target is closed (upstream sessions ended, child processes
///    stopped).
async fn lifecycle(
    live: Arc<Live>,
    mut server: Server,
    (signal, stop): (impl std::future::Future<Output = ()>, Arc<Notify>),
    drain_delay: Duration,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::select! {
        _ = signal => {}
        _ = stop.notified() => {}
    }
    let started = Instant::now();
    live.shared.begin_drain();
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: not ready, not accepting; finishing requests in flight"
    );
    tokio::time::sleep(drain_delay).await;
    let last_call = (grace / 5).min(Duration::from_secs(1));
    let open = server.drain(grace - last_call).await;
    if open > 0 {
        tracing::warn!(
            connections = open,
            "shutdown grace ran out with requests in flight; answering them with an error"
        );
        server.abort_in_flight();
        let open = server
            .drain(last_call.max(Duration::from_millis(200)))
            .await;
        if open > 0 {
            tracing::warn!(connections = open, "closing connections still open");
        }
    }
    live.close().await;
    tracing::info!(took_ms = started.elapsed().as_millis() as u64, "shut down");
    Ok(())
}

/// Binds the configured address, starts, prints the `listening` line, and runs until
/// SIGTERM or Ctrl-C.
pub async fn serve(config: Config, options: Options) -> anyhow::Result<()> {
    let addr = config.listen_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let running = start_with(config, listener, options).await?;
    announce(&running.url);
    running.wait().await
}

/// The one stdout line tests and scripts read to learn the real address.
pub fn announce(url: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {url}");
    let _ = out.flush();
}

/// Waits for SIGTERM or SIGINT. The handlers are installed when this is *called*, not when
/// the future is first polled: a signal that arrives while targets start (a stdio target's
/// processes) must end the server gracefully, not kill the process outright and orphan them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
