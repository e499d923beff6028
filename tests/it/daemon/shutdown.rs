//! Graceful shutdown in the middle of a run: from the shutdown input (in-process) and from SIGTERM
//! (a `run` process under a fake systemd notify socket). The daemon stops within its deadline, the
//! run ends `interrupted` after its last committed page, the lease is released, the cursor is
//! consistent with the data, and the next run makes the mirror equal to the truth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lightspeed_sync::daemon::worker::Tick;
use lightspeed_sync::daemon::{Daemon, DaemonOptions};
use lightspeed_sync::sim::Fault;
use lightspeed_sync::sync::Kind;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::daemon::helpers::{
    Child, Env, NEVER, OnPage, child_env, daemon_settings, engine_for, env, fast, options, runs,
    wait_for, watermark_and_newest,
};

/// After an interrupted run: one interrupted customers run with some but not all pages, no lease
/// held, a watermark not past the data; then a new run converges.
async fn assert_consistent_after_interruption(env: &Env, account: u64, total_pages: i32) {
    let all = runs(&env.pool).await;
    let customers: Vec<_> = all.iter().filter(|r| r.stream == "customers").collect();
    assert_eq!(customers.len(), 1, "{all:?}");
    let run = customers[0];
    assert_eq!(run.status, "interrupted", "{run:?}");
    assert!(
        run.pages >= 1 && run.pages < total_pages,
        "stopped mid-walk: {run:?}"
    );
    assert!(run.finished_at.is_some());
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM lightspeed_sync.leases WHERE expires_at > now()")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(held, 0, "the lease is released");
    let (watermark, newest) = watermark_and_newest(&env.pool, account).await;
    let (watermark, newest) = (watermark.expect("a watermark"), newest.expect("rows"));
    assert!(
        watermark <= newest,
        "watermark {watermark} is past the newest row {newest}"
    );
    let mirrored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers WHERE account_id = $1")
            .bind(account as i64)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(mirrored > 0 && mirrored < env.sim.truth(account).len() as i64);
    // The next run picks up from the cursor and converges.
    env.sync_ok(account, Kind::Incremental).await;
    env.assert_mirror_matches(account).await;
}

#[sqlx::test]
async fn the_shutdown_input_during_a_run_stops_after_the_page_in_flight(pool: PgPool) {
    let env = env(pool, fast(1, 500)).await;
    let account = env.sim.account_ids()[0];
    let mut settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 1);
    settings.sync.page_size = 10;
    let stop = CancellationToken::new();
    // Shutdown is asked for as soon as the first page is committed.
    let hook = {
        let stop = stop.clone();
        OnPage(move |_| stop.cancel())
    };
    let engine = engine_for(&settings, env.pool.clone(), "replica-a", Arc::new(hook));
    let deadline = Duration::from_secs(10);
    let daemon = Daemon::new(
        &settings,
        engine,
        DaemonOptions {
            shutdown_timeout: deadline,
            ..options(false)
        },
    )
    .await
    .unwrap();
    let worker = daemon.worker();
    let task = tokio::spawn(daemon.run_until_stopped(stop.clone().cancelled_owned()));
    worker.tick(Tick::Customers).await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(stopped.drained, "{stopped:?}");
    assert!(stopped.elapsed < deadline, "{stopped:?}");
    eprintln!("stopped {:?} after the shutdown input", stopped.elapsed);
    // Nothing new starts after shutdown.
    assert!(worker.tick(Tick::Customers).await.unwrap().closed);
    assert_consistent_after_interruption(&env, account, 50).await;
}

#[sqlx::test]
async fn sigterm_during_a_page_exits_zero_within_the_deadline_and_notifies_systemd(pool: PgPool) {
    let env = env(pool, fast(1, 500)).await;
    let account = env.sim.account_ids()[0];
    let mut settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 1);
    settings.sync.page_size = 10;
    // Each API request takes 150 ms: the 50 pages take several seconds.
    for _ in 0..60 {
        env.sim.inject(Fault::Slow(Duration::from_millis(150)));
    }
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf).await {
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).trim().to_string());
        }
    });
    let mut vars = child_env(&settings, &env.pool);
    vars.push((
        "NOTIFY_SOCKET".into(),
        socket_path.to_string_lossy().into_owned(),
    ));
    vars.push(("WATCHDOG_USEC".into(), "400000".into()));
    let deadline = Duration::from_secs(10);
    let mut child = Child::spawn(&["run", "--shutdown-timeout", "10s"], &vars);
    child
        .wait_for_line("daemon ready", Duration::from_secs(60))
        .await;
    let replica = format!("%-{}-%", child.pid);
    wait_for(
        "the child's customers run to commit two pages",
        Duration::from_secs(30),
        || async {
            let pages: Option<i32> = sqlx::query_scalar(
                "SELECT pages FROM lightspeed_sync.runs
                 WHERE stream = 'customers' AND status = 'running' AND replica LIKE $1",
            )
            .bind(&replica)
            .fetch_optional(&env.pool)
            .await
            .unwrap();
            pages.filter(|&p| p >= 2)
        },
    )
    .await;

    let asked = Instant::now();
    child.signal("TERM").await;
    let status = child.wait(deadline + Duration::from_secs(5)).await;
    let took = asked.elapsed();
    assert!(status.success(), "exit {status:?}:\n{}", child.stderr());
    assert!(took < deadline, "took {took:?}");
    eprintln!("exited {took:?} after SIGTERM");
    child
        .wait_for_line("SIGTERM received", Duration::from_secs(1))
        .await;

    let mut seen = Vec::new();
    while let Ok(n) = notes.try_recv() {
        seen.push(n);
    }
    let pos = |what: &str| seen.iter().position(|n| n == what);
    let (ready, stopping) = (pos("READY=1"), pos("STOPPING=1"));
    assert!(ready.is_some() && stopping.is_some(), "{seen:?}");
    assert!(ready < stopping, "{seen:?}");
    assert!(pos("WATCHDOG=1").is_some(), "{seen:?}");
    assert_consistent_after_interruption(&env, account, 50).await;
}
