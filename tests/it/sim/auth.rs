//! API authentication (§8): the 401 bodies for missing, expired and revoked tokens.

use std::time::Duration;

use serde_json::Value;

use crate::sim::helpers::{cfg, start};

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    (
        r.status().as_u16(),
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn missing_token_gets_the_classic_401() {
    let ctx = start(cfg(1)).await;
    let r = ctx.http.get(ctx.url("Customer.json")).send().await.unwrap();
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        serde_json::json!({"httpCode":"401","httpMessage":"Unauthorized","message":"Invalid username/password or API key.","errorClass":"BadAuthenticationRequestError"})
    );
}

#[tokio::test(start_paused = true)]
async fn expired_token_gets_access_denied_could_not_be_verified() {
    let ctx = start(cfg(1)).await;
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 200);
    tokio::time::advance(Duration::from_secs(3600)).await;
    let (status, body) = status_and_body(ctx.get(&ctx.url("Customer.json")).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        serde_json::json!({"error":"access_denied","error_description":"The resource owner or authorization server denied the request.","hint":"Access token could not be verified"})
    );
    assert_eq!(ctx.sim.counters().expired_token_requests, 1);
}

#[tokio::test]
async fn expire_hook_expires_tokens_at_once() {
    let ctx = start(cfg(1)).await;
    ctx.sim.expire_access_tokens(ctx.account);
    assert_eq!(ctx.get(&ctx.url("Customer.json")).await.status(), 401);
}

#[tokio::test]
async fn revoked_token_gets_the_revoked_hint() {
    let ctx = start(cfg(1)).await;
    let pair = ctx.sim.issue_tokens(ctx.account);
    let form = [
        ("client_id", ctx.sim.client_id()),
        ("client_secret", ctx.sim.client_secret()),
        ("refresh_token", pair.refresh_token.as_str()),
    ];
    ctx.http
        .post(format!("{}/auth/oauth/revoke", ctx.sim.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(
        ctx.get_with(&ctx.url("Customer.json"), &pair.access_token)
            .await,
    )
    .await;
    assert_eq!(
        (status, body["hint"].as_str()),
        (401, Some("Access token has been revoked"))
    );
    assert_eq!(ctx.sim.counters().revoked_token_requests, 1);
}

#[tokio::test]
async fn garbage_token_could_not_be_verified() {
    let ctx = start(cfg(1)).await;
    let (status, body) =
        status_and_body(ctx.get_with(&ctx.url("Customer.json"), "not-a-token").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("access_denied"))
    );
}

#[tokio::test]
async fn token_of_another_account_is_forbidden() {
    let ctx = start(lightspeed_sync::sim::SimConfig {
        accounts: 2,
        ..cfg(1)
    })
    .await;
    let other = ctx.sim.account_ids()[1];
    let url = format!(
        "{}/API/V3/Account/{other}/Customer.json",
        ctx.sim.base_url()
    );
    let (status, body) = status_and_body(ctx.get(&url).await).await;
    assert_eq!((status, body["httpCode"].as_str()), (403, Some("403")));
}
