//! `lightspeed-sync authorize` and `disconnect`.

use crate::config::Settings;

/// Flags of `authorize`.
#[derive(Debug, clap::Args)]
pub struct AuthorizeArgs {
    /// Serve the OAuth callback on this address instead of reading the redirect URL from stdin.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// Flags of `disconnect`.
#[derive(Debug, clap::Args)]
pub struct DisconnectArgs {
    /// The Lightspeed account ID to disconnect.
    #[arg(long, value_name = "ID")]
    pub account: u64,
}

/// Run `authorize`.
pub async fn run(_settings: Settings, _args: AuthorizeArgs) -> anyhow::Result<()> {
    super::not_built("authorize")
}

/// Run `disconnect`.
pub async fn disconnect(_settings: Settings, _args: DisconnectArgs) -> anyhow::Result<()> {
    super::not_built("disconnect")
}
