//! Rate limits of the 2026 model (§7.1): a leaky bucket per account (one OAuth client, so per
//! account-and-client) and a burst limiter counting requests in fixed one-second windows.
//!
//! The request that first pushes the bucket over its size is still served; later ones get 429
//! until the level is back at or below the size. Rejected requests cost nothing. The clock is
//! `tokio::time::Instant`, so tests drive it with paused time.

use std::collections::HashMap;

use tokio::time::Instant;

/// Which limiter refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    Bucket,
    Burst,
}

impl LimitKind {
    /// The `X-LS-API-RateLimit-Type` value.
    pub(crate) fn header(self) -> &'static str {
        match self {
            LimitKind::Bucket => "api-leaky-bucket",
            LimitKind::Burst => "api-burst-limiter",
        }
    }
}

/// A refusal: which limiter, and the whole seconds to wait (`Retry-After`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Throttle {
    pub kind: LimitKind,
    pub retry_after: u64,
}

/// The bucket and burst state as the response headers show it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Levels {
    pub level: f64,
    pub size: f64,
    pub drip: f64,
    pub burst: u32,
    pub burst_limit: u32,
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    last: Instant,
    window: u64,
    in_window: u32,
}

/// The limiters of every account.
pub(crate) struct Limits {
    pub enabled: bool,
    pub size: f64,
    pub drip: f64,
    pub burst_limit: u32,
    epoch: Instant,
    buckets: HashMap<u64, Bucket>,
}

impl Limits {
    /// Limiters with the given parameters (`enabled == false` admits and charges nothing).
    pub(crate) fn new(enabled: bool, size: f64, drip: f64, burst_limit: u32) -> Self {
        Limits {
            enabled,
            size,
            drip,
            // With limits off there is no burst limiter, so no burst header either.
            burst_limit: if enabled { burst_limit } else { 0 },
            epoch: Instant::now(),
            buckets: HashMap::new(),
        }
    }

    fn bucket(&mut self, account: u64, now: Instant) -> &mut Bucket {
        let (drip, epoch) = (self.drip, self.epoch);
        let b = self.buckets.entry(account).or_insert(Bucket {
            level: 0.0,
            last: now,
            window: 0,
            in_window: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.level = (b.level - elapsed * drip).max(0.0);
        b.last = now;
        let window = now.saturating_duration_since(epoch).as_secs();
        if window != b.window {
            b.window = window;
            b.in_window = 0;
        }
        b
    }

    /// Admit a request (counting it against the burst window) or refuse it.
    pub(crate) fn admit(&mut self, account: u64, now: Instant) -> Result<(), Throttle> {
        if !self.enabled {
            return Ok(());
        }
        let (size, drip, burst_limit) = (self.size, self.drip, self.burst_limit);
        let b = self.bucket(account, now);
        if burst_limit > 0 && b.in_window >= burst_limit {
            return Err(Throttle {
                kind: LimitKind::Burst,
                retry_after: 1,
            });
        }
        if b.level > size {
            let wait = ((b.level - size) / drip).ceil().max(1.0);
            return Err(Throttle {
                kind: LimitKind::Bucket,
                retry_after: wait as u64,
            });
        }
        b.in_window += 1;
        Ok(())
    }

    /// Add `cost` drips to the account's bucket.
    pub(crate) fn charge(&mut self, account: u64, cost: f64, now: Instant) {
        if self.enabled {
            self.bucket(account, now).level += cost;
        }
    }

    /// The current levels of an account.
    pub(crate) fn levels(&mut self, account: u64, now: Instant) -> Levels {
        let (size, drip, burst_limit) = (self.size, self.drip, self.burst_limit);
        let b = *self.bucket(account, now);
        Levels {
            level: b.level,
            size,
            drip,
            burst: b.in_window,
            burst_limit,
        }
    }
}

/// A number as the headers show it: `1`, `37.460243701934`, `1.2`.
pub(crate) fn num(x: f64) -> String {
    let s = format!("{x:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_api() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(90.0), "90");
        assert_eq!(num(1.2), "1.2");
        assert_eq!(num(0.0), "0");
    }

    #[tokio::test(start_paused = true)]
    async fn overflowing_request_is_served_then_refused() {
        let mut l = Limits::new(true, 3.0, 1.0, 0);
        let now = Instant::now();
        for _ in 0..4 {
            l.admit(1, now).unwrap();
            l.charge(1, 1.0, now);
        }
        let t = l.admit(1, now).unwrap_err();
        assert_eq!((t.kind, t.retry_after), (LimitKind::Bucket, 1));
    }
}
