//! `lightspeed-sync status`: per account, the authorization state and, per stream, the last success,
//! lag, rows and last error. A table for people, `--json` for scripts (the same JSON as `/status`).

use crate::config::Settings;
use crate::daemon::status::{self, StatusReport};
use crate::lightspeed::guard::printable;

/// Flags of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only the accounts and streams whose lag exceeds this (a stream that never succeeded
    /// counts). Exit code 1 when there is any, 0 when none: a check for cron or monitoring.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub stale: Option<std::time::Duration>,
}

/// `status --stale` found streams lagging more than the limit (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{streams} stream(s) of {accounts} account(s) lag more than {limit}")]
pub struct Stale {
    /// Streams over the limit.
    pub streams: usize,
    /// Their accounts.
    pub accounts: usize,
    /// The limit, as given.
    pub limit: String,
}

/// Keep only the accounts and streams lagging more than `limit`; the number of streams kept.
pub fn only_stale(report: &mut StatusReport, limit: std::time::Duration) -> usize {
    for account in &mut report.accounts {
        account.streams.retain(|s| s.stale(limit));
    }
    report.accounts.retain(|a| !a.streams.is_empty());
    report.accounts.iter().map(|a| a.streams.len()).sum()
}

/// Run `status`.
pub async fn run(settings: Settings, args: StatusArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings.database).await?;
    let mut report = status::collect(&pool).await.map_err(|e| {
        let undefined = e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01");
        if undefined {
            anyhow::anyhow!(
                "the database has no lightspeed-sync tables yet: run `lightspeed-sync migrate` (or start `run`)"
            )
        } else {
            anyhow::Error::new(e).context("reading the sync status")
        }
    })?;
    let stale = args
        .stale
        .map(|limit| (limit, only_stale(&mut report, limit)));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some((limit, 0)) = stale {
        println!(
            "no stream lags more than {}",
            humantime::format_duration(limit)
        );
    } else {
        print!("{}", table(&report));
    }
    match stale {
        Some((limit, streams)) if streams > 0 => Err(Stale {
            streams,
            accounts: report.accounts.len(),
            limit: humantime::format_duration(limit).to_string(),
        }
        .into()),
        _ => Ok(()),
    }
}

/// The table for a terminal: names and errors (text from Lightspeed) stripped of control characters
/// first, so an account named `ESC[2J…` cannot drive the terminal. JSON escapes them by itself.
pub fn table(report: &StatusReport) -> String {
    let mut clean = report.clone();
    for account in &mut clean.accounts {
        account.name = printable(&account.name);
        account.authorization_reason = account.authorization_reason.as_deref().map(printable);
        for stream in &mut account.streams {
            stream.last_error = stream.last_error.as_deref().map(printable);
        }
    }
    status::render_table(&clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::{AccountView, StreamView};
    use crate::model::{RunStatus, Stream};

    #[test]
    fn the_table_strips_control_characters_from_names_and_errors() {
        let stream = StreamView {
            stream: Stream::Customers,
            last_success_at: None,
            lag_seconds: None,
            last_status: Some(RunStatus::Failed),
            last_kind: None,
            last_started_at: None,
            last_finished_at: None,
            last_rows: None,
            last_error: Some("HTTP 500: \u{1b}]0;title\u{7}boom".into()),
            last_pages: None,
            expected_pages: None,
            eta_seconds: None,
            drips_24h: 0.0,
        };
        let report = StatusReport {
            generated_at: chrono::Utc::now(),
            accounts: vec![AccountView {
                account_id: 9.into(),
                name: "Caf\u{e9}\u{1b}[2J\u{1b}[31mRed".into(),
                authorization: "needs_reauth".into(),
                authorization_reason: Some("revoked\u{1b}[8m".into()),
                authorization_changed_at: None,
                token_refreshed_at: None,
                state: "needs_reauth".into(),
                streams: vec![stream],
            }],
        };
        let text = table(&report);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("Caf\u{e9}[2J[31mRed"), "{text}");
        assert!(
            text.contains("revoked[8m") && text.contains("]0;titleboom"),
            "{text}"
        );
    }
}
