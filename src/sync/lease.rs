//! Holding an account's lease for the length of some work: take it, renew it in the background, give
//! it up at the end. If a renewal finds the lease lost, the work's cancellation token fires; the next
//! checkpoint would refuse to commit anyway.
//!
//! A process's leases are backed by its [`Presence`]: one dedicated connection per process and
//! database (not per account) holding a session-level advisory lock keyed by the replica ID. When
//! the process dies, the server closes that session and every lease of the process is free at once;
//! see [`crate::db::leases`] for the protocol.
//!
//! Renewals are batched the same way: one [`Renewer`] per process, database and lifetime extends
//! every lease the process holds there in one statement every third of the lifetime (a statement
//! per tick, not per account); a lease whose row is locked at that instant (a page committing) is
//! asked for again shortly after, and one found taken over fires its guard's `lost` token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::{ConnectOptions, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::leases::{self, Lease};
use crate::model::AccountId;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// How often the presence connection is checked (one `SELECT 1` per process, not per account).
const PRESENCE_CHECK: Duration = Duration::from_secs(5);

/// How long taking a lease waits for the presence connection to be up.
const PRESENCE_WAIT: Duration = Duration::from_secs(10);

/// A process's presence in one database: a connection of its own holding the replica's advisory
/// lock, re-established if it drops. Shared by every lease the process takes there (one per process
/// and database, whatever the number of accounts); closed when the last handle is dropped.
pub struct Presence {
    up: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for Presence {
    fn drop(&mut self) {
        // Dropping the connection ends the session: the advisory lock goes with it.
        self.task.abort();
    }
}

type Registry<T> = Mutex<HashMap<String, Weak<T>>>;

fn registry() -> &'static Registry<Presence> {
    static REGISTRY: std::sync::OnceLock<Registry<Presence>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// `holder@host:port/database`.
fn key_of(pool: &PgPool, holder: &str) -> String {
    let o = pool.connect_options();
    format!(
        "{holder}@{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("")
    )
}

impl Presence {
    /// The presence of `holder` in `pool`'s database: the running one if any, otherwise started
    /// now. Keep the handle as long as leases are held (the daemon and `sync` keep one for their
    /// whole run, each [`LeaseGuard`] one for its lease).
    pub fn get(pool: &PgPool, holder: &str) -> Arc<Presence> {
        let key = key_of(pool, holder);
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let (tx, up) = watch::channel(false);
        let task = tokio::spawn(hold(pool.clone(), holder.to_string(), tx));
        let p = Arc::new(Presence { up, task });
        map.insert(key, Arc::downgrade(&p));
        p
    }

    /// Wait (at most `limit`) until the presence lock is held; false if it is not by then.
    pub async fn ready(&self, limit: Duration) -> bool {
        let mut up = self.up.clone();
        tokio::time::timeout(limit, up.wait_for(|v| *v))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The presence task: connect, take the advisory lock, check the session now and then, and start
/// over when it drops (Postgres restarted, the connection was terminated).
async fn hold(pool: PgPool, holder: String, up: watch::Sender<bool>) {
    let options = (*pool.connect_options()).clone();
    let mut failures = 0u32;
    loop {
        let attempt = async {
            let mut conn = options.connect().await?;
            leases::hold_presence(&mut conn, &holder).await?;
            Ok::<_, sqlx::Error>(conn)
        };
        let mut conn = match attempt.await {
            Ok(conn) => conn,
            Err(e) => {
                up.send_replace(false);
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(error = %crate::error::report(&e), "could not open the presence connection (leases of this process then rely on their expiry); retrying");
                }
                tokio::time::sleep(crate::db::RECONNECT_DELAY).await;
                continue;
            }
        };
        failures = 0;
        up.send_replace(true);
        tracing::debug!(replica = %holder, "presence lock held");
        loop {
            tokio::time::sleep(PRESENCE_CHECK).await;
            if let Err(e) = sqlx::query("SELECT 1").execute(&mut conn).await {
                up.send_replace(false);
                tracing::warn!(error = %crate::error::report(&e), "the presence connection dropped; re-opening it (other replicas may take this process's accounts over meanwhile)");
                break;
            }
        }
    }
}

/// Why a lease could not be taken (other than another live holder having it).
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The presence connection could not be opened: leases taken without it would look abandoned.
    #[error(
        "could not hold the presence lock of replica {holder} within {waited:?} (a connection of its own to PostgreSQL)"
    )]
    NoPresence {
        /// The replica.
        holder: String,
        /// How long it waited.
        waited: Duration,
    },
}

/// The leases a process holds in one database with one lifetime, renewed together.
pub struct Renewer {
    held: Arc<Mutex<HashMap<AccountId, (Lease, CancellationToken)>>>,
    task: JoinHandle<()>,
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn renewers() -> &'static Registry<Renewer> {
    static REGISTRY: std::sync::OnceLock<Registry<Renewer>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Renewer {
    /// The renewer of `holder`'s leases of lifetime `ttl` in `pool`'s database (started now if none).
    pub fn get(pool: &PgPool, holder: &str, ttl: Duration) -> Arc<Renewer> {
        let key = format!("{}#{}", key_of(pool, holder), ttl.as_millis());
        let mut map = renewers().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(&key).and_then(Weak::upgrade) {
            return r;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let held = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(renew_all(
            pool.clone(),
            holder.to_string(),
            ttl,
            held.clone(),
        ));
        let r = Arc::new(Renewer { held, task });
        map.insert(key, Arc::downgrade(&r));
        r
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, (Lease, CancellationToken)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases renewed by this renewer right now.
    pub fn len(&self) -> usize {
        self.held().len()
    }

    /// True when it renews none.
    pub fn is_empty(&self) -> bool {
        self.held().is_empty()
    }
}

/// The renewer's task: every third of the lifetime, one statement for all the leases held; rows
/// locked at that instant are asked for again shortly after (never waited for, so one slow page
/// cannot hold the other leases' renewal up), until the next tick.
async fn renew_all(
    pool: PgPool,
    holder: String,
    ttl: Duration,
    held: Arc<Mutex<HashMap<AccountId, (Lease, CancellationToken)>>>,
) {
    let lock = || held.lock().unwrap_or_else(|p| p.into_inner());
    let period = ttl / 3;
    let retry = (ttl / 30).clamp(Duration::from_millis(10), Duration::from_millis(200));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let started = tokio::time::Instant::now();
        let mut pending: Vec<(AccountId, i64)> = lock()
            .values()
            .map(|(l, _)| (l.account_id, l.epoch))
            .collect();
        while !pending.is_empty() {
            let renewed = match leases::renew_many(&pool, &holder, &pending, ttl).await {
                Ok(renewed) => renewed,
                // A database hiccup: keep trying until the leases would have expired anyway.
                Err(e) => {
                    tracing::warn!(leases = pending.len(), error = %crate::error::report(&e), "could not renew the leases");
                    break;
                }
            };
            pending.retain(|(id, _)| !renewed.contains(id));
            if pending.is_empty() {
                break;
            }
            let ours = match leases::still_held(&pool, &holder, &pending).await {
                Ok(ours) => ours,
                Err(e) => {
                    tracing::warn!(leases = pending.len(), error = %crate::error::report(&e), "could not renew the leases");
                    break;
                }
            };
            for &(id, epoch) in pending.iter().filter(|(id, _)| !ours.contains(id)) {
                let mut map = lock();
                if let Some((lease, lost)) = map.get(&id).filter(|(l, _)| l.epoch == epoch) {
                    tracing::warn!(
                        account.id = lease.account_id.get(),
                        "lease lost to another replica"
                    );
                    lost.cancel();
                    map.remove(&id);
                }
            }
            pending.retain(|(id, _)| ours.contains(id));
            if pending.is_empty() || started.elapsed() + retry >= period {
                break;
            }
            tokio::time::sleep(retry).await;
        }
    }
}

/// A held lease, renewed every third of its lifetime (by the process's [`Renewer`]) until released.
pub struct LeaseGuard {
    lease: Lease,
    pool: PgPool,
    renewer: Arc<Renewer>,
    lost: CancellationToken,
    _presence: Arc<Presence>,
}

impl LeaseGuard {
    /// Take the account's lease for `holder`; `None` if another live holder has it.
    pub async fn acquire(
        pool: &PgPool,
        account_id: AccountId,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseGuard>, AcquireError> {
        let presence = Presence::get(pool, holder);
        if !presence.ready(PRESENCE_WAIT).await {
            return Err(AcquireError::NoPresence {
                holder: holder.to_string(),
                waited: PRESENCE_WAIT,
            });
        }
        let Some(lease) = leases::try_acquire(pool, account_id, holder, ttl).await? else {
            return Ok(None);
        };
        let lost = CancellationToken::new();
        let renewer = Renewer::get(pool, holder, ttl);
        renewer
            .held()
            .insert(lease.account_id, (lease.clone(), lost.clone()));
        Ok(Some(LeaseGuard {
            lease,
            pool: pool.clone(),
            renewer,
            lost,
            _presence: presence,
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

    fn stop_renewing(&self) {
        let mut held = self.renewer.held();
        if held
            .get(&self.lease.account_id)
            .is_some_and(|(l, _)| *l == self.lease)
        {
            held.remove(&self.lease.account_id);
        }
    }

    /// Stop renewing and give the lease up.
    pub async fn release(self) {
        self.stop_renewing();
        if let Err(e) = leases::release(&self.pool, &self.lease).await {
            tracing::warn!(account.id = self.lease.account_id.get(), error = %crate::error::report(&e), "could not release the lease; it will expire");
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}
