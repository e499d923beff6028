//! Pacer arithmetic, and a walk against a model server (strict leaky bucket + fixed 1-second burst
//! windows at an unknown phase) that must see zero 429s and finish within 3 % of the minimum.

use reqwest::header::{HeaderMap, HeaderValue};

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test(start_paused = true)]
async fn nothing_known_means_one_in_flight() {
    let t0 = Instant::now();
    let mut s = PacerState::default();
    assert_eq!(s.decide(t0), Decision::Go);
    s.sent(t0);
    assert_eq!(s.decide(t0), Decision::UntilResponse);
}

#[tokio::test(start_paused = true)]
async fn reads_headers_in_any_case_and_fractions() {
    let t0 = Instant::now();
    let mut s = PacerState::default();
    let h = headers(&[
        ("X-Ls-Api-Bucket-Level", "37.460243701934/90"),
        ("x-ls-api-drip-rate", "10"),
        ("X-LS-API-Request-Cost", "1.2"),
        ("X-LS-API-BURST-LEVEL", "18/20"),
    ]);
    s.observe(&h, t0);
    let b = s.bucket.unwrap();
    assert!((b.level - 37.460243701934).abs() < 1e-9 && b.size == 90.0 && b.drip == 10.0);
    assert_eq!((s.cost, s.burst_limit), (1.2, 20));
    assert!((b.level_at(t0 + secs(1.0)) - 27.460243701934).abs() < 1e-9);
    assert_eq!(b.level_at(t0 + secs(100.0)), 0.0);
}

#[tokio::test(start_paused = true)]
async fn waits_just_long_enough_for_the_bucket() {
    let t0 = Instant::now();
    let mut s = PacerState::default();
    s.observe(
        &headers(&[
            ("x-ls-api-bucket-level", "88.3/90"),
            ("x-ls-api-drip-rate", "10"),
            ("x-ls-api-request-cost", "1.2"),
        ]),
        t0,
    );
    assert_eq!(s.decide(t0), Decision::Go, "88.3 + 1.2 + 0.5 = 90");
    s.observe(&headers(&[("x-ls-api-bucket-level", "89.5/90")]), t0);
    let Decision::Wait(w) = s.decide(t0) else {
        panic!("must wait")
    };
    assert!((w.as_secs_f64() - 0.12).abs() < 1e-6, "{w:?}");
    assert_eq!(s.decide(t0 + w), Decision::Go);
    // A request in flight counts at the expected cost.
    s.sent(t0 + w);
    assert!(matches!(s.decide(t0 + w), Decision::Wait(_)));
}

#[tokio::test(start_paused = true)]
async fn a_dearer_request_is_paced_at_its_computed_cost() {
    // The last response (a plain GET) reported cost 1 and the bucket at 8/10, drip 1/s.
    let pacer = Pacer::new();
    let h = headers(&[
        ("x-ls-api-bucket-level", "8/10"),
        ("x-ls-api-drip-rate", "1"),
        ("x-ls-api-request-cost", "1"),
    ]);
    pacer.lock().observe(&h, Instant::now());
    pacer.lock().burst_limit = 0;
    let now = Instant::now();
    // At cost 1 it may go now (8 + 1 + 0.5 <= 10) ...
    assert_eq!(pacer.lock().decide(now), Decision::Go);
    // ... but a page with every relation costs 2.6: it waits until 8 − t + 2.6 + 0.5 <= 10.
    pacer.expect_cost(2.6);
    match pacer.lock().decide(now) {
        Decision::Wait(d) => assert!((d.as_secs_f64() - 1.1).abs() < 1e-6, "{d:?}"),
        other => panic!("{other:?}"),
    }
    pacer.expect_cost(f64::NAN);
    assert_eq!(pacer.cost(), 2.6, "a bad computed cost is ignored");
}

#[tokio::test(start_paused = true)]
async fn burst_window_is_respected() {
    let t0 = Instant::now();
    let mut s = PacerState::default();
    s.observe(
        &headers(&[
            ("x-ls-api-bucket-level", "0/1000"),
            ("x-ls-api-drip-rate", "100"),
            ("x-ls-api-burst-level", "1/20"),
        ]),
        t0,
    );
    for i in 0..19 {
        let t = t0 + Duration::from_millis(i);
        assert_eq!(s.decide(t), Decision::Go, "request {i}");
        s.sent(t);
        s.in_flight = 0;
    }
    let Decision::Wait(w) = s.decide(t0 + Duration::from_millis(19)) else {
        panic!("burst must wait")
    };
    assert_eq!(
        t0 + Duration::from_millis(19) + w,
        t0 + Duration::from_secs(1) + BURST_SLACK
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_pauses() {
    let t0 = Instant::now();
    let mut s = PacerState::default();
    s.observe(
        &headers(&[
            ("x-ls-api-bucket-level", "10/90"),
            ("x-ls-api-drip-rate", "1"),
        ]),
        t0,
    );
    s.throttled(true, None, t0);
    assert_eq!(s.decide(t0), Decision::Wait(secs(1.0)));
    s.throttled(false, Some(secs(3.0)), t0);
    assert_eq!(
        s.bucket.unwrap().level,
        90.0,
        "a leaky-bucket 429 means the bucket is full"
    );
    assert_eq!(s.decide(t0), Decision::Wait(secs(3.0)));
    assert_eq!(
        s.decide(t0 + secs(3.0)),
        Decision::Go,
        "90 - 3 + 1 + 0.5 <= 90"
    );
}

/// A strict model server: rejects a request that would push the level over the size, or one more
/// than `burst` in a fixed 1-second window starting at `phase`.
struct ModelServer {
    size: f64,
    drip: f64,
    cost: f64,
    burst: u32,
    phase: f64,
    level: f64,
    at: f64,
    window: (i64, u32),
    rejected: u32,
}

impl ModelServer {
    fn handle(&mut self, t: f64) -> HeaderMap {
        self.level = (self.level - self.drip * (t - self.at)).max(0.0);
        self.at = t;
        let w = (t + self.phase).floor() as i64;
        if self.window.0 != w {
            self.window = (w, 0);
        }
        self.window.1 += 1;
        if self.window.1 > self.burst || self.level + self.cost > self.size {
            self.rejected += 1;
        } else {
            self.level += self.cost;
        }
        let level = format!("{}/{}", self.level, self.size);
        let burst = format!("{}/{}", self.window.1, self.burst);
        let (drip, cost) = (self.drip.to_string(), self.cost.to_string());
        headers(&[
            ("x-ls-api-bucket-level", &level),
            ("x-ls-api-drip-rate", &drip),
            ("x-ls-api-request-cost", &cost),
            ("x-ls-api-burst-level", &burst),
        ])
    }
}

/// 300 pages of 100 customers (cost 1.2 with Contact), bucket 90, drip 10/s, burst 20/s, 5 ms each way.
#[tokio::test(start_paused = true)]
async fn walk_of_30000_customers_is_near_the_minimum_without_429() {
    for phase in [0.0, 0.3, 0.77] {
        let mut server = ModelServer {
            size: 90.0,
            drip: 10.0,
            cost: 1.2,
            burst: 20,
            phase,
            level: 0.0,
            at: 0.0,
            window: (-1, 0),
            rejected: 0,
        };
        let t0 = Instant::now();
        let mut s = PacerState::default();
        let mut now = 0.0_f64;
        let latency = 0.005;
        for _ in 0..300 {
            loop {
                match s.decide(t0 + secs(now)) {
                    Decision::Go => break,
                    Decision::Wait(w) => now += w.as_secs_f64(),
                    Decision::UntilResponse => unreachable!("sequential"),
                }
            }
            s.sent(t0 + secs(now));
            let h = server.handle(now + latency);
            now += 2.0 * latency;
            s.observe(&h, t0 + secs(now));
            s.in_flight -= 1;
        }
        let minimum = (300.0 * 1.2 - 90.0) / 10.0;
        assert_eq!(server.rejected, 0, "phase {phase}");
        assert!(
            now <= minimum * 1.03,
            "phase {phase}: {now:.2}s vs minimum {minimum:.2}s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn slots_are_released_when_dropped_and_waits_are_measured() {
    let pacer = Pacer::new();
    let first = pacer.acquire().await;
    assert_eq!(first.waited(), Duration::ZERO);
    drop(first);
    let second = pacer.acquire().await;
    second.finish(&headers(&[
        ("x-ls-api-bucket-level", "89.9/90"),
        ("x-ls-api-drip-rate", "1"),
    ]));
    let third = pacer.acquire().await;
    assert!(
        (third.waited().as_secs_f64() - 1.4).abs() < 0.01,
        "{:?}",
        third.waited()
    );
}
