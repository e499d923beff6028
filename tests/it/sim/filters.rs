//! Query parameters (§5): operators encoded and raw, `archived`, `count`, and the 400s.

use serde_json::Value;

use crate::sim::helpers::{Ctx, cfg, ids, start};

async fn ids_for(ctx: &Ctx, query: &str) -> Vec<u64> {
    ids(&ctx
        .walk(&ctx.url(&format!("Customer.json?archived=true&{query}")))
        .await)
}

#[tokio::test]
async fn customer_id_operators_raw_and_encoded() {
    let ctx = start(cfg(30)).await;
    let cases: &[(&str, &str, Vec<u64>)] = &[
        (">,25", "%3E%2C25", (26..=30).collect()),
        (">=,25", "%3E%3D%2C25", (25..=30).collect()),
        ("<,3", "%3C%2C3", vec![1, 2]),
        ("<=,3", "%3C%3D%2C3", vec![1, 2, 3]),
        ("=,7", "%3D%2C7", vec![7]),
        ("7", "7", vec![7]),
        ("!=,1", "!%3D%2C1", (2..=30).collect()),
        ("><,4,6", "%3E%3C%2C4%2C6", vec![4, 5, 6]),
        ("IN,[2,9,30]", "IN%2C%5B2%2C9%2C30%5D", vec![2, 9, 30]),
    ];
    for (raw, encoded, want) in cases {
        assert_eq!(
            &ids_for(&ctx, &format!("customerID={raw}")).await,
            want,
            "raw {raw}"
        );
        assert_eq!(
            &ids_for(&ctx, &format!("customerID={encoded}")).await,
            want,
            "encoded {encoded}"
        );
    }
}

fn ts_of(ctx: &Ctx, id: u64) -> chrono::DateTime<chrono::Utc> {
    ctx.sim
        .truth(ctx.account)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap()
        .updated
}

#[tokio::test]
async fn timestamp_filters_accept_every_documented_offset_form() {
    let ctx = start(cfg(200)).await;
    let t = ts_of(&ctx, 100);
    let want: Vec<u64> = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .filter(|c| c.updated >= t)
        .map(|c| c.id)
        .collect();
    let utc = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let minus4 = (t - chrono::Duration::hours(4))
        .format("%Y-%m-%dT%H:%M:%S-0400")
        .to_string();
    let forms = [
        format!(">=,{utc}-00:00"),
        format!("%3E%3D%2C{utc}-00%3A00"),
        format!(">=,{utc}%2B00:00"),
        format!(">=,{utc}+00:00"), // an unencoded + arrives as a space
        format!(">=,{minus4}"),
    ];
    for f in forms {
        assert_eq!(ids_for(&ctx, &format!("timeStamp={f}")).await, want, "{f}");
    }
}

#[tokio::test]
async fn timestamp_between_and_in() {
    let ctx = start(cfg(100)).await;
    let (a, b) = (ts_of(&ctx, 10), ts_of(&ctx, 20));
    let (lo, hi) = (a.min(b), a.max(b));
    let f = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S-00:00").to_string();
    let want: Vec<u64> = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .filter(|c| lo <= c.updated && c.updated <= hi)
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids_for(&ctx, &format!("timeStamp=><,{},{}", f(lo), f(hi))).await,
        want
    );
    let want_in: Vec<u64> = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .filter(|c| c.updated == a || c.updated == b)
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids_for(&ctx, &format!("timeStamp=IN,[\"{}\",\"{}\"]", f(a), f(b))).await,
        want_in
    );
}

#[tokio::test]
async fn archived_modes_select_active_both_or_archived_only() {
    let ctx = start(cfg(300)).await;
    let truth = ctx.sim.truth(ctx.account);
    let active: Vec<u64> = truth.iter().filter(|c| !c.archived).map(|c| c.id).collect();
    let archived: Vec<u64> = truth.iter().filter(|c| c.archived).map(|c| c.id).collect();
    assert!(!archived.is_empty(), "some customers start archived");
    assert_eq!(ids(&ctx.walk(&ctx.url("Customer.json")).await), active);
    assert_eq!(
        ids(&ctx.walk(&ctx.url("Customer.json?archived=false")).await),
        active
    );
    assert_eq!(
        ids(&ctx.walk(&ctx.url("Customer.json?archived=true")).await).len(),
        truth.len()
    );
    assert_eq!(
        ids(&ctx.walk(&ctx.url("Customer.json?archived=only")).await),
        archived
    );
}

#[tokio::test]
async fn count_returns_only_the_count() {
    let ctx = start(cfg(300)).await;
    let active = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .filter(|c| !c.archived)
        .count();
    let v = ctx.json(&ctx.url("Customer.json?count=1")).await;
    assert_eq!(
        v,
        serde_json::json!({"@attributes": {"count": active.to_string()}})
    );
}

async fn bad_request(ctx: &Ctx, query: &str) -> Value {
    let resp = ctx.get(&ctx.url(&format!("Customer.json?{query}"))).await;
    assert_eq!(resp.status(), 400, "{query}");
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["httpCode"], "400", "{query}");
    body
}

#[tokio::test]
async fn bad_sort_lists_the_allowed_fields() {
    let ctx = start(cfg(3)).await;
    let body = bad_request(&ctx, "sort=email").await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        ["customerID", "timeStamp", "firstName", "lastName"]
            .iter()
            .all(|f| msg.contains(f)),
        "{msg}"
    );
}

#[tokio::test]
async fn invalid_parameters_are_400() {
    let ctx = start(cfg(3)).await;
    let too_many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    for q in [
        "limit=101".to_string(),
        "limit=ten".into(),
        "timeStamp=>,yesterday".into(),
        "customerID=>,abc".into(),
        "count=1&limit=10".into(),
        "count=1&sort=timeStamp".into(),
        "load_relations=[\"Bogus\"]".into(),
        "archived=maybe".into(),
        "after=!!notbase64".into(),
        format!("customerID=IN,[{}]", too_many.join(",")),
    ] {
        bad_request(&ctx, &q).await;
    }
}
