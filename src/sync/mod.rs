//! The sync engine: one run of one stream of one account. Pages come in from the API client; rows and
//! the stream's cursor go out to Postgres in one transaction per page, together with the run's counts and
//! a check that this process still holds the account's lease. This is the one place where the client
//! and the database meet.
//!
//! - [`customers`]: the incremental walk by `timeStamp` (safe against ties at page boundaries) and the
//!   full walk by `customerID` that finds hard deletes.
//! - `commit`: the writing side of a customers run (pages committed at once, a gap-free cursor).
//! - [`accounts`]: `Account.json` and the account's detail.
//! - [`convert`]: wire records to mirror rows.
//! - [`lease`]: holding an account's lease for the length of the work.
//! - [`pii`]: the PII policies (`mirror.pii.*`), applied to every row before it is written.

pub mod account;
pub mod accounts;
mod commit;
pub mod convert;
pub mod customers;
pub mod lease;
pub mod pii;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::leases::Lease;
use crate::db::runs;
use crate::lightspeed::api::{ApiClient, CallStats};
use crate::lightspeed::error::ApiError;

pub use crate::model::{AccountId, Kind, RunStatus, Stream};

/// What one run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Row ID in `lightspeed_sync.runs` (0 if the run could not even be recorded).
    pub run_id: i64,
    /// Account.
    pub account_id: AccountId,
    /// Stream.
    pub stream: Stream,
    /// Kind.
    pub kind: Kind,
    /// Outcome.
    pub status: RunStatus,
    /// Pages committed.
    pub pages: u64,
    /// Records received.
    pub records: u64,
    /// Rows written (customers replaced or inserted).
    pub rows: u64,
    /// Rows marked deleted by a full walk.
    pub deleted: u64,
    /// Customers erased: seen anonymized while the mirror held them un-anonymized.
    pub erased: u64,
    /// API requests, 429s, time waited for the rate limit.
    #[serde(skip)]
    pub stats: CallStats,
    /// Wall time.
    #[serde(skip)]
    pub elapsed: Duration,
    /// Why it failed.
    pub error: Option<String>,
    /// The account cannot be synced further now (needs re-authorization, or the lease was lost).
    pub account_stopped: bool,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The API failed (the message names the URL).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The database failed.
    #[error("database")]
    Db(#[from] sqlx::Error),
    /// Another replica took the account over; nothing more is committed.
    #[error(
        "lost the lease on account {0} (another replica took it over); the page was not committed"
    )]
    LeaseLost(AccountId),
    /// Shutdown was requested.
    #[error("stopped on request")]
    Cancelled,
}

/// Told about each committed page (progress display, metrics).
pub trait Progress: Send + Sync {
    /// A page of `records` records was committed for this account and stream.
    fn page(&self, account_id: AccountId, stream: Stream, records: usize, stats: &CallStats);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn page(&self, _: AccountId, _: Stream, _: usize, _: &CallStats) {}
}

/// Everything a run needs.
#[derive(Clone)]
pub struct Engine {
    /// The database.
    pub pool: PgPool,
    /// The API client.
    pub api: ApiClient,
    /// Records per page.
    pub page_size: u32,
    /// How far before the watermark an incremental run starts.
    pub overlap: Duration,
    /// This process's replica ID (recorded with each run).
    pub replica: String,
    /// Told about each committed page.
    pub progress: Arc<dyn Progress>,
    /// What the mirror keeps: history, PII policies (`[mirror]`).
    pub mirror: MirrorOptions,
}

/// `[mirror]` as a run applies it.
#[derive(Debug, Clone, Default)]
pub struct MirrorOptions {
    /// `mirror.history`: record every seen version in `lightspeed.customers_history`.
    pub history: bool,
    /// `mirror.pii.*` with its key.
    pub pii: pii::PiiPolicy,
    /// `sync --full --rewrite`: after a full walk, apply the policy to the stored history too.
    pub rewrite: bool,
}

impl MirrorOptions {
    /// From the settings; a `hash` policy without a key is refused.
    pub fn from_settings(
        m: &crate::config::MirrorSettings,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(MirrorOptions {
            history: m.history,
            pii: pii::PiiPolicy::from_settings(m)?,
            rewrite: false,
        })
    }
}

/// Counts accumulated while a run goes, committed page by page.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub pages: u64,
    pub records: u64,
    pub rows: u64,
    pub deleted: u64,
    pub erased: u64,
    pub stats: CallStats,
    /// Requests not yet counted in the run row (they belong to the next commit).
    pub uncommitted: CallStats,
    /// What the run turned out to be, when it differs from what was asked (a `contacts` run whose
    /// counts differed walks everything: `full`).
    pub ran_as: Option<Kind>,
}

impl Engine {
    /// Run one stream of one account under `lease`, recording the run. Never panics on bad input: the
    /// report says what failed. Every log line of the run carries the span's `account.id`, `stream`
    /// and `run.id`.
    #[tracing::instrument(
        name = "run",
        skip_all,
        fields(account.id = lease.account_id.get(), stream = stream.as_str(), run.id)
    )]
    pub async fn run(
        &self,
        lease: &Lease,
        stream: Stream,
        kind: Kind,
        cancel: &CancellationToken,
    ) -> RunReport {
        let started = Instant::now();
        let mut tally = Tally::default();
        let recorded = runs::start(&self.pool, lease.account_id, stream, kind, &self.replica).await;
        let (run_id, run_started_at) = match recorded {
            Ok(r) => r,
            Err(e) => {
                let mut report = RunReport::new(0, lease, stream, kind, &tally, started, Ok(()));
                report.status = RunStatus::Failed;
                report.error = Some(format!("recording the run: {}", crate::error::report(&e)));
                return report.logged();
            }
        };
        tracing::Span::current().record("run.id", run_id);
        let result = match stream {
            Stream::Accounts => accounts::run(self, lease, run_id, &mut tally).await,
            Stream::Customers => {
                customers::run(
                    self,
                    lease,
                    run_id,
                    run_started_at,
                    kind,
                    &mut tally,
                    cancel,
                )
                .await
            }
        };
        let kind = tally.ran_as.unwrap_or(kind);
        // Requests no commit accounted for (the accounts stream when its commit failed) still count.
        let rest = std::mem::take(&mut tally.uncommitted);
        tally.stats.add(&rest);
        let report = RunReport::new(run_id, lease, stream, kind, &tally, started, result);
        if let Err(e) = self.record_end(lease, &report, &rest).await {
            tracing::error!(error = %crate::error::report(&e), "could not record the end of the run");
        }
        record_metrics(&report);
        report.logged()
    }

    /// Record the end of a run: requests no page counted, drips, the kind it ran as, a completed
    /// full walk, and its status.
    async fn record_end(
        &self,
        lease: &Lease,
        report: &RunReport,
        rest: &CallStats,
    ) -> Result<(), sqlx::Error> {
        if rest.requests > 0 {
            let (requests, throttled) = (rest.requests as i32, rest.throttled as i32);
            runs::add_requests(&self.pool, report.run_id, requests, throttled).await?;
        }
        sqlx::query("UPDATE lightspeed_sync.runs SET drips = $2, kind = $3 WHERE run_id = $1")
            .bind(report.run_id)
            .bind(report.stats.drips())
            .bind(report.kind)
            .execute(&self.pool)
            .await?;
        let (status, error) = (report.status, report.error.as_deref());
        if report.stream == Stream::Customers
            && report.kind == Kind::Full
            && report.status == RunStatus::Succeeded
        {
            record_full_walk(&self.pool, lease.account_id, report.run_id).await?;
        }
        runs::finish(&self.pool, report.run_id, status, error).await?;
        Ok(())
    }
}

impl RunReport {
    /// The report of a run from its tally and how it ended.
    fn new(
        run_id: i64,
        lease: &Lease,
        stream: Stream,
        kind: Kind,
        tally: &Tally,
        started: Instant,
        result: Result<(), SyncError>,
    ) -> RunReport {
        let account_stopped = match &result {
            Err(SyncError::Api(e)) => e.needs_reauth(),
            Err(SyncError::LeaseLost(_)) => true,
            _ => false,
        };
        let (status, error) = match result {
            Ok(()) => (RunStatus::Succeeded, None),
            Err(SyncError::Cancelled) => (
                RunStatus::Interrupted,
                Some("stopped on request".to_string()),
            ),
            Err(e) => (
                RunStatus::Failed,
                Some(crate::error::report(&e).to_string()),
            ),
        };
        RunReport {
            run_id,
            account_id: lease.account_id,
            stream,
            kind,
            status,
            pages: tally.pages,
            records: tally.records,
            rows: tally.rows,
            deleted: tally.deleted,
            erased: tally.erased,
            stats: tally.stats,
            elapsed: started.elapsed(),
            error,
            account_stopped,
        }
    }

    /// Log the outcome (in the run's span), and return the report.
    fn logged(self) -> RunReport {
        match self.status {
            RunStatus::Succeeded => tracing::info!(
                kind = self.kind.as_str(),
                pages = self.pages,
                rows = self.rows,
                deleted = self.deleted,
                erased = self.erased,
                requests = self.stats.requests,
                throttled = self.stats.throttled,
                "run succeeded"
            ),
            _ => tracing::warn!(
                kind = self.kind.as_str(),
                pages = self.pages,
                error = self.error.as_deref().unwrap_or(""),
                "run did not finish"
            ),
        }
        self
    }
}

/// Record that `account_id` completed a full customers walk now (the backstop's clock).
async fn record_full_walk(
    pool: &PgPool,
    account_id: AccountId,
    run_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lightspeed_sync.full_walks (account_id, completed_at, run_id) VALUES ($1, now(), $2)
         ON CONFLICT (account_id) DO UPDATE SET completed_at = EXCLUDED.completed_at, run_id = EXCLUDED.run_id",
    )
    .bind(account_id)
    .bind(run_id)
    .execute(pool)
    .await?;
    Ok(())
}

fn record_metrics(report: &RunReport) {
    let (stream, status) = (report.stream, report.status);
    let account = report.account_id.to_string();
    metrics::counter!("lightspeed_sync_runs_total", "stream" => stream.as_str(), "status" => status.as_str())
        .increment(1);
    metrics::counter!("lightspeed_sync_rows_upserted_total", "stream" => stream.as_str())
        .increment(report.rows);
    if report.erased > 0 {
        metrics::counter!("lightspeed_sync_customers_erased_total").increment(report.erased);
    }
    if status == RunStatus::Succeeded {
        let now = chrono::Utc::now().timestamp() as f64;
        metrics::gauge!("lightspeed_sync_last_success_timestamp_seconds", "account" => account, "stream" => stream.as_str())
            .set(now);
    }
}
