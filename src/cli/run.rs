//! `lightspeed-sync run`.

use crate::config::Settings;

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Run `run`.
pub async fn run(_settings: Settings, _args: RunArgs) -> anyhow::Result<()> {
    super::not_built("run")
}
