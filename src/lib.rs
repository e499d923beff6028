//! `lightspeed-sync`: mirror Lightspeed Retail (R-Series) Accounts and Customers into PostgreSQL.
//!
//! # Layout
//!
//! - [`cli`]: the command line (one function per command, exit codes).
//! - [`model`]: the words every layer shares (`AccountId`, streams, kinds, run and credential states).
//! - [`error`]: [`error::report`], an error with its causes, for every place one is shown or stored.
//! - [`config`]: the typed settings tree (defaults → `config.toml` → `LSSYNC__*` env), secrets redacted.
//! - [`telemetry`]: tracing setup (human on a terminal, JSON otherwise).
//! - [`db`]: pool, embedded migrations, one small function per statement.
//! - [`lightspeed`]: the R-Series HTTP client (wire quirks, pacing, retries, pagination, OAuth).
//! - [`tokens`]: credentials at rest (AEAD), the token source with single-flight refresh.
//! - [`sync`]: the sync engine: one run of one stream of one account, one transaction per page.
//! - [`daemon`]: `run`: scheduler, fair worker, leases, graceful shutdown, HTTP endpoints, metrics.
//! - [`sim`]: a stand-alone simulator of the R-Series API for tests, `demo` and benchmarks.
//!
//! The client knows nothing of Postgres and the database code nothing of HTTP; the sync engine is
//! where they meet. See `docs/architecture.md`.

#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod error;
pub mod lightspeed;
pub mod model;
pub mod sim;
pub mod sync;
pub mod telemetry;
pub mod tokens;
