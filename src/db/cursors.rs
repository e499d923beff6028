//! Statements on `lightspeed_sync.cursors`: where each stream's incremental sync resumes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::model::{AccountId, Stream};

/// The stored watermark of a stream (the newest `timeStamp` committed), if any.
pub async fn watermark(
    pool: &PgPool,
    account_id: AccountId,
    stream: Stream,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let row: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(
        "SELECT watermark FROM lightspeed_sync.cursors WHERE account_id = $1 AND stream = $2",
    )
    .bind(account_id)
    .bind(stream)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| r.0))
}

/// Advance the watermark (never backwards), inside the page's transaction.
pub async fn advance(
    conn: &mut PgConnection,
    account_id: AccountId,
    stream: Stream,
    watermark: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lightspeed_sync.cursors AS c (account_id, stream, watermark, updated_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (account_id, stream) DO UPDATE
         SET watermark = GREATEST(c.watermark, excluded.watermark), updated_at = now()",
    )
    .bind(account_id)
    .bind(stream)
    .bind(watermark)
    .execute(conn)
    .await?;
    Ok(())
}
