//! AWS credentials for SigV4 targets: a source (the default chain, a named profile, or an
//! assumed role on top of either) behind a cache of our own.
//!
//! aws-config's providers fetch on every call, so the cache here keeps the current
//! credentials and refreshes them ahead of their expiry:
//! - requests never wait for a refresh while the current credentials are still usable;
//!   from `refresh_at` (a quarter to a half of the lifetime before expiry, at most 5 minutes)
//!   one background refresh runs at a time;
//! - only when there are no usable credentials does a request wait, and then all waiting
//!   requests share one fetch;
//! - a failed refresh while the current credentials are still usable is logged and retried
//!   later, never surfaced to a request; without usable credentials the error is returned
//!   (and reused for a second, so a broken source is not hammered).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::identity::Identity;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use crate::config::AssumeRoleConfig;

/// Longest time before expiry at which a refresh starts.
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Credentials closer than this to their expiry are not used for new requests.
const MAX_SAFETY_MARGIN: Duration = Duration::from_secs(10);
/// How long a failed fetch (with no usable credentials) is reported without trying again.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// Bound on one fetch from the source.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a target's AWS credentials come from.
pub enum Source {
    /// The default chain: env, shared config/credentials (incl. SSO and credential_process),
    /// web identity, ECS/EKS container credentials, IMDS. With `profile`, that profile.
    Chain { profile: Option<String> },
    /// `sts:AssumeRole` with the chain's (or profile's) credentials.
    AssumeRole {
        profile: Option<String>,
        role: AssumeRoleConfig,
    },
    /// A given provider (tests, embedding).
    Provider(SharedCredentialsProvider, String),
}

impl Source {
    pub fn describe(&self) -> String {
        let chain = |profile: &Option<String>| match profile {
            Some(p) => format!("profile `{p}`"),
            None => "the default chain".to_string(),
        };
        match self {
            Source::Chain { profile } => chain(profile),
            Source::AssumeRole { profile, role } => format!(
                "assume role {}{} with {}",
                role.role_arn,
                if role.external_id.is_some() {
                    " (external id set)"
                } else {
                    ""
                },
                chain(profile)
            ),
            Source::Provider(_, name) => name.clone(),
        }
    }
}

/// Credentials ready to sign with (`Debug` redacts the secret).
#[derive(Debug)]
pub struct Current {
    pub identity: Identity,
    pub access_key_id: String,
    pub session_token: bool,
    pub expiry: Option<SystemTime>,
    /// The provider in the chain that supplied them (e.g. `Environment`, `EcsContainer`).
    pub supplied_by: String,
    refresh_at: Option<SystemTime>,
    usable_until: Option<SystemTime>,
}

impl Current {
    fn new(credentials: Credentials, now: SystemTime) -> Self {
        let expiry = credentials.expiry();
        let (refresh_at, usable_until) = match expiry {
            Some(expiry) => {
                let lifetime = expiry.duration_since(now).unwrap_or_default();
                let ahead = MAX_REFRESH_AHEAD.min(lifetime / 2);
                let margin = MAX_SAFETY_MARGIN.min(lifetime / 10);
                (Some(expiry - ahead), Some(expiry - margin))
            }
            None => (None, None),
        };
        Self {
            access_key_id: credentials.access_key_id().to_string(),
            session_token: credentials.session_token().is_some(),
            supplied_by: provider_name(&credentials),
            identity: Identity::from(credentials),
            expiry,
            refresh_at,
            usable_until,
        }
    }

    fn usable(&self, now: SystemTime) -> bool {
        self.usable_until.is_none_or(|t| now < t)
    }

    fn needs_refresh(&self, now: SystemTime) -> bool {
        self.refresh_at.is_some_and(|t| now >= t)
    }
}

/// The name a provider stamped on credentials (only exposed through `Debug`).
fn provider_name(credentials: &Credentials) -> String {
    let debug = format!("{credentials:?}");
    debug
        .split_once("provider_name: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name.to_string())
        .unwrap_or_default()
}

/// Cached, refreshing credentials from one [`Source`]. Cheap to clone.
#[derive(Clone)]
pub struct CachedCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    region: String,
    description: String,
    provider: OnceCell<SharedCredentialsProvider>,
    current: ArcSwapOption<Current>,
    /// Held while fetching: one fetch at a time. Holds the last failure (when, message).
    fetch: Mutex<Option<(Instant, String)>>,
    background: AtomicBool,
    /// No background refresh before this many ms since `UNIX_EPOCH` (after a failure).
    retry_after_ms: AtomicU64,
    fetches: AtomicU64,
}

impl CachedCredentials {
    pub fn new(source: Source, region: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                description: source.describe(),
                source,
                region: region.to_string(),
                provider: OnceCell::new(),
                current: ArcSwapOption::empty(),
                fetch: Mutex::new(None),
                background: AtomicBool::new(false),
                retry_after_ms: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    pub fn describe(&self) -> &str {
        &self.inner.description
    }

    /// Fetches from the source so far (successful or not).
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The credentials to sign with now.
    pub async fn get(&self) -> anyhow::Result<Arc<Current>> {
        let now = SystemTime::now();
        if let Some(current) = self.inner.current.load_full()
            && current.usable(now)
        {
            if current.needs_refresh(now) {
                self.refresh_in_background(now);
            }
            return Ok(current);
        }
        self.inner.fetch_now(None).await
    }

    /// The target refused credentials as expired or unknown: unless they were already
    /// replaced, fetch again now. Returns true when the current credentials differ from the
    /// refused ones (`access_key_id`), so a retry may succeed.
    pub async fn refused(&self, access_key_id: &str) -> bool {
        match self.inner.fetch_now(Some(access_key_id)).await {
            Ok(current) => current.access_key_id != access_key_id,
            Err(_) => false,
        }
    }

    fn refresh_in_background(&self, now: SystemTime) {
        if millis(now) < self.inner.retry_after_ms.load(Ordering::Relaxed)
            || self.inner.background.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.refresh_ahead().await;
            inner.background.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    async fn provider(&self) -> &SharedCredentialsProvider {
        self.provider
            .get_or_init(|| build_provider(&self.source, &self.region))
            .await
    }

    /// A background refresh: replaces the current credentials, or logs why it could not.
    async fn refresh_ahead(&self) {
        let _guard = self.fetch.lock().await;
        let now = SystemTime::now();
        let current = self.current.load_full();
        if current.as_ref().is_some_and(|c| !c.needs_refresh(now)) {
            return; // someone else refreshed
        }
        match self.fetch_from_source().await {
            Ok(fresh) => {
                tracing::debug!(source = %self.description, supplied_by = %fresh.supplied_by,
                    "refreshed AWS credentials ahead of expiry");
                self.current.store(Some(Arc::new(fresh)));
            }
            Err(e) => {
                let wait = current
                    .as_ref()
                    .and_then(|c| c.usable_until)
                    .and_then(|t| t.duration_since(now).ok())
                    .map_or(Duration::from_secs(1), |left| {
                        (left / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
                    });
                self.retry_after_ms
                    .store(millis(now + wait), Ordering::Relaxed);
                tracing::warn!(source = %self.description,
                    "refreshing AWS credentials failed; still using the current ones (retry in {} ms): {e:#}",
                    wait.as_millis());
            }
        }
    }

    /// Fetches and waits (one fetch at a time; waiters reuse its outcome). With `refused`,
    /// the credentials with that access key are known bad and replaced even if unexpired.
    async fn fetch_now(&self, refused: Option<&str>) -> anyhow::Result<Arc<Current>> {
        let mut last_failure = self.fetch.lock().await;
        let now = SystemTime::now();
        if let Some(current) = self.current.load_full()
            && current.usable(now)
            && refused.is_none_or(|key| key != current.access_key_id)
        {
            return Ok(current);
        }
        if let Some((at, message)) = last_failure.as_ref()
            && at.elapsed() < FAILURE_HOLD
        {
            anyhow::bail!("{message}");
        }
        match self.fetch_from_source().await {
            Ok(fresh) => {
                *last_failure = None;
                tracing::debug!(source = %self.description, supplied_by = %fresh.supplied_by,
                    expiry = ?fresh.expiry, "fetched AWS credentials");
                let fresh = Arc::new(fresh);
                self.current.store(Some(fresh.clone()));
                Ok(fresh)
            }
            Err(e) => {
                let message = format!("{e:#}");
                *last_failure = Some((Instant::now(), message.clone()));
                anyhow::bail!("{message}")
            }
        }
    }

    async fn fetch_from_source(&self) -> anyhow::Result<Current> {
        let fetched = self.fetch_from_source_uncounted().await;
        crate::telemetry::metrics().credential_refresh("aws", fetched.is_ok());
        fetched
    }

    async fn fetch_from_source_uncounted(&self) -> anyhow::Result<Current> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let provider = self.provider().await;
        let credentials = tokio::time::timeout(FETCH_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no AWS credentials from {} within {} s",
                    self.description,
                    FETCH_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| {
                anyhow::anyhow!(
                    "no AWS credentials from {}: {}",
                    self.description,
                    error_chain(&e)
                )
            })?;
        let now = SystemTime::now();
        if credentials.expiry().is_some_and(|t| t <= now) {
            anyhow::bail!(
                "{} supplied credentials that have already expired",
                self.description
            );
        }
        Ok(Current::new(credentials, now))
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An error and its causes on one line (aws-config's errors keep the detail in sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn build_provider(source: &Source, region: &str) -> SharedCredentialsProvider {
    match source {
        Source::Chain { profile } => base_provider(profile.as_deref(), region).await,
        Source::AssumeRole { profile, role } => {
            let base = base_provider(profile.as_deref(), region).await;
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(Region::new(region.to_string()))
                .credentials_provider(base.clone())
                .load()
                .await;
            let mut builder = AssumeRoleProvider::builder(role.role_arn.clone())
                .configure(&sdk)
                .region(Region::new(region.to_string()))
                .session_name(
                    role.session_name
                        .clone()
                        .unwrap_or_else(|| "mcp-sidecar".to_string()),
                );
            if let Some(id) = &role.external_id {
                builder = builder.external_id(id.expose());
            }
            if let Some(secs) = role.duration_secs {
                builder = builder.session_length(Duration::from_secs(secs));
            }
            SharedCredentialsProvider::new(builder.build_from_provider(base).await)
        }
        Source::Provider(provider, _) => provider.clone(),
    }
}

async fn base_provider(profile: Option<&str>, region: &str) -> SharedCredentialsProvider {
    let region = Region::new(region.to_string());
    match profile {
        Some(name) => SharedCredentialsProvider::new(
            ProfileFileCredentialsProvider::builder()
                .configure(&ProviderConfig::without_region().with_region(Some(region)))
                .profile_name(name)
                .build(),
        ),
        None => SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder()
                .region(region)
                .build()
                .await,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::future::ProvideCredentials as ProvideFuture;
    use std::sync::atomic::AtomicUsize;

    /// A source that mints new keys with a given lifetime; can be told to fail.
    #[derive(Debug, Default)]
    struct Minting {
        calls: AtomicUsize,
        failing: AtomicBool,
        lifetime_ms: AtomicU64,
        delay_ms: AtomicU64,
    }

    #[derive(Debug, Clone)]
    struct Shared(Arc<Minting>);

    impl ProvideCredentials for Shared {
        fn provide_credentials<'a>(&'a self) -> ProvideFuture<'a>
        where
            Self: 'a,
        {
            ProvideFuture::new(async move {
                let n = self.0.calls.fetch_add(1, Ordering::SeqCst);
                let delay = self.0.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if self.0.failing.load(Ordering::SeqCst) {
                    return Err(
                        aws_credential_types::provider::error::CredentialsError::provider_error(
                            "source is down",
                        ),
                    );
                }
                let lifetime = Duration::from_millis(self.0.lifetime_ms.load(Ordering::SeqCst));
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    Some("token".into()),
                    Some(SystemTime::now() + lifetime),
                    "Minting",
                ))
            })
        }
    }

    fn cached(lifetime_ms: u64) -> (CachedCredentials, Arc<Minting>) {
        let minting = Arc::new(Minting::default());
        minting.lifetime_ms.store(lifetime_ms, Ordering::SeqCst);
        let source = Source::Provider(
            SharedCredentialsProvider::new(Shared(minting.clone())),
            "test source".into(),
        );
        (CachedCredentials::new(source, "us-east-1"), minting)
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_fetch() {
        let (creds, minting) = cached(3_600_000);
        minting.delay_ms.store(100, Ordering::SeqCst);
        let all = futures_util::future::join_all((0..20).map(|_| creds.get())).await;
        assert!(
            all.iter()
                .all(|c| c.as_ref().unwrap().access_key_id == "AKID0")
        );
        assert_eq!(minting.calls.load(Ordering::SeqCst), 1);
        let c = creds.get().await.unwrap();
        assert_eq!(c.supplied_by, "Minting");
        assert!(c.session_token);
        assert_eq!(minting.calls.load(Ordering::SeqCst), 1, "cached");
    }

    #[tokio::test]
    async fn refreshes_ahead_of_expiry_without_making_requests_wait() {
        let (creds, minting) = cached(2_000);
        let first = creds.get().await.unwrap();
        assert_eq!(first.access_key_id, "AKID0");
        // Past refresh_at (half the lifetime) but still usable: the old key is returned at
        // once and one background refresh replaces it.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let during = creds.get().await.unwrap();
        assert_eq!(during.access_key_id, "AKID0");
        for _ in 0..50 {
            if creds.get().await.unwrap().access_key_id != "AKID0" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(creds.get().await.unwrap().access_key_id, "AKID1");
        assert_eq!(minting.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_refresh_keeps_valid_credentials_and_fails_once_expired() {
        let (creds, minting) = cached(1_500);
        assert_eq!(creds.get().await.unwrap().access_key_id, "AKID0");
        minting.failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(900)).await;
        // Refresh window: the background refresh fails, the request still gets AKID0.
        assert_eq!(creds.get().await.unwrap().access_key_id, "AKID0");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(creds.get().await.unwrap().access_key_id, "AKID0");
        // Past the safety margin: no usable credentials, the error names the source.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let err = creds.get().await.unwrap_err().to_string();
        assert!(
            err.contains("test source") && err.contains("source is down"),
            "{err}"
        );
        // The source recovers: the next request (after the failure hold) fetches again.
        minting.failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(FAILURE_HOLD).await;
        assert!(creds.get().await.unwrap().access_key_id.starts_with("AKID"));
    }

    #[tokio::test]
    async fn refused_credentials_are_replaced_once() {
        let (creds, minting) = cached(3_600_000);
        assert_eq!(creds.get().await.unwrap().access_key_id, "AKID0");
        // Two requests refused with AKID0 at once: one fetch, both see AKID1.
        let (a, b) = tokio::join!(creds.refused("AKID0"), creds.refused("AKID0"));
        assert!(a && b);
        assert_eq!(minting.calls.load(Ordering::SeqCst), 2);
        assert_eq!(creds.get().await.unwrap().access_key_id, "AKID1");
    }
}
