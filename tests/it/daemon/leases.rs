//! The lease protocol's statements against a real Postgres, without processes: liveness from the
//! presence lock, the TTL fallback, and the run records a stale holder can no longer touch.

use std::time::Duration;

use lightspeed_sync::db::leases::{self, try_acquire};
use lightspeed_sync::db::runs::{self, StartError};
use lightspeed_sync::model::{Kind, RunStatus, Stream};
use lightspeed_sync::sync::lease::LeaseGuard;
use sqlx::PgPool;

use crate::daemon::helpers::wait_for;

const LONG: Duration = Duration::from_secs(600);

#[sqlx::test]
async fn a_live_holders_lease_is_busy_and_free_the_moment_its_presence_is_gone(pool: PgPool) {
    let held = LeaseGuard::acquire(&pool, 7.into(), "holder-a", LONG)
        .await
        .unwrap()
        .expect("free");
    assert!(leases::holder_alive(&pool, "holder-a").await.unwrap());
    assert_eq!(
        try_acquire(&pool, 7.into(), "holder-b", LONG)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        leases::takeable(&pool, &[7.into(), 8.into()])
            .await
            .unwrap(),
        vec![8]
    );
    // Dropped without release (as in a crash): the lease has 10 minutes left, but the holder's
    // presence session closes with its last handle.
    drop(held);
    let lease = wait_for(
        "the lease to be free once its holder is gone",
        Duration::from_secs(10),
        || async {
            try_acquire(&pool, 7.into(), "holder-b", LONG)
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(lease.epoch, 2);
    assert!(!leases::holder_alive(&pool, "holder-a").await.unwrap());
}

#[sqlx::test]
async fn a_live_but_stalled_holders_lease_is_taken_once_it_expires(pool: PgPool) {
    // A long TTL: its renewer does not fire during the test, as if the holder were stalled.
    let held = LeaseGuard::acquire(&pool, 7.into(), "holder-a", LONG)
        .await
        .unwrap()
        .expect("free");
    let stalled = held.lease().clone();
    assert_eq!(
        try_acquire(&pool, 7.into(), "holder-b", LONG)
            .await
            .unwrap(),
        None
    );
    // Its lease runs out (the TTL fallback), its process still alive.
    sqlx::query("UPDATE lightspeed_sync.leases SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(leases::holder_alive(&pool, "holder-a").await.unwrap());
    let taken = try_acquire(&pool, 7.into(), "holder-b", LONG)
        .await
        .unwrap()
        .expect("expired: taken although its holder is alive");
    assert_eq!(taken.epoch, stalled.epoch + 1);
    // The stalled holder's renewal and checkpoint now fail on the epoch.
    assert!(!leases::renew(&pool, &stalled, LONG).await.unwrap());
    let mut tx = pool.begin().await.unwrap();
    assert!(!leases::verify(&mut tx, &stalled).await.unwrap());
    drop(tx);
    // Releasing the lost lease leaves the new holder's alone.
    held.release().await;
    assert!(leases::renew(&pool, &taken, LONG).await.unwrap());
}

#[sqlx::test]
async fn a_stale_holder_can_neither_finish_nor_start_a_run_after_a_takeover(pool: PgPool) {
    // Taken without a presence: to another holder it looks gone at once.
    let stale = try_acquire(&pool, 7.into(), "holder-a", LONG)
        .await
        .unwrap()
        .unwrap();
    let (run, _) = runs::start(
        &pool,
        7.into(),
        Stream::Customers,
        Kind::Incremental,
        "holder-a",
    )
    .await
    .unwrap();
    let (other, _) = runs::start(&pool, 7.into(), Stream::Accounts, Kind::Full, "holder-a")
        .await
        .unwrap();
    let new = try_acquire(&pool, 7.into(), "holder-b", LONG)
        .await
        .unwrap()
        .expect("the holder is gone");
    assert_eq!(new.epoch, stale.epoch + 1);
    // The takeover closed both of the stale holder's runs.
    for id in [run, other] {
        let r = runs::get(&pool, id).await.unwrap();
        assert_eq!(r.status, "interrupted", "{r:?}");
        assert!(r.error.as_deref().unwrap().contains("taken over"), "{r:?}");
    }
    let closed = runs::get(&pool, run).await.unwrap();
    // The stale holder thaws: its end of the run is not recorded over the takeover's.
    assert!(
        !runs::finish(&pool, run, RunStatus::Failed, Some("late"))
            .await
            .unwrap()
    );
    runs::add_requests(&pool, run, 5, 1).await.unwrap();
    let after = runs::get(&pool, run).await.unwrap();
    assert_eq!(
        (
            after.status.as_str(),
            after.finished_at,
            after.error,
            after.requests
        ),
        (
            "interrupted",
            closed.finished_at,
            closed.error,
            closed.requests
        )
    );
    // Nor can it start another run of the account.
    match runs::start(
        &pool,
        7.into(),
        Stream::Customers,
        Kind::Incremental,
        "holder-a",
    )
    .await
    {
        Err(StartError::NotHeld { account_id }) if account_id == 7 => {}
        other => panic!("the stale holder started a run: {other:?}"),
    }
    // The new holder's run starts after the stale ones ended, and ends once.
    let (mine, started) = runs::start(
        &pool,
        7.into(),
        Stream::Customers,
        Kind::Incremental,
        "holder-b",
    )
    .await
    .unwrap();
    assert!(closed.finished_at.unwrap() <= started);
    assert!(
        runs::finish(&pool, mine, RunStatus::Succeeded, None)
            .await
            .unwrap()
    );
    assert!(
        !runs::finish(&pool, mine, RunStatus::Failed, Some("twice"))
            .await
            .unwrap()
    );
    assert_eq!(runs::get(&pool, mine).await.unwrap().status, "succeeded");
}

#[sqlx::test]
async fn one_renewer_keeps_all_of_a_processs_leases_and_reports_each_one_lost(pool: PgPool) {
    let ttl = Duration::from_millis(1500);
    let mut guards = Vec::new();
    for account in 1..=50 {
        let guard = LeaseGuard::acquire(&pool, account.into(), "holder-a", ttl)
            .await
            .unwrap()
            .expect("free");
        guards.push(guard);
    }
    let renewer = lightspeed_sync::sync::lease::Renewer::get(&pool, "holder-a", ttl);
    assert_eq!(
        renewer.len(),
        50,
        "one renewer for every lease of the process"
    );
    // A lease row locked by a page committing (a share lock, as `verify` takes): skipped by the
    // batch, renewed on its own once the lock is gone.
    let mut page = pool.begin().await.unwrap();
    let lease7 = guards[6].lease().clone();
    assert!(leases::verify(&mut page, &lease7).await.unwrap());
    let first: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT expires_at FROM lightspeed_sync.leases ORDER BY account_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expiries = || async {
        sqlx::query_as::<_, (chrono::DateTime<chrono::Utc>, bool)>(
            "SELECT expires_at, expires_at > now() FROM lightspeed_sync.leases
             WHERE holder = 'holder-a' ORDER BY account_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    // Renewed in one batch, not held up by the locked row.
    wait_for(
        "every unlocked lease renewed",
        Duration::from_secs(10),
        || async {
            let now = expiries().await;
            (now.len() == 50
                && now
                    .iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(i, ((t, live), f))| i == 6 || (*live && *t > *f)))
            .then_some(())
        },
    )
    .await;
    assert_eq!(expiries().await[6].0, first[6], "the locked row waits");
    page.commit().await.unwrap();
    // Renewed right after its page committed, and every lease outlives its first lifetime.
    let past = chrono::Duration::milliseconds(1500);
    wait_for(
        "every lease renewed past its first expiry",
        Duration::from_secs(10),
        || async {
            let now = expiries().await;
            (now.len() == 50
                && now
                    .iter()
                    .zip(&first)
                    .all(|((t, live), f)| *live && *t > *f + past))
            .then_some(())
        },
    )
    .await;
    assert!(guards.iter().all(|g| !g.lost().is_cancelled()));

    // Taken over behind its back: only that guard hears of it.
    sqlx::query(
        "UPDATE lightspeed_sync.leases SET holder = 'holder-b', epoch = epoch + 1
         WHERE account_id = 9",
    )
    .execute(&pool)
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), guards[8].lost().cancelled())
        .await
        .expect("the lost lease is reported within a renewal period");
    assert_eq!(guards.iter().filter(|g| g.lost().is_cancelled()).count(), 1);
    assert_eq!(renewer.len(), 49);
    for g in guards {
        g.release().await;
    }
    assert!(renewer.is_empty());
}
