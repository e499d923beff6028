//! The API budget of the scheduled full refresh (issue 11, item 4): skipped when the upstream
//! count equals the mirror's (a `Contact.timeStamp` pass runs instead and catches Contact-only
//! edits), a full walk when they differ, the periodic full walk as the backstop, and the drips a
//! day per account and stream in `status` and `/metrics`.

use std::time::Duration;

use lightspeed_sync::daemon::worker::{Tick, Worker, stagger};
use lightspeed_sync::sim::Mutation;
use lightspeed_sync::sync::lease::LEASE_TTL;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::helpers::{Env, env, fast};

const CUSTOMERS: usize = 1000;

fn worker(env: &Env) -> Worker {
    Worker::new(
        env.engine.clone(),
        1000,
        LEASE_TTL,
        TaskTracker::new(),
        CancellationToken::new(),
    )
}

async fn tick(worker: &Worker, tick: Tick) {
    let report = worker.tick(tick).await.unwrap();
    assert_eq!(report.started.len(), 1, "{report:?}");
    worker.wait_idle().await;
}

/// Pretend the account's last full walk completed `ago`.
async fn walked_in_full(pool: &PgPool, account: u64, ago: Duration) {
    sqlx::query(
        "INSERT INTO lightspeed_sync.full_walks (account_id, completed_at)
         VALUES ($1, now() - make_interval(secs => $2))
         ON CONFLICT (account_id) DO UPDATE SET completed_at = EXCLUDED.completed_at",
    )
    .bind(account as i64)
    .bind(ago.as_secs_f64())
    .execute(pool)
    .await
    .unwrap();
}

/// The last customers run: kind, status, requests, drips.
async fn last_customers_run(pool: &PgPool, account: u64) -> (String, String, i32, f64) {
    sqlx::query_as(
        "SELECT kind, status, requests, drips FROM lightspeed_sync.runs
         WHERE account_id = $1 AND stream = 'customers' ORDER BY run_id DESC LIMIT 1",
    )
    .bind(account as i64)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn contact_stamp(pool: &PgPool, account: u64, customer: u64) -> Option<String> {
    sqlx::query_scalar(
        "SELECT raw #>> '{Contact,timeStamp}' FROM lightspeed.customers
         WHERE account_id = $1 AND customer_id = $2",
    )
    .bind(account as i64)
    .bind(customer as i64)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn equal_counts_skip_the_walk_and_the_contact_pass_catches_a_contact_only_edit(pool: PgPool) {
    let env = env(pool, fast(1, CUSTOMERS)).await;
    let a = env.sim.account_ids()[0];
    let worker = worker(&env);
    tick(&worker, Tick::Initial).await;
    walked_in_full(&env.pool, a, Duration::from_secs(3600)).await;

    // An edit of the Contact alone: Customer.timeStamp does not move, so incremental runs miss it.
    let id = 17;
    let before = contact_stamp(&env.pool, a, id).await;
    env.sim
        .mutate(
            a,
            Mutation::ContactEdit {
                id,
                bump_timestamp: false,
            },
        )
        .unwrap();
    tick(&worker, Tick::Customers).await;
    assert_eq!(
        contact_stamp(&env.pool, a, id).await,
        before,
        "an incremental run caught it: the test proves nothing"
    );

    tick(&worker, Tick::FullRefresh).await;
    let (kind, status, pass_requests, pass_drips) = last_customers_run(&env.pool, a).await;
    assert_eq!((kind.as_str(), status.as_str()), ("contacts", "succeeded"));
    assert_ne!(contact_stamp(&env.pool, a, id).await, before);
    env.assert_mirror_matches(a).await;
    let walks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed_sync.runs WHERE account_id = $1 AND kind = 'full' AND stream = 'customers'",
    )
    .bind(a as i64)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(walks, 0, "the scheduled refresh walked every customer");

    // What the walk it spared costs.
    let full = env
        .run(
            a,
            lightspeed_sync::sync::Stream::Customers,
            lightspeed_sync::sync::Kind::Full,
        )
        .await;
    assert_eq!(full.error, None);
    let (_, _, walk_requests, walk_drips) = last_customers_run(&env.pool, a).await;
    eprintln!(
        "{CUSTOMERS} customers: contacts pass {pass_requests} requests / {pass_drips} drips, \
         full walk {walk_requests} requests / {walk_drips} drips"
    );
    assert!(
        pass_requests < walk_requests,
        "{pass_requests} >= {walk_requests}"
    );
    assert!(
        pass_drips < walk_drips / 2.0,
        "{pass_drips} vs {walk_drips}"
    );
    // The count (10 drips) and one page with every relation.
    assert_eq!(pass_requests, 2);

    // The drips a day, per account and stream, in status and /metrics.
    let day: f64 = sqlx::query_scalar(
        "SELECT sum(drips)::float8 FROM lightspeed_sync.runs WHERE account_id = $1 AND stream = 'customers'",
    )
    .bind(a as i64)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(day > walk_drips + pass_drips);
    let report = lightspeed_sync::daemon::status::collect(&env.pool)
        .await
        .unwrap();
    let customers = report.accounts[0]
        .streams
        .iter()
        .find(|s| s.stream == "customers")
        .unwrap();
    assert!(
        (customers.drips_24h - day).abs() < 1e-6,
        "{} vs {day}",
        customers.drips_24h
    );
    let accounts = report.accounts[0]
        .streams
        .iter()
        .find(|s| s.stream == "accounts")
        .unwrap();
    assert!(accounts.drips_24h >= 2.0, "{}", accounts.drips_24h);
    lightspeed_sync::daemon::metrics::handle();
    lightspeed_sync::daemon::metrics::refresh_db_gauges(&env.pool)
        .await
        .unwrap();
    let text = lightspeed_sync::daemon::metrics::render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("lightspeed_sync_drips_24h{")
                && l.contains(&format!("account=\"{a}\""))
                && l.contains("stream=\"customers\"")
        })
        .unwrap_or_else(|| panic!("no drips gauge in:\n{text}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - day).abs() < 1e-6, "{line} vs {day}");
}

#[sqlx::test]
async fn a_hard_delete_makes_the_counts_differ_and_the_refresh_walks_everything(pool: PgPool) {
    let env = env(pool, fast(1, 300)).await;
    let a = env.sim.account_ids()[0];
    let worker = worker(&env);
    tick(&worker, Tick::Initial).await;
    walked_in_full(&env.pool, a, Duration::from_secs(3600)).await;

    env.sim.mutate(a, Mutation::HardDelete(42)).unwrap();
    tick(&worker, Tick::FullRefresh).await;
    let (kind, status, requests, _) = last_customers_run(&env.pool, a).await;
    assert_eq!((kind.as_str(), status.as_str()), ("full", "succeeded"));
    assert!(requests >= 4, "{requests}");
    let deleted: bool = sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM lightspeed.customers WHERE account_id = $1 AND customer_id = 42",
    )
    .bind(a as i64)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(deleted);
    env.assert_mirror_matches(a).await;
    // The completed walk resets the backstop's clock.
    let age: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - completed_at)::float8 FROM lightspeed_sync.full_walks WHERE account_id = $1",
    )
    .bind(a as i64)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(age < 600.0, "{age}");
}

#[sqlx::test]
async fn the_backstop_walks_in_full_when_the_last_walk_is_older_than_full_walk_every(pool: PgPool) {
    let env = env(pool, fast(1, 300)).await;
    let a = env.sim.account_ids()[0];
    let worker = worker(&env).with_full_walk_every(Duration::from_secs(2 * 86_400));
    tick(&worker, Tick::Initial).await;

    // Younger than full_walk_every: the counts match, no walk.
    walked_in_full(&env.pool, a, Duration::from_secs(86_400)).await;
    tick(&worker, Tick::FullRefresh).await;
    assert_eq!(last_customers_run(&env.pool, a).await.0, "contacts");

    // Older: a full walk, although the counts match.
    walked_in_full(&env.pool, a, Duration::from_secs(3 * 86_400)).await;
    tick(&worker, Tick::FullRefresh).await;
    let (kind, status, _, _) = last_customers_run(&env.pool, a).await;
    assert_eq!((kind.as_str(), status.as_str()), ("full", "succeeded"));
    tick(&worker, Tick::FullRefresh).await;
    assert_eq!(last_customers_run(&env.pool, a).await.0, "contacts");
    env.assert_mirror_matches(a).await;
}

#[test]
fn a_fleet_s_walks_are_spread_over_the_period() {
    let every = Duration::from_secs(7 * 86_400);
    let mut per_day = [0u32; 7];
    for id in 1..=1000u64 {
        let at = stagger(id.into(), every);
        assert!(at < every);
        per_day[(at.as_secs() / 86_400) as usize] += 1;
    }
    // 1,000 accounts over 7 nights: about 143 a night, none empty or crowded.
    assert!(
        per_day.iter().all(|&n| (100..=190).contains(&n)),
        "{per_day:?}"
    );
}
