//! The R-Series simulator (placeholder until it lands).

/// Flags of `sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {}

/// Serve the simulator.
pub async fn serve(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("`sim` is not built yet in this version of lightspeed-sync")
}
