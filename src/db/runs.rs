//! Statements on `lightspeed_sync.runs`: one row per run of one stream of one account.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::model::{AccountId, Kind, RunStatus, Stream};

/// A run as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRecord {
    /// Row ID.
    pub run_id: i64,
    /// Account.
    pub account_id: AccountId,
    /// `accounts` or `customers`.
    pub stream: Stream,
    /// `incremental`, `full` or `contacts`.
    pub kind: Kind,
    /// Start (database clock).
    pub started_at: DateTime<Utc>,
    /// End, when finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub status: RunStatus,
    /// Pages committed.
    pub pages: i32,
    /// Rows written.
    pub rows: i64,
    /// API requests made.
    pub requests: i32,
    /// 429 responses received.
    pub throttled: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// Customers erased (seen anonymized for the first time).
    pub erased: i64,
}

/// Why a run could not be recorded as started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// This process no longer holds the account's lease (another replica took it over, or it
    /// expired while the process stalled): the run is not started, so it cannot overlap the new
    /// holder's runs.
    #[error(
        "the lease on account {account_id} is no longer held by this process (another replica took \
         the account over); the run was not started"
    )]
    NotHeld {
        /// The account.
        account_id: AccountId,
    },
}

/// Record the start of a run, only while `replica` holds the account's unexpired lease (checked
/// under a share lock on the lease row in the same statement, so a takeover either sees this run and
/// closes it, or this statement sees the takeover and starts nothing). Runs a previous holder left
/// `running` were closed as `interrupted` when the lease was taken
/// ([`crate::db::leases::try_acquire`]). Returns the run ID and its start time.
pub async fn start(
    pool: &PgPool,
    account_id: AccountId,
    stream: Stream,
    kind: Kind,
    replica: &str,
) -> Result<(i64, DateTime<Utc>), StartError> {
    let mut tx = pool.begin().await?;
    crate::db::leases::bound_transaction(&mut tx).await?;
    let row: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO lightspeed_sync.runs (account_id, stream, kind, replica)
         SELECT l.account_id, $2, $3, $4 FROM lightspeed_sync.leases l
         WHERE l.account_id = $1 AND l.holder = $4 AND l.expires_at > now()
         FOR SHARE OF l
         RETURNING run_id, started_at",
    )
    .bind(account_id)
    .bind(stream)
    .bind(kind)
    .bind(replica)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| {
        if crate::db::leases::is_lock_timeout(&e) {
            StartError::NotHeld { account_id }
        } else {
            StartError::Db(e)
        }
    })?;
    let Some(row) = row else {
        return Err(StartError::NotHeld { account_id });
    };
    tx.commit().await?;
    Ok(row)
}

/// Count a committed page (inside the page's transaction).
pub async fn add_page(
    conn: &mut PgConnection,
    run_id: i64,
    rows: i64,
    requests: i32,
    throttled: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed_sync.runs SET pages = pages + 1, rows = rows + $2,
             requests = requests + $3, throttled = throttled + $4
         WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(rows)
    .bind(requests)
    .bind(throttled)
    .execute(conn)
    .await?;
    Ok(())
}

/// Count customers erased by a page (inside the page's transaction).
pub async fn add_erased(
    conn: &mut PgConnection,
    run_id: i64,
    erased: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE lightspeed_sync.runs SET erased = erased + $2 WHERE run_id = $1")
        .bind(run_id)
        .bind(erased)
        .execute(conn)
        .await?;
    Ok(())
}

/// Add requests that produced no committed page (a failed fetch, the tail of a walk, an account's
/// detail); only while the run is still open.
pub async fn add_requests<'e>(
    conn: impl sqlx::PgExecutor<'e>,
    run_id: i64,
    requests: i32,
    throttled: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed_sync.runs SET requests = requests + $2, throttled = throttled + $3
         WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(requests)
    .bind(throttled)
    .execute(conn)
    .await?;
    Ok(())
}

/// Record the end of a run, once: only a run still `running` is closed. A run that was closed
/// meanwhile (`interrupted` by a replica that took the account over) keeps the record the new holder
/// wrote; false then.
pub async fn finish(
    pool: &PgPool,
    run_id: i64,
    status: RunStatus,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lightspeed_sync.runs SET status = $2, error = $3, finished_at = now()
         WHERE run_id = $1 AND status = 'running'",
    )
    .bind(run_id)
    .bind(status)
    .bind(error)
    .execute(pool)
    .await?;
    let closed = done.rows_affected() == 1;
    if !closed {
        tracing::info!(
            run_id,
            status = status.as_str(),
            "the run was already closed (the account was taken over); its record is kept as it is"
        );
    }
    Ok(closed)
}

/// A run by ID.
pub async fn get(pool: &PgPool, run_id: i64) -> Result<RunRecord, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, account_id, stream, kind, started_at, finished_at, status, pages, rows,
                requests, throttled, error, erased
         FROM lightspeed_sync.runs WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await
}
