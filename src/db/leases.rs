//! Statements on `lightspeed_sync.leases`: one owner per account at a time.
//!
//! A lease has a holder, an expiry and an epoch that grows on every takeover. Every checkpoint (a page's
//! transaction) verifies the epoch with a share lock on the lease row, so a replica that stalled past its
//! expiry cannot commit after another one took the account over.
//!
//! **Liveness.** A holder process keeps one dedicated connection (its *presence*, see
//! [`crate::sync::lease`]) holding a session-level advisory lock keyed by its replica ID
//! ([`presence_key`]). A lease whose holder's presence lock is gone (the process died, or its
//! connection did) is free at once, whatever its expiry: the taker checks with
//! `pg_try_advisory_xact_lock_shared`, which succeeds only when no session holds the key. The
//! expiry stays as the fallback for a holder that is alive but stalled or unreachable.
//!
//! **Bounds.** Nothing a frozen process holds can block another one for long: every transaction that
//! locks a lease row sets `idle_in_transaction_session_timeout` ([`HOLD_TIMEOUT`]), so the server ends
//! a frozen holder's transaction (and its locks) by itself, and `lock_timeout` ([`WAIT_TIMEOUT`]), so
//! a lease statement gives up instead of waiting behind a lock.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::model::AccountId;

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The account it covers.
    pub account_id: AccountId,
    /// Who holds it (a replica ID).
    pub holder: String,
    /// Which takeover this is.
    pub epoch: i64,
}

/// How long a transaction that locked a lease row may sit idle before the server ends it: a holder
/// frozen (SIGSTOP, paused VM) inside a page's transaction loses that transaction after this long,
/// so its share lock never blocks a takeover for more than this.
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a lease statement waits for a row lock before giving up (the account counts as busy).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(2);

/// The SQL expression of the advisory-lock key of a holder (`$holder` text): a 64-bit hash of the
/// replica ID. The holder's presence connection holds `pg_advisory_lock` on it.
pub const PRESENCE_KEY_SQL: &str = "hashtextextended($1, 7283)";

fn secs(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Bound the current transaction: it may not sit idle longer than [`HOLD_TIMEOUT`], and its
/// statements wait at most [`WAIT_TIMEOUT`] for a lock.
pub async fn bound_transaction(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('idle_in_transaction_session_timeout', $1, true),
                set_config('lock_timeout', $2, true)",
    )
    .bind(ms(HOLD_TIMEOUT))
    .bind(ms(WAIT_TIMEOUT))
    .execute(conn)
    .await?;
    Ok(())
}

/// True when the error is Postgres giving up on a lock (`lock_not_available`, 55P03).
pub fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03")
}

/// On the presence connection: hold the holder's advisory lock for the life of the session. Waits at
/// most [`WAIT_TIMEOUT`] (a taker checking liveness holds the key for an instant).
pub async fn hold_presence(conn: &mut PgConnection, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('lock_timeout', $1, false)")
        .bind(ms(WAIT_TIMEOUT))
        .execute(&mut *conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_lock({PRESENCE_KEY_SQL})::text"
    )))
    .bind(holder)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Is `holder`'s presence lock held by some session right now? (For tests and `status`.)
pub async fn holder_alive(pool: &PgPool, holder: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let free: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pg_try_advisory_xact_lock_shared({PRESENCE_KEY_SQL})"
    )))
    .bind(holder)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(!free)
}

/// Take the account's lease if it is free, expired, held by a holder whose presence is gone, or
/// already ours. `None` when another live holder has it (or its row stayed locked past
/// [`WAIT_TIMEOUT`]).
///
/// A takeover closes, in the same transaction, every run of the account still marked `running` as
/// `interrupted` (with the takeover's time as its end), so the previous holder's runs end before any
/// run of the new holder starts and a stale holder cannot finish them later.
pub async fn try_acquire(
    pool: &PgPool,
    account_id: AccountId,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    bound_transaction(&mut tx).await?;
    // `pg_try_advisory_xact_lock_shared` succeeds only when no session holds the previous holder's
    // presence lock: that holder is gone. (The shared lock itself ends with this transaction.)
    let taken: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO lightspeed_sync.leases AS l (account_id, holder, epoch, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3))
         ON CONFLICT (account_id) DO UPDATE
         SET holder = excluded.holder, epoch = l.epoch + 1, expires_at = excluded.expires_at,
             acquired_at = clock_timestamp()
         WHERE l.expires_at < now() OR l.holder = excluded.holder
            OR pg_try_advisory_xact_lock_shared(hashtextextended(l.holder, 7283))
         RETURNING epoch",
    )
    .bind(account_id)
    .bind(holder)
    .bind(secs(ttl))
    .fetch_optional(&mut *tx)
    .await;
    let epoch = match taken {
        Ok(Some(epoch)) => epoch,
        Ok(None) => return Ok(None),
        Err(e) if is_lock_timeout(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    // A fresh snapshot (this statement runs after the lease row is ours): it sees every run a
    // previous holder started before the takeover.
    let closed = sqlx::query(
        "UPDATE lightspeed_sync.runs SET status = 'interrupted', finished_at = clock_timestamp(),
             error = coalesce(error, 'interrupted: the account was taken over (its process stopped or stalled)')
         WHERE account_id = $1 AND status = 'running'",
    )
    .bind(account_id)
    .execute(&mut *tx)
    .await;
    match closed {
        Ok(_) => {}
        Err(e) if is_lock_timeout(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    tx.commit().await?;
    Ok(Some(Lease {
        account_id,
        holder: holder.to_string(),
        epoch,
    }))
}

/// Of `account_ids`, those whose lease could be taken now (no lease, expired, or its holder's
/// presence is gone): one statement for any number of accounts (`sync --wait` polls with it).
pub async fn takeable(
    pool: &PgPool,
    account_ids: &[AccountId],
) -> Result<Vec<AccountId>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<AccountId> = sqlx::query_scalar(
        "SELECT a.id FROM unnest($1::bigint[]) AS a(id)
         LEFT JOIN lightspeed_sync.leases l ON l.account_id = a.id
         WHERE l.account_id IS NULL OR l.expires_at < now()
            OR pg_try_advisory_xact_lock_shared(hashtextextended(l.holder, 7283))
         ORDER BY a.id",
    )
    .bind(account_ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids)
}

/// Extend a lease we still hold. False when it was lost (expired and taken over).
pub async fn renew(pool: &PgPool, lease: &Lease, ttl: Duration) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    bound_transaction(&mut tx).await?;
    let done = sqlx::query(
        "UPDATE lightspeed_sync.leases SET expires_at = now() + make_interval(secs => $4)
         WHERE account_id = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
    )
    .bind(lease.account_id)
    .bind(&lease.holder)
    .bind(lease.epoch)
    .bind(secs(ttl))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Extend many leases of `holder` in one statement (a process renews all it holds at once, not a
/// statement per account). Each row is checked as [`renew`] does (holder, epoch, not expired). Rows
/// locked right now (a page's transaction holds a share lock on its lease row) are skipped, not
/// waited for: the caller asks again for those ([`still_held`] tells them from lost ones). Returns
/// the accounts renewed.
pub async fn renew_many(
    pool: &PgPool,
    holder: &str,
    leases: &[(AccountId, i64)],
    ttl: Duration,
) -> Result<Vec<AccountId>, sqlx::Error> {
    let (ids, epochs): (Vec<AccountId>, Vec<i64>) = leases.iter().copied().unzip();
    let mut tx = pool.begin().await?;
    bound_transaction(&mut tx).await?;
    let renewed: Vec<AccountId> = sqlx::query_scalar(
        "WITH held AS (
             SELECT l.account_id FROM lightspeed_sync.leases l
             JOIN unnest($1::bigint[], $2::bigint[]) AS h(account_id, epoch)
               ON h.account_id = l.account_id AND h.epoch = l.epoch
             WHERE l.holder = $3 AND l.expires_at > now()
             ORDER BY l.account_id
             FOR UPDATE OF l SKIP LOCKED)
         UPDATE lightspeed_sync.leases l SET expires_at = now() + make_interval(secs => $4)
         FROM held WHERE l.account_id = held.account_id
         RETURNING l.account_id",
    )
    .bind(&ids)
    .bind(&epochs)
    .bind(holder)
    .bind(secs(ttl))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(renewed)
}

/// Of `leases` (account, epoch) of `holder`, those still held and unexpired, read without waiting
/// for any lock (a lease missing here was taken over or has expired: it is lost).
pub async fn still_held(
    pool: &PgPool,
    holder: &str,
    leases: &[(AccountId, i64)],
) -> Result<Vec<AccountId>, sqlx::Error> {
    let (ids, epochs): (Vec<AccountId>, Vec<i64>) = leases.iter().copied().unzip();
    sqlx::query_scalar(
        "SELECT l.account_id FROM lightspeed_sync.leases l
         JOIN unnest($1::bigint[], $2::bigint[]) AS h(account_id, epoch)
           ON h.account_id = l.account_id AND h.epoch = l.epoch
         WHERE l.holder = $3 AND l.expires_at > now()",
    )
    .bind(&ids)
    .bind(&epochs)
    .bind(holder)
    .fetch_all(pool)
    .await
}

/// Inside a checkpoint's transaction (first thing): is the lease still ours and unexpired? Holds a
/// share lock on the lease row until the transaction ends, so no takeover can slip in between this
/// check and the commit. Also bounds the transaction ([`bound_transaction`]): if this process
/// freezes before committing, the server ends the transaction after [`HOLD_TIMEOUT`], so the share
/// lock cannot hold a takeover up, and nothing of it commits.
pub async fn verify(conn: &mut PgConnection, lease: &Lease) -> Result<bool, sqlx::Error> {
    bound_transaction(&mut *conn).await?;
    let ok: Result<Option<i32>, sqlx::Error> = sqlx::query_scalar(
        "SELECT 1 FROM lightspeed_sync.leases
         WHERE account_id = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()
         FOR SHARE",
    )
    .bind(lease.account_id)
    .bind(&lease.holder)
    .bind(lease.epoch)
    .fetch_optional(conn)
    .await;
    match ok {
        Ok(ok) => Ok(ok.is_some()),
        // Waiting behind a takeover in progress: the lease is going.
        Err(e) if is_lock_timeout(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Give a lease up so another replica may take the account at once.
pub async fn release(pool: &PgPool, lease: &Lease) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    bound_transaction(&mut tx).await?;
    sqlx::query(
        "UPDATE lightspeed_sync.leases SET expires_at = now() - interval '1 second'
         WHERE account_id = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(lease.account_id)
    .bind(&lease.holder)
    .bind(lease.epoch)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
