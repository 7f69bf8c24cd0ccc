//! One authorizer's issuer and signing keys: OIDC discovery, the JWKS, its periodic refresh,
//! and a rate-limited refetch when a token names a key id not seen yet (key rotation).
//!
//! Keys are kept when the IdP becomes unreachable: tokens signed with known keys keep
//! validating; only new keys cannot be learned until it comes back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::backoff::{Backoff, Jitter};
use crate::config::AuthorizerConfig;

/// A verification key and the only algorithms it may be used with.
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    /// Keys published without a `kid` (tried when a token has no `kid`).
    anonymous: Vec<Arc<VerifyingKey>>,
}

pub struct IssuerKeys {
    discovery_url: String,
    http: reqwest::Client,
    min_refetch: Duration,
    issuer: ArcSwap<Option<String>>,
    jwks_uri: ArcSwap<Option<String>>,
    keys: ArcSwap<KeySet>,
    /// When keys were last fetched; the lock also makes refetches single-flight.
    last_fetch: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl IssuerKeys {
    pub fn new(config: &AuthorizerConfig, http: reqwest::Client) -> Self {
        Self {
            discovery_url: config.discovery_url.clone(),
            http,
            min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
            issuer: ArcSwap::from_pointee(None),
            jwks_uri: ArcSwap::from_pointee(None),
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_fetch: Mutex::new(None),
        }
    }

    /// The issuer from discovery, once known.
    pub fn issuer(&self) -> Option<String> {
        self.issuer.load().as_ref().clone()
    }

    /// The issuer, discovering it first (rate-limited like key refetches) when start-up
    /// discovery has not succeeded yet, e.g. the IdP was slow.
    pub async fn issuer_or_discover(&self) -> Option<String> {
        if let Some(issuer) = self.issuer() {
            return Some(issuer);
        }
        let mut last = self.last_fetch.lock().await;
        if self.issuer().is_none()
            && !last.is_some_and(|t| t.elapsed() < self.min_refetch)
            && let Err(e) = self.fetch(&mut last).await
        {
            tracing::warn!("authorizer discovery failed: {e}");
        }
        self.issuer()
    }

    /// Discovery (if not done yet) and a fresh JWKS. Keeps the current keys on failure.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut last = self.last_fetch.lock().await;
        self.fetch(&mut last).await
    }

    async fn fetch(&self, last: &mut Option<Instant>) -> Result<usize, String> {
        *last = Some(Instant::now());
        if self.jwks_uri.load().is_none() {
            let discovery: Discovery = self
                .get_json(&self.discovery_url, "discovery document")
                .await?;
            self.issuer.store(Arc::new(Some(discovery.issuer)));
            self.jwks_uri.store(Arc::new(Some(discovery.jwks_uri)));
        }
        let uri = self.jwks_uri.load().as_ref().clone().unwrap_or_default();
        let set: JwkSet = self.get_json(&uri, "JWKS").await?;
        let keys = key_set(&set);
        let count = keys.by_kid.len() + keys.anonymous.len();
        self.keys.store(Arc::new(keys));
        Ok(count)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{what} at {url}: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("{what} at {url}: HTTP {}", response.status()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{what} at {url}: {}", e.without_url()))?;
        serde_json::from_slice(&body).map_err(|e| format!("{what} at {url} is not valid: {e}"))
    }

    /// The key for `kid`. An unknown `kid` (or a token without one) triggers one refetch,
    /// at most once per `jwks_min_refetch_secs` across all requests.
    pub async fn key(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have refetched while this one waited for the lock.
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return None;
        }
        match self.fetch(&mut last).await {
            Ok(n) => {
                tracing::info!(discovery = %self.discovery_url, keys = n, "refetched signing keys for an unknown key id")
            }
            Err(e) => tracing::warn!("could not refetch signing keys: {e}"),
        }
        self.lookup(kid)
    }

    fn lookup(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        let keys = self.keys.load();
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            None if keys.anonymous.len() == 1 => keys.anonymous.first().cloned(),
            None => None,
        }
    }

    /// Fetches until the first success (backing off), then refreshes every `every`.
    pub async fn keep_fresh(self: Arc<Self>, every: Duration) {
        let mut backoff = Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(60).min(every),
            Jitter::Spread,
        );
        loop {
            match self.refresh().await {
                Ok(n) => {
                    tracing::info!(discovery = %self.discovery_url, keys = n, "signing keys loaded");
                    backoff.reset();
                    tokio::time::sleep(every).await;
                }
                Err(e) => {
                    tracing::warn!("signing keys not refreshed (cached keys stay in use): {e}");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

fn key_set(set: &JwkSet) -> KeySet {
    let mut keys = KeySet::default();
    for jwk in &set.keys {
        let Some(verifying) = verifying_key(jwk) else {
            continue;
        };
        let verifying = Arc::new(verifying);
        match &jwk.common.key_id {
            Some(kid) => {
                keys.by_kid.insert(kid.clone(), verifying);
            }
            None => keys.anonymous.push(verifying),
        }
    }
    keys
}

/// The algorithms a JWK may verify, decided by the key itself (type, curve, declared `alg`),
/// never by a token. Symmetric and encryption keys are never used.
pub fn allowed_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Vec::new();
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![EdDSA]
        }
        _ => vec![],
    };
    match jwk.common.key_algorithm {
        None => family,
        Some(declared) => match key_algorithm(declared) {
            Some(alg) if family.contains(&alg) => vec![alg],
            _ => Vec::new(),
        },
    }
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::try_from(alg).ok()
}

fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    let algorithms = allowed_algorithms(jwk);
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey { key, algorithms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn algorithms_come_from_the_key() {
        let rsa = serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"});
        assert_eq!(allowed_algorithms(&jwk(rsa.clone())).len(), 6);
        let mut rs384 = rsa.clone();
        rs384["alg"] = "RS384".into();
        assert_eq!(allowed_algorithms(&jwk(rs384)), vec![Algorithm::RS384]);
        let mut lying = rsa.clone();
        lying["alg"] = "ES256".into();
        assert!(
            allowed_algorithms(&jwk(lying)).is_empty(),
            "declared alg must fit the key type"
        );
        let ec = serde_json::json!({"kty": "EC", "crv": "P-384", "x": "AQAB", "y": "AQAB"});
        assert_eq!(allowed_algorithms(&jwk(ec)), vec![Algorithm::ES384]);
        let okp = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AQAB"});
        assert_eq!(allowed_algorithms(&jwk(okp)), vec![Algorithm::EdDSA]);
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(
            allowed_algorithms(&jwk(oct)).is_empty(),
            "symmetric keys never verify tokens"
        );
        let mut enc = rsa;
        enc["use"] = "enc".into();
        assert!(allowed_algorithms(&jwk(enc)).is_empty());
    }
}
