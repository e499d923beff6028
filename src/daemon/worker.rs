//! The worker: a fair queue of account jobs.
//!
//! Each account has at most one task at a time. Jobs that arrive for an account while its task runs
//! are coalesced into its pending set (a job is pending at most once) and run after the current
//! batch, so a job never overlaps itself for the same account. Accounts in flight are bounded only by
//! `sync.max_accounts` (large: an account in flight costs its lease and a few kilobytes; after each
//! batch it queues again behind the accounts waiting). What the accounts share is bounded where it
//! is used, by the API client's [`Gates`](crate::lightspeed::api::Gates): HTTP requests in flight
//! (`sync.concurrency`) and pages held until written (sized from the pool). An account waiting on
//! its own rate-limit bucket holds neither, and both are FIFO, so ready accounts take turns page by
//! page: one account's large first sync does not hold the incremental runs of the others back.
//!
//! Every task is spawned on the daemon's [`TaskTracker`], so shutdown can wait for them; the
//! [`CancellationToken`] handed to the engine stops runs after the page in flight.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::report;
use crate::model::AccountId;
use crate::sync::account::{Skipped, sync_account_with_ttl};
use crate::sync::{Engine, Kind, RunStatus, Stream};
use crate::tokens::store::{AccountCredentialInfo, AccountStatus, list_accounts};

/// The default of `schedule.full_walk_every`.
pub const DEFAULT_FULL_WALK_EVERY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where in the `every` period account `id`'s walks fall: a stable hash of the ID (splitmix64), so
/// accounts connected together do not all walk the same night.
pub fn stagger(id: AccountId, every: Duration) -> Duration {
    let mut z = id.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let secs = every.as_secs().max(1);
    Duration::from_secs(z % secs)
}

/// Whether the backstop full walk of account `id` is due: its last complete full walk
/// (`lightspeed_sync.full_walks`) is at least `every` old; an account never walked in full is due
/// [`stagger`] after its first successful customers run (so a fleet connected the same day spreads
/// its walks over the period), and right away when it has none.
pub async fn full_walk_due(
    engine: &Engine,
    id: AccountId,
    every: Duration,
) -> Result<bool, sqlx::Error> {
    let (last, first, now): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT (SELECT completed_at FROM lightspeed_sync.full_walks WHERE account_id = $1),
                (SELECT min(started_at) FROM lightspeed_sync.runs
                 WHERE account_id = $1 AND stream = 'customers' AND status = 'succeeded'),
                now()",
    )
    .bind(id)
    .fetch_one(&engine.pool)
    .await?;
    let age = |t: chrono::DateTime<chrono::Utc>| (now - t).to_std().unwrap_or_default();
    Ok(match (last, first) {
        (Some(last), _) => age(last) >= every,
        (None, Some(first)) => age(first) >= stagger(id, every),
        (None, None) => true,
    })
}

/// One kind of work on one account, in the order a batch runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    /// The accounts stream (`lightspeed.accounts`).
    Accounts,
    /// An incremental customers run.
    Customers,
    /// A full customers walk (finds hard deletes and Contact-only edits).
    FullRefresh,
    /// The scheduled refresh on an API budget (`schedule.full_refresh`): a full walk when the
    /// account's last one is older than `schedule.full_walk_every` (staggered), otherwise a
    /// `contacts` run, which walks everything only when the customer counts differ
    /// ([`crate::sync::customers`]). Dropped from a batch that also holds [`Job::FullRefresh`].
    Refresh,
}

impl Job {
    /// The engine's stream and kind for this job.
    pub fn stream_kind(self) -> (Stream, Kind) {
        match self {
            Job::Accounts => (Stream::Accounts, Kind::Full),
            Job::Customers => (Stream::Customers, Kind::Incremental),
            Job::FullRefresh => (Stream::Customers, Kind::Full),
            Job::Refresh => (Stream::Customers, Kind::Contacts),
        }
    }
}

/// What a scheduled tick asks of every connected account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// `schedule.customers`: incremental customers.
    Customers,
    /// `schedule.accounts`: the accounts stream.
    Accounts,
    /// `schedule.full_refresh`: incremental customers, then the budgeted refresh ([`Job::Refresh`]).
    FullRefresh,
    /// The sync right after start: accounts, then incremental customers.
    Initial,
}

impl Tick {
    /// The jobs this tick enqueues per account.
    pub fn jobs(self) -> &'static [Job] {
        match self {
            Tick::Customers => &[Job::Customers],
            Tick::Accounts => &[Job::Accounts],
            Tick::FullRefresh => &[Job::Customers, Job::Refresh],
            Tick::Initial => &[Job::Accounts, Job::Customers],
        }
    }

    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Tick::Customers => "customers",
            Tick::Accounts => "accounts",
            Tick::FullRefresh => "full_refresh",
            Tick::Initial => "initial",
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Accounts whose task was started by this tick.
    pub started: Vec<AccountId>,
    /// Accounts that already had a task: the jobs were added to (or already in) its pending set.
    pub coalesced: Vec<AccountId>,
    /// Accounts skipped because they need re-authorization.
    pub needs_reauth: Vec<AccountId>,
    /// True when the worker is closed (shutting down) and nothing was enqueued.
    pub closed: bool,
}

/// How an [`Worker::enqueue`] call was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A task was started for the account.
    Started,
    /// The account already had a task; the jobs join its pending set.
    Coalesced,
    /// The worker is shutting down.
    Closed,
}

/// The bounded, fair queue of account jobs. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    full_walk_every: Duration,
    lease_ttl: Duration,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    state: Mutex<State>,
    idle: Notify,
}

#[derive(Default)]
struct State {
    closed: bool,
    /// Accounts with a task, and their jobs not yet started.
    accounts: HashMap<AccountId, Pending>,
}

struct Pending {
    account: AccountCredentialInfo,
    jobs: BTreeSet<Job>,
}

impl Worker {
    /// A worker running jobs with `engine` (whose API client bounds requests and pages) for at most
    /// `max_accounts` accounts at once (`sync.max_accounts`), spawning on `tracker`, stopping runs
    /// when `cancel` fires, holding leases for `lease_ttl`.
    pub fn new(
        engine: Engine,
        max_accounts: usize,
        lease_ttl: Duration,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Worker {
            inner: Arc::new(Inner {
                engine,
                full_walk_every: DEFAULT_FULL_WALK_EVERY,
                lease_ttl,
                slots: Arc::new(Semaphore::new(max_accounts.max(1))),
                tracker,
                cancel,
                state: Mutex::new(State::default()),
                idle: Notify::new(),
            }),
        }
    }

    /// Set `schedule.full_walk_every`, the backstop of [`Job::Refresh`] (default 7 days). Call
    /// before the first job.
    pub fn with_full_walk_every(mut self, every: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.full_walk_every = every;
        }
        self
    }

    /// The engine the jobs run with.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// One tick: read the connected accounts now (so accounts connected since start are included) and
    /// enqueue `tick`'s jobs for each; accounts needing re-authorization are skipped with a log line.
    pub async fn tick(&self, tick: Tick) -> Result<TickReport, sqlx::Error> {
        let accounts = list_accounts(&self.inner.engine.pool).await?;
        crate::daemon::metrics::set_account_gauges(&accounts);
        let mut report = TickReport::default();
        for account in accounts {
            let id = account.account_id;
            if account.status == AccountStatus::NeedsReauth {
                tracing::warn!(
                    account.id = id.get(),
                    tick = tick.as_str(),
                    reason = account.status_reason.as_deref().unwrap_or(""),
                    "account {id} needs re-authorization; skipped (run `lightspeed-sync authorize` to reconnect it)"
                );
                report.needs_reauth.push(id);
                continue;
            }
            match self.enqueue(account, tick.jobs()) {
                Enqueued::Started => report.started.push(id),
                Enqueued::Coalesced => report.coalesced.push(id),
                Enqueued::Closed => {
                    report.closed = true;
                    break;
                }
            }
        }
        tracing::debug!(
            tick = tick.as_str(),
            started = report.started.len(),
            coalesced = report.coalesced.len(),
            needs_reauth = report.needs_reauth.len(),
            "tick"
        );
        Ok(report)
    }

    /// Run [`Worker::tick`] in a tracked task, logging a failure (the shape of a cron job's body).
    pub fn spawn_tick(&self, tick: Tick) {
        let worker = self.clone();
        self.inner.tracker.spawn(async move {
            if let Err(e) = worker.tick(tick).await {
                tracing::error!(tick = tick.as_str(), error.message = %e, error.cause_chain = ?e,
                    "scheduled tick failed: could not list the connected accounts");
            }
        });
    }

    /// Add `jobs` for `account`: start its task, or add them to the pending set of the running one.
    pub fn enqueue(&self, account: AccountCredentialInfo, jobs: &[Job]) -> Enqueued {
        let id = account.account_id;
        let mut state = self.state();
        if state.closed {
            return Enqueued::Closed;
        }
        if let Some(pending) = state.accounts.get_mut(&id) {
            pending.jobs.extend(jobs.iter().copied());
            pending.account = account;
            metrics::counter!("lightspeed_daemon_jobs_coalesced_total").increment(1);
            return Enqueued::Coalesced;
        }
        state.accounts.insert(
            id,
            Pending {
                account,
                jobs: jobs.iter().copied().collect(),
            },
        );
        drop(state);
        let worker = self.clone();
        self.inner
            .tracker
            .spawn(async move { worker.account_task(id).await });
        Enqueued::Started
    }

    /// Refuse new jobs from now on (shutdown). Jobs not started yet are dropped.
    pub fn close(&self) {
        self.state().closed = true;
    }

    /// Accounts with a task.
    pub fn active_accounts(&self) -> usize {
        self.state().accounts.len()
    }

    /// Wait until no account has a task (every enqueued job ran or was dropped).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state().accounts.is_empty() {
                return;
            }
            notified.await;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated; keep going.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account's task: wait for one of the `sync.max_accounts` slots (FIFO), run the pending
    /// jobs as one batch under the account's lease, give the slot back, and go again (behind the
    /// accounts waiting) while jobs arrived meanwhile.
    async fn account_task(self, id: AccountId) {
        loop {
            let permit = tokio::select! {
                biased;
                _ = self.inner.cancel.cancelled() => None,
                permit = self.inner.slots.clone().acquire_owned() => permit.ok(),
            };
            let batch = permit.as_ref().and_then(|_| self.take_batch(id));
            let Some((account, jobs)) = batch else {
                self.finish(id);
                return;
            };
            // In a task of its own so that a panic in a run ends that batch, not the account's task.
            let worker = self.clone();
            let run = self
                .inner
                .tracker
                .spawn(async move { worker.run_batch(&account, &jobs).await });
            if let Err(e) = run.await {
                tracing::error!(account.id = id.get(), error = %report(&e), "a sync task panicked");
            }
            drop(permit);
            if !self.has_pending(id) {
                return;
            }
        }
    }

    /// The pending jobs of the account, emptied; `None` when there are none or the worker is stopping.
    fn take_batch(&self, id: AccountId) -> Option<(AccountCredentialInfo, Vec<Job>)> {
        if self.inner.cancel.is_cancelled() {
            return None;
        }
        let mut state = self.state();
        let pending = state.accounts.get_mut(&id)?;
        if pending.jobs.is_empty() {
            return None;
        }
        let mut jobs: Vec<Job> = std::mem::take(&mut pending.jobs).into_iter().collect();
        if jobs.contains(&Job::FullRefresh) {
            jobs.retain(|j| *j != Job::Refresh);
        }
        Some((pending.account.clone(), jobs))
    }

    /// After a batch: true if more jobs are pending; otherwise the account's task ends here, under
    /// the same lock that `enqueue` takes, so no job can be added to a task that is going away.
    fn has_pending(&self, id: AccountId) -> bool {
        let mut state = self.state();
        let more = state.accounts.get(&id).is_some_and(|p| !p.jobs.is_empty());
        if !more || self.inner.cancel.is_cancelled() {
            state.accounts.remove(&id);
            drop(state);
            self.inner.idle.notify_waiters();
            return false;
        }
        true
    }

    fn finish(&self, id: AccountId) {
        self.state().accounts.remove(&id);
        self.inner.idle.notify_waiters();
    }

    async fn run_batch(&self, account: &AccountCredentialInfo, jobs: &[Job]) {
        let id = account.account_id;
        let engine = &self.inner.engine;
        let mut streams: Vec<(Stream, Kind)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut sk = job.stream_kind();
            if *job == Job::Refresh {
                match full_walk_due(engine, id, self.inner.full_walk_every).await {
                    Ok(true) => {
                        tracing::info!(
                            account.id = id.get(),
                            "the periodic full walk is due (schedule.full_walk_every)"
                        );
                        sk.1 = Kind::Full;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(account.id = id.get(), error = %report(&e), "could not read when the account was last walked in full; walking it");
                        sk.1 = Kind::Full;
                    }
                }
            }
            streams.push(sk);
        }
        let result = sync_account_with_ttl(
            engine,
            account,
            &streams,
            &self.inner.cancel,
            self.inner.lease_ttl,
        )
        .await;
        match result {
            Ok(reports) => {
                let failed = reports
                    .iter()
                    .filter(|r| r.status == RunStatus::Failed)
                    .count();
                tracing::debug!(
                    account.id = id.get(),
                    runs = reports.len(),
                    failed,
                    "batch done"
                );
            }
            Err(Skipped::Busy { .. }) => {
                metrics::counter!("lightspeed_daemon_skipped_total", "reason" => "busy")
                    .increment(1);
                tracing::debug!(
                    account.id = id.get(),
                    "account is being synced by another replica; skipped"
                );
            }
            Err(e @ Skipped::NeedsReauth { .. }) => {
                metrics::counter!("lightspeed_daemon_skipped_total", "reason" => "needs_reauth")
                    .increment(1);
                tracing::warn!(account.id = id.get(), "{e}");
            }
            Err(e @ Skipped::Lease { .. }) => {
                metrics::counter!("lightspeed_daemon_skipped_total", "reason" => "lease_error")
                    .increment(1);
                tracing::warn!(account.id = id.get(), error.message = %report(&e), "could not take the account's lease; skipped");
            }
        }
    }
}
