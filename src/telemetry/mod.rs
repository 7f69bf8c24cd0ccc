//! Logs, metrics and traces.
//!
//! - [`init`] installs the one process-wide `tracing` subscriber: text or JSON logs on
//!   stderr (`telemetry.log_format`, `MCP_SIDECAR_LOG_FORMAT`), filtered by
//!   `MCP_SIDECAR_LOG`, plus the OpenTelemetry layer when traces are exported ([`trace`]).
//!   Because it is process-wide it is chosen once at start-up; a reload does not change it.
//! - [`metrics`]: the Prometheus registry and its few hooks.
//!
//! Secrets never reach a log line: configured secrets are [`crate::config::Secret`]s that
//! print `<redacted>`, outbound credentials are marked sensitive, the caller's token is never
//! logged, and no log line quotes a request or response body beyond error excerpts.

pub mod metrics;
pub mod trace;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, TelemetryConfig};

pub use self::metrics::metrics;

/// What must be flushed before the process exits.
pub struct Telemetry {
    traces: Option<trace::Exporter>,
}

impl Telemetry {
    /// Exports the spans still buffered (bounded wait).
    pub async fn shutdown(self) {
        if let Some(traces) = self.traces {
            traces.shutdown().await;
        }
    }
}

type Filtered = tracing_subscriber::layer::Layered<EnvFilter, Registry>;

/// The log format: `MCP_SIDECAR_LOG_FORMAT` (`text` or `json`) wins over the config.
pub fn log_format(config: &TelemetryConfig) -> LogFormat {
    match std::env::var("MCP_SIDECAR_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("text") => LogFormat::Text,
        _ => config.log_format,
    }
}

/// Installs logging (and trace export when configured). Call once, inside the runtime.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    metrics().set_max_tool_labels(config.max_tool_labels);
    let mut layers: Vec<Box<dyn Layer<Filtered> + Send + Sync>> =
        vec![log_layer(log_format(config))];
    let traces = match trace::exporter(config)? {
        Some((exporter, layer)) => {
            layers.push(layer);
            Some(exporter)
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(env_filter())
        .with(layers)
        .try_init();
    if let Some(t) = &traces {
        tracing::info!(endpoint = %t.endpoint(), "exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { traces })
}

/// Text logs only, for the commands that do not serve (`check`, `doctor`, the demo upstream).
pub fn init_plain() {
    let _ = tracing_subscriber::registry()
        .with(env_filter())
        .with(log_layer(log_format(&TelemetryConfig::default())))
        .try_init();
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_env("MCP_SIDECAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

fn log_layer(format: LogFormat) -> Box<dyn Layer<Filtered> + Send + Sync> {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => layer.boxed(),
        // One object per line: timestamp, level, target, the event's fields (flattened) and
        // the fields of the spans it happened in.
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
    }
}
