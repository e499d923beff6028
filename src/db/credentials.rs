//! Statements on `lightspeed_sync.credentials`: one row per connected account, tokens as AEAD
//! ciphertexts (this module never sees plaintext). Each function is one statement; callers choose
//! the transaction (`SELECT … FOR UPDATE` is only meaningful inside one).

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::model::{AccountId, AccountStatus};

/// A whole row (ciphertexts included).
#[derive(Clone, sqlx::FromRow)]
pub struct CredentialRow {
    /// Lightspeed account ID.
    pub account_id: AccountId,
    /// Account name (may be empty).
    pub account_name: String,
    /// Version of the key the tokens are encrypted with.
    pub key_version: i32,
    /// `nonce ‖ ciphertext ‖ tag` of the access token.
    pub access_token_enc: Vec<u8>,
    /// `nonce ‖ ciphertext ‖ tag` of the refresh token.
    pub refresh_token_enc: Vec<u8>,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// Bumped on every stored rotation or re-authorization.
    pub generation: i64,
    /// `connected` or `needs_reauth`.
    pub status: AccountStatus,
    /// Why the status last changed.
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// When the account was (re-)authorized.
    pub connected_at: DateTime<Utc>,
    /// When the tokens were last refreshed.
    pub refreshed_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for CredentialRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialRow")
            .field("account_id", &self.account_id)
            .field("key_version", &self.key_version)
            .field("generation", &self.generation)
            .field("status", &self.status)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// The cheap part of a row: enough to decide whether a cached token is still current.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CredentialState {
    /// Bumped on every stored rotation.
    pub generation: i64,
    /// `connected` or `needs_reauth`.
    pub status: AccountStatus,
    /// Why the status last changed.
    pub status_reason: Option<String>,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// When the current access token was obtained (`refreshed_at`, else `connected_at`).
    pub issued_at: DateTime<Utc>,
    /// When the account was (re-)authorized.
    pub connected_at: DateTime<Utc>,
}

/// A row without its ciphertexts: one account's credentials, without secrets (for `status`, the
/// scheduler and the sync engine; `tokens::store::AccountCredentialInfo`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CredentialSummary {
    /// Lightspeed account ID.
    pub account_id: AccountId,
    /// Account name.
    pub account_name: String,
    /// `connected` or `needs_reauth`.
    pub status: AccountStatus,
    /// Why the status last changed.
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// When the account was (re-)authorized.
    pub connected_at: DateTime<Utc>,
    /// When the tokens were last refreshed.
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// Encrypted tokens to write.
pub struct EncryptedPair<'a> {
    /// Version of the key used.
    pub key_version: i32,
    /// Access token ciphertext.
    pub access_token_enc: &'a [u8],
    /// Refresh token ciphertext.
    pub refresh_token_enc: &'a [u8],
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "account_id, account_name, key_version, access_token_enc, refresh_token_enc, \
    access_expires_at, generation, status, status_reason, status_changed_at, connected_at, refreshed_at";

/// Insert or replace an account's credentials after `authorize`: status back to connected,
/// generation bumped. Returns the new generation.
pub async fn upsert_authorized(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
    account_name: &str,
    pair: &EncryptedPair<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        r#"
        INSERT INTO lightspeed_sync.credentials AS c
            (account_id, account_name, key_version, access_token_enc, refresh_token_enc,
             access_expires_at, generation, status, status_changed_at, connected_at)
        VALUES ($1, $2, $3, $4, $5, $6, 1, 'connected', now(), now())
        ON CONFLICT (account_id) DO UPDATE SET
            account_name = CASE WHEN excluded.account_name <> '' THEN excluded.account_name ELSE c.account_name END,
            key_version = excluded.key_version,
            access_token_enc = excluded.access_token_enc,
            refresh_token_enc = excluded.refresh_token_enc,
            access_expires_at = excluded.access_expires_at,
            generation = c.generation + 1,
            status = 'connected',
            status_reason = NULL,
            status_changed_at = CASE WHEN c.status <> 'connected' THEN now() ELSE c.status_changed_at END,
            connected_at = now(),
            refreshed_at = NULL
        RETURNING generation
        "#,
    )
    .bind(account_id)
    .bind(account_name)
    .bind(pair.key_version)
    .bind(pair.access_token_enc)
    .bind(pair.refresh_token_enc)
    .bind(pair.access_expires_at)
    .fetch_one(ex)
    .await
}

/// The row, without locking.
pub async fn select(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM lightspeed_sync.credentials WHERE account_id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .fetch_optional(ex)
        .await
}

/// The row, locked until the end of the caller's transaction (`FOR UPDATE`).
pub async fn select_for_update(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
) -> Result<Option<CredentialRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM lightspeed_sync.credentials WHERE account_id = $1 FOR UPDATE"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .fetch_optional(ex)
        .await
}

/// Generation, status and expiry only (no ciphertext, no decryption needed).
pub async fn select_state(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
) -> Result<Option<CredentialState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT generation, status, status_reason, access_expires_at, \
         coalesce(refreshed_at, connected_at) AS issued_at, connected_at \
         FROM lightspeed_sync.credentials WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(ex)
    .await
}

/// Store a rotated pair if the row is still at `expected_generation`; returns the new generation, or
/// `None` when the row changed meanwhile (or is gone).
pub async fn update_rotated(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
    expected_generation: i64,
    pair: &EncryptedPair<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        r#"
        UPDATE lightspeed_sync.credentials SET
            key_version = $3, access_token_enc = $4, refresh_token_enc = $5, access_expires_at = $6,
            generation = generation + 1, refreshed_at = now()
        WHERE account_id = $1 AND generation = $2
        RETURNING generation
        "#,
    )
    .bind(account_id)
    .bind(expected_generation)
    .bind(pair.key_version)
    .bind(pair.access_token_enc)
    .bind(pair.refresh_token_enc)
    .bind(pair.access_expires_at)
    .fetch_optional(ex)
    .await
}

/// Replace the ciphertexts of a row by the same tokens under another key (`rekey`), if the row is
/// still at `expected_generation`; call it with the row locked (`FOR UPDATE`). Generation, expiry and
/// status stay as they are: the tokens did not change, so whatever a process cached stays valid.
/// Returns whether the row changed.
pub async fn update_key(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
    expected_generation: i64,
    key_version: i32,
    access_token_enc: &[u8],
    refresh_token_enc: &[u8],
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        r#"
        UPDATE lightspeed_sync.credentials SET
            key_version = $3, access_token_enc = $4, refresh_token_enc = $5
        WHERE account_id = $1 AND generation = $2
        "#,
    )
    .bind(account_id)
    .bind(expected_generation)
    .bind(key_version)
    .bind(access_token_enc)
    .bind(refresh_token_enc)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every account ID with credentials, ordered.
pub async fn list_ids(ex: impl PgExecutor<'_>) -> Result<Vec<AccountId>, sqlx::Error> {
    sqlx::query_scalar("SELECT account_id FROM lightspeed_sync.credentials ORDER BY account_id")
        .fetch_all(ex)
        .await
}

/// Mark the account as needing re-authorization (only if still at `expected_generation`, when given).
/// Returns whether a row changed.
pub async fn mark_needs_reauth(
    ex: impl PgExecutor<'_>,
    account_id: AccountId,
    reason: &str,
    expected_generation: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        r#"
        UPDATE lightspeed_sync.credentials SET
            status = 'needs_reauth', status_reason = $2, status_changed_at = now()
        WHERE account_id = $1 AND ($3::bigint IS NULL OR generation = $3)
        "#,
    )
    .bind(account_id)
    .bind(reason)
    .bind(expected_generation)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Forget an account's credentials. Returns whether a row was deleted.
pub async fn delete(ex: impl PgExecutor<'_>, account_id: AccountId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM lightspeed_sync.credentials WHERE account_id = $1")
        .bind(account_id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Every account, ordered by ID, without ciphertexts.
pub async fn list(ex: impl PgExecutor<'_>) -> Result<Vec<CredentialSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, account_name, status, status_reason, status_changed_at, access_expires_at, \
         connected_at, refreshed_at FROM lightspeed_sync.credentials ORDER BY account_id",
    )
    .fetch_all(ex)
    .await
}

/// Bound how long statements of the current transaction wait for a row lock (`SET LOCAL lock_timeout`).
pub async fn set_local_lock_timeout(
    ex: impl PgExecutor<'_>,
    millis: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{millis}ms"))
        .execute(ex)
        .await?;
    Ok(())
}

/// True when the error is Postgres giving up on a lock (`lock_not_available`, 55P03).
pub fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03")
}
