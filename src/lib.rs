//! mcp-sidecar: a stateless MCP endpoint over synced upstream tools.
//!
//! The module tree follows the request path:
//! `inbound` (HTTP, JSON-RPC, MCP methods) → `catalog` (names, cache, sync) →
//! `targets` (one client per upstream kind, outbound credentials).

pub mod backoff;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod inbound;
pub mod protocol;
pub mod targets;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::catalog::CatalogStore;
use crate::catalog::sync::{SyncPlan, Syncer};
use crate::config::Config;
use crate::targets::Target;

/// What the inbound side needs to answer: the catalog and the targets to relay to.
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

/// A running sidecar: its address and the server task.
pub struct Running {
    pub local_addr: std::net::SocketAddr,
    pub url: String,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    targets: Vec<Arc<dyn Target>>,
}

impl Running {
    /// Waits for the server to stop (SIGTERM or Ctrl-C), then closes upstream sessions.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await;
        futures_util::future::join_all(self.targets.iter().map(|t| t.close())).await;
        served??;
        Ok(())
    }
}

/// Builds the targets, starts their sync loops in the background and the listener at once.
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<Running> {
    // Before anything starts that shutdown must stop (a stdio target's processes): from
    // here on SIGTERM ends the server gracefully instead of killing the process outright.
    let shutdown = shutdown_signal();
    let targets = config
        .targets
        .iter()
        .map(|t| targets::build(t).with_context(|| format!("target '{}'", t.name)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = Arc::new(CatalogStore::new(config, &targets)?);
    // Saved catalogs first: tools/list answers before any upstream does.
    store.restore();
    let plans = config
        .targets
        .iter()
        .zip(&targets)
        .enumerate()
        .map(|(index, (t, target))| SyncPlan {
            index,
            target: target.clone(),
            interval: Duration::from_secs(
                t.sync_interval_secs
                    .unwrap_or(config.catalog.sync_interval_secs),
            ),
            deadline: t.sync_timeout(),
        })
        .collect();
    let syncer = Syncer::new(store.clone(), plans);
    syncer.start();

    let relay = Arc::new(Relay {
        store,
        targets: targets.clone(),
        page_size: config.catalog.page_size,
        syncer,
        sealer: Arc::new(inbound::sealed::Sealer::new(
            config.inbound.state_key.as_ref(),
        )),
        request_state_ttl: Duration::from_secs(config.inbound.request_state_ttl_secs),
        resources: Default::default(),
        parked: Arc::new(inbound::bridge::ParkedCalls::new(
            config.inbound.max_waiting_calls,
        )),
        answers: Default::default(),
        sessions: Default::default(),
        search: inbound::search::SearchTool::new(&config.search)?,
    });
    let auth = inbound::auth::Authenticator::new(&config.inbound)?;
    if let Some(auth) = &auth {
        auth.spawn_key_refresh();
    }
    let app = inbound::router(relay, &config.inbound, &config.admin, auth)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let local_addr = listener.local_addr()?;
    let url = format!("http://{local_addr}{}", config.inbound.path);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok(Running {
        local_addr,
        url,
        server,
        targets,
    })
}

/// Binds the configured address, starts, prints the `listening` line, and runs until
/// SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let running = start(&config, listener).await?;
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

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives early is not the default "die".
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
