//! `kind = "lambda"`: tools served by an AWS Lambda function, invoked the way AgentCore
//! Gateway invokes its Lambda targets, so functions written for the Gateway run unchanged.
//!
//! The contract (CONTRACTS.md §5 and §10):
//! 1. The tools are the declared ones (`tool_schema`); a sync returns them, so the catalog,
//!    curation, normalization and persistence treat them like any upstream's.
//! 2. `tools/call` is one Invoke: `POST {endpoint}/2015-03-31/functions/{function}/invocations`
//!    (the name or ARN percent-encoded as one path segment), SigV4 service `lambda` in the
//!    function's region, `X-Amz-Invocation-Type: RequestResponse`. The event is the call's
//!    `arguments` object, exactly as the caller sent it (`{}` when absent).
//! 3. `X-Amz-Client-Context` is the base64 of `{"custom": {…}}` with the Gateway's keys. Two
//!    spellings are in the wild: current AWS docs write `bedrockAgentCoreToolName` and
//!    friends, older samples and tutorials `bedrockagentcoreToolName` and friends (with
//!    session and endpoint ids). Functions look up one spelling and fail on a missing key,
//!    so both are sent, with the same values: every function written for either works, for
//!    under 1 KB of context (Lambda allows 3,583 bytes). The tool name is
//!    `{target}___{tool}` with the upstream's own tool name, as functions strip everything
//!    through `___`. A stateless relay has no MCP session or inbound message id to pass on;
//!    those keys carry the call's own fresh request id.
//! 4. An answer with `X-Amz-Function-Error` (the function raised, or Lambda reported it
//!    failed) is a tool result with `isError: true` whose text is the error payload. A
//!    throttled Invoke (429 `TooManyRequestsException`) is retried by [`HttpSender`]; any
//!    other non-2xx is a target error naming what Lambda said.
//! 5. A payload becomes the result's text: a JSON string payload is its value, anything else
//!    the payload as returned. A JSON-object payload is also `structuredContent` when the
//!    tool declares an `outputSchema`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::credentials::Refusal;
use super::credentials::provider_for;
use super::credentials::sigv4::AwsError;
use super::http::{HttpSender, printable_url};
use super::{
    BoxFuture, ChangeCallback, Description, FailureKind, Listing, NotificationSink, Operation,
    RelayRequest, Reply, Target, TargetError,
};
use crate::config::{LambdaSpec, TargetConfig};

/// `bedrockAgentCoreMessageVersion`.
const MESSAGE_VERSION: &str = "1.0";
/// How much of a failed Invoke's body is read to learn why.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

pub struct LambdaTarget {
    name: String,
    sender: HttpSender,
    invoke_url: reqwest::Url,
    function: String,
    region: String,
    endpoint: String,
    gateway_id: String,
    tools: Vec<Map<String, Value>>,
    /// Tools that declare an `outputSchema` (their object payloads are structured content).
    structured: HashSet<String>,
    request_timeout: Duration,
    max_message_bytes: usize,
}

impl LambdaTarget {
    pub fn new(config: &TargetConfig, spec: &LambdaSpec) -> anyhow::Result<Self> {
        let tools = spec
            .tools()
            .map_err(|(key, problem)| anyhow::anyhow!("{key}: {problem}"))?;
        let region = spec
            .region()
            .ok_or_else(|| anyhow::anyhow!("region: missing"))?;
        let endpoint = spec
            .endpoint()
            .ok_or_else(|| anyhow::anyhow!("region: missing"))?;
        let invoke_url = reqwest::Url::parse(&format!(
            "{endpoint}/2015-03-31/functions/{}/invocations",
            path_segment(&spec.function)
        ))?;
        // Lambda always takes SigV4: the kind fills in service `lambda` and the region.
        let mut signing = config.clone();
        signing.credential_provider = config
            .spec
            .credentials(&config.credential_provider)
            .map_err(|e| anyhow::anyhow!("credential_provider: {e}"))?
            .into_owned();
        let credentials = provider_for(&signing, &invoke_url, &BTreeMap::new())?;
        let structured = tools
            .iter()
            .filter(|t| t.contains_key("outputSchema"))
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok(Self {
            name: config.name.clone(),
            sender: HttpSender::new(config, credentials)?,
            invoke_url,
            function: spec.function.clone(),
            region,
            endpoint,
            gateway_id: spec
                .gateway_id
                .clone()
                .unwrap_or_else(|| "mcp-sidecar".into()),
            tools,
            structured,
            request_timeout: config.request_timeout(),
            max_message_bytes: config.max_message_bytes,
        })
    }

    fn error(&self, kind: FailureKind, detail: impl Into<String>) -> TargetError {
        TargetError::new(&self.name, kind, detail)
    }

    /// The `X-Amz-Client-Context` value for a call of `tool` (see rule 3).
    pub fn client_context(&self, tool: &str, request_id: &str) -> String {
        let tool_name = format!("{}___{tool}", self.name);
        let context = json!({
            "custom": {
                "bedrockAgentCoreGatewayId": self.gateway_id,
                "bedrockAgentCoreTargetId": self.name,
                "bedrockAgentCoreMessageVersion": MESSAGE_VERSION,
                "bedrockAgentCoreToolName": tool_name,
                "bedrockAgentCoreAwsRequestId": request_id,
                "bedrockAgentCoreMcpMessageId": request_id,
                "bedrockAgentCoreSessionId": request_id,
                "bedrockagentcoreEndpointId": self.gateway_id,
                "bedrockagentcoreTargetId": self.name,
                "bedrockagentcoreMessageVersion": MESSAGE_VERSION,
                "bedrockagentcoreToolName": tool_name,
                "bedrockagentcoreSessionId": request_id,
            }
        });
        base64::engine::general_purpose::STANDARD.encode(context.to_string())
    }

    async fn call_tool(&self, params: &str) -> Result<Reply, TargetError> {
        #[derive(Deserialize)]
        struct CallParams<'a> {
            name: String,
            #[serde(borrow, default)]
            arguments: Option<&'a RawValue>,
        }
        let call: CallParams = serde_json::from_str(params).map_err(|e| {
            self.error(
                FailureKind::BadResponse,
                format!("tools/call params are not valid: {e}"),
            )
        })?;
        let event = match call.arguments {
            Some(raw) if raw.get() != "null" => raw.get().to_string(),
            _ => "{}".to_string(),
        };
        let request_id = request_id();
        let request = self
            .sender
            .client()
            .post(self.invoke_url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-amz-invocation-type", "RequestResponse")
            .header(
                "x-amz-client-context",
                self.client_context(&call.name, &request_id),
            )
            .body(event)
            .build()
            .map_err(|e| {
                self.error(
                    FailureKind::Unreachable,
                    format!("cannot build the Invoke request: {}", e.without_url()),
                )
            })?;
        let deadline = Instant::now() + self.request_timeout;
        let what = format!("Invoke {} ({})", self.function, call.name);
        let mut response =
            tokio::time::timeout_at(deadline, self.sender.send(request, deadline, &what))
                .await
                .map_err(|_| self.timeout(&what))??;
        let status = response.status();
        if !status.is_success() {
            return Err(self.invoke_error(response, &what).await);
        }
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let payload = tokio::time::timeout_at(
            deadline,
            self.sender
                .read_body(&mut response, self.max_message_bytes, &what),
        )
        .await
        .map_err(|_| self.timeout(&what))??;
        let result = match function_error {
            Some(kind) => {
                tracing::info!(target_name = %self.name, tool = %call.name, "function error ({kind})");
                tool_result(&payload, true, false)
            }
            None => tool_result(&payload, false, self.structured.contains(&call.name)),
        };
        let raw = RawValue::from_string(result.to_string())
            .map_err(|e| self.error(FailureKind::BadResponse, format!("{what}: {e}")))?;
        Ok(Reply::Result(raw))
    }

    fn timeout(&self, what: &str) -> TargetError {
        self.error(
            FailureKind::Timeout,
            format!(
                "no answer to {what} within {} ms",
                self.request_timeout.as_millis()
            ),
        )
    }

    /// A non-2xx Invoke answer as an error naming what Lambda said.
    async fn invoke_error(
        &self,
        mut response: crate::targets::http::HttpResponse,
        what: &str,
    ) -> TargetError {
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
        let said = AwsError::parse(&Refusal {
            status: status.as_u16(),
            headers: &headers,
            body: &body,
            sent_authorization: None,
        });
        let code = said.code.unwrap_or_else(|| "no error type".into());
        let message = said.message.unwrap_or_default();
        let hint = match status.as_u16() {
            404 => " (check `function` and `region`)",
            429 => " (throttled; retries exhausted)",
            _ => "",
        };
        self.error(
            FailureKind::HttpStatus(status.as_u16()),
            format!("{what} → {status}{hint}: {code}: {message}"),
        )
    }
}

/// A tool result from a function's payload (rule 5): text, and structured content when
/// wanted and the payload is a JSON object.
fn tool_result(payload: &[u8], is_error: bool, structured: bool) -> Value {
    let text = String::from_utf8_lossy(payload);
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    let shown = match &parsed {
        Some(Value::String(s)) => s.clone(),
        _ => text.trim().to_string(),
    };
    let mut result = json!({
        "content": [{"type": "text", "text": shown}],
        "isError": is_error,
    });
    if structured
        && !is_error
        && let Some(object @ Value::Object(_)) = parsed
    {
        result["structuredContent"] = object;
    }
    result
}

/// A function name or ARN as one path segment: everything but unreserved characters
/// percent-encoded (`:` in ARNs, `$` in `$LATEST`), as the AWS SDKs send it.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A random (version 4) UUID, as AWS request ids are written.
fn request_id() -> String {
    use rand::Rng;
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Target for LambdaTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> Description {
        Description {
            kind: "lambda",
            endpoint: format!(
                "{} (function {}, region {})",
                printable_url(&self.invoke_url),
                self.function,
                self.region
            ),
            credentials: self.sender.credentials(),
        }
    }

    fn fingerprint(&self) -> String {
        format!(
            "lambda:{} in {} at {}",
            self.function, self.region, self.endpoint
        )
    }

    fn sync(&self) -> BoxFuture<'_, Result<Listing, TargetError>> {
        Box::pin(std::future::ready(Ok(Listing {
            tools: self.tools.clone(),
            server_info: Some(json!({"name": self.function, "version": "lambda"})),
            capabilities: json!({"tools": {}}),
            ..Listing::default()
        })))
    }

    fn relay(
        &self,
        request: RelayRequest,
        _notify: Option<NotificationSink>,
    ) -> BoxFuture<'_, Result<Reply, TargetError>> {
        Box::pin(async move {
            match request.operation {
                Operation::CallTool => self.call_tool(&request.params).await,
                other => Err(self.error(
                    FailureKind::Rejected,
                    format!("a lambda target offers tools only, not {}", other.method()),
                )),
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn watch_changes(&self, _on_change: ChangeCallback) -> BoxFuture<'_, ()> {
        // The tools are declared in the config: nothing can announce a change.
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_one_path_segment() {
        assert_eq!(
            path_segment("arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST"),
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders%3A%24LATEST"
        );
        assert_eq!(path_segment("my-fn_1.x"), "my-fn_1.x");
    }

    #[test]
    fn payloads_become_results() {
        let r = tool_result(br#"{"statusCode":200,"body":"ok"}"#, false, true);
        assert_eq!(r["content"][0]["text"], r#"{"statusCode":200,"body":"ok"}"#);
        assert_eq!(r["structuredContent"]["statusCode"], 200);
        assert_eq!(r["isError"], false);
        let r = tool_result(br#"{"a":1}"#, false, false);
        assert!(r.get("structuredContent").is_none(), "no outputSchema");
        let r = tool_result(br#""plain words""#, false, true);
        assert_eq!(r["content"][0]["text"], "plain words");
        assert!(r.get("structuredContent").is_none());
        let r = tool_result(
            br#"{"errorMessage":"boom","errorType":"ValueError"}"#,
            true,
            true,
        );
        assert_eq!(r["isError"], true);
        assert!(r["content"][0]["text"].as_str().unwrap().contains("boom"));
        assert!(r.get("structuredContent").is_none());
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id());
    }
}
