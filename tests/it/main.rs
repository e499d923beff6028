//! The integration tests, in one binary: each module is one part of the daemon tested end to end
//! against a real Postgres (each test its own database, `#[sqlx::test]`) and the project's simulator
//! or, for one precise edge case, a mock server.
//!
//! - `foundation`: the CLI, configuration and the schema.
//! - `sim`: the simulator against the fact sheet and the recordings.
//! - `client`: the API client (pages, pacing, retries, hostile servers).
//! - `tokens`: OAuth, tokens at rest, single-flight refresh, `rekey`.
//! - `sync`: the sync engine and the mirror, faults, recordings, `doctor`.
//! - `daemon`: schedules, leases and replicas, shutdown, HTTP endpoints, `status`.
//! - `deploy`: the systemd unit, Dockerfile, compose file and reader role.

mod common;

mod client;
mod daemon;
mod deploy;
mod foundation;
mod sim;
mod sync;
mod tokens;
