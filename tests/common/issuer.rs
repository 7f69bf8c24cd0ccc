//! An in-process OIDC issuer with real keys (ES256, EdDSA) generated per run: discovery,
//! JWKS, key rotation, an outage switch and a JWKS fetch counter. Shared by the inbound
//! auth tests and the auth benchmark.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub struct Issuer {
    pub url: String,
    pub keys: Mutex<HashMap<String, (EncodingKey, Algorithm, Jwk)>>,
    published: Mutex<Vec<String>>,
    pub jwks_fetches: AtomicUsize,
    pub down: AtomicBool,
    _task: tokio::task::JoinHandle<()>,
}

pub fn es256_key() -> EncodingKey {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EncodingKey::from_ec_der(der.as_ref())
}

pub fn ed25519_key() -> EncodingKey {
    let der = Ed25519KeyPair::generate().unwrap().to_pkcs8v1().unwrap();
    EncodingKey::from_ed_der(der.as_ref())
}

impl Issuer {
    pub async fn start() -> Arc<Issuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new_cyclic(|weak: &std::sync::Weak<Issuer>| {
            let weak = weak.clone();
            let app = axum::Router::new()
                .route(
                    "/.well-known/openid-configuration",
                    axum::routing::get(discovery),
                )
                .route("/jwks", axum::routing::get(jwks))
                .with_state(weak);
            Issuer {
                url: url.clone(),
                keys: Mutex::new(HashMap::new()),
                published: Mutex::new(Vec::new()),
                jwks_fetches: AtomicUsize::new(0),
                down: AtomicBool::new(false),
                _task: tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }),
            }
        });
        issuer.add_key("k1", es256_key(), Algorithm::ES256, true);
        issuer
    }

    pub fn add_key(&self, kid: &str, key: EncodingKey, alg: Algorithm, publish: bool) {
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        self.keys
            .lock()
            .unwrap()
            .insert(kid.to_string(), (key, alg, jwk));
        if publish {
            self.published.lock().unwrap().push(kid.to_string());
        }
    }

    pub fn unpublish(&self, kid: &str) {
        self.published.lock().unwrap().retain(|k| k != kid);
    }

    pub fn claims(&self, extra: Value) -> Value {
        let now = now();
        let mut claims = json!({
            "sub": "client-a", "client_id": "client-a", "token_use": "access",
            "scope": "gateway:read gateway:write", "iss": self.url, "iat": now, "exp": now + 600,
            "jti": format!("{}", rand_u64()), "version": 2, "auth_time": now,
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    pub fn token(&self, kid: &str, extra: Value) -> String {
        let keys = self.keys.lock().unwrap();
        let (key, alg, _) = &keys[kid];
        let mut header = Header::new(*alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, &self.claims(extra), key).unwrap()
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

async fn discovery(State(issuer): State<std::sync::Weak<Issuer>>) -> axum::response::Response {
    let issuer = issuer.upgrade().unwrap();
    if issuer.down.load(Ordering::SeqCst) {
        return http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum_json(json!({"issuer": issuer.url, "jwks_uri": format!("{}/jwks", issuer.url)}))
}

async fn jwks(State(issuer): State<std::sync::Weak<Issuer>>) -> axum::response::Response {
    let issuer = issuer.upgrade().unwrap();
    if issuer.down.load(Ordering::SeqCst) {
        return http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    issuer.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = issuer.keys.lock().unwrap();
    let set = JwkSet {
        keys: issuer
            .published
            .lock()
            .unwrap()
            .iter()
            .map(|kid| keys[kid].2.clone())
            .collect(),
    };
    axum_json(serde_json::to_value(set).unwrap())
}

fn axum_json(v: Value) -> axum::response::Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

pub fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}
