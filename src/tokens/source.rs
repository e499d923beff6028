//! The token source: hands the API client a fresh access token per account and refreshes it without
//! ever forking Lightspeed's rotating refresh-token chain.
//!
//! # Protocol
//!
//! - **Fast path.** A cheap `SELECT generation, status, access_expires_at` per call; the decrypted
//!   token is cached per account with its version (`connected_at`, `generation`), and used only while
//!   that version is still the stored one and it is not within the refresh margin of expiry.
//! - **Single flight in a process.** One `tokio::sync::Mutex` per account; waiters re-check after
//!   acquiring it and find the token another task just stored.
//! - **Single flight across processes.** `BEGIN; SELECT … FOR UPDATE` (bounded by `lock_timeout`);
//!   re-read and decrypt; only if a refresh is still needed call the token endpoint while holding the
//!   lock; `UPDATE` the new pair (generation + 1); `COMMIT`; only then use the new access token. The
//!   new pair is durable before its access token is first used, so a crash loses nothing: Lightspeed
//!   keeps the old refresh token valid until the new access token is used.
//! - **Failures.** `invalid_grant` → re-read once (another worker may have rotated); if nothing
//!   changed, mark the account `needs_reauth`, log one line, and refuse it from then on without
//!   calling the token endpoint. Transient failures → capped exponential backoff with jitter
//!   (honouring `Retry-After`), a few attempts, then a failure that is never `needs_reauth`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::config::{ConfigError, LightspeedSettings, Settings};
use crate::db::credentials::{self, EncryptedPair};
use crate::lightspeed::oauth::{OAuthClient, OAuthError, TokenResponse};
use crate::lightspeed::retry::Backoff;
use crate::lightspeed::{AuthFailure, BoxFuture, TokenProvider};
use crate::model::AccountId;
use crate::tokens::crypto::{KeyError, Keyring};
use crate::tokens::store::{AccountStatus, NewTokens, StoreError, StoredCredentials, TokenStore};

/// How refresh attempts are retried on transient failures: the API client's [`Backoff`], with
/// fewer attempts and a `Retry-After` ceiling of their own.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1). Lightspeed allows 5 retries of one refresh grant per minute.
    pub attempts: u32,
    /// The delay before a retry when the server sent no `Retry-After`.
    pub backoff: Backoff,
    /// A `Retry-After` longer than this ends the attempts at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Backoff {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(20),
            },
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The default policy with `lightspeed.max_attempts` (capped at 5, Lightspeed's per-minute limit).
    pub fn from_settings(settings: &LightspeedSettings) -> Self {
        Self {
            attempts: settings.max_attempts.clamp(1, 5),
            ..Self::default()
        }
    }

    /// How long to wait before retrying after failed attempt number `attempt` (1-based), given the
    /// server's `Retry-After`; `None`: no more attempts (they are used up, or the server asks for a
    /// longer wait than `max_retry_after`, which is better spent failing and trying next run).
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            _ if attempt >= self.attempts => None,
            Some(d) if d > self.max_retry_after => None,
            Some(d) => Some(d),
            None => Some(self.backoff.delay(attempt)),
        }
    }
}

/// The token source could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No or a bad `security.token_key`.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A bad `lightspeed.*` setting (e.g. no client secret).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Which stored pair a token belongs to: a re-authorized account has a later `connected_at`, a
/// rotation a higher `generation`; ordered, so a cache never goes back to an older pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    connected_at: DateTime<Utc>,
    generation: i64,
}

#[derive(Clone)]
struct Cached {
    version: Version,
    access: SecretString,
    expires_at: DateTime<Utc>,
    issued_at: DateTime<Utc>,
}

#[derive(Default)]
struct Shared {
    cache: Mutex<HashMap<AccountId, Cached>>,
    flights: Mutex<HashMap<AccountId, Arc<tokio::sync::Mutex<()>>>>,
}

/// Fresh access tokens per account, refreshed single-flight. Cheap to clone (clones share caches).
#[derive(Clone)]
pub struct TokenSource {
    store: TokenStore,
    oauth: OAuthClient,
    margin: Duration,
    retry: RetryPolicy,
    lock_wait: Duration,
    shared: Arc<Shared>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("margin", &self.margin)
            .field("retry", &self.retry)
            .field("lock_wait", &self.lock_wait)
            .finish_non_exhaustive()
    }
}

/// What the caller needs from the refresh path.
#[derive(Clone, Copy)]
enum Need<'a> {
    /// A token not within the margin of expiry.
    Fresh,
    /// A token other than this one (the API rejected it).
    Replace(&'a SecretString),
}

/// Outcome of one locked attempt.
enum Step {
    Grant {
        generation: i64,
        description: String,
    },
    Fail(AuthFailure),
}

impl TokenSource {
    /// A source over `store`, refreshing through `oauth` when a token is within `refresh_margin` of
    /// expiry (or half its lifetime, if that is shorter).
    pub fn new(store: TokenStore, oauth: OAuthClient, refresh_margin: Duration) -> Self {
        Self {
            store,
            oauth,
            margin: refresh_margin,
            retry: RetryPolicy::default(),
            lock_wait: Duration::from_secs(120),
            shared: Arc::default(),
        }
    }

    /// Everything from the settings: the key (refused if missing), the OAuth client, margin, retries.
    pub fn from_settings(settings: &Settings, pool: PgPool) -> Result<Self, SetupError> {
        let keyring = Arc::new(Keyring::from_settings(&settings.security)?);
        let oauth = OAuthClient::from_settings(&settings.lightspeed)?;
        let store = TokenStore::new(pool, keyring);
        let retry = RetryPolicy::from_settings(&settings.lightspeed);
        // Long enough for another process's refresh with all its retries.
        let lock_wait = (settings.lightspeed.request_timeout + retry.backoff.cap) * retry.attempts
            + Duration::from_secs(10);
        Ok(Self::new(store, oauth, settings.lightspeed.refresh_margin)
            .with_retry_policy(retry)
            .with_lock_wait(lock_wait))
    }

    /// Replace the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long to wait for another process's refresh (the row lock) before failing transiently.
    pub fn with_lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// The store underneath.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The OAuth client.
    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    /// Drop the cached token of an account (e.g. after `disconnect`).
    pub fn forget(&self, account_id: AccountId) {
        lock(&self.shared.cache).remove(&account_id);
    }

    async fn fresh_token(&self, account_id: AccountId) -> Result<SecretString, AuthFailure> {
        let state = credentials::select_state(self.store.pool(), account_id)
            .await
            .map_err(|e| db_failure(account_id, e))?
            .ok_or_else(|| not_connected(account_id))?;
        if state.status != AccountStatus::Connected {
            return Err(refused(account_id, state.status_reason.as_deref()));
        }
        let expiring = self.needs_refresh(state.access_expires_at, state.issued_at);
        if let Some(c) = self.cached(account_id)
            && c.version
                == (Version {
                    connected_at: state.connected_at,
                    generation: state.generation,
                })
            && !expiring
        {
            return Ok(c.access);
        }
        if !expiring {
            let creds = self
                .store
                .load(account_id)
                .await
                .map_err(|e| store_failure(account_id, e))?;
            if let Some(creds) = creds.filter(|c| c.status == AccountStatus::Connected) {
                let access = creds.access_token.clone();
                if !self.needs_refresh(creds.access_expires_at, creds.issued_at) {
                    self.remember(
                        account_id,
                        version_of(&creds),
                        &access,
                        creds.access_expires_at,
                        creds.issued_at,
                    );
                    return Ok(access);
                }
            }
        }
        let seen = Version {
            connected_at: state.connected_at,
            generation: state.generation,
        };
        self.refresh(account_id, None, Some(seen)).await
    }

    /// Refresh in a task of its own, so that a caller giving up (a timeout, a shutdown) cannot cut a
    /// refresh between the token endpoint's answer and the commit of the new pair.
    async fn refresh(
        &self,
        account_id: AccountId,
        rejected: Option<SecretString>,
        seen: Option<Version>,
    ) -> Result<SecretString, AuthFailure> {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let need = rejected.as_ref().map_or(Need::Fresh, Need::Replace);
            this.refresh_in_flight(account_id, need, seen).await
        });
        task.await
            .unwrap_or_else(|e| Err(caused(account_id, "the refresh task failed", e)))
    }

    async fn refresh_in_flight(
        &self,
        account_id: AccountId,
        need: Need<'_>,
        seen: Option<Version>,
    ) -> Result<SecretString, AuthFailure> {
        let flight = self.flight(account_id);
        let _guard = flight.lock().await;
        // Another task of this process may have stored a newer token while we waited.
        if let (Need::Fresh, Some(seen), Some(c)) = (need, seen, self.cached(account_id))
            && c.version > seen
            && !self.needs_refresh(c.expires_at, c.issued_at)
        {
            return Ok(c.access);
        }
        let mut reread = false;
        loop {
            match self.locked_refresh(account_id, need).await {
                Ok(token) => return Ok(token),
                Err(Step::Fail(failure)) => return Err(failure),
                Err(Step::Grant {
                    generation,
                    description,
                }) => {
                    // Re-read once: if another worker rotated the chain meanwhile, use its tokens.
                    let now = credentials::select_state(self.store.pool(), account_id)
                        .await
                        .map_err(|e| db_failure(account_id, e))?;
                    let Some(now) = now else {
                        return Err(not_connected(account_id));
                    };
                    if !reread && now.generation != generation {
                        reread = true;
                        continue;
                    }
                    return Err(self.give_up(account_id, generation, &description).await);
                }
            }
        }
    }

    /// One attempt under the row lock.
    async fn locked_refresh(
        &self,
        account_id: AccountId,
        need: Need<'_>,
    ) -> Result<SecretString, Step> {
        let fail = |f: AuthFailure| Step::Fail(f);
        let mut tx = self
            .store
            .pool()
            .begin()
            .await
            .map_err(|e| fail(db_failure(account_id, e)))?;
        let wait_ms = u64::try_from(self.lock_wait.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        credentials::set_local_lock_timeout(&mut *tx, wait_ms)
            .await
            .map_err(|e| fail(db_failure(account_id, e)))?;
        let row = credentials::select_for_update(&mut *tx, account_id)
            .await
            .map_err(|e| {
                if credentials::is_lock_timeout(&e) {
                    fail(transient(
                        account_id,
                        format!(
                            "another worker held the refresh lock for more than {:?}",
                            self.lock_wait
                        ),
                    ))
                } else {
                    fail(db_failure(account_id, e))
                }
            })?;
        let row = row.ok_or_else(|| fail(not_connected(account_id)))?;
        let creds = self
            .store
            .decrypt_row(&row)
            .map_err(|e| fail(store_failure(account_id, e)))?;
        if creds.status != AccountStatus::Connected {
            return Err(fail(refused(account_id, creds.status_reason.as_deref())));
        }
        let expiring = self.needs_refresh(creds.access_expires_at, creds.issued_at);
        let needed = match need {
            Need::Fresh => expiring,
            Need::Replace(rejected) => {
                expiring || rejected.expose_secret() == creds.access_token.expose_secret()
            }
        };
        if !needed {
            tx.commit()
                .await
                .map_err(|e| fail(db_failure(account_id, e)))?;
            self.remember(
                account_id,
                version_of(&creds),
                &creds.access_token,
                creds.access_expires_at,
                creds.issued_at,
            );
            return Ok(creds.access_token);
        }
        let response = match self
            .call_token_endpoint(account_id, &creds.refresh_token)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(match e {
                    OAuthError::InvalidGrant { description } => Step::Grant {
                        generation: creds.generation,
                        description,
                    },
                    // The endpoint's error has no cause of its own: its text is all of it.
                    other => fail(transient(
                        account_id,
                        format!("token refresh failed: {other}"),
                    )),
                });
            }
        };
        self.store_rotated(
            tx,
            &creds.refresh_token,
            version_of(&creds),
            account_id,
            response,
        )
        .await
        .map_err(fail)
    }

    /// Write the new pair and commit; only then return the new access token.
    async fn store_rotated(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        previous_refresh: &SecretString,
        seen: Version,
        account_id: AccountId,
        response: TokenResponse,
    ) -> Result<SecretString, AuthFailure> {
        let now = Utc::now();
        let expires_at = response.expires_at(now);
        // The legacy server did not rotate: without a new refresh token the old one stays valid.
        let refresh = response
            .refresh_token
            .unwrap_or_else(|| previous_refresh.clone());
        let tokens = NewTokens {
            access_token: &response.access_token,
            refresh_token: &refresh,
            access_expires_at: expires_at,
        };
        let (key_version, access_enc, refresh_enc) = self.store.encrypt_pair(account_id, &tokens);
        let pair = EncryptedPair {
            key_version,
            access_token_enc: &access_enc,
            refresh_token_enc: &refresh_enc,
            access_expires_at: expires_at,
        };
        let stored = credentials::update_rotated(&mut *tx, account_id, seen.generation, &pair)
            .await
            .map_err(|e| db_failure(account_id, e))?;
        let Some(new_generation) = stored else {
            return Err(transient(
                account_id,
                "the credentials changed during the refresh; retry".into(),
            ));
        };
        tx.commit().await.map_err(|e| {
            caused(
                account_id,
                "could not store the refreshed tokens (the previous refresh token stays valid until the \
                 new access token is used, so the next attempt can refresh again)",
                e,
            )
        })?;
        self.remember(
            account_id,
            Version {
                connected_at: seen.connected_at,
                generation: new_generation,
            },
            &response.access_token,
            expires_at,
            now,
        );
        tracing::info!(account.id = account_id.get(), generation = new_generation, expires_at = %expires_at, "refreshed the access token");
        metrics::counter!("lightspeed_token_refreshes_total", "result" => "succeeded").increment(1);
        Ok(response.access_token)
    }

    /// Call the token endpoint, retrying transient failures with backoff.
    async fn call_token_endpoint(
        &self,
        account_id: AccountId,
        refresh: &SecretString,
    ) -> Result<TokenResponse, OAuthError> {
        let mut attempt = 1;
        loop {
            let outcome = self.oauth.refresh(refresh).await;
            if let Err(e) = &outcome {
                let result = match e {
                    OAuthError::InvalidGrant { .. } => "invalid_grant",
                    OAuthError::InvalidClient { .. } => "invalid_client",
                    OAuthError::Transient { .. } => "transient",
                    _ => "other",
                };
                metrics::counter!("lightspeed_token_refreshes_total", "result" => result)
                    .increment(1);
            }
            match outcome {
                Err(OAuthError::Transient {
                    reason,
                    retry_after,
                }) => {
                    let Some(delay) = self.retry.next_delay(attempt, retry_after) else {
                        return Err(OAuthError::Transient {
                            reason,
                            retry_after,
                        });
                    };
                    tracing::warn!(account.id = account_id.get(), attempt, retry_in_ms = delay.as_millis() as u64, %reason, "token refresh failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `invalid_grant` and nothing changed: the chain is dead. Mark, log once, refuse.
    async fn give_up(
        &self,
        account_id: AccountId,
        generation: i64,
        description: &str,
    ) -> AuthFailure {
        self.forget(account_id);
        let reason = if description.is_empty() {
            "the refresh token was rejected (invalid_grant)".to_string()
        } else {
            format!("the refresh token was rejected (invalid_grant: {description})")
        };
        match credentials::mark_needs_reauth(
            self.store.pool(),
            account_id,
            &reason,
            Some(generation),
        )
        .await
        {
            Ok(true) => {
                tracing::error!(
                    account.id = account_id.get(),
                    reason = %reason,
                    "account {account_id} needs re-authorization: {reason}; its data is kept, syncing it stops; \
                     run `lightspeed-sync authorize` to reconnect it"
                );
                AuthFailure {
                    account_id,
                    needs_reauth: true,
                    message: format!(
                        "{reason}; run `lightspeed-sync authorize` to reconnect the account"
                    ),
                    source: None,
                }
            }
            Ok(false) => transient(
                account_id,
                "the credentials were replaced during the refresh; retry".into(),
            ),
            Err(e) => db_failure(account_id, e),
        }
    }

    fn needs_refresh(&self, expires_at: DateTime<Utc>, issued_at: DateTime<Utc>) -> bool {
        // A margin longer than half the token's life would refresh on every call; cap it.
        let lifetime = (expires_at - issued_at).to_std().unwrap_or_default();
        let margin = self.margin.min(lifetime / 2);
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero());
        Utc::now() + margin >= expires_at
    }

    fn cached(&self, account_id: AccountId) -> Option<Cached> {
        lock(&self.shared.cache).get(&account_id).cloned()
    }

    fn remember(
        &self,
        account_id: AccountId,
        version: Version,
        access: &SecretString,
        expires_at: DateTime<Utc>,
        issued_at: DateTime<Utc>,
    ) {
        let mut cache = lock(&self.shared.cache);
        let newer = cache.get(&account_id).is_none_or(|c| c.version <= version);
        if newer {
            cache.insert(
                account_id,
                Cached {
                    version,
                    access: access.clone(),
                    expires_at,
                    issued_at,
                },
            );
        }
    }

    fn flight(&self, account_id: AccountId) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.shared.flights)
            .entry(account_id)
            .or_default()
            .clone()
    }
}

impl TokenProvider for TokenSource {
    fn access_token(
        &self,
        account_id: AccountId,
    ) -> BoxFuture<'_, Result<SecretString, AuthFailure>> {
        Box::pin(self.fresh_token(account_id))
    }

    fn token_rejected<'a>(
        &'a self,
        account_id: AccountId,
        rejected: &'a SecretString,
    ) -> BoxFuture<'a, Result<SecretString, AuthFailure>> {
        Box::pin(self.refresh(account_id, Some(rejected.clone()), None))
    }
}

fn version_of(creds: &StoredCredentials) -> Version {
    Version {
        connected_at: creds.connected_at,
        generation: creds.generation,
    }
}

/// A poisoned cache only means a panic elsewhere; the map itself is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn transient(account_id: AccountId, message: String) -> AuthFailure {
    AuthFailure {
        account_id,
        needs_reauth: false,
        message,
        source: None,
    }
}

/// A transient failure saying `what`, caused by `source`.
fn caused(
    account_id: AccountId,
    what: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> AuthFailure {
    AuthFailure {
        source: Some(Box::new(source)),
        ..transient(account_id, what.into())
    }
}

fn db_failure(account_id: AccountId, e: sqlx::Error) -> AuthFailure {
    caused(
        account_id,
        "database error while reading its credentials",
        e,
    )
}

fn store_failure(account_id: AccountId, e: StoreError) -> AuthFailure {
    // A decryption failure is a configuration problem (wrong key) or tampering, not a dead grant:
    // it is reported as it is (its text names the account and the key; it has no cause) and the
    // row is left untouched.
    match e {
        StoreError::Decrypt(d) => transient(account_id, d.to_string()),
        StoreError::Db { source, .. } => db_failure(account_id, source),
    }
}

fn not_connected(account_id: AccountId) -> AuthFailure {
    AuthFailure {
        account_id,
        needs_reauth: true,
        message: "no stored credentials; run `lightspeed-sync authorize` to connect the account"
            .into(),
        source: None,
    }
}

fn refused(account_id: AccountId, reason: Option<&str>) -> AuthFailure {
    AuthFailure {
        account_id,
        needs_reauth: true,
        message: format!(
            "needs re-authorization ({}); run `lightspeed-sync authorize` to reconnect the account",
            reason.unwrap_or("the refresh token was rejected")
        ),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_backed_off_capped_and_bounded() {
        let p = RetryPolicy {
            attempts: 5,
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(1),
            },
            max_retry_after: Duration::from_secs(5),
        };
        for _ in 0..50 {
            assert!(p.next_delay(1, None).unwrap() <= Duration::from_millis(100));
            assert!(p.next_delay(3, None).unwrap() <= Duration::from_millis(400));
            assert!(p.next_delay(4, None).unwrap() <= Duration::from_secs(1));
        }
        // The server's Retry-After is honoured up to the ceiling; beyond it, no more attempts.
        let wait = Duration::from_secs(3);
        assert_eq!(p.next_delay(1, Some(wait)), Some(wait));
        assert_eq!(p.next_delay(1, Some(Duration::from_secs(6))), None);
        // Attempts used up: none, whatever the server says.
        assert_eq!(p.next_delay(5, None), None);
        assert_eq!(p.next_delay(5, Some(Duration::from_millis(1))), None);
    }
}
