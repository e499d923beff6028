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
//! **Definitions.** The custom field definitions (`Customer/CustomField.json`, when
//! `CustomFieldValues` is loaded) and the customer types (`CustomerType.json`, when `CustomerType` is
//! loaded) are walked whole, by ID, after the customers of a full run and of the first run of an
//! account (no watermark yet, or none stored: a first run interrupted before them): a handful of requests, each page committed with the run's counts, and after a
//! complete walk the ones no longer listed are marked deleted (customer types are deleted for good
//! upstream and cannot be walked by `timeStamp`). They are part of the `customers` stream, so the
//! stream names stay `accounts` and `customers`; the schedule's full refresh keeps them fresh.
//!
//! **Relations** loaded with each page are the client's `customer_relations`
//! (`sync.customer_relations`). Edits that do not move `Customer.timeStamp` (a custom field value, a
//! note, a credit balance, a Contact: unverified upstream) are missed by incremental runs and caught by
//! the full walk, which replaces a row whose content differs at the same `timeStamp`.
//!
//! **Contacts** runs are what a scheduled full refresh runs when a walk can be spared (the API
//! budget): first `Customer.json?archived=true&count=1` (10 drips) against the mirror's rows not
//! marked deleted. When they differ (a hard delete, or customers not synced yet) the run becomes a
//! full walk (recorded as `full`). When they are equal nothing can have been hard-deleted since the
//! mirror was complete, and the run walks only the customers whose `Contact.timeStamp` is at or
//! after the watermark minus the overlap (`Contact.timeStamp=>=,…`, with `Contact` loaded: a search
//! inside a relation, fact sheet §5), by `customerID` (unique: `next` is followed verbatim). That
//! catches Contact-only edits that did not move `Customer.timeStamp`; it leaves the watermark where
//! it is. Edits elsewhere that move no stamp at all are left to the periodic full walk
//! (`schedule.full_walk_every`).
//!
//! Fetching runs ahead of committing by at most [`PIPELINE_DEPTH`] pages, so the API and Postgres work
//! at the same time while memory stays bounded whatever the size of the account.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::commit::{PageToCommit, commit_pages};
use super::{Engine, Kind, SyncError, Tally};
use crate::db::leases::{self, Lease};
use crate::db::{cursors, mirror};
use crate::lightspeed::api::Page;
use crate::lightspeed::error::ApiError;
use crate::lightspeed::query::{
    self, Archived, CustomerQuery, CustomerRelation, Filter, Sort, SortField,
};
use crate::lightspeed::wire::{Customer, Record};
use crate::model::{AccountId, Stream};

/// Pages fetched but not yet committed, at most.
pub const PIPELINE_DEPTH: usize = 4;

const STREAM: Stream = Stream::Customers;

pub(crate) async fn run(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    run_started_at: DateTime<Utc>,
    kind: Kind,
    tally: &mut Tally,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let account_id = lease.account_id;
    let first_run = cursors::watermark(&engine.pool, lease.account_id, STREAM)
        .await?
        .is_none();
    let kind = match kind {
        Kind::Contacts if first_run => Kind::Full,
        Kind::Contacts => {
            let (upstream, stats) = upstream_count(engine, account_id).await?;
            crate::db::runs::add_requests(
                &engine.pool,
                run_id,
                stats.requests as i32,
                stats.throttled as i32,
            )
            .await?;
            tally.stats.add(&stats);
            let mirrored = mirror_count(engine, lease.account_id).await?;
            if upstream == mirrored {
                tracing::info!(
                    customers = upstream,
                    "counts match: the full walk is skipped; walking Contact.timeStamp changes"
                );
                Kind::Contacts
            } else {
                tracing::info!(upstream, mirrored, "counts differ: walking every customer");
                Kind::Full
            }
        }
        other => other,
    };
    tally.ran_as = Some(kind);
    let (tx, rx) = mpsc::channel::<PageToCommit>(PIPELINE_DEPTH);
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
            Kind::Contacts => {
                let watermark = cursors::watermark(&engine.pool, lease.account_id, STREAM).await?;
                let from = watermark
                    .map(|w| w - chrono::Duration::from_std(engine.overlap).unwrap_or_default());
                fetch_contacts(engine, account_id, from, &tx, cancel).await
            }
        }
    };
    let write = commit_pages(engine, lease, run_id, rx, tally);
    // If the writer fails it drops the receiver and the fetcher stops at its next send; if the fetcher
    // fails, the writer first commits what was fetched before the failure.
    let (fetched, written) = tokio::join!(fetch, write);
    written?;
    fetched?;
    if kind == Kind::Full || first_run || !has_definitions(engine, lease.account_id).await? {
        sync_definitions(engine, lease, run_id, tally, cancel).await?;
    }
    if kind == Kind::Full {
        let mut conn = engine.pool.acquire().await?;
        let mut txn = sqlx::Connection::begin(&mut *conn).await?;
        if !leases::verify(&mut txn, lease).await? {
            return Err(SyncError::LeaseLost(account_id));
        }
        tally.deleted =
            mirror::mark_unseen_deleted(&mut txn, lease.account_id, run_started_at).await?;
        if engine.mirror.history {
            crate::db::history::close_deleted(&mut txn, lease.account_id).await?;
        }
        txn.commit().await?;
        if tally.deleted > 0 {
            tracing::info!(
                deleted = tally.deleted,
                "customers gone upstream marked deleted"
            );
        }
        if engine.mirror.rewrite {
            let deleted = super::pii::rewrite_deleted(engine, lease).await?;
            let history = super::pii::rewrite_history(engine, lease).await?;
            tracing::info!(
                deleted,
                history,
                "PII policy applied to the customers no longer served and to the stored history"
            );
        }
    }
    Ok(())
}

/// `Customer.json?archived=true&count=1`: the account's customers upstream, archived included.
async fn upstream_count(
    engine: &Engine,
    account_id: AccountId,
) -> Result<(u64, crate::lightspeed::api::CallStats), SyncError> {
    let mut url = engine.api.customers_url(
        account_id,
        &CustomerQuery {
            archived: Some(Archived::Include),
            ..CustomerQuery::default()
        },
    );
    url.query_pairs_mut().append_pair("count", "1");
    let parse = |body: &[u8]| -> Result<u64, crate::lightspeed::wire::WireError> {
        let bad = |why: &str| crate::lightspeed::wire::WireError::from_problem(why.to_string());
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let count = &v["@attributes"]["count"];
        count
            .as_u64()
            .or_else(|| count.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| bad("no `@attributes.count` in the answer to a count query"))
    };
    let (count, stats) = engine.api.get_parsed(account_id, &url, parse).await?;
    Ok((count, stats))
}

/// The account's mirror rows not marked deleted.
async fn mirror_count(engine: &Engine, account_id: AccountId) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed.customers WHERE account_id = $1 AND deleted_at IS NULL",
    )
    .bind(account_id)
    .fetch_one(&engine.pool)
    .await?;
    Ok(n as u64)
}

/// The customers whose Contact was stamped at or after `from`, by `customerID`, with `Contact`
/// loaded (the filter searches inside it). Without `Contact` among the loaded relations the mirror
/// holds no Contact to catch up: nothing is walked.
async fn fetch_contacts(
    engine: &Engine,
    account_id: AccountId,
    from: Option<DateTime<Utc>>,
    tx: &mpsc::Sender<PageToCommit>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let mut query = base_query(engine, SortField::CustomerId);
    if !query.load_contact {
        return Ok(());
    }
    query.contact_time_stamp = from.map(Filter::Ge);
    let url = engine.api.customers_url(account_id, &query);
    if cancel.is_cancelled() {
        return Err(SyncError::Cancelled);
    }
    let first = fetch_page(engine, account_id, &url).await?;
    // A server that ignored the filter would turn this pass into a full walk: refuse it.
    if let Some(from) = from {
        let early = first.records.iter().find(|c| {
            c.contact
                .as_ref()
                .and_then(|k| k.time_stamp)
                .is_some_and(|t| t < from)
        });
        if let Some(c) = early {
            return Err(ApiError::Malformed {
                url,
                reason: format!(
                    "customer {} has a Contact stamped before the requested Contact.timeStamp bound {from}",
                    c.customer_id
                ),
            }
            .into());
        }
    }
    follow(engine, account_id, first, None, tx, cancel).await
}

fn base_query(engine: &Engine, field: SortField) -> CustomerQuery {
    CustomerQuery {
        limit: Some(engine.page_size),
        sort: Some(Sort {
            field,
            descending: false,
        }),
        archived: Some(Archived::Include),
        ..CustomerQuery::loading(engine.api.customer_relations())
    }
}

/// Whether the mirror holds the account's definitions (custom fields or customer types): a first run
/// that was interrupted, or failed, before it walked them leaves none, and the next run walks them.
/// (An account that defines none is walked again by each run: two requests.)
async fn has_definitions(engine: &Engine, account_id: AccountId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM lightspeed.custom_fields WHERE account_id = $1)
             OR EXISTS (SELECT 1 FROM lightspeed.customer_types WHERE account_id = $1)",
    )
    .bind(account_id)
    .fetch_one(&engine.pool)
    .await
}

/// Walk the definitions the loaded relations refer to, each page committed under the lease, and
/// mark those no longer listed as deleted once a walk is complete.
async fn sync_definitions(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    tally: &mut Tally,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    let account_id = lease.account_id;
    let relations = engine.api.customer_relations();
    let base = engine.api.api_base().clone();
    if relations.contains(&CustomerRelation::CustomFieldValues) {
        let url = query::custom_fields_url(&base, account_id);
        walk_definitions::<crate::lightspeed::wire::CustomField>(
            engine,
            lease,
            run_id,
            tally,
            cancel,
            url,
            mirror::Definitions::CustomFields,
        )
        .await?;
    }
    if relations.contains(&CustomerRelation::CustomerType) {
        let url = query::customer_types_url(&base, account_id);
        walk_definitions::<crate::lightspeed::wire::CustomerType>(
            engine,
            lease,
            run_id,
            tally,
            cancel,
            url,
            mirror::Definitions::CustomerTypes,
        )
        .await?;
    }
    Ok(())
}

/// The definitions of one kind: a record type and how its page is written.
trait Definition: Record + Send {
    async fn write(
        conn: &mut sqlx::PgConnection,
        account_id: AccountId,
        records: Vec<Self>,
    ) -> Result<u64, sqlx::Error>;
}

impl Definition for crate::lightspeed::wire::CustomField {
    async fn write(
        conn: &mut sqlx::PgConnection,
        account_id: AccountId,
        records: Vec<Self>,
    ) -> Result<u64, sqlx::Error> {
        let rows: Vec<_> = records
            .into_iter()
            .map(super::convert::custom_field_row)
            .collect();
        mirror::upsert_custom_fields(conn, account_id, &rows).await
    }
}

impl Definition for crate::lightspeed::wire::CustomerType {
    async fn write(
        conn: &mut sqlx::PgConnection,
        account_id: AccountId,
        records: Vec<Self>,
    ) -> Result<u64, sqlx::Error> {
        let rows: Vec<_> = records
            .into_iter()
            .map(super::convert::customer_type_row)
            .collect();
        mirror::upsert_customer_types(conn, account_id, &rows).await
    }
}

async fn walk_definitions<T: Definition>(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    tally: &mut Tally,
    cancel: &CancellationToken,
    first: Url,
    table: mirror::Definitions,
) -> Result<(), SyncError> {
    let account_id = lease.account_id;
    let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&engine.pool)
        .await?;
    let mut url = Some(first);
    while let Some(u) = url {
        if cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        let page = engine.api.get_records_page::<T>(account_id, &u).await?;
        tracing::debug!(url = %u, records = page.records.len(), "fetched definitions");
        let mut txn = engine.pool.begin().await?;
        if !leases::verify(&mut txn, lease).await? {
            return Err(SyncError::LeaseLost(account_id));
        }
        T::write(&mut txn, lease.account_id, page.records).await?;
        crate::db::runs::add_page(
            &mut txn,
            run_id,
            0,
            page.stats.requests as i32,
            page.stats.throttled as i32,
        )
        .await?;
        txn.commit().await?;
        tally.stats.add(&page.stats);
        url = page.next;
    }
    let mut txn = engine.pool.begin().await?;
    if !leases::verify(&mut txn, lease).await? {
        return Err(SyncError::LeaseLost(account_id));
    }
    let gone =
        mirror::mark_unseen_definitions_deleted(&mut txn, lease.account_id, table, started).await?;
    txn.commit().await?;
    if gone > 0 {
        tracing::info!(?table, gone, "definitions gone upstream marked deleted");
    }
    Ok(())
}

/// Send a page to the writer; false when the writer is gone (it failed).
async fn send(
    tx: &mpsc::Sender<PageToCommit>,
    page: Page<Customer>,
    watermark: Option<DateTime<Utc>>,
) -> bool {
    tx.send(PageToCommit { page, watermark }).await.is_ok()
}

async fn fetch_incremental(
    engine: &Engine,
    account_id: AccountId,
    from: Option<DateTime<Utc>>,
    tx: &mpsc::Sender<PageToCommit>,
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
        let mut page = fetch_page(engine, account_id, &url).await?;
        let (first, last) = match (page.records.first(), page.records.last()) {
            (Some(f), Some(l)) => (f.time_stamp, l.time_stamp),
            _ => {
                send(tx, page, None).await;
                return Ok(());
            }
        };
        // A server that ignored the filter would have the walk go round in circles.
        let ignored = match lower {
            Some(Filter::Gt(t)) => first <= t,
            Some(Filter::Ge(t)) => first < t,
            _ => false,
        };
        if ignored {
            return Err(ApiError::Malformed {
                url,
                reason: format!("records stamped {first} before the requested timeStamp bound"),
            }
            .into());
        }
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
    account_id: AccountId,
    at: DateTime<Utc>,
    tx: &mpsc::Sender<PageToCommit>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    tracing::debug!(%at, "a whole page shares one timeStamp: sweeping the ties by customerID");
    // `><,T,T` (between, inclusive) is the documented operator; should a server refuse it on
    // `timeStamp`, `=,T` says the same.
    let mut query = base_query(engine, SortField::CustomerId);
    query.time_stamp = Some(Filter::Between(at, at));
    let first = match fetch_page(
        engine,
        account_id,
        &engine.api.customers_url(account_id, &query),
    )
    .await
    {
        Err(SyncError::Api(ApiError::Status { status: 400, .. })) => {
            query.time_stamp = Some(Filter::Eq(at));
            fetch_page(
                engine,
                account_id,
                &engine.api.customers_url(account_id, &query),
            )
            .await?
        }
        other => other?,
    };
    follow(engine, account_id, first, Some(at), tx, cancel).await
}

async fn fetch_full(
    engine: &Engine,
    account_id: AccountId,
    tx: &mpsc::Sender<PageToCommit>,
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
    account_id: AccountId,
    url: Url,
    watermark: Option<DateTime<Utc>>,
    tx: &mpsc::Sender<PageToCommit>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    if cancel.is_cancelled() {
        return Err(SyncError::Cancelled);
    }
    let first = fetch_page(engine, account_id, &url).await?;
    follow(engine, account_id, first, watermark, tx, cancel).await
}

/// Send `page` to the writer, then fetch and send the pages its `next` leads to, verbatim.
async fn follow(
    engine: &Engine,
    account_id: AccountId,
    mut page: Page<Customer>,
    watermark: Option<DateTime<Utc>>,
    tx: &mpsc::Sender<PageToCommit>,
    cancel: &CancellationToken,
) -> Result<(), SyncError> {
    loop {
        let next = page.next.clone();
        if !send(tx, page, watermark).await {
            return Ok(());
        }
        let Some(url) = next else { return Ok(()) };
        if cancel.is_cancelled() {
            return Err(SyncError::Cancelled);
        }
        page = fetch_page(engine, account_id, &url).await?;
    }
}

/// One page of customers, logged at debug.
async fn fetch_page(
    engine: &Engine,
    account_id: AccountId,
    url: &Url,
) -> Result<Page<Customer>, SyncError> {
    let page = engine.api.get_customers_page(account_id, url).await?;
    tracing::debug!(url = %url, records = page.records.len(), more = page.next.is_some(), "fetched page");
    Ok(page)
}
