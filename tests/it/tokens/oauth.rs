//! The OAuth client on the wire: URL shape, request bodies, error classification.

use std::time::Duration;

use lightspeed_sync::lightspeed::oauth::{
    OAuthClient, OAuthError, TOKEN_PATH, http_client, pkce_challenge,
};
use secrecy::{ExposeSecret, SecretString};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::tokens::helpers::{CLIENT_SECRET, FakeAuth, settings, settings_for};

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

#[tokio::test]
async fn authorization_url_has_state_pkce_and_no_redirect_uri() {
    let fake = FakeAuth::start(&[1]).await;
    let client = OAuthClient::from_settings(&settings(&fake, None).lightspeed).unwrap();
    let req = client.authorization_request();
    let q: std::collections::HashMap<String, String> = req.url.query_pairs().into_owned().collect();
    assert_eq!(req.url.path(), "/auth/oauth/authorize");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "fake-client");
    assert_eq!(q["scope"], "employee:customers_read");
    assert_eq!(q["state"], req.state);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["code_challenge"],
        pkce_challenge(req.verifier.expose_secret())
    );
    assert!(!q.contains_key("redirect_uri"));
    let v = req.verifier.expose_secret();
    assert!(
        (43..=128).contains(&v.len())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_ne!(
        client.authorization_request().state,
        req.state,
        "state is random"
    );
    assert!(!format!("{client:?}{req:?}").contains(CLIENT_SECRET));
}

#[tokio::test]
async fn refresh_is_a_form_with_credentials_and_no_scope() {
    let fake = FakeAuth::start(&[5]).await;
    let (_, refresh) = fake.issue(5);
    let client = OAuthClient::from_settings(&settings(&fake, None).lightspeed).unwrap();
    let tokens = client.refresh(&secret(&refresh)).await.unwrap();
    assert_eq!(tokens.claims.account_id, Some(5.into()));
    assert!(tokens.refresh_token.is_some());
    let requests = fake.server.received_requests().await.unwrap();
    let body = String::from_utf8(requests[0].body.clone()).unwrap();
    assert_eq!(
        requests[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(body.contains("grant_type=refresh_token") && body.contains("client_secret="));
    assert!(!body.contains("scope"));
    // The old refresh token is dead now (strict rotation in the fake).
    assert!(matches!(
        client.refresh(&secret(&refresh)).await,
        Err(OAuthError::InvalidGrant { .. })
    ));
}

async fn answer(template: ResponseTemplate) -> OAuthError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(template)
        .mount(&server)
        .await;
    let s = settings_for(
        &server.uri(),
        "id",
        "the-client-secret",
        "https://x/cb",
        None,
    );
    let client = OAuthClient::new(
        http_client(Duration::from_millis(500)),
        &s.lightspeed,
        secret("the-client-secret"),
    );
    client
        .refresh(&secret("def50-the-refresh-token"))
        .await
        .unwrap_err()
}

fn json(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

#[tokio::test]
async fn errors_are_classified() {
    let grant = answer(json(400, serde_json::json!({"error": "invalid_grant", "error_description": "The refresh token is invalid.", "hint": "Token has been revoked"}))).await;
    assert_eq!(
        grant,
        OAuthError::InvalidGrant {
            description: "The refresh token is invalid. Token has been revoked".into()
        }
    );
    let client = answer(json(401, serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed"}))).await;
    assert!(matches!(client, OAuthError::InvalidClient { .. }));
    assert!(client.to_string().contains("lightspeed.client_secret"));
    let busy = answer(ResponseTemplate::new(503).insert_header("Retry-After", "7")).await;
    assert_eq!(
        busy,
        OAuthError::Transient {
            reason: "HTTP 503".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(answer(ResponseTemplate::new(429)).await.is_transient());
    assert!(
        answer(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
            .await
            .is_transient()
    );
    let slow = answer(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
    assert!(slow.is_transient(), "{slow:?}");
    let other = answer(json(400, serde_json::json!({"error": "invalid_request", "hint": "Check the refresh_token parameter"}))).await;
    assert!(
        matches!(
            other,
            OAuthError::Other {
                status: Some(400),
                ..
            }
        ),
        "{other:?}"
    );
    let garbage = answer(ResponseTemplate::new(200).set_body_string("not json")).await;
    assert!(matches!(garbage, OAuthError::Other { .. }), "{garbage:?}");
}

#[tokio::test]
async fn unreachable_server_is_transient() {
    let s = settings_for(
        "http://127.0.0.1:9",
        "id",
        "s3cr3t-value",
        "https://x/cb",
        None,
    );
    let client = OAuthClient::from_settings(&s.lightspeed).unwrap();
    assert!(
        client
            .refresh(&secret("def50abc"))
            .await
            .unwrap_err()
            .is_transient()
    );
}

#[tokio::test]
async fn errors_never_echo_secrets() {
    // A server that echoes what it received must not make us print it.
    let echo = json(
        400,
        serde_json::json!({"error": "invalid_grant", "error_description": "bad token def50-the-refresh-token for the-client-secret"}),
    );
    let err = answer(echo).await;
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("def50-the-refresh-token") && !text.contains("the-client-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn revoke_posts_client_credentials_and_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/oauth/revoke"))
        .and(body_string_contains("refresh_token=def50xyz"))
        .and(body_string_contains("client_secret=sec"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let s = settings_for(&server.uri(), "id", "sec", "https://x/cb", None);
    OAuthClient::from_settings(&s.lightspeed)
        .unwrap()
        .revoke(&secret("def50xyz"))
        .await
        .unwrap();
}
