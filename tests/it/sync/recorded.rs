//! Contract tests: every body in `../shared/recorded/` (real responses recorded against the live API,
//! and Lightspeed's documentation samples) served verbatim, with its recorded headers, to the sync
//! engine, and the mirror compared with what the file says. The expected values are read from the
//! file here, with plain `serde_json` and rules written from the fact sheet, not by the client's
//! parser, so a misreading in the client cannot hide in the oracle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lightspeed_sync::db::leases::try_acquire;
use lightspeed_sync::sync::{Engine, Kind, NoProgress, RunReport, RunStatus, Stream};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::client::helpers as client_helpers;

use crate::common::recorded_path;

fn body(name: &str) -> Vec<u8> {
    std::fs::read(recorded_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The recorded response headers of a recording (`_index.json`); none for doc samples.
fn recorded_headers(name: &str) -> Vec<(String, String)> {
    let index: Value = serde_json::from_slice(&body("_index.json")).unwrap();
    let entry = index
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == name)
        .unwrap_or_else(|| panic!("{name} is not in _index.json"));
    let Some(headers) = entry.get("headers").and_then(Value::as_object) else {
        return Vec::new();
    };
    headers
        .iter()
        // Framing and encoding headers described the recorded transfer, not this one.
        .filter(|(k, _)| {
            !matches!(
                k.to_ascii_lowercase().as_str(),
                "content-length" | "content-encoding" | "transfer-encoding" | "connection"
            )
        })
        .flat_map(|(k, vs)| {
            vs.as_array()
                .unwrap()
                .iter()
                .map(move |v| (k.clone(), v.as_str().unwrap().to_string()))
        })
        .collect()
}

/// The recorded response: status from `_index.json` (200 for doc samples), body verbatim, headers.
fn response(name: &str, status: u16) -> ResponseTemplate {
    let mut t = ResponseTemplate::new(status).set_body_bytes(body(name));
    for (k, v) in recorded_headers(name) {
        t = t.append_header(k.as_str(), v.as_str());
    }
    t
}

/// The raw text of the `Customer` embedded in each `Sale` of a body, verbatim (escapes included).
fn embedded_customers(name: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct SaleBody<'a> {
        #[serde(borrow, rename = "Sale")]
        sale: &'a serde_json::value::RawValue,
    }
    #[derive(serde::Deserialize)]
    struct Sale<'a> {
        #[serde(borrow, rename = "Customer")]
        customer: Option<&'a serde_json::value::RawValue>,
    }
    let bytes = body(name);
    let top: SaleBody<'_> = serde_json::from_slice(&bytes).unwrap();
    let sales: Vec<Sale<'_>> = match top.sale.get().trim_start().as_bytes()[0] {
        b'[' => serde_json::from_str(top.sale.get()).unwrap(),
        _ => vec![serde_json::from_str(top.sale.get()).unwrap()],
    };
    sales
        .into_iter()
        .filter_map(|s| s.customer.map(|c| c.get().to_string()))
        .collect()
}

/// One account per source: what it serves as its customer list.
struct Source {
    file: &'static str,
    account: u64,
    /// The list body served (verbatim, or a V3 envelope around embedded records).
    list: Vec<u8>,
    /// The customer records it holds, as the oracle reads them.
    records: Vec<Value>,
}

/// One-or-many, `""`/absent = none (fact sheet §4.1, §4.5), written here independently.
fn many(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(o @ Value::Object(m)) if !m.is_empty() => vec![o],
        _ => Vec::new(),
    }
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    for (i, file) in crate::common::CUSTOMER_RECORDINGS.into_iter().enumerate() {
        let list = body(file);
        let v: Value = serde_json::from_slice(&list).unwrap();
        let records = many(v.get("Customer")).into_iter().cloned().collect();
        out.push(Source {
            file,
            account: 900_001 + i as u64,
            list,
            records,
        });
    }
    let embedded = [
        "mp-2016-sale-list-offset100.json",
        "doc-samples/sale-customer-6.json",
        "doc-samples/displaytemplate-sale.json",
    ];
    for (i, file) in embedded.into_iter().enumerate() {
        let customers = embedded_customers(file);
        assert!(!customers.is_empty(), "{file} embeds no customer");
        let list = format!(
            r#"{{"@attributes":{{"next":"","previous":""}},"Customer":[{}]}}"#,
            customers.join(",")
        );
        let records = customers
            .iter()
            .map(|c| serde_json::from_str(c).unwrap())
            .collect();
        out.push(Source {
            file,
            account: 900_101 + i as u64,
            list: list.into_bytes(),
            records,
        });
    }
    out
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn opt_text(v: &Value, key: &str) -> Option<String> {
    Some(text(v, key)).filter(|s| !s.is_empty())
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

/// `"0"` (or absent) is no foreign key.
fn fk(v: &Value, key: &str) -> Option<i64> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| s.parse::<i64>().unwrap())
        .filter(|n| *n != 0)
}

/// What the mirror must hold for one record.
#[derive(Debug, PartialEq)]
struct Expected {
    names: (String, String, String, String),
    vat_and_reg: (Option<String>, Option<String>),
    archived: bool,
    times: (Option<DateTime<Utc>>, DateTime<Utc>, Option<DateTime<Utc>>),
    keys: (Option<i64>, Option<i64>, Option<i64>, Option<i64>),
    emails: Vec<(String, String)>,
    phones: Vec<(String, String)>,
    addresses: Vec<Vec<String>>,
    websites: Vec<String>,
    /// (Contact.custom, Note.note, Note.isPublic, Tags)
    relations: (
        Option<String>,
        Option<String>,
        Option<bool>,
        Option<Vec<String>>,
    ),
    /// CreditAccount: (creditAccountID, balance, creditLimit, timeStamp)
    credit: Option<(i64, String, String, Option<DateTime<Utc>>)>,
    raw: Value,
}

const ADDRESS_FIELDS: [&str; 8] = [
    "address1",
    "address2",
    "city",
    "state",
    "stateCode",
    "zip",
    "country",
    "countryCode",
];

fn expected(r: &Value) -> Expected {
    let contact = r.get("Contact");
    let entries = |outer: &str, inner: &str| -> Vec<&Value> {
        many(
            contact
                .and_then(|c| c.get(outer))
                .and_then(|o| o.get(inner)),
        )
    };
    Expected {
        names: (
            text(r, "firstName"),
            text(r, "lastName"),
            text(r, "title"),
            text(r, "company"),
        ),
        vat_and_reg: (
            opt_text(r, "vatNumber"),
            opt_text(r, "companyRegistrationNumber"),
        ),
        archived: text(r, "archived") == "true",
        times: (
            time(r, "createTime"),
            time(r, "timeStamp").expect("every record has a timeStamp"),
            time(r, "dob"),
        ),
        keys: (
            fk(r, "creditAccountID"),
            fk(r, "customerTypeID"),
            fk(r, "discountID"),
            fk(r, "taxCategoryID"),
        ),
        emails: entries("Emails", "ContactEmail")
            .iter()
            .map(|e| (text(e, "address"), text(e, "useType")))
            .collect(),
        phones: entries("Phones", "ContactPhone")
            .iter()
            .map(|p| (text(p, "number"), text(p, "useType")))
            .collect(),
        // An address whose fields are all "" is no address (docs/architecture.md).
        addresses: entries("Addresses", "ContactAddress")
            .iter()
            .map(|a| {
                ADDRESS_FIELDS
                    .iter()
                    .map(|f| text(a, f))
                    .collect::<Vec<_>>()
            })
            .filter(|a| a.iter().any(|f| !f.is_empty()))
            .collect(),
        websites: entries("Websites", "ContactWebsite")
            .iter()
            .map(|w| text(w, "url"))
            .filter(|u| !u.is_empty())
            .collect(),
        relations: (
            contact.and_then(|c| opt_text(c, "custom")),
            r.get("Note").and_then(|n| opt_text(n, "note")),
            r.get("Note").map(|n| text(n, "isPublic") == "true"),
            // Every recorded `Tags` is "" (no tags); a missing key: not loaded.
            r.get("Tags").map(|t| {
                assert_eq!(t, "", "a recording with tags: teach the oracle their shape");
                Vec::new()
            }),
        ),
        credit: r.get("CreditAccount").filter(|c| c.is_object()).map(|c| {
            (
                text(c, "creditAccountID").parse().unwrap(),
                text(c, "balance"),
                text(c, "creditLimit"),
                time(c, "timeStamp"),
            )
        }),
        raw: r.clone(),
    }
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Value,
);

type AddressRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

async fn stored(pool: &PgPool, account: u64) -> BTreeMap<u64, Expected> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT customer_id, first_name, last_name, title, company, vat_number,
                company_registration_number, archived, created_at, updated_at, dob,
                credit_account_id, customer_type_id, discount_id, tax_category_id, raw
         FROM lightspeed.customers WHERE account_id = $1",
    )
    .bind(account as i64)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for r in rows {
        let id = r.0;
        let pairs = |table: &'static str, col: &'static str| {
            let sql = format!(
                "SELECT {col}, use_type FROM lightspeed.{table}
                 WHERE account_id = $1 AND customer_id = $2 ORDER BY position"
            );
            async move {
                sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql))
                    .bind(account as i64)
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
        };
        let addresses: Vec<AddressRow> = sqlx::query_as(
            "SELECT address1, address2, city, state, state_code, zip, country, country_code
                 FROM lightspeed.customer_addresses
                 WHERE account_id = $1 AND customer_id = $2 ORDER BY position",
        )
        .bind(account as i64)
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        let websites: Vec<String> = sqlx::query_scalar(
            "SELECT url FROM lightspeed.customer_websites
             WHERE account_id = $1 AND customer_id = $2 ORDER BY position",
        )
        .bind(account as i64)
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        type Relations = (
            Option<String>,
            Option<String>,
            Option<bool>,
            Option<Vec<String>>,
        );
        let relations: Relations = sqlx::query_as(
            "SELECT contact_custom, note, note_is_public, tags FROM lightspeed.customers
             WHERE account_id = $1 AND customer_id = $2",
        )
        .bind(account as i64)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        let credit: Option<(i64, String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT credit_account_id, balance::text, credit_limit::text, updated_at
             FROM lightspeed.credit_accounts WHERE account_id = $1 AND customer_id = $2",
        )
        .bind(account as i64)
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap();
        out.insert(
            id as u64,
            Expected {
                websites,
                relations,
                credit,
                names: (r.1, r.2, r.3, r.4),
                vat_and_reg: (r.5, r.6),
                archived: r.7,
                times: (r.8, r.9, r.10),
                keys: (r.11, r.12, r.13, r.14),
                emails: pairs("customer_emails", "address").await,
                phones: pairs("customer_phones", "number").await,
                addresses: addresses
                    .into_iter()
                    .map(|a| vec![a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7])
                    .collect(),
                raw: r.15,
            },
        );
    }
    out
}

fn engine(pool: &PgPool, base: &str) -> (Engine, Arc<client_helpers::TestTokens>) {
    let (api, tokens) = client_helpers::client(base, 3);
    let engine = Engine {
        pool: pool.clone(),
        api,
        page_size: 100,
        overlap: Duration::from_secs(120),
        replica: "recorded".into(),
        progress: Arc::new(NoProgress),
        mirror: Default::default(),
    };
    (engine, tokens)
}

async fn run(engine: &Engine, account: u64, stream: Stream, kind: Kind) -> RunReport {
    let lease = try_acquire(
        &engine.pool,
        account.into(),
        "recorded",
        Duration::from_secs(60),
    )
    .await
    .unwrap()
    .expect("the lease is free");
    engine
        .run(&lease, stream, kind, &CancellationToken::new())
        .await
}

/// No recording of `Customer/CustomField.json` or `CustomerType.json` exists: the definitions
/// walked by first and full runs are served empty lists (the documented envelope).
async fn mount_definitions(server: &MockServer) {
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"/API/V3/Account/\d+/(Customer/CustomField|CustomerType)\.json$",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(r#"{"@attributes":{"next":"","previous":""}}"#),
        )
        .mount(server)
        .await;
}

fn customers_path(account: u64) -> String {
    format!("/API/V3/Account/{account}/Customer.json")
}

#[sqlx::test]
async fn every_recorded_customer_lands_exactly_as_the_file_says(pool: PgPool) {
    let server = MockServer::start().await;
    mount_definitions(&server).await;
    let sources = sources();
    for s in &sources {
        // Bodies served verbatim with their recorded headers; embedded customers in an envelope.
        let t = if s.list == body(s.file) {
            response(s.file, 200)
        } else {
            ResponseTemplate::new(200).set_body_bytes(s.list.clone())
        };
        Mock::given(method("GET"))
            .and(path(customers_path(s.account)))
            .respond_with(t)
            .mount(&server)
            .await;
    }
    let (engine, _) = engine(&pool, &server.uri());
    let mut total = 0;
    for s in &sources {
        for kind in [Kind::Incremental, Kind::Full] {
            let report = run(&engine, s.account, Stream::Customers, kind).await;
            assert_eq!(
                report.status,
                RunStatus::Succeeded,
                "{}: {report:?}",
                s.file
            );
        }
        let want: BTreeMap<u64, Expected> = s
            .records
            .iter()
            .map(|r| (text(r, "customerID").parse().unwrap(), expected(r)))
            .collect();
        let got = stored(&pool, s.account).await;
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{}",
            s.file
        );
        for (id, w) in &want {
            assert_eq!(&got[id], w, "{}: customer {id}", s.file);
        }
        total += want.len();
    }
    // Every source was read, and the populated ones were populated.
    assert_eq!(total, 12, "records in the customer-bearing files");
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customer_emails),
                (SELECT count(*) FROM lightspeed.customer_phones),
                (SELECT count(*) FROM lightspeed.customer_addresses)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        counts.0 >= 3 && counts.1 >= 4 && counts.2 >= 3,
        "{counts:?}"
    );
}

#[sqlx::test]
async fn a_blank_contact_address_is_no_row_and_stays_in_raw(pool: PgPool) {
    let server = MockServer::start().await;
    mount_definitions(&server).await;
    let account = 900_201;
    Mock::given(method("GET"))
        .and(path(customers_path(account)))
        .respond_with(response("mp-2019-customer-list.json", 200))
        .mount(&server)
        .await;
    let (engine, _) = engine(&pool, &server.uri());
    let report = run(&engine, account, Stream::Customers, Kind::Incremental).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let (rows, blank): (i64, Value) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customer_addresses),
                (SELECT raw->'Contact'->'Addresses' FROM lightspeed.customers)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(blank["ContactAddress"]["city"], "");
}

/// Mount the recorded account list for `account` and a detail body.
async fn mount_account(server: &MockServer, list: &str, detail: ResponseTemplate, account: u64) {
    Mock::given(method("GET"))
        .and(path("/API/V3/Account.json"))
        .respond_with(response(list, 200))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/API/V3/Account/{account}.json")))
        .respond_with(detail)
        .mount(server)
        .await;
}

type AccountRow = (String, Option<String>, Option<String>, Value);

async fn account_row(pool: &PgPool, account: u64) -> AccountRow {
    sqlx::query_as(
        "SELECT name, status, currency_code, raw FROM lightspeed.accounts WHERE account_id = $1",
    )
    .bind(account as i64)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn json_of(name: &str) -> Value {
    serde_json::from_slice(&body(name)).unwrap()
}

#[sqlx::test]
async fn the_recorded_account_list_and_the_documented_bare_detail_land(pool: PgPool) {
    let server = MockServer::start().await;
    mount_definitions(&server).await;
    let account = 120_645; // Kit Kraft Sandbox, mp-2016-account-list.json
    let detail = ResponseTemplate::new(200).set_body_bytes(body("doc-samples/account-detail.json"));
    mount_account(&server, "mp-2016-account-list.json", detail, account).await;
    let (engine, _) = engine(&pool, &server.uri());
    let report = run(&engine, account, Stream::Accounts, Kind::Full).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let (name, status, currency, raw) = account_row(&pool, account).await;
    // The name is the list's ("Kit Kraft Sandbox"), not the detail sample's ("Main").
    assert_eq!(name, "Kit Kraft Sandbox");
    assert_eq!(
        (status.as_deref(), currency.as_deref()),
        (Some("customer"), Some("CAD"))
    );
    assert_eq!(
        raw["Account"],
        json_of("mp-2016-account-list.json")["Account"]
    );
    assert_eq!(
        raw["Account"]["link"]["@attributes"]["href"],
        "/API/Account/120645"
    );
    assert_eq!(raw["detail"], json_of("doc-samples/account-detail.json"));
}

#[sqlx::test]
async fn every_recorded_account_list_parses_with_its_recorded_headers(pool: PgPool) {
    for (file, account) in [
        ("mp-2016-account-list.json", 120_645),
        ("mp-2016-account-list-bucket-limits.json", 120_645),
        ("mp-2015-account-list-bucket-180.json", 120_645),
        ("mp-2015-account-list-117102.json", 117_102),
    ] {
        let server = MockServer::start().await;
        mount_definitions(&server).await;
        let wrapped = format!(
            r#"{{"@attributes":{{"count":"1"}},"Account":{{"accountID":"{account}","name":"Detail name","status":"customer","defaultCurrency":{{"code":"USD","symbol":"$"}}}}}}"#
        );
        let detail = ResponseTemplate::new(200).set_body_string(wrapped);
        mount_account(&server, file, detail, account).await;
        let (engine, _) = engine(&pool, &server.uri());
        let report = run(&engine, account, Stream::Accounts, Kind::Full).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{file}: {report:?}");
        let (name, status, currency, raw) = account_row(&pool, account).await;
        let listed = json_of(file)["Account"].clone();
        assert_eq!(name, listed["name"].as_str().unwrap(), "{file}");
        assert_eq!(
            (status.as_deref(), currency.as_deref()),
            (Some("customer"), Some("USD")),
            "{file}: the wrapped detail is read too"
        );
        assert_eq!(raw["Account"], listed, "{file}");
        // The bucket the recorded header reported (e.g. `1/60`, `9.2179536819447/90`) is read.
        let header = recorded_headers(file)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-ls-api-bucket-level"));
        if let Some((_, level)) = header {
            let (level, size) = level.split_once('/').unwrap();
            let bucket = engine
                .api
                .pacer(account.into())
                .bucket()
                .expect("bucket header read");
            assert_eq!(bucket.size, size.parse::<f64>().unwrap(), "{file}");
            assert!(
                bucket.level <= level.parse::<f64>().unwrap() + 1e-9,
                "{file}"
            );
        }
    }
}

#[sqlx::test]
async fn a_detail_of_neither_shape_fails_the_run_but_the_listed_account_lands(pool: PgPool) {
    let server = MockServer::start().await;
    mount_definitions(&server).await;
    let account = 120_645;
    let detail =
        ResponseTemplate::new(200).set_body_string(r#"{"@attributes":{"count":"0"}}"#.to_string());
    mount_account(&server, "mp-2016-account-list.json", detail, account).await;
    let (engine, _) = engine(&pool, &server.uri());
    let report = run(&engine, account, Stream::Accounts, Kind::Full).await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    let error = report.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("/API/V3/Account/{account}.json"))
            && error.contains("matches neither"),
        "{error}"
    );
    let (name, status, _, raw) = account_row(&pool, account).await;
    assert_eq!((name.as_str(), status), ("Kit Kraft Sandbox", None));
    assert!(raw.get("detail").is_none());
}

#[sqlx::test]
async fn a_recorded_401_refreshes_once_then_the_page_lands(pool: PgPool) {
    for (i, file) in [
        "mp-2017-401-invalid-token.json",
        "mp-2016-401-basic-disabled.json",
        "mp-2015-401-bad-key.json",
    ]
    .into_iter()
    .enumerate()
    {
        let server = MockServer::start().await;
        mount_definitions(&server).await;
        let account = 900_301 + i as u64;
        Mock::given(method("GET"))
            .and(path(customers_path(account)))
            .respond_with(response(file, 401))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(customers_path(account)))
            .respond_with(response("mp-2019-customer-list.json", 200))
            .mount(&server)
            .await;
        let (engine, tokens) = engine(&pool, &server.uri());
        let report = run(&engine, account, Stream::Customers, Kind::Incremental).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{file}: {report:?}");
        assert_eq!(
            tokens.rejected.lock().unwrap().len(),
            1,
            "{file}: one refresh"
        );
        assert_eq!(stored(&pool, account).await.len(), 1, "{file}");
    }
}

#[sqlx::test]
async fn recorded_404_and_400_fail_the_run_naming_the_url_and_commit_nothing(pool: PgPool) {
    for (i, (file, status)) in [
        ("mp-2015-404-not-found.json", 404),
        ("mp-2015-400-invalid.json", 400),
    ]
    .into_iter()
    .enumerate()
    {
        let server = MockServer::start().await;
        mount_definitions(&server).await;
        let account = 900_401 + i as u64;
        Mock::given(method("GET"))
            .and(path(customers_path(account)))
            .respond_with(response(file, status))
            .mount(&server)
            .await;
        let (engine, tokens) = engine(&pool, &server.uri());
        let report = run(&engine, account, Stream::Customers, Kind::Incremental).await;
        assert_eq!(report.status, RunStatus::Failed, "{file}: {report:?}");
        let error = report.error.clone().unwrap_or_default();
        let message = json_of(file)["message"].as_str().unwrap().to_string();
        assert!(
            error.contains(&customers_path(account))
                && error.contains(&status.to_string())
                && error.contains(&message),
            "{file}: {error}"
        );
        assert!(
            tokens.rejected.lock().unwrap().is_empty(),
            "{file}: no refresh"
        );
        assert!(stored(&pool, account).await.is_empty(), "{file}");
    }
}

#[sqlx::test]
async fn a_recorded_429_without_retry_after_or_bucket_headers_is_retried(pool: PgPool) {
    let server = MockServer::start().await;
    mount_definitions(&server).await;
    let account = 900_501;
    Mock::given(method("GET"))
        .and(path(customers_path(account)))
        .respond_with(response("mp-2015-429-rate-limited.json", 429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(customers_path(account)))
        .respond_with(response("mp-2019-customer-list.json", 200))
        .mount(&server)
        .await;
    let (engine, _) = engine(&pool, &server.uri());
    let report = run(&engine, account, Stream::Customers, Kind::Incremental).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.stats.throttled, 1, "{report:?}");
    assert_eq!(stored(&pool, account).await.len(), 1);
}
