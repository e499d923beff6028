//! A `run` process is killed (SIGKILL: no shutdown, no release) while it syncs; a daemon of another
//! replica takes its accounts over at its next tick, long before the dead process's leases expire:
//! the dead process's presence session is gone, so its leases are free.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lightspeed_sync::daemon::DaemonOptions;
use lightspeed_sync::sim::Fault;
use sqlx::PgPool;

use crate::daemon::helpers::{
    Child, EVERY_SECOND, NEVER, RunningDaemon, assert_no_overlap, child_env, daemon_settings,
    engine_for, env, fast, no_progress, options, own_pool, runs, wait_for,
};

#[sqlx::test]
async fn a_killed_replicas_accounts_are_taken_over_at_once_not_when_its_leases_expire(
    pool: PgPool,
) {
    let env = env(pool, fast(3, 200)).await;
    let ids = env.sim.account_ids();
    let mut settings = daemon_settings(&env, [EVERY_SECOND, NEVER, NEVER], 3);
    settings.sync.page_size = 10;
    // The first requests are slow, so that the process is in the middle of its syncs when killed.
    for _ in 0..60 {
        env.sim.inject(Fault::Slow(Duration::from_millis(300)));
    }
    // A long TTL: a takeover that waited for the expiry would show.
    let ttl = Duration::from_secs(30);
    let mut child = Child::spawn(
        &["run", "--lease-ttl", "30s"],
        &child_env(&settings, &env.pool),
    );
    child
        .wait_for_line("daemon ready", Duration::from_secs(60))
        .await;
    let dead = format!("%-{}-%", child.pid);
    wait_for(
        "the process to commit a customers page of every account",
        Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT account_id) FROM lightspeed_sync.runs
                 WHERE stream = 'customers' AND status = 'running' AND pages >= 1 AND replica LIKE $1",
            )
            .bind(&dead)
            .fetch_one(&env.pool)
            .await
            .unwrap();
            (n == ids.len() as i64).then_some(())
        },
    )
    .await;

    // Another replica, ticking every second, while the process holds the accounts.
    let engine = engine_for(
        &settings,
        own_pool(&env.pool).await,
        "replica-b",
        no_progress(),
    );
    let b = RunningDaemon::start(
        &settings,
        engine,
        DaemonOptions {
            lease_ttl: ttl,
            ..options(true)
        },
    )
    .await;
    child.signal("KILL").await;
    let killed_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let status = child.wait(Duration::from_secs(10)).await;
    assert!(!status.success());
    let orphaned: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT account_id, expires_at FROM lightspeed_sync.leases
         WHERE holder LIKE $1 AND expires_at > now()",
    )
    .bind(&dead)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(
        !orphaned.is_empty(),
        "the process held no lease when killed"
    );

    wait_for(
        "replica-b to sync every account",
        Duration::from_secs(60),
        || async {
            let done: BTreeSet<i64> = runs(&env.pool)
                .await
                .into_iter()
                .filter(|r| {
                    r.replica.as_deref() == Some("replica-b")
                        && r.stream == "customers"
                        && r.status == "succeeded"
                })
                .map(|r| r.account_id)
                .collect();
            (done.len() == ids.len()).then_some(())
        },
    )
    .await;
    let stopped = b.stop().await;
    assert!(stopped.drained);

    let all = runs(&env.pool).await;
    let mut first_by_b: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    for r in all
        .iter()
        .filter(|r| r.replica.as_deref() == Some("replica-b"))
    {
        first_by_b.entry(r.account_id).or_insert(r.started_at);
    }
    for (account, expires) in &orphaned {
        let took = first_by_b[account];
        let after_kill = (took - killed_at).num_milliseconds();
        eprintln!(
            "account {account}: taken over {after_kill} ms after the kill (its dead lease would have expired {} ms after the kill)",
            (*expires - killed_at).num_milliseconds()
        );
        assert!(
            took < *expires,
            "account {account}: replica-b started at {took}, only after the dead lease expired at {expires}"
        );
        assert!(
            after_kill < 10_000,
            "account {account}: taken over {after_kill} ms after the kill"
        );
    }
    // The dead process's runs were closed as interrupted when replica-b started its own.
    let dead_runs: Vec<_> = all
        .iter()
        .filter(|r| r.replica.as_deref() != Some("replica-b"))
        .collect();
    assert!(
        dead_runs.iter().all(|r| r.status != "running"),
        "{dead_runs:?}"
    );
    assert_no_overlap(&all);
    for &a in &ids {
        env.assert_mirror_matches(a).await;
    }
}
