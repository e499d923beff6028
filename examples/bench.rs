//! Benchmarks of the sync, printed as figures (not a test):
//!
//! ```sh
//! cargo run --release --example bench                # both
//! cargo run --release --example bench -- throughput 100000
//! cargo run --release --example bench -- throttled 30000
//! ```
//!
//! - **throughput**: customers with contacts from an unthrottled simulator into Postgres: records/s,
//!   pages/s, the peak memory (VmHWM) of the syncing process, and the CPU time spent by the sync,
//!   by the simulator and by the Postgres backends on the benchmark's database (the three share the
//!   machine's cores, so the CPU split says where the time goes better than the wall time alone).
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

use std::time::Instant;

use lightspeed_sync::sim::{SimConfig, Simulator};

#[path = "harness/mod.rs"]
mod harness;

const BENCH_DB: &str = "lssync_bench";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    harness::run_child_if_asked(&args);
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
    let c = outcome.cpu;
    println!(
        "  {c}; per 1,000 customers: sync {:.1} ms, simulator {:.1} ms, Postgres {:.1} ms",
        c.sync * 1e6 / outcome.records as f64,
        c.simulator * 1e6 / outcome.records as f64,
        c.postgres * 1e6 / outcome.records as f64
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
    cpu: harness::Cpu,
}

/// Fresh database, the simulator's account connected, then `sync --stream customers` in a child.
async fn sync_in_child(sim: &Simulator) -> anyhow::Result<Outcome> {
    let db = harness::BenchDb::create(BENCH_DB, sim, 2).await?;
    let url = std::env::var("BENCH_CHILD_DB_SUFFIX")
        .map(|sfx| format!("{}{sfx}", db.url))
        .unwrap_or_else(|_| db.url.to_string());
    let started = Instant::now();
    let mut child = db
        .child(sim, &["--stream", "customers"], &url, "BENCH_LOG")?
        .spawn()?;
    let harness::Measured {
        status,
        peak_kib,
        cpu,
    } = harness::wait_measuring(&mut child, &db.admin, db.name()).await?;
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
    .fetch_one(&db.pool)
    .await?;
    eprintln!(
        "  (child process wall time {:.2} s; {cpu})",
        wall.as_secs_f64()
    );
    db.drop().await?;
    Ok(Outcome {
        records,
        pages,
        run_secs,
        peak_kib,
        cpu,
    })
}
