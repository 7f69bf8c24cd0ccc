//! The running configuration, and how a new one replaces it without dropping anything.
//!
//! A *generation* is everything built from one config: the [`Relay`] (targets in config
//! order, a catalog store whose entries refer to them by index, the syncer) and the axum
//! router over it. The current generation sits behind an [`ArcSwap`]; the listener reads it
//! once per request, so a request keeps the generation it started with (catalog, targets,
//! auth and tool rules all from one config) until it has been answered, while requests
//! after a swap see the new one. No lock is held on the request path.
//!
//! A reload ([`Live::reload`]) validates the new config completely (parsing, every target
//! built, the catalog store and the authenticator constructed) before anything changes; an
//! invalid file changes nothing and is reported in the log, in `/readyz` (`config.error`) and
//! in `mcp_sidecar_config_reloads_total{outcome="invalid"}`. Then, at once:
//! - a target whose config is unchanged keeps its built [`Target`] (its upstream session,
//!   credentials cache and change watch) and its catalog slot (listing, sync status), so its
//!   tools never disappear and it is not re-synced before its interval is due;
//! - a new or changed target is built fresh and synced at once (a changed target whose
//!   upstream identity is the same keeps its last listing until then);
//! - the authenticator (keys, verified-token cache) is kept unless the auth config changed;
//! - the old generation's sync loops stop; a removed or replaced target is closed (its
//!   session ended, its child process stopped) once no request holds it any more, or after
//!   its request timeout at the latest.
//!
//! What only a restart changes (the listen address, connection limits, log format, trace
//! export) is kept as it was, and the reload says so.
//!
//! A target's change watch (`Target::watch_changes`) outlives generations: it is started once
//! per built target and reaches the syncer of whichever generation is current through a
//! [`ChangeRoute`] kept with the target. The catalog's event channel (what
//! `subscriptions/listen` streams follow) and the resource subscriptions are carried from
//! generation to generation too, so listeners hear of what a reload changed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::inbound::Endpoint;
use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Relay;
use crate::catalog::CatalogStore;
use crate::catalog::store::rfc3339;
use crate::catalog::sync::{ChangeRoute, SyncPlan, Syncer};
use crate::config::{Config, ConfigError, InboundConfig, TargetConfig};
use crate::inbound::auth::Authenticator;
use crate::targets::{self, Target};
use crate::telemetry::metrics;

/// Re-reads the configuration (the file, with the command line's overrides applied).
pub type ConfigSource = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Process-wide state that outlives generations: shutdown and the config's status.
pub struct Shared {
    draining: AtomicBool,
    drain: watch::Sender<bool>,
    status: Mutex<ConfigStatus>,
}

/// The `config` object of `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// The file the config comes from, if any.
    pub file: Option<PathBuf>,
    /// Counts applied configs (1 at start-up).
    pub generation: u64,
    pub loaded_at: String,
    /// Why the last reload was refused (the running config stayed), until one succeeds.
    pub error: Option<String>,
    pub error_at: Option<String>,
    /// Changed keys that take effect only after a restart.
    pub restart_needed: Vec<String>,
}

impl Shared {
    pub fn new(file: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            draining: AtomicBool::new(false),
            drain: watch::channel(false).0,
            status: Mutex::new(ConfigStatus {
                file,
                generation: 0,
                loaded_at: rfc3339(SystemTime::now()),
                error: None,
                error_at: None,
                restart_needed: Vec::new(),
            }),
        })
    }

    /// True once shutdown has begun: `/readyz` answers 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = self.drain.send(true);
    }

    /// Resolves when shutdown begins (long-lived streams end then).
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }

    pub fn config_status(&self) -> ConfigStatus {
        self.status.lock().unwrap().clone()
    }
}

/// One built target and what outlives generations with it.
struct TargetHandle {
    config: TargetConfig,
    target: Arc<dyn Target>,
    /// Takes the target's announcements to the current generation's syncer.
    route: Arc<ChangeRoute>,
    watch: JoinHandle<()>,
}

/// One generation: the relay and the HTTP endpoint built from one config.
pub struct Generation {
    pub relay: Arc<Relay>,
    pub endpoint: Endpoint,
    pub config: Arc<Config>,
    auth: Option<Arc<Authenticator>>,
}

pub struct Live {
    current: ArcSwap<Generation>,
    targets: Mutex<BTreeMap<String, TargetHandle>>,
    pub shared: Arc<Shared>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

/// A generation assembled but not yet published, with the targets it built.
struct Assembled {
    generation: Generation,
    built: Vec<(String, TargetConfig, Arc<dyn Target>)>,
    routes: Vec<Arc<ChangeRoute>>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    Unchanged,
    Applied {
        added: Vec<String>,
        changed: Vec<String>,
        removed: Vec<String>,
    },
}

impl Live {
    /// Builds the first generation and starts it (sync loops, change watches, key refresh).
    pub fn start(config: Config, shared: Arc<Shared>) -> anyhow::Result<Arc<Self>> {
        let handles = BTreeMap::new();
        let assembled = assemble(config, &handles, None, &shared)?;
        let live = Arc::new(Self {
            current: ArcSwap::from_pointee(assembled.generation),
            targets: Mutex::new(handles),
            shared,
            reloading: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(1),
        });
        let current = live.current.load_full();
        live.adopt_targets(assembled.built, assembled.routes);
        current.relay.syncer.start();
        if let Some(auth) = &current.auth {
            auth.spawn_key_refresh();
        }
        live.shared.status.lock().unwrap().generation = 1;
        Ok(live)
    }

    /// The current generation (a request keeps what it loaded).
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Validates `next` fully, then applies it atomically (see the module docs). On error
    /// nothing changes; the error is recorded for `/readyz` and returned.
    pub async fn reload(&self, next: Result<Config, ConfigError>) -> Result<Reloaded, String> {
        let _one = self.reloading.lock().await;
        let outcome = match next {
            Err(e) => Err(format!("invalid config: {e}")),
            Ok(config) => self.apply(config),
        };
        let mut status = self.shared.status.lock().unwrap();
        match &outcome {
            Ok(Reloaded::Unchanged) => {
                status.error = None;
                status.error_at = None;
                metrics().reload("unchanged");
            }
            Ok(Reloaded::Applied { .. }) => {
                status.generation = self.generation.load(Ordering::SeqCst);
                status.loaded_at = rfc3339(SystemTime::now());
                status.error = None;
                status.error_at = None;
                metrics().reload("applied");
            }
            Err(e) => {
                status.error = Some(e.clone());
                status.error_at = Some(rfc3339(SystemTime::now()));
                metrics().reload("invalid");
            }
        }
        outcome
    }

    fn apply(&self, config: Config) -> Result<Reloaded, String> {
        let old = self.current();
        if *old.config == config {
            return Ok(Reloaded::Unchanged);
        }
        let restart_needed = restart_needed(&old.config, &config);
        let assembled = {
            let handles = self.targets.lock().unwrap();
            assemble(config, &handles, Some(&old), &self.shared).map_err(|e| format!("{e:#}"))?
        };
        let next = &assembled.generation;
        let names =
            |c: &Config| -> Vec<String> { c.targets.iter().map(|t| t.name.clone()).collect() };
        let (before, after) = (names(&old.config), names(&next.config));
        let added: Vec<String> = after
            .iter()
            .filter(|n| !before.contains(n))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|n| !after.contains(n))
            .cloned()
            .collect();
        let changed: Vec<String> = assembled
            .built
            .iter()
            .map(|(name, _, _)| name.clone())
            .filter(|n| before.contains(n))
            .collect();

        // Publish: from here on every new request sees the new generation.
        let next_auth = next.auth.clone();
        let next_syncer = next.relay.syncer.clone();
        let replaced = self.adopt_targets(assembled.built, assembled.routes);
        let old = self.current.swap(Arc::new(assembled.generation));
        next_syncer.start();
        old.relay.syncer.stop();
        if let Some(auth) = &next_auth
            && !old.auth.as_ref().is_some_and(|a| Arc::ptr_eq(a, auth))
        {
            auth.spawn_key_refresh();
        }
        let gone: Vec<TargetHandle> = {
            let mut handles = self.targets.lock().unwrap();
            let retired: Vec<String> = handles
                .keys()
                .filter(|n| !after.contains(n))
                .cloned()
                .collect();
            retired
                .iter()
                .filter_map(|n| handles.remove(n))
                .chain(replaced)
                .collect()
        };
        drop(old);
        for handle in gone {
            tokio::spawn(retire(handle));
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(generation, ?added, ?changed, ?removed, "config reloaded");
        if !restart_needed.is_empty() {
            tracing::warn!(keys = ?restart_needed, "these changes take effect only after a restart");
        }
        self.shared.status.lock().unwrap().restart_needed = restart_needed;
        Ok(Reloaded::Applied {
            added,
            changed,
            removed,
        })
    }

    /// Keeps the newly built targets (starting their change watches); returns the handles
    /// they replace.
    fn adopt_targets(
        &self,
        built: Vec<(String, TargetConfig, Arc<dyn Target>)>,
        routes: Vec<Arc<ChangeRoute>>,
    ) -> Vec<TargetHandle> {
        let mut handles = self.targets.lock().unwrap();
        let mut replaced = Vec::new();
        for ((name, config, target), route) in built.into_iter().zip(routes) {
            let watch = {
                let (target, route) = (target.clone(), route.clone());
                tokio::spawn(async move {
                    let on_change = move |change| route.announce(change);
                    target.watch_changes(Box::new(on_change)).await;
                })
            };
            let handle = TargetHandle {
                config,
                target,
                route,
                watch,
            };
            if let Some(old) = handles.insert(name, handle) {
                replaced.push(old);
            }
        }
        replaced
    }

    /// Shutdown: stops syncing and closes every target (ending upstream sessions and child
    /// processes), each within a few seconds.
    pub async fn close(&self) {
        self.current().relay.syncer.stop();
        let handles: Vec<TargetHandle> = std::mem::take(&mut *self.targets.lock().unwrap())
            .into_values()
            .collect();
        let closes = handles.iter().map(|h| async {
            h.watch.abort();
            if tokio::time::timeout(Duration::from_secs(5), h.target.close())
                .await
                .is_err()
            {
                tracing::warn!(
                    target_name = h.target.name(),
                    "closing the target took over 5 s; left it"
                );
            }
        });
        futures_util::future::join_all(closes).await;
    }
}

/// Closes a target that left the config once nothing uses it any more (requests in flight
/// hold it), or after its request timeout at the latest.
async fn retire(handle: TargetHandle) {
    handle.watch.abort();
    let limit =
        handle.config.request_timeout() + handle.config.queue_timeout() + Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + limit;
    while Arc::strong_count(&handle.target) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(
        target_name = handle.target.name(),
        "closing a target that left the config"
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), handle.target.close()).await;
}

/// Builds a generation from `config`, reusing the targets in `handles` whose config did not
/// change and the catalog slots and authenticator of `previous`. Starts nothing.
fn assemble(
    config: Config,
    handles: &BTreeMap<String, TargetHandle>,
    previous: Option<&Generation>,
    shared: &Arc<Shared>,
) -> anyhow::Result<Assembled> {
    let mut targets: Vec<Arc<dyn Target>> = Vec::new();
    let mut routes = Vec::new();
    let mut built = Vec::new();
    let mut built_routes = Vec::new();
    for t in &config.targets {
        match handles.get(&t.name).filter(|h| h.config == *t) {
            Some(kept) => {
                targets.push(kept.target.clone());
                routes.push(kept.route.clone());
            }
            None => {
                let target =
                    targets::build(t).map_err(|e| anyhow::anyhow!("target '{}': {e:#}", t.name))?;
                let route = Arc::new(ChangeRoute::default());
                targets.push(target.clone());
                routes.push(route.clone());
                built.push((t.name.clone(), t.clone(), target));
                built_routes.push(route);
            }
        }
    }
    let mut store = CatalogStore::new(&config, &targets)?;
    // What the running generation knows first, then saved catalogs for the targets it
    // does not know (a new target may have one).
    if let Some(previous) = previous {
        store.continue_from(&previous.relay.store);
    }
    store.restore();
    let store = Arc::new(store);
    let now = SystemTime::now();
    let plans = config
        .targets
        .iter()
        .zip(&targets)
        .zip(routes)
        .enumerate()
        .map(|(index, ((t, target), route))| {
            let interval = Duration::from_secs(
                t.sync_interval_secs
                    .unwrap_or(config.catalog.sync_interval_secs),
            );
            // A kept target synced recently waits for the rest of its interval.
            let kept = !built.iter().any(|(name, _, _)| *name == t.name);
            let first_wait = match store.last_good_sync(index) {
                Some(at) if kept && previous.is_some() => {
                    interval.saturating_sub(now.duration_since(at).unwrap_or_default())
                }
                _ => Duration::ZERO,
            };
            SyncPlan {
                index,
                target: target.clone(),
                interval,
                deadline: t.sync_timeout(),
                route,
                first_wait,
            }
        })
        .collect();
    let syncer = Syncer::new(store.clone(), plans);
    // A sealed request state from before a reload stays valid while the key is the same;
    // resource subscriptions are counted across generations.
    let sealer = match previous {
        Some(p) if p.config.inbound.state_key == config.inbound.state_key => p.relay.sealer.clone(),
        _ => Arc::new(crate::inbound::sealed::Sealer::new(
            config.inbound.state_key.as_ref(),
        )),
    };
    let relay = Arc::new(Relay {
        store,
        targets,
        page_size: config.catalog.page_size,
        syncer,
        sealer,
        request_state_ttl: Duration::from_secs(config.inbound.request_state_ttl_secs),
        resources: previous.map_or_else(Default::default, |p| p.relay.resources.clone()),
        // Calls parked for an answer, questions awaiting one, and legacy sessions'
        // subscriptions belong to callers, not to a config: they carry over.
        parked: match previous {
            Some(p) if p.config.inbound.max_waiting_calls == config.inbound.max_waiting_calls => {
                p.relay.parked.clone()
            }
            _ => Arc::new(crate::inbound::bridge::ParkedCalls::new(
                config.inbound.max_waiting_calls,
            )),
        },
        answers: previous.map_or_else(Default::default, |p| p.relay.answers.clone()),
        sessions: previous.map_or_else(Default::default, |p| p.relay.sessions.clone()),
        search: crate::inbound::search::SearchTool::new(&config.search)?,
    });
    let auth = match previous {
        Some(p) if same_auth(&p.config.inbound, &config.inbound) => p.auth.clone(),
        _ => Authenticator::new(&config.inbound)?,
    };
    let endpoint = crate::inbound::endpoint(relay.clone(), &config, auth.clone(), shared.clone());
    Ok(Assembled {
        generation: Generation {
            relay,
            endpoint,
            config: Arc::new(config),
            auth,
        },
        built,
        routes: built_routes,
    })
}

/// Whether two inbound configs authenticate the same way (then verified tokens and keys
/// stay valid).
fn same_auth(a: &InboundConfig, b: &InboundConfig) -> bool {
    a.auth_mode() == b.auth_mode()
        && a.authorizers == b.authorizers
        && a.tool_rules == b.tool_rules
        && a.resource == b.resource
        && a.path == b.path
}

/// The keys that changed but apply only at start-up.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.inbound, &new.inbound);
    let mut keys = Vec::new();
    let mut check = |key: &str, same: bool| {
        if !same {
            keys.push(key.to_string());
        }
    };
    check("inbound.listen", a.listen == b.listen);
    check(
        "inbound.max_connections",
        a.max_connections == b.max_connections,
    );
    check(
        "inbound.header_read_timeout_ms",
        a.header_read_timeout_ms == b.header_read_timeout_ms,
    );
    check(
        "inbound.idle_timeout_secs",
        a.idle_timeout_secs == b.idle_timeout_secs,
    );
    let (s, t) = (&old.telemetry, &new.telemetry);
    check("telemetry.log_format", s.log_format == t.log_format);
    check(
        "telemetry.otlp_endpoint",
        s.otlp_endpoint == t.otlp_endpoint,
    );
    check("telemetry.service_name", s.service_name == t.service_name);
    check("telemetry.sample_ratio", s.sample_ratio == t.sample_ratio);
    check(
        "telemetry.max_tool_labels",
        s.max_tool_labels == t.max_tool_labels,
    );
    check("reload", old.reload == new.reload);
    keys
}
