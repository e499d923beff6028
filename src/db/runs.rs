//! Statements on `lightspeed_sync.runs`: one row per run of one stream of one account.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// A run as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRecord {
    /// Row ID.
    pub run_id: i64,
    /// Account.
    pub account_id: i64,
    /// `accounts` or `customers`.
    pub stream: String,
    /// `incremental` or `full`.
    pub kind: String,
    /// Start (database clock).
    pub started_at: DateTime<Utc>,
    /// End, when finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub status: String,
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
}

/// Record the start of a run; runs of the same account and stream still marked `running` (a crashed
/// process) become `interrupted`. Returns the run ID and its start time.
pub async fn start(
    pool: &PgPool,
    account_id: i64,
    stream: &str,
    kind: &str,
    replica: &str,
) -> Result<(i64, DateTime<Utc>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE lightspeed_sync.runs SET status = 'interrupted', finished_at = now(),
             error = coalesce(error, 'the process stopped before the run finished')
         WHERE account_id = $1 AND stream = $2 AND status = 'running'",
    )
    .bind(account_id)
    .bind(stream)
    .execute(&mut *tx)
    .await?;
    let row: (i64, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO lightspeed_sync.runs (account_id, stream, kind, replica)
         VALUES ($1, $2, $3, $4) RETURNING run_id, started_at",
    )
    .bind(account_id)
    .bind(stream)
    .bind(kind)
    .bind(replica)
    .fetch_one(&mut *tx)
    .await?;
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

/// Add requests that produced no committed page (a failed fetch, the tail of a walk).
pub async fn add_requests(
    pool: &PgPool,
    run_id: i64,
    requests: i32,
    throttled: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed_sync.runs SET requests = requests + $2, throttled = throttled + $3
         WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(requests)
    .bind(throttled)
    .execute(pool)
    .await?;
    Ok(())
}

/// Record the end of a run.
pub async fn finish(
    pool: &PgPool,
    run_id: i64,
    status: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed_sync.runs SET status = $2, error = $3, finished_at = now()
         WHERE run_id = $1",
    )
    .bind(run_id)
    .bind(status)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// A run by ID.
pub async fn get(pool: &PgPool, run_id: i64) -> Result<RunRecord, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, account_id, stream, kind, started_at, finished_at, status, pages, rows,
                requests, throttled, error
         FROM lightspeed_sync.runs WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await
}
