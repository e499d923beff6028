//! Syncing one account: check it is authorized, take its lease, run the asked streams in order, give
//! the lease up. Used by `sync`, `demo` and the daemon alike.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lease::{AcquireError, LEASE_TTL, LeaseGuard};
use super::{Engine, Kind, RunReport, Stream};
use crate::model::AccountId;
use crate::tokens::store::{AccountCredentialInfo, AccountStatus};

/// Why an account was not synced at all.
#[derive(Debug, thiserror::Error)]
pub enum Skipped {
    /// Its refresh token was rejected; a person must run `authorize` again.
    #[error(
        "account {account_id} needs re-authorization ({reason}); its data is kept. Run `lightspeed-sync authorize` to reconnect it"
    )]
    NeedsReauth {
        /// The account.
        account_id: AccountId,
        /// Why.
        reason: String,
    },
    /// Another live process holds its lease (a daemon or another `sync`).
    #[error("account {account_id} is being synced by another process; skipped (try again later)")]
    Busy {
        /// The account.
        account_id: AccountId,
    },
    /// The database failed while taking the lease.
    #[error("account {account_id}: could not take its lease")]
    Lease {
        /// The account.
        account_id: AccountId,
        /// The database error.
        #[source]
        source: AcquireError,
    },
}

/// Run `streams` of one account in order, under its lease. A stream whose run fails does not stop the
/// next one, except when the account needs re-authorization or the lease is lost.
pub async fn sync_account(
    engine: &Engine,
    account: &AccountCredentialInfo,
    streams: &[(Stream, Kind)],
    cancel: &CancellationToken,
) -> Result<Vec<RunReport>, Skipped> {
    sync_account_with_ttl(engine, account, streams, cancel, LEASE_TTL).await
}

/// As [`sync_account`], with a lease lifetime of `ttl`.
pub async fn sync_account_with_ttl(
    engine: &Engine,
    account: &AccountCredentialInfo,
    streams: &[(Stream, Kind)],
    cancel: &CancellationToken,
    ttl: Duration,
) -> Result<Vec<RunReport>, Skipped> {
    let account_id = account.account_id;
    if account.status == AccountStatus::NeedsReauth {
        return Err(Skipped::NeedsReauth {
            account_id,
            reason: account
                .status_reason
                .clone()
                .unwrap_or_else(|| "refresh token rejected".into()),
        });
    }
    let guard = match LeaseGuard::acquire(&engine.pool, account_id, &engine.replica, ttl).await {
        Ok(Some(g)) => g,
        Ok(None) => return Err(Skipped::Busy { account_id }),
        Err(source) => return Err(Skipped::Lease { account_id, source }),
    };
    // Stop when asked to, or when the lease is lost.
    let stop = cancel.child_token();
    let lost = guard.lost().clone();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            lost.cancelled().await;
            stop.cancel();
        })
    };
    let mut reports = Vec::with_capacity(streams.len());
    for &(stream, kind) in streams {
        if stop.is_cancelled() {
            break;
        }
        let report = engine.run(guard.lease(), stream, kind, &stop).await;
        let fatal = report.account_stopped;
        reports.push(report);
        if fatal {
            break;
        }
    }
    watcher.abort();
    guard.release().await;
    Ok(reports)
}
