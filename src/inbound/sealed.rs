//! State the sidecar hands to clients and must get back unaltered: an MRTR `requestState`
//! and a legacy client's session token. Both pass through the client, so both are
//! attacker-controlled on the way back (MRTR spec: "Servers MUST treat requestState as
//! attacker-controlled"): each is sealed with HMAC-SHA-256 under the sidecar's state key,
//! carries its own expiry, and names its purpose, so a token of one kind never opens as
//! another.
//!
//! Format: `base64url(JSON {"exp": unix seconds, "v": payload}) "." base64url(MAC)`, the MAC
//! over `"mcp-sidecar/" purpose "." first part`. The payload is readable by the client (it
//! holds routing data and the upstream's own opaque state, never a secret of the sidecar's).
//!
//! The key comes from `inbound.state_key`; without one a random key is made at start, which
//! is right for one process but means replicas behind one load balancer (or a restart) do
//! not accept each other's tokens: give them one shared key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

pub struct Sealer {
    key: hmac::Key,
}

/// Why a sealed token was refused. The words are safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsealed {
    #[error("is not a token this sidecar issued")]
    Malformed,
    #[error("does not verify (altered, or sealed with another key)")]
    Forged,
    #[error("has expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    exp: u64,
    v: T,
}

impl Sealer {
    pub fn new(key: Option<&Secret>) -> Self {
        let key = match key {
            Some(secret) => hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
            None => {
                // From the OS, not aws-lc's RNG: its first use seeds from CPU jitter
                // (about 25 ms of CPU), which would hold up start-up (see `warm_up_rng`).
                let mut bytes = [0u8; 32];
                rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
                    .expect("the system RNG works");
                hmac::Key::new(hmac::HMAC_SHA256, &bytes)
            }
        };
        Self { key }
    }

    pub fn seal<T: Serialize>(&self, purpose: &str, ttl: Duration, payload: &T) -> String {
        let envelope = Envelope {
            exp: now_secs() + ttl.as_secs(),
            v: payload,
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&envelope).expect("serializable"));
        let tag = hmac::sign(&self.key, &signed_part(purpose, &body));
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    pub fn open<T: DeserializeOwned>(&self, purpose: &str, token: &str) -> Result<T, Unsealed> {
        let (body, tag) = token.split_once('.').ok_or(Unsealed::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Unsealed::Malformed)?;
        hmac::verify(&self.key, &signed_part(purpose, body), &tag).map_err(|_| Unsealed::Forged)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Unsealed::Malformed)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&json).map_err(|_| Unsealed::Malformed)?;
        if envelope.exp < now_secs() {
            return Err(Unsealed::Expired);
        }
        Ok(envelope.v)
    }
}

fn signed_part(purpose: &str, body: &str) -> Vec<u8> {
    format!("mcp-sidecar/{purpose}.{body}").into_bytes()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_unaltered_for_their_purpose_and_in_time() {
        let sealer = Sealer::new(None);
        let token = sealer.seal("rs", Duration::from_secs(60), &"upstream-state");
        assert_eq!(
            sealer.open::<String>("rs", &token).unwrap(),
            "upstream-state"
        );
        assert_eq!(
            sealer.open::<String>("session", &token),
            Err(Unsealed::Forged)
        );
        let other = Sealer::new(Some(&Secret::new("another key of at least 32 bytes!!")));
        assert_eq!(other.open::<String>("rs", &token), Err(Unsealed::Forged));
        let (body, tag) = token.split_once('.').unwrap();
        let mut altered = body.to_string();
        altered.replace_range(0..1, if body.starts_with('e') { "f" } else { "e" });
        assert_eq!(
            sealer.open::<String>("rs", &format!("{altered}.{tag}")),
            Err(Unsealed::Forged)
        );
        assert_eq!(
            sealer.open::<String>("rs", "nonsense"),
            Err(Unsealed::Malformed)
        );
        let expired = sealer.seal("rs", Duration::ZERO, &1);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(sealer.open::<u32>("rs", &expired), Err(Unsealed::Expired));
    }
}
