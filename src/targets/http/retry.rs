//! When an HTTP answer means "try again later", and how much later.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::RETRY_AFTER;

use crate::backoff::{Backoff, Jitter};

/// Backoff of throttled requests without `Retry-After`: first delay and cap.
const THROTTLE_BACKOFF_BASE: Duration = Duration::from_millis(200);
const THROTTLE_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this is not waited for in full.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// A throttled answer: 429; 503 with `Retry-After`; or AWS's throttling error types.
pub fn is_throttled(status: u16, headers: &HeaderMap) -> bool {
    let aws_throttling = || {
        headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.starts_with("Throttling")
                    || t.starts_with("TooManyRequests")
                    || t.starts_with("RequestLimitExceeded")
            })
    };
    match status {
        429 => true,
        503 => headers.contains_key(RETRY_AFTER) || aws_throttling(),
        400 => aws_throttling(),
        _ => false,
    }
}

/// How long to wait before retry `attempt` (0-based): `Retry-After` (seconds or an HTTP
/// date) plus up to 10 % jitter, or else the shared exponential backoff.
pub fn retry_delay(headers: &HeaderMap, attempt: u32) -> Duration {
    if let Some(after) = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
    {
        use rand::Rng;
        let jitter_cap = (after / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        return after + jitter_cap.mul_f64(rand::rng().random::<f64>());
    }
    Backoff::new(THROTTLE_BACKOFF_BASE, THROTTLE_BACKOFF_MAX, Jitter::Equal).delay(attempt)
}

/// `Retry-After`: delay-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_MAX));
    }
    let at = httpdate(value)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(RETRY_AFTER_MAX),
    )
}

/// An IMF-fixdate; humantime (already a dependency) parses RFC 3339, not this format, so the
/// few lines are written here.
pub fn httpdate(value: &str) -> Option<SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = value.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: i64 = parts[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[1])? as i64
        + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<i64> = parts[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn throttling_is_recognized() {
        let mut h = HeaderMap::new();
        assert!(is_throttled(429, &h));
        assert!(!is_throttled(503, &h));
        h.insert(RETRY_AFTER, "1".parse().unwrap());
        assert!(is_throttled(503, &h));
        let mut aws = HeaderMap::new();
        aws.insert("x-amzn-errortype", "ThrottlingException".parse().unwrap());
        assert!(is_throttled(400, &aws));
        assert!(!is_throttled(400, &HeaderMap::new()));
    }
}
