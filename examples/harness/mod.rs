//! What the benchmarks share: the child process that runs the real `sync`, a fresh database with the
//! simulator's accounts connected, and the child's peak memory. Not an example of its own.

use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use lightspeed_sync::sim::Simulator;
use lightspeed_sync::tokens::crypto::generate_key_base64;
use secrecy::SecretString;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// When this executable was started as the benchmark's child (`__child ARGS...`), run the real
/// command line with `ARGS` and exit; otherwise return.
pub fn run_child_if_asked(args: &[String]) {
    if args.get(1).map(String::as_str) != Some("__child") {
        return;
    }
    let cli = <lightspeed_sync::cli::Cli as clap::Parser>::parse_from(
        std::iter::once("lightspeed-sync".to_string()).chain(args[2..].iter().cloned()),
    );
    let code = tokio::runtime::Runtime::new()
        .map(|rt| rt.block_on(lightspeed_sync::cli::execute(cli)))
        .unwrap_or(std::process::ExitCode::FAILURE);
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// A database of its own, migrated, with every account of `sim` connected.
pub struct BenchDb {
    /// `DATABASE_URL`'s server, for dropping the database at the end.
    pub admin: PgPool,
    /// The database's URL.
    pub url: url::Url,
    /// A small pool on it.
    pub pool: PgPool,
    /// The token key its credentials are encrypted with.
    pub key: String,
    name: &'static str,
}

impl BenchDb {
    /// Drop and create `name` on `DATABASE_URL`'s server (default the local `postgres`), migrate it,
    /// and store a token pair for each of the simulator's accounts.
    pub async fn create(
        name: &'static str,
        sim: &Simulator,
        pool_size: u32,
    ) -> anyhow::Result<Self> {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await?;
        drop_database(&admin, name).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        let mut url = url::Url::parse(&base)?;
        url.set_path(name);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .connect(url.as_str())
            .await?;
        lightspeed_sync::db::MIGRATOR.run(&pool).await?;
        let key = generate_key_base64();
        let keyring = std::sync::Arc::new(lightspeed_sync::tokens::crypto::Keyring::new(
            lightspeed_sync::tokens::crypto::TokenKey::from_base64(&SecretString::from(
                key.clone(),
            ))?,
        ));
        let store = lightspeed_sync::tokens::store::TokenStore::new(pool.clone(), keyring);
        for account in sim.account_ids() {
            let pair = sim.issue_tokens(account);
            let (access, refresh) = (
                SecretString::from(pair.access_token),
                SecretString::from(pair.refresh_token),
            );
            let tokens = lightspeed_sync::tokens::store::NewTokens {
                access_token: &access,
                refresh_token: &refresh,
                access_expires_at: Utc::now() + chrono::Duration::seconds(pair.expires_in as i64),
            };
            store.save_authorized(account, name, &tokens).await?;
        }
        Ok(BenchDb {
            admin,
            url,
            pool,
            key,
            name,
        })
    }

    /// This executable as the child running `sync ARGS` against `sim` and this database, stdout piped;
    /// `log_var` names the variable whose value becomes the child's `RUST_LOG` (default `warn`).
    pub fn child(
        &self,
        sim: &Simulator,
        sync_args: &[&str],
        database_url: &str,
        log_var: &str,
    ) -> anyhow::Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .arg("__child")
            .arg("sync")
            .args(sync_args)
            .env("LSSYNC__DATABASE__URL", database_url)
            .env("LSSYNC__LIGHTSPEED__API_BASE_URL", sim.base_url())
            .env("LSSYNC__LIGHTSPEED__AUTH_BASE_URL", sim.base_url())
            .env("LSSYNC__LIGHTSPEED__CLIENT_ID", sim.client_id())
            .env("LSSYNC__LIGHTSPEED__CLIENT_SECRET", sim.client_secret())
            .env("LSSYNC__SECURITY__TOKEN_KEY", &self.key)
            .env(
                "RUST_LOG",
                std::env::var(log_var).unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped());
        Ok(command)
    }

    /// Close the pool and drop the database.
    pub async fn drop(self) -> anyhow::Result<()> {
        self.pool.close().await;
        drop_database(&self.admin, self.name).await
    }
}

async fn drop_database(admin: &PgPool, name: &str) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(admin)
    .await?;
    Ok(())
}

/// Wait for `child`, sampling its peak resident memory (VmHWM only grows) every 20 ms: its exit
/// status and the peak in KiB.
pub async fn wait_measuring(
    child: &mut tokio::process::Child,
) -> anyhow::Result<(std::process::ExitStatus, u64)> {
    let pid = child.id().unwrap_or_default();
    let mut peak_kib = 0;
    loop {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        tokio::select! {
            status = child.wait() => return Ok((status?, peak_kib)),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
