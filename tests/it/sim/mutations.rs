//! Mutations change what later reads return, each kind as the fact sheet describes.

use std::time::Duration;

use lightspeed_sync::sim::{Mutation, SimConfig};
use serde_json::Value;

use crate::sim::helpers::{Ctx, cfg, ids, start};

async fn customer(ctx: &Ctx, id: u64) -> Value {
    ctx.json(&ctx.url(&format!("Customer/{id}.json?load_relations=[\"Contact\"]")))
        .await["Customer"]
        .clone()
}

fn first_active(ctx: &Ctx) -> u64 {
    ctx.sim
        .truth(ctx.account)
        .iter()
        .find(|c| !c.archived)
        .unwrap()
        .id
}

#[tokio::test]
async fn update_renames_and_bumps_the_timestamp() {
    let ctx = start(cfg(20)).await;
    let id = first_active(&ctx);
    let before = customer(&ctx, id).await;
    let changed = ctx.sim.mutate(ctx.account, Mutation::Update(id)).unwrap();
    let after = customer(&ctx, id).await;
    assert_ne!(after["lastName"], before["lastName"]);
    assert!(after["timeStamp"].as_str() > before["timeStamp"].as_str());
    assert_eq!(changed.ids, vec![id]);
}

#[tokio::test]
async fn create_adds_the_next_id() {
    let ctx = start(cfg(20)).await;
    let changed = ctx.sim.mutate(ctx.account, Mutation::Create).unwrap();
    assert_eq!(changed.ids, vec![21]);
    let c = customer(&ctx, 21).await;
    assert_eq!(c["createTime"], c["timeStamp"]);
    assert!(ids(&ctx.walk(&ctx.url("Customer.json")).await).contains(&21));
}

#[tokio::test]
async fn archive_hides_the_customer_from_the_default_query() {
    let ctx = start(cfg(20)).await;
    let id = first_active(&ctx);
    ctx.sim.mutate(ctx.account, Mutation::Archive(id)).unwrap();
    assert!(!ids(&ctx.walk(&ctx.url("Customer.json")).await).contains(&id));
    assert!(ids(&ctx.walk(&ctx.url("Customer.json?archived=only")).await).contains(&id));
    assert_eq!(customer(&ctx, id).await["archived"], "true");
}

#[tokio::test]
async fn anonymize_archives_and_scrubs() {
    let ctx = start(cfg(20)).await;
    let id = first_active(&ctx);
    ctx.sim
        .mutate(ctx.account, Mutation::Anonymize(id))
        .unwrap();
    let c = customer(&ctx, id).await;
    assert_eq!(
        (c["archived"].as_str(), c["firstName"].as_str()),
        (Some("true"), Some("Customer"))
    );
    assert_eq!(c["lastName"], format!("[{id}]"));
    assert_eq!(c["Contact"]["Emails"], "");
}

#[tokio::test]
async fn contact_edit_without_bump_leaves_the_customer_timestamp() {
    let ctx = start(cfg(20)).await;
    let id = first_active(&ctx);
    let before = customer(&ctx, id).await;
    ctx.sim
        .mutate(
            ctx.account,
            Mutation::ContactEdit {
                id,
                bump_timestamp: false,
            },
        )
        .unwrap();
    let after = customer(&ctx, id).await;
    assert_eq!(after["timeStamp"], before["timeStamp"]);
    assert_ne!(
        after["Contact"]["timeStamp"],
        before["Contact"]["timeStamp"]
    );
    assert_ne!(after["Contact"], before["Contact"]);
}

#[tokio::test]
async fn contact_edit_with_bump_moves_both_timestamps() {
    let ctx = start(cfg(20)).await;
    let id = first_active(&ctx);
    let before = customer(&ctx, id).await;
    let changed = ctx
        .sim
        .mutate(
            ctx.account,
            Mutation::ContactEdit {
                id,
                bump_timestamp: true,
            },
        )
        .unwrap();
    let after = customer(&ctx, id).await;
    assert_ne!(after["timeStamp"], before["timeStamp"]);
    assert_eq!(after["timeStamp"], after["Contact"]["timeStamp"]);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(after["timeStamp"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        changed.time_stamp
    );
}

#[tokio::test]
async fn hard_delete_makes_the_customer_vanish() {
    let ctx = start(cfg(20)).await;
    ctx.sim
        .mutate(ctx.account, Mutation::HardDelete(5))
        .unwrap();
    assert_eq!(ctx.get(&ctx.url("Customer/5.json")).await.status(), 404);
    assert!(!ids(&ctx.walk(&ctx.url("Customer.json?archived=true")).await).contains(&5));
    assert!(ctx.sim.truth(ctx.account).iter().all(|c| c.id != 5));
    assert!(
        ctx.sim
            .mutate(ctx.account, Mutation::HardDelete(5))
            .is_err()
    );
}

#[tokio::test]
async fn touch_many_gives_one_identical_timestamp() {
    let ctx = start(cfg(300)).await;
    let changed = ctx
        .sim
        .mutate(ctx.account, Mutation::TouchMany { count: 130 })
        .unwrap();
    assert_eq!(changed.ids.len(), 130);
    let same = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .filter(|c| c.updated.timestamp() == changed.time_stamp)
        .count();
    assert_eq!(same, 130);
}

#[tokio::test(start_paused = true)]
async fn background_mutations_run_and_pause() {
    let ctx = start(SimConfig {
        mutations_per_sec: 20.0,
        ..cfg(100)
    })
    .await;
    let before = ctx.sim.truth(ctx.account);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = ctx.sim.truth(ctx.account);
    assert_ne!(before, during);
    ctx.sim.set_mutations_paused(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paused = ctx.sim.truth(ctx.account);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(paused, ctx.sim.truth(ctx.account));
}

#[tokio::test]
async fn unarchive_brings_the_customer_back() {
    let ctx = start(cfg(50)).await;
    let id = ctx
        .sim
        .truth(ctx.account)
        .iter()
        .find(|c| c.archived)
        .expect("an archived customer")
        .id;
    ctx.sim
        .mutate(ctx.account, Mutation::Unarchive(id))
        .unwrap();
    assert!(ids(&ctx.walk(&ctx.url("Customer.json")).await).contains(&id));
}

#[tokio::test]
async fn an_incremental_query_sees_archives_only_with_archived_true() {
    let ctx = start(cfg(50)).await;
    let id = first_active(&ctx);
    let changed = ctx.sim.mutate(ctx.account, Mutation::Archive(id)).unwrap();
    let since = chrono::DateTime::from_timestamp(changed.time_stamp, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S-00:00");
    let q = format!("Customer.json?sort=timeStamp&timeStamp=%3E%3D%2C{since}");
    assert!(ids(&ctx.walk(&ctx.url(&q)).await).is_empty());
    assert_eq!(
        ids(&ctx.walk(&ctx.url(&format!("{q}&archived=true"))).await),
        vec![id]
    );
}
