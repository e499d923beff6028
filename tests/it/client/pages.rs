//! Typed pages: pagination by `next` verbatim, one-object and empty pages, headers sent, accounts.

use lightspeed_sync::lightspeed::query::{Archived, CustomerQuery, Filter, Sort, SortField};
use serde_json::json;
use url::Url;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::client::helpers::{ACCOUNT, client, customer, page};

fn customers_path() -> String {
    format!("/API/V3/Account/{ACCOUNT}/Customer.json")
}

#[tokio::test]
async fn walks_three_pages_following_next_verbatim() {
    let server = MockServer::start().await;
    let base = server.uri();
    let p = customers_path();
    // Cursors as the API writes them; `next` also carries parameters we never sent.
    let next1 = format!(
        "{base}{p}?sort=customerID&limit=2&load_relations=%5B%22Contact%22%5D&after=WzJd&x=1"
    );
    let next2 = format!(
        "{base}{p}?sort=customerID&limit=2&load_relations=%5B%22Contact%22%5D&after=WzRd&x=2"
    );
    for (after, records, next) in [
        (None, json!([customer(1), customer(2)]), next1.as_str()),
        (
            Some("WzJd"),
            json!([customer(3), customer(4)]),
            next2.as_str(),
        ),
        (Some("WzRd"), json!(customer(5)), ""),
    ] {
        let mock = Mock::given(method("GET")).and(path(p.as_str()));
        let mock = match after {
            Some(a) => mock.and(query_param("after", a)),
            None => mock.and(query_param_is_missing("after")),
        };
        mock.respond_with(ResponseTemplate::new(200).set_body_json(page(records, next)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let (api, _) = client(&base, 3);
    let query = CustomerQuery {
        limit: Some(2),
        sort: Some(Sort {
            field: SortField::CustomerId,
            descending: false,
        }),
        load_contact: true,
        ..Default::default()
    };
    let mut url = Some(api.customers_url(ACCOUNT.into(), &query));
    let (mut ids, mut urls) = (Vec::new(), Vec::new());
    while let Some(u) = url {
        let page = api.get_customers_page(ACCOUNT.into(), &u).await.unwrap();
        assert_eq!(page.url, u);
        assert_eq!(page.stats.requests, 1);
        ids.extend(page.records.iter().map(|c| c.customer_id));
        urls.push(u);
        url = page.next;
    }
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert_eq!(urls[1].as_str(), next1, "next is followed verbatim");
    assert_eq!(urls[2].as_str(), next2);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests[1].url.query(), Url::parse(&next1).unwrap().query());
}

#[tokio::test]
async fn one_object_page_and_empty_page() {
    let server = MockServer::start().await;
    Mock::given(query_param("archived", "only"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(customer(7), "")))
        .mount(&server)
        .await;
    Mock::given(query_param("archived", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(serde_json::Value::Null, "")))
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 3);
    let only = CustomerQuery {
        archived: Some(Archived::Only),
        ..Default::default()
    };
    let one = api
        .get_customers_page(ACCOUNT.into(), &api.customers_url(ACCOUNT.into(), &only))
        .await
        .unwrap();
    assert_eq!(one.records.len(), 1);
    assert_eq!(one.records[0].customer_id, 7);
    assert!(one.records[0].contact.as_ref().unwrap().phones.is_empty());
    assert_eq!(one.next, None);
    let all = CustomerQuery {
        archived: Some(Archived::Include),
        ..Default::default()
    };
    let none = api
        .get_customers_page(ACCOUNT.into(), &api.customers_url(ACCOUNT.into(), &all))
        .await
        .unwrap();
    assert!(none.records.is_empty() && none.next.is_none());
}

#[tokio::test]
async fn sends_accept_json_bearer_token_and_encoded_filters() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(customers_path()))
        .and(header("accept", "application/json"))
        .and(header("authorization", "Bearer token-1"))
        .and(query_param("timeStamp", ">=,2026-01-01T00:00:00-00:00"))
        .and(query_param("load_relations", r#"["Contact"]"#))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(json!([customer(1)]), "")))
        .expect(1)
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 1);
    let since = "2026-01-01T00:00:00Z".parse().unwrap();
    let query = CustomerQuery {
        load_contact: true,
        time_stamp: Some(Filter::Ge(since)),
        ..Default::default()
    };
    let url = api.customers_url(ACCOUNT.into(), &query);
    assert!(
        url.as_str()
            .contains("timeStamp=%3E%3D%2C2026-01-01T00:00:00-00:00"),
        "{url}"
    );
    let page = api.get_customers_page(ACCOUNT.into(), &url).await.unwrap();
    assert_eq!(page.records.len(), 1);
    let ua = &server.received_requests().await.unwrap()[0].headers["user-agent"];
    assert!(ua.to_str().unwrap().starts_with("lightspeed-sync/"));
}

#[tokio::test]
async fn accounts_and_account_detail() {
    let server = MockServer::start().await;
    Mock::given(path("/API/V3/Account.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@attributes": {"count": "1"},
            "Account": {"accountID": ACCOUNT.to_string(), "name": "Kit Kraft Sandbox",
                "link": {"@attributes": {"href": format!("/API/V3/Account/{ACCOUNT}")}}}
        })))
        .mount(&server)
        .await;
    Mock::given(path(format!("/API/V3/Account/{ACCOUNT}.json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "@attributes": {"systemCustomerID": "5"},
            "Account": {"accountID": ACCOUNT.to_string(), "name": "Kit Kraft Sandbox", "status": "customer",
                "defaultCurrency": {"code": "USD", "symbol": "$"}}
        })))
        .mount(&server)
        .await;
    let (api, _) = client(&server.uri(), 1);
    let accounts = api.get_accounts(ACCOUNT.into()).await.unwrap();
    assert_eq!(accounts.value.len(), 1);
    assert_eq!(
        (
            accounts.value[0].account_id,
            accounts.value[0].name.as_str()
        ),
        (ACCOUNT.into(), "Kit Kraft Sandbox")
    );
    let detail = api.get_account_detail(ACCOUNT.into()).await.unwrap();
    assert_eq!(detail.value.status.as_deref(), Some("customer"));
    assert_eq!(detail.value.currency_code.as_deref(), Some("USD"));
    assert_eq!(detail.stats.requests, 1);
}
