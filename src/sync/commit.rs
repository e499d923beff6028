//! The writing side of a customers run: each fetched page committed in its own transaction with the
//! run's counts and, for incremental runs, the cursor, under the account's lease. Several pages
//! commit at once; the cursor only ever covers a gap-free prefix of committed pages.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{Engine, Stream, SyncError, Tally, convert, pii};
use crate::db::leases::{self, Lease};
use crate::db::{cursors, history, mirror, runs};
use crate::lightspeed::api::{CallStats, Page};
use crate::lightspeed::wire::Customer;
use crate::model::AccountId;

const STREAM: Stream = Stream::Customers;

/// A fetched page on its way to the database.
pub(crate) struct PageToCommit {
    pub page: Page<Customer>,
    /// Advance the watermark to this after committing (incremental runs only).
    pub watermark: Option<DateTime<Utc>>,
}

/// Commit each page with the run's counts and (incremental runs) the cursor, under the lease.
///
/// Up to [`WRITERS`] pages commit at once, each in its own transaction. Rows are keyed and only
/// replaced by newer versions, so their order does not matter; the cursor does: a page's transaction
/// moves it only as far as the pages committed before it without a gap (the [`Prefix`]), so it never
/// covers a page that is not committed. Whatever is left is applied once all pages are in.
pub(crate) async fn commit_pages(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    rx: mpsc::Receiver<PageToCommit>,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let account_id = lease.account_id;
    let prefix = std::sync::Mutex::new(Prefix::default());
    let pages =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut commits = std::pin::pin!(
        pages
            .enumerate()
            .map(|(seq, fetched)| commit_page(engine, lease, run_id, seq as u64, fetched, &prefix))
            .buffered(WRITERS)
    );
    while let Some(done) = commits.next().await {
        let Committed {
            records,
            written,
            erased,
            stats,
        } = done?;
        tally.pages += 1;
        tally.erased += erased;
        tally.records += records as u64;
        tally.rows += written;
        tally.stats.add(&stats);
        engine
            .progress
            .page(account_id, Stream::Customers, records, &stats);
        if tally.pages.is_power_of_two() && tally.pages >= 8 && statistics_due() {
            // In the background: the pages in flight hold open transactions meanwhile.
            tokio::spawn(refresh_statistics(engine.pool.clone()));
        }
    }
    let safe = lock(&prefix).safe;
    if let Some(w) = safe {
        let mut txn = engine.pool.begin().await?;
        if !leases::verify(&mut txn, lease).await? {
            return Err(SyncError::LeaseLost(account_id));
        }
        cursors::advance(&mut txn, lease.account_id, STREAM, w).await?;
        txn.commit().await?;
    }
    Ok(())
}

/// Pages committed at once.
pub const WRITERS: usize = 4;

struct Committed {
    records: usize,
    written: u64,
    erased: u64,
    stats: CallStats,
}

async fn commit_page(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    seq: u64,
    PageToCommit { page, watermark }: PageToCommit,
    prefix: &std::sync::Mutex<Prefix>,
) -> Result<Committed, SyncError> {
    let account_id = lease.account_id;
    let records = page.records.len();
    let stats = page.stats;
    let mut rows = convert::customer_rows(page.records);
    // Judged before the policy (which may hash the name that tells); applied before any write.
    let anonymized: Vec<i64> = rows
        .iter()
        .filter(|r| pii::is_anonymized(r))
        .map(|r| r.customer_id)
        .collect();
    rows.iter_mut().for_each(|r| engine.mirror.pii.apply(r));
    let began = std::time::Instant::now();
    let mut txn = engine.pool.begin().await?;
    // The page, its cursor and its count commit together, so losing the newest commits in a
    // server crash loses nothing: the cursor goes back with the data and the next run refetches.
    // Not waiting for the WAL flush is therefore safe here (and only here: tokens wait).
    // Each statement is planned for this page (`force_custom_plan`): a first sync grows the child
    // tables from nothing, and the generic plan a prepared statement settles on after five pages
    // was made for empty tables (sequential scans that compare every row with the page's 100
    // IDs), which nothing re-plans as the tables grow; measured, those scans were a third of
    // Postgres' time in the ingest bench. Planning a page's few statements costs well under 1 ms.
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true),
                set_config('plan_cache_mode', 'force_custom_plan', true)",
    )
    .execute(&mut *txn)
    .await?;
    if !leases::verify(&mut txn, lease).await? {
        return Err(SyncError::LeaseLost(account_id));
    }
    let erased = match anonymized.is_empty() {
        true => Vec::new(),
        false => history::unerased(&mut txn, lease.account_id, &anonymized).await?,
    };
    let written = mirror::upsert_customers(&mut txn, lease.account_id, &rows).await?;
    record_history(engine, &mut txn, lease.account_id, &rows, &anonymized).await?;
    if !erased.is_empty() {
        runs::add_erased(&mut txn, run_id, erased.len() as i64).await?;
    }
    let advance_to = lock(prefix).watermark_for(seq, watermark);
    if let Some(w) = advance_to {
        cursors::advance(&mut txn, lease.account_id, STREAM, w).await?;
    }
    runs::add_page(
        &mut txn,
        run_id,
        written as i64,
        stats.requests as i32,
        stats.throttled as i32,
    )
    .await?;
    txn.commit().await?;
    lock(prefix).committed(seq, watermark);
    tracing::debug!(
        records,
        written,
        ms = began.elapsed().as_secs_f64() * 1e3,
        "page committed"
    );
    Ok(Committed {
        records,
        written,
        erased: erased.len() as u64,
        stats,
    })
}

/// In the page's transaction, after its upsert: mark the anonymized customers erased and, with
/// `mirror.history`, record the page's versions and scrub the earlier versions of the anonymized
/// ones (the mirror keeps no more of an erased customer than Lightspeed does).
async fn record_history(
    engine: &Engine,
    txn: &mut sqlx::PgConnection,
    account_id: AccountId,
    rows: &[mirror::CustomerRow],
    anonymized: &[i64],
) -> Result<(), sqlx::Error> {
    if !anonymized.is_empty() {
        history::mark_erased(txn, account_id, anonymized).await?;
    }
    if !engine.mirror.history {
        return Ok(());
    }
    history::record_versions(txn, account_id, rows).await?;
    if !anonymized.is_empty() {
        let erased: Vec<&mirror::CustomerRow> = rows
            .iter()
            .filter(|r| anonymized.contains(&r.customer_id))
            .collect();
        history::erase_earlier(txn, account_id, &erased, &pii::ERASED_RAW_KEYS).await?;
    }
    Ok(())
}

fn lock(prefix: &std::sync::Mutex<Prefix>) -> std::sync::MutexGuard<'_, Prefix> {
    prefix.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which pages are committed, for moving the cursor only over a gap-free prefix of them.
#[derive(Debug, Default)]
struct Prefix {
    /// Every page before this one is committed.
    upto: u64,
    /// Pages committed past `upto`, with their watermarks.
    ahead: std::collections::BTreeMap<u64, Option<DateTime<Utc>>>,
    /// The newest watermark of the committed prefix.
    safe: Option<DateTime<Utc>>,
}

impl Prefix {
    /// The watermark page `seq` may store with its own commit: `None` while an earlier page is
    /// still in flight; otherwise the newest of the prefix, this page and the pages already
    /// committed right after it.
    fn watermark_for(&self, seq: u64, own: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        if seq != self.upto {
            return None;
        }
        let mut w = self.safe.max(own);
        let mut next = seq + 1;
        while let Some(ahead) = self.ahead.get(&next) {
            w = w.max(*ahead);
            next += 1;
        }
        w
    }

    /// Page `seq` is committed.
    fn committed(&mut self, seq: u64, own: Option<DateTime<Utc>>) {
        self.ahead.insert(seq, own);
        while let Some(w) = self.ahead.remove(&self.upto) {
            self.safe = self.safe.max(w);
            self.upto += 1;
        }
    }
}

/// The mirror's tables are shared by every account, so one refresh serves them all: at most one
/// per process every [`STATISTICS_EVERY`] (a fleet's first sync would otherwise run an ANALYZE per
/// account, a thousand of them competing for the pool).
const STATISTICS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn statistics_due() -> bool {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    match *last {
        Some(at) if at.elapsed() < STATISTICS_EVERY => false,
        _ => {
            *last = Some(std::time::Instant::now());
            true
        }
    }
}

/// A first sync grows the mirror from nothing in minutes, faster than autovacuum re-plans it; with
/// statistics that still say "empty", the planner would scan a whole account's contact rows for
/// every page. So a long run refreshes them now and then (after 8, 16, 32, ... pages).
async fn refresh_statistics(pool: sqlx::PgPool) {
    // A small sample is enough to tell the planner the tables are no longer empty; autovacuum later
    // analyzes them in full.
    let sql = "BEGIN; SET LOCAL default_statistics_target = 10; \
               ANALYZE lightspeed.customers, lightspeed.customer_emails, lightspeed.customer_phones, \
               lightspeed.customer_websites, lightspeed.customer_custom_fields, lightspeed.credit_accounts, \
               lightspeed.customer_addresses; COMMIT";
    if let Err(e) = sqlx::raw_sql(sql).execute(&pool).await {
        tracing::debug!(error = %crate::error::report(&e), "could not refresh the mirror's statistics");
    }
}

#[cfg(test)]
mod tests {
    use super::Prefix;
    use chrono::{DateTime, TimeZone, Utc};

    fn t(s: i64) -> Option<DateTime<Utc>> {
        Some(Utc.timestamp_opt(s, 0).unwrap())
    }

    #[test]
    fn the_cursor_never_covers_an_uncommitted_page() {
        let mut p = Prefix::default();
        // Page 1 commits before page 0: it may not move the cursor.
        assert_eq!(p.watermark_for(1, t(20)), None);
        p.committed(1, t(20));
        assert_eq!(p.safe, None);
        // Page 0 then carries the prefix 0..=1.
        assert_eq!(p.watermark_for(0, t(10)), t(20));
        p.committed(0, t(10));
        assert_eq!((p.upto, p.safe), (2, t(20)));
        // In order, each page moves it to its own watermark.
        assert_eq!(p.watermark_for(2, t(30)), t(30));
        p.committed(2, t(30));
        assert_eq!(p.safe, t(30));
        // Pages without a watermark (full walks) leave it alone.
        assert_eq!(p.watermark_for(3, None), t(30));
    }
}
