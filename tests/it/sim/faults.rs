//! Faults: injected one-shot ones and the random rate.

use std::time::Duration;

use lightspeed_sync::sim::{Fault, SimConfig};
use serde_json::Value;

use crate::sim::helpers::{cfg, start};

#[tokio::test]
async fn malformed_json_is_a_200_that_does_not_parse() {
    let ctx = start(cfg(20)).await;
    ctx.sim.inject(Fault::MalformedJson);
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    assert_eq!(
        ctx.get(&ctx.url("Customer.json")).await.status(),
        200,
        "one-shot"
    );
}

#[tokio::test]
async fn wrong_types_break_the_customer_id_and_timestamp() {
    let ctx = start(cfg(20)).await;
    ctx.sim.inject(Fault::WrongTypes);
    let v = ctx.json(&ctx.url("Customer.json")).await;
    assert_eq!(v["Customer"][0]["customerID"], "abc");
    assert_eq!(v["Customer"][0]["timeStamp"], "yesterday");
}

#[tokio::test]
async fn server_error_is_an_html_503() {
    let ctx = start(cfg(20)).await;
    ctx.sim.inject(Fault::ServerError);
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 503);
}

#[tokio::test]
async fn status_fault_is_an_html_page_with_that_status() {
    let ctx = start(cfg(20)).await;
    ctx.sim.inject(Fault::Status(502));
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn drop_aborts_the_body() {
    let ctx = start(cfg(20)).await;
    ctx.sim.inject(Fault::Drop);
    let r = ctx.get(&ctx.url("Customer.json")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body stream must fail");
    let fresh = crate::sim::helpers::client();
    let again = fresh
        .get(ctx.url("Customer.json"))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the next request is fine");
}

#[tokio::test(start_paused = true)]
async fn slow_delays_the_response() {
    let ctx = start(cfg(20)).await;
    ctx.sim.inject(Fault::Slow(Duration::from_secs(30)));
    let t = tokio::time::Instant::now();
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn fault_rate_one_fails_every_request_and_zero_none() {
    let ctx = start(SimConfig {
        fault_rate: 1.0,
        slow: Duration::from_millis(1),
        ..cfg(5)
    })
    .await;
    let mut bad = 0;
    for _ in 0..20 {
        match ctx
            .http
            .get(ctx.url("Customer.json"))
            .bearer_auth(&ctx.token)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => bad += usize::from(r.bytes().await.is_err()),
            _ => bad += 1,
        }
    }
    assert!(bad > 0);
    assert_eq!(ctx.sim.counters().faults, 20);
    ctx.sim.set_fault_rate(0.0);
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 200);
}
