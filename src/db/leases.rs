//! Statements on `lightspeed_sync.leases`: one owner per account at a time.
//!
//! A lease has a holder, an expiry and an epoch that grows on every takeover. Every checkpoint (a page's
//! transaction) verifies the epoch with a share lock on the lease row, so a replica that stalled past its
//! expiry cannot commit after another one took the account over.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The account it covers.
    pub account_id: i64,
    /// Who holds it (a replica ID).
    pub holder: String,
    /// Which takeover this is.
    pub epoch: i64,
}

fn secs(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// Take the account's lease if it is free, expired, or already ours. `None` when another holder has it.
pub async fn try_acquire(
    pool: &PgPool,
    account_id: i64,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, sqlx::Error> {
    let epoch: Option<i64> = sqlx::query_scalar(
        "INSERT INTO lightspeed_sync.leases AS l (account_id, holder, epoch, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3))
         ON CONFLICT (account_id) DO UPDATE
         SET holder = excluded.holder, epoch = l.epoch + 1, expires_at = excluded.expires_at,
             acquired_at = now()
         WHERE l.expires_at < now() OR l.holder = excluded.holder
         RETURNING epoch",
    )
    .bind(account_id)
    .bind(holder)
    .bind(secs(ttl))
    .fetch_optional(pool)
    .await?;
    Ok(epoch.map(|epoch| Lease {
        account_id,
        holder: holder.to_string(),
        epoch,
    }))
}

/// Extend a lease we still hold. False when it was lost (expired and taken over).
pub async fn renew(pool: &PgPool, lease: &Lease, ttl: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lightspeed_sync.leases SET expires_at = now() + make_interval(secs => $4)
         WHERE account_id = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
    )
    .bind(lease.account_id)
    .bind(&lease.holder)
    .bind(lease.epoch)
    .bind(secs(ttl))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Inside a checkpoint's transaction: is the lease still ours and unexpired? Holds a share lock on the
/// lease row until the transaction ends, so no takeover can slip in between this check and the commit.
pub async fn verify(conn: &mut PgConnection, lease: &Lease) -> Result<bool, sqlx::Error> {
    let ok: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM lightspeed_sync.leases
         WHERE account_id = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()
         FOR SHARE",
    )
    .bind(lease.account_id)
    .bind(&lease.holder)
    .bind(lease.epoch)
    .fetch_optional(conn)
    .await?;
    Ok(ok.is_some())
}

/// Give a lease up so another replica may take the account at once.
pub async fn release(pool: &PgPool, lease: &Lease) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed_sync.leases SET expires_at = now() - interval '1 second'
         WHERE account_id = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(lease.account_id)
    .bind(&lease.holder)
    .bind(lease.epoch)
    .execute(pool)
    .await?;
    Ok(())
}
