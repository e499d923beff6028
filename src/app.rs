//! The application wired in one place: the database pool, the token source, the API client and the
//! sync engine, built the same way for `run`, `sync`, `demo` and `doctor` (and by the tests, from
//! their own pool).

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;

use crate::config::Settings;
use crate::daemon::metrics::CountingTokens;
use crate::lightspeed::ApiClient;
use crate::sync::{Engine, MirrorOptions, Progress};
use crate::tokens::TokenSource;

/// What a command works with.
pub struct App {
    /// The database (migrated).
    pub pool: PgPool,
    /// Access tokens from the encrypted store, refreshed single-flight.
    pub tokens: Arc<TokenSource>,
    /// The sync engine (its API client takes tokens from `tokens`).
    pub engine: Engine,
}

/// Whether [`App::connect`] may create a missing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// The database must exist (`sync`: a typo in `database.url` is an error, not a new database).
    Existing,
    /// Create it when missing (`run`, `demo`).
    CreateIfMissing,
}

impl App {
    /// Connect to the database (creating it if asked), apply the migrations, and wire the rest.
    pub async fn connect(
        settings: &Settings,
        database: Database,
        progress: Arc<dyn Progress>,
    ) -> anyhow::Result<App> {
        let pool = match database {
            Database::Existing => crate::db::connect(&settings.database).await?,
            Database::CreateIfMissing => crate::db::connect_or_create(&settings.database).await?,
        };
        crate::db::migrate(&pool, &settings.database).await?;
        App::with_pool(settings, pool, progress)
    }

    /// Wire the token source, the API client and the engine around a pool already migrated.
    pub fn with_pool(
        settings: &Settings,
        pool: PgPool,
        progress: Arc<dyn Progress>,
    ) -> anyhow::Result<App> {
        let tokens = Arc::new(TokenSource::from_settings(settings, pool.clone())?);
        let engine = Engine {
            pool: pool.clone(),
            api: api_client(settings, tokens.clone())?,
            page_size: settings.sync.page_size,
            overlap: settings.sync.overlap,
            replica: replica_id(),
            progress,
            mirror: MirrorOptions::from_settings(&settings.mirror)?,
        };
        Ok(App {
            pool,
            tokens,
            engine,
        })
    }
}

/// The API client of a process: its tokens counted for `/metrics` (a no-op without a recorder),
/// its requests and pages bounded process-wide ([`crate::daemon::fleet_limits`]), loading the
/// relations `sync.customer_relations` names.
pub fn api_client(settings: &Settings, tokens: Arc<TokenSource>) -> anyhow::Result<ApiClient> {
    let (requests, pages) = crate::daemon::fleet_limits(settings);
    Ok(
        ApiClient::new(&settings.lightspeed, Arc::new(CountingTokens(tokens)))
            .context("building the HTTP client")?
            .with_gates(requests, pages)
            .with_customer_relations(settings.sync.relations()),
    )
}

/// Who this process is, in leases and run records: `hostname-pid-random`, unique per process.
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
