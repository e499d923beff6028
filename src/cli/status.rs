//! `lightspeed-sync status`: per account, the authorization state and, per stream, the last success,
//! lag, rows and last error. A table for people, `--json` for scripts (the same JSON as `/status`).

use crate::config::Settings;
use crate::daemon::status;

/// Flags of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `status`.
pub async fn run(settings: Settings, args: StatusArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings.database).await?;
    let report = status::collect(&pool).await.map_err(|e| {
        let undefined = e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01");
        if undefined {
            anyhow::anyhow!(
                "the database has no lightspeed-sync tables yet: run `lightspeed-sync migrate` (or start `run`)"
            )
        } else {
            anyhow::Error::new(e).context("reading the sync status")
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", status::render_table(&report));
    }
    Ok(())
}
