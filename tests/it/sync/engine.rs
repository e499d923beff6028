use lightspeed_sync::sim::Mutation;
use lightspeed_sync::sync::{Kind, RunStatus, Stream};
use sqlx::PgPool;

use crate::sync::helpers::{env, fast};

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
            env.sim
                .mutate(
                    a,
                    Mutation::ContactEdit {
                        id: 50 + round,
                        bump_timestamp: true,
                    },
                )
                .unwrap();
            let r = env.sync_ok(a, Kind::Incremental).await;
            assert!(r.pages <= 2, "an incremental run re-read too much: {r:?}");
            env.assert_mirror_matches(a).await;
        }
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM lightspeed.accounts ORDER BY account_id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| !n.is_empty()));
}

/// The accounts stream against the simulator's documented bare detail and its wrapped variant.
#[sqlx::test]
async fn accounts_sync_with_the_bare_and_the_wrapped_detail(pool: PgPool) {
    for wrapped in [false, true] {
        let cfg = lightspeed_sync::sim::SimConfig {
            wrapped_account_detail: wrapped,
            ..fast(1, 3)
        };
        let env = env(pool.clone(), cfg).await;
        let a = env.sim.account_ids()[0];
        let r = env.run(a, Stream::Accounts, Kind::Full).await;
        assert_eq!(r.status, RunStatus::Succeeded, "wrapped {wrapped}: {r:?}");
        let (name, status, currency, employees): (String, Option<String>, Option<String>, Option<String>) =
            sqlx::query_as(
                "SELECT name, status, currency_code,
                        coalesce(raw->'detail'->>'employeeCount', raw->'detail'->'Account'->>'employeeCount')
                 FROM lightspeed.accounts WHERE account_id = $1",
            )
            .bind(a as i64)
            .fetch_one(&env.pool)
            .await
            .unwrap();
        assert_eq!(name, format!("Simulated Shop 1 ({a})"), "wrapped {wrapped}");
        assert_eq!(
            (status.as_deref(), currency.as_deref()),
            (Some("customer"), Some("CAD"))
        );
        assert!(
            employees.is_some(),
            "wrapped {wrapped}: the detail is kept in raw"
        );
    }
}

#[sqlx::test]
async fn two_hundred_fifty_customers_sharing_one_timestamp_are_all_mirrored(pool: PgPool) {
    let cfg = lightspeed_sync::sim::SimConfig {
        shared_timestamp: 250,
        ..fast(1, 600)
    };
    let env = env(pool, cfg).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
    // A mass edit: 250 customers get one new stamp, then an incremental run.
    let changed = env
        .sim
        .mutate(a, Mutation::TouchMany { count: 250 })
        .unwrap();
    assert_eq!(changed.ids.len(), 250);
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn following_the_cursor_alone_would_have_lost_ties(pool: PgPool) {
    // The premise of the test above: with this simulator a naive walk loses records.
    use lightspeed_sync::lightspeed::query::{Archived, CustomerQuery, Sort, SortField};
    let cfg = lightspeed_sync::sim::SimConfig {
        shared_timestamp: 250,
        ..fast(1, 600)
    };
    let env = env(pool, cfg).await;
    let a = env.sim.account_ids()[0];
    let query = CustomerQuery {
        limit: Some(100),
        sort: Some(Sort {
            field: SortField::TimeStamp,
            descending: false,
        }),
        archived: Some(Archived::Include),
        ..CustomerQuery::default()
    };
    let mut url = env.engine.api.customers_url(a.into(), &query);
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = env
            .engine
            .api
            .get_customers_page(a.into(), &url)
            .await
            .unwrap();
        seen.extend(page.records.iter().map(|c| c.customer_id));
        match page.next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert!(
        seen.len() < env.sim.truth(a).len(),
        "the naive walk saw everything; the tie test proves nothing"
    );
}

#[sqlx::test]
async fn a_full_refresh_finds_hard_deletes_and_contact_only_edits(pool: PgPool) {
    let env = env(pool, fast(1, 300)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.mutate(a, Mutation::HardDelete(7)).unwrap();
    env.sim
        .mutate(
            a,
            Mutation::ContactEdit {
                id: 8,
                bump_timestamp: false,
            },
        )
        .unwrap();
    // Incremental runs cannot see either change.
    env.sync_ok(a, Kind::Incremental).await;
    let mirror = crate::sync::helpers::mirror(&env.pool, a).await;
    assert!(
        mirror.contains_key(&7),
        "the hard delete is invisible to an incremental run"
    );
    let full = env.sync_ok(a, Kind::Full).await;
    assert_eq!(full.deleted, 1, "{full:?}");
    env.assert_mirror_matches(a).await;
    let deleted: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT deleted_at FROM lightspeed.customers WHERE account_id = $1 AND customer_id = 7",
    )
    .bind(a as i64)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(deleted.is_some(), "the row is kept and marked deleted");
    // A second full refresh changes nothing and marks nothing more.
    let again = env.sync_ok(a, Kind::Full).await;
    assert_eq!(again.deleted, 0);
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn archived_anonymized_and_new_customers_are_mirrored(pool: PgPool) {
    let env = env(pool, fast(1, 200)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.mutate(a, Mutation::Archive(3)).unwrap();
    env.sim.mutate(a, Mutation::Anonymize(4)).unwrap();
    let created = env.sim.mutate(a, Mutation::Create).unwrap();
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
    let rows: Vec<(i64, bool, String)> = sqlx::query_as(
        "SELECT customer_id, archived, first_name FROM lightspeed.customers
         WHERE account_id = $1 AND customer_id = ANY($2) ORDER BY customer_id",
    )
    .bind(a as i64)
    .bind(vec![3i64, 4, created.ids[0] as i64])
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].1 && rows[1].1 && !rows[2].1, "{rows:?}");
    assert_eq!(rows[1].2, "Customer", "anonymized names are scrubbed");
}

/// Archives, anonymizes and creates customers after each committed page: changes land *during* a run.
#[derive(Default)]
struct MutateDuringRun {
    sim: std::sync::OnceLock<(std::sync::Arc<lightspeed_sync::sim::Simulator>, u64)>,
    pages: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl lightspeed_sync::sync::Progress for MutateDuringRun {
    fn page(
        &self,
        _: lightspeed_sync::model::AccountId,
        _: Stream,
        _: usize,
        _: &lightspeed_sync::lightspeed::CallStats,
    ) {
        let Some((sim, a)) = self.sim.get() else {
            return;
        };
        if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let n = self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        sim.mutate(*a, Mutation::Archive(10 + n)).unwrap();
        sim.mutate(*a, Mutation::Anonymize(500 + n)).unwrap();
        sim.mutate(*a, Mutation::Create).unwrap();
        sim.mutate(*a, Mutation::Update(900 + n)).unwrap();
    }
}

#[sqlx::test]
async fn customers_archived_anonymized_and_created_during_a_sync_are_mirrored(pool: PgPool) {
    let observer = std::sync::Arc::new(MutateDuringRun::default());
    let env = crate::sync::helpers::env_with(pool, fast(1, 1_500), observer.clone()).await;
    let a = env.sim.account_ids()[0];
    observer.sim.set((env.sim.clone(), a)).ok().unwrap();
    let first = env.sync_ok(a, Kind::Incremental).await;
    assert!(first.pages >= 15, "{first:?}");
    // The changes made during the first run are picked up by the next; stop changing, then compare.
    let pages = observer.pages.load(std::sync::atomic::Ordering::SeqCst);
    assert!(pages >= 15);
    observer
        .stop
        .store(true, std::sync::atomic::Ordering::SeqCst);
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn background_mutations_during_syncs_converge(pool: PgPool) {
    let cfg = lightspeed_sync::sim::SimConfig {
        mutations_per_sec: 400.0,
        ..fast(1, 2_000)
    };
    let env = env(pool, cfg).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.set_mutations_paused(true);
    env.sync_ok(a, Kind::Incremental).await;
    // Contact-only edits without a stamp bump are the one change only a full run can catch.
    env.sync_ok(a, Kind::Full).await;
    env.assert_mirror_matches(a).await;
}
