//! Benchmarks of the sync, printed as figures (not a test):
//!
//! ```sh
//! cargo run --release --example bench                # both
//! cargo run --release --example bench -- throughput 100000
//! cargo run --release --example bench -- throttled 30000
//! ```
//!
//! - **throughput**: customers with contacts from an unthrottled simulator into Postgres: records/s,
//!   pages/s, and the peak memory (VmHWM) of the syncing process.
//! - **throttled**: a sync against bucket 90, drip 10/s, burst 20/s: wall time divided by the minimum
//!   the bucket allows for the drips charged, and the number of 429s.
//!
//! Both syncs load every relation `sync.customer_relations` allows (its default: Contact,
//! CustomerType, Note, CreditAccount, Tags, CustomFieldValues), so a page costs 2.6 drips instead of 1.2
//! and the first run also walks the custom field and customer type definitions.
//!
//! The simulator runs in this process; the sync runs in a child process (this same executable,
//! running the real `sync` command), so its memory is measured alone. Postgres comes from
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); the benchmark creates and
//! drops its own database `lssync_bench`. For diagnosis, `BENCH_LOG` sets the sync's `RUST_LOG` and
//! `BENCH_CHILD_DB_SUFFIX` is appended to its database URL (e.g.
//! `?options=-c%20log_min_duration_statement%3D5` to have Postgres log slow statements).

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use lightspeed_sync::sim::{SimConfig, Simulator};
use lightspeed_sync::tokens::crypto::generate_key_base64;
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;

const BENCH_DB: &str = "lssync_bench";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__child") {
        // The sync itself: the real command line, in a process of its own.
        let cli = <lightspeed_sync::cli::Cli as clap::Parser>::parse_from(
            std::iter::once("lightspeed-sync".to_string()).chain(args[2..].iter().cloned()),
        );
        let rt = tokio::runtime::Runtime::new()?;
        let code = rt.block_on(lightspeed_sync::cli::execute(cli));
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new()?;
    let which = args.get(1).cloned().unwrap_or_else(|| "all".into());
    let n = |default: usize| args.get(2).and_then(|s| s.parse().ok()).unwrap_or(default);
    rt.block_on(async {
        if which == "throughput" || which == "all" {
            throughput(n(100_000)).await?;
        }
        if which == "throttled" || which == "all" {
            throttled(n(30_000)).await?;
        }
        anyhow::Ok(())
    })
}

async fn throughput(customers: usize) -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig {
        customers,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await?;
    let outcome = sync_in_child(&sim).await?;
    let secs = outcome.run_secs;
    println!(
        "throughput: {} customers ({} pages) in {:.2} s: {:.0} customers/s, {:.0} pages/s, peak memory of the sync process {:.1} MiB",
        outcome.records,
        outcome.pages,
        secs,
        outcome.records as f64 / secs,
        outcome.pages as f64 / secs,
        outcome.peak_kib as f64 / 1024.0
    );
    sim.shutdown().await;
    Ok(())
}

async fn throttled(customers: usize) -> anyhow::Result<()> {
    let (size, drip) = (90.0, 10.0);
    let sim = Simulator::start(SimConfig {
        customers,
        bucket_size: size,
        drip_rate: drip,
        burst_limit: 20,
        ..SimConfig::default()
    })
    .await?;
    let outcome = sync_in_child(&sim).await?;
    let c = sim.counters();
    // The bucket lets `size` drips through at once, then `drip` per second.
    let minimum = ((c.drip_charged - size) / drip).max(0.0);
    println!(
        "throttled: {} requests ({:.1} drips) for {} customers in {:.2} s; the bucket's minimum is {:.2} s: {:.3} × the minimum, {} × 429 ({} bucket, {} burst)",
        c.api_requests,
        c.drip_charged,
        outcome.records,
        outcome.run_secs,
        minimum,
        outcome.run_secs / minimum,
        c.throttled_bucket + c.throttled_burst,
        c.throttled_bucket,
        c.throttled_burst
    );
    sim.shutdown().await;
    Ok(())
}

struct Outcome {
    records: i64,
    pages: i32,
    run_secs: f64,
    peak_kib: u64,
}

/// Fresh database, the simulator's account connected, then `sync --stream customers` in a child.
async fn sync_in_child(sim: &Simulator) -> anyhow::Result<Outcome> {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {BENCH_DB}")))
        .execute(&admin)
        .await?;
    let mut url = url::Url::parse(&base)?;
    url.set_path(BENCH_DB);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(url.as_str())
        .await?;
    lightspeed_sync::db::MIGRATOR.run(&pool).await?;

    let key = generate_key_base64();
    let keyring = std::sync::Arc::new(lightspeed_sync::tokens::crypto::Keyring::new(
        lightspeed_sync::tokens::crypto::TokenKey::from_base64(&SecretString::from(key.clone()))?,
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
        store.save_authorized(account, "bench", &tokens).await?;
    }

    let started = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["__child", "sync", "--stream", "customers"])
        .env(
            "LSSYNC__DATABASE__URL",
            std::env::var("BENCH_CHILD_DB_SUFFIX")
                .map(|sfx| format!("{url}{sfx}"))
                .unwrap_or_else(|_| url.to_string()),
        )
        .env("LSSYNC__LIGHTSPEED__API_BASE_URL", sim.base_url())
        .env("LSSYNC__LIGHTSPEED__AUTH_BASE_URL", sim.base_url())
        .env("LSSYNC__LIGHTSPEED__CLIENT_ID", sim.client_id())
        .env("LSSYNC__LIGHTSPEED__CLIENT_SECRET", sim.client_secret())
        .env("LSSYNC__SECURITY__TOKEN_KEY", &key)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id().unwrap_or_default();
    // The high-water mark only grows: sample it until the process ends.
    let mut peak_kib = 0;
    let status = loop {
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let wall = started.elapsed();
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use tokio::io::AsyncReadExt;
        stdout.read_to_string(&mut out).await?;
    }
    anyhow::ensure!(status.success(), "the sync failed: {out}");
    let (records, pages, run_secs): (i64, i32, f64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customers), sum(pages)::int,
                extract(epoch FROM max(finished_at) - min(started_at))::float8
         FROM lightspeed_sync.runs WHERE stream = 'customers'",
    )
    .fetch_one(&pool)
    .await?;
    eprintln!("  (child process wall time {:.2} s)", wall.as_secs_f64());
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    Ok(Outcome {
        records,
        pages,
        run_secs,
        peak_kib,
    })
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
