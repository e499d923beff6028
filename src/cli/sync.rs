//! `lightspeed-sync sync`: one sync of the connected accounts now, then exit.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Database};
use crate::config::Settings;
use crate::db::leases;
use crate::error::report;
use crate::lightspeed::CallStats;
use crate::model::AccountId;
use crate::sync::account::{Skipped, sync_account};
use crate::sync::lease::Presence;
use crate::sync::{Engine, Kind, Progress, RunReport, RunStatus, Stream};
use crate::tokens::store::{self, AccountCredentialInfo};

/// Flags of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Only these accounts (repeatable). Default: every connected account.
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<AccountId>,
    /// Only this stream. Default: accounts, then customers.
    #[arg(long, value_enum)]
    pub stream: Option<StreamArg>,
    /// Walk every customer and mark the ones that vanished upstream as deleted.
    #[arg(long)]
    pub full: bool,
    /// With --full: re-apply the PII policies (`mirror.pii.*`) to the whole mirror. Every customer
    /// is rewritten from what Lightspeed serves now, even when its version is unchanged; customers
    /// no longer served and the stored history rows get the current hash/drop policies applied to
    /// the values they hold (a value already hashed or dropped cannot be restored there: hash ->
    /// keep is not undone for them).
    #[arg(long, requires = "full")]
    pub rewrite: bool,
    /// How long to wait for an account that another live process (a daemon, another `sync`) is
    /// syncing; after that it is skipped (exit code 75). Accounts of a process that died are taken
    /// at once, without waiting.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Skip busy accounts at once instead of waiting (same as `--wait 0s`).
    #[arg(long, conflicts_with = "wait")]
    pub no_wait: bool,
}

/// `sync` ends with this when every run succeeded except for accounts skipped because another live
/// process held them: exit code 75 (EX_TEMPFAIL, "try again later").
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} account(s) skipped: another process is syncing them (exit code 75: try again later, or give --wait a longer time)"
)]
pub struct BusySkipped(pub usize);

/// How often `sync` looks whether the busy accounts it waits for are free (one query for all).
const WAIT_POLL: Duration = Duration::from_secs(1);

/// A stream name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamArg {
    /// `lightspeed.accounts`
    Accounts,
    /// `lightspeed.customers` and their contacts
    Customers,
}

/// The exit code of a `sync` aborted by a second signal (128 + SIGINT, as a shell reports it).
pub const ABORTED: i32 = 130;

/// SIGINT (Ctrl-C) or SIGTERM: stop after the pages in flight (`cancel`). A second one: exit at
/// once with [`ABORTED`]. Nothing is lost either way: a page, its cursor and its counts commit
/// together, so the server rolls back the pages a killed process had in flight, and the next run
/// fetches them again; the process's presence lock ends with its connections, freeing its leases.
/// The handlers are installed before this returns (one stream per signal, so a second signal
/// arriving at any moment is seen).
fn stop_on_signals(cancel: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut next = async || {
            tokio::select! {
                _ = int.recv() => "interrupted",
                _ = term.recv() => "terminated",
            }
        };
        next().await;
        eprintln!("stopping after the pages in flight (Ctrl-C again to abort)");
        cancel.cancel();
        let how = next().await;
        eprintln!(
            "{how} again: aborting; the pages in flight are not committed and the next sync fetches them"
        );
        std::process::exit(ABORTED);
    });
    Ok(())
}

/// Run `sync`.
pub async fn run(settings: Settings, args: SyncArgs) -> anyhow::Result<()> {
    let progress = Arc::new(TerminalProgress::new());
    let App {
        pool, mut engine, ..
    } = App::connect(&settings, Database::Existing, progress.clone()).await?;
    engine.mirror.rewrite = args.rewrite;
    let accounts = select_accounts(&pool, &args.accounts).await?;
    if accounts.is_empty() {
        anyhow::bail!("no connected account: run `lightspeed-sync authorize` first");
    }
    let streams = streams(args.stream, args.full);
    let cancel = CancellationToken::new();
    stop_on_signals(cancel.clone())?;
    let wait = if args.no_wait {
        Duration::ZERO
    } else {
        args.wait
    };
    // One presence for the whole run (one connection, whatever the number of accounts).
    let presence = Presence::get(&pool, &engine.replica);
    let outcomes = sync_waiting(
        &engine,
        &accounts,
        &streams,
        settings.sync.max_accounts,
        wait,
        &cancel,
    )
    .await;
    drop(presence);
    progress.finish();
    let mut failures = 0;
    let mut busy = 0;
    for outcome in &outcomes {
        match outcome {
            Ok(reports) => {
                for r in reports {
                    println!("{}", summary_line(r));
                    failures += usize::from(r.status != RunStatus::Succeeded);
                }
            }
            Err(skipped @ Skipped::Busy { .. }) => {
                println!("{skipped}");
                busy += 1;
            }
            Err(skipped) => {
                println!("{}", report(skipped));
                failures += 1;
            }
        }
    }
    // A failure wins over a skip: 1 says "look at it", 75 only "try again later".
    if failures > 0 {
        anyhow::bail!("{failures} run(s) did not succeed");
    }
    if busy > 0 {
        return Err(BusySkipped(busy).into());
    }
    Ok(())
}

/// Sync accounts, at most `max_accounts` at once (the API client bounds what they share: requests
/// in flight and pages held, see [`crate::daemon::fleet_limits`]); accounts another live process holds are tried
/// again as soon as they are free, for at most `wait` (one query per second finds which of them
/// are), then reported as [`Skipped::Busy`]. An account whose holder died is free at once.
pub async fn sync_waiting(
    engine: &Engine,
    accounts: &[AccountCredentialInfo],
    streams: &[(Stream, Kind)],
    max_accounts: usize,
    wait: Duration,
    cancel: &CancellationToken,
) -> Vec<Result<Vec<RunReport>, Skipped>> {
    let deadline = Instant::now() + wait;
    let mut outcomes = Vec::with_capacity(accounts.len());
    let mut busy = Vec::new();
    for (account, outcome) in
        sync_some(engine, accounts.to_vec(), streams, max_accounts, cancel).await
    {
        match outcome {
            Err(Skipped::Busy { .. }) => busy.push(account),
            other => outcomes.push(other),
        }
    }
    if !busy.is_empty() && !wait.is_zero() {
        let ids: Vec<String> = busy.iter().map(|a| a.account_id.to_string()).collect();
        eprintln!(
            "waiting up to {} for account(s) {} (another process is syncing them)",
            humantime::format_duration(wait),
            ids.join(", ")
        );
    }
    while !busy.is_empty() && Instant::now() < deadline && !cancel.is_cancelled() {
        let pause = WAIT_POLL.min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => break,
        }
        let ids: Vec<AccountId> = busy.iter().map(|a| a.account_id).collect();
        let free = match leases::takeable(&engine.pool, &ids).await {
            Ok(free) => free,
            Err(e) => {
                tracing::warn!(error = %report(&e), "could not look at the leases of the busy accounts; trying again");
                continue;
            }
        };
        if free.is_empty() {
            continue;
        }
        let (ready, still): (Vec<_>, Vec<_>) =
            busy.into_iter().partition(|a| free.contains(&a.account_id));
        busy = still;
        for (account, outcome) in sync_some(engine, ready, streams, max_accounts, cancel).await {
            match outcome {
                Err(Skipped::Busy { .. }) => busy.push(account),
                other => outcomes.push(other),
            }
        }
    }
    outcomes.extend(busy.into_iter().map(|a| {
        Err(Skipped::Busy {
            account_id: a.account_id,
        })
    }));
    outcomes
}

async fn sync_some(
    engine: &Engine,
    accounts: Vec<AccountCredentialInfo>,
    streams: &[(Stream, Kind)],
    max_accounts: usize,
    cancel: &CancellationToken,
) -> Vec<(AccountCredentialInfo, Result<Vec<RunReport>, Skipped>)> {
    futures::stream::iter(accounts)
        .map(|a| async move {
            let outcome = sync_account(engine, &a, streams, cancel).await;
            (a, outcome)
        })
        .buffer_unordered(max_accounts.max(1))
        .collect()
        .await
}

/// The streams of one sync, in order.
pub fn streams(only: Option<StreamArg>, full: bool) -> Vec<(Stream, Kind)> {
    let customers = (
        Stream::Customers,
        if full { Kind::Full } else { Kind::Incremental },
    );
    match only {
        Some(StreamArg::Accounts) => vec![(Stream::Accounts, Kind::Full)],
        Some(StreamArg::Customers) => vec![customers],
        None => vec![(Stream::Accounts, Kind::Full), customers],
    }
}

async fn select_accounts(
    pool: &sqlx::PgPool,
    wanted: &[AccountId],
) -> anyhow::Result<Vec<AccountCredentialInfo>> {
    let all = store::list_accounts(pool)
        .await
        .context("listing connected accounts")?;
    if wanted.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for id in wanted {
        match all.iter().find(|a| a.account_id == *id) {
            // `--account 1 --account 1` syncs it once (twice at once would fight over its lease).
            Some(_)
                if out
                    .iter()
                    .any(|o: &AccountCredentialInfo| o.account_id == *id) => {}
            Some(a) => out.push(a.clone()),
            None => {
                anyhow::bail!("account {id} is not connected (run `lightspeed-sync authorize`)")
            }
        }
    }
    Ok(out)
}

/// Sync accounts, at most `max_accounts` at once (the API client bounds what they share).
pub async fn sync_all(
    engine: &Engine,
    accounts: &[AccountCredentialInfo],
    streams: &[(Stream, Kind)],
    max_accounts: usize,
    cancel: &CancellationToken,
) -> Vec<Result<Vec<RunReport>, crate::sync::account::Skipped>> {
    futures::stream::iter(accounts)
        .map(|a| sync_account(engine, a, streams, cancel))
        .buffer_unordered(max_accounts.max(1))
        .collect()
        .await
}

/// One line per run: what it did and how fast.
pub fn summary_line(r: &RunReport) -> String {
    let secs = r.elapsed.as_secs_f64().max(1e-3);
    let mut line = format!(
        "account {} {} ({}): {} — {} pages, {} records, {} rows written",
        r.account_id,
        r.stream.as_str(),
        r.kind.as_str(),
        r.status.as_str(),
        r.pages,
        r.records,
        r.rows,
    );
    if r.deleted > 0 {
        line.push_str(&format!(", {} marked deleted", r.deleted));
    }
    if r.erased > 0 {
        line.push_str(&format!(", {} erased (anonymized upstream)", r.erased));
    }
    line.push_str(&format!(
        ", {} requests, {} × 429, {:.1} s waiting for the rate limit, {:.1} s ({:.0} records/s)",
        r.stats.requests,
        r.stats.throttled,
        r.stats.waited.as_secs_f64(),
        secs,
        r.records as f64 / secs
    ));
    if let Some(e) = &r.error {
        line.push_str(&format!("; error: {e}"));
    }
    line
}

/// A spinner on stderr when it is a terminal: pages, records, records/s, rate-limit waits.
pub struct TerminalProgress {
    bar: ProgressBar,
    pages: AtomicU64,
    records: AtomicU64,
    waited_ms: AtomicU64,
    throttled: AtomicU64,
    started: Instant,
}

impl TerminalProgress {
    /// A progress display, hidden when stderr is not a terminal.
    pub fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        TerminalProgress {
            bar,
            pages: AtomicU64::new(0),
            records: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Remove the display.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for TerminalProgress {
    fn page(&self, _account: AccountId, _stream: Stream, records: usize, stats: &CallStats) {
        let pages = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.records.fetch_add(records as u64, Ordering::Relaxed) + records as u64;
        let waited = self
            .waited_ms
            .fetch_add(stats.waited.as_millis() as u64, Ordering::Relaxed)
            + stats.waited.as_millis() as u64;
        let throttled = self
            .throttled
            .fetch_add(stats.throttled as u64, Ordering::Relaxed)
            + stats.throttled as u64;
        let rate = total as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{pages} pages, {total} records, {rate:.0} records/s, {:.1} s waiting for the rate limit, {throttled} × 429",
            waited as f64 / 1000.0
        ));
    }
}
