//! The per-target concurrency bound (`max_concurrency`, `queue_timeout_ms`), applied once
//! around any kind of target by [`super::build`].
//!
//! A request waits at most the queue timeout for a slot, then fails as `overloaded`: one
//! slow target fails fast and visibly instead of piling up work, and never slows the
//! others (each target has its own bound).
//!
//! Being the one wrapper around every target, it is also where each relayed request is
//! measured (`mcp_client_operation_duration_seconds` by target, method, tool and outcome)
//! and gets its trace span.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use memchr::memmem;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::{
    BoxFuture, ChangeCallback, Description, FailureKind, Listing, NotificationSink, Operation,
    RelayRequest, Reply, Target, TargetError,
};
use crate::config::TargetConfig;
use crate::telemetry::metrics::{jsonrpc_error_type, metrics};
use crate::telemetry::trace;

/// The outcome as an `error.type` (None: success): the failure kind, a JSON-RPC error code,
/// or `tool_error` for a tool result with `isError: true`.
fn error_type(outcome: &Result<Reply, TargetError>) -> Option<Cow<'static, str>> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "isError", default)]
        is_error: Option<bool>,
        #[serde(default)]
        code: Option<i64>,
    }
    match outcome {
        Err(e) => Some(Cow::Borrowed(e.kind.label())),
        Ok(Reply::Error(raw)) => Some(
            serde_json::from_str::<Probe>(raw.get())
                .ok()
                .and_then(|p| p.code)
                .map_or(Cow::Borrowed("jsonrpc_error"), jsonrpc_error_type),
        ),
        // Most results carry no `isError`, or `"isError":false`: no need to read them through
        // then (a key spelled with escapes still is, `\u…` being the only way to write it
        // otherwise).
        Ok(Reply::Result(raw)) if never_true(raw.get()) && !has_escape(raw.get()) => None,
        Ok(Reply::Result(raw)) => serde_json::from_str::<Probe>(raw.get())
            .ok()
            .and_then(|p| p.is_error)
            .filter(|e| *e)
            .map(|_| Cow::Borrowed("tool_error")),
    }
}

/// Whether every `"isError"` in `result` is a key set to `false` (or there is none), so the
/// result's own `isError` cannot be `true`. Anything else (`true`, a string that spells the
/// key) is left to the parser.
fn never_true(result: &str) -> bool {
    // memchr's searchers, built once: `str::match_indices` sets one up per call, which
    // cost more than the scan of a small result.
    static KEY: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(IS_ERROR_KEY));
    KEY.find_iter(result.as_bytes()).all(|at| {
        let rest = result[at + IS_ERROR_KEY.len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|value| value.trim_start().starts_with("false"))
    })
}

const IS_ERROR_KEY: &str = r#""isError""#;

/// Whether `result` has a `\u` escape (which could spell the key).
fn has_escape(result: &str) -> bool {
    static ESCAPE: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("\\u"));
    ESCAPE.find(result.as_bytes()).is_some()
}

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
        // A free slot is taken at once, without arming a timer. (Fair: while requests wait,
        // released permits go to them, so none is free to take here.)
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
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
            let started = Instant::now();
            let method = request.operation.method();
            let tool = match request.operation {
                Operation::CallTool => request.name.clone(),
                _ => None,
            };
            let span = trace::target_span(self.inner.name(), method, tool.as_deref());
            let outcome = async {
                let _slot = self.slot(method).await?;
                self.inner.relay(request, notify).await
            }
            .instrument(span.clone())
            .await;
            let error_type = error_type(&outcome);
            if let Some(error_type) = &error_type {
                trace::record_error(&span, error_type);
            }
            metrics().client_operation(
                self.inner.name(),
                method,
                tool.as_deref(),
                error_type,
                started.elapsed(),
            );
            outcome
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn of_result(result: &str) -> Option<Cow<'static, str>> {
        error_type(&Ok(Reply::Result(
            RawValue::from_string(result.to_string()).unwrap(),
        )))
    }

    #[test]
    fn tool_errors_are_told_from_results() {
        let tool_error = Some(Cow::Borrowed("tool_error"));
        assert_eq!(of_result(r#"{"content":[]}"#), None);
        assert_eq!(of_result(r#"{"content":[],"isError":false}"#), None);
        assert_eq!(of_result(r#"{"content":[], "isError" :	false }"#), None);
        assert_eq!(of_result(r#"{"content":[],"isError":true}"#), tool_error);
        assert_eq!(of_result(r#"{"isError" : true,"content":[]}"#), tool_error);
        // Nested keys are not the result's own; the parser decides when in doubt.
        assert_eq!(
            of_result(r#"{"structuredContent":{"isError":true},"content":[],"isError":false}"#),
            None
        );
        assert_eq!(
            of_result(r#"{"content":[{"type":"text","text":"isError"}],"isError":true}"#),
            tool_error
        );
        assert_eq!(
            of_result(r#"{"content":[],"\u0069sError":true}"#),
            tool_error
        );
    }
}
