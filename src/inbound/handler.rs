//! The MCP methods the sidecar answers: lifecycle and listing from its own catalog, with no
//! upstream round trip; `tools/call` relayed live to the owning target.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::auth::rules::{ToolAccess, ToolRules};
use super::auth::{AuthError, Caller};
use super::jsonrpc::{
    self, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND, Request, RpcError,
};
use super::protocol::{self, STATELESS_SINCE};
use crate::Relay;
use crate::catalog::{COLLISION_URI_PREFIX, Catalog, Entries, Entry};
use crate::targets::{Reply, TargetError};

/// Who is asking and which per-tool rules apply (both absent when inbound auth is off).
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub rules: Option<&'a ToolRules>,
    pub caller: Option<&'a Caller>,
}

impl Gate<'_> {
    fn access(&self, tool: &str) -> ToolAccess {
        match self.rules {
            Some(rules) => rules.access(self.caller, tool),
            None => ToolAccess::Allowed,
        }
    }
}

/// A dispatch failure: a JSON-RPC error, or a scope failure answered at the HTTP level.
enum Failure {
    Rpc(RpcError),
    Auth(AuthError),
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        Failure::Rpc(e)
    }
}

/// What the client accepts, from its `Accept` header.
#[derive(Debug, Clone, Copy)]
pub struct Accepts {
    pub sse: bool,
    pub json: bool,
}

impl Accepts {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let accept = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase();
        if accept.is_empty() {
            return Self {
                sse: false,
                json: true,
            };
        }
        let any = accept.contains("*/*");
        Self {
            sse: any || accept.contains("text/event-stream"),
            json: any || accept.contains("application/json"),
        }
    }

    /// A client that accepts only an event stream gets every answer as one.
    pub fn sse_only(self) -> bool {
        self.sse && !self.json
    }
}

/// One JSON-RPC answer as an HTTP response, in the framing the client asked for.
pub fn respond(status: StatusCode, body: Vec<u8>, accepts: Accepts) -> Response {
    if accepts.sse_only() && status == StatusCode::OK {
        return sse_response(Body::from(sse_frame(&body)));
    }
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

fn sse_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn sse_frame(message: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(message.len() + 24);
    frame.extend_from_slice(b"event: message\ndata: ");
    frame.extend_from_slice(message);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// Params of the request, split into raw members (nothing is decoded that is relayed).
struct Params {
    members: HashMap<String, Box<RawValue>>,
    meta: Option<Map<String, Value>>,
}

impl Params {
    fn parse(raw: Option<&RawValue>) -> Result<Self, RpcError> {
        let members: HashMap<String, Box<RawValue>> = match raw {
            None => HashMap::new(),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|_| RpcError::new(INVALID_PARAMS, "`params` must be an object"))?,
        };
        let meta =
            match members.get("_meta") {
                None => None,
                Some(m) => Some(serde_json::from_str(m.get()).map_err(|_| {
                    RpcError::new(INVALID_PARAMS, "`params._meta` must be an object")
                })?),
            };
        Ok(Self { members, meta })
    }

    fn string(&self, key: &str) -> Result<Option<String>, RpcError> {
        match self.members.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<String>(raw.get())
                .map(Some)
                .map_err(|_| {
                    RpcError::new(INVALID_PARAMS, format!("`params.{key}` must be a string"))
                }),
        }
    }
}

/// Answers one request. `Err` is a scope failure the caller turns into a 403 challenge.
pub async fn handle(
    relay: &Relay,
    headers: &HeaderMap,
    request: Request,
    accepts: Accepts,
    gate: Gate<'_>,
) -> Result<Response, AuthError> {
    let id = request.id;
    let params = request.params.as_deref();
    Ok(
        match dispatch(relay, headers, &id, &request.method, params, accepts, gate).await {
            Ok(Answer::Body(body)) => respond(StatusCode::OK, body, accepts),
            Ok(Answer::Stream(response)) => response,
            Err(Failure::Rpc(e)) => respond(e.status, e.body(Some(&id)), accepts),
            Err(Failure::Auth(e)) => return Err(e),
        },
    )
}

enum Answer {
    Body(Vec<u8>),
    Stream(Response),
}

async fn dispatch(
    relay: &Relay,
    headers: &HeaderMap,
    id: &RawValue,
    method: &str,
    raw_params: Option<&RawValue>,
    accepts: Accepts,
    gate: Gate<'_>,
) -> Result<Answer, Failure> {
    let params = Params::parse(raw_params)?;
    let name = match method {
        "tools/call" | "prompts/get" => params.string("name")?,
        "resources/read" => params.string("uri")?,
        _ => None,
    };
    let version =
        protocol::request_version(headers, method, params.meta.as_ref(), name.as_deref())?;
    let modern = version.as_str() >= STATELESS_SINCE;
    let result = match method {
        "initialize" => initialize(relay, &params)?,
        "server/discover" => discover(relay),
        "ping" => with_result_type("{}".into(), modern),
        "tools/list" => {
            // A caller sees only the tools it may call (hidden and out-of-scope ones alike).
            // With search on, its tool heads the first page; `search_only` lists pinned tools.
            let search = relay.search.as_ref();
            let visible = |e: &Entry| {
                gate.access(&e.exposed) == ToolAccess::Allowed
                    && search.is_none_or(|s| s.lists(&e.exposed))
            };
            let first = search
                .filter(|_| !params.members.contains_key("cursor"))
                .filter(|s| gate.access(s.name()) == ToolAccess::Allowed)
                .map(|s| s.definition());
            list_page(
                relay,
                &params,
                modern,
                "tools",
                |c| &c.tools,
                visible,
                first,
            )?
        }
        "tools/call" => match relay.search.as_ref() {
            Some(search) if name.as_deref() == Some(search.name()) => {
                admit(gate, search.name())?;
                let visible = |tool: &str| gate.access(tool) == ToolAccess::Allowed;
                let arguments = params.members.get("arguments").map(|a| &**a);
                let result = search.call(&relay.store.snapshot(), arguments, visible)?;
                with_result_type(result, modern)
            }
            _ => return call_tool(relay, id, params, name, accepts, modern, gate).await,
        },
        "prompts/list" => list_page(
            relay,
            &params,
            modern,
            "prompts",
            |c| &c.prompts,
            |_| true,
            None,
        )?,
        "resources/list" => list_page(
            relay,
            &params,
            modern,
            "resources",
            |c| &c.resources,
            |_| true,
            None,
        )?,
        "resources/templates/list" => list_templates(relay, modern),
        "prompts/get" => {
            let name = name
                .ok_or_else(|| RpcError::new(INVALID_PARAMS, "prompts/get needs `params.name`"))?;
            let catalog = relay.store.snapshot();
            let entry = catalog.prompts.lookup(&name).ok_or_else(|| {
                RpcError::new(INVALID_PARAMS, format!("unknown prompt `{name}`"))
                    .with_data(json!({ "prompt": name }))
            })?;
            let upstream = upstream_params(params, "name", &entry.original);
            return forward(
                relay,
                id,
                entry.target,
                method_name(method),
                upstream,
                &name,
                modern,
            )
            .await;
        }
        "resources/read" => {
            let uri = name.ok_or_else(|| {
                RpcError::new(INVALID_PARAMS, "resources/read needs `params.uri`")
            })?;
            let (target, original) = route_resource(relay, &relay.store.snapshot(), &uri)?;
            let upstream = upstream_params(params, "uri", &original);
            return forward(relay, id, target, "resources/read", upstream, &uri, modern).await;
        }
        "completion/complete" => return complete(relay, id, params, modern).await,
        "logging/setLevel" => return set_level(relay, id, params, modern).await,
        other => {
            let message = format!("method `{other}` is not supported by mcp-sidecar");
            return Err(RpcError::new(METHOD_NOT_FOUND, message).into());
        }
    };
    Ok(Answer::Body(jsonrpc::result_body(id, &result)))
}

/// Tools always (the Gateway requires them); the rest when some target offers it.
fn capabilities(catalog: &Catalog) -> Value {
    let mut caps = json!({ "tools": { "listChanged": false } });
    let offers = catalog.offers;
    if offers.prompts {
        caps["prompts"] = json!({ "listChanged": false });
    }
    if offers.resources {
        caps["resources"] = json!({ "listChanged": false, "subscribe": false });
    }
    if offers.completions {
        caps["completions"] = json!({});
    }
    if offers.logging {
        caps["logging"] = json!({});
    }
    caps
}

fn server_info() -> Value {
    json!({ "name": "mcp-sidecar", "title": "mcp-sidecar", "version": env!("CARGO_PKG_VERSION") })
}

fn initialize(relay: &Relay, params: &Params) -> Result<String, RpcError> {
    let requested = params.string("protocolVersion")?.ok_or_else(|| {
        RpcError::new(INVALID_PARAMS, "initialize needs `params.protocolVersion`")
    })?;
    let catalog = relay.store.snapshot();
    let mut result = json!({
        "protocolVersion": protocol::negotiate_initialize(&requested),
        "capabilities": capabilities(&catalog),
        "serverInfo": server_info(),
    });
    if let Some(instructions) = &catalog.instructions {
        result["instructions"] = json!(instructions);
    }
    Ok(result.to_string())
}

fn discover(relay: &Relay) -> String {
    let catalog = relay.store.snapshot();
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": protocol::SUPPORTED_VERSIONS,
        "capabilities": capabilities(&catalog),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { "io.modelcontextprotocol/serverInfo": server_info() },
    });
    if let Some(instructions) = &catalog.instructions {
        result["instructions"] = json!(instructions);
    }
    result.to_string()
}

/// From 2026-07-28 every result names its type; listings also carry caching hints.
fn with_result_type(mut object: String, modern: bool) -> String {
    if modern {
        object.pop();
        if object.len() > 1 {
            object.push(',');
        }
        object.push_str(r#""resultType":"complete"}"#);
    }
    object
}

/// A relayed result for a 2026-07-28 client: the upstream (speaking an older version) does
/// not send `resultType`, which that version requires; everything else stays byte-identical.
fn ensure_result_type(result: &str) -> std::borrow::Cow<'_, str> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "resultType")]
        result_type: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Probe>(result) {
        Ok(Probe { result_type: None }) => {
            let rest = result.trim().strip_prefix('{').unwrap_or("}").trim_start();
            let sep = if rest.starts_with('}') { "" } else { "," };
            std::borrow::Cow::Owned(format!(r#"{{"resultType":"complete"{sep}{rest}"#))
        }
        _ => std::borrow::Cow::Borrowed(result),
    }
}

fn listing_hints(modern: bool) -> &'static str {
    if modern {
        r#","resultType":"complete","ttlMs":0,"cacheScope":"private""#
    } else {
        ""
    }
}

/// One page of a listing from the catalog: `{"<key>":[…],"nextCursor":…}`, with `first`
/// (a definition that is not in the catalog, e.g. the search tool) ahead of the entries.
fn list_page(
    relay: &Relay,
    params: &Params,
    modern: bool,
    key: &str,
    entries: impl Fn(&Catalog) -> &Entries,
    visible: impl Fn(&Entry) -> bool,
    first: Option<&str>,
) -> Result<String, RpcError> {
    let cursor = params.string("cursor")?;
    let catalog = relay.store.snapshot();
    let (page, next) = entries(&catalog)
        .page(cursor.as_deref(), relay.page_size, visible)
        .map_err(|_| RpcError::new(INVALID_PARAMS, "invalid cursor"))?;
    let size: usize = page.iter().map(|e| e.json.get().len() + 1).sum();
    let mut out = String::with_capacity(size + 96);
    out.push_str(&format!(r#"{{"{key}":["#));
    if let Some(first) = first {
        out.push_str(first);
    }
    for (i, entry) in page.iter().enumerate() {
        if i > 0 || first.is_some() {
            out.push(',');
        }
        out.push_str(entry.json.get());
    }
    out.push(']');
    if let Some(next) = next {
        out.push_str(r#","nextCursor":"#);
        out.push_str(&Value::String(next).to_string());
    }
    out.push_str(listing_hints(modern));
    out.push('}');
    Ok(out)
}

/// All resource templates in one page (there are few; their order routes reads).
fn list_templates(relay: &Relay, modern: bool) -> String {
    let catalog = relay.store.snapshot();
    let items: Vec<&str> = catalog
        .resource_templates
        .iter()
        .map(|t| t.json.get())
        .collect();
    format!(
        r#"{{"resourceTemplates":[{}]{}}}"#,
        items.join(","),
        listing_hints(modern)
    )
}

/// Which target serves `uri`, and under which URI: a listed resource; a collision URI
/// (`mcp-sidecar://{target}/{encoded}`); the first target whose template matches; or the
/// only target there is.
fn route_resource(
    relay: &Relay,
    catalog: &Catalog,
    uri: &str,
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
    Err(RpcError::new(
        RESOURCE_NOT_FOUND,
        format!("resource `{uri}` is not served by any target"),
    )
    .with_data(json!({ "uri": uri })))
}

/// `completion/complete` goes to the target owning the prompt or resource it refers to.
async fn complete(
    relay: &Relay,
    id: &RawValue,
    mut params: Params,
    modern: bool,
) -> Result<Answer, Failure> {
    let reference: Map<String, Value> = params
        .members
        .get("ref")
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "completion/complete needs `params.ref`"))?;
    let catalog = relay.store.snapshot();
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
            let (target, original) = route_resource(relay, &catalog, uri)?;
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
    params.members.insert(
        "ref".into(),
        serde_json::value::to_raw_value(&rewritten).expect("a JSON object serializes"),
    );
    let upstream = upstream_params(params, "", "");
    forward(
        relay,
        id,
        target,
        "completion/complete",
        upstream,
        "completion",
        modern,
    )
    .await
}

/// `logging/setLevel` goes to every target that offers logging; answered once all did.
async fn set_level(
    relay: &Relay,
    id: &RawValue,
    params: Params,
    modern: bool,
) -> Result<Answer, Failure> {
    let upstream = upstream_params(params, "", "");
    let calls = (0..relay.targets.len())
        .filter(|&i| {
            relay
                .store
                .raw_listing(i)
                .is_some_and(|l| l.capabilities.get("logging").is_some_and(|c| !c.is_null()))
        })
        .map(|i| relay.targets[i].call("logging/setLevel", upstream.clone(), None));
    for outcome in futures_util::future::join_all(calls).await {
        if let Err(e) = outcome {
            tracing::warn!("logging/setLevel: {e}");
        }
    }
    Ok(Answer::Body(jsonrpc::result_body(
        id,
        &with_result_type("{}".into(), modern),
    )))
}

/// Relays one request to target `index` and answers with what it returned.
async fn forward(
    relay: &Relay,
    id: &RawValue,
    index: usize,
    method: &'static str,
    params: String,
    what: &str,
    modern: bool,
) -> Result<Answer, Failure> {
    let outcome = relay.targets[index].call(method, params, None).await;
    Ok(Answer::Body(render_outcome(id, what, outcome, modern)))
}

/// The relayed methods, as the static strings targets take.
fn method_name(method: &str) -> &'static str {
    match method {
        "prompts/get" => "prompts/get",
        "resources/read" => "resources/read",
        _ => "tools/call",
    }
}

/// Whether the caller may call tool `name`: a hidden tool is answered exactly like an
/// unknown one; missing scopes are a 403 challenge.
fn admit(gate: Gate<'_>, name: &str) -> Result<(), Failure> {
    match gate.access(name) {
        ToolAccess::Allowed => Ok(()),
        ToolAccess::Hidden => Err(
            RpcError::new(INVALID_PARAMS, format!("unknown tool `{name}`"))
                .with_data(json!({ "tool": name }))
                .into(),
        ),
        ToolAccess::MissingScopes(needed) => {
            Err(Failure::Auth(AuthError::InsufficientScope(needed)))
        }
    }
}

async fn call_tool(
    relay: &Relay,
    id: &RawValue,
    params: Params,
    name: Option<String>,
    accepts: Accepts,
    modern: bool,
    gate: Gate<'_>,
) -> Result<Answer, Failure> {
    let name =
        name.ok_or_else(|| RpcError::new(INVALID_PARAMS, "tools/call needs `params.name`"))?;
    let unknown = || {
        RpcError::new(INVALID_PARAMS, format!("unknown tool `{name}`"))
            .with_data(json!({ "tool": name }))
    };
    let (target_index, original) = {
        let catalog = relay.store.snapshot();
        let entry = catalog.tools.lookup(&name).ok_or_else(unknown)?;
        (entry.target, entry.original.clone())
    };
    admit(gate, &name)?;
    if let Some(arguments) = params.members.get("arguments")
        && !arguments.get().starts_with('{')
    {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("`arguments` of `{name}` must be an object"),
        )
        .into());
    }
    let upstream_params = upstream_params(params, "name", &original);
    let target = relay.targets[target_index].clone();
    if !accepts.sse {
        let outcome = target.call("tools/call", upstream_params, None).await;
        return Ok(Answer::Body(render_outcome(id, &name, outcome, modern)));
    }
    // The client can take an event stream. Whether it gets one is decided by what the
    // upstream sends first: the result (the common case) is answered as plain JSON;
    // a notification tied to the call (progress, log messages) switches to an event
    // stream that carries it, the ones after it, and then the result.
    let (tx, mut notifications) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut call =
        Box::pin(async move { target.call("tools/call", upstream_params, Some(tx)).await });
    let first = tokio::select! {
        biased;
        first = notifications.recv() => first,
        outcome = &mut call => {
            if notifications.is_empty() {
                return Ok(Answer::Body(render_outcome(id, &name, outcome, modern)));
            }
            // Notifications and the result arrived together: stream them in order.
            let result = Bytes::from(render_outcome(id, &name, outcome, modern));
            let mut messages = Vec::new();
            while let Ok(message) = notifications.try_recv() {
                messages.push(Ok::<_, Infallible>(sse_frame(&message)));
            }
            messages.push(Ok(sse_frame(&result)));
            return Ok(Answer::Stream(sse_response(Body::from_stream(futures_util::stream::iter(messages)))));
        }
    };
    let (result_tx, result_rx) = tokio::sync::oneshot::channel::<Bytes>();
    let id = id.to_owned();
    tokio::spawn(async move {
        let outcome = call.await;
        let _ = result_tx.send(Bytes::from(render_outcome(&id, &name, outcome, modern)));
    });
    // The notification channel closes when the call finishes; the result comes last.
    let head = futures_util::stream::iter(first.map(|m| Ok::<_, Infallible>(sse_frame(&m))));
    let rest = futures_util::stream::unfold(notifications, |mut rx| async move {
        rx.recv()
            .await
            .map(|m| (Ok::<_, Infallible>(sse_frame(&m)), rx))
    });
    let tail = futures_util::stream::once(async move {
        Ok::<_, Infallible>(sse_frame(&result_rx.await.unwrap_or_default()))
    });
    use futures_util::StreamExt;
    Ok(Answer::Stream(sse_response(Body::from_stream(
        head.chain(rest).chain(tail),
    ))))
}

/// The params sent upstream: the client's, with `key` (the name or URI) set to the
/// upstream's own (`key` empty: unchanged), and without the per-request protocol keys of
/// the client's version (the upstream session has its own).
fn upstream_params(params: Params, key: &str, original: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push('{');
    if !key.is_empty() {
        out.push_str(&Value::String(key.to_string()).to_string());
        out.push(':');
        out.push_str(&Value::String(original.to_string()).to_string());
    }
    for (name, value) in &params.members {
        if name == key || name == "_meta" {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&Value::String(name.clone()).to_string());
        out.push(':');
        out.push_str(value.get());
    }
    if let Some(mut meta) = params.meta {
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
        if !meta.is_empty() {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(r#""_meta":"#);
            out.push_str(&Value::Object(meta).to_string());
        }
    }
    out.push('}');
    out
}

fn render_outcome(
    id: &RawValue,
    tool: &str,
    outcome: Result<Reply, TargetError>,
    modern: bool,
) -> Vec<u8> {
    match outcome {
        Ok(Reply::Result(result)) if modern => {
            jsonrpc::result_body(id, &ensure_result_type(result.get()))
        }
        Ok(Reply::Result(result)) => jsonrpc::result_body(id, result.get()),
        Ok(Reply::Error(error)) => jsonrpc::raw_error_body(id, error.get()),
        Err(e) => {
            tracing::warn!(tool, "tools/call failed: {e}");
            RpcError::new(INTERNAL_ERROR, format!("{tool}: {e}"))
                .with_data(json!({ "target": e.target, "kind": e.kind.label(), "tool": tool }))
                .body(Some(id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_params_swap_the_name_and_drop_protocol_meta() {
        let raw = RawValue::from_string(
            r#"{"name":"t___echo","arguments":{"text":"hi"},"_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#.into(),
        )
        .unwrap();
        let params = Params::parse(Some(&raw)).unwrap();
        let out: Value = serde_json::from_str(&upstream_params(params, "name", "echo")).unwrap();
        assert_eq!(
            out,
            json!({"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":7}})
        );
    }

    #[test]
    fn result_type_is_added_only_for_modern_clients() {
        assert_eq!(with_result_type("{}".into(), false), "{}");
        assert_eq!(
            with_result_type("{}".into(), true),
            r#"{"resultType":"complete"}"#
        );
        let v: Value =
            serde_json::from_str(&format!(r#"{{"prompts":[]{}}}"#, listing_hints(true))).unwrap();
        assert_eq!(v["prompts"], json!([]));
        assert_eq!(v["ttlMs"], 0);
    }

    #[test]
    fn relayed_results_gain_result_type_once() {
        let v: Value =
            serde_json::from_str(&ensure_result_type(r#"{"content":[],"isError":false}"#)).unwrap();
        assert_eq!(
            v,
            json!({"resultType":"complete","content":[],"isError":false})
        );
        assert_eq!(ensure_result_type(" { } "), r#"{"resultType":"complete"}"#);
        let already = r#"{"resultType":"input_required","x":1}"#;
        assert_eq!(ensure_result_type(already), already);
    }

    #[test]
    fn accept_header_decides_framing() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::ACCEPT,
            "application/json, text/event-stream".parse().unwrap(),
        );
        assert!(!Accepts::from_headers(&h).sse_only());
        h.insert(http::header::ACCEPT, "text/event-stream".parse().unwrap());
        assert!(Accepts::from_headers(&h).sse_only());
        assert!(!Accepts::from_headers(&HeaderMap::new()).sse_only());
    }
}
