use lightspeed_sync::sim::Mutation;
use lightspeed_sync::sync::{Kind, RunStatus, Stream};
use sqlx::PgPool;

use crate::helpers::{env, fast};

#[sqlx::test]
async fn first_sync_of_two_accounts_then_incremental_syncs_while_data_changes(pool: PgPool) {
    let env = env(pool, fast(2, 450)).await;
    let accounts = env.sim.account_ids();
    for &a in &accounts {
        let r = env.run(a, Stream::Accounts, Kind::Full).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        let r = env.sync_ok(a, Kind::Incremental).await;
        assert!(r.pages >= 5, "{r:?}");
        env.assert_mirror_matches(a).await;
    }
    for round in 0..3 {
        for &a in &accounts {
            for id in [1 + round, 20 + round, 300 + round] {
                env.sim.mutate(a, Mutation::Update(id)).unwrap();
            }
            env.sim.mutate(a, Mutation::Create).unwrap();
            env.sim.mutate(a, Mutation::Archive(40 + round)).unwrap();
            env.sim.mutate(a, Mutation::ContactEdit { id: 50 + round, bump_timestamp: true }).unwrap();
            let r = env.sync_ok(a, Kind::Incremental).await;
            assert!(r.pages <= 2, "an incremental run re-read too much: {r:?}");
            env.assert_mirror_matches(a).await;
        }
    }
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM lightspeed.accounts ORDER BY account_id")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| !n.is_empty()));
}

#[sqlx::test]
async fn two_hundred_fifty_customers_sharing_one_timestamp_are_all_mirrored(pool: PgPool) {
    let cfg = lightspeed_sync::sim::SimConfig { shared_timestamp: 250, ..fast(1, 600) };
    let env = env(pool, cfg).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
    // A mass edit: 250 customers get one new stamp, then an incremental run.
    let changed = env.sim.mutate(a, Mutation::TouchMany { count: 250 }).unwrap();
    assert_eq!(changed.ids.len(), 250);
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn following_the_cursor_alone_would_have_lost_ties(pool: PgPool) {
    // The premise of the test above: with this simulator a naive walk loses records.
    use lightspeed_sync::lightspeed::query::{Archived, CustomerQuery, Sort, SortField};
    let cfg = lightspeed_sync::sim::SimConfig { shared_timestamp: 250, ..fast(1, 600) };
    let env = env(pool, cfg).await;
    let a = env.sim.account_ids()[0];
    let query = CustomerQuery {
        limit: Some(100),
        sort: Some(Sort { field: SortField::TimeStamp, descending: false }),
        archived: Some(Archived::Include),
        ..CustomerQuery::default()
    };
    let mut url = env.engine.api.customers_url(a, &query);
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = env.engine.api.get_customers_page(a, &url).await.unwrap();
        seen.extend(page.records.iter().map(|c| c.customer_id));
        match page.next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert!(seen.len() < env.sim.truth(a).len(), "the naive walk saw everything; the tie test proves nothing");
}
