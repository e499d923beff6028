//! The `sync` command as a process: killed mid-way (SIGKILL, not a clean stop) or aborted by a
//! second Ctrl-C, then run again at once (the dead process's lease does not hold it up).

use std::process::Stdio;
use std::time::Duration;

use lightspeed_sync::sim::SimConfig;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::sync::helpers::{Env, env};

/// `lightspeed-sync ARGS` configured for the test's simulator and database, and nothing else.
fn sync_command(env: &Env, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"));
    cmd.args(args)
        .env_clear()
        .env(
            "LSSYNC__DATABASE__URL",
            crate::common::database_url(&env.pool),
        )
        .env("LSSYNC__LIGHTSPEED__API_BASE_URL", env.sim.base_url())
        .env("LSSYNC__LIGHTSPEED__AUTH_BASE_URL", env.sim.base_url())
        .env("LSSYNC__LIGHTSPEED__CLIENT_ID", env.sim.client_id())
        .env("LSSYNC__LIGHTSPEED__CLIENT_SECRET", env.sim.client_secret())
        .env(
            "LSSYNC__SECURITY__TOKEN_KEY",
            env.settings
                .security
                .token_key
                .as_ref()
                .unwrap()
                .expose_secret(),
        )
        .env("LSSYNC__LOG__FORMAT", "json");
    cmd
}

/// A bucket slow enough (about 8 pages a second) that a signal lands mid-walk.
fn slow_sim() -> SimConfig {
    SimConfig {
        customers: 3_000,
        bucket_size: 4.0,
        drip_rate: 10.0,
        burst_limit: 0,
        ..SimConfig::default()
    }
}

#[sqlx::test]
async fn a_sync_killed_mid_way_then_run_again_loses_and_duplicates_nothing(pool: PgPool) {
    let env = env(pool.clone(), slow_sim()).await;
    let a = env.sim.account_ids()[0];
    let mut child = sync_command(&env, &["sync", "--stream", "customers"])
        .env("RUST_LOG", "lightspeed_sync=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let committed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut committed = 0;
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("page committed") {
                committed += 1;
                if committed == 5 {
                    break;
                }
            }
        }
        committed
    })
    .await
    .expect("the child committed pages");
    assert_eq!(committed, 5);
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished");

    let (status, pages): (String, i32) = sqlx::query_as(
        "SELECT status, pages FROM lightspeed_sync.runs ORDER BY run_id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "running", "the killed run never finished");
    assert!(
        (5..30).contains(&pages),
        "killed mid-way: {pages} pages committed"
    );
    let partial = crate::sync::helpers::mirror(&pool, a).await.len();
    assert!(partial > 0 && partial < 3_000, "{partial}");

    // Run again at once: the killed process's lease has not expired, but its holder is gone, so it
    // is free (`--no-wait` would exit 75 on a lease a live process holds).
    let out = sync_command(&env, &["sync", "--no-wait"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for &account in &env.sim.account_ids() {
        assert!(
            stdout.contains(&format!(
                "account {account} customers (incremental): succeeded"
            )),
            "{stdout}"
        );
        env.assert_mirror_matches(account).await;
    }
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT status FROM lightspeed_sync.runs WHERE account_id = $1 AND stream = 'customers'
         ORDER BY run_id",
    )
    .bind(a as i64)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(statuses, vec!["interrupted", "succeeded"]);
}

/// Ctrl-C stops after the pages in flight; a second one aborts at once with 130, and loses
/// nothing: the next sync converges on the truth.
#[sqlx::test]
async fn a_second_ctrl_c_aborts_at_once_and_the_next_sync_loses_nothing(pool: PgPool) {
    let env = env(pool.clone(), slow_sim()).await;
    let mut child = sync_command(&env, &["sync", "--stream", "customers"])
        .env("RUST_LOG", "lightspeed_sync=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let interrupt = || async {
        let sent = tokio::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
    };
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut until = async |needle: &str| {
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("the child's stderr ended before {needle:?}")
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} within 60 s"))
    };
    until("page committed").await;
    interrupt().await;
    until("stopping after the pages in flight").await;
    interrupt().await;
    let line = until("aborting").await;
    assert!(line.contains("interrupted again"), "{line}");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("aborted at once")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let partial = crate::sync::helpers::mirror(&pool, env.sim.account_ids()[0])
        .await
        .len();
    assert!(partial < 3_000, "aborted mid-walk: {partial} customers");

    let out = sync_command(&env, &["sync", "--no-wait"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for &account in &env.sim.account_ids() {
        env.assert_mirror_matches(account).await;
    }
}

#[sqlx::test(migrations = false)]
async fn demo_works_from_a_clean_database(pool: PgPool) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"))
        .args(["demo", "--customers", "400"])
        .env_clear()
        .env("LSSYNC__DATABASE__URL", crate::common::database_url(&pool))
        .env("LSSYNC__LOG__FORMAT", "json")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("through OAuth").count(), 2, "{stdout}");
    assert!(stdout.contains("mirrored 800 customers"), "{stdout}");
    assert!(
        stdout.contains("SELECT"),
        "example queries are printed: {stdout}"
    );
    let (customers, accounts, runs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customers), (SELECT count(*) FROM lightspeed.accounts),
                (SELECT count(*) FROM lightspeed.sync_runs WHERE status = 'succeeded')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((customers, accounts, runs), (800, 2, 4));
}
