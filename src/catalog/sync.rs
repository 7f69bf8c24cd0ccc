//! The sync loop: one background task per target.
//!
//! Start-up does not wait for it (the listener is up at once). After a success the next sync
//! is one interval away; after a failure it comes sooner, with a doubling, jittered backoff
//! capped at the interval, so a target that comes up late is picked up quickly.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::CatalogStore;
use crate::targets::{FailureKind, Target, TargetError};

const FIRST_RETRY: Duration = Duration::from_millis(500);

pub struct SyncPlan {
    pub index: usize,
    pub target: Arc<dyn Target>,
    pub interval: Duration,
    pub deadline: Duration,
}

pub fn spawn(store: Arc<CatalogStore>, plans: Vec<SyncPlan>) -> Vec<JoinHandle<()>> {
    plans
        .into_iter()
        .map(|plan| {
            let store = store.clone();
            tokio::spawn(async move { run(store, plan).await })
        })
        .collect()
}

/// One sync of one target, bounded by its sync deadline (which covers every page).
pub async fn sync_once(store: &CatalogStore, plan: &SyncPlan) -> Result<(), String> {
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

async fn run(store: Arc<CatalogStore>, plan: SyncPlan) {
    let mut backoff = FIRST_RETRY;
    loop {
        let wait = match sync_once(&store, &plan).await {
            Ok(()) => {
                backoff = FIRST_RETRY;
                plan.interval
            }
            Err(message) => {
                tracing::warn!(target_name = plan.target.name(), "sync failed: {message}");
                let wait = backoff.min(plan.interval);
                backoff = (backoff * 2).min(plan.interval);
                wait
            }
        };
        tokio::time::sleep(jitter(wait)).await;
    }
}

/// ±10 % so many sidecars restarted together do not sync in lockstep.
fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..1.1);
    d.mul_f64(factor)
}
