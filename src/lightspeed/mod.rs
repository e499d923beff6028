//! The HTTP client of the Lightspeed R-Series API: wire models and their quirks (`wire`), GET with
//! pacing, retries and pagination (`api`), the leaky-bucket pacer (`pacing`), and the OAuth token
//! endpoint (`oauth`). Nothing here knows of Postgres.

use crate::model::AccountId;

pub mod api;
pub mod error;
pub mod guard;
pub mod oauth;
pub mod pacing;
pub mod query;
pub mod request;
pub mod retry;
pub mod wire;

pub use api::{ApiClient, CallStats, Fetched, Page};
pub use error::ApiError;

/// A boxed future, for the object-safe [`TokenProvider`].
pub use futures::future::BoxFuture;
use secrecy::SecretString;

/// Where the API client gets access tokens. Implemented by the token store (`crate::tokens`).
pub trait TokenProvider: Send + Sync {
    /// A fresh access token for the account (refreshed ahead of expiry if needed).
    fn access_token(
        &self,
        account_id: AccountId,
    ) -> BoxFuture<'_, Result<SecretString, AuthFailure>>;

    /// The API answered 401 to a request made with `rejected`. Refresh, but only if `rejected` is
    /// still the stored token (another task may have refreshed already), and return the token to
    /// retry with. The caller retries once.
    fn token_rejected<'a>(
        &'a self,
        account_id: AccountId,
        rejected: &'a SecretString,
    ) -> BoxFuture<'a, Result<SecretString, AuthFailure>>;
}

/// No usable access token for an account.
#[derive(Debug, thiserror::Error)]
#[error("account {account_id}: {message}")]
pub struct AuthFailure {
    /// The account.
    pub account_id: AccountId,
    /// True when a person must run `authorize` again (revoked or expired refresh token).
    pub needs_reauth: bool,
    /// What happened, without any secret.
    pub message: String,
    /// The error behind it, if any (a database or token-endpoint failure).
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AuthFailure {
    /// What happened with its causes, without the account (the caller names it).
    pub fn reason(&self) -> String {
        match &self.source {
            Some(source) => format!("{}: {}", self.message, crate::error::report(&**source)),
            None => self.message.clone(),
        }
    }
}
