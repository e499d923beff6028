//! The command line: argument parsing, one function per command, exit codes. Commands write their
//! results to stdout and their logs and progress to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

mod authorize;
mod demo;
pub mod doctor;
mod rekey;
mod run;
mod status;
mod sync;

/// Mirror Lightspeed Retail (R-Series) Accounts and Customers into PostgreSQL.
///
/// Connect an account once with `authorize`, then let `run` keep the mirror fresh on a schedule, or
/// call `sync` from your own scheduler. `demo` shows the whole pipeline against a built-in simulator.
#[derive(Debug, Parser)]
#[command(
    name = "lightspeed-sync",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file (TOML). Missing is fine unless given explicitly.
    #[arg(long, global = true, env = "LSSYNC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands (the public interface: names and flags are stable).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: migrations, scheduled syncs of every connected account, HTTP endpoints
    /// (/healthz, /readyz, /metrics, /status). Stops gracefully on SIGTERM or SIGINT.
    Run(run::RunArgs),
    /// Sync now, then exit. Exit code 0 when every run succeeded; 1 when a run failed (or an account
    /// needs re-authorization); 75 (EX_TEMPFAIL) when the only trouble is accounts skipped because
    /// another live process kept them past `--wait`. Ctrl-C or SIGTERM stops after the pages in
    /// flight; a second one aborts at once (exit 130), losing nothing: uncommitted pages are
    /// fetched again by the next sync.
    Sync(sync::SyncArgs),
    /// Connect a Lightspeed account: print the authorization URL, read the redirect URL (or the
    /// bare code) from stdin, exchange it at once and store the encrypted tokens.
    Authorize(authorize::AuthorizeArgs),
    /// Revoke an account's tokens at Lightspeed and forget its credentials (its data is kept).
    Disconnect(authorize::DisconnectArgs),
    /// Per account: authorization state, and per stream the last success, lag, rows and last error.
    Status(status::StatusArgs),
    /// Apply the database migrations and exit (idempotent).
    Migrate,
    /// Print a new random token-encryption key (base64, 32 bytes) for `security.token_key`.
    Keygen,
    /// Re-encrypt every stored credential with the current `security.token_key`, reading rows
    /// written under older keys with `security.previous_token_keys`. Safe while daemons run;
    /// idempotent; exit code 1 naming every account that no configured key decrypts.
    Rekey,
    /// Serve the R-Series API simulator (OAuth, accounts, customers, rate limits, faults).
    Sim(crate::sim::SimArgs),
    /// Try it: start the simulator, connect two accounts through OAuth, sync them into the
    /// configured database, then print a summary and example queries.
    Demo(demo::DemoArgs),
    /// Print the effective configuration (defaults, file, environment) with secrets redacted.
    Config,
    /// Check everything a sync needs: configuration, database, and per account the credentials, a
    /// token, Account.json, Account/{id}.json and a page of 5 customers, parsed as `sync` parses them.
    /// Names unexpected fields (never values), prints the rate limits seen and an estimate of a
    /// first sync. Prints no token, secret or customer data. Exit 0 only if every check passes.
    Doctor(doctor::DoctorArgs),
}

/// Exit code for a failure of the work itself.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad configuration or usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `sync` when accounts were skipped because another process held them (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: u8 = 75;

impl Cli {
    /// Load the settings named by `--config` (required) or `./config.toml` (optional).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let (path, required) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("config.toml"), false),
        };
        Ok(Settings::load(&path, required)?)
    }
}

/// Run the parsed command and map its outcome to an exit code; errors are printed once, here.
pub async fn execute(cli: Cli) -> ExitCode {
    // `sim` and `keygen` need no configuration.
    match &cli.command {
        Command::Keygen => {
            println!("{}", crate::tokens::crypto::generate_key_base64());
            return ExitCode::SUCCESS;
        }
        Command::Sim(args) => {
            crate::telemetry::init("info", crate::config::LogFormat::Auto);
            return report(crate::sim::serve(args.clone()).await);
        }
        _ => {}
    }
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    crate::telemetry::init(&settings.log.level, settings.log.format);
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        Command::Config => {
            print!("{}", settings.redacted_toml());
            Ok(())
        }
        Command::Migrate => migrate(&settings).await,
        Command::Run(args) => run::run(settings, args).await,
        Command::Sync(args) => sync::run(settings, args).await,
        Command::Authorize(args) => authorize::run(settings, args).await,
        Command::Disconnect(args) => authorize::disconnect(settings, args).await,
        Command::Status(args) => status::run(settings, args).await,
        Command::Demo(args) => demo::run(settings, args).await,
        Command::Doctor(args) => doctor::run(settings, args).await,
        Command::Rekey => rekey::run(settings).await,
        Command::Keygen | Command::Sim(_) => unreachable!("handled above"),
    };
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<sync::BusySkipped>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_TEMPFAIL)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let pool = crate::db::connect_or_create(&settings.database).await?;
    crate::db::migrate(&pool, &settings.database).await?;
    println!("database is up to date");
    Ok(())
}
