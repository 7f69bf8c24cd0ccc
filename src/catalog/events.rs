//! What changed in the catalog, for whoever listens (`subscriptions/listen` streams, legacy
//! GET streams): a listing that changed when a snapshot was published, a sync that followed
//! an upstream's announcement, or an update of a resource.
//!
//! A broadcast channel: publishing never waits for a listener, and a listener that falls
//! more than [`CAPACITY`] events behind misses the oldest (it is told so, and resends every
//! list change, which is the safe answer: the client lists again).

use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::broadcast;

use super::{Catalog, Entries};

const CAPACITY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEvent {
    ToolsChanged,
    PromptsChanged,
    ResourcesChanged,
    /// The resource at this exposed URI changed.
    ResourceUpdated(String),
}

/// Cloning shares the channel (a reload's new store keeps its listeners).
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<CatalogEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    pub fn publish(&self, event: CatalogEvent) {
        // No receiver is fine: nobody is listening right now.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CatalogEvent> {
        self.tx.subscribe()
    }

    /// Publishes the kinds whose listing differs between two snapshots.
    pub fn publish_differences(&self, before: &Catalog, after: &Catalog) {
        for (a, b, event) in [
            (&before.tools, &after.tools, CatalogEvent::ToolsChanged),
            (
                &before.prompts,
                &after.prompts,
                CatalogEvent::PromptsChanged,
            ),
            (
                &before.resources,
                &after.resources,
                CatalogEvent::ResourcesChanged,
            ),
        ] {
            if digest(a) != digest(b) {
                self.publish(event);
            }
        }
    }
}

/// A digest of a listing as clients see it.
fn digest(entries: &Entries) -> u64 {
    let mut hasher = DefaultHasher::new();
    for entry in entries.iter() {
        entry.json.get().hash(&mut hasher);
    }
    entries.len().hash(&mut hasher);
    hasher.finish()
}
