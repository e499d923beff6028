//! `lightspeed-sync demo`.

use crate::config::Settings;

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Run `demo`.
pub async fn run(_settings: Settings, _args: DemoArgs) -> anyhow::Result<()> {
    super::not_built("demo")
}
