//! `mcp-sidecar doctor --config FILE`: live checks of what `serve` would need, through the
//! same code `serve` runs, each within a short timeout and all at once:
//!
//! - every target is built (`targets::build`), synced once (initialize and every listing)
//!   and closed again;
//! - every target's credential source is asked for credentials now (which source supplied
//!   them, and when they expire);
//! - every JWT authorizer's discovery document and JWKS are fetched;
//! - the local clock is compared with the `Date` header of an AWS endpoint (SigV4 signatures
//!   and token lifetimes fail with a skewed clock).
//!
//! Every check prints one line, `ok` or `problem`; the exit status is non-zero when any
//! problem was found.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::targets;

/// How the checks run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Each check's deadline.
    pub timeout: Duration,
    /// An HTTPS endpoint whose `Date` header is trusted as the time.
    pub clock_url: String,
    /// Largest clock difference accepted.
    pub max_skew: Duration,
}

/// The AWS endpoint whose `Date` header the clock is compared with by default.
pub const DEFAULT_CLOCK_URL: &str = "https://sts.amazonaws.com/";

/// One check's outcome: `Ok(what was found)` or `Err(the problem)`.
pub struct Finding {
    pub check: String,
    pub outcome: Result<String, String>,
}

impl Finding {
    /// The printed line.
    pub fn line(&self) -> String {
        match &self.outcome {
            Ok(found) => format!("ok       {}: {found}", self.check),
            Err(problem) => format!("problem  {}: {problem}", self.check),
        }
    }
}

/// Runs every check; findings come back in a stable order.
pub async fn run(config: &Config, options: &Options) -> Vec<Finding> {
    let mut checks: Vec<futures_util::future::BoxFuture<'_, Finding>> = Vec::new();
    for t in &config.targets {
        checks.push(Box::pin(check_target(t, options)));
        checks.push(Box::pin(check_credentials(t, options)));
    }
    for a in &config.inbound.authorizers {
        checks.push(Box::pin(async move {
            Finding {
                check: format!("authorizer {}", a.discovery_url),
                outcome: crate::inbound::auth::probe_authorizer(a, options.timeout).await,
            }
        }));
    }
    checks.push(Box::pin(check_clock(options)));
    futures_util::future::join_all(checks).await
}

async fn check_target(t: &crate::config::TargetConfig, options: &Options) -> Finding {
    let check = format!("target '{}'", t.name);
    let target = match targets::build(t) {
        Ok(target) => target,
        Err(e) => {
            return Finding {
                check,
                outcome: Err(format!("cannot be built: {e:#}")),
            };
        }
    };
    let about = target.describe();
    let synced = tokio::time::timeout(options.timeout, target.sync()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), target.close()).await;
    let outcome = match synced {
        Err(_) => Err(format!(
            "{} {}: no complete sync within {} ms",
            about.kind,
            about.endpoint,
            options.timeout.as_millis()
        )),
        Ok(Err(e)) => Err(format!("{} {}: {e}", about.kind, about.endpoint)),
        Ok(Ok(listing)) => Ok(format!(
            "{} {} initialized (protocol {}), {} tools, {} prompts, {} resources",
            about.kind,
            about.endpoint,
            listing.protocol_version,
            listing.tools.len(),
            listing.prompts.len(),
            listing.resources.len()
        )),
    };
    Finding { check, outcome }
}

async fn check_credentials(t: &crate::config::TargetConfig, options: &Options) -> Finding {
    let check = format!("credentials of '{}'", t.name);
    let outcome = match t.spec.endpoint() {
        // Kinds that send no HTTP have no credential provider to ask.
        None => Ok("none (this kind sends no HTTP requests)".to_string()),
        Some(endpoint) => {
            match targets::credentials::provider_for(t, &endpoint, &BTreeMap::new()) {
                Err(e) => Err(format!("cannot be set up: {e:#}")),
                Ok(provider) => match tokio::time::timeout(options.timeout, provider.probe()).await
                {
                    Err(_) => Err(format!(
                        "{}: nothing within {} ms",
                        provider.describe(),
                        options.timeout.as_millis()
                    )),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Ok(Ok(found)) => Ok(found),
                },
            }
        }
    };
    Finding { check, outcome }
}

async fn check_clock(options: &Options) -> Finding {
    let check = format!("clock against {}", options.clock_url);
    let outcome = clock_skew(&options.clock_url, options.timeout)
        .await
        .and_then(|skew| {
            let (secs, direction) = match skew {
                Ok(ahead) => (ahead.as_secs_f64(), "ahead of"),
                Err(behind) => (behind.as_secs_f64(), "behind"),
            };
            let magnitude = Duration::from_secs_f64(secs);
            let said = format!("local clock is {secs:.1} s {direction} the endpoint's Date");
            if magnitude > options.max_skew {
                Err(format!(
                    "{said} (more than {} s: SigV4 requests and token checks will fail)",
                    options.max_skew.as_secs()
                ))
            } else {
                Ok(said)
            }
        });
    Finding { check, outcome }
}

/// `Ok(Ok(d))`: the local clock is `d` ahead; `Ok(Err(d))`: `d` behind.
async fn clock_skew(url: &str, timeout: Duration) -> Result<Result<Duration, Duration>, String> {
    let client = crate::tls::client_builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let sent = SystemTime::now();
    let response = client.get(url).send().await.map_err(|e| {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        format!("unreachable: {}{cause}", e.without_url())
    })?;
    let received = SystemTime::now();
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or("the answer has no Date header")?;
    let theirs = targets::http::retry::httpdate(date)
        .ok_or_else(|| format!("the Date header `{date}` is not an HTTP date"))?;
    // Their clock read somewhere between sending and receiving: compare with the midpoint,
    // allowing for the header's one-second resolution.
    let ours = sent + received.duration_since(sent).unwrap_or_default() / 2;
    let slack = Duration::from_millis(500);
    Ok(match ours.duration_since(theirs) {
        Ok(ahead) => Ok(ahead.saturating_sub(slack)),
        Err(behind) => Err(behind.duration().saturating_sub(slack)),
    })
}
