//! Each target's last good listing and sync status, and the published [`Catalog`] built from
//! them. The rules that keep the catalog from going dark live here: a failed sync, or a
//! listing that collapses (empty, or below `min_kept_fraction` of the previous one), never
//! replaces good definitions.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::persist::StateDir;
use super::{Catalog, Contribution, Curation, Events, naming};
use crate::config::Config;
use crate::targets::{Description, Listing, Target, TargetError};

/// A target's sync state, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Never synced, nothing restored.
    Pending,
    /// Serving definitions restored from the state directory; no live sync yet.
    Restored,
    /// The last sync succeeded.
    Ready,
    /// The last sync failed; earlier definitions (if any) are still served.
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    /// Kind, endpoint and credential source.
    #[serde(flatten)]
    pub description: Description,
    pub state: SyncState,
    pub tools: usize,
    pub prompts: usize,
    pub resources: usize,
    /// Always present (null until the first success / while there is no error), so
    /// monitoring can rely on the keys.
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub protocol_version: Option<String>,
}

struct TargetSlot {
    name: String,
    /// The upstream's identity (`Target::fingerprint`): what a saved listing is tied to.
    fingerprint: String,
    description: Description,
    prefix: bool,
    normalize_schemas: bool,
    curation: Curation,
    inner: Mutex<SlotState>,
}

#[derive(Default, Clone)]
struct SlotState {
    listing: Option<Arc<Listing>>,
    restored: bool,
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
}

pub struct CatalogStore {
    current: ArcSwap<Catalog>,
    slots: Vec<TargetSlot>,
    max_name_len: usize,
    min_kept_fraction: f64,
    state: Option<StateDir>,
    /// `[search] enabled`: every published snapshot carries a search index.
    search: bool,
    /// `[search] embedder`: remote vectors are added to each published index in the
    /// background (search::remote); the task for an older snapshot is stopped.
    embedder: Option<Arc<super::search::remote::RemoteEmbedder>>,
    embedding: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Serializes rebuilds so two syncs finishing together cannot publish out of order.
    rebuild: Mutex<()>,
    /// What changed, for listeners.
    pub events: Events,
}

impl CatalogStore {
    /// `targets` are the built targets, in config order.
    pub fn new(config: &Config, targets: &[Arc<dyn Target>]) -> anyhow::Result<Self> {
        let slots = config
            .targets
            .iter()
            .zip(targets)
            .map(|(t, target)| {
                Ok(TargetSlot {
                    name: t.name.clone(),
                    fingerprint: target.fingerprint(),
                    description: target.describe(),
                    prefix: t.prefix_tools,
                    normalize_schemas: t
                        .normalize_schemas
                        .unwrap_or(config.catalog.normalize_schemas),
                    curation: Curation::new(&t.curation)?,
                    inner: Mutex::new(SlotState::default()),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            current: ArcSwap::from_pointee(Catalog::default()),
            slots,
            max_name_len: naming::max_len_behind_gateway(
                config.catalog.gateway_target_name.as_deref(),
            ),
            min_kept_fraction: config.catalog.min_kept_fraction,
            state: config.catalog.state_dir.clone().map(StateDir::new),
            search: config.search.enabled,
            embedder: match (&config.search.embedder, config.search.enabled) {
                (Some(c), true) => Some(Arc::new(super::search::remote::RemoteEmbedder::new(c)?)),
                _ => None,
            },
            embedding: Mutex::new(None),
            rebuild: Mutex::new(()),
            events: Events::default(),
        })
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Loads persisted listings before any upstream answers, so `tools/list` works right
    /// after a restart even with every upstream down. Unusable files are reported, skipped.
    pub fn restore(&self) {
        let Some(state) = &self.state else { return };
        let mut restored = 0;
        for slot in &self.slots {
            if slot.inner.lock().unwrap().listing.is_some() {
                continue; // taken over from the running generation: fresher than the file
            }
            match state.load(&slot.name, &slot.fingerprint) {
                Ok(Some(saved)) => {
                    let mut s = slot.inner.lock().unwrap();
                    s.listing = Some(Arc::new(saved.listing));
                    s.restored = true;
                    s.last_success = Some(saved.synced_at);
                    restored += 1;
                }
                Ok(None) => {}
                Err(problem) => {
                    tracing::warn!(target_name = %slot.name, "ignoring saved catalog: {problem}")
                }
            }
        }
        if restored > 0 {
            tracing::info!(targets = restored, dir = %state.path().display(), "restored saved catalogs");
            self.republish();
        }
    }

    /// Continues from `previous`, the store of the generation a reload replaces: the same
    /// event channel (listeners keep listening), its snapshot as the baseline (listeners hear
    /// of exactly what the reload changes), and what it knows of each target with the same
    /// name and upstream identity (listing and sync status: those targets' tools stay
    /// published without a gap). Always publishes a snapshot of this store's own targets.
    pub fn continue_from(&mut self, previous: &CatalogStore) {
        self.events = previous.events.clone();
        self.current.store(previous.snapshot());
        for slot in &self.slots {
            let Some(old) = previous
                .slots
                .iter()
                .find(|o| o.name == slot.name && o.fingerprint == slot.fingerprint)
            else {
                continue;
            };
            let state = old.inner.lock().unwrap().clone();
            *slot.inner.lock().unwrap() = state;
        }
        self.republish();
    }

    /// When target `index` last synced successfully (or its restored listing was saved).
    pub fn last_good_sync(&self, index: usize) -> Option<SystemTime> {
        self.slots[index].inner.lock().unwrap().last_success
    }

    /// Records a sync outcome for target `index`. A success replaces that target's
    /// definitions, republishes and persists; a failure only records the error.
    /// Returns the error kept, if the outcome was refused.
    pub fn record_sync(
        &self,
        index: usize,
        outcome: Result<Listing, TargetError>,
    ) -> Result<(), String> {
        let slot = &self.slots[index];
        let now = SystemTime::now();
        let outcome = outcome.map_err(|e| e.to_string()).and_then(|listing| {
            let previous = slot
                .inner
                .lock()
                .unwrap()
                .listing
                .as_ref()
                .map_or(0, |l| l.tools.len());
            match self.refusal(previous, listing.tools.len()) {
                Some(why) => Err(format!(
                    "upstream target '{}' {why}; keeping the previous {previous} tools",
                    slot.name
                )),
                None => Ok(listing),
            }
        });
        match outcome {
            Ok(listing) => {
                let listing = Arc::new(listing);
                {
                    let mut state = slot.inner.lock().unwrap();
                    state.listing = Some(listing.clone());
                    state.restored = false;
                    state.last_success = Some(now);
                    state.last_error = None;
                }
                self.republish();
                if let Some(state) = &self.state
                    && let Err(e) = state.save(&slot.name, &slot.fingerprint, &listing, now)
                {
                    tracing::warn!(target_name = %slot.name, "could not save the catalog: {e}");
                }
                Ok(())
            }
            Err(message) => {
                slot.inner.lock().unwrap().last_error = Some((now, message.clone()));
                Err(message)
            }
        }
    }

    /// Why a listing of `now` tools must not replace one of `previous` tools, if it must not.
    /// An empty answer from a target that had tools is far more often throttling or a
    /// half-started upstream than a real change.
    fn refusal(&self, previous: usize, now: usize) -> Option<String> {
        if previous > 0 && now == 0 {
            return Some("returned an empty tool list".into());
        }
        if (now as f64) < previous as f64 * self.min_kept_fraction {
            return Some(format!(
                "returned {now} tools, below min_kept_fraction {} of the previous count",
                self.min_kept_fraction
            ));
        }
        None
    }

    fn republish(&self) {
        let _guard = self.rebuild.lock().unwrap();
        let empty = Listing::default();
        let listings: Vec<Option<Arc<Listing>>> = self
            .slots
            .iter()
            .map(|s| s.inner.lock().unwrap().listing.clone())
            .collect();
        let contributions: Vec<Contribution<'_>> = self
            .slots
            .iter()
            .zip(&listings)
            .map(|(slot, listing)| Contribution {
                target: &slot.name,
                prefix: slot.prefix,
                listing: listing.as_deref().unwrap_or(&empty),
                curation: &slot.curation,
                normalize_schemas: slot.normalize_schemas,
            })
            .collect();
        let mut catalog = Catalog::build(&contributions, self.max_name_len);
        if self.search {
            // Tool search: the index is built with the snapshot it searches and published
            // with it; tools whose indexed text is unchanged keep their vectors.
            let started = std::time::Instant::now();
            let previous = self.current.load();
            let tools = catalog.tools.iter().map(|e| (e.exposed.as_str(), &*e.json));
            let index = super::search::SearchIndex::build(tools, previous.search.as_deref());
            tracing::info!(
                tools = index.len(),
                embedded = index.embedded(),
                ms = started.elapsed().as_millis() as u64,
                "search index built"
            );
            catalog.search = Some(Arc::new(index));
        }
        tracing::info!(
            tools = catalog.tools.len(),
            prompts = catalog.prompts.len(),
            resources = catalog.resources.len(),
            "catalog published"
        );
        let before = self.current.swap(Arc::new(catalog));
        self.embed_remotely(&before);
        self.events
            .publish_differences(&before, &self.current.load());
    }

    /// The remote embedder, when one is configured (queries are embedded with it).
    pub fn embedder(&self) -> Option<&Arc<super::search::remote::RemoteEmbedder>> {
        self.embedder.as_ref()
    }

    /// Starts (or skips, when every vector carries over) the remote embedding of the index
    /// just published; `before` is the snapshot it replaced. Never delays publishing.
    fn embed_remotely(&self, before: &Catalog) {
        let Some(embedder) = &self.embedder else {
            return;
        };
        let published = self.current.load_full();
        let Some(index) = published.search.clone() else {
            return;
        };
        let tools = published
            .tools
            .iter()
            .map(|e| (e.exposed.as_str(), &*e.json));
        let work = index.remote_work(tools, before.search.as_deref(), embedder.identity());
        let mut running = self.embedding.lock().unwrap();
        if let Some(task) = running.take() {
            task.abort();
        }
        if work.texts.is_empty() && !work.carried.is_empty() {
            // Nothing changed that the embedder has to see.
            let vectors = work.carried;
            let dim = vectors[0].1.len();
            let mut all = vec![0.0; dim * index.len()];
            for (row, v) in vectors {
                all[row * dim..(row + 1) * dim].copy_from_slice(&v);
            }
            index.attach_remote(super::search::remote::RemoteVectors {
                identity: embedder.identity().clone(),
                dim,
                vectors: all,
            });
            return;
        }
        if work.texts.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                *running = Some(runtime.spawn(super::search::remote::embed_in_background(
                    embedder.clone(),
                    index,
                    work,
                )));
            }
            Err(_) => tracing::warn!("no async runtime: the remote embedder is not used"),
        }
    }

    /// The exposed URI of target `index`'s resource `uri` (the collision form when another
    /// target listed the same URI first).
    pub fn exposed_uri(&self, index: usize, uri: &str) -> String {
        let catalog = self.snapshot();
        match catalog.resources.lookup(uri) {
            Some(entry) if entry.target != index => {
                super::collision_uri(&self.slots[index].name, uri)
            }
            _ => uri.to_string(),
        }
    }

    /// Ready once any target has definitions (synced or restored): from then on
    /// `tools/list` has something to serve.
    pub fn is_ready(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.inner.lock().unwrap().listing.is_some())
    }

    pub fn target_index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name == name)
    }

    pub fn target_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// The upstream's definitions as last synced (before curation and normalization).
    pub fn raw_listing(&self, index: usize) -> Option<Arc<Listing>> {
        self.slots[index].inner.lock().unwrap().listing.clone()
    }

    pub fn statuses(&self) -> Vec<TargetStatus> {
        self.slots
            .iter()
            .map(|slot| {
                let s = slot.inner.lock().unwrap();
                let state = match (&s.last_error, &s.listing) {
                    (Some(_), _) => SyncState::Failing,
                    (None, Some(_)) if s.restored => SyncState::Restored,
                    (None, Some(_)) => SyncState::Ready,
                    (None, None) => SyncState::Pending,
                };
                let count = |f: fn(&Listing) -> usize| s.listing.as_deref().map_or(0, f);
                TargetStatus {
                    name: slot.name.clone(),
                    description: slot.description.clone(),
                    state,
                    tools: count(|l| l.tools.len()),
                    prompts: count(|l| l.prompts.len()),
                    resources: count(|l| l.resources.len()),
                    last_success: s.last_success.map(rfc3339),
                    last_error: s.last_error.as_ref().map(|(_, m)| m.clone()),
                    last_error_at: s.last_error.as_ref().map(|(t, _)| rfc3339(*t)),
                    protocol_version: s.listing.as_ref().map(|l| l.protocol_version.clone()),
                }
            })
            .collect()
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
