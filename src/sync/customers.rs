//! The customers stream.
//!
//! **Incremental** runs walk `sort=timeStamp`, `archived=true` (archived = deleted or anonymized
//! upstream), `load_relations=["Contact"]`, from the stored watermark minus an overlap. The API's cursor
//! carries only the last record's sort value and how it breaks ties is undocumented: following `next`
//! after a page that ends at time `T` may skip the other records stamped `T`. So instead of following
//! `next`, each page asks again from `timeStamp >= T` (the last stamp of the page before; the few records
//! seen twice are harmless upserts). When a whole page shares one stamp (more ties than a page holds),
//! those ties are swept by `customerID` (a unique sort, whose cursor is safe to follow) with
//! `timeStamp=><,T,T`, and the walk goes on from `timeStamp > T`. The walk ends when the API says there
//! is no next page and the page was not full (a cursor that skips ties may report no next page after
//! a full page that ends inside a group of equal stamps).
//!
//! **Full** runs walk `sort=customerID` (unique: `next` is followed verbatim) over every customer,
//! archived included, then — only after a complete walk — mark mirror rows that were not seen as deleted.
//!
//! Fetching runs ahead of committing by at most [`PIPELINE_DEPTH`] pages, so the API and Postgres work
//! at the same time while memory stays bounded whatever the size of the account.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{Engine, Kind, Stream, SyncError, Tally, convert};
use crate::db::leases::{self, Lease};
use crate::db::{cursors, mirror, runs};
use crate::lightspeed::api::{CallStats, Page};
use crate::lightspeed::query::{Archived, CustomerQuery, Filter, Sort, SortField};
use crate::lightspeed::wire::Customer;

/// Pages fetched but not yet committed, at most.
pub const PIPELINE_DEPTH: usize = 4;

const STREAM: &str = "customers";

/// A fetched page on its way to the database.
struct Fetched {
    page: Page<Customer>,
    /// Advance the watermark to this after committing (incremental runs only).
    watermark: Option<DateTime<Utc>>,
}

pub(crate) async fn run(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    run_started_at: DateTime<Utc>,
    kind: Kind,
    tally: &mut Tally,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let account_id = lease.account_id as u64;
    let (tx, rx) = mpsc::channel::<Fetched>(PIPELINE_DEPTH);
    // The fetcher owns the sender: when it finishes, the writer sees the end of the channel.
    let fetch = async move {
        let tx = tx;
        match kind {
            Kind::Incremental => {
                let watermark = cursors::watermark(&engine.pool, lease.account_id, STREAM).await?;
                let from = watermark
                    .map(|w| w - chrono::Duration::from_std(engine.overlap).unwrap_or_default());
                fetch_incremental(engine, account_id, from, &tx, cancel).await
            }
            Kind::Full => fetch_full(engine, account_id, &tx, cancel).await,
        }
    };
    let write = commit_pages(engine, lease, run_id, rx, tally);
    // If the writer fails it drops the receiver and the fetcher stops at its next send; if the fetcher
    // fails, the writer first commits what was fetched before the failure.
    let (fetched, written) = tokio::join!(fetch, write);
    written?;
    fetched?;
    if kind == Kind::Full {
        let mut conn = engine.pool.acquire().await?;
        let mut txn = sqlx::Connection::begin(&mut *conn).await?;
        if !leases::verify(&mut txn, lease).await? {
            return Err(SyncError::LeaseLost(account_id));
        }
        tally.deleted =
            mirror::mark_unseen_deleted(&mut txn, lease.account_id, run_started_at).await?;
        txn.commit().await?;
        if tally.deleted > 0 {
            tracing::info!(
                account = account_id,
                deleted = tally.deleted,
                "customers gone upstream marked deleted"
            );
        }
    }
    Ok(())
}

fn base_query(engine: &Engine, field: SortField) -> CustomerQuery {
    CustomerQuery {
        limit: Some(engine.page_size),
        sort: Some(Sort {
            field,
            descending: false,
        }),
        archived: Some(Archived::Include),
        load_contact: true,
        ..CustomerQuery::default()
    }
}

/// Send a page to the writer; false when the writer is gone (it failed).
async fn send(
    tx: &mpsc::Sender<Fetched>,
    page: Page<Customer>,
    watermark: Option<DateTime<Utc>>,
) -> bool {
    tx.send(Fetched { page, watermark }).await.is_ok()
}

async fn fetch_incremental(
    engine: &Engine,
    account_id: u64,
    from: Option<DateTime<Utc>>,
    tx: &mpsc::Sender<Fetched>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let mut lower = from.map(Filter::Ge);
    // The records of the last page stamped with its last stamp: asking again from that stamp
    // brings them back, and the same version need not be written twice.
    let mut seen_at_boundary: std::collections::HashSet<(u64, DateTime<Utc>)> = Default::default();
    loop {
        if cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let mut query = base_query(engine, SortField::TimeStamp);
        query.time_stamp = lower.clone();
        let url = engine.api.customers_url(account_id, &query);
        let mut page = engine.api.get_customers_page(account_id, &url).await?;
        tracing::debug!(account = account_id, url = %url, records = page.records.len(), more = page.next.is_some(), "fetched page");
        let (first, last) = match (page.records.first(), page.records.last()) {
            (Some(f), Some(l)) => (f.time_stamp, l.time_stamp),
            _ => {
                send(tx, page, None).await;
                return Ok(());
            }
        };
        // The newest stamp of the page (pages are sorted, but do not rely on it for the cursor).
        let newest = page
            .records
            .iter()
            .map(|c| c.time_stamp)
            .max()
            .unwrap_or(last);
        // A full page may hide more records even when `next` is empty: a cursor that skips ties
        // has nothing "after" a page that ends inside a group of equal stamps. So only a short page
        // with no `next` ends the walk.
        let full = page.records.len() >= engine.page_size as usize;
        let more = full || page.next.is_some();
        let full_of_ties = more && first == last;
        let boundary: std::collections::HashSet<(u64, DateTime<Utc>)> = page
            .records
            .iter()
            .filter(|c| c.time_stamp == last)
            .map(|c| (c.customer_id, c.time_stamp))
            .collect();
        page.records
            .retain(|c| !seen_at_boundary.contains(&(c.customer_id, c.time_stamp)));
        seen_at_boundary = boundary;
        if !send(tx, page, Some(newest)).await {
            return Ok(());
        }
        if !more {
            return Ok(());
        }
        if full_of_ties {
            sweep_ties(engine, account_id, last, tx, cancel).await?;
            lower = Some(Filter::Gt(last));
        } else {
            lower = Some(Filter::Ge(last));
        }
    }
}

/// Every customer stamped exactly `at`, by `customerID` (unique, so `next` is safe to follow).
async fn sweep_ties(
    engine: &Engine,
    account_id: u64,
    at: DateTime<Utc>,
    tx: &mpsc::Sender<Fetched>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    tracing::debug!(account = account_id, %at, "a whole page shares one timeStamp: sweeping the ties by customerID");
    let mut query = base_query(engine, SortField::CustomerId);
    query.time_stamp = Some(Filter::Between(at, at));
    let first = engine.api.customers_url(account_id, &query);
    walk_following_next(engine, account_id, first, Some(at), tx, cancel).await
}

async fn fetch_full(
    engine: &Engine,
    account_id: u64,
    tx: &mpsc::Sender<Fetched>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let first = engine
        .api
        .customers_url(account_id, &base_query(engine, SortField::CustomerId));
    walk_following_next(engine, account_id, first, None, tx, cancel).await
}

/// Follow `next` verbatim from `url` until it is empty.
async fn walk_following_next(
    engine: &Engine,
    account_id: u64,
    mut url: Url,
    watermark: Option<DateTime<Utc>>,
    tx: &mpsc::Sender<Fetched>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    loop {
        if cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let page = engine.api.get_customers_page(account_id, &url).await?;
        tracing::debug!(account = account_id, url = %url, records = page.records.len(), more = page.next.is_some(), "fetched page");
        let next = page.next.clone();
        if !send(tx, page, watermark).await {
            return Ok(());
        }
        match next {
            Some(n) => url = n,
            None => return Ok(()),
        }
    }
}

/// Commit each page with the run's counts and (incremental runs) the cursor, under the lease.
///
/// Up to [`WRITERS`] pages commit at once, each in its own transaction. Rows are keyed and only
/// replaced by newer versions, so their order does not matter; the cursor does: a page's transaction
/// moves it only as far as the pages committed before it without a gap (the [`Prefix`]), so it never
/// covers a page that is not committed. Whatever is left is applied once all pages are in.
async fn commit_pages(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    rx: mpsc::Receiver<Fetched>,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let account_id = lease.account_id as u64;
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
            stats,
        } = done?;
        tally.pages += 1;
        tally.records += records as u64;
        tally.rows += written;
        tally.stats.add(&stats);
        engine
            .progress
            .page(account_id, Stream::Customers, records, &stats);
        if tally.pages.is_power_of_two() && tally.pages >= 8 {
            refresh_statistics(engine).await;
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
    stats: CallStats,
}

async fn commit_page(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    seq: u64,
    Fetched { page, watermark }: Fetched,
    prefix: &std::sync::Mutex<Prefix>,
) -> Result<Committed, SyncError> {
    let account_id = lease.account_id as u64;
    let records = page.records.len();
    let stats = page.stats;
    let rows = mirror::dedupe_newest(
        page.records
            .into_iter()
            .map(convert::customer_row)
            .collect(),
    );
    let began = std::time::Instant::now();
    let mut txn = engine.pool.begin().await?;
    // The page, its cursor and its count commit together, so losing the newest commits in a
    // server crash loses nothing: the cursor goes back with the data and the next run refetches.
    // Not waiting for the WAL flush is therefore safe here (and only here: tokens wait).
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *txn)
        .await?;
    if !leases::verify(&mut txn, lease).await? {
        return Err(SyncError::LeaseLost(account_id));
    }
    let written = mirror::upsert_customers(&mut txn, lease.account_id, &rows).await?;
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
        account = account_id,
        run_id,
        records,
        written,
        ms = began.elapsed().as_secs_f64() * 1e3,
        "page committed"
    );
    Ok(Committed {
        records,
        written,
        stats,
    })
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

/// A first sync grows the mirror from nothing in minutes, faster than autovacuum re-plans it; with
/// statistics that still say "empty", the planner would scan a whole account's contact rows for
/// every page. So a long run refreshes them now and then (after 8, 16, 32, ... pages).
async fn refresh_statistics(engine: &Engine) {
    let sql = "ANALYZE lightspeed.customers, lightspeed.customer_emails, lightspeed.customer_phones, \
               lightspeed.customer_addresses";
    if let Err(e) = sqlx::query(sql).execute(&engine.pool).await {
        tracing::debug!(error = %e, "could not refresh the mirror's statistics");
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
