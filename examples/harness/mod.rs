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
            store.save_authorized(account.into(), name, &tokens).await?;
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

    /// The database's name.
    pub fn name(&self) -> &'static str {
        self.name
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

/// What a child's run cost: its exit status, its peak resident memory (KiB), and CPU seconds spent
/// by it, by this process (the simulator, which runs here), and by the Postgres backends (and
/// autovacuum workers) connected to the benchmark's database.
pub struct Measured {
    pub status: std::process::ExitStatus,
    pub peak_kib: u64,
    pub cpu: Cpu,
}

/// CPU seconds (user + system) over a child's run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu {
    pub sync: f64,
    pub simulator: f64,
    pub postgres: f64,
    /// Of `postgres`, what autovacuum workers spent.
    pub autovacuum: f64,
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU: sync {:.2} s, simulator {:.2} s, Postgres {:.2} s (autovacuum {:.2} s)",
            self.sync, self.simulator, self.postgres, self.autovacuum
        )
    }
}

/// Wait for `child`, sampling every 20 ms its peak resident memory (VmHWM only grows) and the CPU
/// time of the child, of this process and of the Postgres backends on `database` (found in
/// `pg_stat_activity` through `admin`; a backend's time is read until it exits, so the last 20 ms
/// of a backend that exits are lost, and the WAL writer, checkpointer and background writer are
/// shared with the whole server and not counted).
pub async fn wait_measuring(
    child: &mut tokio::process::Child,
    admin: &PgPool,
    database: &str,
) -> anyhow::Result<Measured> {
    let pid = child.id().unwrap_or_default();
    let own = std::process::id();
    let own_start = cpu_ticks(own).unwrap_or(0);
    let mut child_ticks = 0;
    let mut peak_kib = 0;
    // Backend pid -> (ticks when first seen, ticks last seen).
    let mut backends: std::collections::HashMap<u32, (u64, u64)> = Default::default();
    let mut autovacuum: std::collections::HashSet<u32> = Default::default();
    let mut round = 0u32;
    loop {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        child_ticks = child_ticks.max(cpu_ticks(pid).unwrap_or(0));
        if round.is_multiple_of(10) {
            let pids: Vec<(i32, Option<String>)> = sqlx::query_as(
                "SELECT pid, backend_type FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(database)
            .fetch_all(admin)
            .await
            .unwrap_or_default();
            for (p, kind) in pids {
                if kind.as_deref() == Some("autovacuum worker") {
                    autovacuum.insert(p as u32);
                }
                backends.entry(p as u32).or_insert((u64::MAX, 0));
            }
        }
        round += 1;
        for (p, (first, last)) in backends.iter_mut() {
            if let Some(t) = cpu_ticks(*p) {
                if *first == u64::MAX {
                    // Seen after it started: what it spent before this run began is not ours,
                    // but backends of the child start with the child, so count from zero.
                    *first = 0;
                }
                *last = (*last).max(t);
            }
        }
        tokio::select! {
            status = child.wait() => {
                let hz = 100.0;
                let own_end = cpu_ticks(own).unwrap_or(own_start);
                let spent = |only_autovacuum: bool| -> u64 {
                    backends
                        .iter()
                        .filter(|(p, (f, _))| {
                            *f != u64::MAX && (!only_autovacuum || autovacuum.contains(p))
                        })
                        .map(|(_, (f, l))| l.saturating_sub(*f))
                        .sum()
                };
                return Ok(Measured {
                    status: status?,
                    peak_kib,
                    cpu: Cpu {
                        sync: child_ticks as f64 / hz,
                        simulator: own_end.saturating_sub(own_start) as f64 / hz,
                        postgres: spent(false) as f64 / hz,
                        autovacuum: spent(true) as f64 / hz,
                    },
                });
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields are counted after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
