//! `lightspeed-sync run`: the daemon, until SIGTERM or SIGINT.

use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use crate::daemon::{Daemon, DaemonOptions};

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Do not sync every account at start; wait for the first scheduled run instead.
    #[arg(long)]
    pub no_initial_sync: bool,
    /// How long an account's lease lasts without renewal: another replica takes over the accounts of
    /// a replica that is alive but stalled or cut off this long after its last renewal. The accounts
    /// of a replica that died (its database session is gone) are taken at once.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// How long a graceful shutdown waits for running syncs (keep it below systemd's
    /// TimeoutStopSec and Docker's stop timeout).
    #[arg(long, value_name = "DURATION", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Run `run`.
pub async fn run(settings: Settings, args: RunArgs) -> anyhow::Result<()> {
    // First, so that a signal during start-up is not fatal.
    let shutdown = crate::daemon::shutdown_signal().context("installing signal handlers")?;
    let options = DaemonOptions {
        initial_sync: !args.no_initial_sync,
        lease_ttl: args.lease_ttl,
        shutdown_timeout: args.shutdown_timeout,
        ..DaemonOptions::default()
    };
    let daemon = Daemon::build(settings, options).await?;
    daemon.run_until_stopped(shutdown).await?;
    Ok(())
}
