//! The daemon's HTTP server under a client that does not play along: a request whose headers never
//! end is closed within the header timeout, connections beyond the limit wait while the others are
//! served, and `/status` answers 503 when its queries hang (its own database timeout, and the
//! whole-request timeout behind it).

use std::time::{Duration, Instant};

use lightspeed_sync::daemon::DaemonOptions;
use lightspeed_sync::daemon::http::ServerLimits;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::daemon::helpers::{
    NEVER, RunningDaemon, daemon_settings, engine_for, env, fast, no_progress, options,
};

async fn daemon(
    pool: PgPool,
    limits: ServerLimits,
    ready_timeout: Duration,
) -> (RunningDaemon, PgPool) {
    let env = env(pool, fast(1, 5)).await;
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 1);
    let engine = engine_for(&settings, env.pool.clone(), "replica-a", no_progress());
    let options = DaemonOptions {
        http_limits: limits,
        ready_timeout,
        ..options(false)
    };
    (
        RunningDaemon::start(&settings, engine, options).await,
        env.pool.clone(),
    )
}

/// Everything the server sends until it closes the connection (bounded by `limit`).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

const HALF_SENT: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";

#[sqlx::test]
async fn a_half_sent_request_is_closed_within_the_header_timeout(pool: PgPool) {
    let limits = ServerLimits {
        header_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (d, _) = daemon(pool, limits, Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(d.addr).await.unwrap();
    slow.write_all(HALF_SENT).await.unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut slow, Duration::from_secs(10)).await;
    assert!(answer.is_some(), "the connection was still open after 10 s");
    assert!(!answer.unwrap().contains("ok"), "not served");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    // A complete request is still served.
    let mut quick = TcpStream::connect(d.addr).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut quick, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    d.stop().await;
}

#[sqlx::test]
async fn connections_beyond_the_limit_wait_while_the_others_are_served(pool: PgPool) {
    let limits = ServerLimits {
        header_timeout: Duration::from_secs(20),
        request_timeout: Duration::from_secs(5),
        max_connections: 2,
    };
    let (d, _) = daemon(pool, limits, Duration::from_secs(1)).await;
    // Two slow clients hold both slots.
    let mut first = TcpStream::connect(d.addr).await.unwrap();
    first.write_all(HALF_SENT).await.unwrap();
    let mut second = TcpStream::connect(d.addr).await.unwrap();
    second.write_all(HALF_SENT).await.unwrap();
    // A third, complete request waits (the kernel queues it; the server does not take it).
    let mut third = TcpStream::connect(d.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "served beyond the connection limit");
    // One slow client goes away: the waiting request is served at once.
    drop(first);
    let started = Instant::now();
    let answer = read_to_close(&mut third, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(second);
    d.stop().await;
}

#[sqlx::test]
async fn status_answers_503_when_its_queries_hang(pool: PgPool) {
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(30),
        ..ServerLimits::default()
    };
    let (d, db) = daemon(pool.clone(), limits, Duration::from_millis(300)).await;
    // Another session holds a lock every status query must wait for.
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE lightspeed.accounts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client.get(d.url("/status")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(body.contains("did not finish within 300ms"), "{body}");
    // The liveness endpoint is not held up by it.
    let health = client.get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    blocker.rollback().await.unwrap();
    let response = client.get(d.url("/status")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    d.stop().await;

    // With a generous database timeout, the whole-request timeout answers instead.
    let limits = ServerLimits {
        request_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (d, db) = daemon(pool, limits, Duration::from_secs(60)).await;
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE lightspeed.accounts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let response = client.get(d.url("/status")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("/status did not answer within 300ms"),
        "{body}"
    );
    blocker.rollback().await.unwrap();
    d.stop().await;
}
