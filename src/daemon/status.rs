//! What `lightspeed-sync status` and `/status` show: per account, its authorization state and, per
//! stream, the last success, the lag, and the last run's status, rows and error. Read from the
//! credentials (without secrets) and `lightspeed.sync_status` / `lightspeed_sync.runs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::model::{AccountId, AccountStatus, Kind, RunStatus, Stream};
use crate::tokens::store::list_accounts;

/// The whole report (the JSON of `status --json` and `/status`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StatusReport {
    /// When it was read (database clock).
    pub generated_at: DateTime<Utc>,
    /// One entry per account: connected ones, and ones with run history but no credentials.
    pub accounts: Vec<AccountView>,
}

/// One account.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AccountView {
    /// Lightspeed account ID.
    pub account_id: AccountId,
    /// Its name (from the accounts stream, else as stored when it was connected).
    pub name: String,
    /// `connected`, `needs_reauth`, or `disconnected` (run history but no credentials).
    pub authorization: String,
    /// Why it needs re-authorization.
    pub authorization_reason: Option<String>,
    /// When the authorization state last changed.
    pub authorization_changed_at: Option<DateTime<Utc>>,
    /// When the access token was last refreshed.
    pub token_refreshed_at: Option<DateTime<Utc>>,
    /// One word for the account as a whole ([`AccountView::state_of`]): `needs_reauth`,
    /// `disconnected`, `syncing`, `failing`, `never_synced` or `ok`.
    #[serde(default)]
    pub state: String,
    /// Per stream.
    pub streams: Vec<StreamView>,
}

impl AccountView {
    /// The state word: authorization first, then a run in progress, then the last runs' outcome.
    pub fn state_of(&self) -> &'static str {
        match self.authorization.as_str() {
            "needs_reauth" => return "needs_reauth",
            "disconnected" => return "disconnected",
            _ => {}
        }
        let statuses: Vec<Option<RunStatus>> = self.streams.iter().map(|s| s.last_status).collect();
        if statuses.contains(&Some(RunStatus::Running)) {
            "syncing"
        } else if statuses
            .iter()
            .any(|s| matches!(s, Some(RunStatus::Failed | RunStatus::Interrupted)))
        {
            "failing"
        } else if self.streams.iter().any(|s| s.last_success_at.is_none()) {
            "never_synced"
        } else {
            "ok"
        }
    }

    /// The largest lag of its streams; `None` (worst) when a stream never succeeded.
    pub fn max_lag(&self) -> Option<f64> {
        self.streams
            .iter()
            .map(|s| s.lag_seconds)
            .try_fold(0.0f64, |m, l| l.map(|l| m.max(l)))
    }
}

/// The states an account can be in, in display order.
pub const STATES: [&str; 6] = [
    "needs_reauth",
    "failing",
    "syncing",
    "never_synced",
    "ok",
    "disconnected",
];

/// One stream of one account.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StreamView {
    /// `accounts` or `customers`.
    pub stream: Stream,
    /// End of the last successful run.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Seconds since then.
    pub lag_seconds: Option<f64>,
    /// Status of the last run: `running`, `succeeded`, `failed`, `interrupted`; none if never run.
    pub last_status: Option<RunStatus>,
    /// Kind of the last run: `incremental`, `full` or `contacts`.
    pub last_kind: Option<Kind>,
    /// Start of the last run.
    pub last_started_at: Option<DateTime<Utc>>,
    /// End of the last run.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// Rows written by the last run.
    pub last_rows: Option<i64>,
    /// Error of the last run.
    pub last_error: Option<String>,
    /// Pages of the last run (so far, when it is running).
    #[serde(default)]
    pub last_pages: Option<i32>,
    /// Pages the running run is expected to take: those of the previous successful run of the same
    /// kind (none for a first run, or when the last run is not running).
    #[serde(default)]
    pub expected_pages: Option<i32>,
    /// Estimated seconds left for the running run: the pages still expected, each at the
    /// account's bucket pace (request cost / drip rate; 1 s when this process does not know the
    /// bucket).
    #[serde(default)]
    pub eta_seconds: Option<f64>,
    /// Drips the stream's runs started in the last 24 hours spent (the API budget it uses a day:
    /// each request at its computed cost, 1 a page plus the relations', 10 a count).
    #[serde(default)]
    pub drips_24h: f64,
}

impl StreamView {
    /// Does this stream lag more than `limit` (a stream that never succeeded does)?
    pub fn stale(&self, limit: std::time::Duration) -> bool {
        self.lag_seconds.is_none_or(|l| l > limit.as_secs_f64())
    }
}

type StreamRow = (
    AccountId,
    Stream,
    Option<DateTime<Utc>>,
    Option<f64>,
    Option<RunStatus>,
    Option<Kind>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<String>,
    Option<i32>,
    Option<i32>,
);

/// Read the report, estimating time left at 1 s per page.
pub async fn collect(pool: &PgPool) -> Result<StatusReport, sqlx::Error> {
    collect_paced(pool, &|_| None).await
}

/// Read the report; `pace(account)` gives the seconds one page costs the account's bucket, when
/// known (the daemon asks its pacers).
pub async fn collect_paced(
    pool: &PgPool,
    pace: &(dyn Fn(AccountId) -> Option<f64> + Sync),
) -> Result<StatusReport, sqlx::Error> {
    let generated_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let credentials = list_accounts(pool).await?;
    let names: BTreeMap<AccountId, String> = sqlx::query_as::<_, (AccountId, String)>(
        "SELECT account_id, name FROM lightspeed.accounts",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let rows: Vec<StreamRow> = sqlx::query_as(
        "SELECT s.account_id, s.stream, s.last_success_at, extract(epoch FROM s.lag)::float8,
                s.last_status, r.kind, r.started_at, r.finished_at, r.rows, s.last_error,
                r.pages, p.pages
         FROM lightspeed.sync_status s
         LEFT JOIN LATERAL (SELECT kind, started_at, finished_at, rows, pages, status
                            FROM lightspeed_sync.runs r
                            WHERE r.account_id = s.account_id AND r.stream = s.stream
                            ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1) r ON true
         LEFT JOIN LATERAL (SELECT p.pages FROM lightspeed_sync.runs p
                            WHERE r.status = 'running' AND p.account_id = s.account_id
                              AND p.stream = s.stream AND p.kind = r.kind AND p.status = 'succeeded'
                            ORDER BY p.started_at DESC, p.run_id DESC LIMIT 1) p ON true
         ORDER BY s.account_id, s.stream",
    )
    .fetch_all(pool)
    .await?;
    let mut drips: BTreeMap<(AccountId, Stream), f64> = drips_last_day(pool)
        .await?
        .into_iter()
        .map(|(a, s, d)| ((a, s), d))
        .collect();
    let mut accounts: BTreeMap<AccountId, AccountView> = BTreeMap::new();
    for c in credentials {
        let name = names.get(&c.account_id).cloned().unwrap_or(c.account_name);
        let needs = c.status == AccountStatus::NeedsReauth;
        accounts.insert(
            c.account_id,
            AccountView {
                account_id: c.account_id,
                name,
                authorization: c.status.as_str().to_string(),
                authorization_reason: c.status_reason.filter(|_| needs),
                authorization_changed_at: c.status_changed_at,
                token_refreshed_at: c.refreshed_at,
                state: String::new(),
                streams: Vec::new(),
            },
        );
    }
    let mut by_stream: BTreeMap<(AccountId, Stream), StreamView> = BTreeMap::new();
    for (id, stream, success, lag, status, kind, started, finished, rows, error, pages, expected) in
        rows
    {
        accounts.entry(id).or_insert_with(|| AccountView {
            account_id: id,
            name: names.get(&id).cloned().unwrap_or_default(),
            authorization: "disconnected".into(),
            authorization_reason: None,
            authorization_changed_at: None,
            token_refreshed_at: None,
            state: String::new(),
            streams: Vec::new(),
        });
        let running = status == Some(RunStatus::Running);
        let expected = expected.filter(|_| running);
        let eta = expected.map(|e| {
            let left = f64::from((e - pages.unwrap_or(0)).max(0));
            left * pace(id).unwrap_or(1.0)
        });
        let view = StreamView {
            stream,
            last_success_at: success,
            lag_seconds: lag,
            last_status: status,
            last_kind: kind,
            last_started_at: started,
            last_finished_at: finished,
            last_rows: rows,
            last_error: error,
            last_pages: pages,
            expected_pages: expected,
            eta_seconds: eta,
            drips_24h: drips.remove(&(id, stream)).unwrap_or(0.0),
        };
        by_stream.insert((id, stream), view);
    }
    for (id, account) in accounts.iter_mut() {
        for stream in Stream::ALL {
            let view = by_stream
                .remove(&(*id, stream))
                .unwrap_or_else(|| never_run(stream));
            account.streams.push(view);
        }
        account.state = account.state_of().to_string();
    }
    Ok(StatusReport {
        generated_at,
        accounts: accounts.into_values().collect(),
    })
}

/// Per account and stream, the drips spent by the runs started in the last 24 hours
/// (`lightspeed_sync.runs.drips`).
pub async fn drips_last_day(pool: &PgPool) -> Result<Vec<(AccountId, Stream, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, stream, sum(drips)::float8 FROM lightspeed_sync.runs
         WHERE started_at > now() - interval '24 hours'
         GROUP BY account_id, stream ORDER BY account_id, stream",
    )
    .fetch_all(pool)
    .await
}

fn never_run(stream: Stream) -> StreamView {
    StreamView {
        stream,
        last_success_at: None,
        lag_seconds: None,
        last_status: None,
        last_kind: None,
        last_started_at: None,
        last_finished_at: None,
        last_rows: None,
        last_error: None,
        last_pages: None,
        expected_pages: None,
        eta_seconds: None,
        drips_24h: 0.0,
    }
}

/// The report as a table for a person: one line per account and stream, the same columns as the
/// status page.
pub fn render_table(report: &StatusReport) -> String {
    if report.accounts.is_empty() {
        return "no accounts connected: run `lightspeed-sync authorize` to connect one\n".into();
    }
    let mut rows = vec![
        [
            "ACCOUNT",
            "NAME",
            "STATE",
            "STREAM",
            "LAST SUCCESS",
            "LAG",
            "ROWS",
            "LAST RUN",
            "PROGRESS",
        ]
        .map(String::from),
    ];
    let mut notes = Vec::new();
    for a in &report.accounts {
        if let Some(reason) = &a.authorization_reason {
            notes.push(format!(
                "account {}: needs re-authorization since {}: {reason}",
                a.account_id,
                a.authorization_changed_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "?".into())
            ));
        }
        for s in &a.streams {
            rows.push([
                a.account_id.to_string(),
                a.name.clone(),
                if a.state.is_empty() {
                    a.state_of().to_string()
                } else {
                    a.state.clone()
                },
                s.stream.to_string(),
                s.last_success_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "never".into()),
                s.lag_seconds.map(human_secs).unwrap_or_else(|| "-".into()),
                s.last_rows
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.last_status.map_or_else(|| "-".into(), |s| s.to_string()),
                progress(s),
            ]);
            if let (Some(status), Some(error)) = (s.last_status, &s.last_error)
                && status != RunStatus::Succeeded
            {
                notes.push(format!(
                    "account {} {}: last run {status}: {error}",
                    a.account_id, s.stream
                ));
            }
        }
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for note in notes {
        let _ = writeln!(out, "\n{note}");
    }
    out
}

/// The running run's progress: `12/40 pages, ~28s left`; `-` when nothing runs.
pub fn progress(s: &StreamView) -> String {
    if s.last_status != Some(RunStatus::Running) {
        return "-".into();
    }
    let pages = s.last_pages.unwrap_or(0);
    match (s.expected_pages, s.eta_seconds) {
        (Some(e), Some(eta)) => format!("{pages}/{e} pages, ~{} left", human_secs(eta)),
        _ => format!("{pages} pages"),
    }
}

/// `3725.2` → `1h 2m`.
pub fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(5.4), "5s");
        assert_eq!(human_secs(125.0), "2m 5s");
        assert_eq!(human_secs(3725.0), "1h 2m");
        assert_eq!(human_secs(90_000.0), "1d 1h");
    }

    #[test]
    fn empty_table_says_how_to_connect() {
        let r = StatusReport {
            generated_at: Utc::now(),
            accounts: vec![],
        };
        assert!(render_table(&r).contains("authorize"));
    }
}
