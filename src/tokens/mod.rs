//! Tokens: credentials at rest and the token source.
//!
//! - [`crypto`]: AES-256-GCM for tokens at rest, bound to account, field and key version.
//! - [`store`]: encrypted rows of `lightspeed_sync.credentials`; account listing for `status`.
//! - [`source`]: the [`crate::lightspeed::TokenProvider`] with single-flight refresh.
//! - [`authorize`]: the OAuth authorization flow (`authorize`) and `disconnect`.
//!
//! See `docs/tokens.md` for the refresh protocol and the failure classes.

pub mod authorize;
pub mod crypto;
pub mod source;
pub mod store;

pub use source::TokenSource;
pub use store::{
    AccountCredentialInfo, AccountStatus, TokenStore, list_accounts, mark_needs_reauth,
};
