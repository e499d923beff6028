//! The accounts stream: `Account.json` (the accounts the token sees) and each account's detail.

use super::{Engine, SyncError, Tally};
use crate::db::leases::{self, Lease};
use crate::db::{mirror, runs};

/// Fetch the account and its detail, upsert it in one transaction.
pub(crate) async fn run(
    engine: &Engine,
    lease: &Lease,
    run_id: i64,
    tally: &mut Tally,
) -> Result<(), SyncError> {
    let account_id = lease.account_id as u64;
    let listed = engine.api.get_accounts(account_id).await?;
    tally.uncommitted.add(&listed.stats);
    let detail = engine.api.get_account_detail(account_id).await?;
    tally.uncommitted.add(&detail.stats);
    let detail = detail.value;
    // Keep both documents: the list entry and the detail.
    let listed_raw = listed
        .value
        .iter()
        .find(|a| a.account_id == account_id)
        .map(|a| serde_json::to_value(&a.raw).unwrap_or_default())
        .unwrap_or_default();
    let raw = serde_json::json!({ "Account": listed_raw, "detail": detail.raw });

    let mut tx = engine.pool.begin().await?;
    if !leases::verify(&mut tx, lease).await? {
        return Err(SyncError::LeaseLost(account_id));
    }
    mirror::upsert_account(
        &mut tx,
        lease.account_id,
        &detail.name,
        detail.status.as_deref(),
        detail.currency_code.as_deref(),
        &raw,
    )
    .await?;
    let stats = std::mem::take(&mut tally.uncommitted);
    runs::add_page(
        &mut tx,
        run_id,
        1,
        stats.requests as i32,
        stats.throttled as i32,
    )
    .await?;
    tx.commit().await?;
    tally.pages += 1;
    tally.records += 1;
    tally.rows += 1;
    tally.stats.add(&stats);
    engine
        .progress
        .page(account_id, super::Stream::Accounts, 1, &stats);
    Ok(())
}
