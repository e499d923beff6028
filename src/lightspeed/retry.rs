//! What to do with a response: classification by status (and, for one documented `400`, by body),
//! `Retry-After` parsing (capped; for the API and the auth server alike), and capped exponential
//! backoff with full jitter (fact sheet §7, §8).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// The class of a finished HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: use the body.
    Success,
    /// 401: refresh the token once and retry.
    Unauthorized,
    /// 429: wait (`Retry-After`) and retry; does not count as an attempt.
    Throttled,
    /// 5xx, or `400 … Please try again later.`: back off and retry.
    Transient,
    /// Any other status: give up with the status.
    Fatal,
}

/// Classify a status; `body` matters only for the `400` that asks to try again later.
pub fn classify(status: StatusCode, body: &[u8]) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Success,
        401 => Verdict::Unauthorized,
        429 => Verdict::Throttled,
        400 if contains(body, b"Please try again later") => Verdict::Transient,
        500..=599 => Verdict::Transient,
        _ => Verdict::Fatal,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The longest `Retry-After` honoured; a longer one is waited for this long (and logged).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// `Retry-After` of a response (API or auth server): delta-seconds (fractions accepted) or an HTTP
/// date, capped at [`MAX_RETRY_AFTER`] with a warning; absent or garbage gives `None`. The one place
/// every `Retry-After` is read.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let wait = parse_retry_after(text, chrono::Utc::now())?;
    if wait > MAX_RETRY_AFTER {
        tracing::warn!(
            retry_after = text.trim(),
            cap = ?MAX_RETRY_AFTER,
            "the server asked to wait longer than the cap; waiting {:?} instead",
            MAX_RETRY_AFTER
        );
        return Some(MAX_RETRY_AFTER);
    }
    Some(wait)
}

/// Parse a `Retry-After` value at `now`, uncapped (but never panicking: huge values saturate, a date
/// in the past is zero). `None` for anything that is neither a non-negative number nor a date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// `X-LS-API-RateLimit-Type` of a 429 (`api-leaky-bucket`, `api-burst-limiter`), lower-cased.
pub fn rate_limit_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("x-ls-api-ratelimit-type")?.to_str().ok()?;
    Some(v.trim().to_ascii_lowercase())
}

/// Capped exponential backoff with full jitter: a random delay in `[0, min(cap, base·2^(n-1))]`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// The largest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The ceiling before the `retry`-th retry (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the `retry`-th retry (1-based), jittered.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses() {
        assert_eq!(classify(StatusCode::OK, b""), Verdict::Success);
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, b"{}"),
            Verdict::Unauthorized
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, b""),
            Verdict::Throttled
        );
        assert_eq!(
            classify(StatusCode::BAD_GATEWAY, b"<html>"),
            Verdict::Transient
        );
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b""),
            Verdict::Transient
        );
        assert_eq!(
            classify(StatusCode::GATEWAY_TIMEOUT, b""),
            Verdict::Transient
        );
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, b""),
            Verdict::Transient
        );
        let later =
            br#"{"httpCode":"400","message":"Something went wrong. Please try again later."}"#;
        assert_eq!(classify(StatusCode::BAD_REQUEST, later), Verdict::Transient);
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, b"{\"message\":\"bad sort\"}"),
            Verdict::Fatal
        );
        assert_eq!(classify(StatusCode::FORBIDDEN, b""), Verdict::Fatal);
        assert_eq!(classify(StatusCode::NOT_FOUND, b""), Verdict::Fatal);
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("Retry-After", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        h.insert(
            "X-LS-API-RateLimit-Type",
            HeaderValue::from_static("api-burst-limiter"),
        );
        assert_eq!(rate_limit_type(&h).as_deref(), Some("api-burst-limiter"));
    }

    #[test]
    fn huge_retry_after_is_capped_not_a_panic() {
        let mut h = HeaderMap::new();
        for huge in ["1e20", "1e400", "inf", "99999999999999999999999"] {
            h.insert("retry-after", HeaderValue::from_str(huge).unwrap());
            assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for garbage in ["-1", "NaN", "", "1e20 seconds"] {
            h.insert("retry-after", HeaderValue::from_str(garbage).unwrap());
            assert_eq!(retry_after(&h), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(date, now), Some(Duration::from_secs(30)));
        let later = now + chrono::Duration::hours(1);
        assert_eq!(parse_retry_after(date, later), Some(Duration::ZERO));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Fri, 01 Jan 2100 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(500));
        assert_eq!(b.ceiling(3), Duration::from_secs(2));
        assert_eq!(b.ceiling(50), Duration::from_secs(30));
        for n in 1..10 {
            assert!(b.delay(n) <= b.ceiling(n));
        }
    }
}
