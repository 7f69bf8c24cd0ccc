//! One MCP request, checked and dispatched: lifecycle and listings are answered from the
//! sidecar's own catalog ([`super::lifecycle`], [`super::listing`]) with no upstream round
//! trip; the rest is relayed to the target that owns it ([`super::relay`]).

use std::borrow::Cow;

use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::value::RawValue;

use super::auth::rules::{ToolAccess, ToolRules};
use super::auth::{AuthError, Caller};
use super::framing::{Accepts, respond};
use super::jsonrpc::{METHOD_NOT_FOUND, Request, RpcError};
use super::params::{Members, Params, RawParams};
use super::search::SearchTool;
use super::session::ClientSession;
use super::version::{self, Version};
use super::{lifecycle, listing, relay, subscriptions};
use crate::Relay;
use crate::targets::ClientContext;

/// Who is asking and which per-tool rules apply (both absent when inbound auth is off).
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub rules: Option<&'a ToolRules>,
    pub caller: Option<&'a Caller>,
}

impl Gate<'_> {
    pub fn access(&self, tool: &str) -> ToolAccess {
        match self.rules {
            Some(rules) => rules.access(self.caller, tool),
            None => ToolAccess::Allowed,
        }
    }

    /// Whether the caller may call tool `name`: a hidden tool is answered exactly like an
    /// unknown one; missing scopes are a 403 challenge.
    pub fn admit(&self, name: &str) -> Result<(), Failure> {
        match self.access(name) {
            ToolAccess::Allowed => Ok(()),
            ToolAccess::Hidden => Err(RpcError::new(
                super::jsonrpc::INVALID_PARAMS,
                format!("unknown tool `{name}`"),
            )
            .with_data(serde_json::json!({ "tool": name }))
            .into()),
            ToolAccess::MissingScopes(needed) => {
                Err(Failure::Auth(AuthError::InsufficientScope(needed)))
            }
        }
    }

    /// Who a sealed request state is bound to: the token's issuer and subject (or client
    /// id); `None` without inbound auth.
    pub fn principal(&self) -> Option<String> {
        let claims = &self.caller?.claims;
        let get = |k: &str| claims.get(k).and_then(serde_json::Value::as_str);
        let who = get("sub")
            .or_else(|| get("client_id"))
            .or_else(|| get("azp"))?;
        Some(format!("{} {who}", get("iss").unwrap_or_default()))
    }
}

/// A dispatch failure: a JSON-RPC error, or a scope failure answered at the HTTP level.
pub enum Failure {
    Rpc(RpcError),
    Auth(AuthError),
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        Failure::Rpc(e)
    }
}

pub enum Answer {
    /// A JSON-RPC message with the HTTP status it travels with.
    Body(StatusCode, Vec<u8>),
    /// A response already framed (an event stream).
    Stream(Response),
}

impl Answer {
    pub fn ok(body: Vec<u8>) -> Self {
        Answer::Body(StatusCode::OK, body)
    }
}

/// One inbound request, as the methods see it.
pub struct Call<'a> {
    pub relay: &'a Relay,
    pub headers: &'a HeaderMap,
    pub id: &'a RawValue,
    pub method: &'a str,
    pub params: Params<'a>,
    /// The request's `params.name` (or `params.uri`), when its method has one.
    pub name: Option<String>,
    pub accepts: Accepts,
    pub gate: Gate<'a>,
    pub version: Version,
    /// What the caller told about itself, for upstreams that need to know.
    pub client: ClientContext,
    /// A legacy caller's session (its id, and what it declared), when it has one of ours.
    pub session: Option<(String, ClientSession)>,
}

/// Answers one request, with the answer's `error.type` for the metrics (None: success).
/// `Err` is a scope failure the caller turns into a 403 challenge. `named` receives the
/// request's `params.name` (or `uri`) once its params are read.
pub async fn handle(
    relay: &Relay,
    headers: &HeaderMap,
    request: Request<'_>,
    accepts: Accepts,
    gate: Gate<'_>,
    named: &mut Option<String>,
) -> Result<(Response, Option<Cow<'static, str>>), AuthError> {
    let Request { id, method, params } = request;
    let outcome = match check(relay, headers, id, &method, params, accepts, gate, named) {
        Ok(call) => dispatch(call).await,
        Err(e) => Err(e.into()),
    };
    let (status, body) = match outcome {
        Ok(Answer::Body(status, body)) => (status, body),
        // Event streams count as answered (the relayed outcome is recorded per target).
        Ok(Answer::Stream(response)) => {
            let error_type = status_error_type(response.status());
            return Ok((response, error_type));
        }
        Err(Failure::Rpc(e)) => (e.status, e.body(Some(id))),
        Err(Failure::Auth(e)) => return Err(e),
    };
    // Read from the body as written, before any framing.
    let error_type = status_error_type(status).or_else(|| {
        super::jsonrpc::error_code(&body).map(crate::telemetry::metrics::jsonrpc_error_type)
    });
    Ok((respond(status, body, accepts), error_type))
}

/// The `error.type` of an answer's HTTP status: the status itself when it is not 200.
pub fn status_error_type(status: http::StatusCode) -> Option<Cow<'static, str>> {
    (status != http::StatusCode::OK).then(|| Cow::Owned(status.as_u16().to_string()))
}

/// Parses the params and applies the version rules. `named` receives the name (or URI)
/// as soon as it is read, so that a request refused after that is still counted under it.
#[allow(clippy::too_many_arguments)]
fn check<'a>(
    relay: &'a Relay,
    headers: &'a HeaderMap,
    id: &'a RawValue,
    method: &'a str,
    params: Option<RawParams<'a>>,
    accepts: Accepts,
    gate: Gate<'a>,
    named: &mut Option<String>,
) -> Result<Call<'a>, RpcError> {
    let members = Members::of(params)?;
    let name = match method {
        "tools/call" | "prompts/get" => members.string("name")?,
        "resources/read" => members.string("uri")?,
        _ => None,
    };
    named.clone_from(&name);
    let params = Params::new(members)?;
    let version = version::check_request(headers, method, params.meta.as_ref(), name.as_deref())?;
    let mut client = params.client_context(version.modern);
    let session = (!version.modern)
        .then(|| ClientSession::of_request(&relay.sealer, headers))
        .flatten();
    if let Some((_, session)) = &session {
        client.capabilities = Some(session.capabilities.clone());
    }
    Ok(Call {
        relay,
        headers,
        id,
        method,
        params,
        name,
        accepts,
        gate,
        version,
        client,
        session,
    })
}

async fn dispatch(call: Call<'_>) -> Result<Answer, Failure> {
    match call.method {
        "initialize" => lifecycle::initialize(&call),
        "server/discover" => Ok(lifecycle::discover(&call)),
        "ping" => Ok(lifecycle::ping(&call)),
        "tools/list" => listing::tools(&call),
        "prompts/list" => listing::prompts(&call),
        "resources/list" => listing::resources(&call),
        "resources/templates/list" => Ok(listing::templates(&call)),
        "tools/call" => match call.relay.search.as_ref() {
            // Boxed: its future (which may wait on a remote embedder) is the largest of
            // any method's, and inline it would make every request's future that large.
            Some(search) if call.name.as_deref() == Some(search.name()) => {
                Box::pin(search_tool(call, search)).await
            }
            _ => relay::call_tool(call).await,
        },
        "prompts/get" => relay::get_prompt(call).await,
        "resources/read" => relay::read_resource(call).await,
        "completion/complete" => relay::complete(call).await,
        "logging/setLevel" => relay::set_level(call).await,
        "subscriptions/listen" => subscriptions::listen(call).await,
        "resources/subscribe" | "resources/unsubscribe" => {
            subscriptions::legacy_subscribe(call).await
        }
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method `{other}` is not supported by mcp-sidecar"),
        )
        .into()),
    }
}

/// The sidecar's own search tool (`tools/call` of its name).
async fn search_tool(call: Call<'_>, search: &SearchTool) -> Result<Answer, Failure> {
    call.gate.admit(search.name())?;
    let gate = call.gate;
    let visible = |tool: &str| gate.access(tool) == ToolAccess::Allowed;
    let arguments = call.params.members.get("arguments");
    let result = search.answer(&call.relay.store, arguments, visible).await?;
    let result = lifecycle::with_result_type(result, call.version.modern);
    Ok(Answer::ok(super::jsonrpc::result_body(call.id, &result)))
}
