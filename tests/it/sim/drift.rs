//! The simulator cannot drift from the real API unnoticed: the shapes of its Account list, Account
//! detail and Customer records (keys, string scalars, one-or-many, `""` empties) are compared with
//! those of every recording and documentation sample in `../shared/recorded/`. A difference fails
//! this test unless `docs/simulator.md` explains it in its table "Differences from the recordings".

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::sim::helpers::{cfg, records, start};

/// path → kinds seen there (`object`, `string`, `""`, `number`, `boolean`, `null`).
type Shapes = BTreeMap<String, BTreeSet<&'static str>>;

fn add(v: &Value, path: &str, out: &mut Shapes) {
    let kind = match v {
        Value::Object(map) => {
            for (k, v) in map {
                // Every relation the mirror keeps is compared; `Discount` and `TaxCategory` are not:
                // the simulator renders neither (docs/simulator.md) and the mirror keeps only their IDs.
                if path == "Customer" && matches!(k.as_str(), "Discount" | "TaxCategory") {
                    continue;
                }
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                add(v, &sub, out);
            }
            "object"
        }
        // One or many: the entries of an array stand where a single object would.
        Value::Array(items) => {
            for item in items {
                add(item, path, out);
            }
            return;
        }
        Value::String(s) if s.is_empty() => "\"\"",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    };
    out.entry(path.to_string()).or_default().insert(kind);
}

/// `""` is its own kind only where an object also occurs (an empty container); elsewhere it is an
/// empty string scalar.
fn normalize(a: &mut Shapes, b: &mut Shapes) {
    let paths: BTreeSet<String> = a.keys().chain(b.keys()).cloned().collect();
    for p in paths {
        let object = a.get(&p).is_some_and(|k| k.contains("object"))
            || b.get(&p).is_some_and(|k| k.contains("object"));
        if object {
            continue;
        }
        for side in [&mut *a, &mut *b] {
            if let Some(kinds) = side.get_mut(&p)
                && kinds.remove("\"\"")
            {
                kinds.insert("string");
            }
        }
    }
}

fn differences(mut sim: Shapes, mut recorded: Shapes) -> BTreeSet<String> {
    normalize(&mut sim, &mut recorded);
    let mut out = BTreeSet::new();
    for (path, kinds) in &recorded {
        match sim.get(path) {
            None => {
                out.insert(format!("{path}: missing in the simulator"));
            }
            Some(s) => {
                for k in kinds.difference(s) {
                    out.insert(format!("{path}: the simulator never sends {k}"));
                }
            }
        }
    }
    for (path, kinds) in &sim {
        match recorded.get(path) {
            None => {
                out.insert(format!("{path}: not in any recording"));
            }
            Some(r) => {
                for k in kinds.difference(r) {
                    out.insert(format!("{path}: no recording sends {k}"));
                }
            }
        }
    }
    out
}

use crate::common::recorded_json as shared;

fn one_or_many(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![v.clone()],
        _ => Vec::new(),
    }
}

/// Every customer record of the recordings and samples, at its place: list bodies and single GETs
/// (`Customer`), and customers embedded in a `Sale`.
fn recorded_customers() -> Vec<Value> {
    let mut out = Vec::new();
    for file in crate::common::CUSTOMER_RECORDINGS {
        out.extend(one_or_many(&shared(file)["Customer"]));
    }
    // Not `doc-samples/displaytemplate-sale.json`: a display template adds computed `m` fields
    // to its customer, which no Customer endpoint sends (the contract tests still read it).
    for file in [
        "mp-2016-sale-list-offset100.json",
        "doc-samples/sale-customer-6.json",
    ] {
        for sale in one_or_many(&shared(file)["Sale"]) {
            if let Some(c) = sale.get("Customer") {
                out.push(c.clone());
            }
        }
    }
    out
}

/// The rows of the table "Differences from the recordings" in docs/simulator.md, as
/// "`path`: difference".
fn explained() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/simulator.md"),
    )
    .unwrap();
    let section = doc
        .split("## Differences from the recordings")
        .nth(1)
        .expect("docs/simulator.md has a section \"Differences from the recordings\"");
    // The first table of the section.
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            format!("{}: {}", cells[1].trim_matches('`'), cells[2])
        })
        .collect()
}

#[tokio::test]
async fn simulator_shapes_match_the_recordings_or_the_docs_explain_why() {
    let mut sim_cfg = cfg(400);
    sim_cfg.accounts = 2;
    let ctx = start(sim_cfg).await;
    let base = ctx.sim.base_url();

    let mut sim = Shapes::new();
    let list = ctx.json(&format!("{base}/API/V3/Account.json")).await;
    add(&list["Account"], "Account", &mut sim);
    for id in ctx.sim.account_ids() {
        let token = ctx.sim.issue_tokens(id).access_token;
        let detail: Value = ctx
            .http
            .get(format!("{base}/API/V3/Account/{id}.json"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        add(&detail, "AccountDetail", &mut sim);
    }
    let customers = ctx
        .walk(&ctx.url(
            "Customer.json?archived=true&limit=100&load_relations=%5B%22Contact%22%2C%22CustomerType%22%2C\
             %22Note%22%2C%22CreditAccount%22%2C%22Tags%22%2C%22CustomFieldValues%22%5D",
        ))
        .await;
    assert!(customers.len() >= 400, "{}", customers.len());
    for c in &customers {
        add(c, "Customer", &mut sim);
    }
    // A single GET answers with the same record shape.
    let one = ctx.json(&ctx.url("Customer/3.json")).await;
    assert!(records(&one).len() == 1);

    let mut recorded = Shapes::new();
    for file in [
        "mp-2016-account-list.json",
        "mp-2016-account-list-bucket-limits.json",
        "mp-2015-account-list-bucket-180.json",
        "mp-2015-account-list-117102.json",
    ] {
        add(&shared(file)["Account"], "Account", &mut recorded);
    }
    add(
        &shared("doc-samples/account-detail.json"),
        "AccountDetail",
        &mut recorded,
    );
    for c in recorded_customers() {
        add(&c, "Customer", &mut recorded);
    }

    let found = differences(sim, recorded);
    let explained = explained();
    // A row whose path ends in `*` explains that difference at the path and every path under it.
    let covers = |row: &String, d: &String| -> bool {
        match row.split_once("*: ") {
            Some((prefix, what)) => d
                .split_once(": ")
                .is_some_and(|(path, w)| path.starts_with(prefix) && w == what),
            None => row == d,
        }
    };
    let unexplained: Vec<&String> = found
        .iter()
        .filter(|d| !explained.iter().any(|row| covers(row, d)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "differences between the simulator and ../shared/recorded/ that docs/simulator.md does \
         not explain (add a row to its table, or fix the simulator):\n{}",
        unexplained
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stale: Vec<&String> = explained
        .iter()
        .filter(|row| !found.iter().any(|d| covers(row, d)))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/simulator.md explains differences that no longer exist: {stale:?}"
    );
}

#[test]
fn a_difference_in_kind_or_key_is_found() {
    let mut sim = Shapes::new();
    add(
        &serde_json::json!({"customerID": 1, "Contact": {"Emails": ""}, "Discount": {"x": "1"}}),
        "Customer",
        &mut sim,
    );
    let mut recorded = Shapes::new();
    add(
        &serde_json::json!({"customerID": "1", "Contact": {"Emails": {"ContactEmail": [{"address": "a"}]}}, "noteID": "0"}),
        "Customer",
        &mut recorded,
    );
    let d = differences(sim, recorded);
    assert!(
        d.contains("Customer.customerID: no recording sends number"),
        "{d:?}"
    );
    assert!(
        d.contains("Customer.customerID: the simulator never sends string"),
        "{d:?}"
    );
    assert!(
        d.contains("Customer.noteID: missing in the simulator"),
        "{d:?}"
    );
    assert!(
        d.contains("Customer.Contact.Emails: the simulator never sends object"),
        "{d:?}"
    );
    assert!(d.contains("Customer.Contact.Emails.ContactEmail.address: missing in the simulator"));
    assert!(
        !d.iter().any(|l| l.contains("Discount")),
        "Discount and TaxCategory are not compared"
    );
}
