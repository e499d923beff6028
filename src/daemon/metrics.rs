//! Prometheus metrics: the process-wide recorder (installed once, however many daemons a test process
//! runs), the gauges read from the database at scrape time (so they survive restarts and cover every
//! replica), and a token provider that counts token failures.
//!
//! Counters come from where things happen: the API client (`lightspeed_api_*`), the engine
//! (`lightspeed_sync_runs_total`, `lightspeed_sync_rows_upserted_total`), the worker
//! (`lightspeed_daemon_*`) and [`CountingTokens`] (`lightspeed_token_failures_total`).

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::lightspeed::{AuthFailure, BoxFuture, TokenProvider};
use crate::model::{AccountId, AccountStatus, RunStatus, Stream};
use crate::tokens::store::{AccountCredentialInfo, list_accounts};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use. If another recorder was
/// installed first (an embedding program), the handle renders only what reaches ours: nothing.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// `# HELP` lines, and zeros for the series alerts are written against (so `increase()` works from
/// the first failure on).
fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!("lightspeed_sync_runs_total", "Runs by stream and outcome");
    describe_counter!(
        "lightspeed_sync_rows_upserted_total",
        "Mirror rows written, by stream"
    );
    describe_counter!(
        "lightspeed_sync_customers_erased_total",
        "Customers erased: seen anonymized upstream while the mirror held them un-anonymized (their history scrubbed)"
    );
    describe_gauge!(
        "lightspeed_sync_last_success_timestamp_seconds",
        "End of the last successful run per account and stream (Unix time)"
    );
    describe_gauge!(
        "lightspeed_sync_lag_seconds",
        "Seconds since the last successful run per account and stream"
    );
    describe_counter!(
        "lightspeed_api_requests_total",
        "API responses by HTTP status (`error`: no response)"
    );
    describe_counter!(
        "lightspeed_api_throttled_total",
        "429 responses by limiter type"
    );
    describe_counter!(
        "lightspeed_api_retries_total",
        "API requests retried after a transient failure"
    );
    describe_gauge!(
        "lightspeed_api_rate_limit_wait_seconds_total",
        "Seconds spent waiting for the rate limit (only grows)"
    );
    describe_gauge!(
        "lightspeed_accounts",
        "Connected accounts by authorization state"
    );
    describe_gauge!(
        "lightspeed_token_last_refresh_timestamp_seconds",
        "When the account's access token was last refreshed (Unix time)"
    );
    describe_counter!(
        "lightspeed_token_failures_total",
        "Failures to get an access token (needs_reauth: a person must run `authorize`)"
    );
    describe_counter!(
        "lightspeed_token_refreshes_total",
        "Refresh calls to the token endpoint by result (succeeded, invalid_grant, invalid_client, transient, other)"
    );
    describe_counter!(
        "lightspeed_token_rejected_total",
        "Access tokens the API rejected with 401 (each one triggers a refresh)"
    );
    describe_counter!(
        "lightspeed_daemon_skipped_total",
        "Account batches not run: busy (another replica holds the lease), needs_reauth, lease_error"
    );
    describe_counter!(
        "lightspeed_daemon_jobs_coalesced_total",
        "Jobs merged into an account's pending set because it was already queued or running"
    );
    describe_gauge!(
        "lightspeed_sync_drips_24h",
        "Drips spent by the runs started in the last 24 hours, per account and stream (the API budget a day)"
    );
    describe_gauge!(
        "lightspeed_daemon_accounts_active",
        "Accounts with a sync running or waiting for a slot in this process"
    );
    metrics::counter!("lightspeed_sync_customers_erased_total").absolute(0);
    for stream in Stream::ALL {
        for status in RunStatus::FINISHED {
            metrics::counter!("lightspeed_sync_runs_total", "stream" => stream.as_str(), "status" => status.as_str())
                .absolute(0);
        }
    }
    for kind in ["needs_reauth", "transient"] {
        metrics::counter!("lightspeed_token_failures_total", "kind" => kind).absolute(0);
    }
    for reason in ["busy", "needs_reauth", "lease_error"] {
        metrics::counter!("lightspeed_daemon_skipped_total", "reason" => reason).absolute(0);
    }
}

/// Set the gauges of authorization state from `accounts`.
pub fn set_account_gauges(accounts: &[AccountCredentialInfo]) {
    let needs = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::NeedsReauth)
        .count();
    metrics::gauge!("lightspeed_accounts", "authorization" => AccountStatus::Connected.as_str())
        .set((accounts.len() - needs) as f64);
    metrics::gauge!("lightspeed_accounts", "authorization" => AccountStatus::NeedsReauth.as_str())
        .set(needs as f64);
}

/// Refresh the gauges read from the database: accounts by authorization state, last success and lag
/// per account and stream (from `lightspeed.sync_status`), last token refresh per account.
pub async fn refresh_db_gauges(pool: &PgPool) -> Result<(), sqlx::Error> {
    let accounts = list_accounts(pool).await?;
    set_account_gauges(&accounts);
    for a in &accounts {
        if let Some(at) = a.refreshed_at {
            metrics::gauge!("lightspeed_token_last_refresh_timestamp_seconds", "account" => a.account_id.to_string())
                .set(at.timestamp() as f64);
        }
    }
    let rows: Vec<(AccountId, Stream, Option<f64>, Option<f64>)> = sqlx::query_as(
        "SELECT account_id, stream, extract(epoch FROM last_success_at)::float8,
                extract(epoch FROM lag)::float8
         FROM lightspeed.sync_status",
    )
    .fetch_all(pool)
    .await?;
    for (account, stream, last, lag) in rows {
        let account = account.to_string();
        if let (Some(last), Some(lag)) = (last, lag) {
            metrics::gauge!("lightspeed_sync_last_success_timestamp_seconds", "account" => account.clone(), "stream" => stream.as_str())
                .set(last);
            metrics::gauge!("lightspeed_sync_lag_seconds", "account" => account, "stream" => stream.as_str())
                .set(lag);
        }
    }
    // Every connected account's streams, so a stream that spent nothing today reads 0.
    let mut drips: std::collections::BTreeMap<(AccountId, Stream), f64> = accounts
        .iter()
        .flat_map(|a| Stream::ALL.map(|s| ((a.account_id, s), 0.0)))
        .collect();
    drips.extend(
        super::status::drips_last_day(pool)
            .await?
            .into_iter()
            .map(|(a, s, d)| ((a, s), d)),
    );
    for ((account, stream), d) in drips {
        metrics::gauge!("lightspeed_sync_drips_24h", "account" => account.to_string(), "stream" => stream.as_str())
            .set(d);
    }
    Ok(())
}

/// The Prometheus text of everything recorded so far.
pub fn render() -> String {
    handle().render()
}

/// A [`TokenProvider`] that counts failures of the one it wraps
/// (`lightspeed_token_failures_total{needs_reauth}`) and rejected tokens
/// (`lightspeed_token_rejected_total`, each one a refresh attempt after a 401).
pub struct CountingTokens<T>(pub Arc<T>);

impl<T: TokenProvider + 'static> TokenProvider for CountingTokens<T> {
    fn access_token(
        &self,
        account_id: AccountId,
    ) -> BoxFuture<'_, Result<SecretString, AuthFailure>> {
        Box::pin(async move { count(self.0.access_token(account_id).await) })
    }

    fn token_rejected<'a>(
        &'a self,
        account_id: AccountId,
        rejected: &'a SecretString,
    ) -> BoxFuture<'a, Result<SecretString, AuthFailure>> {
        metrics::counter!("lightspeed_token_rejected_total").increment(1);
        Box::pin(async move { count(self.0.token_rejected(account_id, rejected).await) })
    }
}

fn count(result: Result<SecretString, AuthFailure>) -> Result<SecretString, AuthFailure> {
    if let Err(e) = &result {
        let kind = if e.needs_reauth {
            "needs_reauth"
        } else {
            "transient"
        };
        metrics::counter!("lightspeed_token_failures_total", "kind" => kind).increment(1);
    }
    result
}
