//! The status page (`GET /`) in a real headless Chromium: a fleet of 50 accounts synced through the
//! worker, one needing re-authorization, one with a hostile name. Skips (with a message saying so)
//! when no `chromium` is installed. `STATUS_PAGE_SCREENSHOT=path` also copies the screenshot there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lightspeed_sync::daemon::worker::{Tick, Worker};
use lightspeed_sync::sync::lease::LEASE_TTL;
use lightspeed_sync::tokens::store::mark_needs_reauth;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::helpers::{NEVER, RunningDaemon, daemon_settings, env, fast, options};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Run headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=…`); its stdout.
async fn browse(chromium: &Path, profile: &Path, mode: &str, url: &str) -> String {
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `<tr …>` opening tags of the accounts table's body, in order.
fn row_tags(dom: &str) -> Vec<&str> {
    let body = &dom[dom.find("<tbody>").expect("a table body")..];
    body.match_indices("<tr ")
        .map(|(i, _)| &body[i..i + body[i..].find('>').unwrap()])
        .collect()
}

#[sqlx::test]
async fn the_status_page_renders_a_fleet_and_a_needs_reauth_account_stands_out(pool: PgPool) {
    let Some(chromium) = chromium() else {
        crate::common::skipped(
            "the_status_page_renders_a_fleet_and_a_needs_reauth_account_stands_out",
            "no `chromium` on PATH (apt-get install chromium); .ci/run installs it",
        );
        return;
    };
    let env = env(pool, fast(50, 5)).await;
    let mut ids = env.sim.account_ids();
    ids.sort();
    let reauth = ids[17];
    mark_needs_reauth(
        &env.pool,
        reauth.into(),
        "invalid_grant: <b>revoked</b> by the merchant",
    )
    .await
    .unwrap();
    let worker = Worker::new(
        env.engine.clone(),
        1000,
        LEASE_TTL,
        TaskTracker::new(),
        CancellationToken::new(),
    );
    let report = worker.tick(Tick::Initial).await.unwrap();
    assert_eq!(report.started.len(), 49);
    worker.wait_idle().await;
    // A name from the API with markup in it: shown as text, never as an element.
    let hostile = ids[3];
    sqlx::query("UPDATE lightspeed.accounts SET name = $2 WHERE account_id = $1")
        .bind(hostile as i64)
        .bind("Shop <img src=x onerror=alert(1)> & Co")
        .execute(&env.pool)
        .await
        .unwrap();

    let settings = daemon_settings(&env, [NEVER, NEVER, NEVER], 4);
    let daemon = RunningDaemon::start(&settings, env.engine.clone(), options(false)).await;
    let profile = tempfile::tempdir().unwrap();
    let url = daemon.url("/");

    let dom = browse(&chromium, profile.path(), "--dump-dom", &url).await;
    let rows = row_tags(&dom);
    assert_eq!(rows.len(), 50, "one row per account: {dom}");
    // Never synced, so the largest lag: first under the default sort, marked as such.
    assert!(
        rows[0].contains("class=\"state-needs_reauth\"")
            && rows[0].contains(&format!("data-account=\"{reauth}\"")),
        "{rows:?}"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains("state-needs_reauth"))
            .count(),
        1
    );
    assert_eq!(rows.iter().filter(|r| r.contains("state-ok")).count(), 49);
    assert!(dom.contains("1 need re-authorization"), "{dom}");
    assert!(dom.contains("run <code>lightspeed-sync authorize</code>"));
    assert!(
        dom.contains("invalid_grant: &lt;b&gt;revoked&lt;/b&gt; by the merchant"),
        "the reason is escaped: {dom}"
    );
    assert!(!dom.contains("<b>revoked"));
    assert!(
        dom.contains("Shop &lt;img src=x onerror=alert(1)&gt; &amp; Co"),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "no element from a name: {dom}");

    // The filter (a plain link) keeps one row; the lag sort link reverses the order.
    let only = browse(
        &chromium,
        profile.path(),
        "--dump-dom",
        &format!("{url}?state=needs_reauth"),
    )
    .await;
    let rows = row_tags(&only);
    assert_eq!(rows.len(), 1, "{only}");
    assert!(rows[0].contains(&format!("data-account=\"{reauth}\"")));
    let ascending = browse(
        &chromium,
        profile.path(),
        "--dump-dom",
        &format!("{url}?sort=lag_asc"),
    )
    .await;
    let rows = row_tags(&ascending);
    assert!(
        rows.last().unwrap().contains("state-needs_reauth"),
        "{rows:?}"
    );

    let shot = profile.path().join("status-page.png");
    browse(
        &chromium,
        profile.path(),
        &format!("--screenshot={}", shot.display()),
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Some(copy) = std::env::var_os("STATUS_PAGE_SCREENSHOT") {
        std::fs::copy(&shot, copy).unwrap();
    }
    daemon.stop().await;
}
