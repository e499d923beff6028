//! Deterministic data: same seed, same bytes; and the variety the generator promises.

use std::collections::HashMap;

use lightspeed_sync::sim::SimConfig;

use crate::sim::helpers::{Ctx, cfg, start};

fn seeded(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        public_base_url: Some("https://api.example".into()),
        accounts: 2,
        ..cfg(300)
    }
}

async fn body(ctx: &Ctx, account: u64) -> String {
    let token = ctx.sim.issue_tokens(account).access_token;
    let url = format!(
        "{}/API/V3/Account/{account}/Customer.json?archived=true&load_relations=all&sort=timeStamp",
        ctx.sim.base_url()
    );
    ctx.get_with(&url, &token).await.text().await.unwrap()
}

#[tokio::test]
async fn same_seed_gives_byte_identical_pages() {
    let (a, b) = (start(seeded(7)).await, start(seeded(7)).await);
    assert_eq!(a.sim.account_ids(), b.sim.account_ids());
    for account in a.sim.account_ids() {
        assert_eq!(body(&a, account).await, body(&b, account).await);
    }
}

#[tokio::test]
async fn another_seed_gives_other_data() {
    let (a, b) = (start(seeded(7)).await, start(seeded(8)).await);
    assert_ne!(a.sim.account_ids(), b.sim.account_ids());
    assert_ne!(a.sim.truth(a.account), b.sim.truth(b.account));
}

#[tokio::test]
async fn accounts_differ_from_each_other() {
    let ctx = start(seeded(7)).await;
    let ids = ctx.sim.account_ids();
    assert_ne!(ctx.sim.truth(ids[0]), ctx.sim.truth(ids[1]));
}

#[tokio::test]
async fn shared_timestamp_knob_gives_exactly_that_many_ties() {
    let ctx = start(SimConfig {
        shared_timestamp: 120,
        ..cfg(1000)
    })
    .await;
    let truth = ctx.sim.truth(ctx.account);
    let mut by_ts: HashMap<_, usize> = HashMap::new();
    for c in &truth {
        *by_ts.entry(c.updated).or_default() += 1;
        assert!(c.created <= c.updated);
    }
    assert!(by_ts.values().any(|n| *n >= 120));
    assert!(by_ts.len() > 500, "many distinct timestamps");
}

#[tokio::test]
async fn data_has_the_promised_variety() {
    let ctx = start(cfg(1000)).await;
    let t = ctx.sim.truth(ctx.account);
    assert_eq!(t.first().unwrap().id, 1);
    for n in 0..=2 {
        assert!(t.iter().any(|c| c.emails.len() == n), "{n} emails");
        assert!(t.iter().any(|c| c.addresses.len() == n), "{n} addresses");
    }
    assert!(t.iter().any(|c| c.phones.len() >= 2));
    assert!(t.iter().any(|c| c.archived) && t.iter().any(|c| !c.archived));
    assert!(t.iter().any(|c| c.title.is_empty()) && t.iter().any(|c| !c.title.is_empty()));
    assert!(t.iter().any(|c| c.last_name.contains('\'')));
    assert!(t.iter().any(|c| !c.first_name.is_ascii()));
    for c in &t {
        let mut kinds: Vec<&str> = c.phones.iter().map(|(_, u)| u.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), c.phones.len(), "at most one phone per useType");
    }
}
