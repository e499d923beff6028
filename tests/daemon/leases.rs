//! The lease protocol's statements against a real Postgres, without processes: liveness from the
//! presence lock, the TTL fallback, and the run records a stale holder can no longer touch.

use std::time::Duration;

use lightspeed_sync::db::leases::{self, try_acquire};
use lightspeed_sync::db::runs::{self, StartError};
use lightspeed_sync::sync::lease::LeaseGuard;
use sqlx::PgPool;

use crate::helpers::wait_for;

const LONG: Duration = Duration::from_secs(600);

#[sqlx::test]
async fn a_live_holders_lease_is_busy_and_free_the_moment_its_presence_is_gone(pool: PgPool) {
    let held = LeaseGuard::acquire(&pool, 7, "holder-a", LONG)
        .await
        .unwrap()
        .expect("free");
    assert!(leases::holder_alive(&pool, "holder-a").await.unwrap());
    assert_eq!(try_acquire(&pool, 7, "holder-b", LONG).await.unwrap(), None);
    assert_eq!(leases::takeable(&pool, &[7, 8]).await.unwrap(), vec![8]);
    // Dropped without release (as in a crash): the lease has 10 minutes left, but the holder's
    // presence session closes with its last handle.
    drop(held);
    let lease = wait_for(
        "the lease to be free once its holder is gone",
        Duration::from_secs(10),
        || async { try_acquire(&pool, 7, "holder-b", LONG).await.unwrap() },
    )
    .await;
    assert_eq!(lease.epoch, 2);
    assert!(!leases::holder_alive(&pool, "holder-a").await.unwrap());
}

#[sqlx::test]
async fn a_live_but_stalled_holders_lease_is_taken_once_it_expires(pool: PgPool) {
    // A long TTL: its renewer does not fire during the test, as if the holder were stalled.
    let held = LeaseGuard::acquire(&pool, 7, "holder-a", LONG)
        .await
        .unwrap()
        .expect("free");
    let stalled = held.lease().clone();
    assert_eq!(try_acquire(&pool, 7, "holder-b", LONG).await.unwrap(), None);
    // Its lease runs out (the TTL fallback), its process still alive.
    sqlx::query("UPDATE lightspeed_sync.leases SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(leases::holder_alive(&pool, "holder-a").await.unwrap());
    let taken = try_acquire(&pool, 7, "holder-b", LONG)
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
    let stale = try_acquire(&pool, 7, "holder-a", LONG)
        .await
        .unwrap()
        .unwrap();
    let (run, _) = runs::start(&pool, 7, "customers", "incremental", "holder-a")
        .await
        .unwrap();
    let (other, _) = runs::start(&pool, 7, "accounts", "full", "holder-a")
        .await
        .unwrap();
    let new = try_acquire(&pool, 7, "holder-b", LONG)
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
        !runs::finish(&pool, run, "failed", Some("late"))
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
    match runs::start(&pool, 7, "customers", "incremental", "holder-a").await {
        Err(StartError::NotHeld { account_id: 7 }) => {}
        other => panic!("the stale holder started a run: {other:?}"),
    }
    // The new holder's run starts after the stale ones ended, and ends once.
    let (mine, started) = runs::start(&pool, 7, "customers", "incremental", "holder-b")
        .await
        .unwrap();
    assert!(closed.finished_at.unwrap() <= started);
    assert!(runs::finish(&pool, mine, "succeeded", None).await.unwrap());
    assert!(
        !runs::finish(&pool, mine, "failed", Some("twice"))
            .await
            .unwrap()
    );
    assert_eq!(runs::get(&pool, mine).await.unwrap().status, "succeeded");
}
