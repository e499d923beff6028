//! The customer relations and the definitions the simulator serves (issue 13): their shapes, the
//! drip surcharge of each relation in the cost header, deterministic data per seed, and relation
//! edits with and without a `timeStamp` bump.

use lightspeed_sync::sim::{Mutation, Relation};
use serde_json::Value;

use crate::sim::helpers::{cfg, records, start};

const ALL: &str = "%5B%22Contact%22%2C%22CustomerType%22%2C%22Note%22%2C%22CreditAccount%22%2C%22Tags%22%2C%22CustomFieldValues%22%5D";

/// One-or-many under `key`.
fn many(v: &Value) -> Vec<Value> {
    match v {
        Value::Null => vec![],
        Value::Array(a) => a.clone(),
        o => vec![o.clone()],
    }
}

/// Every `key` record of a list, following `next`; also checks that pages hold at most `limit`.
async fn walk(ctx: &crate::sim::helpers::Ctx, first: &str, key: &str, limit: usize) -> Vec<Value> {
    let (mut url, mut out) = (first.to_string(), Vec::new());
    for _ in 0..100 {
        let page = ctx.json(&url).await;
        let got = many(&page[key]);
        assert!(got.len() <= limit, "{url}: {} records", got.len());
        out.extend(got);
        match page["@attributes"]["next"].as_str() {
            Some("") => return out,
            Some(next) => url = next.to_string(),
            None => panic!("no next in {page}"),
        }
    }
    panic!("pagination did not end");
}

fn cost(resp: &reqwest::Response) -> f64 {
    resp.headers()["x-ls-api-request-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn each_relation_adds_its_surcharge_to_the_reported_cost() {
    let mut c = cfg(20);
    c.rate_limits = true;
    c.bucket_size = 1_000.0;
    let ctx = start(c).await;
    let cases = [
        ("", 1.0),
        ("&load_relations=%5B%22Contact%22%5D", 1.2),
        ("&load_relations=%5B%22Note%22%2C%22Tags%22%5D", 1.6),
        (&format!("&load_relations={ALL}") as &str, 2.6),
        // `all` is every relation but CustomFieldValues (6 one-to-one, Tags).
        ("&load_relations=all", 1.0 + 6.0 * 0.2 + 0.4),
    ];
    for (q, want) in cases {
        let resp = ctx
            .get(&ctx.url(&format!("Customer.json?limit=5{q}")))
            .await;
        assert_eq!(resp.status(), 200);
        assert!((cost(&resp) - want).abs() < 1e-9, "{q}: {}", cost(&resp));
    }
    let one = ctx
        .get(&ctx.url("Customer/3.json?load_relations=%5B%22Contact%22%2C%22Tags%22%5D"))
        .await;
    assert!(
        (cost(&one) - 1.3).abs() < 1e-9,
        "single record: {}",
        cost(&one)
    );
}

#[tokio::test]
async fn relations_come_in_the_documented_shapes() {
    let ctx = start(cfg(400)).await;
    let all = ctx
        .walk(&ctx.url(&format!(
            "Customer.json?archived=true&limit=100&load_relations={ALL}"
        )))
        .await;
    assert_eq!(all.len(), 400);
    let (mut tags_obj, mut choices, mut deleted, mut credit, mut types) = (0, 0, 0, 0, 0);
    for c in &all {
        let note = &c["Note"];
        assert!(
            note["note"].is_string() && note["isPublic"].is_string(),
            "{note}"
        );
        match &c["Tags"] {
            Value::String(s) => assert_eq!(s, ""),
            Value::Object(t) => {
                tags_obj += 1;
                assert!(t["tag"].is_string() || t["tag"].is_array(), "{t:?}");
            }
            other => panic!("Tags: {other}"),
        }
        if c["creditAccountID"] != "0" {
            credit += 1;
            assert_eq!(c["CreditAccount"]["creditAccountID"], c["creditAccountID"]);
            assert!(c["CreditAccount"]["balance"].is_string());
        } else {
            assert!(c.get("CreditAccount").is_none());
        }
        if c["customerTypeID"] != "0" {
            types += 1;
            assert_eq!(c["CustomerType"]["customerTypeID"], c["customerTypeID"]);
        }
        if let Value::Object(v) = &c["CustomFieldValues"] {
            for value in many(&v["CustomFieldValue"]) {
                assert!(value["customFieldID"].is_string() && value["type"].is_string());
                if value["deleted"] == "true" {
                    deleted += 1;
                }
                if value["type"].as_str().unwrap().ends_with("_choice") {
                    choices += 1;
                    assert!(value["value"].is_object(), "{value}");
                } else {
                    assert!(value["value"].is_string(), "{value}");
                }
            }
        } else {
            assert_eq!(c["CustomFieldValues"], "");
        }
    }
    assert!(tags_obj > 50 && choices > 20 && deleted > 0 && credit > 10 && types > 20);
    // Not loaded, not sent.
    let plain = records(&ctx.json(&ctx.url("Customer.json?limit=10")).await);
    assert!(
        plain
            .iter()
            .all(|c| c.get("Note").is_none() && c.get("Tags").is_none())
    );
}

#[tokio::test]
async fn definitions_are_paged_by_id() {
    let ctx = start(cfg(10)).await;
    let fields = walk(
        &ctx,
        &ctx.url("Customer/CustomField.json?limit=5&sort=customFieldID"),
        "CustomField",
        5,
    )
    .await;
    let kinds: std::collections::BTreeSet<&str> =
        fields.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(fields.len(), 12);
    assert_eq!(kinds.len(), 11, "one field of every type: {kinds:?}");
    let types = walk(
        &ctx,
        &ctx.url("CustomerType.json?limit=2"),
        "CustomerType",
        2,
    )
    .await;
    assert_eq!(types.len(), 5);
    ctx.sim
        .mutate(ctx.account, Mutation::DeleteCustomerType(2))
        .unwrap();
    let types = walk(&ctx, &ctx.url("CustomerType.json"), "CustomerType", 100).await;
    assert_eq!(types.len(), 4, "a deleted type is gone for good");
}

#[tokio::test]
async fn relation_edits_move_the_customer_timestamp_only_when_told() {
    let ctx = start(cfg(50)).await;
    for bump in [false, true] {
        ctx.sim.set_relation_edits_bump_timestamp(bump);
        for (id, relation) in [
            (3, Relation::Note),
            (4, Relation::CustomField),
            (5, Relation::CreditBalance),
            (6, Relation::Tags),
        ] {
            let before = ctx.sim.truth(ctx.account)[id as usize - 1].clone();
            ctx.sim
                .mutate(ctx.account, Mutation::RelationEdit { id, relation })
                .unwrap();
            let after = ctx.sim.truth(ctx.account)[id as usize - 1].clone();
            assert_ne!(before, after, "{relation:?} changed something");
            assert_eq!(
                after.updated != before.updated,
                bump,
                "{relation:?}, bump {bump}"
            );
        }
    }
}
