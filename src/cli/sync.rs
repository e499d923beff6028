//! `lightspeed-sync sync`.

use crate::config::Settings;

/// Flags of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Only these accounts (repeatable). Default: every connected account.
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<u64>,
    /// Only this stream. Default: accounts, then customers.
    #[arg(long, value_enum)]
    pub stream: Option<StreamArg>,
    /// Walk every customer and mark the ones that vanished upstream as deleted.
    #[arg(long)]
    pub full: bool,
}

/// A stream name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamArg {
    /// `lightspeed.accounts`
    Accounts,
    /// `lightspeed.customers` and their contacts
    Customers,
}

/// Run `sync`.
pub async fn run(_settings: Settings, _args: SyncArgs) -> anyhow::Result<()> {
    super::not_built("sync")
}
