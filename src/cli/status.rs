//! `lightspeed-sync status`.

use crate::config::Settings;

/// Flags of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `status`.
pub async fn run(_settings: Settings, _args: StatusArgs) -> anyhow::Result<()> {
    super::not_built("status")
}
