use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn help_lists_every_command_of_the_contract() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "run",
        "sync",
        "authorize",
        "status",
        "migrate",
        "keygen",
        "sim",
        "demo",
        "config",
        "doctor",
        "rekey",
    ] {
        assert!(
            text.contains(&format!("\n  {cmd} ")),
            "--help lacks {cmd}:\n{text}"
        );
    }
}

#[test]
fn config_command_redacts_and_bad_values_exit_2_naming_the_key() {
    let out = bin()
        .args(["config"])
        .env("LSSYNC__LIGHTSPEED__CLIENT_SECRET", "very-secret-thing")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("very-secret-thing"));
    assert!(text.contains("client_secret = \"REDACTED\""), "{text}");

    let out = bin()
        .args(["config"])
        .env("LSSYNC__SYNC__CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync.concurrency"));
}

#[test]
fn an_explicit_config_file_must_exist() {
    let out = bin()
        .args(["--config", "/nonexistent/lssync.toml", "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/lssync.toml"));
}

#[test]
fn keygen_prints_a_32_byte_base64_key() {
    use base64::Engine;
    let out = bin().arg("keygen").output().unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .unwrap();
    assert_eq!(bytes.len(), 32);
}

#[test]
fn unreachable_database_is_one_clear_line_with_the_password_redacted() {
    let out = bin()
        .arg("migrate")
        .env(
            "LSSYNC__DATABASE__URL",
            "postgres://me:hunter2@127.0.0.1:1/nowhere",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach PostgreSQL at postgres://me:REDACTED@127.0.0.1:1/nowhere"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

/// A URL with no user connects as `PGUSER` (as libpq does), else the login name.
#[sqlx::test]
async fn a_url_without_a_user_connects_as_pguser(pool: sqlx::PgPool) {
    // The test's own database (already migrated: `migrate` then has nothing to do but connect).
    let name = crate::common::database_name(&pool);
    let out = bin()
        .arg("migrate")
        .env(
            "LSSYNC__DATABASE__URL",
            format!("postgres://127.0.0.1:5432/{name}"),
        )
        .env("PGUSER", "postgres")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("database is up to date"));
}

#[test]
fn a_refused_login_is_one_line_naming_the_url_and_what_to_set() {
    let out = bin()
        .arg("migrate")
        .env(
            "LSSYNC__DATABASE__URL",
            "postgres://127.0.0.1:5432/lssync_cli_default_user",
        )
        .env("PGUSER", "no_such_role_lssync")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("PostgreSQL at postgres://127.0.0.1:5432/lssync_cli_default_user refused")
            && err.contains("Set database.url"),
        "{err}"
    );
    assert_eq!(
        err.matches("no_such_role_lssync").count(),
        1,
        "the reason is said once: {err}"
    );
}
