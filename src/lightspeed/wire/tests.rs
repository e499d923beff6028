//! Envelope tests: one object vs array vs absent key, `next`/`previous`, errors with positions, speed.

use serde_json::json;
use url::Url;

use super::*;

fn base() -> Url {
    Url::parse("https://api.lightspeedapp.com/API/V3/Account/1/Customer.json?limit=100").unwrap()
}

fn customer(id: u64) -> serde_json::Value {
    json!({
        "customerID": id.to_string(), "firstName": format!("First{id}"), "lastName": "Last", "title": "",
        "company": "ACME", "companyRegistrationNumber": "", "vatNumber": "", "dob": "",
        "createTime": "2019-04-29T08:40:04+00:00", "timeStamp": "2026-01-02T03:04:05+00:00", "archived": "false",
        "creditAccountID": "0", "customerTypeID": "3", "discountID": "0", "taxCategoryID": "0",
        "Contact": {
            "custom": "", "noEmail": "false", "noPhone": "true", "noMail": "false",
            "Addresses": {"ContactAddress": {"address1": "1 Main St", "address2": "", "city": "Springfield",
                "state": "IL", "zip": "62701", "country": "United States", "countryCode": "US", "stateCode": "IL"}},
            "Phones": {"ContactPhone": [{"number": "555-0100", "useType": "Home"},
                {"number": "555-0101", "useType": "Mobile"}]},
            "Emails": {"ContactEmail": {"address": format!("c{id}@example.com"), "useType": "Primary"}},
            "Websites": "", "timeStamp": "2026-01-02T03:04:05+00:00"
        }
    })
}

fn page(records: serde_json::Value, next: &str) -> Vec<u8> {
    let mut v = json!({"@attributes": {"next": next, "previous": ""}});
    if !records.is_null() {
        v["Customer"] = records;
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn array_page_with_next() {
    let next = "https://api.lightspeedapp.com/API/V3/Account/1/Customer.json?sort=customerID&limit=100&after=WzEwNV0%3D";
    let body = page(json!([customer(1), customer(2)]), next);
    let p = parse_list::<Customer>(&body, &base()).unwrap();
    assert_eq!(
        p.records.iter().map(|c| c.customer_id).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(p.next.unwrap().as_str(), next, "next is kept verbatim");
    assert_eq!(p.previous, None);
}

#[test]
fn one_object_page() {
    let p = parse_list::<Customer>(&page(customer(9), ""), &base()).unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.records[0].customer_id, 9);
    assert_eq!(p.next, None);
}

#[test]
fn empty_page_has_no_key() {
    let p = parse_list::<Customer>(&page(serde_json::Value::Null, ""), &base()).unwrap();
    assert!(p.records.is_empty());
    let p = parse_list::<Customer>(br#"{"@attributes":{"count":"0"}}"#, &base()).unwrap();
    assert!(p.records.is_empty() && p.next.is_none());
    let p = parse_list::<Customer>(
        br#"{"@attributes":{"next":"","previous":""},"Customer":""}"#,
        &base(),
    )
    .unwrap();
    assert!(p.records.is_empty());
}

#[test]
fn relative_next_is_resolved() {
    let body = page(
        json!([customer(1)]),
        "/API/V3/Account/1/Customer.json?after=WzFd",
    );
    let p = parse_list::<Customer>(&body, &base()).unwrap();
    assert_eq!(
        p.next.unwrap().as_str(),
        "https://api.lightspeedapp.com/API/V3/Account/1/Customer.json?after=WzFd"
    );
}

#[test]
fn bad_record_names_position_id_and_field() {
    let mut bad = customer(3);
    bad["timeStamp"] = json!("last tuesday");
    let body = page(json!([customer(1), customer(2), bad]), "");
    let err = parse_list::<Customer>(&body, &base()).unwrap_err();
    assert_eq!(err.position, Some(2));
    assert_eq!(err.record_id.as_deref(), Some("3"));
    assert_eq!(err.field.as_deref(), Some("timeStamp"));
    let text = err.to_string();
    assert!(
        text.contains("Customer record #2") && text.contains("`timeStamp`"),
        "{text}"
    );

    let body = page(json!([customer(1), "oops"]), "");
    assert_eq!(
        parse_list::<Customer>(&body, &base()).unwrap_err().position,
        Some(1)
    );
}

#[test]
fn not_json_or_wrong_shape() {
    assert!(
        parse_list::<Customer>(b"<html>502 Bad Gateway</html>", &base())
            .unwrap_err()
            .problem
            .contains("not valid JSON")
    );
    assert!(parse_list::<Customer>(b"[]", &base()).is_err());
    assert!(parse_list::<Customer>(br#"{"Customer": 5}"#, &base()).is_err());
    assert!(
        parse_list::<Customer>(br#"{"@attributes":{"next":"http://[oops/"}}"#, &base()).is_err()
    );
}

#[test]
fn single_record() {
    let body = serde_json::to_vec(&json!({"@attributes": {"count": "1"}, "Customer": customer(4)}))
        .unwrap();
    assert_eq!(parse_single::<Customer>(&body).unwrap().customer_id, 4);
    assert!(parse_single::<Customer>(br#"{"@attributes":{"count":"0"}}"#).is_err());
}

/// Prints the time to parse a page of 100 customers with contacts (run with `--nocapture`). The
/// assertion is loose because debug builds are slow; the release figure is in the report.
#[test]
fn page_of_100_parses_fast() {
    let next = "https://api.lightspeedapp.com/API/V3/Account/1/Customer.json?after=WzEwMF0%3D";
    let body = page(json!((1..=100).map(customer).collect::<Vec<_>>()), next);
    let rounds = 50;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        let p = parse_list::<Customer>(&body, &base()).unwrap();
        assert_eq!(p.records.len(), 100);
    }
    let per_page = start.elapsed() / rounds;
    println!(
        "parse of 100 customers ({} bytes): {per_page:?} per page",
        body.len()
    );
    assert!(per_page < std::time::Duration::from_millis(50));
}
