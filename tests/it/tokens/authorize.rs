//! The `authorize` flow end to end: the URL printed, the browser step done by following the URL
//! without redirects, the redirect fed back through the input (or delivered to `--listen`).

use std::net::SocketAddr;
use std::time::Duration;

use lightspeed_sync::config::Settings;
use lightspeed_sync::tokens::authorize::{
    AuthorizeError, AuthorizeOptions, Connected, Disconnected, authorize, disconnect,
};
use lightspeed_sync::tokens::{AccountStatus, list_accounts};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::tokens::helpers::{FakeAuth, key, settings, settings_for};

/// What the "browser" does with the redirect it is given.
pub type Tamper = fn(String) -> String;

/// The result of one run of the flow.
pub struct Run {
    /// What `authorize` returned.
    pub result: Result<Connected, AuthorizeError>,
    /// Everything it wrote.
    pub output: Vec<String>,
    /// With `--listen`: the page the browser was shown.
    pub page: Option<String>,
}

fn browser() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Open the URL like a browser that is already signed in: the auth server answers with a redirect.
pub async fn follow(url: &str) -> String {
    let response = browser().get(url).send().await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        302,
        "the authorize endpoint redirects"
    );
    response.headers()["location"].to_str().unwrap().to_string()
}

/// Run `authorize` and play the person at the terminal and the browser.
pub async fn run_flow(
    settings: &Settings,
    pool: &PgPool,
    options: AuthorizeOptions,
    tamper: Tamper,
) -> Run {
    run_flow_slowly(settings, pool, options, tamper, None).await
}

/// As [`run_flow`], with the person taking `think` (tokio time, advanced without sleeping) between
/// the browser's redirect and pasting it.
pub async fn run_flow_slowly(
    settings: &Settings,
    pool: &PgPool,
    options: AuthorizeOptions,
    tamper: Tamper,
    think: Option<Duration>,
) -> Run {
    let (mut to_input, input) = tokio::io::duplex(16 * 1024);
    let (output, from_output) = tokio::io::duplex(16 * 1024);
    let flow = authorize(settings, pool, BufReader::new(input), output, &options);
    let listen = options.listen.is_some();
    let person = async move {
        let mut lines = BufReader::new(from_output).lines();
        let mut seen = Vec::new();
        let Some(url) = next_url(&mut lines, &mut seen).await else {
            return (seen, lines, None);
        };
        let listening: Option<SocketAddr> = if listen {
            let line = lines.next_line().await.unwrap().unwrap();
            seen.push(line.clone());
            Some(
                line.split("http://")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap(),
            )
        } else {
            None
        };
        let location = tamper(follow(&url).await);
        if let Some(think) = think {
            tokio::time::pause();
            tokio::time::advance(think).await;
            tokio::time::resume();
        }
        let page = match listening {
            None => {
                to_input
                    .write_all(format!("{location}\n").as_bytes())
                    .await
                    .unwrap();
                None
            }
            Some(addr) => {
                let mut callback = url::Url::parse(&location).unwrap();
                callback.set_scheme("http").unwrap();
                callback.set_host(Some(&addr.ip().to_string())).unwrap();
                callback.set_port(Some(addr.port())).unwrap();
                Some(
                    browser()
                        .get(callback)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap(),
                )
            }
        };
        (seen, lines, page)
    };
    let (result, (mut output, mut lines, page)) = tokio::join!(flow, person);
    while let Ok(Some(line)) = lines.next_line().await {
        output.push(line);
    }
    Run {
        result,
        output,
        page,
    }
}

async fn next_url<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    seen: &mut Vec<String>,
) -> Option<String> {
    while let Ok(Some(line)) = lines.next_line().await {
        seen.push(line.clone());
        if line.starts_with("http") {
            return Some(line);
        }
    }
    None
}

pub fn unchanged(location: String) -> String {
    location
}

pub fn stdin() -> AuthorizeOptions {
    AuthorizeOptions::default()
}

pub fn listen() -> AuthorizeOptions {
    AuthorizeOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        timeout: Duration::from_secs(30),
    }
}

#[sqlx::test]
async fn two_accounts_through_stdin(pool: PgPool) {
    let fake = FakeAuth::start(&[101, 102]).await;
    let s = settings(&fake, Some(&key()));
    for account in [101, 102] {
        let run = run_flow(&s, &pool, stdin(), unchanged).await;
        let connected = run.result.unwrap();
        assert_eq!(
            connected,
            Connected {
                account_id: account.into(),
                account_name: format!("Shop {account}")
            }
        );
        assert_eq!(
            run.output.last().unwrap(),
            &format!("connected account {account} (Shop {account})")
        );
        assert!(
            run.output
                .iter()
                .any(|l| l.starts_with("http") && !l.contains(' ')),
            "URL on a line of its own"
        );
    }
    let info = list_accounts(&pool).await.unwrap();
    assert_eq!(
        info.iter()
            .map(|i| (i.account_id, i.status))
            .collect::<Vec<_>>(),
        [
            (101.into(), AccountStatus::Connected),
            (102.into(), AccountStatus::Connected)
        ]
    );
}

#[sqlx::test]
async fn two_accounts_through_listen(pool: PgPool) {
    let fake = FakeAuth::start(&[201, 202]).await;
    let s = settings(&fake, Some(&key()));
    for account in [201, 202] {
        let run = run_flow(&s, &pool, listen(), unchanged).await;
        assert_eq!(run.result.unwrap().account_id, account);
        let page = run.page.unwrap();
        assert!(
            page.contains(&format!("connected account {account} (Shop {account})")),
            "{page}"
        );
        assert!(page.contains("You can close this tab"));
    }
    assert_eq!(list_accounts(&pool).await.unwrap().len(), 2);
}

#[sqlx::test]
async fn a_bare_code_is_accepted(pool: PgPool) {
    let fake = FakeAuth::start(&[301]).await;
    let s = settings(&fake, Some(&key()));
    fn code_only(location: String) -> String {
        url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }
    assert_eq!(
        run_flow(&s, &pool, stdin(), code_only)
            .await
            .result
            .unwrap()
            .account_id,
        301
    );
}

#[sqlx::test]
async fn a_state_mismatch_is_refused(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let s = settings(&fake, Some(&key()));
    fn forged(location: String) -> String {
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        format!("https://localhost/oauth/callback?code={code}&state=forged")
    }
    let run = run_flow(&s, &pool, stdin(), forged).await;
    let err = run.result.unwrap_err();
    assert!(matches!(err, AuthorizeError::StateMismatch));
    assert!(err.to_string().contains("`state` does not match") && !err.to_string().contains('\n'));
    // With --listen a foreign redirect is refused in the browser but does not end the flow (anyone
    // can send one): it goes on waiting for the real redirect, here in vain.
    let options = AuthorizeOptions {
        timeout: Duration::from_secs(1),
        ..listen()
    };
    let run = run_flow(&s, &pool, options, forged).await;
    assert!(
        run.page.unwrap().contains("does not match"),
        "the browser is told"
    );
    assert!(
        matches!(run.result, Err(AuthorizeError::Timeout { .. })),
        "{:?}",
        run.result.err()
    );
    assert_eq!(
        fake.token_calls().await,
        0,
        "no exchange with a foreign state"
    );
    assert!(list_accounts(&pool).await.unwrap().is_empty());
}

#[sqlx::test]
async fn an_expired_code_is_refused(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let s = settings(&fake, Some(&key()));
    // The person takes longer than 60 s: the fake reports every code as expired.
    fake.expire_codes();
    let err = run_flow(&s, &pool, stdin(), unchanged)
        .await
        .result
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the authorization code was rejected (expired after 60 s, already used, or for another client): run authorize again"
    );
    assert!(list_accounts(&pool).await.unwrap().is_empty());
}

#[sqlx::test]
async fn a_bad_client_secret_is_refused(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let s = settings_for(
        &fake.server.uri(),
        "fake-client",
        "not-the-secret",
        "https://localhost/oauth/callback",
        Some(&key()),
    );
    let err = run_flow(&s, &pool, stdin(), unchanged)
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, AuthorizeError::InvalidClient(_)));
    assert!(
        err.to_string()
            .contains("check lightspeed.client_id and lightspeed.client_secret"),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-secret"));
}

#[sqlx::test]
async fn no_key_is_refused_before_the_url(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let run = run_flow(&settings(&fake, None), &pool, stdin(), unchanged).await;
    let err = run.result.unwrap_err();
    assert!(
        err.to_string().contains("security.token_key") && err.to_string().contains("keygen"),
        "{err}"
    );
    assert!(run.output.is_empty(), "nothing printed: {:?}", run.output);
}

#[sqlx::test]
async fn listen_times_out_with_a_clear_message(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let s = settings(&fake, Some(&key()));
    let options = AuthorizeOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        timeout: Duration::from_millis(50),
    };
    let err = authorize(
        &s,
        &pool,
        BufReader::new(tokio::io::empty()),
        tokio::io::sink(),
        &options,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no redirect arrived on http://127.0.0.1:"),
        "{err}"
    );
}

#[sqlx::test]
async fn disconnect_revokes_and_deletes(pool: PgPool) {
    let fake = FakeAuth::start(&[5]).await;
    let s = settings(&fake, Some(&key()));
    run_flow(&s, &pool, stdin(), unchanged)
        .await
        .result
        .unwrap();
    assert_eq!(
        disconnect(&s, &pool, 5.into(), false).await.unwrap(),
        Disconnected::Revoked
    );
    assert!(list_accounts(&pool).await.unwrap().is_empty());
    let revokes = fake
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/auth/oauth/revoke")
        .count();
    assert_eq!(revokes, 1);
    assert!(
        disconnect(&s, &pool, 5.into(), false)
            .await
            .unwrap_err()
            .to_string()
            .contains("not connected")
    );
}
