//! `lightspeed-sync rekey`: re-encrypt every stored credential with the current
//! `security.token_key`, reading rows written under older keys with `security.previous_token_keys`.
//!
//! One row at a time, each in its own transaction under the row lock, so it is safe while daemons run
//! and refresh tokens; running it again changes nothing. It prints one line per re-encrypted or
//! failed account and a summary, and fails (exit 1) naming every account it could not re-encrypt.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::db::credentials;
use crate::error::report;
use crate::model::AccountId;
use crate::tokens::crypto::Keyring;
use crate::tokens::store::{RekeyOutcome, TokenStore};

/// How long one row may stay locked by another process (a refresh holds it for one token request).
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Counts of one `rekey` run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeySummary {
    /// Rows written again with the current key.
    pub reencrypted: usize,
    /// Rows already under the current key.
    pub current: usize,
    /// Accounts whose rows could not be re-encrypted, with the reason.
    pub failed: Vec<(AccountId, String)>,
}

/// Run `rekey`.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // The keys first: a missing or malformed key is reported before anything touches the database.
    let keyring = Arc::new(Keyring::from_settings(&settings.security)?);
    let pool = crate::db::connect(&settings.database).await?;
    crate::db::migrate(&pool, &settings.database).await?;
    let previous: Vec<String> = keyring
        .previous_versions()
        .iter()
        .map(i32::to_string)
        .collect();
    println!(
        "current key: version {} (security.token_key); older keys: {}",
        keyring.current_version(),
        if previous.is_empty() {
            "none".to_string()
        } else {
            format!("versions {}", previous.join(", "))
        }
    );
    let store = TokenStore::new(pool, keyring);
    let summary = rekey_all(&store, |line| println!("{line}")).await?;
    println!(
        "re-encrypted {}, already current {}, failed {}",
        summary.reencrypted,
        summary.current,
        summary.failed.len()
    );
    if !summary.failed.is_empty() {
        let accounts: Vec<String> = summary
            .failed
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        anyhow::bail!(
            "could not re-encrypt the credentials of account{} {} (see above); they were left as they were",
            if accounts.len() == 1 { "" } else { "s" },
            accounts.join(", ")
        );
    }
    Ok(())
}

/// Re-encrypt every row; `line` receives one line per re-encrypted or failed account.
pub async fn rekey_all(
    store: &TokenStore,
    mut line: impl FnMut(String),
) -> anyhow::Result<RekeySummary> {
    let ids = credentials::list_ids(store.pool()).await.map_err(|e| {
        let undefined = e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01");
        if undefined {
            anyhow::anyhow!("the database has no lightspeed-sync tables yet: nothing to re-encrypt")
        } else {
            anyhow::Error::new(e).context("listing the stored credentials")
        }
    })?;
    let current = store.keyring().current_version();
    let mut summary = RekeySummary::default();
    for id in ids {
        let account_id = id;
        match store.rekey(account_id, LOCK_WAIT).await {
            Ok(RekeyOutcome::Reencrypted { from }) => {
                summary.reencrypted += 1;
                line(format!(
                    "account {account_id}: re-encrypted (key version {from} -> {current})"
                ));
            }
            Ok(RekeyOutcome::AlreadyCurrent) => summary.current += 1,
            Ok(RekeyOutcome::Gone) => {}
            Err(e) => {
                line(format!("account {account_id}: failed: {}", report(&e)));
                summary.failed.push((account_id, report(&e).to_string()));
            }
        }
    }
    Ok(summary)
}
