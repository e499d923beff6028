//! Crash-safe ownership of accounts, with real processes: a `run` restarted right after `kill -9`
//! syncs at once; a replica frozen (SIGSTOP) inside a page's transaction or between pages is taken
//! over within TTL + 5 s and, thawed, commits nothing stale; `sync` meets a busy account with
//! `--no-wait` (exit 75) or `--wait` (proceeds once the holder releases).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lightspeed_sync::daemon::DaemonOptions;
use lightspeed_sync::sim::SimConfig;
use lightspeed_sync::sync::lease::LeaseGuard;
use sqlx::PgPool;

use crate::daemon::helpers::{
    Child, EVERY_SECOND, NEVER, RunningDaemon, assert_no_overlap, child_env, daemon_settings,
    database_url, engine_for, env, fast, no_progress, options, own_pool, runs, wait_for,
};

async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Accounts with a succeeded customers run by a replica whose ID matches `like`.
async fn synced_by(pool: &PgPool, like: &str) -> BTreeSet<i64> {
    sqlx::query_scalar(
        "SELECT DISTINCT account_id FROM lightspeed_sync.runs
         WHERE stream = 'customers' AND status = 'succeeded' AND replica LIKE $1",
    )
    .bind(like)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Accounts with a running customers run that committed a page, by a replica matching `like`.
async fn mid_run(pool: &PgPool, like: &str) -> usize {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT account_id) FROM lightspeed_sync.runs
         WHERE stream = 'customers' AND status = 'running' AND pages >= 1 AND replica LIKE $1",
    )
    .bind(like)
    .fetch_one(pool)
    .await
    .unwrap();
    n as usize
}

fn set_env(env: &mut Vec<(String, String)>, key: &str, value: String) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value));
}

#[sqlx::test]
async fn a_run_restarted_right_after_kill_9_syncs_at_once(pool: PgPool) {
    let cfg = SimConfig {
        accounts: 2,
        customers: 1_500,
        bucket_size: 4.0,
        drip_rate: 10.0,
        burst_limit: 0,
        ..SimConfig::default()
    };
    let env = env(pool, cfg).await;
    let ids = env.sim.account_ids();
    // Only the initial sync: no tick could hide a wait.
    let mut settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 2);
    settings.sync.page_size = 20;
    let envs = child_env(&settings, &env.pool);
    // The default TTL (60 s): waiting for the dead leases to expire would show.
    let mut first = Child::spawn(&["run"], &envs);
    first
        .wait_for_line("daemon ready", Duration::from_secs(60))
        .await;
    let first_like = format!("%-{}-%", first.pid);
    wait_for(
        "the first daemon to be mid-way through every account",
        Duration::from_secs(60),
        || async { (mid_run(&env.pool, &first_like).await == ids.len()).then_some(()) },
    )
    .await;
    first.signal("KILL").await;
    let killed_at = db_now(&env.pool).await;
    assert!(!first.wait(Duration::from_secs(10)).await.success());
    let dead_leases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed_sync.leases WHERE holder LIKE $1 AND expires_at > now()",
    )
    .bind(&first_like)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(dead_leases, ids.len() as i64, "the killed daemon held them");

    let mut second = Child::spawn(&["run"], &envs);
    let second_like = format!("%-{}-%", second.pid);
    wait_for(
        "the restarted daemon to sync every account",
        Duration::from_secs(50),
        || async { (synced_by(&env.pool, &second_like).await.len() == ids.len()).then_some(()) },
    )
    .await;
    let took: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT account_id, min(started_at) FROM lightspeed_sync.runs WHERE replica LIKE $1
         GROUP BY account_id ORDER BY account_id",
    )
    .bind(&second_like)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    for (account, started) in &took {
        let ms = (*started - killed_at).num_milliseconds();
        eprintln!(
            "account {account}: the restarted daemon started syncing it {ms} ms after the kill"
        );
        assert!(ms < 30_000, "account {account}: {ms} ms after the kill");
    }
    second.signal("TERM").await;
    assert!(
        second.wait(Duration::from_secs(30)).await.success(),
        "{}",
        second.stderr()
    );
    let all = runs(&env.pool).await;
    assert!(
        all.iter()
            .filter(|r| r
                .replica
                .as_deref()
                .is_some_and(|r| r.contains(&format!("-{}-", first.pid))))
            .all(|r| r.status == "interrupted" || r.status == "succeeded"),
        "{all:?}"
    );
    assert_no_overlap(&all);
    for &a in &ids {
        env.assert_mirror_matches(a).await;
    }
}

/// Stop `child` (SIGSTOP) inside a page's transaction (`in_page`) or between pages; retried until it
/// is frozen where asked (checked in `pg_stat_activity` after the stop). Returns the database time of
/// the stop.
async fn freeze(child: &Child, pool: &PgPool, app: &str, in_page: bool) -> DateTime<Utc> {
    for _ in 0..50 {
        if in_page {
            // A page's count is updated last in its transaction, after the lease check: the test's
            // trigger makes that statement last 300 ms.
            wait_for(
                "a page transaction of the holder",
                Duration::from_secs(30),
                || async {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
                         AND state = 'active' AND query LIKE 'UPDATE lightspeed_sync.runs SET pages%'",
                    )
                    .bind(app)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    (n > 0).then_some(())
                },
            )
            .await;
        } else {
            wait_for(
                "the holder between pages",
                Duration::from_secs(30),
                || async {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
                     AND xact_start IS NOT NULL",
                    )
                    .bind(app)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    (n == 0).then_some(())
                },
            )
            .await;
        }
        child.signal("STOP").await;
        let at = db_now(pool).await;
        let where_wanted = if in_page {
            // Frozen in the transaction: once the statement is done, the server waits for a client
            // that does not come (at most the statement's 300 ms).
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
                     AND state = 'idle in transaction' AND query LIKE 'UPDATE lightspeed_sync.runs SET pages%'",
                )
                .bind(app)
                .fetch_one(pool)
                .await
                .unwrap();
                if n > 0 {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
                 AND xact_start IS NOT NULL",
            )
            .bind(app)
            .fetch_one(pool)
            .await
            .unwrap();
            n == 0
        };
        if where_wanted {
            return at;
        }
        child.signal("CONT").await;
    }
    panic!("could not stop the holder where wanted (in_page: {in_page})");
}

async fn a_frozen_holder_is_taken_over_and_commits_nothing_stale(pool: PgPool, in_page: bool) {
    let cfg = if in_page {
        fast(2, 600)
    } else {
        // Paced (a few pages a second): most of the time is spent between pages.
        SimConfig {
            accounts: 2,
            customers: 600,
            bucket_size: 4.0,
            drip_rate: 8.0,
            burst_limit: 0,
            ..SimConfig::default()
        }
    };
    let env = env(pool, cfg).await;
    let ids = env.sim.account_ids();
    let app = "frozen-holder";
    if in_page {
        sqlx::raw_sql(
            "CREATE FUNCTION test_slow_page() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF current_setting('application_name') = 'frozen-holder' THEN PERFORM pg_sleep(0.3); END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER test_slow_page BEFORE UPDATE OF pages ON lightspeed_sync.runs
             FOR EACH ROW EXECUTE FUNCTION test_slow_page();",
        )
        .execute(&env.pool)
        .await
        .unwrap();
    }
    let ttl = Duration::from_secs(3);
    let mut settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 2);
    settings.sync.page_size = 10;
    let mut envs = child_env(&settings, &env.pool);
    set_env(
        &mut envs,
        "LSSYNC__DATABASE__URL",
        format!("{}?application_name={app}", database_url(&env.pool)),
    );
    let mut a = Child::spawn(&["run", "--lease-ttl", "3s"], &envs);
    a.wait_for_line("daemon ready", Duration::from_secs(60))
        .await;
    let a_like = format!("%-{}-%", a.pid);
    wait_for(
        "the holder to be mid-way through every account",
        Duration::from_secs(60),
        || async { (mid_run(&env.pool, &a_like).await == ids.len()).then_some(()) },
    )
    .await;

    let stopped_at = freeze(&a, &env.pool, app, in_page).await;
    let open: Vec<(i64, i32)> = sqlx::query_as(
        "SELECT run_id, pages FROM lightspeed_sync.runs WHERE status = 'running' AND replica LIKE $1",
    )
    .bind(&a_like)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert!(!open.is_empty(), "the holder was frozen mid-run");

    // The other replica, ticking every second.
    let mut b_settings = daemon_settings(&env, [EVERY_SECOND, NEVER, NEVER], 2);
    b_settings.sync.page_size = 10;
    let b = RunningDaemon::start(
        &b_settings,
        engine_for(
            &b_settings,
            own_pool(&env.pool).await,
            "replica-b",
            no_progress(),
        ),
        DaemonOptions {
            lease_ttl: ttl,
            ..options(true)
        },
    )
    .await;
    let taken: Vec<(i64, DateTime<Utc>)> = wait_for(
        "replica-b to take every account over",
        ttl + Duration::from_secs(30),
        || async {
            let rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
                "SELECT account_id, acquired_at FROM lightspeed_sync.leases
                 WHERE holder = 'replica-b' ORDER BY account_id",
            )
            .fetch_all(&env.pool)
            .await
            .unwrap();
            (rows.len() == ids.len()).then_some(rows)
        },
    )
    .await;
    let place = if in_page {
        "inside a page transaction"
    } else {
        "between pages"
    };
    assert_eq!(taken.len(), ids.len());
    // The takeover closed the frozen holder's open runs, at the moment it got the lease row
    // (clock_timestamp()): that is the takeover time.
    for (run_id, _) in &open {
        let r = lightspeed_sync::db::runs::get(&env.pool, *run_id)
            .await
            .unwrap();
        assert_eq!(r.status, "interrupted", "{r:?}");
        let took = (r.finished_at.unwrap() - stopped_at).num_milliseconds();
        eprintln!(
            "holder frozen {place}: account {} taken over {took} ms after the SIGSTOP (TTL {} ms)",
            r.account_id,
            ttl.as_millis()
        );
        assert!(
            took <= (ttl + Duration::from_secs(5)).as_millis() as i64,
            "account {}: taken over {took} ms after the stop",
            r.account_id
        );
    }
    wait_for(
        "replica-b to sync every account",
        Duration::from_secs(60),
        || async { (synced_by(&env.pool, "replica-b").await.len() == ids.len()).then_some(()) },
    )
    .await;

    // Thaw the holder: it finds its transactions ended or its lease gone, and commits nothing.
    a.signal("CONT").await;
    a.wait_for_line("run did not finish", Duration::from_secs(30))
        .await;
    for (run_id, pages) in &open {
        let r = lightspeed_sync::db::runs::get(&env.pool, *run_id)
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_str(), r.pages),
            ("interrupted", *pages),
            "the stale run {run_id} kept the record the takeover wrote: {r:?}"
        );
        assert!(
            r.error.as_deref().unwrap_or("").contains("taken over"),
            "{r:?}"
        );
    }
    let late: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed_sync.runs WHERE replica LIKE $1 AND started_at > $2",
    )
    .bind(&a_like)
    .bind(stopped_at)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(late, 0, "the thawed holder started no run");
    // It carries on and stops cleanly.
    a.signal("TERM").await;
    let status = a.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", a.stderr());
    assert!(b.stop().await.drained);
    assert_no_overlap(&runs(&env.pool).await);
    for &id in &ids {
        env.assert_mirror_matches(id).await;
    }
}

#[sqlx::test]
async fn a_holder_frozen_inside_a_page_transaction_is_taken_over_within_ttl_plus_5s(pool: PgPool) {
    a_frozen_holder_is_taken_over_and_commits_nothing_stale(pool, true).await;
}

#[sqlx::test]
async fn a_holder_frozen_between_pages_is_taken_over_within_ttl_plus_5s(pool: PgPool) {
    a_frozen_holder_is_taken_over_and_commits_nothing_stale(pool, false).await;
}

#[sqlx::test]
async fn sync_no_wait_exits_75_on_an_account_a_live_process_holds_and_1_if_one_also_failed(
    pool: PgPool,
) {
    let env = env(pool, fast(2, 50)).await;
    let ids = env.sim.account_ids();
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 2);
    let held = LeaseGuard::acquire(
        &env.pool,
        ids[0].into(),
        "live-holder",
        Duration::from_secs(60),
    )
    .await
    .unwrap()
    .expect("free");
    let envs = child_env(&settings, &env.pool);
    let (status, out, err) = crate::daemon::helpers::run_cli(&["sync", "--no-wait"], &envs).await;
    assert_eq!(status.code(), Some(75), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "account {} is being synced by another process",
            ids[0]
        )),
        "{out}"
    );
    // The other account was synced.
    assert!(
        out.contains(&format!(
            "account {} customers (incremental): succeeded",
            ids[1]
        )),
        "{out}"
    );
    env.assert_mirror_matches(ids[1]).await;
    // A failure wins over a skip: with the other account needing re-authorization, exit 1.
    lightspeed_sync::tokens::store::mark_needs_reauth(
        &env.pool,
        ids[1].into(),
        "invalid_grant: test",
    )
    .await
    .unwrap();
    let (status, out, err) = crate::daemon::helpers::run_cli(&["sync", "--no-wait"], &envs).await;
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("being synced by another process"), "{out}");
    assert!(out.contains("needs re-authorization"), "{out}");
    held.release().await;
}

#[sqlx::test]
async fn sync_waits_for_a_live_holder_then_proceeds_once_it_releases(pool: PgPool) {
    let env = env(pool, fast(1, 50)).await;
    let a = env.sim.account_ids()[0];
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 1);
    let held = LeaseGuard::acquire(&env.pool, a.into(), "live-holder", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("free");
    let envs = child_env(&settings, &env.pool);
    let mut child = Child::spawn(&["sync", "--wait", "60s"], &envs);
    child
        .wait_for_line("waiting up to 1m", Duration::from_secs(30))
        .await;
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "still waiting for the holder"
    );
    let released = Instant::now();
    held.release().await;
    let status = child.wait(Duration::from_secs(30)).await;
    eprintln!(
        "sync --wait proceeded and finished {} ms after the holder released",
        released.elapsed().as_millis()
    );
    assert!(status.success(), "{}", child.stderr());
    env.assert_mirror_matches(a).await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM lightspeed_sync.runs ORDER BY run_id")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(statuses, vec!["succeeded", "succeeded"]);
}
