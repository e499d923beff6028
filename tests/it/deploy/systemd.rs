//! `deploy/systemd/lightspeed-sync.service` passes `systemd-analyze verify`.

use std::process::Command;

const UNIT: &str = "deploy/systemd/lightspeed-sync.service";
const INSTALLED_BINARY: &str = "/usr/local/bin/lightspeed-sync";

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::common::skipped(
            "the_unit_passes_systemd_analyze_verify",
            "systemd-analyze is not installed here",
        );
        return;
    }
    let unit = super::read_repo_file(UNIT);
    assert!(
        unit.contains(&format!("ExecStart={INSTALLED_BINARY} run")),
        "ExecStart changed?"
    );
    // `verify` checks that ExecStart's binary exists: point it at the one cargo built.
    let unit = unit.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_lightspeed-sync"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lightspeed-sync.service");
    std::fs::write(&path, unit).expect("write unit copy");

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Unknown keys and unparsable values are only warnings (exit code 0), so read the output too.
    let complaints: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("lightspeed-sync") || l.contains("ignoring"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify {UNIT}: {}\n{stderr}{stdout}",
        out.status
    );
}

/// The exposure level `systemd-analyze security` gives the unit; the unit must stay at or below it.
const MAX_EXPOSURE: f64 = 1.2;

#[test]
fn the_unit_rates_at_most_1_2_in_systemd_analyze_security() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::common::skipped(
            "the_unit_rates_at_most_1_2_in_systemd_analyze_security",
            "systemd-analyze is not installed here",
        );
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(super::repo_root().join(UNIT))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let level = stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for lightspeed-sync.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}{stderr}"));
    println!("systemd-analyze security: {level}");
    assert!(
        level <= MAX_EXPOSURE,
        "the unit's exposure level rose to {level} (at most {MAX_EXPOSURE}):\n{stdout}"
    );
}
