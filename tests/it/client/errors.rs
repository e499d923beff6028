//! Bodies that are not what they should be, and statuses that are not retried.

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use lightspeed_sync::lightspeed::ApiError;

use crate::client::helpers::{ACCOUNT, client, customer, page};

async fn serve(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn invalid_json_is_malformed_with_the_url_and_not_retried() {
    let server =
        serve(ResponseTemplate::new(200).set_body_string("<?xml version=\"1.0\"?><Customers/>"))
            .await;
    let (api, _) = client(&server.uri(), 3);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    match &err {
        ApiError::Malformed { url: u, reason } => {
            assert_eq!(u, &url);
            assert!(reason.contains("not valid JSON"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(url.as_str()));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn wrong_types_name_the_field_and_position() {
    let mut bad = customer(2);
    bad["customerID"] = json!("abc");
    let server =
        serve(ResponseTemplate::new(200).set_body_json(page(json!([customer(1), bad]), ""))).await;
    let (api, _) = client(&server.uri(), 3);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    let ApiError::Malformed { reason, .. } = &err else {
        panic!("unexpected {err:?}")
    };
    assert!(
        reason.contains("customerID") && reason.contains("#1") && reason.contains("abc"),
        "{reason}"
    );
}

#[tokio::test]
async fn missing_timestamp_is_an_error() {
    let mut bad = customer(1);
    bad.as_object_mut().unwrap().remove("timeStamp");
    let server = serve(ResponseTemplate::new(200).set_body_json(page(json!(bad), ""))).await;
    let (api, _) = client(&server.uri(), 1);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`timeStamp`: missing"), "{err}");
}

#[tokio::test]
async fn next_equal_to_the_page_is_refused() {
    let server = MockServer::start().await;
    let (api, _) = client(&server.uri(), 1);
    let url = api.customers_url(ACCOUNT.into(), &Default::default());
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), url.as_str())),
        )
        .mount(&server)
        .await;
    let err = api
        .get_customers_page(ACCOUNT.into(), &url)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Malformed { .. }), "{err:?}");
}

#[tokio::test]
async fn other_4xx_are_status_errors_with_an_excerpt() {
    for status in [400_u16, 403, 404] {
        let body = json!({"httpCode": status.to_string(), "httpMessage": "Nope",
            "message": "Sort field not allowed.", "errorClass": "Exception"});
        let server = serve(ResponseTemplate::new(status).set_body_json(body)).await;
        let (api, _) = client(&server.uri(), 3);
        let url = api.customers_url(ACCOUNT.into(), &Default::default());
        let err = api
            .get_customers_page(ACCOUNT.into(), &url)
            .await
            .unwrap_err();
        match &err {
            ApiError::Status {
                status: s,
                url: u,
                body,
            } => {
                assert_eq!((*s, u), (status, &url));
                assert!(body.contains("Sort field not allowed."), "{body}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!err.is_transient());
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "not retried"
        );
    }
}
