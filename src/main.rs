#![forbid(unsafe_code)]
//! The `lightspeed-sync` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use lightspeed_sync::cli::{Cli, execute};

#[tokio::main]
async fn main() -> ExitCode {
    // TLS for reqwest and sqlx uses ring; install it once for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    execute(Cli::parse()).await
}
