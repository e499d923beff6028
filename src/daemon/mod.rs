//! The daemon (`lightspeed-sync run`): scheduled syncs of every connected account, shared safely
//! between replicas through leases, graceful shutdown, and HTTP endpoints.
//!
//! - [`worker`]: a bounded, fair queue of account jobs (one task per account, one slot each).
//! - [`scheduler`]: the cron schedules; each job is a shim that hands a tick to the worker.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`.
//! - [`metrics`]: the Prometheus recorder and the gauges read from the database.
//! - [`status`]: what `status` and `/status` show.
//! - [`notify`]: systemd readiness, watchdog and stopping notifications.
//!
//! Leases are taken per account by [`crate::sync::account`]: several daemons split the accounts. A
//! daemon keeps one presence connection ([`crate::sync::lease::Presence`]) for its whole life; when
//! it dies, that session ends and the others (or its own restart) take its accounts at their next
//! tick, without waiting for the leases to expire. A daemon that is alive but stalled loses its
//! accounts when its leases expire.
//!
//! Shutdown is an input ([`Daemon::run_until_stopped`] takes a future): stop scheduling, cancel the
//! runs (each finishes and commits the page in flight, then stops as `interrupted`), wait for them
//! under a deadline, release the leases, return.

pub mod http;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod scheduler;
pub mod status;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, Database};
use crate::config::{ScheduleSettings, Settings};
use crate::sync::lease::{LEASE_TTL, Presence};
use crate::sync::{Engine, NoProgress};
use scheduler::Scheduler;
use worker::{Tick, Worker};

/// How long shutdown waits for running syncs by default (below systemd's `TimeoutStopSec=45`).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);

/// Choices that are not configuration keys (flags of `run`, or set by tests).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Sync every account right after start (otherwise wait for the first scheduled tick).
    pub initial_sync: bool,
    /// Lease lifetime without renewal: how soon another replica takes over a dead one's accounts.
    pub lease_ttl: Duration,
    /// How long shutdown waits for running syncs.
    pub shutdown_timeout: Duration,
    /// Listen here instead of `server.listen` (tests bind port 0).
    pub listen: Option<SocketAddr>,
    /// How long `/readyz` waits for the database.
    pub ready_timeout: Duration,
    /// Timeouts and connection limit of the HTTP endpoints.
    pub http_limits: http::ServerLimits,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            initial_sync: true,
            lease_ttl: LEASE_TTL,
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            listen: None,
            ready_timeout: http::READY_TIMEOUT,
            http_limits: http::ServerLimits::default(),
        }
    }
}

/// How the daemon stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Every run finished within the deadline (otherwise the rest were abandoned; their leases expire
    /// and their uncommitted pages roll back).
    pub drained: bool,
    /// From the shutdown request to the end.
    pub elapsed: Duration,
}

/// A built daemon, ready to run.
pub struct Daemon {
    schedule: ScheduleSettings,
    pool: sqlx::PgPool,
    replica: String,
    worker: Worker,
    tracker: TaskTracker,
    cancel: CancellationToken,
    listener: TcpListener,
    scheduling: Arc<AtomicBool>,
    options: DaemonOptions,
    /// Held for the daemon's life: its leases are free the moment this session is gone.
    _presence: Arc<Presence>,
}

impl Daemon {
    /// Connect to the database, migrate it, build the token source, API client and engine, and bind
    /// the HTTP listener.
    pub async fn build(settings: Settings, options: DaemonOptions) -> anyhow::Result<Daemon> {
        let app = App::connect(&settings, Database::CreateIfMissing, Arc::new(NoProgress)).await?;
        Daemon::new(&settings, app.engine, options).await
    }

    /// A daemon around an engine built elsewhere (tests: their own pool and replica ID); binds the
    /// HTTP listener. The database must be migrated.
    pub async fn new(
        settings: &Settings,
        engine: Engine,
        options: DaemonOptions,
    ) -> anyhow::Result<Daemon> {
        metrics::handle();
        let listen = options.listen.unwrap_or(settings.server.listen);
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (server.listen)"))?;
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let pool = engine.pool.clone();
        let replica = engine.replica.clone();
        let presence = Presence::get(&pool, &replica);
        let worker = Worker::new(
            engine,
            settings.sync.max_accounts,
            options.lease_ttl,
            tracker.clone(),
            cancel.clone(),
        )
        .with_full_walk_every(settings.schedule.full_walk_every);
        Ok(Daemon {
            schedule: settings.schedule.clone(),
            pool,
            replica,
            worker,
            tracker,
            cancel,
            listener,
            scheduling: Arc::new(AtomicBool::new(false)),
            options,
            _presence: presence,
        })
    }

    /// The address the HTTP endpoints listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// This replica's ID (recorded with each run and lease).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The worker (tests drive ticks with it and wait for it to be idle).
    pub fn worker(&self) -> Worker {
        self.worker.clone()
    }

    /// Serve, schedule, and sync until `shutdown` completes; then stop gracefully.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<Stopped> {
        let addr = self.local_addr();
        let http_stop = CancellationToken::new();
        let state = http::AppState {
            pool: self.pool.clone(),
            scheduling: self.scheduling.clone(),
            ready_timeout: self.options.ready_timeout,
            worker: self.worker.clone(),
        };
        let scheduler = Scheduler::start(&self.schedule, &self.worker).await?;
        let server = {
            let app = http::router(state);
            tokio::spawn(http::serve(
                self.listener,
                app,
                self.options.http_limits,
                http_stop.clone(),
            ))
        };
        self.scheduling.store(true, Ordering::SeqCst);
        notify::spawn_watchdog(&self.tracker, self.cancel.clone());
        notify::ready();
        tracing::info!(listen = %addr, replica = %self.replica, "daemon ready");
        if self.options.initial_sync {
            self.worker.spawn_tick(Tick::Initial);
        }

        shutdown.await;
        let asked = Instant::now();
        tracing::info!(
            running = self.worker.active_accounts(),
            deadline = ?self.options.shutdown_timeout,
            "shutting down: no new syncs; running ones stop after the page in flight"
        );
        notify::stopping();
        self.scheduling.store(false, Ordering::SeqCst);
        scheduler.shutdown().await;
        self.worker.close();
        self.cancel.cancel();
        self.tracker.close();
        let drained = tokio::time::timeout(self.options.shutdown_timeout, self.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                running = self.worker.active_accounts(),
                "shutdown deadline passed with syncs still running; abandoning them (uncommitted pages roll back, their leases expire)"
            );
        }
        http_stop.cancel();
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), server).await {
            tracing::warn!(error = %crate::error::report(&e), "HTTP server task");
        }
        let stopped = Stopped {
            drained,
            elapsed: asked.elapsed(),
        };
        tracing::info!(elapsed = ?stopped.elapsed, drained, "stopped");
        Ok(stopped)
    }
}

/// A future that completes on SIGTERM (systemd, Docker) or SIGINT (Ctrl-C). The handlers are
/// installed by this call, so call it first thing: a signal during start-up then stops the daemon as
/// soon as it has started, instead of killing it.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Connections of the pool kept for what is not a page write: leases, run records, cursors,
/// token reads, the daemon's endpoints.
pub const RESERVED_CONNECTIONS: u32 = 2;

/// The bounds the accounts of one process share: (HTTP requests in flight, pages held until
/// written). Requests: `sync.concurrency`. Pages: `database.max_connections` less the
/// [`RESERVED_CONNECTIONS`] (each held page gets a connection for its write without waiting).
/// Warns when the pool is too small to write pages as fast as they are fetched.
pub fn fleet_limits(settings: &crate::config::Settings) -> (usize, usize) {
    let requests = settings.sync.concurrency.max(1);
    let max = settings.database.max_connections;
    let pages = max.saturating_sub(RESERVED_CONNECTIONS).max(1) as usize;
    let wanted = RESERVED_CONNECTIONS + 2;
    if max < wanted {
        tracing::warn!(
            max_connections = max,
            page_writers = pages,
            "database.max_connections = {max} leaves {pages} page writer(s) after the {RESERVED_CONNECTIONS} \
             connections kept for leases, runs and tokens: syncs will wait on the database \
             (raise database.max_connections to {wanted} or more; 10 is the default)"
        );
    }
    (requests, pages)
}
