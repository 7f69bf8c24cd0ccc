//! Traces over OTLP/HTTP (protobuf), off unless an endpoint is configured
//! (`telemetry.otlp_endpoint`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn it off again).
//!
//! Spans: one server span per inbound MCP request (continuing the caller's W3C
//! `traceparent`), a child per request relayed to a target, and a client span per upstream
//! HTTP request, whose `traceparent` is sent upstream. Attribute names follow OpenTelemetry's
//! MCP and HTTP conventions.
//!
//! Cost when off: [`enabled`] is one relaxed atomic load and every span helper returns
//! `Span::none()`, so the request path allocates nothing for tracing. The exporter runs on
//! the tokio runtime (batching, export over the reqwest client the sidecar already has).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;

use crate::config::TelemetryConfig;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The running exporter, flushed at exit.
pub struct Exporter {
    provider: SdkTracerProvider,
    endpoint: String,
}

impl Exporter {
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        let provider = self.provider;
        // The SDK blocks while flushing; keep that off the runtime's workers, and bounded.
        let flushed = tokio::task::spawn_blocking(move || {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        });
        let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
    }
}

/// Where spans go, if anywhere: the config's endpoint, else the standard variables.
fn endpoint(config: &TelemetryConfig) -> Option<String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return None;
    }
    if let Some(base) = &config.otlp_endpoint {
        return Some(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(url);
    }
    env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
}

type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The exporter and its `tracing` layer, when traces are configured.
pub fn exporter<S>(config: &TelemetryConfig) -> anyhow::Result<Option<(Exporter, BoxedLayer<S>)>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let Some(endpoint) = endpoint(config) else {
        return Ok(None);
    };
    let client = crate::tls::client_builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .build()?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(config.service_name.clone());
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("mcp-sidecar");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("mcp_sidecar")
        }))
        .boxed();
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some((Exporter { provider, endpoint }, layer)))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// A span's name: the method, and the tool when there is one (`tools/call get_weather`).
fn span_name(method: &str, tool: Option<&str>) -> String {
    match tool {
        Some(tool) => format!("{method} {tool}"),
        None => method.to_string(),
    }
}

/// The server span of one inbound MCP request, continuing the caller's `traceparent`.
pub fn server_span(headers: &HeaderMap, method: &str, tool: Option<&str>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let name = span_name(method, tool);
    let span = tracing::info_span!(
        "mcp.server",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        mcp.method.name = %method,
        gen_ai.tool.name = tool,
        gen_ai.operation.name = tool.map(|_| "execute_tool"),
        network.transport = "tcp",
        network.protocol.name = "http",
        error.type = tracing::field::Empty,
        rpc.response.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
    span
}

/// The span of one request relayed to a target (a child of the inbound request's span).
pub fn target_span(target: &str, method: &str, tool: Option<&str>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let name = span_name(method, tool);
    tracing::info_span!(
        "mcp.client",
        otel.name = %name,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        mcp.method.name = %method,
        gen_ai.tool.name = tool,
        mcp_sidecar.target = %target,
        error.type = tracing::field::Empty,
    )
}

/// The client span of one upstream HTTP request.
pub fn http_client_span(target: &str, method: &http::Method, url: &reqwest::Url) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        "http.client",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default(),
        url.full = %crate::targets::http::printable_url(url),
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        mcp_sidecar.target = %target,
    )
}

/// Records a failure on `span` (no-op for `Span::none()`).
pub fn record_error(span: &Span, error_type: &str) {
    if !span.is_none() {
        span.record("error.type", error_type);
        span.record("otel.status_code", "ERROR");
    }
}

/// Adds the current span's `traceparent` (and `tracestate`) to an outbound request.
pub fn inject(headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}
