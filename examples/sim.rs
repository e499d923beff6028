//! The simulator served from the library (its Rust API, as tests and benchmarks use it) with the
//! `sim` command's flags, until Ctrl-C: for trying the curl walk of docs/simulator.md.
//!
//! ```sh
//! cargo run --example sim -- --customers 1000
//! ```

#![forbid(unsafe_code)]

use clap::Parser;
use lightspeed_sync::sim::SimArgs;

#[derive(Parser)]
#[command(about = "Serve the R-Series simulator until Ctrl-C")]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    lightspeed_sync::sim::serve(Cli::parse().sim).await?;
    Ok(())
}
