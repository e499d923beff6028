//! Transient failures: 5xx (HTML too), `400 … Please try again later.`, dropped connections, cut
//! bodies; and giving up after `max_attempts`.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use lightspeed_sync::lightspeed::ApiError;

use crate::client::helpers::{
    ACCOUNT, Reply, client, client_from, customer, http_ok, page, raw_server, settings,
};

fn customers_url(api: &lightspeed_sync::lightspeed::ApiClient) -> url::Url {
    api.customers_url(ACCOUNT.into(), &Default::default())
}

#[tokio::test]
async fn retries_502_html_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("content-type", "text/html")
                .set_body_string("<html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), "")))
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 3);
    let page = api
        .get_customers_page(ACCOUNT.into(), &customers_url(&api))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(
        (
            page.stats.requests,
            page.stats.retries,
            page.stats.throttled
        ),
        (2, 1, 0)
    );
}

#[tokio::test]
async fn retries_400_please_try_again_later() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"httpCode": "400",
            "httpMessage": "Bad Request", "message": "Something went wrong. Please try again later.",
            "errorClass": "Exception"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([]), "")))
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 3);
    let page = api
        .get_customers_page(ACCOUNT.into(), &customers_url(&api))
        .await
        .unwrap();
    assert_eq!(page.stats.retries, 1);
}

#[tokio::test]
async fn gives_up_after_max_attempts_naming_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("down for maintenance"))
        .expect(4)
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 4);
    let url = customers_url(&api);
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    match &err {
        ApiError::Unavailable {
            url: u,
            attempts,
            reason,
            ..
        } => {
            assert_eq!((u, *attempts), (&url, 4));
            assert!(
                reason.contains("503") && reason.contains("maintenance"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(url.as_str()));
    assert!(err.is_transient());
}

#[tokio::test]
async fn dropped_connection_is_retried() {
    let body = serde_json::to_string(&page(json!([customer(1), customer(2)]), "")).unwrap();
    let (base, seen) = raw_server(vec![Reply::Close, Reply::Raw(http_ok(&body, ""))]).await;
    let (api, _) = client(&base, 3);
    let page = api
        .get_customers_page(ACCOUNT.into(), &customers_url(&api))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.stats.retries, 1);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn cut_body_is_retried() {
    let body = serde_json::to_string(&page(json!([customer(1), customer(2)]), "")).unwrap();
    // Content-Length promises the whole body; the connection closes halfway.
    let full = http_ok(&body, "");
    let cut = full[..full.len() - body.len() / 2].to_string();
    let (base, _) = raw_server(vec![Reply::Raw(cut), Reply::Raw(full)]).await;
    let (api, _) = client(&base, 3);
    let page = api
        .get_customers_page(ACCOUNT.into(), &customers_url(&api))
        .await
        .unwrap();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.stats.retries, 1);
}

#[tokio::test]
async fn json_cut_short_without_length_is_retried() {
    let body = serde_json::to_string(&page(json!([customer(1)]), "")).unwrap();
    // No Content-Length: the close ends the body, so only the JSON shows it is incomplete.
    let cut = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
        &body[..body.len() / 2]
    );
    let whole = format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}");
    let (base, _) = raw_server(vec![Reply::Raw(cut), Reply::Raw(whole)]).await;
    let (api, _) = client(&base, 3);
    let page = api
        .get_customers_page(ACCOUNT.into(), &customers_url(&api))
        .await
        .unwrap();
    assert_eq!(
        (page.records.len(), page.stats.retries, page.stats.requests),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn timeout_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(3)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), "")))
        .mount(&server)
        .await;
    let mut settings = settings(&server.uri(), 2);
    settings.request_timeout = std::time::Duration::from_millis(300);
    let (api, _) = client_from(&settings);
    let page = api
        .get_customers_page(ACCOUNT.into(), &customers_url(&api))
        .await
        .unwrap();
    assert_eq!(page.stats.retries, 1);
}
