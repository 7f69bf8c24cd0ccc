//! The sync lifecycle: one background loop per target, plus on-demand triggers.
//!
//! Triggers: start-up (the listener does not wait), a per-target interval, the admin
//! endpoint, and `list_changed` notifications from the upstream. Concurrent triggers for one
//! target coalesce: whoever arrives while a sync runs gets that sync's outcome (single
//! flight). After a failure the next attempt comes sooner, with a doubling, jittered backoff
//! capped at the interval, so a target that comes up late is picked up quickly.
//!
//! A syncer belongs to one generation of the config (see `live.rs`): [`Syncer::stop`] ends
//! its loops when a reload replaces it. A target's change watch outlives generations, so it
//! announces through the target's [`ChangeRoute`], which [`Syncer::start`] points at the
//! syncer (and index) of the generation now current.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::timeout;

use super::{CatalogEvent, CatalogStore};
use crate::backoff::{Backoff, Jitter, jitter};
use crate::targets::{Change, FailureKind, Target, TargetError};

const FIRST_RETRY: Duration = Duration::from_millis(500);

pub struct SyncPlan {
    pub index: usize,
    pub target: Arc<dyn Target>,
    pub interval: Duration,
    pub deadline: Duration,
    /// Where the target's change watch sends what the upstream announces.
    pub route: Arc<ChangeRoute>,
    /// How long the loop waits before its first sync (a target carried over from the
    /// previous generation is not re-synced before its interval is due).
    pub first_wait: Duration,
}

/// Where one target's change announcements go: the syncer of the current generation.
#[derive(Default)]
pub struct ChangeRoute {
    to: arc_swap::ArcSwapOption<(Weak<Syncer>, usize)>,
}

impl ChangeRoute {
    /// Passes an upstream's announcement to the current generation's syncer (dropped
    /// between generations, when there is none).
    pub fn announce(&self, change: Change) {
        if let Some(to) = self.to.load_full()
            && let Some(syncer) = to.0.upgrade()
        {
            syncer.changed(to.1, change);
        }
    }
}

/// Bits of [`TargetSync::announced`]: which lists the upstream said changed.
const TOOLS: u8 = 1;
const PROMPTS: u8 = 2;
const RESOURCES: u8 = 4;

struct TargetSync {
    plan: SyncPlan,
    /// Lists the upstream announced as changed since the last sync started: once a sync
    /// has picked the change up, listeners hear of it even if the listing came out the
    /// same (the upstream said so; a client lists again and loses nothing).
    announced: std::sync::atomic::AtomicU8,
    running: tokio::sync::Mutex<()>,
    completed: AtomicU64,
    last_outcome: Mutex<Result<(), String>>,
    wake: Notify,
}

pub struct Syncer {
    store: Arc<CatalogStore>,
    targets: Vec<TargetSync>,
    loops: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Syncer {
    pub fn new(store: Arc<CatalogStore>, plans: Vec<SyncPlan>) -> Arc<Self> {
        Arc::new(Self {
            store,
            targets: plans
                .into_iter()
                .map(|plan| TargetSync {
                    plan,
                    announced: std::sync::atomic::AtomicU8::new(0),
                    running: tokio::sync::Mutex::new(()),
                    completed: AtomicU64::new(0),
                    last_outcome: Mutex::new(Err("not synced yet".into())),
                    wake: Notify::new(),
                })
                .collect(),
            loops: Mutex::new(Vec::new()),
        })
    }

    /// Starts every target's loop and routes each target's announcements here. (The change
    /// watches themselves are started once per built target, by `live.rs`.)
    pub fn start(self: &Arc<Self>) {
        let mut loops = self.loops.lock().unwrap();
        for index in 0..self.targets.len() {
            self.targets[index]
                .plan
                .route
                .to
                .store(Some(Arc::new((Arc::downgrade(self), index))));
            let this = self.clone();
            loops.push(tokio::spawn(async move { this.run(index).await }));
        }
    }

    /// Ends every target's loop (a sync in progress is abandoned; its target is untouched).
    pub fn stop(&self) {
        for handle in self.loops.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    /// Syncs target `index` now, or joins the sync already running for it.
    pub async fn sync_now(&self, index: usize) -> Result<(), String> {
        let t = &self.targets[index];
        let seen = t.completed.load(Ordering::SeqCst);
        let _running = t.running.lock().await;
        if t.completed.load(Ordering::SeqCst) != seen {
            // A sync finished while this trigger waited: share its outcome.
            return t.last_outcome.lock().unwrap().clone();
        }
        let announced = t.announced.swap(0, Ordering::SeqCst);
        let outcome = sync_once(&self.store, &t.plan).await;
        if outcome.is_ok() {
            for (bit, event) in [
                (TOOLS, CatalogEvent::ToolsChanged),
                (PROMPTS, CatalogEvent::PromptsChanged),
                (RESOURCES, CatalogEvent::ResourcesChanged),
            ] {
                if announced & bit != 0 {
                    self.store.events.publish(event);
                }
            }
        } else {
            t.announced.fetch_or(announced, Ordering::SeqCst);
        }
        *t.last_outcome.lock().unwrap() = outcome.clone();
        t.completed.fetch_add(1, Ordering::SeqCst);
        outcome
    }

    /// What target `index` announced: a list change means "sync soon".
    pub fn changed(&self, index: usize, change: Change) {
        let bit = match change {
            Change::Tools => TOOLS,
            Change::Prompts => PROMPTS,
            Change::Resources => RESOURCES,
            Change::ResourceUpdated(uri) => {
                let exposed = self.store.exposed_uri(index, &uri);
                self.store
                    .events
                    .publish(CatalogEvent::ResourceUpdated(exposed));
                return;
            }
        };
        self.targets[index]
            .announced
            .fetch_or(bit, Ordering::SeqCst);
        self.wake(index);
    }

    /// Asks target `index`'s loop to sync soon (e.g. the upstream said its list changed).
    pub fn wake(&self, index: usize) {
        tracing::info!(
            target_name = self.targets[index].plan.target.name(),
            "upstream list changed; syncing"
        );
        self.targets[index].wake.notify_one();
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    async fn run(&self, index: usize) {
        let t = &self.targets[index];
        let mut backoff = Backoff::new(FIRST_RETRY, t.plan.interval, Jitter::Spread);
        if !t.plan.first_wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(t.plan.first_wait) => {}
                _ = t.wake.notified() => {}
            }
        }
        loop {
            let wait = match self.sync_now(index).await {
                Ok(()) => {
                    backoff.reset();
                    jitter(t.plan.interval, Jitter::Spread)
                }
                Err(message) => {
                    tracing::warn!(target_name = t.plan.target.name(), "sync failed: {message}");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = t.wake.notified() => {}
            }
        }
    }
}

/// One sync of one target, bounded by its sync deadline (which covers every page).
async fn sync_once(store: &CatalogStore, plan: &SyncPlan) -> Result<(), String> {
    let outcome = match timeout(plan.deadline, plan.target.sync()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(TargetError::new(
            plan.target.name(),
            FailureKind::Timeout,
            format!(
                "sync did not finish within {} ms",
                plan.deadline.as_millis()
            ),
        )),
    };
    store.record_sync(plan.index, outcome)
}
