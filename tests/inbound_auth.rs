//! Inbound JWT authorization against an in-process OIDC issuer with real keys (ES256 and
//! EdDSA, generated per test run): every rejection, key rotation, the refetch rate limit,
//! an IdP outage, RFC 9728 metadata and per-tool rules.

mod common;

use std::sync::atomic::Ordering;

use common::issuer::*;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A sidecar with one authorizer (clients, scopes) and the tutorial's read/write rules.
async fn guarded_sidecar(issuer: &Issuer, up: &Upstream, extra_authorizer: &str) -> Sidecar {
    let config = format!(
        r#"
[inbound]
[[inbound.authorizers]]
discovery_url = "{}/.well-known/openid-configuration"
allowed_clients = ["client-a"]
allowed_scopes = ["gateway:read", "gateway:write"]
jwks_min_refetch_secs = 1
{extra_authorizer}

[[inbound.tool_rules]]
tools = ["*___tool_000"]
required_scopes = ["gateway:read"]

[[inbound.tool_rules]]
tools = ["*"]
required_scopes = ["gateway:write"]

{}"#,
        issuer.url,
        target_toml("t", &up.url, "")
    );
    sidecar(&config).await
}

async fn list_with(url: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
    let mut request = client()
        .post(url)
        .header("content-type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string());
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    (status, body, challenge)
}

async fn call_with(url: &str, token: &str, tool: &str) -> (u16, Value, Option<String>) {
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "x"}}}).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null),
        challenge,
    )
}

fn names(body: &Value) -> Vec<String> {
    body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn valid_tokens_list_and_call_by_scope_and_tokens_stay_inbound() {
    let issuer = Issuer::start().await;
    let up = upstream("t", 2, false).await;
    let sidecar = guarded_sidecar(&issuer, &up, "").await;
    wait_for_state(&sidecar.base, "t", "ready").await;

    let writer = issuer.token("k1", json!({}));
    let (status, body, _) = list_with(&sidecar.url, Some(&writer)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["t___tool_000", "t___tool_001"]);
    let (status, reply, _) = call_with(&sidecar.url, &writer, "t___tool_001").await;
    assert_eq!(
        (status, reply["result"]["content"][0]["text"].as_str()),
        (200, Some("t:tool_001:x"))
    );

    let reader = issuer.token("k1", json!({"scope": "gateway:read"}));
    let (_, body, _) = list_with(&sidecar.url, Some(&reader)).await;
    assert_eq!(
        names(&body),
        ["t___tool_000"],
        "a reader sees only the read tools"
    );
    let (status, _, challenge) = call_with(&sidecar.url, &reader, "t___tool_001").await;
    assert_eq!(status, 403);
    let challenge = challenge.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="gateway:write""#),
        "{challenge}"
    );
    let (status, reply, _) = call_with(&sidecar.url, &reader, "t___tool_000").await;
    assert_eq!(status, 200, "{reply}");

    // A new key id is learned by a refetch, at most once per jwks_min_refetch_secs (1 s here).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let eddsa = ed25519_key();
    issuer.add_key("ed", eddsa, Algorithm::EdDSA, true);
    let (status, _, _) = list_with(&sidecar.url, Some(&issuer.token("ed", json!({})))).await;
    assert_eq!(
        status, 200,
        "EdDSA keys verify (after a refetch for the new kid)"
    );

    assert_eq!(
        up.knobs.saw_authorization.load(Ordering::SeqCst),
        0,
        "the inbound token is never forwarded"
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_with_the_right_status_and_challenge() {
    let issuer = Issuer::start().await;
    let up = upstream("t", 1, false).await;
    let sidecar = guarded_sidecar(&issuer, &up, "").await;
    let now = now();

    let (status, body, challenge) = list_with(&sidecar.url, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], -32001);
    let challenge = challenge.unwrap();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\""),
        "{challenge}"
    );
    assert!(
        !challenge.contains("error="),
        "no error code when no token was sent: {challenge}"
    );

    let public_jwk = serde_json::to_vec(&issuer.keys.lock().unwrap()["k1"].2).unwrap();
    let none_token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        b64(issuer.claims(json!({})).to_string().as_bytes())
    );
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let hs_token = jsonwebtoken::encode(
        &hs_header,
        &issuer.claims(json!({})),
        &EncodingKey::from_secret(&public_jwk),
    )
    .unwrap();
    let foreign = es256_key();
    let mut foreign_header = Header::new(Algorithm::ES256);
    foreign_header.kid = Some("k1".into());
    let forged =
        jsonwebtoken::encode(&foreign_header, &issuer.claims(json!({})), &foreign).unwrap();
    issuer.add_key("hidden", es256_key(), Algorithm::ES256, false);

    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed", "not.a.jwt".into(), 401, "malformed"),
        (
            "expired",
            issuer.token("k1", json!({"exp": now - 3600, "iat": now - 7200})),
            401,
            "expired",
        ),
        (
            "not yet valid",
            issuer.token("k1", json!({"nbf": now + 3600})),
            401,
            "not valid yet",
        ),
        (
            "issued in the future",
            issuer.token("k1", json!({"iat": now + 3600})),
            401,
            "future",
        ),
        (
            "no exp",
            issuer.token("k1", json!({"exp": null})),
            401,
            "exp",
        ),
        (
            "wrong issuer",
            issuer.token("k1", json!({"iss": "https://evil.example"})),
            401,
            "issuer",
        ),
        (
            "wrong client",
            issuer.token("k1", json!({"client_id": "client-b"})),
            401,
            "client",
        ),
        (
            "missing scope",
            issuer.token("k1", json!({"scope": "other:scope"})),
            403,
            "insufficient_scope",
        ),
        ("alg none", none_token, 401, "malformed"),
        ("HS256 with the public key", hs_token, 401, "does not fit"),
        ("signed by another key", forged, 401, "signature"),
        (
            "unknown kid",
            issuer.token("hidden", json!({})),
            401,
            "unknown signing key",
        ),
    ];
    for (name, token, want_status, want_text) in cases {
        let (status, body, challenge) = list_with(&sidecar.url, Some(&token)).await;
        let challenge = challenge.unwrap_or_default();
        assert_eq!(status, want_status, "{name}: {body}");
        let error = if want_status == 401 {
            r#"error="invalid_token""#
        } else {
            r#"error="insufficient_scope""#
        };
        assert!(challenge.contains(error), "{name}: {challenge}");
        assert!(
            challenge.contains("resource_metadata="),
            "{name}: {challenge}"
        );
        let text = format!("{challenge} {body}");
        assert!(
            text.contains(want_text),
            "{name}: expected `{want_text}` in {text}"
        );
        assert!(
            !text.contains(&token) || token.len() < 12,
            "{name}: the token is never echoed"
        );
    }
}

#[tokio::test]
async fn audiences_and_custom_claims_are_enforced() {
    let issuer = Issuer::start().await;
    let up = upstream("t", 1, false).await;
    let extra = "allowed_audiences = [\"sidecar\"]\n[[inbound.authorizers.custom_claims]]\nname = \"groups\"\nvalue_type = \"STRING_ARRAY\"\noperator = \"CONTAINS_ANY\"\nvalues = [\"ops\", \"dev\"]";
    let sidecar = guarded_sidecar(&issuer, &up, extra).await;
    let ok = issuer.token("k1", json!({"aud": "sidecar", "groups": ["dev"]}));
    assert_eq!(list_with(&sidecar.url, Some(&ok)).await.0, 200);
    let wrong_aud = issuer.token("k1", json!({"aud": "other", "groups": ["dev"]}));
    let (status, _, challenge) = list_with(&sidecar.url, Some(&wrong_aud)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("audience"));
    let no_aud = issuer.token("k1", json!({"groups": ["dev"]}));
    assert_eq!(
        list_with(&sidecar.url, Some(&no_aud)).await.0,
        401,
        "aud required once audiences are configured"
    );
    let wrong_group = issuer.token("k1", json!({"aud": "sidecar", "groups": ["sales"]}));
    let (status, _, challenge) = list_with(&sidecar.url, Some(&wrong_group)).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("groups"));
}

#[tokio::test]
async fn key_rotation_works_without_restart_and_refetches_are_rate_limited() {
    let issuer = Issuer::start().await;
    let up = upstream("t", 1, false).await;
    let sidecar = guarded_sidecar(&issuer, &up, "").await;
    assert_eq!(
        list_with(&sidecar.url, Some(&issuer.token("k1", json!({}))))
            .await
            .0,
        200
    );

    // The IdP rotates: a new key is published and the old one withdrawn.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    issuer.add_key("k2", es256_key(), Algorithm::ES256, true);
    issuer.unpublish("k1");
    assert_eq!(
        list_with(&sidecar.url, Some(&issuer.token("k2", json!({}))))
            .await
            .0,
        200
    );

    // A burst of tokens naming random unknown kids costs at most one more JWKS fetch.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = issuer.jwks_fetches.load(Ordering::SeqCst);
    let key = es256_key();
    let burst = (0..200).map(|i| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(format!("random-{i}"));
        let token = jsonwebtoken::encode(&header, &issuer.claims(json!({})), &key).unwrap();
        let url = sidecar.url.clone();
        async move { list_with(&url, Some(&token)).await.0 }
    });
    let started = std::time::Instant::now();
    let statuses = futures_util::future::join_all(burst).await;
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 401));
    // One refetch per jwks_min_refetch_secs (1 s) at most, however long the burst took.
    let allowed = 1 + elapsed.as_secs() as usize;
    let fetched = issuer.jwks_fetches.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= allowed,
        "{fetched} JWKS fetches for 200 unknown kids in {elapsed:?}"
    );
    assert!(
        fetched < 200 / 10,
        "the rate limit must hold: {fetched} fetches"
    );
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_idp_is_down() {
    let issuer = Issuer::start().await;
    let up = upstream("t", 1, false).await;
    let sidecar = guarded_sidecar(&issuer, &up, "").await;
    assert_eq!(
        list_with(&sidecar.url, Some(&issuer.token("k1", json!({}))))
            .await
            .0,
        200
    );
    issuer.down.store(true, Ordering::SeqCst);
    // A token never seen before (new jti), signed with the cached key.
    let fresh = issuer.token("k1", json!({"scope": "gateway:read"}));
    let (status, body, _) = list_with(&sidecar.url, Some(&fresh)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["t___tool_000"]);
}

#[tokio::test]
async fn protected_resource_metadata_is_served_where_the_challenge_points() {
    let issuer = Issuer::start().await;
    let up = upstream("t", 1, false).await;
    let sidecar = guarded_sidecar(&issuer, &up, "").await;
    assert_eq!(
        list_with(&sidecar.url, Some(&issuer.token("k1", json!({}))))
            .await
            .0,
        200
    );
    let (_, _, challenge) = list_with(&sidecar.url, None).await;
    let challenge = challenge.unwrap();
    let url = challenge.split('"').nth(1).unwrap().to_string();
    assert!(
        url.ends_with("/.well-known/oauth-protected-resource/mcp"),
        "{url}"
    );
    let doc: Value = client().get(&url).send().await.unwrap().json_value().await;
    assert_eq!(doc["resource"], sidecar.url);
    assert_eq!(doc["authorization_servers"], json!([issuer.url]));
    assert_eq!(
        doc["scopes_supported"],
        json!(["gateway:read", "gateway:write"])
    );
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    // Health stays open.
    assert_eq!(
        client()
            .get(format!("{}/ping", sidecar.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}
