//! Tests of the deployment artifacts in `deploy/`: the read-only BI role and the compose owner role
//! (against a real PostgreSQL, one database per test), the compose file's secure defaults, the
//! systemd unit (`systemd-analyze verify` and `security` where it exists), and
//! the commands, flags and settings that the unit, the Dockerfile, the compose file and
//! `docs/deployment.md` use (against the built binary and `config.toml.example`).
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1/postgres cargo nextest run -E "test(/^deploy::/)"`.

mod artifacts;
mod compose;
mod reader_role;
mod systemd;

/// The repository root (where `Cargo.toml` is).
fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The contents of a file of the repository, by its path from the root.
fn read_repo_file(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}
