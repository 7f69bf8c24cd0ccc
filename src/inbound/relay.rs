//! The relayed methods: `tools/call`, `prompts/get`, `resources/read`,
//! `completion/complete` and `logging/setLevel` go live to the target that owns the name or
//! URI; the answer comes back byte for byte, with only what the caller's protocol version
//! adds (`resultType`, caching hints) and the MRTR `requestState` sealed ([`super::mrtr`]).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::carry;
use super::handler::{Answer, Call, Failure};
use super::jsonrpc::{
    self, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError,
};
use super::lifecycle::with_result_type;
use super::mrtr::{self, Binding};
use super::sealed::Sealer;
use super::version;
use crate::Relay;
use crate::catalog::{COLLISION_URI_PREFIX, Catalog, ToolHeaders};
use crate::protocol::param_headers;
use crate::targets::{Operation, RelayRequest, Reply, TargetError};

/// How a relayed answer is written for the caller; owned, so a streamed call can finish it
/// in a task of its own.
pub struct Render {
    id: Box<RawValue>,
    /// The tool, prompt or URI, for messages.
    what: String,
    modern: bool,
    /// `resources/read` at 2026-07-28 carries caching hints.
    hints: bool,
    /// Seals an `input_required` answer's state for this request.
    mrtr: Option<(Arc<Sealer>, Duration, Binding)>,
}

impl Render {
    fn new(call: &Call<'_>, what: &str, binding: Option<Binding>) -> Self {
        Self {
            id: call.id.to_owned(),
            what: what.to_string(),
            modern: call.version.modern,
            hints: call.version.modern && call.method == "resources/read",
            mrtr: binding
                .filter(|_| call.version.modern)
                .map(|b| (call.relay.sealer.clone(), call.relay.request_state_ttl, b)),
        }
    }

    /// The id of the request being answered.
    pub fn id(&self) -> &RawValue {
        &self.id
    }

    pub fn render(&self, outcome: Result<Reply, TargetError>) -> (StatusCode, Vec<u8>) {
        let id = &*self.id;
        match outcome {
            Ok(Reply::Result(result)) if self.modern => {
                if let Some((sealer, ttl, binding)) = &self.mrtr
                    && let Some(sealed) =
                        mrtr::seal_result(result.get(), sealer, *ttl, binding.clone())
                {
                    return (StatusCode::OK, jsonrpc::result_body(id, &sealed));
                }
                let completed = complete_result(result.get(), self.hints);
                (StatusCode::OK, jsonrpc::result_body(id, &completed))
            }
            Ok(Reply::Result(result)) => (StatusCode::OK, jsonrpc::result_body(id, result.get())),
            // The 2026-07-28 request errors travel with HTTP 400; a legacy caller's
            // transport takes any non-2xx answer for a failed connection, not an error.
            Ok(Reply::Error(error)) if self.modern => (
                jsonrpc::raw_error_status(&error),
                jsonrpc::raw_error_body(id, error.get()),
            ),
            Ok(Reply::Error(error)) => (StatusCode::OK, jsonrpc::raw_error_body(id, error.get())),
            Err(e) => {
                tracing::warn!(what = %self.what, "relayed request failed: {e}");
                let error = RpcError::new(INTERNAL_ERROR, format!("{}: {e}", self.what)).with_data(
                    json!({ "target": e.target, "kind": e.kind.label(), "tool": self.what }),
                );
                (error.status, error.body(Some(id)))
            }
        }
    }
}

/// A relayed result for a 2026-07-28 client: an upstream speaking an older version does
/// not send `resultType` (nor, for `resources/read`, caching hints), which that version
/// requires; everything else stays byte-identical.
fn complete_result(result: &str, hints: bool) -> std::borrow::Cow<'_, str> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "resultType")]
        result_type: Option<serde::de::IgnoredAny>,
        #[serde(rename = "ttlMs")]
        ttl_ms: Option<serde::de::IgnoredAny>,
    }
    let Ok(probe) = serde_json::from_str::<Probe>(result) else {
        return std::borrow::Cow::Borrowed(result);
    };
    let mut added = String::new();
    if probe.result_type.is_none() {
        added.push_str(r#""resultType":"complete""#);
    }
    if hints && probe.ttl_ms.is_none() {
        if !added.is_empty() {
            added.push(',');
        }
        added.push_str(r#""ttlMs":0,"cacheScope":"private""#);
    }
    if added.is_empty() {
        return std::borrow::Cow::Borrowed(result);
    }
    let rest = result.trim().strip_prefix('{').unwrap_or("}").trim_start();
    let sep = if rest.starts_with('}') { "" } else { "," };
    std::borrow::Cow::Owned(format!("{{{added}{sep}{rest}"))
}

/// What a retry's sealed state must match, and a fresh state is sealed with.
fn binding(call: &Call<'_>, target: usize, name: &str) -> Binding {
    Binding {
        target: call.relay.targets[target].name().to_string(),
        method: call.method.to_string(),
        name: name.to_string(),
        principal: call.gate.principal(),
    }
}

/// Routes and prepares one of the MRTR-capable methods, then carries it out: opens a
/// retry's sealed state first (a bad one never reaches an upstream), and resumes a parked
/// call when the state names one.
async fn relay_to(
    call: Call<'_>,
    operation: Operation,
    (target, key, original, exposed): (usize, &str, &str, &str),
    headers: Vec<(String, String)>,
) -> Result<Answer, Failure> {
    // Only 2026-07-28 callers have request states (MRTR) to bind.
    let binding = call.version.modern.then(|| binding(&call, target, exposed));
    let render = Render::new(&call, exposed, binding.clone());
    let Call {
        relay,
        mut params,
        client,
        accepts,
        ..
    } = call;
    if let Some(binding) = &binding
        && let Some(parked) = mrtr::open_retry(&mut params, &relay.sealer, binding)?
    {
        let responses = params.members.get("inputResponses");
        return carry::resume(relay, &parked, responses, render, binding.clone()).await;
    }
    let carrier = carry::carrier_for(relay, target, operation, &client, accepts.sse, binding);
    let (params, meta) = params.into_upstream(key, original);
    let request = RelayRequest {
        operation,
        name: Some(original.to_string()),
        params,
        meta,
        client,
        headers,
        bridge: None,
    };
    let upstream = relay.targets[target].clone();
    carry::run(relay, upstream, request, render, accepts.sse, carrier).await
}

pub async fn get_prompt(call: Call<'_>) -> Result<Answer, Failure> {
    let name = call
        .name
        .clone()
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "prompts/get needs `params.name`"))?;
    let (target, original) = {
        let catalog = call.relay.store.snapshot();
        let entry = catalog.prompts.lookup(&name).ok_or_else(|| {
            RpcError::new(INVALID_PARAMS, format!("unknown prompt `{name}`"))
                .with_data(json!({ "prompt": name }))
        })?;
        (entry.target, entry.original.clone())
    };
    let route = (target, "name", original.as_str(), name.as_str());
    relay_to(call, Operation::GetPrompt, route, Vec::new()).await
}

pub async fn read_resource(call: Call<'_>) -> Result<Answer, Failure> {
    let uri = call
        .name
        .clone()
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "resources/read needs `params.uri`"))?;
    let (target, original) = route_resource(
        call.relay,
        &call.relay.store.snapshot(),
        &uri,
        call.version.modern,
    )?;
    let route = (target, "uri", original.as_str(), uri.as_str());
    relay_to(call, Operation::ReadResource, route, Vec::new()).await
}

/// The target serving `uri` and its URI there, if any does.
pub fn route(relay: &Relay, catalog: &Catalog, uri: &str) -> Option<(usize, String)> {
    route_resource(relay, catalog, uri, true).ok()
}

/// Which target serves `uri`, and under which URI: a listed resource; a collision URI
/// (`mcp-sidecar://{target}/{encoded}`); the first target whose template matches; or the
/// only target there is.
fn route_resource(
    relay: &Relay,
    catalog: &Catalog,
    uri: &str,
    modern: bool,
) -> Result<(usize, String), RpcError> {
    if let Some(entry) = catalog.resources.lookup(uri) {
        return Ok((entry.target, entry.original.clone()));
    }
    if let Some(rest) = uri.strip_prefix(COLLISION_URI_PREFIX)
        && let Some((target, encoded)) = rest.split_once('/')
        && let Some(index) = relay.store.target_index(target)
    {
        let original: String = url::form_urlencoded::parse(format!("u={encoded}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        return Ok((index, original));
    }
    if let Some(template) = catalog.resource_templates.iter().find(|t| t.matches(uri)) {
        return Ok((template.target, uri.to_string()));
    }
    if relay.targets.len() == 1 {
        return Ok((0, uri.to_string()));
    }
    // 2026-07-28 replaced -32002 with -32602 for an unknown resource (SEP-2164).
    let code = if modern {
        INVALID_PARAMS
    } else {
        RESOURCE_NOT_FOUND
    };
    Err(RpcError::new(
        code,
        format!("resource `{uri}` is not served by any target"),
    )
    .with_data(json!({ "uri": uri })))
}

/// `completion/complete` goes to the target owning the prompt or resource it refers to.
pub async fn complete(mut call: Call<'_>) -> Result<Answer, Failure> {
    let reference: Map<String, Value> = call
        .params
        .members
        .get("ref")
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "completion/complete needs `params.ref`"))?;
    let catalog = call.relay.store.snapshot();
    let (target, rewritten) = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let entry = catalog
                .prompts
                .lookup(name)
                .ok_or_else(|| RpcError::new(INVALID_PARAMS, format!("unknown prompt `{name}`")))?;
            let mut r = reference.clone();
            r.insert("name".into(), Value::String(entry.original.clone()));
            (entry.target, r)
        }
        Some("ref/resource") => {
            let uri = reference
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (target, original) =
                route_resource(call.relay, &catalog, uri, call.version.modern)?;
            let mut r = reference.clone();
            r.insert("uri".into(), Value::String(original));
            (target, r)
        }
        _ => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "`params.ref.type` must be ref/prompt or ref/resource",
            )
            .into());
        }
    };
    call.params.members.insert(
        "ref",
        serde_json::value::to_raw_value(&rewritten).expect("a JSON object serializes"),
    );
    let render = Render::new(&call, "completion", None);
    let relay = call.relay;
    let request = unnamed_request(call, Operation::Complete);
    forward(relay, target, request, render).await
}

/// The upstream request for a method without a name or URI of its own: the caller's
/// params as they are.
fn unnamed_request(call: Call<'_>, operation: Operation) -> RelayRequest {
    let (params, meta) = call.params.into_upstream("", "");
    RelayRequest {
        operation,
        name: None,
        params,
        meta,
        client: call.client,
        headers: Vec::new(),
        bridge: None,
    }
}

/// `logging/setLevel` (legacy callers) goes to every target that offers logging; answered
/// once all did.
pub async fn set_level(call: Call<'_>) -> Result<Answer, Failure> {
    let relay = call.relay;
    let (id, modern) = (call.id, call.version.modern);
    let request = unnamed_request(call, Operation::SetLogLevel);
    let calls = (0..relay.targets.len())
        .filter(|&i| {
            relay
                .store
                .raw_listing(i)
                .is_some_and(|l| l.capabilities.get("logging").is_some_and(|c| !c.is_null()))
        })
        .map(|i| relay.targets[i].relay(request.clone(), None));
    for outcome in futures_util::future::join_all(calls).await {
        if let Err(e) = outcome {
            tracing::warn!("logging/setLevel: {e}");
        }
    }
    Ok(Answer::ok(jsonrpc::result_body(
        id,
        &with_result_type("{}".into(), modern),
    )))
}

/// Relays one request to target `index` and answers with what it returned.
async fn forward(
    relay: &Relay,
    index: usize,
    request: RelayRequest,
    render: Render,
) -> Result<Answer, Failure> {
    let outcome = relay.targets[index].relay(request, None).await;
    let (status, body) = render.render(outcome);
    Ok(Answer::Body(status, body))
}

pub async fn call_tool(mut call: Call<'_>) -> Result<Answer, Failure> {
    // Taken, not copied: nothing on the way out reads the call's own again.
    let name = call
        .name
        .take()
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "tools/call needs `params.name`"))?;
    let unknown = || {
        RpcError::new(INVALID_PARAMS, format!("unknown tool `{name}`"))
            .with_data(json!({ "tool": name }))
    };
    call.gate.admit(&name)?;
    if let Some(arguments) = call.params.members.get("arguments")
        && !arguments.get().starts_with('{')
    {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("`arguments` of `{name}` must be an object"),
        )
        .into());
    }
    // The snapshot is held for the call, so the upstream's name is borrowed from it.
    let catalog = call.relay.store.snapshot();
    let entry = catalog.tools.lookup(&name).ok_or_else(unknown)?;
    let headers = match &entry.param_headers {
        None => Vec::new(),
        Some(annotated) => mirrored_arguments(&call, annotated)?,
    };
    let route = (entry.target, "name", entry.original.as_str(), name.as_str());
    relay_to(call, Operation::CallTool, route, headers).await
}

/// For a tool with `x-mcp-header` arguments: checks a 2026-07-28 caller's `Mcp-Param-*`
/// headers against its arguments (400, -32020 when they disagree), and returns the headers
/// to send upstream (from the upstream's own annotations).
fn mirrored_arguments(
    call: &Call<'_>,
    annotated: &ToolHeaders,
) -> Result<Vec<(String, String)>, RpcError> {
    let arguments: Value = match call.params.members.get("arguments") {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| RpcError::new(INVALID_PARAMS, "`arguments` must be an object"))?,
        None => Value::Object(Map::new()),
    };
    if call.version.modern {
        let header = |name: &str| version::header_str(call.headers, name).map_err(|_| ());
        param_headers::validate(&annotated.exposed, &arguments, header).map_err(|why| {
            RpcError::new(HEADER_MISMATCH, why).with_status(StatusCode::BAD_REQUEST)
        })?;
    }
    Ok(param_headers::headers_for(&annotated.upstream, &arguments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_results_gain_result_type_and_hints_once() {
        let v: Value =
            serde_json::from_str(&complete_result(r#"{"content":[],"isError":false}"#, false))
                .unwrap();
        assert_eq!(
            v,
            json!({"resultType":"complete","content":[],"isError":false})
        );
        assert_eq!(
            complete_result(" { } ", false),
            r#"{"resultType":"complete"}"#
        );
        let already = r#"{"resultType":"input_required","x":1}"#;
        assert_eq!(complete_result(already, false), already);
        let v: Value = serde_json::from_str(&complete_result(r#"{"contents":[]}"#, true)).unwrap();
        assert_eq!(v["ttlMs"], 0);
        assert_eq!(v["cacheScope"], "private");
        let kept = r#"{"resultType":"complete","ttlMs":5000,"cacheScope":"public","contents":[]}"#;
        assert_eq!(complete_result(kept, true), kept);
    }
}
