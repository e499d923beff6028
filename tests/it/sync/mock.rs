//! One precise edge case the simulator does not model: a server that refuses the between operator on
//! `timeStamp`. The tie sweep must fall back to `timeStamp=T` and still mirror every record.

use std::sync::Arc;

use lightspeed_sync::db::leases::try_acquire;
use lightspeed_sync::sync::{Engine, Kind, NoProgress, RunStatus, Stream};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::client::helpers as client_helpers;

const TIED: &str = "2026-03-01T12:00:00+00:00";

fn customer(id: u64) -> Value {
    json!({"customerID": id.to_string(), "firstName": "Zoë", "lastName": "O'Brien", "title": "",
           "company": "", "archived": "false", "createTime": "2026-01-01T00:00:00+00:00", "timeStamp": TIED})
}

fn page(ids: std::ops::Range<u64>, next: &str) -> Value {
    json!({"@attributes": {"next": next, "previous": ""}, "Customer": ids.map(customer).collect::<Vec<_>>()})
}

#[sqlx::test]
async fn a_refused_between_operator_falls_back_to_equality_in_the_tie_sweep(pool: PgPool) {
    let server = MockServer::start().await;
    let base = server.uri();
    let account = client_helpers::ACCOUNT;
    let list = format!("/API/V3/Account/{account}/Customer.json");
    // 150 customers share one stamp: the first page is full of ties and says there is no next page.
    Mock::given(method("GET"))
        .and(path(list.as_str()))
        .and(query_param("sort", "timeStamp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1..101, "")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(list.as_str()))
        .and(query_param("timeStamp", ">,2026-03-01T12:00:00-00:00"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(0..0, "")))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    let eq = "=,2026-03-01T12:00:00-00:00";
    Mock::given(method("GET")).and(path(list.as_str())).and(query_param("sort", "customerID"))
        .and(query_param("timeStamp", "><,2026-03-01T12:00:00-00:00,2026-03-01T12:00:00-00:00"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"httpCode": "400",
            "httpMessage": "Bad Request", "message": "operator not supported", "errorClass": "Exception"})))
        .expect(1)
        .mount(&server)
        .await;
    let second = format!(
        "{base}{list}?sort=customerID&timeStamp=%3D%2C2026-03-01T12%3A00%3A00-00%3A00&after=WzEwMF0%3D"
    );
    Mock::given(method("GET"))
        .and(path(list.as_str()))
        .and(query_param("timeStamp", eq))
        .and(query_param("after", "WzEwMF0="))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(101..151, "")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(list.as_str()))
        .and(query_param("timeStamp", eq))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1..101, &second)))
        .expect(1)
        .mount(&server)
        .await;

    // The definitions a first run walks after the customers: none.
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"/(Customer/CustomField|CustomerType)\.json$",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"@attributes":{"next":"","previous":""}}"#),
        )
        .mount(&server)
        .await;
    let (api, _tokens) = client_helpers::client(&base, 2);
    let engine = Engine {
        pool: pool.clone(),
        api,
        page_size: 100,
        overlap: std::time::Duration::from_secs(120),
        replica: "mock".into(),
        progress: Arc::new(NoProgress),
        mirror: Default::default(),
    };
    let lease = try_acquire(
        &pool,
        account.into(),
        "mock",
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap()
    .unwrap();
    let report = engine
        .run(
            &lease,
            Stream::Customers,
            Kind::Incremental,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 150);
}
