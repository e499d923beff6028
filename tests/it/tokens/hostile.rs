//! The auth server and the callback as adversaries: redirects that would carry the client secret
//! and tokens elsewhere, a `Retry-After` that overflows, oversized answers, requests to the
//! `--listen` callback that are not this run's redirect, and control characters meant for the
//! terminal.

use std::net::SocketAddr;
use std::time::Duration;

use lightspeed_sync::lightspeed::oauth::{OAuthClient, OAuthError, http_client};
use lightspeed_sync::tokens::authorize::{
    AuthorizeError, AuthorizeOptions, Connected, authorize, connected_line, disconnect,
};
use lightspeed_sync::tokens::list_accounts;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::tokens::authorize::{follow, run_flow, stdin};
use crate::tokens::helpers::{CLIENT_SECRET, FakeAuth, key, settings, settings_for, store_pair};

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

/// An auth server whose every answer is a 307 to `thief`, and the thief.
async fn redirecting_to_a_thief() -> (MockServer, MockServer) {
    let thief = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&thief)
        .await;
    let auth = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/steal?x=1", thief.uri()).as_str()),
        )
        .mount(&auth)
        .await;
    (auth, thief)
}

async fn assert_nothing_reached(thief: &MockServer) {
    let seen = thief.received_requests().await.unwrap();
    assert!(
        seen.is_empty(),
        "the thief received {} request(s), e.g. {:?}",
        seen.len(),
        seen.first()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
    );
}

fn settings_at(base: &str) -> lightspeed_sync::config::Settings {
    settings_for(
        base,
        "fake-client",
        CLIENT_SECRET,
        "https://localhost/oauth/callback",
        Some(&key()),
    )
}

#[tokio::test]
async fn a_307_on_refresh_and_code_exchange_sends_nothing_elsewhere() {
    let (auth, thief) = redirecting_to_a_thief().await;
    let s = settings_at(&auth.uri());
    let client = OAuthClient::new(
        http_client(Duration::from_secs(5)),
        &s.lightspeed,
        secret(CLIENT_SECRET),
    );
    let thief_origin = thief.uri();
    let refresh = client.refresh(&secret("refresh-token-123")).await;
    let exchange = client
        .exchange_code(&secret("code-456"), &secret("verifier-789"))
        .await;
    for (what, result) in [
        ("refresh", refresh.map(|_| ())),
        ("exchange", exchange.map(|_| ())),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                OAuthError::Other {
                    status: Some(307),
                    ..
                }
            ),
            "{what}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&thief_origin) && text.contains("redirects are not followed"),
            "{what}: {text}"
        );
        assert!(
            !text.contains("/steal") && !text.contains(CLIENT_SECRET),
            "{text}"
        );
    }
    assert_nothing_reached(&thief).await;
}

#[sqlx::test]
async fn a_307_on_revoke_makes_disconnect_fail_without_sending_the_secret_elsewhere(pool: PgPool) {
    let (auth, thief) = redirecting_to_a_thief().await;
    let s = settings_at(&auth.uri());
    let pair = ("access-abc".to_string(), "refresh-def-ghi".to_string());
    store_pair(&s, &pool, 7, &pair, chrono::Utc::now()).await;
    let err = disconnect(&s, &pool, 7.into(), false).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(&thief.uri()) && text.contains("redirect"),
        "{text}"
    );
    assert!(!text.contains(CLIENT_SECRET) && !text.contains("refresh-def-ghi"));
    assert_nothing_reached(&thief).await;
    assert_eq!(
        list_accounts(&pool).await.unwrap().len(),
        1,
        "not revoked, so kept"
    );
}

#[sqlx::test]
async fn retry_after_1e20_on_the_token_endpoint_is_an_error_not_a_panic(pool: PgPool) {
    let auth = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1e20")
                .set_body_string(r#"{"error":"slow_down"}"#),
        )
        .mount(&auth)
        .await;
    let s = settings_at(&auth.uri());
    let (mut to_input, input) = tokio::io::duplex(4096);
    to_input.write_all(b"def502code\n").await.unwrap();
    let err = authorize(
        &s,
        &pool,
        BufReader::new(input),
        tokio::io::sink(),
        &AuthorizeOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AuthorizeError::Exchange(_)), "{err:?}");
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn an_oversized_token_answer_is_refused_with_the_limit() {
    let auth = MockServer::start().await;
    let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(1024 * 1024));
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string(huge))
        .mount(&auth)
        .await;
    let s = settings_at(&auth.uri());
    let client = OAuthClient::from_settings(&s.lightspeed).unwrap();
    let err = client.refresh(&secret("refresh-1")).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("larger than the limit of 64 KiB") && text.contains("/auth/oauth/token"),
        "{text}"
    );
}

/// Start `authorize --listen`; returns the authorization URL, the callback address, the flow and
/// the output lines.
async fn start_listening(
    s: lightspeed_sync::config::Settings,
    pool: PgPool,
) -> (
    String,
    SocketAddr,
    tokio::task::JoinHandle<Result<Connected, AuthorizeError>>,
    tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
) {
    let (output, from_output) = tokio::io::duplex(16 * 1024);
    let flow = tokio::spawn(async move {
        let options = AuthorizeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            timeout: Duration::from_secs(30),
        };
        authorize(
            &s,
            &pool,
            BufReader::new(tokio::io::empty()),
            output,
            &options,
        )
        .await
    });
    let mut lines = BufReader::new(from_output).lines();
    let mut url = None;
    loop {
        let line = lines.next_line().await.unwrap().expect("authorize prints");
        if line.starts_with("http") {
            url = Some(line);
        } else if let Some(rest) = line.strip_prefix("listening on http://") {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (url.unwrap(), addr, flow, lines);
        }
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[sqlx::test]
async fn listen_serves_only_the_redirect_path_and_a_foreign_state_does_not_end_the_flow(
    pool: PgPool,
) {
    let fake = FakeAuth::start(&[31]).await;
    let s = settings(&fake, Some(&key()));
    let (url, addr, flow, mut lines) = start_listening(s, pool.clone()).await;
    let base = format!("http://{addr}");
    let browser = browser();
    // Another path, even with a plausible query, is not the callback.
    let other = browser
        .get(format!("{base}/other?code=x&state=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
    // An unauthenticated error with a wrong or missing state is refused and the flow goes on.
    for query in [
        "error=access_denied&error_description=%1B%5B2Jowned&state=wrong",
        "error=access_denied",
    ] {
        let page = browser
            .get(format!("{base}/oauth/callback?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 400, "{query}");
        assert!(page.text().await.unwrap().contains("does not match"));
        let note = lines.next_line().await.unwrap().unwrap();
        assert!(note.contains("still waiting"), "{note}");
    }
    assert!(!flow.is_finished());
    // The real redirect still connects the account.
    let location = url::Url::parse(&follow(&url).await).unwrap();
    let callback = format!("{base}{}?{}", location.path(), location.query().unwrap());
    let page = browser.get(callback).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let connected = tokio::time::timeout(Duration::from_secs(10), flow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(connected.account_id, 31);
    assert_eq!(fake.token_calls().await, 1);
}

#[sqlx::test]
async fn control_characters_from_the_server_do_not_reach_the_terminal(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let s = settings(&fake, Some(&key()));
    // Lightspeed (or whoever answers) sends an error with terminal escapes, with the right state.
    fn refused(location: String) -> String {
        let state = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        format!(
            "https://localhost/oauth/callback?error=access_denied&error_description=%1B%5B2J%1B%5D0%3Bpwned%07Caf%C3%A9&state={state}"
        )
    }
    let err = run_flow(&s, &pool, stdin(), refused)
        .await
        .result
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AuthorizeError::Denied(_)), "{err:?}");
    assert!(
        !text.chars().any(|c| c.is_control()),
        "control characters in {text:?}"
    );
    assert!(text.contains("[2J]0;pwnedCafé"), "{text}");
    // An account name is printed the same way.
    let line = connected_line(&Connected {
        account_id: 5.into(),
        account_name: "Shop\u{1b}[2J\u{1b}]0;x\u{7}\r\nnext ☕".into(),
    });
    assert_eq!(line, "connected account 5 (Shop[2J]0;x  next ☕)");
}
