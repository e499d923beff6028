//! The wire quirks of §4: object vs array vs absent, strings everywhere, `"0"` and `""`.

use serde_json::Value;

use crate::sim::helpers::{cfg, ids, records, start};

#[tokio::test]
async fn one_record_is_an_object_several_an_array_none_absent() {
    let ctx = start(cfg(50)).await;
    let one = ctx
        .json(&ctx.url("Customer.json?customerID=3&archived=true"))
        .await;
    assert!(one["Customer"].is_object(), "{one}");
    let many = ctx.json(&ctx.url("Customer.json?limit=5")).await;
    assert!(many["Customer"].is_array());
    let none = ctx.json(&ctx.url("Customer.json?customerID=999999")).await;
    assert_eq!(
        none,
        serde_json::json!({"@attributes": {"next": "", "previous": ""}})
    );
}

/// The customer with `n` entries in a contact list, per the ground truth.
fn find(ctx: &crate::sim::helpers::Ctx, n: usize, f: CountFn) -> u64 {
    ctx.sim
        .truth(ctx.account)
        .iter()
        .find(|c| f(c) == n)
        .unwrap_or_else(|| panic!("a customer with {n}"))
        .id
}

type CountFn = fn(&lightspeed_sync::sim::TruthCustomer) -> usize;

async fn contact_of(ctx: &crate::sim::helpers::Ctx, id: u64) -> Value {
    let page = ctx
        .json(&ctx.url(&format!(
            "Customer/{id}.json?load_relations=%5B%22Contact%22%5D"
        )))
        .await;
    page["Customer"]["Contact"].clone()
}

#[tokio::test]
async fn contact_containers_are_empty_string_object_or_array() {
    let ctx = start(cfg(300)).await;
    let cases: [(&str, &str, CountFn); 3] = [
        ("Emails", "ContactEmail", |c| c.emails.len()),
        ("Phones", "ContactPhone", |c| c.phones.len()),
        ("Addresses", "ContactAddress", |c| c.addresses.len()),
    ];
    for (outer, inner, count) in cases {
        if outer == "Addresses" {
            // No address is `""` (the docs' Sale sample) or one all-empty `ContactAddress` (the
            // 2019 recording, the docs' create sample): both shapes are served.
            let truth = ctx.sim.truth(ctx.account);
            let none: Vec<u64> = truth
                .iter()
                .filter(|c| c.addresses.is_empty())
                .map(|c| c.id)
                .collect();
            let mut shapes = std::collections::BTreeSet::new();
            for id in none.iter().take(20) {
                let a = contact_of(&ctx, *id).await[outer].clone();
                if a == "" {
                    shapes.insert("empty string");
                } else {
                    let blank = &a[inner];
                    assert!(blank.as_object().unwrap().values().all(|v| v == ""), "{a}");
                    assert_eq!(blank.as_object().unwrap().len(), 8, "{a}");
                    shapes.insert("blank address");
                }
            }
            assert_eq!(shapes.len(), 2, "both shapes of no address: {shapes:?}");
        } else {
            assert_eq!(
                contact_of(&ctx, find(&ctx, 0, count)).await[outer],
                "",
                "{outer} empty"
            );
        }
        assert!(
            contact_of(&ctx, find(&ctx, 1, count)).await[outer][inner].is_object(),
            "{outer} one"
        );
        assert!(
            contact_of(&ctx, find(&ctx, 2, count)).await[outer][inner].is_array(),
            "{outer} several"
        );
    }
}

#[tokio::test]
async fn numbers_and_booleans_are_strings_and_empty_values_are_zero_or_empty() {
    let ctx = start(cfg(200)).await;
    let all = ctx
        .walk(&ctx.url("Customer.json?archived=true&load_relations=[\"Contact\"]"))
        .await;
    for r in &all {
        for key in [
            "customerID",
            "creditAccountID",
            "customerTypeID",
            "discountID",
            "taxCategoryID",
        ] {
            assert!(
                r[key].as_str().is_some_and(|s| s.parse::<u64>().is_ok()),
                "{key} in {r}"
            );
        }
        assert!(matches!(r["archived"].as_str(), Some("true" | "false")));
        assert!(matches!(
            r["Contact"]["noEmail"].as_str(),
            Some("true" | "false")
        ));
        assert!(r["title"].is_string() && r.get("Contact").is_some());
        assert!(r.get("contactID").is_none());
    }
    assert!(
        all.iter()
            .any(|r| r["title"] == "" && r["discountID"] == "0")
    );
    assert!(
        all.iter().any(|r| r.get("dob").is_none()),
        "dob sometimes absent"
    );
    assert!(all.iter().any(|r| r["dob"] == ""), "dob sometimes empty");
    assert!(all.iter().any(|r| r["Contact"]["Websites"] == ""));
}

#[tokio::test]
async fn timestamps_have_a_numeric_offset_and_create_time_precedes_time_stamp() {
    let ctx = start(cfg(100)).await;
    for r in ctx.walk(&ctx.url("Customer.json?archived=true")).await {
        let (c, t) = (
            r["createTime"].as_str().unwrap(),
            r["timeStamp"].as_str().unwrap(),
        );
        assert!(t.ends_with("+00:00") && t.len() == 25, "{t}");
        assert!(c <= t, "createTime {c} after timeStamp {t}");
    }
}

#[tokio::test]
async fn contact_is_only_present_when_loaded() {
    let ctx = start(cfg(10)).await;
    let plain = ctx.json(&ctx.url("Customer.json")).await;
    assert!(records(&plain).iter().all(|r| r.get("Contact").is_none()));
    let all = ctx.json(&ctx.url("Customer.json?load_relations=all")).await;
    assert!(records(&all).iter().all(|r| r["Contact"].is_object()));
}

#[tokio::test]
async fn single_customer_has_a_count_and_missing_one_is_a_classic_404() {
    let ctx = start(cfg(10)).await;
    let one = ctx.json(&ctx.url("Customer/4.json")).await;
    assert_eq!(one["@attributes"]["count"], "1");
    assert_eq!(one["Customer"]["customerID"], "4");
    let resp = ctx.get(&ctx.url("Customer/4000.json")).await;
    assert_eq!(resp.status(), 404);
    let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["httpCode"], "404");
    assert_eq!(body["httpMessage"], "Not Found");
}

#[tokio::test]
async fn account_list_is_one_object_and_detail_has_the_documented_fields() {
    let ctx = start(cfg(1)).await;
    let list = ctx
        .json(&format!("{}/API/V3/Account.json", ctx.sim.base_url()))
        .await;
    let id = ctx.account.to_string();
    assert_eq!(list["@attributes"]["count"], "1");
    assert_eq!(list["Account"]["accountID"], id.as_str());
    assert_eq!(
        list["Account"]["link"]["@attributes"]["href"],
        format!("/API/V3/Account/{id}")
    );
    let detail = ctx
        .json(&format!("{}/API/V3/Account/{id}.json", ctx.sim.base_url()))
        .await;
    // The documented shape (recorded/doc-samples/account-detail.json): fields at the top level,
    // no `Account` key, no `accountID`.
    assert!(
        detail.get("Account").is_none() && detail.get("accountID").is_none(),
        "{detail}"
    );
    assert_detail_fields(&detail);
    assert!(detail["@attributes"]["systemCustomerID"].is_string());

    let mut wrapped_cfg = cfg(1);
    wrapped_cfg.wrapped_account_detail = true;
    let ctx = start(wrapped_cfg).await;
    let id = ctx.account.to_string();
    let wrapped = ctx
        .json(&format!("{}/API/V3/Account/{id}.json", ctx.sim.base_url()))
        .await;
    assert_eq!(wrapped["@attributes"]["count"], "1");
    assert_eq!(wrapped["Account"]["accountID"], id.as_str());
    assert_detail_fields(&wrapped["Account"]);
}

fn assert_detail_fields(a: &Value) {
    for key in [
        "status",
        "name",
        "employeeCount",
        "employeeLimit",
        "uniqueSubscriptionIdentifier",
    ] {
        assert!(a[key].is_string(), "{key}: {a}");
    }
    assert!(
        a["defaultCurrency"]["code"].is_string()
            && a["purchasingCurrencies"]["purchasingCurrency"].is_object()
                | a["purchasingCurrencies"]["purchasingCurrency"].is_array()
    );
}

#[tokio::test]
async fn accept_xml_wins_over_the_json_suffix_and_plain_paths_default_to_xml() {
    let ctx = start(cfg(3)).await;
    let xml = ctx
        .http
        .get(ctx.url("Customer.json"))
        .bearer_auth(&ctx.token)
        .header("Accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert!(
        xml.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml")
    );
    let text = xml.text().await.unwrap();
    assert!(
        text.contains("<Customers next=") && text.contains("<customerID>1</customerID>"),
        "{text}"
    );
    let bare = ctx.get(&ctx.url("Customer")).await.text().await.unwrap();
    assert!(bare.starts_with("<?xml"), "{bare}");
    let json = ctx
        .http
        .get(ctx.url("Customer"))
        .bearer_auth(&ctx.token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(json.text().await.unwrap().starts_with('{'));
}

#[tokio::test]
async fn unicode_names_arrive_intact() {
    let ctx = start(cfg(300)).await;
    let truth = ctx.sim.truth(ctx.account);
    let wire = ctx.walk(&ctx.url("Customer.json?archived=true")).await;
    assert_eq!(ids(&wire), truth.iter().map(|c| c.id).collect::<Vec<_>>());
    for (w, t) in wire.iter().zip(&truth) {
        assert_eq!(w["lastName"], t.last_name.as_str());
    }
    assert!(truth.iter().any(|c| c.last_name == "O'Brien"
        || c.first_name.contains('🌸')
        || c.last_name.contains('王')));
}
