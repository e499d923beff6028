//! Rate limits seen through HTTP: 429 with `Retry-After`, the burst limiter, the pacer learning from
//! headers in any case and waiting before the bucket would overflow.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use lightspeed_sync::lightspeed::ApiError;

use crate::client::helpers::{ACCOUNT, Reply, client, customer, http_ok, page, raw_server};

fn ok_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), ""))
}

#[tokio::test]
async fn retry_after_is_honoured_and_counted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .insert_header("X-LS-API-RateLimit-Type", "api-leaky-bucket")
                .insert_header("X-LS-API-Bucket-Level", "90.4/90")
                .insert_header("X-LS-API-Drip-Rate", "10")
                .set_body_json(json!({"httpCode": "429", "message": "Rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ok_page())
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 1);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let page = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
    assert_eq!(
        (
            page.stats.requests,
            page.stats.throttled,
            page.stats.retries
        ),
        (2, 1, 0)
    );
    assert!(
        page.stats.waited >= Duration::from_secs(1),
        "{:?}",
        page.stats.waited
    );
    assert!(
        page.stats.waited < Duration::from_secs(2),
        "{:?}",
        page.stats.waited
    );
}

#[tokio::test]
async fn burst_limiter_429_without_retry_after_waits_a_second() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ls-api-ratelimit-type", "api-burst-limiter")
                .set_body_string("burst rate limit exceeded"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ok_page())
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 1);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let page = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
    assert_eq!(page.stats.throttled, 1);
    assert!(
        page.stats.waited >= Duration::from_secs(1),
        "{:?}",
        page.stats.waited
    );
}

#[tokio::test]
async fn endless_429_gives_up() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 3);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Throttled { count: 20, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn headers_in_any_case_are_learned_and_paced() {
    let body = serde_json::to_string(&page(json!([customer(1)]), "")).unwrap();
    // Exact header-name case on the wire, as Lightspeed varies it.
    let replies = [
        "X-LS-API-Bucket-Level: 89.3/90\r\nX-LS-API-Drip-Rate: 2\r\nX-LS-API-Request-Cost: 1\r\nX-LS-API-Burst-Level: 1/20\r\n",
        "X-Ls-Api-Bucket-Level: 89.4/90\r\nx-ls-api-drip-rate: 2\r\nX-Ls-Api-Request-Cost: 1\r\n",
    ];
    let (base, _) = raw_server(
        replies
            .iter()
            .map(|h| Reply::Raw(http_ok(&body, h)))
            .collect(),
    )
    .await;
    let (api, _) = client(&base, 1);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let first = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
    assert_eq!(first.stats.waited, Duration::ZERO);
    let bucket = api.pacer(ACCOUNT.into()).bucket().expect("bucket learned");
    assert_eq!((bucket.level, bucket.size, bucket.drip), (89.3, 90.0, 2.0));
    // 89.3 + cost 1 + margin 0.5 = 90.8: wait 0.8 drips at 2/s = 0.4 s before the next request.
    let second = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
    let waited = second.stats.waited.as_secs_f64();
    assert!((0.3..0.5).contains(&waited), "{waited}");
    assert_eq!(api.pacer(ACCOUNT.into()).bucket().unwrap().level, 89.4);
}
