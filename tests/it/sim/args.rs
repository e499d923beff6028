//! The `sim` command's flags map onto `SimConfig`.

use clap::Parser;
use lightspeed_sync::sim::{RotationMode, SimArgs, SimConfig, TieBreak};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

#[test]
fn flags_become_a_config() {
    let cli = Cli::parse_from([
        "sim",
        "--customers",
        "1000",
        "--accounts",
        "3",
        "--rotation",
        "strict",
        "--tie-break",
        "by-id",
        "--no-rate-limits",
        "--shared-timestamp",
        "150",
        "--token-lifetime",
        "1800",
        "--slow-ms",
        "50",
    ]);
    let cfg = SimConfig::from(cli.sim);
    assert_eq!(
        (cfg.customers, cfg.accounts, cfg.shared_timestamp),
        (1000, 3, 150)
    );
    assert_eq!(
        (cfg.rotation, cfg.tie_break, cfg.rate_limits),
        (RotationMode::Strict, TieBreak::ById, false)
    );
    assert_eq!(cfg.token_lifetime.as_secs(), 1800);
    assert_eq!(cfg.slow.as_millis(), 50);
}

#[test]
fn defaults_model_the_worst_case() {
    let cfg = SimConfig::from(Cli::parse_from(["sim"]).sim);
    assert_eq!(
        (cfg.rotation, cfg.tie_break, cfg.rate_limits),
        (RotationMode::Deferred, TieBreak::Skip, true)
    );
    assert_eq!(
        (cfg.bucket_size, cfg.drip_rate, cfg.burst_limit),
        (90.0, 1.0, 20)
    );
}
