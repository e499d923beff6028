//! The per-account pacer: learns the leaky bucket (size, level, drip rate, request cost) and the burst
//! limit from every response's headers (fact sheet §7) and, before each request, waits just long
//! enough that neither overflows. One `Pacer` is shared (`Arc`) by every request to an account.
//!
//! The model: the level drains at `drip` per second from the last level seen; in-flight requests are
//! counted at the expected cost; a request may go when `predicted + cost + MARGIN <= size`, which is
//! safe even for a server that rejects any request that would push the level over the size. The burst
//! limiter counts requests in fixed 1-second windows we cannot see, so at most `limit − 1` requests go
//! in any sliding window of `1 s + BURST_SLACK`. Before the first response tells us the bucket, only
//! one request is in flight. Time is `tokio::time`, so tests can pause it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Level kept free below the bucket size, in drips (costs `MARGIN / drip` seconds once per run).
pub const MARGIN: f64 = 0.5;
/// The burst limit assumed until a response states it.
pub const DEFAULT_BURST_LIMIT: u32 = 10;
/// Added to the 1-second burst window, against latency jitter between us and the server's clock.
pub const BURST_SLACK: Duration = Duration::from_millis(100);
/// How long a waiter sleeps at most before checking again when it waits for a response.
const RECHECK: Duration = Duration::from_secs(1);

/// The bucket as last reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Level reported (after the reporting request's cost).
    pub level: f64,
    /// Bucket size.
    pub size: f64,
    /// Drips per second.
    pub drip: f64,
    /// When the level was seen.
    pub at: Instant,
}

impl Bucket {
    /// The level drained to `now`.
    pub fn level_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.level - self.drip * elapsed).max(0.0)
    }
}

/// What a request must do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Send now.
    Go,
    /// Wait this long, then ask again.
    Wait(Duration),
    /// Wait until an in-flight request answers (nothing is known yet, or in-flight cost fills the bucket).
    UntilResponse,
}

/// The pacer's knowledge; pure arithmetic, no clock of its own.
#[derive(Debug)]
pub struct PacerState {
    /// The bucket, once a response has reported it.
    pub bucket: Option<Bucket>,
    /// Expected cost of the next request (`X-LS-API-Request-Cost` of the last response, else 1).
    pub cost: f64,
    /// Requests allowed per 1-second window (`X-LS-API-Burst-Level` denominator); 0 when the
    /// server reports its bucket without a burst level (no burst limiter).
    pub burst_limit: u32,
    /// Send times inside the current burst window.
    pub sent: VecDeque<Instant>,
    /// Requests sent and not yet answered.
    pub in_flight: u32,
    /// No request before this (after a 429).
    pub not_before: Option<Instant>,
}

impl Default for PacerState {
    fn default() -> Self {
        PacerState {
            bucket: None,
            cost: 1.0,
            burst_limit: DEFAULT_BURST_LIMIT,
            sent: VecDeque::new(),
            in_flight: 0,
            not_before: None,
        }
    }
}

impl PacerState {
    /// May a request go at `now`? (Prunes old send times.)
    pub fn decide(&mut self, now: Instant) -> Decision {
        let mut wait = self
            .not_before
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let window = Duration::from_secs(1) + BURST_SLACK;
        while self
            .sent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.sent.pop_front();
        }
        let per_window = self.burst_limit.saturating_sub(1).max(1) as usize;
        if self.burst_limit > 0 && self.sent.len() >= per_window {
            let oldest = self.sent[self.sent.len() - per_window];
            wait = wait.max((oldest + window).saturating_duration_since(now));
        }
        match self.bucket {
            None if self.in_flight > 0 => return Decision::UntilResponse,
            None => {}
            Some(b) => {
                let allowed = (b.size - self.cost - MARGIN).max(0.0);
                let reserved = f64::from(self.in_flight) * self.cost;
                if reserved > allowed {
                    return Decision::UntilResponse;
                }
                let excess = b.level_at(now) + reserved - allowed;
                if excess > 1e-9 {
                    wait = wait.max(Duration::from_secs_f64(excess / b.drip.max(0.01)));
                }
            }
        }
        if wait.is_zero() {
            Decision::Go
        } else {
            Decision::Wait(wait)
        }
    }

    /// Record that a request goes at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.in_flight += 1;
        self.sent.push_back(now);
    }

    /// Learn from a response's headers received at `now`.
    pub fn observe(&mut self, headers: &HeaderMap, now: Instant) {
        if let Some(cost) =
            header_f64(headers, "x-ls-api-request-cost").filter(|c| (0.0..1e6).contains(c))
        {
            self.cost = cost;
        }
        let burst = header_pair(headers, "x-ls-api-burst-level").filter(|(_, l)| *l >= 1.0);
        if let Some((_, limit)) = burst {
            self.burst_limit = limit as u32;
        } else if header_pair(headers, "x-ls-api-bucket-level").is_some() {
            // The server reports its bucket but no burst level: it has no burst limiter.
            self.burst_limit = 0;
        }
        let drip = header_f64(headers, "x-ls-api-drip-rate").filter(|d| *d > 0.0);
        if let Some((level, size)) =
            header_pair(headers, "x-ls-api-bucket-level").filter(|(_, s)| *s > 0.0)
        {
            let drip = drip.or(self.bucket.map(|b| b.drip)).unwrap_or(1.0);
            self.bucket = Some(Bucket {
                level: level.max(0.0),
                size,
                drip,
                at: now,
            });
        } else if let (Some(drip), Some(b)) = (drip, self.bucket.as_mut()) {
            b.drip = drip;
        }
    }

    /// A 429 at `now`: nothing before `retry_after`; without one, 1 s for the burst limiter (as the
    /// docs say) or when the bucket is unknown. A leaky-bucket 429 also means the bucket is full now.
    pub fn throttled(&mut self, burst: bool, retry_after: Option<Duration>, now: Instant) {
        let fallback = (burst || self.bucket.is_none()).then_some(Duration::from_secs(1));
        if let Some(pause) = retry_after.or(fallback) {
            let until = now + pause;
            self.not_before = Some(self.not_before.map_or(until, |t| t.max(until)));
        }
        if let Some(b) = self.bucket.as_mut().filter(|_| !burst) {
            b.level = b.level_at(now).max(b.size);
            b.at = now;
        }
    }
}

/// Read `a/b` (`37.46/90`) from a header, case-insensitively.
fn header_pair(headers: &HeaderMap, name: &str) -> Option<(f64, f64)> {
    let text = headers.get(name)?.to_str().ok()?;
    let (a, b) = text.split_once('/')?;
    let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
    (a.is_finite() && b.is_finite()).then_some((a, b))
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// The shared pacer of one account.
#[derive(Debug, Default)]
pub struct Pacer {
    // A std mutex: it is never held across an await, and the critical sections are arithmetic.
    state: Mutex<PacerState>,
    changed: Notify,
}

/// A request's place in the pacer: call [`Slot::finish`] with the response headers; dropping it
/// unfinished (error, cancellation) releases the in-flight reservation.
#[derive(Debug)]
pub struct Slot<'a> {
    pacer: &'a Pacer,
    waited: Duration,
    open: bool,
}

impl Pacer {
    /// A pacer that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, PacerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wait until a request may go, and reserve its place.
    pub async fn acquire(&self) -> Slot<'_> {
        let start = Instant::now();
        let mut slept = false;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decision = {
                let mut state = self.lock();
                let now = Instant::now();
                let d = state.decide(now);
                if d == Decision::Go {
                    state.sent(now);
                }
                d
            };
            let pause = match decision {
                Decision::Go => {
                    let waited = if slept {
                        start.elapsed()
                    } else {
                        Duration::ZERO
                    };
                    return Slot {
                        pacer: self,
                        waited,
                        open: true,
                    };
                }
                Decision::Wait(d) => d,
                Decision::UntilResponse => RECHECK,
            };
            slept = true;
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = &mut notified => {}
            }
        }
    }

    /// A 429 was received (see [`PacerState::throttled`]).
    pub fn throttled(&self, burst: bool, retry_after: Option<Duration>) {
        self.lock().throttled(burst, retry_after, Instant::now());
        self.changed.notify_waiters();
    }

    /// The request about to be sent costs `cost` drips (computed from its URL): pace it at that
    /// until a response reports its own `X-LS-API-Request-Cost`.
    pub fn expect_cost(&self, cost: f64) {
        if cost.is_finite() && cost > 0.0 {
            self.lock().cost = cost;
        }
    }

    /// The expected cost of the next request (`X-LS-API-Request-Cost` of the last response, else 1).
    pub fn cost(&self) -> f64 {
        self.lock().cost
    }

    /// A copy of the current bucket, for logs and tests.
    pub fn bucket(&self) -> Option<Bucket> {
        self.lock().bucket
    }
}

impl Slot<'_> {
    /// Time spent waiting for this slot.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The response arrived: learn from its headers and release the reservation.
    pub fn finish(mut self, headers: &HeaderMap) {
        let mut state = self.pacer.lock();
        state.observe(headers, Instant::now());
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.open = false;
        self.pacer.changed.notify_waiters();
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.open {
            let mut state = self.pacer.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            drop(state);
            self.pacer.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
#[path = "pacing_tests.rs"]
mod tests;
