//! The per-target concurrency bound (`max_concurrency`, `queue_timeout_ms`), applied once
//! around any kind of target by [`super::build`].
//!
//! A request waits at most the queue timeout for a slot, then fails as `overloaded`: one
//! slow target fails fast and visibly instead of piling up work, and never slows the
//! others (each target has its own bound).

use std::time::Duration;

use tokio::sync::Semaphore;

use super::{
    BoxFuture, ChangeCallback, Description, FailureKind, Listing, NotificationSink, RelayRequest,
    Reply, Target, TargetError,
};
use crate::config::TargetConfig;

pub struct Bounded {
    inner: Box<dyn Target>,
    permits: Semaphore,
    max_concurrency: usize,
    /// The queue wait, never longer than a request may take at all.
    queue_timeout: Duration,
}

impl Bounded {
    pub fn new(inner: Box<dyn Target>, config: &TargetConfig) -> Self {
        Self {
            inner,
            permits: Semaphore::new(config.max_concurrency),
            max_concurrency: config.max_concurrency,
            queue_timeout: config.queue_timeout().min(config.request_timeout()),
        }
    }

    async fn slot(&self, what: &str) -> Result<tokio::sync::SemaphorePermit<'_>, TargetError> {
        tokio::time::timeout(self.queue_timeout, self.permits.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                TargetError::new(
                    self.inner.name(),
                    FailureKind::Overloaded,
                    format!(
                        "{what}: all {} request slots stayed busy for {} ms",
                        self.max_concurrency,
                        self.queue_timeout.as_millis()
                    ),
                )
            })
    }
}

impl Target for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn describe(&self) -> Description {
        self.inner.describe()
    }

    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }

    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>> {
        Box::pin(async move {
            let _slot = self.slot("sync").await?;
            self.inner.sync().await
        })
    }

    fn relay(
        &self,
        request: RelayRequest,
        notify: Option<NotificationSink>,
    ) -> BoxFuture<'_, Result<Reply, TargetError>> {
        Box::pin(async move {
            let _slot = self.slot(request.operation.method()).await?;
            self.inner.relay(request, notify).await
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }

    fn watch_changes(&self, on_change: ChangeCallback) -> BoxFuture<'_, ()> {
        self.inner.watch_changes(on_change)
    }

    fn inspect(&self) -> BoxFuture<'_, Vec<String>> {
        self.inner.inspect()
    }

    fn watch_resources(&self, uris: Vec<String>) -> BoxFuture<'_, ()> {
        self.inner.watch_resources(uris)
    }
}
