//! Refresh-token rotation (§1.5) in each mode, revocation, and the forked-chain failure.

use std::time::Duration;

use lightspeed_sync::sim::{RotationMode, SimConfig};
use serde_json::Value;

use crate::sim::helpers::cfg;
use crate::sim::oauth::{Auth, auth};

fn mode(rotation: RotationMode) -> SimConfig {
    SimConfig { rotation, ..cfg(1) }
}

/// A fresh chain: (access, refresh).
async fn chain(a: &Auth) -> (String, String) {
    let (_, body) = a.exchange(&a.code("").await, None).await;
    pair(&body)
}

fn pair(body: &Value) -> (String, String) {
    (
        body["access_token"].as_str().expect("access_token").into(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .into(),
    )
}

/// GET Account.json with `token`; status and the 401 hint, if any.
async fn use_token(a: &Auth, token: &str) -> (u16, String) {
    let r = a
        .http
        .get(format!("{}/API/V3/Account.json", a.sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    (
        status,
        body["hint"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(start_paused = true)]
async fn deferred_old_refresh_token_works_until_the_new_access_token_is_used() {
    let a = auth(mode(RotationMode::Deferred)).await;
    let (_, r0) = chain(&a).await;
    let (status, first) = a.refresh(&r0).await;
    assert_eq!(status, 200);
    let (a1, r1) = pair(&first);
    assert_ne!(r1, r0, "a new refresh token every time");
    let (status, retry) = a.refresh(&r0).await;
    assert_eq!(
        status, 200,
        "retrying the same refresh is allowed until the new pair is used"
    );
    let (a1b, r1b) = pair(&retry);
    assert_eq!(use_token(&a, &a1).await.0, 200);
    assert_eq!(
        a.refresh(&r0).await.1["error"],
        "invalid_grant",
        "the parent died on first use"
    );
    assert_eq!(
        a.refresh(&r1b).await.1["error"],
        "invalid_grant",
        "the sibling pair died with it"
    );
    assert_eq!(
        use_token(&a, &a1b).await,
        (401, "Access token has been revoked".into())
    );
    assert_eq!(a.refresh(&r1).await.0, 200, "the winner's chain goes on");
}

#[tokio::test(start_paused = true)]
async fn deferred_forked_chain_leaves_the_loser_with_invalid_grant() {
    let a = auth(mode(RotationMode::Deferred)).await;
    let (_, r0) = chain(&a).await;
    let (worker1, worker2) = (pair(&a.refresh(&r0).await.1), pair(&a.refresh(&r0).await.1));
    assert_eq!(use_token(&a, &worker2.0).await.0, 200);
    assert_eq!(use_token(&a, &worker1.0).await.0, 401);
    let (status, body) = a.refresh(&worker1.1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(a.sim.counters().invalid_grants >= 1);
}

#[tokio::test(start_paused = true)]
async fn deferred_retries_are_capped_at_five_per_minute() {
    let a = auth(mode(RotationMode::Deferred)).await;
    let (_, r0) = chain(&a).await;
    for _ in 0..5 {
        assert_eq!(a.refresh(&r0).await.0, 200);
    }
    let (status, body) = a.refresh(&r0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(a.refresh(&r0).await.0, 200, "the window slides");
}

#[tokio::test(start_paused = true)]
async fn strict_revokes_the_used_refresh_token_at_once() {
    let a = auth(mode(RotationMode::Strict)).await;
    let (a0, r0) = chain(&a).await;
    let (status, body) = a.refresh(&r0).await;
    assert_eq!(status, 200);
    let (a1, r1) = pair(&body);
    assert_eq!(a.refresh(&r0).await.1["error"], "invalid_grant");
    assert_eq!(
        use_token(&a, &a0).await.0,
        401,
        "the old pair is invalidated"
    );
    assert_eq!(use_token(&a, &a1).await.0, 200);
    assert_eq!(a.refresh(&r1).await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn none_mode_returns_the_same_refresh_token() {
    let a = auth(mode(RotationMode::None)).await;
    let (a0, r0) = chain(&a).await;
    let (_, body) = a.refresh(&r0).await;
    let (a1, r1) = pair(&body);
    assert_eq!(r1, r0);
    assert_ne!(a1, a0);
    assert_eq!(use_token(&a, &a1).await.0, 200);
    assert_eq!(a.refresh(&r0).await.0, 200);
    assert_eq!(a.sim.counters().refreshes, 2);
}

#[tokio::test(start_paused = true)]
async fn revoke_endpoint_kills_the_whole_chain() {
    let a = auth(mode(RotationMode::Deferred)).await;
    let (_, r0) = chain(&a).await;
    let (a1, r1) = pair(&a.refresh(&r0).await.1);
    let form = [
        ("client_id", a.sim.client_id()),
        ("client_secret", a.sim.client_secret()),
        ("refresh_token", r1.as_str()),
    ];
    let r = a
        .http
        .post(format!("{}/auth/oauth/revoke", a.sim.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(a.refresh(&r1).await.1["error"], "invalid_grant");
    assert_eq!(a.refresh(&r0).await.1["error"], "invalid_grant");
    assert_eq!(
        use_token(&a, &a1).await,
        (401, "Access token has been revoked".into())
    );
}

#[tokio::test(start_paused = true)]
async fn revoke_hook_kills_refresh_tokens_but_not_access_tokens() {
    let a = auth(mode(RotationMode::Deferred)).await;
    let (a0, r0) = chain(&a).await;
    a.sim.revoke_refresh_tokens(a.sim.account_ids()[0]);
    assert_eq!(a.refresh(&r0).await.1["error"], "invalid_grant");
    assert_eq!(use_token(&a, &a0).await.0, 200);
}

#[tokio::test(start_paused = true)]
async fn scope_on_refresh_is_refused() {
    let a = auth(mode(RotationMode::Deferred)).await;
    let (_, r0) = chain(&a).await;
    let (status, body) = a
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r0),
            ("scope", "employee:all"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        a.refresh(&r0).await.0,
        200,
        "the refresh token was not spent"
    );
}
