//! 401 → `token_rejected` once with the rejected token → retry; a second 401 → `Unauthorized`;
//! token-source failures → `Auth` carrying `needs_reauth`; nothing secret in `Debug` or messages.

use serde_json::json;
use wiremock::matchers::header;
use wiremock::{Mock, MockServer, ResponseTemplate};

use lightspeed_sync::lightspeed::ApiError;

use crate::client::helpers::{ACCOUNT, client, customer, page};

/// The OAuth-style 401 body of the new auth server.
fn oauth_401() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({"error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request.",
        "hint": "Access token could not be verified"}))
}

/// The classic 401 body.
fn classic_401() -> ResponseTemplate {
    ResponseTemplate::new(401)
        .set_body_json(json!({"httpCode": "401", "httpMessage": "Unauthorized",
        "message": "Invalid access token.", "errorClass": "BadAuthenticationRequestError"}))
}

#[tokio::test]
async fn refreshes_once_then_succeeds() {
    for body in [oauth_401(), classic_401()] {
        let server = MockServer::start().await;
        Mock::given(header("authorization", "Bearer token-1"))
            .respond_with(body)
            .mount(&server)
            .await;
        Mock::given(header("authorization", "Bearer token-2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), "")))
            .expect(1)
            .mount(&server)
            .await;
        let (api, tokens) = client(&server.uri(), 3);
        let url = api.customers_url(ACCOUNT.into(), &Default::default());
        let page = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(
            *tokens.rejected.lock().unwrap(),
            ["token-1"],
            "token_rejected exactly once, with the rejected token"
        );
        assert_eq!(
            (
                page.stats.requests,
                page.stats.refreshes,
                page.stats.retries
            ),
            (2, 1, 0)
        );
    }
}

#[tokio::test]
async fn second_401_is_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Bearer token-1"))
        .respond_with(oauth_401())
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer token-2"))
        .respond_with(classic_401())
        .expect(1)
        .mount(&server)
        .await;
    let (api, tokens) = client(&server.uri(), 3);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::Unauthorized { url: u } if *u == url),
        "{err:?}"
    );
    assert_eq!(tokens.rejected.lock().unwrap().len(), 1);
    assert!(!err.to_string().contains("token-"), "{err}");
}

#[tokio::test]
async fn token_source_failure_is_auth_with_needs_reauth() {
    let server = MockServer::start().await;
    let (api, tokens) = client(&server.uri(), 3);
    *tokens.fail.lock().unwrap() = Some(true);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Auth { .. }), "{err:?}");
    assert!(err.needs_reauth() && !err.is_transient());
    assert_eq!(err.url(), &url);
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "no request without a token"
    );
}

#[tokio::test]
async fn refresh_failure_after_401_is_auth() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Bearer token-1"))
        .respond_with(oauth_401())
        .mount(&server)
        .await;
    let (api, tokens) = client(&server.uri(), 3);
    *tokens.refresh_fails.lock().unwrap() = Some(false);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Auth { .. }), "{err:?}");
    assert!(!err.needs_reauth() && err.is_transient());
}

#[tokio::test]
async fn debug_output_has_no_token() {
    let server = MockServer::start().await;
    let (api, _) = client(&server.uri(), 1);
    let text = format!("{api:?}");
    assert!(
        !text.contains("token-") && !text.contains("client-secret"),
        "{text}"
    );
}
