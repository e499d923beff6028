//! `lightspeed-sync authorize` and `disconnect`: thin wrappers over `crate::tokens::authorize` that
//! connect to the database (running migrations first) and use the terminal.

use std::time::Duration;

use crate::config::Settings;
use crate::model::AccountId;
use crate::tokens::authorize::{self, AuthorizeOptions, Disconnected};
use crate::tokens::crypto::Keyring;

/// Flags of `authorize`.
#[derive(Debug, clap::Args)]
pub struct AuthorizeArgs {
    /// Serve the OAuth callback on this address instead of reading the redirect URL from stdin.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// With --listen: how long to wait for the redirect.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Flags of `disconnect`.
#[derive(Debug, clap::Args)]
pub struct DisconnectArgs {
    /// The Lightspeed account ID to disconnect.
    #[arg(long, value_name = "ID")]
    pub account: AccountId,
    /// Delete the credentials even if they cannot be decrypted or revoked at Lightspeed.
    #[arg(long)]
    pub force: bool,
}

/// Run `authorize`.
pub async fn run(settings: Settings, args: AuthorizeArgs) -> anyhow::Result<()> {
    // Refuse before connecting anywhere: without a key nothing could be stored.
    Keyring::from_settings(&settings.security)?;
    let pool = crate::db::connect(&settings.database).await?;
    crate::db::migrate(&pool, &settings.database).await?;
    let options = AuthorizeOptions {
        listen: args.listen,
        timeout: args.timeout,
    };
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    authorize::authorize(&settings, &pool, stdin, tokio::io::stdout(), &options).await?;
    Ok(())
}

/// Run `disconnect`.
pub async fn disconnect(settings: Settings, args: DisconnectArgs) -> anyhow::Result<()> {
    Keyring::from_settings(&settings.security)?;
    let pool = crate::db::connect(&settings.database).await?;
    crate::db::migrate(&pool, &settings.database).await?;
    let id = args.account;
    match authorize::disconnect(&settings, &pool, id, args.force).await? {
        Disconnected::Revoked => {
            println!("disconnected account {id}: tokens revoked, credentials deleted, data kept")
        }
        Disconnected::AlreadyInvalid => {
            println!(
                "disconnected account {id}: the grant was already invalid; credentials deleted, data kept"
            )
        }
        Disconnected::Forgotten(why) => {
            println!(
                "disconnected account {id}: credentials deleted WITHOUT revoking ({why}); data kept"
            )
        }
    }
    Ok(())
}
