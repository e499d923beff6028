//! Rendering an error with its causes. An error's `Display` says only its own level and its cause
//! comes from `source()`; wherever an error is shown to a person or stored, [`report`] prints the
//! whole chain, each level once, joined by `": "` (as anyhow's `{:#}` does).

use std::error::Error;
use std::fmt;

/// An error and its causes, displayed as `error: cause: cause` (see [`report`]).
pub struct Report<'a>(&'a (dyn Error + 'a));

/// The error `e` with its chain of causes, each level once, for a log line, a message or a row.
pub fn report<'a>(e: &'a (dyn Error + 'a)) -> Report<'a> {
    Report(e)
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Some errors of other crates (sqlx's, for one) print their cause too: once is enough.
            if !text.is_empty() && !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    /// An error that prints its cause itself, as some of other crates do.
    #[derive(Debug, thiserror::Error)]
    #[error("repeats: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_level_is_printed_once() {
        let e = Outer(Middle(std::io::Error::other("leaf")));
        assert_eq!(report(&e).to_string(), "outer: middle: leaf");
        let e = Outer(Middle(std::io::Error::other("leaf")));
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "outer: middle: leaf"
        );
        let e = Repeats(std::io::Error::other("leaf"));
        assert_eq!(report(&e).to_string(), "repeats: leaf");
    }

    /// `report`, anyhow's `{:#}` and a chain walker all print each level once.
    fn assert_chain(e: impl Error + Send + Sync + 'static, expected: &str) {
        assert_eq!(report(&e).to_string(), expected);
        let mut levels = vec![e.to_string()];
        let mut source = e.source();
        while let Some(cause) = source {
            levels.push(cause.to_string());
            source = cause.source();
        }
        assert_eq!(format!("{:#}", anyhow::Error::new(e)), expected);
        // No level repeats the one below it.
        for pair in levels.windows(2) {
            assert!(!pair[0].contains(&pair[1]), "{levels:?}");
        }
    }

    fn pool_timed_out() -> sqlx::Error {
        sqlx::Error::PoolTimedOut
    }

    #[test]
    fn api_auth_failure_keeps_its_causes() {
        use crate::lightspeed::{ApiError, AuthFailure};
        let e = ApiError::Auth {
            url: "https://api.example/API/V3/Account.json".parse().unwrap(),
            source: AuthFailure {
                account_id: 7.into(),
                needs_reauth: false,
                message: "database error while reading its credentials".into(),
                source: Some(Box::new(pool_timed_out())),
            },
        };
        let auth = e.source().unwrap().downcast_ref::<AuthFailure>().unwrap();
        assert_eq!(auth.account_id, 7);
        assert_eq!(
            auth.reason(),
            "database error while reading its credentials: pool timed out while waiting for an open connection"
        );
        let db = auth.source().unwrap().downcast_ref::<sqlx::Error>();
        assert!(matches!(db, Some(sqlx::Error::PoolTimedOut)), "{db:?}");
        assert_chain(
            e,
            "GET https://api.example/API/V3/Account.json: no usable access token: account 7: \
             database error while reading its credentials: pool timed out while waiting for an open connection",
        );
    }

    #[test]
    fn store_and_sync_database_errors_keep_their_cause() {
        use crate::sync::SyncError;
        use crate::tokens::store::StoreError;
        let e = StoreError::Db {
            account_id: 3.into(),
            source: pool_timed_out(),
        };
        assert!(e.source().unwrap().is::<sqlx::Error>());
        assert_chain(
            e,
            "database error on the credentials of account 3: pool timed out while waiting for an open connection",
        );
        let e = SyncError::Db(pool_timed_out());
        assert!(e.source().unwrap().is::<sqlx::Error>());
        assert_chain(
            e,
            "database: pool timed out while waiting for an open connection",
        );
    }

    #[test]
    fn skipped_and_authorize_errors_keep_their_cause() {
        use crate::lightspeed::oauth::OAuthError;
        use crate::sync::account::Skipped;
        use crate::sync::lease::AcquireError;
        use crate::tokens::authorize::AuthorizeError;
        let e = Skipped::Lease {
            account_id: 5.into(),
            source: AcquireError::Db(pool_timed_out()),
        };
        assert!(e.source().unwrap().is::<AcquireError>());
        assert_chain(
            e,
            "account 5: could not take its lease: pool timed out while waiting for an open connection",
        );
        let e = AuthorizeError::Listen {
            addr: "127.0.0.1:8080".parse().unwrap(),
            source: std::io::Error::other("address in use"),
        };
        assert!(e.source().unwrap().is::<std::io::Error>());
        assert_chain(e, "cannot listen on 127.0.0.1:8080: address in use");
        // The endpoint's error, a leaf, is in the message and not repeated as a cause.
        let e = AuthorizeError::Exchange(OAuthError::Transient {
            reason: "HTTP 503".into(),
            retry_after: None,
        });
        assert!(e.source().is_none());
        assert_chain(
            e,
            "exchanging the authorization code failed: temporary failure: HTTP 503; the code \
             expires after 60 s, run authorize again",
        );
    }
}
