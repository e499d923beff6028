//! Cursor pagination (§3.1): absolute `next`/`previous`, the walk, and skipped ties.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lightspeed_sync::sim::{SimConfig, TieBreak};

use crate::sim::helpers::{cfg, ids, records, start};

#[tokio::test]
async fn walk_by_customer_id_visits_every_active_customer_once() {
    let ctx = start(cfg(500)).await;
    let seen = ids(&ctx.walk(&ctx.url("Customer.json?limit=37")).await);
    let want: Vec<u64> = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .filter(|c| !c.archived)
        .map(|c| c.id)
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn next_is_absolute_with_every_parameter_plus_sort_limit_and_cursor() {
    let ctx = start(cfg(300)).await;
    let page = ctx
        .json(&ctx.url("Customer.json?archived=true&load_relations=%5B%22Contact%22%5D"))
        .await;
    let next = page["@attributes"]["next"].as_str().unwrap();
    let prefix = ctx.url("Customer.json?archived=true&load_relations=%5B%22Contact%22%5D&sort=customerID&limit=100&after=");
    assert!(next.starts_with(&prefix), "{next}");
    assert_eq!(page["@attributes"]["previous"], "");
    assert_eq!(
        next.rsplit("after=").next().unwrap(),
        "WzEwMF0%3D",
        "base64 of [100]"
    );
}

#[tokio::test]
async fn previous_leads_back_to_the_page_before() {
    let ctx = start(cfg(300)).await;
    let first = ctx
        .json(&ctx.url("Customer.json?limit=10&archived=true"))
        .await;
    let second = ctx
        .json(first["@attributes"]["next"].as_str().unwrap())
        .await;
    let back = ctx
        .json(second["@attributes"]["previous"].as_str().unwrap())
        .await;
    assert_eq!(ids(&records(&back)), ids(&records(&first)));
}

#[tokio::test]
async fn descending_sort_walks_backwards() {
    let ctx = start(cfg(120)).await;
    let seen = ids(&ctx
        .walk(&ctx.url("Customer.json?sort=-customerID&limit=25&archived=true"))
        .await);
    let want: Vec<u64> = (1..=120).rev().collect();
    assert_eq!(seen, want);
}

fn tie_cfg(tie_break: TieBreak) -> SimConfig {
    SimConfig {
        tie_break,
        shared_timestamp: 150,
        ..cfg(400)
    }
}

#[tokio::test]
async fn skip_mode_loses_records_sharing_the_boundary_timestamp() {
    let ctx = start(tie_cfg(TieBreak::Skip)).await;
    let seen = ctx
        .walk(&ctx.url("Customer.json?sort=timeStamp&archived=true"))
        .await;
    let lost = 400 - seen.len();
    assert!(
        lost > 0,
        "150 customers share a timeStamp across a page boundary, some must be skipped"
    );
    let mut unique = ids(&seen);
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
}

#[tokio::test]
async fn skip_mode_cursor_carries_only_the_timestamp() {
    let ctx = start(tie_cfg(TieBreak::Skip)).await;
    let page = ctx
        .json(&ctx.url("Customer.json?sort=timeStamp&limit=5"))
        .await;
    let next = page["@attributes"]["next"].as_str().unwrap();
    let cursor = url::form_urlencoded::parse(next.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "after")
        .unwrap()
        .1;
    let decoded: Vec<serde_json::Value> =
        serde_json::from_slice(&STANDARD.decode(cursor.as_bytes()).unwrap()).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0], records(&page).last().unwrap()["timeStamp"]);
}

#[tokio::test]
async fn by_id_mode_loses_nothing() {
    let ctx = start(tie_cfg(TieBreak::ById)).await;
    let mut seen = ids(&ctx
        .walk(&ctx.url("Customer.json?sort=timeStamp&archived=true"))
        .await);
    seen.sort_unstable();
    assert_eq!(seen, (1..=400).collect::<Vec<_>>());
}

#[tokio::test]
async fn descending_timestamp_walk_is_ordered() {
    let ctx = start(tie_cfg(TieBreak::ById)).await;
    let seen = ctx
        .walk(&ctx.url("Customer.json?sort=-timeStamp&archived=true&limit=50"))
        .await;
    assert_eq!(seen.len(), 400);
    let ts: Vec<&str> = seen
        .iter()
        .map(|r| r["timeStamp"].as_str().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]));
}

#[tokio::test]
async fn name_sorts_walk_in_order() {
    let ctx = start(SimConfig {
        tie_break: TieBreak::ById,
        ..cfg(200)
    })
    .await;
    let seen = ctx
        .walk(&ctx.url("Customer.json?sort=lastName&archived=true&limit=30"))
        .await;
    assert_eq!(seen.len(), 200);
    let names: Vec<&str> = seen
        .iter()
        .map(|r| r["lastName"].as_str().unwrap())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]));
}
