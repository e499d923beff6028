//! Daemons in the test process and `run` child processes, against a simulator and a real Postgres.
//! The simulator/token/engine set-up is the sync tests' (`tests/it/sync/helpers.rs`), reused as is.

use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lightspeed_sync::config::Settings;
use lightspeed_sync::daemon::worker::Worker;
use lightspeed_sync::daemon::{Daemon, DaemonOptions, Stopped};
use lightspeed_sync::lightspeed::ApiClient;
use lightspeed_sync::lightspeed::retry::Backoff;
use lightspeed_sync::sync::{Engine, NoProgress, Progress};
use lightspeed_sync::tokens::source::TokenSource;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::sync::helpers as sync;

pub use sync::{Env, env, fast};

/// A cron expression that does not fire during a test (midnight on January 1st).
pub const NEVER: &str = "0 0 0 1 1 *";
/// Every second.
pub const EVERY_SECOND: &str = "* * * * * *";

/// The test environment's settings with these schedules (customers, accounts, full refresh) and
/// concurrency.
pub fn daemon_settings(env: &Env, schedules: [&str; 3], concurrency: usize) -> Settings {
    let mut s = env.settings.clone();
    s.schedule.customers = schedules[0].parse().unwrap();
    s.schedule.accounts = schedules[1].parse().unwrap();
    s.schedule.full_refresh = schedules[2].parse().unwrap();
    s.sync.concurrency = concurrency;
    // As many accounts at once as requests: two replicas then split the accounts between them.
    s.sync.max_accounts = concurrency;
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s
}

/// A pool of its own on the same database as `pool` (a replica has its own connections).
pub async fn own_pool(pool: &PgPool) -> PgPool {
    pool_on((*pool.connect_options()).clone()).await
}

/// A small pool with `options`.
pub async fn pool_on(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options)
        .await
        .unwrap()
}

/// An engine of its own (token source, API client, pool) for replica `replica`.
pub fn engine_for(
    settings: &Settings,
    pool: PgPool,
    replica: &str,
    progress: Arc<dyn Progress>,
) -> Engine {
    let tokens = TokenSource::from_settings(settings, pool.clone()).unwrap();
    let api = ApiClient::new(&settings.lightspeed, Arc::new(tokens))
        .unwrap()
        .with_backoff(Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        });
    Engine {
        pool,
        api,
        page_size: settings.sync.page_size,
        overlap: settings.sync.overlap,
        replica: replica.into(),
        progress,
        mirror: lightspeed_sync::sync::MirrorOptions::from_settings(&settings.mirror).unwrap(),
    }
}

/// A daemon running in a task of the test, stopped by [`RunningDaemon::stop`].
pub struct RunningDaemon {
    pub addr: SocketAddr,
    pub worker: Worker,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<Stopped>>,
}

impl RunningDaemon {
    /// Build a daemon around `engine` and run it until stopped.
    pub async fn start(settings: &Settings, engine: Engine, options: DaemonOptions) -> Self {
        let daemon = Daemon::new(settings, engine, options).await.unwrap();
        Self::run(daemon)
    }

    /// Run a built daemon until stopped.
    pub fn run(daemon: Daemon) -> Self {
        let stop = CancellationToken::new();
        let addr = daemon.local_addr();
        let worker = daemon.worker();
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(daemon.run_until_stopped(shutdown));
        RunningDaemon {
            addr,
            worker,
            stop,
            task,
        }
    }

    /// Ask for shutdown and wait for the daemon to return.
    pub async fn stop(self) -> Stopped {
        self.stop.cancel();
        self.stopped().await
    }

    /// Wait for the daemon to return (after its shutdown input fired).
    pub async fn stopped(self) -> Stopped {
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the daemon stops within 60 s")
            .unwrap()
            .unwrap()
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Options for tests: no initial sync unless asked, a short readiness timeout.
pub fn options(initial_sync: bool) -> DaemonOptions {
    DaemonOptions {
        initial_sync,
        ready_timeout: Duration::from_secs(1),
        ..DaemonOptions::default()
    }
}

/// Poll `check` until it returns `Some`, at most `limit`; panics with `what` after that. For events
/// that only show in the database or over HTTP (another process's work): the wait ends at the event,
/// the poll interval only bounds the reaction time.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A run as the tests look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub run_id: i64,
    pub account_id: i64,
    pub stream: String,
    pub kind: String,
    pub status: String,
    pub replica: Option<String>,
    pub pages: i32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Every run, in order.
pub async fn runs(pool: &PgPool) -> Vec<Run> {
    sqlx::query_as(
        "SELECT run_id, account_id, stream, kind, status, replica, pages, started_at, finished_at
         FROM lightspeed_sync.runs ORDER BY run_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Assert that no two runs of one account overlap in time (from the database clock).
pub fn assert_no_overlap(runs: &[Run]) {
    let mut by_account: std::collections::BTreeMap<i64, Vec<&Run>> = Default::default();
    for r in runs {
        by_account.entry(r.account_id).or_default().push(r);
    }
    for (account, mut list) in by_account {
        list.sort_by_key(|r| r.started_at);
        for pair in list.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let end = a
                .finished_at
                .unwrap_or_else(|| panic!("run {} still open: {a:?}", a.run_id));
            assert!(
                end <= b.started_at,
                "account {account}: run {} ({:?}) overlaps run {} ({:?})",
                a.run_id,
                a.replica,
                b.run_id,
                b.replica
            );
        }
    }
}

/// The stored watermark and the newest `updated_at` in the mirror for `account`.
pub async fn watermark_and_newest(
    pool: &PgPool,
    account: u64,
) -> (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
) {
    let watermark: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT watermark FROM lightspeed_sync.cursors WHERE account_id = $1 AND stream = 'customers'",
    )
    .bind(account as i64)
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten();
    let newest: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT max(updated_at) FROM lightspeed.customers WHERE account_id = $1",
    )
    .bind(account as i64)
    .fetch_one(pool)
    .await
    .unwrap();
    (watermark, newest)
}

pub use crate::common::database_url;

/// `LSSYNC__*` variables that give a child process the same configuration as `settings`.
pub fn child_env(settings: &Settings, pool: &PgPool) -> Vec<(String, String)> {
    let l = &settings.lightspeed;
    let v = vec![
        ("LSSYNC__DATABASE__URL", database_url(pool)),
        (
            "LSSYNC__LIGHTSPEED__API_BASE_URL",
            l.api_base_url.to_string(),
        ),
        (
            "LSSYNC__LIGHTSPEED__AUTH_BASE_URL",
            l.auth_base_url.to_string(),
        ),
        ("LSSYNC__LIGHTSPEED__CLIENT_ID", l.client_id.clone()),
        (
            "LSSYNC__LIGHTSPEED__CLIENT_SECRET",
            l.client_secret.as_ref().unwrap().expose_secret().into(),
        ),
        (
            "LSSYNC__LIGHTSPEED__REDIRECT_URI",
            l.redirect_uri.to_string(),
        ),
        ("LSSYNC__LIGHTSPEED__REQUEST_TIMEOUT", "5s".into()),
        (
            "LSSYNC__SECURITY__TOKEN_KEY",
            settings
                .security
                .token_key
                .as_ref()
                .unwrap()
                .expose_secret()
                .into(),
        ),
        ("LSSYNC__SERVER__LISTEN", "127.0.0.1:0".into()),
        (
            "LSSYNC__SCHEDULE__CUSTOMERS",
            settings.schedule.customers.to_string(),
        ),
        (
            "LSSYNC__SCHEDULE__ACCOUNTS",
            settings.schedule.accounts.to_string(),
        ),
        (
            "LSSYNC__SCHEDULE__FULL_REFRESH",
            settings.schedule.full_refresh.to_string(),
        ),
        (
            "LSSYNC__SYNC__CONCURRENCY",
            settings.sync.concurrency.to_string(),
        ),
        (
            "LSSYNC__SYNC__MAX_ACCOUNTS",
            settings.sync.max_accounts.to_string(),
        ),
        (
            "LSSYNC__SYNC__PAGE_SIZE",
            settings.sync.page_size.to_string(),
        ),
        ("LSSYNC__LOG__FORMAT", "json".into()),
        ("LSSYNC__LOG__LEVEL", "info,sqlx=warn".into()),
    ];
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A `lightspeed-sync` child process with its stderr lines collected.
pub struct Child {
    pub child: tokio::process::Child,
    pub pid: u32,
    lines: watch::Receiver<Vec<String>>,
    /// The task reading stderr: it ends at EOF, once the child has exited.
    reader: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Child {
    /// Start `lightspeed-sync ARGS` with `env` (and nothing of the test's own configuration).
    pub fn spawn(args: &[&str], env: &[(String, String)]) -> Child {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"));
        cmd.args(args)
            .current_dir(dir.path())
            .env_remove("LSSYNC_CONFIG")
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = watch::channel(Vec::new());
        let echo = std::env::var_os("TEST_LOG").is_some();
        let reader = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if echo {
                    eprintln!("[child {pid}] {line}");
                }
                tx.send_modify(|v| v.push(line));
            }
        });
        Child {
            child,
            pid,
            lines,
            reader: Some(reader),
            _dir: dir,
        }
    }

    /// Wait for a stderr line containing `needle` (bounded); returns it.
    pub async fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let found = tokio::time::timeout(
            limit,
            self.lines
                .wait_for(|lines| lines.iter().any(|l| l.contains(needle))),
        )
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
        let lines = self.lines.borrow().clone();
        match found {
            true => lines.into_iter().find(|l| l.contains(needle)).unwrap(),
            _ => panic!(
                "no line with {needle:?} on the child's stderr within {limit:?}:\n{}",
                lines.join("\n")
            ),
        }
    }

    /// Everything the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.lines.borrow().join("\n")
    }

    /// Send a signal (`TERM`, `KILL`) with `kill(1)`.
    pub async fn signal(&self, name: &str) {
        let status = tokio::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.pid);
    }

    /// Wait for the child to exit (bounded), and for its stderr to be read to the end, so
    /// that [`Child::stderr`] then holds everything it wrote.
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "the child did not exit within {limit:?}:\n{}",
                self.stderr()
            ),
        };
        if let Some(reader) = self.reader.take() {
            tokio::time::timeout(limit, reader)
                .await
                .expect("the child's stderr stays open after it exited")
                .unwrap();
        }
        status
    }
}

/// Run `lightspeed-sync ARGS` to completion; returns (status, stdout, stderr).
pub async fn run_cli(
    args: &[&str],
    env: &[(String, String)],
) -> (std::process::ExitStatus, String, String) {
    let mut child = Child::spawn(args, env);
    let mut stdout = child.child.stdout.take().unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
        .await
        .unwrap();
    let status = child.wait(Duration::from_secs(30)).await;
    let err = child.stderr();
    (status, out, err)
}

/// A progress observer that calls `f` on every committed page.
pub struct OnPage<F>(pub F);

impl<F: Fn(u64) + Send + Sync> Progress for OnPage<F> {
    fn page(
        &self,
        account_id: lightspeed_sync::model::AccountId,
        _: lightspeed_sync::sync::Stream,
        _: usize,
        _: &lightspeed_sync::lightspeed::api::CallStats,
    ) {
        (self.0)(account_id.get())
    }
}

/// No progress observer.
pub fn no_progress() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

/// A slot filled once later (e.g. the worker a progress hook must reach).
pub type Later<T> = Arc<Mutex<Option<T>>>;
