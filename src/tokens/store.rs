//! Credentials at rest: encrypts and decrypts rows of `lightspeed_sync.credentials` with the
//! [`Keyring`], and offers what the sync engine and `status` need without secrets
//! ([`list_accounts`], [`mark_needs_reauth`]). Re-authorizing an account replaces its row.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::db::credentials::{self, CredentialRow, EncryptedPair};
use crate::model::AccountId;
use crate::tokens::crypto::{DecryptError, Keyring, TokenField};

pub use crate::model::AccountStatus;

/// One account's credentials, without secrets (for `status`, the scheduler and the sync engine).
pub use crate::db::credentials::CredentialSummary as AccountCredentialInfo;

/// A decrypted row.
pub struct StoredCredentials {
    /// Lightspeed account ID.
    pub account_id: AccountId,
    /// Account name.
    pub account_name: String,
    /// Bumped on every stored rotation.
    pub generation: i64,
    /// Connected or needing re-authorization.
    pub status: AccountStatus,
    /// Why the status last changed.
    pub status_reason: Option<String>,
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token.
    pub refresh_token: SecretString,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
    /// When the access token was obtained.
    pub issued_at: DateTime<Utc>,
    /// When the account was (re-)authorized.
    pub connected_at: DateTime<Utc>,
}

impl fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("account_id", &self.account_id)
            .field("generation", &self.generation)
            .field("status", &self.status)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

/// A token pair to store.
pub struct NewTokens<'a> {
    /// The access token.
    pub access_token: &'a SecretString,
    /// The refresh token.
    pub refresh_token: &'a SecretString,
    /// When the access token expires.
    pub access_expires_at: DateTime<Utc>,
}

/// Why the store could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (the message names the account; it never contains a token).
    #[error("database error on the credentials of account {account_id}")]
    Db {
        /// The account.
        account_id: AccountId,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// The row could not be decrypted.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
}

/// What [`TokenStore::rekey`] did with one account's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyOutcome {
    /// Decrypted with the key of version `from` and written again with the current key.
    Reencrypted {
        /// The key version the row had.
        from: i32,
    },
    /// Already encrypted with the current key: nothing written.
    AlreadyCurrent,
    /// The row was deleted meanwhile (`disconnect`).
    Gone,
}

/// Why [`TokenStore::rekey`] left a row as it was.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// No configured key decrypts it, or the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process held the row (a token refresh takes one request) for longer than allowed.
    #[error(
        "the credentials of account {account_id} stayed locked for more than {waited:?} (a token \
         refresh in flight?); run `lightspeed-sync rekey` again"
    )]
    Locked {
        /// The account.
        account_id: AccountId,
        /// How long `rekey` waited.
        waited: Duration,
    },
}

/// Encrypted credentials in Postgres.
#[derive(Clone)]
pub struct TokenStore {
    pool: PgPool,
    keyring: Arc<Keyring>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field("key_version", &self.keyring.current_version())
            .finish_non_exhaustive()
    }
}

impl TokenStore {
    /// A store on `pool` using `keyring`.
    pub fn new(pool: PgPool, keyring: Arc<Keyring>) -> Self {
        Self { pool, keyring }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Store the tokens of a freshly authorized account, replacing any earlier credentials and
    /// setting the status back to connected. Returns the new generation.
    pub async fn save_authorized(
        &self,
        account_id: AccountId,
        account_name: &str,
        tokens: &NewTokens<'_>,
    ) -> Result<i64, StoreError> {
        let (key_version, access, refresh) = self.encrypt_pair(account_id, tokens);
        let pair = EncryptedPair {
            key_version,
            access_token_enc: &access,
            refresh_token_enc: &refresh,
            access_expires_at: tokens.access_expires_at,
        };
        credentials::upsert_authorized(&self.pool, account_id, account_name, &pair)
            .await
            .map_err(|source| StoreError::Db { account_id, source })
    }

    /// The decrypted credentials of an account, if it has any.
    pub async fn load(
        &self,
        account_id: AccountId,
    ) -> Result<Option<StoredCredentials>, StoreError> {
        let row = credentials::select(&self.pool, account_id)
            .await
            .map_err(|source| StoreError::Db { account_id, source })?;
        row.map(|r| self.decrypt_row(&r)).transpose()
    }

    /// Decrypt a row read by the caller (e.g. under `FOR UPDATE`).
    pub fn decrypt_row(&self, row: &CredentialRow) -> Result<StoredCredentials, StoreError> {
        let account_id = row.account_id;
        let access = self.keyring.decrypt(
            account_id,
            row.key_version,
            TokenField::Access,
            &row.access_token_enc,
        )?;
        let refresh = self.keyring.decrypt(
            account_id,
            row.key_version,
            TokenField::Refresh,
            &row.refresh_token_enc,
        )?;
        Ok(StoredCredentials {
            account_id,
            account_name: row.account_name.clone(),
            generation: row.generation,
            status: row.status,
            status_reason: row.status_reason.clone(),
            access_token: access,
            refresh_token: refresh,
            access_expires_at: row.access_expires_at,
            issued_at: row.refreshed_at.unwrap_or(row.connected_at),
            connected_at: row.connected_at,
        })
    }

    /// Re-encrypt one account's tokens with the current key, in a transaction of its own that holds
    /// the row lock (`FOR UPDATE`, waiting at most `lock_wait`): a token refresh of a running daemon,
    /// which takes the same lock, either finishes first (and its new pair is what gets re-encrypted)
    /// or waits for this one. Idempotent: a row already under the current key is left alone. A row
    /// no configured key decrypts is left as it is and reported.
    pub async fn rekey(
        &self,
        account_id: AccountId,
        lock_wait: Duration,
    ) -> Result<RekeyOutcome, RekeyError> {
        let db = |source| RekeyError::Store(StoreError::Db { account_id, source });
        let mut tx = self.pool.begin().await.map_err(db)?;
        let wait_ms = u64::try_from(lock_wait.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        credentials::set_local_lock_timeout(&mut *tx, wait_ms)
            .await
            .map_err(db)?;
        let row = match credentials::select_for_update(&mut *tx, account_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(RekeyOutcome::Gone),
            Err(e) if credentials::is_lock_timeout(&e) => {
                return Err(RekeyError::Locked {
                    account_id,
                    waited: lock_wait,
                });
            }
            Err(e) => return Err(db(e)),
        };
        // Either way out below ends the transaction at once, so the lock is not held any longer.
        if row.key_version == self.keyring.current_version() {
            tx.rollback().await.map_err(db)?;
            return Ok(RekeyOutcome::AlreadyCurrent);
        }
        let creds = match self.decrypt_row(&row) {
            Ok(creds) => creds,
            Err(e) => {
                tx.rollback().await.map_err(db)?;
                return Err(e.into());
            }
        };
        let (key_version, access, refresh) = self.encrypt_pair(
            account_id,
            &NewTokens {
                access_token: &creds.access_token,
                refresh_token: &creds.refresh_token,
                access_expires_at: creds.access_expires_at,
            },
        );
        let updated = credentials::update_key(
            &mut *tx,
            row.account_id,
            row.generation,
            key_version,
            &access,
            &refresh,
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(if updated {
            RekeyOutcome::Reencrypted {
                from: row.key_version,
            }
        } else {
            RekeyOutcome::Gone
        })
    }

    /// Encrypt a pair with the current key: `(key_version, access ciphertext, refresh ciphertext)`.
    pub fn encrypt_pair(
        &self,
        account_id: AccountId,
        tokens: &NewTokens<'_>,
    ) -> (i32, Vec<u8>, Vec<u8>) {
        let (version, access) =
            self.keyring
                .encrypt(account_id, TokenField::Access, tokens.access_token);
        let (_, refresh) =
            self.keyring
                .encrypt(account_id, TokenField::Refresh, tokens.refresh_token);
        (version, access, refresh)
    }
}

/// Every account with credentials, ordered by ID, without secrets.
pub async fn list_accounts(pool: &PgPool) -> Result<Vec<AccountCredentialInfo>, sqlx::Error> {
    credentials::list(pool).await
}

/// Mark an account as needing re-authorization (the sync engine may call this when the API itself
/// says the grant is gone). Returns whether the account existed. Its mirrored data is kept.
pub async fn mark_needs_reauth(
    pool: &PgPool,
    account_id: AccountId,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    credentials::mark_needs_reauth(pool, account_id, reason, None).await
}

/// Forget an account's credentials (without revoking them; see `tokens::authorize::disconnect`).
pub async fn delete(pool: &PgPool, account_id: AccountId) -> Result<bool, sqlx::Error> {
    credentials::delete(pool, account_id).await
}
