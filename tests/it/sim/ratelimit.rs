//! Rate limits (§7.1): headers on every response, the leaky bucket, the burst limiter.

use std::time::Duration;

use lightspeed_sync::sim::SimConfig;

use crate::sim::helpers::{Ctx, cfg, start};

fn limited(bucket_size: f64, burst_limit: u32) -> SimConfig {
    SimConfig {
        rate_limits: true,
        bucket_size,
        burst_limit,
        ..cfg(50)
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_response_carries_the_rate_headers() {
    let ctx = start(limited(90.0, 20)).await;
    let r = ctx
        .get(&ctx.url("Customer.json?load_relations=[\"Contact\"]"))
        .await;
    assert_eq!(header(&r, "x-ls-api-bucket-level"), "1.2/90");
    assert_eq!(header(&r, "x-ls-api-burst-level"), "1/20");
    assert_eq!(header(&r, "x-ls-api-drip-rate"), "1");
    assert_eq!(header(&r, "x-ls-api-request-cost"), "1.2");
    assert_eq!(header(&r, "x-ls-acct-id"), ctx.account.to_string());
    assert_eq!(header(&r, "x-ls-oauth-client-id"), ctx.sim.client_id());
    assert!(header(&r, "cf-ray").ends_with("-YUL"));
    let bad = ctx.get(&ctx.url("Customer.json?sort=nope")).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(header(&bad, "x-ls-api-bucket-level"), "2.2/90");
}

#[tokio::test(start_paused = true)]
async fn single_record_contact_costs_a_tenth_and_count_costs_ten() {
    let ctx = start(limited(90.0, 0)).await;
    let one = ctx
        .get(&ctx.url("Customer/1.json?load_relations=[\"Contact\"]"))
        .await;
    assert_eq!(header(&one, "x-ls-api-request-cost"), "1.1");
    let count = ctx.get(&ctx.url("Customer.json?count=1")).await;
    assert_eq!(header(&count, "x-ls-api-request-cost"), "10");
    assert!((ctx.sim.counters().drip_charged - 11.1).abs() < 1e-9);
}

async fn burn(ctx: &Ctx, n: usize) {
    for _ in 0..n {
        assert_eq!(
            ctx.get(&ctx.url("Customer.json?limit=1")).await.status(),
            200
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bucket_overflow_serves_the_overflowing_request_then_429s() {
    let ctx = start(limited(5.0, 0)).await;
    burn(&ctx, 6).await; // the 6th pushes the level to 6 > 5 and is still served
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-ls-api-ratelimit-type"), "api-leaky-bucket");
    assert_eq!(header(&r, "retry-after"), "1");
    assert_eq!(
        header(&r, "x-ls-api-bucket-level"),
        "6/5",
        "a refused request costs nothing"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 200);
    assert_eq!(ctx.sim.counters().throttled_bucket, 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_rounds_the_wait_up() {
    let ctx = start(SimConfig {
        drip_rate: 0.4,
        ..limited(2.0, 0)
    })
    .await;
    burn(&ctx, 2).await;
    assert_eq!(
        ctx.get(&ctx.url("Customer.json?count=1")).await.status(),
        200
    ); // level 12
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(header(&r, "retry-after"), "25", "(12 - 2) / 0.4 = 25 s");
}

#[tokio::test(start_paused = true)]
async fn burst_limiter_refuses_within_the_second_and_recovers_after() {
    let ctx = start(limited(90.0, 3)).await;
    burn(&ctx, 3).await;
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-ls-api-ratelimit-type"), "api-burst-limiter");
    assert_eq!(header(&r, "retry-after"), "1");
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("burst rate limit exceeded")
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 200);
    assert_eq!(ctx.sim.counters().throttled_burst, 1);
}

#[tokio::test(start_paused = true)]
async fn bucket_drips_at_the_configured_rate() {
    let ctx = start(limited(90.0, 0)).await;
    burn(&ctx, 10).await;
    tokio::time::advance(Duration::from_millis(2_500)).await;
    let b = ctx.sim.bucket(ctx.account);
    assert!((b.level - 7.5).abs() < 1e-9, "{b:?}");
    assert_eq!((b.size, b.drip_rate), (90.0, 1.0));
}

#[tokio::test(start_paused = true)]
async fn limits_off_never_throttle() {
    let ctx = start(cfg(5)).await;
    burn(&ctx, 200).await;
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(header(&r, "x-ls-api-bucket-level"), "0/90");
}

/// The raw response head of one GET on a fresh connection.
async fn raw_head(ctx: &Ctx) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(ctx.sim.local_addr())
        .await
        .unwrap();
    let path = format!("/API/V3/Account/{}/Customer.json?limit=1", ctx.account);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        ctx.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split("\r\n\r\n").next().unwrap().to_string()
}

#[tokio::test]
async fn header_name_case_varies_between_connections() {
    let ctx = start(limited(90.0, 20)).await;
    let heads = [raw_head(&ctx).await, raw_head(&ctx).await];
    assert!(
        heads
            .iter()
            .any(|h| h.contains("\r\nx-ls-api-bucket-level: ")),
        "{heads:?}"
    );
    assert!(
        heads
            .iter()
            .any(|h| h.contains("\r\nX-Ls-Api-Bucket-Level: ")),
        "{heads:?}"
    );
}
