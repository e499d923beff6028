//! Bad input and flaky upstreams: nothing is lost, nothing half-committed.

use lightspeed_sync::sim::{Fault, SimConfig};
use lightspeed_sync::sync::{Kind, RunStatus, Stream};
use sqlx::PgPool;

use crate::sync::helpers::{env, fast};

async fn watermark(pool: &PgPool, account: u64) -> Option<chrono::DateTime<chrono::Utc>> {
    lightspeed_sync::db::cursors::watermark(pool, account.into(), Stream::Customers)
        .await
        .unwrap()
}

async fn customer_count(pool: &PgPool, account: u64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers WHERE account_id = $1")
        .bind(account as i64)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_malformed_page_fails_the_run_cleanly_and_the_next_run_recovers(pool: PgPool) {
    for fault in [Fault::MalformedJson, Fault::WrongTypes] {
        let env = env(pool.clone(), fast(1, 150)).await;
        let a = env.sim.account_ids()[0];
        env.sim.inject(fault.clone());
        let failed = env.run(a, Stream::Customers, Kind::Incremental).await;
        assert_eq!(failed.status, RunStatus::Failed, "{fault:?}: {failed:?}");
        let error = failed.error.clone().unwrap();
        assert!(
            error.contains("/Customer.json") && error.contains("malformed"),
            "{fault:?}: {error}"
        );
        assert_eq!(failed.pages, 0);
        assert_eq!(
            customer_count(&env.pool, a).await,
            0,
            "nothing of the bad page is committed"
        );
        assert_eq!(
            watermark(&env.pool, a).await,
            None,
            "the cursor did not move"
        );
        let run = lightspeed_sync::db::runs::get(&env.pool, failed.run_id)
            .await
            .unwrap();
        assert_eq!(run.status, "failed");
        assert_eq!(run.error.as_deref(), Some(error.as_str()));
        env.sync_ok(a, Kind::Incremental).await;
        env.assert_mirror_matches(a).await;
        sqlx::raw_sql("TRUNCATE lightspeed.customers CASCADE; TRUNCATE lightspeed_sync.cursors, lightspeed_sync.runs, lightspeed_sync.leases, lightspeed_sync.credentials")
            .execute(&env.pool)
            .await
            .unwrap();
    }
}

#[sqlx::test]
async fn a_malformed_page_mid_walk_keeps_the_pages_before_it(pool: PgPool) {
    let env = env(pool, fast(1, 450)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    for id in 1..=300 {
        env.sim
            .mutate(a, lightspeed_sync::sim::Mutation::Update(id))
            .unwrap();
    }
    // Let two pages through, then break the third.
    let before = watermark(&env.pool, a).await;
    env.sim.inject(Fault::Slow(std::time::Duration::ZERO));
    env.sim.inject(Fault::Slow(std::time::Duration::ZERO));
    env.sim.inject(Fault::MalformedJson);
    let failed = env.run(a, Stream::Customers, Kind::Incremental).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(failed.pages, 2, "{failed:?}");
    let after = watermark(&env.pool, a).await;
    assert!(after > before, "the committed pages moved the cursor");
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn a_five_percent_fault_rate_loses_nothing(pool: PgPool) {
    let cfg = SimConfig {
        fault_rate: 0.05,
        slow: std::time::Duration::from_millis(20),
        ..fast(2, 1_200)
    };
    let env = env(pool, cfg).await;
    for a in env.sim.account_ids() {
        let report = env.sync_ok(a, Kind::Incremental).await;
        assert!(
            report.stats.retries > 0 || env.sim.counters().faults > 0,
            "{report:?}"
        );
        env.assert_mirror_matches(a).await;
        env.sync_ok(a, Kind::Full).await;
        env.assert_mirror_matches(a).await;
    }
    assert!(
        env.sim.counters().faults > 0,
        "no fault was served; the test proves nothing"
    );
}
