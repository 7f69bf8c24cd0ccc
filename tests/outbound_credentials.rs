//! Outbound behaviour around credentials, in process: throttling retries that honour
//! `Retry-After` within the deadline, `_meta` injection, OAuth client credentials (refresh
//! on expiry and on 401, clear errors), and config validation of the credential providers.
//! (Signatures themselves are checked against botocore in tests/peers/test_sigv4.py and
//! against AWS's vectors in tests/sigv4_vectors.rs.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{call_tool, post, sidecar, target_toml, upstream, wait_for_state};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A front in front of an upstream: answers the first `throttle` requests 429 (with
/// `retry_after` if set), requires a valid bearer token when `tokens` is set, records every
/// request body, and forwards the rest.
#[derive(Default)]
struct Front {
    upstream: String,
    throttle: AtomicUsize,
    retry_after: Mutex<Option<String>>,
    throttled: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
    /// When set, only these bearer tokens are accepted.
    tokens: Option<Arc<Issuer>>,
    /// Refuse every token (a target that never accepts this client).
    refuse_all: std::sync::atomic::AtomicBool,
    refused: AtomicUsize,
}

async fn front_handler(
    State(front): State<Arc<Front>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        front.bodies.lock().unwrap().push(v);
    }
    if front
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        front.throttled.fetch_add(1, Ordering::SeqCst);
        let mut response = (StatusCode::TOO_MANY_REQUESTS, "Rate exceeded").into_response();
        if let Some(after) = front.retry_after.lock().unwrap().clone() {
            response
                .headers_mut()
                .insert("retry-after", after.parse().unwrap());
        }
        return response;
    }
    if let Some(issuer) = &front.tokens {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if front.refuse_all.load(Ordering::SeqCst) || !issuer.valid(token) {
            front.refused.fetch_add(1, Ordering::SeqCst);
            let mut response = (StatusCode::UNAUTHORIZED, "").into_response();
            response.headers_mut().insert(
                "www-authenticate",
                "Bearer error=\"invalid_token\"".parse().unwrap(),
            );
            return response;
        }
    }
    let mut request = reqwest::Client::new()
        .post(&front.upstream)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for name in ["mcp-session-id", "mcp-protocol-version"] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v.clone());
        }
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let ctype = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = answer.bytes().await.unwrap();
    (status, [("content-type", ctype)], body).into_response()
}

async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

async fn front(front: Front) -> (Arc<Front>, String) {
    let front = Arc::new(front);
    let router = axum::Router::new()
        .route("/mcp", axum::routing::post(front_handler))
        .with_state(front.clone());
    (front, format!("{}/mcp", serve(router).await))
}

// --------------------------------------------------------------------------- throttling

#[tokio::test]
async fn throttled_requests_are_retried_after_retry_after() {
    let up = upstream("u", 2, false).await;
    let (front, url) = front(Front {
        upstream: up.url.clone(),
        ..Default::default()
    })
    .await;
    let sc = sidecar(&target_toml("t", &url, "")).await;
    wait_for_state(&sc.base, "t", "ready").await;

    *front.retry_after.lock().unwrap() = Some("1".into());
    front.throttle.store(2, Ordering::SeqCst);
    let started = Instant::now();
    let body = call_tool(&sc.url, "t___tool_000", json!({"text": "hi"})).await;
    assert_eq!(
        body["result"]["content"][0]["text"], "u:tool_000:hi",
        "{body}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(front.throttled.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn throttling_gives_up_at_the_deadline_or_the_retry_limit() {
    let up = upstream("u", 1, false).await;
    let (front, url) = front(Front {
        upstream: up.url.clone(),
        ..Default::default()
    })
    .await;
    let sc = sidecar(&target_toml(
        "t",
        &url,
        "request_timeout_ms = 3000\nmax_retries = 2",
    ))
    .await;
    wait_for_state(&sc.base, "t", "ready").await;

    // A Retry-After beyond the deadline: fail at once, saying so.
    *front.retry_after.lock().unwrap() = Some("30".into());
    front.throttle.store(1, Ordering::SeqCst);
    let started = Instant::now();
    let body = call_tool(&sc.url, "t___tool_000", json!({})).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("429") && message.contains("would pass the deadline"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // No Retry-After: jittered backoff, at most max_retries retries.
    *front.retry_after.lock().unwrap() = None;
    front.throttle.store(10, Ordering::SeqCst);
    front.throttled.store(0, Ordering::SeqCst);
    let body = call_tool(&sc.url, "t___tool_000", json!({})).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("gave up after 2 retries"), "{body}");
    assert_eq!(front.throttled.load(Ordering::SeqCst), 3);
    assert_eq!(body["error"]["data"]["kind"], "http_status");
}

// --------------------------------------------------------------------------- _meta

#[tokio::test]
async fn configured_meta_is_merged_into_tool_calls() {
    let up = upstream("u", 1, false).await;
    let (front, url) = front(Front {
        upstream: up.url.clone(),
        ..Default::default()
    })
    .await;
    let sc = sidecar(&target_toml(
        "t",
        &url,
        "meta = { AWS_REGION = \"us-west-2\", \"vendor/tenant\" = \"acme\" }",
    ))
    .await;
    wait_for_state(&sc.base, "t", "ready").await;

    let body = call_tool(&sc.url, "t___tool_000", json!({"text": "a"})).await;
    assert!(body["result"].is_object(), "{body}");
    let (_, body) = post(
        &sc.url,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "t___tool_000", "arguments": {"text": "b"},
            "_meta": {"AWS_REGION": "eu-west-1", "vendor/trace": "p1"}}}),
    )
    .await;
    assert!(body["result"].is_object(), "{body}");

    let bodies = front.bodies.lock().unwrap().clone();
    let calls: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["method"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0]["params"]["_meta"],
        json!({"AWS_REGION": "us-west-2", "vendor/tenant": "acme"})
    );
    assert_eq!(calls[0]["params"]["arguments"], json!({"text": "a"}));
    // The caller's own keys win; the rest is added.
    assert_eq!(
        calls[1]["params"]["_meta"],
        json!({"AWS_REGION": "eu-west-1", "vendor/trace": "p1", "vendor/tenant": "acme"})
    );
    // Other methods are left alone.
    assert!(
        bodies
            .iter()
            .filter(|b| b["method"] == "tools/list")
            .all(|b| b["params"].get("_meta").is_none())
    );
}

// --------------------------------------------------------------------------- OAuth

/// A minimal client-credentials issuer: tokens `tok-N` valid for `ttl`, revocable.
struct Issuer {
    ttl_secs: u64,
    issued: Mutex<Vec<(String, Instant)>>,
    requests: AtomicUsize,
    /// Requests whose Basic credentials were right.
    authenticated: AtomicUsize,
    revoked: Mutex<Vec<String>>,
    forms: Mutex<Vec<String>>,
}

impl Issuer {
    fn new(ttl_secs: u64) -> Arc<Self> {
        Arc::new(Self {
            ttl_secs,
            issued: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            authenticated: AtomicUsize::new(0),
            revoked: Mutex::new(Vec::new()),
            forms: Mutex::new(Vec::new()),
        })
    }

    fn valid(&self, token: &str) -> bool {
        !self.revoked.lock().unwrap().iter().any(|t| t == token)
            && self
                .issued
                .lock()
                .unwrap()
                .iter()
                .any(|(t, until)| t == token && Instant::now() < *until)
    }

    fn revoke_all(&self) {
        let issued = self.issued.lock().unwrap();
        self.revoked
            .lock()
            .unwrap()
            .extend(issued.iter().map(|(t, _)| t.clone()));
    }
}

async fn token_endpoint(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let n = issuer.requests.fetch_add(1, Ordering::SeqCst);
    issuer.forms.lock().unwrap().push(body.clone());
    // client_secret_basic with "client-a" / "s3cret:/+" (form-urlencoded, then Base64).
    let expected = format!(
        "Basic {}",
        base64_encode("client-a:s3cret%3A%2F%2B".as_bytes())
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "bad client secret"}),
        );
    }
    issuer.authenticated.fetch_add(1, Ordering::SeqCst);
    let token = format!("tok-{n}");
    issuer.issued.lock().unwrap().push((
        token.clone(),
        Instant::now() + Duration::from_secs(issuer.ttl_secs),
    ));
    json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": issuer.ttl_secs}),
    )
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn issuer_server(issuer: Arc<Issuer>) -> String {
    let base_holder = Arc::new(Mutex::new(String::new()));
    let holder = base_holder.clone();
    let router = axum::Router::new()
        .route("/token", axum::routing::post(token_endpoint))
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let base = holder.lock().unwrap().clone();
                async move {
                    json_response(
                        StatusCode::OK,
                        json!({"issuer": base, "token_endpoint": format!("{base}/token")}),
                    )
                }
            }),
        )
        .with_state(issuer);
    let base = serve(router).await;
    *base_holder.lock().unwrap() = base.clone();
    base
}

#[tokio::test]
async fn oauth_token_is_cached_refreshed_before_expiry_and_once_on_401() {
    let issuer = Issuer::new(2);
    let base = issuer_server(issuer.clone()).await;
    let up = upstream("u", 1, false).await;
    let (front, url) = front(Front {
        upstream: up.url.clone(),
        tokens: Some(issuer.clone()),
        ..Default::default()
    })
    .await;
    let provider = format!(
        "credential_provider = {{ type = \"oauth_client_credentials\", discovery_url = \"{base}/.well-known/openid-configuration\", client_id = \"client-a\", client_secret = \"s3cret:/+\", scopes = [\"mcp/invoke\", \"mcp/read\"], audience = \"https://api.example\" }}"
    );
    let sc = sidecar(&target_toml("t", &url, &provider)).await;
    wait_for_state(&sc.base, "t", "ready").await;

    // Cached: many calls, one token.
    for i in 0..5 {
        let body = call_tool(&sc.url, "t___tool_000", json!({"text": i.to_string()})).await;
        assert!(body["result"].is_object(), "{body}");
    }
    assert_eq!(issuer.requests.load(Ordering::SeqCst), 1);
    let form = issuer.forms.lock().unwrap()[0].clone();
    assert!(
        form.contains("grant_type=client_credentials")
            && form.contains("scope=mcp%2Finvoke+mcp%2Fread")
            && form.contains("audience=https%3A%2F%2Fapi.example"),
        "{form}"
    );

    // Replaced before it expires: calls across several lifetimes never get a 401.
    let end = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < end {
        let body = call_tool(&sc.url, "t___tool_000", json!({})).await;
        assert!(body["result"].is_object(), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(front.refused.load(Ordering::SeqCst), 0);
    assert!(issuer.requests.load(Ordering::SeqCst) >= 3);

    // Revoked early: the 401 triggers one new token and the call succeeds. The scheduled
    // refresh can replace the token between the revocation and the call (then no 401 is
    // seen), so revoke again until the 401 path is exercised.
    let mut saw_401 = false;
    for attempt in 0..5 {
        issuer.revoke_all();
        let (requests, refused) = (
            issuer.requests.load(Ordering::SeqCst),
            front.refused.load(Ordering::SeqCst),
        );
        let body = call_tool(
            &sc.url,
            "t___tool_000",
            json!({"text": format!("again {attempt}")}),
        )
        .await;
        assert_eq!(
            body["result"]["content"][0]["text"],
            format!("u:tool_000:again {attempt}"),
            "{body}"
        );
        let refused = front.refused.load(Ordering::SeqCst) - refused;
        assert!(
            refused <= 1,
            "the revoked token is never used twice ({refused} refusals)"
        );
        if refused == 1 {
            // One new token for the 401 (plus, at most, the scheduled one).
            let fetched = issuer.requests.load(Ordering::SeqCst) - requests;
            assert!((1..=2).contains(&fetched), "{fetched} token requests");
            saw_401 = true;
            break;
        }
    }
    assert!(
        saw_401,
        "a call with a revoked token never happened in 5 attempts"
    );
}

#[tokio::test]
async fn oauth_failures_name_the_source_and_what_was_answered() {
    let issuer = Issuer::new(60);
    let base = issuer_server(issuer.clone()).await;
    let up = upstream("u", 1, false).await;
    let (front, url) = front(Front {
        upstream: up.url.clone(),
        tokens: Some(issuer.clone()),
        ..Default::default()
    })
    .await;
    // Wrong secret: the token endpoint refuses; the sync fails with a clear error.
    let provider = format!(
        "credential_provider = {{ type = \"oauth_client_credentials\", token_url = \"{base}/token\", client_id = \"client-a\", client_secret = \"wrong-secret\" }}"
    );
    let sc = sidecar(&target_toml("t", &url, &provider)).await;
    let status = wait_for_state(&sc.base, "t", "failing").await;
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("oauth_client_credentials (client client-a at token endpoint")
            && error.contains("401")
            && error.contains("invalid_client"),
        "{error}"
    );
    assert!(!error.contains("wrong-secret"));
    assert_eq!(
        front.bodies.lock().unwrap().len(),
        0,
        "no unauthenticated request went out"
    );

    // A token the target never accepts: one retry with a new token, then a clear 401.
    let provider = format!(
        "credential_provider = {{ type = \"oauth_client_credentials\", token_url = \"{base}/token\", client_id = \"client-a\", client_secret = \"s3cret:/+\" }}"
    );
    let sc = sidecar(&target_toml("t", &url, &provider)).await;
    wait_for_state(&sc.base, "t", "ready").await;
    front.refuse_all.store(true, Ordering::SeqCst);
    let before = issuer.requests.load(Ordering::SeqCst);
    let body = call_tool(&sc.url, "t___tool_000", json!({})).await;
    assert_eq!(
        issuer.requests.load(Ordering::SeqCst),
        before + 1,
        "one new token"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("401")
            && message.contains("credentials: oauth_client_credentials")
            && message.contains("invalid_token")
            && message.contains("also after fetching fresh credentials"),
        "{body}"
    );
}

// --------------------------------------------------------------------------- sigv4 sources

#[tokio::test]
async fn missing_aws_credentials_fail_as_credentials_naming_the_profile() {
    let up = upstream("u", 1, false).await;
    let provider = "credential_provider = { type = \"sigv4\", service = \"aws-mcp\", region = \"us-east-1\", profile = \"mcp-sidecar-test-no-such-profile\" }";
    let sc = sidecar(&target_toml("t", &up.url, provider)).await;
    let status = wait_for_state(&sc.base, "t", "failing").await;
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("has no usable credentials")
            && error.contains("profile `mcp-sidecar-test-no-such-profile`")
            && error.contains("service aws-mcp from config, region us-east-1 from config"),
        "{error}"
    );
    assert_eq!(up.knobs.initializes.load(Ordering::SeqCst), 0);
}

// --------------------------------------------------------------------------- config

#[test]
fn credential_provider_config_errors_name_the_field() {
    use mcp_sidecar::config::Config;
    let parse = |url: &str, provider: &str| {
        Config::parse(
            &format!(
                "[[targets]]\nname = \"t\"\nkind = \"mcp_server\"\nurl = \"{url}\"\ncredential_provider = {provider}\n"
            ),
            &|_| None,
        )
    };
    let cases = [
        (
            "http://127.0.0.1:1/mcp",
            "{ type = \"sigv4\" }",
            "targets[0].credential_provider.region",
        ),
        (
            "https://aws-mcp.us-east-1.api.aws/mcp",
            "{ type = \"sigv4\", assume_role = { role_arn = \"not-an-arn\" } }",
            "targets[0].credential_provider.assume_role.role_arn",
        ),
        (
            "https://aws-mcp.us-east-1.api.aws/mcp",
            "{ type = \"sigv4\", assume_role = { role_arn = \"arn:aws:iam::1:role/r\", duration_secs = 60 } }",
            "targets[0].credential_provider.assume_role.duration_secs",
        ),
        (
            "https://x.example/mcp",
            "{ type = \"oauth_client_credentials\", token_url = \"https://i/t\", discovery_url = \"https://i/d\", client_id = \"c\", client_secret = \"s\" }",
            "targets[0].credential_provider.token_url",
        ),
        (
            "https://x.example/mcp",
            "{ type = \"oauth_client_credentials\", token_url = \"https://i/t\", client_id = \"c\" }",
            "targets[0].credential_provider.client_secret",
        ),
        (
            "https://x.example/mcp",
            "{ type = \"api_key\" }",
            "targets[0].credential_provider.value",
        ),
    ];
    for (url, provider, field) in cases {
        let err = parse(url, provider).unwrap_err();
        assert_eq!(err.field, field, "{provider}: {err}");
    }
    // Valid forms, including the AgentCore alias.
    for (url, provider) in [
        (
            "https://aws-mcp.us-east-1.api.aws/mcp",
            "{ type = \"gateway_iam_role\" }",
        ),
        (
            "http://127.0.0.1:1/mcp",
            "{ type = \"sigv4\", service = \"bedrock-agentcore\", region = \"us-west-2\", profile = \"dev\", assume_role = { role_arn = \"arn:aws:iam::123456789012:role/x\", external_id = \"ext\", session_name = \"s-1\", duration_secs = 900 } }",
        ),
        (
            "https://x.example/mcp",
            "{ type = \"oauth_client_credentials\", token_url = \"https://i/t\", client_id = \"c\", client_secret_file = \"/run/secrets/c\", auth_method = \"client_secret_post\" }",
        ),
    ] {
        parse(url, provider).unwrap_or_else(|e| panic!("{provider}: {e}"));
    }
}
