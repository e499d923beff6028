//! The accounts stream: `Account.json` (the accounts the token sees) and each account's detail.
//!
//! Identity and name come from `Account.json`, which every recording shows and which always carries
//! `accountID` and `name`. The row from the list is committed first, so it lands even when the detail
//! (`Account/{id}.json`, documented without an `Account` key: see `lightspeed::wire::AccountDetail`)
//! fails; the detail then enriches it (status, currency, the whole document in `raw.detail`).

use serde_json::json;

use super::{Engine, SyncError, Tally};
use crate::db::leases::{self, Lease};
use crate::db::{mirror, runs};
use crate::lightspeed::error::ApiError;

/// Fetch the account from the list and commit it, then its detail, committed too.
pub(crate) async fn run(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let account_id = lease.account_id;
    let listed = engine.api.get_accounts(account_id).await?;
    tally.uncommitted.add(&listed.stats);
    let Some(account) = listed.value.iter().find(|a| a.account_id == account_id) else {
        let ids: Vec<String> = listed
            .value
            .iter()
            .map(|a| a.account_id.to_string())
            .collect();
        return Err(ApiError::Malformed {
            url: listed.url,
            reason: format!(
                "account {account_id} is not listed (the token sees [{}]); re-authorize it",
                ids.join(", ")
            ),
        }
        .into());
    };
    let listed_raw: serde_json::Value = serde_json::from_str(account.raw.get()).unwrap_or_default();
    let mut tx = begin(engine, lease).await?;
    mirror::upsert_listed_account(
        &mut tx,
        lease.account_id,
        &account.name,
        &json!({ "Account": listed_raw }),
    )
    .await?;
    finish(tx, run_id, tally, Some(1)).await?;

    // The list row has landed; a detail that fails (or matches no known shape) fails the run.
    let detail = engine.api.get_account_detail(account_id).await?;
    tally.uncommitted.add(&detail.stats);
    if let Some(other) = detail.value.account_id.filter(|id| *id != account_id) {
        return Err(ApiError::Malformed {
            url: detail.url,
            reason: format!("the detail is for account {other}, not {account_id}"),
        }
        .into());
    }
    let d = &detail.value;
    let detail_raw: serde_json::Value = serde_json::from_str(d.raw.get()).unwrap_or_default();
    let mut tx = begin(engine, lease).await?;
    mirror::enrich_account(
        &mut tx,
        lease.account_id,
        d.status.as_deref(),
        d.currency_code.as_deref(),
        &detail_raw,
    )
    .await?;
    finish(tx, run_id, tally, None).await?;
    tally.records += 1;
    tally.rows += 1;
    engine
        .progress
        .page(account_id, super::Stream::Accounts, 1, &tally.stats);
    Ok(())
}

/// A page transaction that still holds the account's lease.
async fn begin<'c>(
    engine: &'c Engine,
    lease: &Lease,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, SyncError> {
    let mut tx = engine.pool.begin().await?;
    if !leases::verify(&mut tx, lease).await? {
        return Err(SyncError::LeaseLost(lease.account_id));
    }
    Ok(tx)
}

/// Add what was fetched since the last commit to the run's counts, and commit. `Some(rows)` counts
/// a page (the account's row); `None` only the requests (its detail enriches the same row).
async fn finish(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    run_id: i64,
    tally: &mut Tally,
    page_rows: Option<i64>,
) -> Result<(), SyncError> {
    let stats = std::mem::take(&mut tally.uncommitted);
    let (requests, throttled) = (stats.requests as i32, stats.throttled as i32);
    match page_rows {
        Some(rows) => runs::add_page(&mut tx, run_id, rows, requests, throttled).await?,
        None => runs::add_requests(&mut *tx, run_id, requests, throttled).await?,
    }
    tx.commit().await?;
    tally.pages += u64::from(page_rows.is_some());
    tally.stats.add(&stats);
    Ok(())
}
