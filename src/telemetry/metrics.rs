//! Prometheus metrics, served at `GET /metrics` (Prometheus text 0.0.4, or OpenMetrics when
//! the scraper asks for it).
//!
//! Names follow OpenTelemetry's semantic conventions where one exists, mapped the way
//! Prometheus maps OTLP (dots become underscores, the unit becomes a suffix):
//! `mcp.server.operation.duration` → `mcp_server_operation_duration_seconds`,
//! `mcp.client.operation.duration` → `mcp_client_operation_duration_seconds`,
//! `http.server.request.duration` → `http_server_request_duration_seconds`,
//! `http.server.active_requests` → `http_server_active_requests`; attributes likewise
//! (`mcp.method.name` → `mcp_method_name`, `gen_ai.tool.name` → `gen_ai_tool_name`,
//! `error.type` → `error_type`). What the conventions do not cover is `mcp_sidecar_*`.
//!
//! Invariant: every label has a bounded set of values. Methods outside MCP's own are
//! `other`; routes are the configured ones or `other`; a tool gets its own label value only
//! when it reached a target (so it is in a catalog) and while fewer than
//! `telemetry.max_tool_labels` tools have one, after which further tools count as `other`;
//! target names come from the config; error types are fixed words or JSON-RPC codes.
//!
//! Why `prometheus-client` rather than `metrics` + `metrics-exporter-prometheus`: typed label
//! sets checked by the compiler (the bound above is visible in the types), no macro-installed
//! global recorder, and both text formats from one registry. The registry itself is one per
//! process ([`metrics`]) so the few hooks (targets, HTTP sending, credential providers) need
//! no handle threaded through every constructor.

use std::borrow::Cow;
// foldhash: the tool labels are looked up twice on every call (see `catalog::Entries`).
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::catalog::TargetStatus;

/// OpenTelemetry's advice for `mcp.*.operation.duration` (seconds): tool calls are long.
const MCP_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// OpenTelemetry's advice for `http.server.request.duration` (seconds).
const HTTP_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The MCP methods that get their own label value; anything else is `other`.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "completion/complete",
    "logging/setLevel",
];

/// `method` as a label value from a fixed set.
pub fn method_label(method: &str) -> &'static str {
    if let Some(known) = KNOWN_METHODS.iter().find(|m| **m == method) {
        return known;
    }
    if method.starts_with("notifications/") {
        return "notification";
    }
    "other"
}

/// A JSON-RPC error code as an `error.type` value: codes of the reserved range (which holds
/// JSON-RPC's and MCP's own) by number, anything else (an upstream's own codes) as one word.
pub fn jsonrpc_error_type(code: i64) -> Cow<'static, str> {
    if (-32768..=-32000).contains(&code) {
        Cow::Owned(code.to_string())
    } else {
        Cow::Borrowed("jsonrpc_error")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerOperation {
    mcp_method_name: &'static str,
    gen_ai_tool_name: Cow<'static, str>,
    error_type: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientOperation {
    target: String,
    mcp_method_name: &'static str,
    gen_ai_tool_name: Cow<'static, str>,
    error_type: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpServerRequest {
    http_request_method: &'static str,
    http_route: String,
    http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthOutcome {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetState {
    target: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CredentialRefresh {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn mcp_histogram() -> Histogram {
    Histogram::new(MCP_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    server_operations: Histograms<ServerOperation>,
    client_operations: Histograms<ClientOperation>,
    http_requests: Histograms<HttpServerRequest>,
    active_requests: Gauge,
    open_connections: Gauge,
    connections_closed: Family<Reason, Counter>,
    auth: Family<AuthOutcome, Counter>,
    throttle_retries: Family<TargetLabel, Counter>,
    credential_refreshes: Family<CredentialRefresh, Counter>,
    reloads: Family<Outcome, Counter>,
    target_state: Family<TargetState, Gauge>,
    target_age: Family<TargetLabel, Gauge<f64, AtomicU64>>,
    target_tools: Family<TargetLabel, Gauge>,
    /// Serializes the scrape-time refresh of the per-target gauges.
    scrape: Mutex<()>,
    tools: ToolLabels,
}

/// The bounded set of tool names that have their own label value, by target (looked up
/// by `&str`, with no key built per request).
struct ToolLabels {
    admitted: RwLock<HashMap<String, HashMap<String, OkSeries>>>,
    count: AtomicUsize,
    max: AtomicUsize,
}

/// An admitted tool's series for a `tools/call` that succeeded, the commonest observation:
/// kept as handles, so observing one builds no labels and looks up no family (issue 15's
/// profile). Filled on first use, so a series appears only once it has been observed.
#[derive(Default)]
struct OkSeries {
    server: OnceLock<Histogram>,
    client: OnceLock<Histogram>,
}

impl ToolLabels {
    fn label(&self, target: &str, tool: &str) -> Cow<'static, str> {
        let known = |admitted: &HashMap<String, HashMap<String, OkSeries>>| {
            admitted
                .get(target)
                .is_some_and(|tools| tools.contains_key(tool))
        };
        if known(&self.admitted.read().unwrap()) {
            return Cow::Owned(tool.to_string());
        }
        let mut admitted = self.admitted.write().unwrap();
        if known(&admitted) {
            return Cow::Owned(tool.to_string());
        }
        if self.count.load(Ordering::Relaxed) < self.max.load(Ordering::Relaxed) {
            admitted
                .entry(target.to_string())
                .or_default()
                .insert(tool.to_string(), OkSeries::default());
            self.count.fetch_add(1, Ordering::Relaxed);
            Cow::Owned(tool.to_string())
        } else {
            Cow::Borrowed("other")
        }
    }

    /// Observes `seconds` for a call of `tool` on `family`, under the labels `labels` builds
    /// from the tool's label. With `cached` (a successful call), an admitted tool's series
    /// handle is kept in the [`OkSeries`] field it picks, made on first use: observing it
    /// then builds no labels and looks up no family (issue 15's profile).
    fn observe<L: Clone + std::hash::Hash + Eq>(
        &self,
        family: &Histograms<L>,
        (target, tool): (&str, &str),
        cached: Option<fn(&OkSeries) -> &OnceLock<Histogram>>,
        labels: impl FnOnce(Cow<'static, str>) -> L,
        seconds: f64,
    ) {
        if let Some(pick) = cached {
            let admitted = self.admitted.read().unwrap();
            if let Some(series) = admitted.get(target).and_then(|tools| tools.get(tool)) {
                // The label is made only when the series is: once, not per observation.
                let make = || family.get_or_create(&labels(Cow::Owned(tool.to_string())));
                pick(series).get_or_init(|| make().clone()).observe(seconds);
                return;
            }
        }
        family
            .get_or_create(&labels(self.label(target, tool)))
            .observe(seconds);
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let server_operations: Histograms<ServerOperation> =
            Family::new_with_constructor(mcp_histogram);
        registry.register_with_unit(
            "mcp_server_operation_duration",
            "MCP request duration as observed by the sidecar, from receipt to answer (mcp.server.operation.duration)",
            Unit::Seconds,
            server_operations.clone(),
        );
        let client_operations: Histograms<ClientOperation> =
            Family::new_with_constructor(mcp_histogram);
        registry.register_with_unit(
            "mcp_client_operation_duration",
            "Duration of requests relayed to each target, queue wait included (mcp.client.operation.duration); error_type is the failure kind, tool_error or a JSON-RPC code",
            Unit::Seconds,
            client_operations.clone(),
        );
        let http_requests: Histograms<HttpServerRequest> =
            Family::new_with_constructor(http_histogram);
        registry.register_with_unit(
            "http_server_request_duration",
            "Inbound HTTP request duration (http.server.request.duration)",
            Unit::Seconds,
            http_requests.clone(),
        );
        let active_requests = Gauge::default();
        registry.register(
            "http_server_active_requests",
            "Inbound HTTP requests being handled (http.server.active_requests)",
            active_requests.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "mcp_sidecar_open_connections",
            "Inbound connections open",
            open_connections.clone(),
        );
        let connections_closed = Family::<Reason, Counter>::default();
        registry.register(
            "mcp_sidecar_connections_closed",
            "Inbound connections the sidecar closed itself, by reason (limit, header_timeout, idle_timeout, shutdown)",
            connections_closed.clone(),
        );
        let auth = Family::<AuthOutcome, Counter>::default();
        registry.register(
            "mcp_sidecar_auth",
            "Inbound authentication outcomes by reason",
            auth.clone(),
        );
        let throttle_retries = Family::<TargetLabel, Counter>::default();
        registry.register(
            "mcp_sidecar_upstream_throttle_retries",
            "Throttled upstream requests retried (429, 503 with Retry-After, AWS throttling)",
            throttle_retries.clone(),
        );
        let credential_refreshes = Family::<CredentialRefresh, Counter>::default();
        registry.register(
            "mcp_sidecar_credential_refreshes",
            "Outbound credential fetches and refreshes by source and outcome",
            credential_refreshes.clone(),
        );
        let reloads = Family::<Outcome, Counter>::default();
        registry.register(
            "mcp_sidecar_config_reloads",
            "Config reloads by outcome (applied, unchanged, invalid)",
            reloads.clone(),
        );
        let target_state = Family::<TargetState, Gauge>::default();
        registry.register(
            "mcp_sidecar_target_sync_state",
            "1 for each target's current sync state (pending, restored, ready, failing)",
            target_state.clone(),
        );
        let target_age = Family::<TargetLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "mcp_sidecar_target_sync_age",
            "Time since each target's last good sync (absent before the first)",
            Unit::Seconds,
            target_age.clone(),
        );
        let target_tools = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "mcp_sidecar_target_tools",
            "Tools each target lists (last good sync)",
            target_tools.clone(),
        );
        Self {
            registry,
            server_operations,
            client_operations,
            http_requests,
            active_requests,
            open_connections,
            connections_closed,
            auth,
            throttle_retries,
            credential_refreshes,
            reloads,
            target_state,
            target_age,
            target_tools,
            scrape: Mutex::new(()),
            tools: ToolLabels {
                admitted: RwLock::default(),
                count: AtomicUsize::new(0),
                max: AtomicUsize::new(200),
            },
        }
    }

    pub fn set_max_tool_labels(&self, max: usize) {
        self.tools.max.store(max, Ordering::Relaxed);
    }

    /// One answered MCP request. `tool` is given only for tools found in the catalog.
    pub fn server_operation(
        &self,
        method: &str,
        tool: Option<(&str, &str)>,
        error_type: Option<Cow<'static, str>>,
        took: Duration,
    ) {
        let cached: Option<fn(&OkSeries) -> &OnceLock<Histogram>> =
            (error_type.is_none() && method == "tools/call").then_some(|series| &series.server);
        let labels = |gen_ai_tool_name| ServerOperation {
            mcp_method_name: method_label(method),
            gen_ai_tool_name,
            error_type: error_type.unwrap_or(Cow::Borrowed("")),
        };
        let seconds = took.as_secs_f64();
        match tool {
            Some(tool) => {
                self.tools
                    .observe(&self.server_operations, tool, cached, labels, seconds)
            }
            None => self
                .server_operations
                .get_or_create(&labels(Cow::Borrowed("")))
                .observe(seconds),
        }
    }

    /// One request relayed to `target`.
    pub fn client_operation(
        &self,
        target: &str,
        method: &str,
        tool: Option<&str>,
        error_type: Option<Cow<'static, str>>,
        took: Duration,
    ) {
        let cached: Option<fn(&OkSeries) -> &OnceLock<Histogram>> =
            (error_type.is_none() && method == "tools/call").then_some(|series| &series.client);
        let labels = |gen_ai_tool_name| ClientOperation {
            target: target.to_string(),
            mcp_method_name: method_label(method),
            gen_ai_tool_name,
            error_type: error_type.unwrap_or(Cow::Borrowed("")),
        };
        let seconds = took.as_secs_f64();
        match tool {
            Some(tool) => self.tools.observe(
                &self.client_operations,
                (target, tool),
                cached,
                labels,
                seconds,
            ),
            None => self
                .client_operations
                .get_or_create(&labels(Cow::Borrowed("")))
                .observe(seconds),
        }
    }

    /// `route` is the matched route template (a fixed set) or `other`.
    pub fn http_request(&self, method: &http::Method, route: &str, status: u16, took: Duration) {
        self.http_request_series(method, route, status)
            .observe(took.as_secs_f64());
    }

    /// The `http.server.request.duration` series of one method, route and status, as a
    /// handle: a caller that keeps it observes without building labels or looking up the
    /// family (the MCP path's answers, nearly all 200; issue 15's profile).
    pub fn http_request_series(
        &self,
        method: &http::Method,
        route: &str,
        status: u16,
    ) -> Histogram {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::DELETE => "DELETE",
            http::Method::HEAD => "HEAD",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::PUT => "PUT",
            _ => "_OTHER",
        };
        self.http_requests
            .get_or_create(&HttpServerRequest {
                http_request_method: method,
                http_route: route.to_string(),
                http_response_status_code: status,
            })
            .clone()
    }

    pub fn active_requests(&self) -> &Gauge {
        &self.active_requests
    }

    pub fn open_connections(&self) -> &Gauge {
        &self.open_connections
    }

    /// A connection the sidecar closed: `limit`, `header_timeout`, `idle_timeout`, `shutdown`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// `outcome`: `ok`, `missing`, `invalid`, `insufficient_scope`; `reason` a fixed word.
    pub fn auth(&self, outcome: &'static str, reason: &'static str) {
        self.auth
            .get_or_create(&AuthOutcome { outcome, reason })
            .inc();
    }

    pub fn throttle_retry(&self, target: &str) {
        self.throttle_retries
            .get_or_create(&TargetLabel {
                target: target.to_string(),
            })
            .inc();
    }

    /// `source`: `oauth_client_credentials` or `aws`.
    pub fn credential_refresh(&self, source: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.credential_refreshes
            .get_or_create(&CredentialRefresh { source, outcome })
            .inc();
    }

    /// `outcome`: `applied`, `unchanged`, `invalid`.
    pub fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&Outcome { outcome }).inc();
    }

    /// The exposition, with the per-target gauges refreshed from `statuses` first.
    pub fn render(&self, statuses: &[TargetStatus], openmetrics: bool) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap();
        self.target_state.clear();
        self.target_age.clear();
        self.target_tools.clear();
        let now = SystemTime::now();
        for status in statuses {
            let target = TargetLabel {
                target: status.name.clone(),
            };
            let state = serde_json::to_value(status.state)
                .ok()
                .and_then(|v| v.as_str().map(state_word))
                .unwrap_or("pending");
            self.target_state
                .get_or_create(&TargetState {
                    target: status.name.clone(),
                    state,
                })
                .set(1);
            self.target_tools
                .get_or_create(&target)
                .set(status.tools as i64);
            if let Some(at) = status
                .last_success
                .as_deref()
                .and_then(|s| humantime::parse_rfc3339(s).ok())
            {
                let age = now.duration_since(at).unwrap_or_default();
                self.target_age
                    .get_or_create(&target)
                    .set(age.as_secs_f64());
            }
        }
        let mut out = String::with_capacity(8192);
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        encoded.expect("writing to a String cannot fail");
        out
    }
}

fn state_word(state: &str) -> &'static str {
    match state {
        "restored" => "restored",
        "ready" => "ready",
        "failing" => "failing",
        _ => "pending",
    }
}

pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_tools_have_bounded_labels() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("notifications/cancelled"), "notification");
        assert_eq!(method_label("x".repeat(100).as_str()), "other");
        let tools = ToolLabels {
            admitted: RwLock::default(),
            count: AtomicUsize::new(0),
            max: AtomicUsize::new(2),
        };
        assert_eq!(tools.label("t", "a"), "a");
        assert_eq!(tools.label("t", "b"), "b");
        assert_eq!(tools.label("t", "c"), "other");
        assert_eq!(tools.label("u", "a"), "other", "the bound spans targets");
        assert_eq!(
            tools.label("t", "a"),
            "a",
            "admitted tools keep their label"
        );
    }

    #[test]
    fn both_formats_render() {
        let m = Metrics::new();
        m.server_operation(
            "tools/call",
            Some(("t", "echo")),
            None,
            Duration::from_millis(3),
        );
        m.throttle_retry("t");
        let text = m.render(&[], false);
        assert!(
            text.contains("# TYPE mcp_server_operation_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(r#"mcp_sidecar_upstream_throttle_retries_total{target="t"} 1"#),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert!(m.render(&[], true).ends_with("# EOF\n"));
    }

    /// Successful calls of admitted tools take the cached handles; what is exposed is the
    /// same as through the families: one series per label set, every observation counted.
    #[test]
    fn cached_series_count_like_the_families() {
        let m = Metrics::new();
        m.set_max_tool_labels(1);
        let took = Duration::from_millis(3);
        for _ in 0..3 {
            m.server_operation("tools/call", Some(("t", "echo")), None, took);
            m.client_operation("t", "tools/call", Some("echo"), None, took);
        }
        m.server_operation(
            "tools/call",
            Some(("t", "echo")),
            Some("-32602".into()),
            took,
        );
        // Past the label bound: counted under `other`, never on the admitted tool's series.
        m.server_operation("tools/call", Some(("t", "late")), None, took);
        m.client_operation("t", "tools/call", Some("late"), None, took);
        let text = m.render(&[], false);
        for expected in [
            r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type=""} 3"#,
            r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type="-32602"} 1"#,
            r#"mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",gen_ai_tool_name="other",error_type=""} 1"#,
            r#"mcp_client_operation_duration_seconds_count{target="t",mcp_method_name="tools/call",gen_ai_tool_name="echo",error_type=""} 3"#,
            r#"mcp_client_operation_duration_seconds_count{target="t",mcp_method_name="tools/call",gen_ai_tool_name="other",error_type=""} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        let ok_series = text
            .lines()
            .filter(|l| {
                l.contains("_count{") && l.contains(r#"gen_ai_tool_name="echo",error_type="""#)
            })
            .count();
        assert_eq!(ok_series, 2, "one server and one client series:\n{text}");
    }
}
