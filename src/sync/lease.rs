//! Holding an account's lease for the length of some work: take it, renew it in the background, give
//! it up at the end. If a renewal finds the lease lost, the work's cancellation token fires; the next
//! checkpoint would refuse to commit anyway.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::leases::{self, Lease};

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// A held lease, renewed every third of its lifetime until released.
pub struct LeaseGuard {
    lease: Lease,
    pool: PgPool,
    renewer: JoinHandle<()>,
    lost: CancellationToken,
}

impl LeaseGuard {
    /// Take the account's lease for `holder`; `None` if another holder has it.
    pub async fn acquire(
        pool: &PgPool,
        account_id: u64,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseGuard>, sqlx::Error> {
        let Some(lease) = leases::try_acquire(pool, account_id as i64, holder, ttl).await? else {
            return Ok(None);
        };
        let lost = CancellationToken::new();
        let renewer = tokio::spawn(renew_loop(pool.clone(), lease.clone(), ttl, lost.clone()));
        Ok(Some(LeaseGuard {
            lease,
            pool: pool.clone(),
            renewer,
            lost,
        }))
    }

    /// The lease.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Fires when a renewal found the lease taken over.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Stop renewing and give the lease up.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = leases::release(&self.pool, &self.lease).await {
            tracing::warn!(account = self.lease.account_id, error = %e, "could not release the lease; it will expire");
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew_loop(pool: PgPool, lease: Lease, ttl: Duration, lost: CancellationToken) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match leases::renew(&pool, &lease, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(account = lease.account_id, "lease lost to another replica");
                lost.cancel();
                return;
            }
            // A database hiccup: keep trying until the lease would have expired anyway.
            Err(e) => {
                tracing::warn!(account = lease.account_id, error = %e, "could not renew the lease")
            }
        }
    }
}
