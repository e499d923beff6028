//! The API as an adversary (or a misconfigured proxy): a `next` to another origin, redirects,
//! bodies without end, and 429s that say nothing. A second mock server stands in for the host that
//! must never see the bearer token.

use std::time::{Duration, Instant};

use lightspeed_sync::lightspeed::ApiError;
use serde_json::json;
use url::Url;
use wiremock::matchers::{any, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::client::helpers::{ACCOUNT, Reply, client, customer, page, raw_server};

/// A server that answers everything with an empty page and records what it saw.
async fn thief() -> MockServer {
    let thief = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([]), "")))
        .mount(&thief)
        .await;
    thief
}

async fn assert_no_token_reached(thief: &MockServer) {
    let seen = thief.received_requests().await.unwrap();
    assert!(
        seen.is_empty(),
        "{} request(s) reached the other origin, with authorization {:?}",
        seen.len(),
        seen.first()
            .and_then(|r| r.headers.get("authorization").cloned())
    );
}

#[tokio::test]
async fn a_next_to_another_origin_is_not_followed_with_the_token() {
    let thief = thief().await;
    let server = MockServer::start().await;
    let api_port = Url::parse(&server.uri()).unwrap().port().unwrap();
    let p = format!("/API/V3/Account/{ACCOUNT}/Customer.json");
    let nexts = [
        // Another port on the same host: the audit's case.
        format!("{}{p}?after=WzJd", thief.uri()),
        // Same port, another scheme.
        format!("https://127.0.0.1:{api_port}{p}?after=WzJd"),
        // Same port, another host name for the same machine.
        format!("http://localhost:{api_port}{p}?after=WzJd"),
    ];
    for next in &nexts {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), next)),
            )
            .mount(&server)
            .await;
        let (api, _) = client(&server.uri(), 3);
        // Walk like the sync engine: follow `next` until there is none.
        let mut url = Some(api.customers_url(ACCOUNT.into(), &Default::default()));
        let mut result = Ok(());
        while let Some(u) = url.take() {
            match api.get_customers_page(ACCOUNT.into(), &u).await {
                Ok(page) => url = page.next,
                Err(e) => result = Err(e),
            }
        }
        let err = result.unwrap_err();
        let foreign = Url::parse(next).unwrap();
        let origin = format!(
            "{}://{}:{}",
            foreign.scheme(),
            foreign.host_str().unwrap(),
            foreign.port_or_known_default().unwrap()
        );
        match &err {
            ApiError::ForeignOrigin { origin: o, url, .. } => {
                assert_eq!(&**o, origin.as_str());
                assert_eq!(url.port(), Some(api_port), "the page that had the link");
            }
            other => panic!("{next}: {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&origin) && !text.contains("token-1"),
            "{text}"
        );
        assert!(!err.is_transient());
    }
    assert_no_token_reached(&thief).await;
    // A URL on another origin handed in directly is refused the same way.
    let (api, tokens) = client(&server.uri(), 3);
    let foreign = Url::parse(&format!("{}{p}", thief.uri())).unwrap();
    let err = api
        .get_customers_page(ACCOUNT.into(), &foreign)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::ForeignOrigin { .. }), "{err:?}");
    assert_eq!(
        *tokens.issued.lock().unwrap(),
        0,
        "no token was even asked for"
    );
    assert_no_token_reached(&thief).await;
}

#[tokio::test]
async fn a_redirect_is_an_error_naming_its_origin_and_is_not_followed() {
    let thief = thief().await;
    let server = MockServer::start().await;
    for status in [301, 302, 307, 308] {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).insert_header(
                "location",
                format!("{}/API/V3/Account.json?secret=1", thief.uri()).as_str(),
            ))
            .mount(&server)
            .await;
        let (api, _) = client(&server.uri(), 3);
        let err = api.get_accounts(ACCOUNT.into()).await.unwrap_err();
        match &err {
            ApiError::Redirect {
                status: s,
                location,
                ..
            } => {
                assert_eq!(*s, status);
                assert_eq!(location, &thief.uri());
            }
            other => panic!("{status}: {other:?}"),
        }
        assert!(!err.to_string().contains("secret=1"), "{err}");
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "not retried"
        );
    }
    assert_no_token_reached(&thief).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_the_url_and_the_limit() {
    // A valid page of 5 MiB, announced by Content-Length.
    let server = MockServer::start().await;
    let filler = "x".repeat(5 * 1024 * 1024);
    let mut record = customer(1);
    record["company"] = json!(filler);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([record]), "")))
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 3);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TooLarge { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(url.as_str()) && text.contains("larger than the limit of 4 MiB"),
        "{text}"
    );
    assert!(!err.is_transient());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not retried"
    );

    // Without a length (the body ends when the connection closes) the cap holds while streaming.
    let endless = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"Customer\":[{{\"company\":\"{}",
        "y".repeat(300 * 1024)
    );
    let (base, _) = raw_server(vec![Reply::Raw(endless)]).await;
    let (api, _) = client(&base, 3);
    let api = api.with_max_body(64 * 1024);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("larger than the limit of 64 KiB"),
        "{err}"
    );
}

/// The 429 recorded from the API in 2015: no Retry-After, no bucket or limiter headers.
fn bare_429() -> ResponseTemplate {
    let body = std::fs::read_to_string(crate::common::recorded_path(
        "mp-2015-429-rate-limited.json",
    ))
    .unwrap_or_else(|_| r#"{"httpCode":"429","message":"Rate Limit Exceeded"}"#.into());
    ResponseTemplate::new(429)
        .insert_header("content-type", "text/html; charset=UTF-8")
        .insert_header("x-ls-acct-id", "0")
        .set_body_string(body)
}

#[tokio::test]
async fn a_bare_429_backs_off_exponentially_and_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(bare_429())
        .up_to_n_times(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), "")))
        .mount(&server)
        .await;
    // The test client's backoff: 2 ms doubling, capped at 10 ms.
    let (api, _) = client(&server.uri(), 6);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let started = Instant::now();
    let page = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!((page.stats.throttled, page.stats.requests), (3, 4));
    // Three waits of at most 2, 4 and 8 ms (not the fixed second each an unknown bucket got).
    assert!(
        page.stats.waited < Duration::from_secs(1),
        "{:?}",
        page.stats.waited
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn endless_bare_429s_give_up_after_max_attempts_naming_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(bare_429())
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 4);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Throttled { count: 4, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(url.as_str()), "{err}");
    assert!(err.is_transient(), "the next run tries again");
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}
