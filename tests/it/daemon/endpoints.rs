//! `/healthz`, `/readyz` (through a TCP proxy that can cut the database off), `/metrics` (valid
//! Prometheus text whose counters move with a sync), `/status` and `status [--json]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightspeed_sync::daemon::status::StatusReport;
use lightspeed_sync::daemon::worker::Tick;
use lightspeed_sync::model::{Kind, RunStatus};
use lightspeed_sync::tokens::store::mark_needs_reauth;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::daemon::helpers::{
    NEVER, RunningDaemon, child_env, daemon_settings, engine_for, env, fast, no_progress, options,
    pool_on, run_cli, wait_for,
};

/// A TCP proxy to Postgres that can refuse and cut connections, and come back.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let task = {
            let (up, conns) = (up.clone(), conns.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let handle = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(handle.abort_handle());
                }
            })
        };
        Proxy {
            addr,
            up,
            conns,
            task,
        }
    }

    /// The database becomes unreachable: open connections are cut, new ones closed at once.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// The database is back.
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Parse Prometheus text: every line is a comment or `name{labels} value`. Returns the samples keyed
/// by `name{sorted labels}`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                (name, parse_labels(inner, line))
            }
            None => (series, Vec::new()),
        };
        let valid_name = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        assert!(!name.is_empty() && valid_name, "bad metric name: {line:?}");
        let key = format!("{name}{{{}}}", labels.join(","));
        assert!(
            out.insert(key, value).is_none(),
            "duplicate series: {line:?}"
        );
    }
    out
}

fn parse_labels(inner: &str, line: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label: {line:?}"));
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name: {line:?}"
        );
        let end = after
            .find('"')
            .unwrap_or_else(|| panic!("unclosed label value: {line:?}"));
        labels.push(format!("{key}=\"{}\"", &after[..end]));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels.sort();
    labels
}

fn sample(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

async fn scrape(client: &reqwest::Client, d: &RunningDaemon) -> BTreeMap<String, f64> {
    let r = client.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    parse_prometheus(&r.text().await.unwrap())
}

/// An anonymized customer is counted once in `/metrics` (and in its run), replays are not.
#[sqlx::test]
async fn erasures_are_counted_in_metrics(pool: PgPool) {
    let env = env(pool, fast(1, 50)).await;
    let a = env.sim.account_ids()[0];
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 1);
    let mut engine = engine_for(&settings, env.pool.clone(), "replica-a", no_progress());
    engine.mirror.history = true;
    let d = RunningDaemon::start(&settings, engine, options(false)).await;
    let client = reqwest::Client::new();
    d.worker.tick(Tick::Initial).await.unwrap();
    d.worker.wait_idle().await;
    let erased = "lightspeed_sync_customers_erased_total{}";
    let before = scrape(&client, &d).await;
    assert!(before.contains_key(erased), "exported from the start");
    let id = env
        .sim
        .truth(a)
        .into_iter()
        .find(|c| !c.archived)
        .unwrap()
        .id;
    env.sim
        .mutate(a, lightspeed_sync::sim::Mutation::Anonymize(id))
        .unwrap();
    for _ in 0..2 {
        d.worker.tick(Tick::Customers).await.unwrap();
        d.worker.wait_idle().await;
    }
    let after = scrape(&client, &d).await;
    assert_eq!(sample(&after, erased) - sample(&before, erased), 1.0);
    let runs: i64 = sqlx::query_scalar("SELECT sum(erased)::bigint FROM lightspeed.sync_runs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    d.stop().await;
}

#[sqlx::test]
async fn metrics_are_prometheus_text_and_move_with_a_sync(pool: PgPool) {
    let env = env(pool, fast(2, 300)).await;
    let ids = env.sim.account_ids();
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 2);
    let engine = engine_for(&settings, env.pool.clone(), "replica-a", no_progress());
    let d = RunningDaemon::start(&settings, engine, options(false)).await;
    let client = reqwest::Client::new();
    let health = client.get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let before = scrape(&client, &d).await;
    d.worker.tick(Tick::Initial).await.unwrap();
    d.worker.wait_idle().await;
    let after = scrape(&client, &d).await;

    let runs = r#"lightspeed_sync_runs_total{status="succeeded",stream="customers"}"#;
    assert!(
        sample(&after, runs) - sample(&before, runs) >= 2.0,
        "{after:#?}"
    );
    let rows = r#"lightspeed_sync_rows_upserted_total{stream="customers"}"#;
    assert!(sample(&after, rows) - sample(&before, rows) >= 600.0);
    let ok = r#"lightspeed_api_requests_total{status="200"}"#;
    assert!(sample(&after, ok) - sample(&before, ok) >= 8.0);
    assert_eq!(
        after[r#"lightspeed_accounts{authorization="connected"}"#],
        2.0
    );
    assert_eq!(
        after[r#"lightspeed_accounts{authorization="needs_reauth"}"#],
        0.0
    );
    for a in &ids {
        for stream in ["accounts", "customers"] {
            let lag = format!(r#"lightspeed_sync_lag_seconds{{account="{a}",stream="{stream}"}}"#);
            let lag = after[&lag];
            assert!((0.0..60.0).contains(&lag), "lag {lag}");
            let last = format!(
                r#"lightspeed_sync_last_success_timestamp_seconds{{account="{a}",stream="{stream}"}}"#
            );
            assert!(after[&last] > 1.7e9);
        }
    }

    mark_needs_reauth(&env.pool, ids[0].into(), "invalid_grant: test")
        .await
        .unwrap();
    let later = scrape(&client, &d).await;
    assert_eq!(
        later[r#"lightspeed_accounts{authorization="needs_reauth"}"#],
        1.0
    );
    d.stop().await;
}

#[sqlx::test]
async fn readyz_fails_while_the_database_is_unreachable_and_recovers_without_a_restart(
    pool: PgPool,
) {
    let env = env(pool, fast(1, 10)).await;
    let options_db = (*env.pool.connect_options()).clone();
    let target: SocketAddr =
        tokio::net::lookup_host((options_db.get_host(), options_db.get_port()))
            .await
            .unwrap()
            .next()
            .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = pool_on(options_db.clone().host("127.0.0.1").port(proxy.addr.port())).await;
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 1);
    let engine = engine_for(&settings, proxied, "replica-a", no_progress());
    let d = RunningDaemon::start(&settings, engine, options(false)).await;
    let client = reqwest::Client::new();
    let readyz = |want: u16| {
        let (client, url) = (client.clone(), d.url("/readyz"));
        move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let r = client.get(&url).send().await.unwrap();
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap();
                (status == want).then_some(body)
            }
        }
    };
    let body = wait_for("ready", Duration::from_secs(10), readyz(200)).await;
    assert_eq!(body["ready"], true);

    proxy.cut();
    let body = wait_for("not ready", Duration::from_secs(10), readyz(503)).await;
    assert_eq!(body["ready"], false);
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.starts_with("database"), "{reason}");
    // Alive, and metrics still render, while the database is away.
    assert_eq!(
        client.get(d.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        client.get(d.url("/metrics")).send().await.unwrap().status(),
        200
    );

    proxy.restore();
    wait_for("ready again", Duration::from_secs(10), readyz(200)).await;
    let stopped = d.stop().await;
    assert!(stopped.drained);
}

#[sqlx::test]
async fn status_lists_accounts_with_their_streams_and_shows_needs_reauth(pool: PgPool) {
    let env = env(pool, fast(3, 120)).await;
    let mut ids = env.sim.account_ids();
    ids.sort();
    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 3);
    let engine = engine_for(&settings, env.pool.clone(), "replica-a", no_progress());
    let d = RunningDaemon::start(&settings, engine, options(false)).await;
    d.worker.tick(Tick::Initial).await.unwrap();
    d.worker.wait_idle().await;
    let reason = "the refresh token was rejected (invalid_grant: revoked in a test)";
    mark_needs_reauth(&env.pool, ids[2].into(), reason)
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let http: StatusReport = client
        .get(d.url("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<u64> = http.accounts.iter().map(|a| a.account_id.get()).collect();
    assert_eq!(listed, ids);
    for a in &http.accounts {
        assert!(!a.name.is_empty(), "{a:?}");
        let streams: Vec<&str> = a.streams.iter().map(|s| s.stream.as_str()).collect();
        assert_eq!(streams, ["accounts", "customers"]);
        for s in &a.streams {
            assert_eq!(s.last_status, Some(RunStatus::Succeeded), "{s:?}");
            assert!(s.last_success_at.is_some() && s.lag_seconds.is_some());
            assert_eq!(s.last_error, None);
        }
        let customers = &a.streams[1];
        // Every customer, plus the few an incremental walk reads twice at page boundaries.
        assert!(customers.last_rows.unwrap() >= 120, "{customers:?}");
        assert_eq!(customers.last_kind, Some(Kind::Incremental));
    }
    let stale = &http.accounts[2];
    assert_eq!(stale.authorization, "needs_reauth");
    assert_eq!(stale.authorization_reason.as_deref(), Some(reason));
    assert!(stale.authorization_changed_at.is_some());
    assert!(
        http.accounts[..2]
            .iter()
            .all(|a| a.authorization == "connected" && a.authorization_reason.is_none())
    );
    d.stop().await;

    // The command shows the same.
    let vars = child_env(&settings, &env.pool);
    let (status, out, err) = run_cli(&["status", "--json"], &vars).await;
    assert!(status.success(), "{err}");
    let cli: StatusReport = serde_json::from_str(&out).unwrap();
    let strip = |r: &StatusReport| {
        let mut r = r.clone();
        r.generated_at = chrono::DateTime::UNIX_EPOCH;
        for a in &mut r.accounts {
            for s in &mut a.streams {
                s.lag_seconds = None;
            }
        }
        r
    };
    assert_eq!(strip(&cli), strip(&http));
    let (status, table, err) = run_cli(&["status"], &vars).await;
    assert!(status.success(), "{err}");
    assert!(table.starts_with("ACCOUNT"), "{table}");
    for a in &ids {
        assert!(table.contains(&a.to_string()));
    }
    assert!(table.contains("needs_reauth"), "{table}");
    assert!(table.contains(reason), "{table}");
    assert!(table.lines().next().unwrap().contains("STATE"), "{table}");

    // `--stale`: nothing lags an hour yet (exit 0); then one stream does (exit 1, only that one).
    let (status, out, err) = run_cli(&["status", "--stale", "1h"], &vars).await;
    assert!(status.success(), "{err}");
    assert!(out.contains("no stream lags more than 1h"), "{out}");
    sqlx::query(
        "UPDATE lightspeed_sync.runs SET started_at = started_at - interval '2 hours',
             finished_at = finished_at - interval '2 hours'
         WHERE account_id = $1 AND stream = 'customers'",
    )
    .bind(ids[1] as i64)
    .execute(&env.pool)
    .await
    .unwrap();
    let (status, out, err) = run_cli(&["status", "--stale", "1h"], &vars).await;
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("1 stream(s) of 1 account(s) lag more than 1h"),
        "{err}"
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "the header and one stream: {out}");
    assert!(
        lines[1].starts_with(&ids[1].to_string()) && lines[1].contains("customers"),
        "{out}"
    );
    let (status, out, _) = run_cli(&["status", "--stale", "1h", "--json"], &vars).await;
    assert_eq!(status.code(), Some(1));
    let only: StatusReport = serde_json::from_str(&out).unwrap();
    assert_eq!(only.accounts.len(), 1);
    assert_eq!(only.accounts[0].account_id, ids[1]);
    assert_eq!(only.accounts[0].streams.len(), 1);
    assert!(only.accounts[0].streams[0].lag_seconds.unwrap() > 3600.0);
}
