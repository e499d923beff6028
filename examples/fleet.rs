//! The fleet benchmark, printed as figures (not a test):
//!
//! ```sh
//! cargo run --release --example fleet                     # 1,000 accounts × 1,000 customers
//! cargo run --release --example fleet -- 300 300          # accounts, customers per account
//! ```
//!
//! Many accounts in one `sync` process, each against its own leaky bucket (size 5, drip 1/s, the
//! simulator's burst limit), after the same data unthrottled. Prints the wall time of the throttled
//! sync divided by the larger of each account's own minimum (the drips it is charged, less the
//! bucket's size, at the drip rate) and the unthrottled wall time (what moving the data costs on this
//! machine), the number of 429s, the peak RSS (VmHWM) of the syncing process, and the spread of the
//! accounts' finish times.
//!
//! The simulator runs in this process; `sync` (accounts, then incremental customers: a first sync)
//! runs in a child process (this same executable running the real command), so its memory is
//! measured alone. Postgres comes from `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the benchmark creates and drops its own database
//! `lssync_fleet`. `FLEET_CONCURRENCY` sets the child's `sync.concurrency`, `FLEET_MAX_CONNECTIONS`
//! its `database.max_connections`, `FLEET_LOG` its `RUST_LOG`.

use std::time::Instant;

use lightspeed_sync::sim::{SimConfig, Simulator};

#[path = "harness/mod.rs"]
mod harness;

const FLEET_DB: &str = "lssync_fleet";
const BUCKET: f64 = 5.0;
const DRIP: f64 = 1.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    harness::run_child_if_asked(&args);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (accounts, customers) = (n(1, 1000), n(2, 1000));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        println!("fleet: {accounts} accounts × {customers} customers, bucket {BUCKET} / drip {DRIP}");
        let free = fleet(accounts, customers, false).await?;
        println!(
            "  unthrottled: {:.2} s (sync runs; child process {:.2} s), {} customers, peak RSS {:.1} MiB",
            free.run_secs,
            free.wall_secs,
            free.records,
            free.peak_kib as f64 / 1024.0
        );
        let paced = fleet(accounts, customers, true).await?;
        // Every account is charged the same: the bucket lets `BUCKET` drips through at once, then
        // `DRIP` per second.
        let per_account = paced.drips / accounts as f64;
        let minimum = ((per_account - BUCKET) / DRIP).max(0.0);
        let bound = minimum.max(free.run_secs);
        let f = &paced.finish;
        println!(
            "  throttled: {:.2} s (sync runs; child process {:.2} s), {} customers, {} requests, {:.1} drips per account: each account's minimum {:.2} s",
            paced.run_secs,
            paced.wall_secs,
            paced.records,
            paced.requests,
            per_account,
            minimum
        );
        println!(
            "  wall / max(minimum {:.2} s, unthrottled {:.2} s) = {:.3}; {} × 429 ({} bucket, {} burst); peak RSS {:.1} MiB",
            minimum,
            free.run_secs,
            paced.run_secs / bound,
            paced.throttled_bucket + paced.throttled_burst,
            paced.throttled_bucket,
            paced.throttled_burst,
            paced.peak_kib as f64 / 1024.0
        );
        println!(
            "  accounts' finish times (s after the first start): min {:.2}, p10 {:.2}, median {:.2}, p90 {:.2}, max {:.2}",
            f[0], f[1], f[2], f[3], f[4]
        );
        anyhow::Ok(())
    })
}

struct Outcome {
    records: i64,
    requests: u64,
    drips: f64,
    throttled_bucket: u64,
    throttled_burst: u64,
    run_secs: f64,
    wall_secs: f64,
    peak_kib: u64,
    /// min, p10, median, p90, max of the accounts' last finish, from the first start.
    finish: [f64; 5],
}

async fn fleet(accounts: usize, customers: usize, limits: bool) -> anyhow::Result<Outcome> {
    let generating = Instant::now();
    let sim = Simulator::start(SimConfig {
        accounts,
        customers,
        bucket_size: BUCKET,
        drip_rate: DRIP,
        rate_limits: limits,
        ..SimConfig::default()
    })
    .await?;
    eprintln!(
        "  (simulator with {} customers ready in {:.1} s)",
        accounts * customers,
        generating.elapsed().as_secs_f64()
    );
    let db = harness::BenchDb::create(FLEET_DB, &sim, 4).await?;
    let started = Instant::now();
    let mut command = db.child(&sim, &[], db.url.as_str(), "FLEET_LOG")?;
    if let Ok(c) = std::env::var("FLEET_CONCURRENCY") {
        command.env("LSSYNC__SYNC__CONCURRENCY", c);
    }
    if let Ok(c) = std::env::var("FLEET_MAX_CONNECTIONS") {
        command.env("LSSYNC__DATABASE__MAX_CONNECTIONS", c);
    }
    let mut child = command.spawn()?;
    // Read stdout as it comes (1,000 accounts print 2,000 summary lines: a full pipe would stall it).
    let mut stdout = child.stdout.take();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out).await;
        }
        out
    });
    let harness::Measured {
        status,
        peak_kib,
        cpu,
    } = harness::wait_measuring(&mut child, &db.admin, db.name()).await?;
    let wall_secs = started.elapsed().as_secs_f64();
    eprintln!("  ({cpu})");
    let out = reader.await?;
    if !status.success() {
        let failed: Vec<&str> = out
            .lines()
            .filter(|l| !l.contains(": succeeded"))
            .take(5)
            .collect();
        anyhow::bail!("the sync failed: {}", failed.join("\n"));
    }
    let (records, run_secs): (i64, f64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customers),
                extract(epoch FROM max(finished_at) - min(started_at))::float8
         FROM lightspeed_sync.runs",
    )
    .fetch_one(&db.pool)
    .await?;
    let finishes: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(finished_at) - (SELECT min(started_at) FROM lightspeed_sync.runs))::float8
         FROM lightspeed_sync.runs GROUP BY account_id ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await?;
    let at = |q: f64| finishes[((finishes.len() - 1) as f64 * q).round() as usize];
    let c = sim.counters();
    sim.shutdown().await;
    db.drop().await?;
    Ok(Outcome {
        records,
        requests: c.api_requests,
        drips: c.drip_charged,
        throttled_bucket: c.throttled_bucket,
        throttled_burst: c.throttled_burst,
        run_secs,
        wall_secs,
        peak_kib,
        finish: [at(0.0), at(0.1), at(0.5), at(0.9), at(1.0)],
    })
}
