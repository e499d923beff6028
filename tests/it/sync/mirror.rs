//! The mirror's upsert rules, straight against Postgres.

use chrono::{DateTime, TimeZone, Utc};
use lightspeed_sync::db::mirror::{AddressRow, CustomerRow, upsert_customers};
use lightspeed_sync::sync::convert::dedupe_newest;
use sqlx::PgPool;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn row(id: i64, name: &str, updated: i64, email: &str) -> CustomerRow {
    CustomerRow {
        customer_id: id,
        first_name: name.into(),
        last_name: "O'Brien 王".into(),
        title: String::new(),
        company: String::new(),
        company_registration_number: None,
        vat_number: None,
        dob: None,
        archived: false,
        credit_account_id: None,
        customer_type_id: None,
        discount_id: None,
        tax_category_id: None,
        no_email: Some(false),
        no_phone: None,
        no_mail: None,
        contact_updated_at: Some(at(updated)),
        created_at: Some(at(0)),
        updated_at: at(updated),
        raw: serde_json::value::to_raw_value(
            &serde_json::json!({ "customerID": id.to_string(), "firstName": name, "email": email }),
        )
        .unwrap(),
        emails: vec![(email.into(), "Primary".into())],
        phones: vec![],
        addresses: vec![AddressRow {
            city: "Montréal".into(),
            ..AddressRow::default()
        }],
        contact_custom: None,
        note: None,
        note_is_public: None,
        tags: None,
        websites: vec![],
        custom_fields: vec![],
        credit_account: None,
    }
}

async fn stored(pool: &PgPool, id: i64) -> (String, DateTime<Utc>, Vec<String>) {
    let (name, updated): (String, DateTime<Utc>) =
        sqlx::query_as("SELECT first_name, updated_at FROM lightspeed.customers WHERE account_id = 1 AND customer_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    let emails: Vec<String> = sqlx::query_scalar(
        "SELECT address FROM lightspeed.customer_emails WHERE account_id = 1 AND customer_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    (name, updated, emails)
}

#[sqlx::test]
async fn an_older_page_replayed_does_not_overwrite_newer_rows(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let newer = vec![
        row(1, "New", 100, "new@example.com"),
        row(2, "Two", 50, "two@example.com"),
    ];
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &newer).await.unwrap(),
        2
    );
    let older = vec![
        row(1, "Old", 10, "old@example.com"),
        row(2, "Two", 50, "two@example.com"),
    ];
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &older).await.unwrap(),
        0,
        "nothing older or identical is written"
    );
    assert_eq!(
        stored(&pool, 1).await,
        ("New".into(), at(100), vec!["new@example.com".into()])
    );
    // Same stamp, different content (a Contact-only edit that did not move timeStamp): replaced.
    let same_stamp = vec![row(1, "New", 100, "changed@example.com")];
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &same_stamp)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        stored(&pool, 1).await.2,
        vec!["changed@example.com".to_string()]
    );
    let city: String =
        sqlx::query_scalar("SELECT city FROM lightspeed.customer_addresses WHERE customer_id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(city, "Montréal");
}

#[sqlx::test]
async fn the_same_id_twice_in_one_page_keeps_the_newest(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let page = vec![
        row(5, "First", 10, "a@x"),
        row(6, "Other", 10, "o@x"),
        row(5, "Second", 20, "b@x"),
        row(5, "Stale", 15, "c@x"),
    ];
    let rows = dedupe_newest(page);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &rows).await.unwrap(),
        2
    );
    assert_eq!(
        stored(&pool, 5).await,
        ("Second".into(), at(20), vec!["b@x".into()])
    );
}

#[sqlx::test]
async fn rows_not_seen_by_a_complete_walk_are_marked_deleted_and_revived_when_they_return(
    pool: PgPool,
) {
    use lightspeed_sync::db::mirror::mark_unseen_deleted;
    let mut conn = pool.acquire().await.unwrap();
    upsert_customers(
        &mut conn,
        1.into(),
        &[row(1, "A", 1, "a@x"), row(2, "B", 1, "b@x")],
    )
    .await
    .unwrap();
    let walk_started: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // The walk sees only customer 1 (unchanged: not rewritten, but still marked seen).
    let mut tx = pool.begin().await.unwrap();
    upsert_customers(&mut tx, 1.into(), &[row(1, "A", 1, "a@x")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        mark_unseen_deleted(&mut conn, 1.into(), walk_started)
            .await
            .unwrap(),
        1
    );
    let deleted: Vec<i64> = sqlx::query_scalar(
        "SELECT customer_id FROM lightspeed.customers WHERE deleted_at IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(deleted, vec![2]);
    // It comes back upstream: seen again, no longer deleted.
    upsert_customers(&mut conn, 1.into(), &[row(2, "B", 1, "b@x")])
        .await
        .unwrap();
    let deleted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed.customers WHERE deleted_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(deleted, 0);
}

/// Child rows (every table, written in one statement per page) are replaced with their customer
/// only: a customer of the same page whose row did not change keeps its child rows untouched.
#[sqlx::test]
async fn child_rows_of_unchanged_customers_on_a_page_are_not_rewritten(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let page = vec![row(1, "Ann", 10, "a@x"), row(2, "Bob", 10, "b@x")];
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &page).await.unwrap(),
        2
    );
    let versions = || async {
        let v: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT e.customer_id, e.xmin::text, a.xmin::text
             FROM lightspeed.customer_emails e
             JOIN lightspeed.customer_addresses a USING (account_id, customer_id)
             WHERE e.account_id = 1 ORDER BY e.customer_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        v
    };
    let before = versions().await;
    assert_eq!(before.len(), 2);
    // Ann is edited, Bob comes back identical.
    let page = vec![row(1, "Ann", 20, "ann@x"), row(2, "Bob", 10, "b@x")];
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &page).await.unwrap(),
        1
    );
    let after = versions().await;
    assert_ne!(after[0].1, before[0].1, "Ann's email was replaced");
    assert_ne!(after[0].2, before[0].2, "Ann's address was replaced");
    assert_eq!(after[1], before[1], "Bob's child rows were not rewritten");
    assert_eq!(stored(&pool, 1).await.2, vec!["ann@x".to_string()]);
    assert_eq!(stored(&pool, 2).await.2, vec!["b@x".to_string()]);
}

/// Text that a hand-rolled encoding would get wrong: COPY's text format delimiters and escapes,
/// quotes, an array literal's syntax, and characters outside ASCII.
const TRICKY: &[&str] = &[
    "tab\there",
    "line\nbreak\r\nand CR",
    r"back\slash \N \\ end\",
    "quotes \" ' `",
    "{braces},commas",
    "NULL",
    "",
    " leading and trailing ",
    "Montréal 王 🙂 \u{200b}",
];

#[sqlx::test]
async fn tricky_text_in_every_child_table_and_tag_round_trips_exactly(pool: PgPool) {
    use lightspeed_sync::db::mirror::CustomFieldValueRow;
    let mut conn = pool.acquire().await.unwrap();
    let mut r = row(7, "Ann", 10, "a@x");
    let texts: Vec<String> = TRICKY.iter().map(|s| s.to_string()).collect();
    r.emails = texts.iter().map(|t| (t.clone(), t.clone())).collect();
    r.phones = texts.iter().map(|t| (t.clone(), t.clone())).collect();
    r.websites = texts.clone();
    r.addresses = texts
        .iter()
        .map(|t| AddressRow {
            address1: t.clone(),
            address2: t.clone(),
            city: t.clone(),
            state: t.clone(),
            state_code: t.clone(),
            zip: t.clone(),
            country: t.clone(),
            country_code: t.clone(),
        })
        .collect();
    r.tags = Some(texts.clone());
    r.custom_fields = texts
        .iter()
        .enumerate()
        .map(|(i, t)| CustomFieldValueRow {
            custom_field_id: i as i64 + 1,
            custom_field_value_id: (i % 2 == 0).then_some(i as i64 + 100),
            name: t.clone(),
            kind: t.clone(),
            value: (i % 3 != 0).then(|| t.clone()),
            value_json: serde_json::json!({ "v": t, "n": [1, null, 2.5] }),
            updated_at: (i % 2 == 1).then(|| at(i as i64)),
        })
        .collect();
    // A field listed twice keeps its last value.
    let mut again = r.custom_fields[0].clone();
    again.value = Some("the last one".into());
    r.custom_fields.push(again);
    assert_eq!(
        upsert_customers(&mut conn, 1.into(), &[r.clone()])
            .await
            .unwrap(),
        1
    );

    let emails: Vec<(String, String)> = sqlx::query_as(
        "SELECT address, use_type FROM lightspeed.customer_emails WHERE customer_id = 7 ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(emails, r.emails);
    let phones: Vec<(String, String)> = sqlx::query_as(
        "SELECT number, use_type FROM lightspeed.customer_phones WHERE customer_id = 7 ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(phones, r.phones);
    let websites: Vec<String> = sqlx::query_scalar(
        "SELECT url FROM lightspeed.customer_websites WHERE customer_id = 7 ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(websites, r.websites);
    type Address = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let addresses: Vec<Address> = sqlx::query_as(
        "SELECT address1, address2, city, state, state_code, zip, country, country_code
             FROM lightspeed.customer_addresses WHERE customer_id = 7 ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<_> = r
        .addresses
        .iter()
        .map(|a| {
            (
                a.address1.clone(),
                a.address2.clone(),
                a.city.clone(),
                a.state.clone(),
                a.state_code.clone(),
                a.zip.clone(),
                a.country.clone(),
                a.country_code.clone(),
            )
        })
        .collect();
    assert_eq!(addresses, expected);
    let tags: Option<Vec<String>> =
        sqlx::query_scalar("SELECT tags FROM lightspeed.customers WHERE customer_id = 7")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tags, Some(texts.clone()));
    type Field = (
        i64,
        Option<i64>,
        String,
        String,
        Option<String>,
        serde_json::Value,
        Option<DateTime<Utc>>,
    );
    let fields: Vec<Field> = sqlx::query_as(
        "SELECT custom_field_id, custom_field_value_id, name, type, value, value_json, updated_at
         FROM lightspeed.customer_custom_fields WHERE customer_id = 7 ORDER BY custom_field_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: Vec<Field> = r.custom_fields[1..TRICKY.len()]
        .iter()
        .chain(std::iter::once(&r.custom_fields[TRICKY.len()]))
        .map(|v| {
            (
                v.custom_field_id,
                v.custom_field_value_id,
                v.name.clone(),
                v.kind.clone(),
                v.value.clone(),
                v.value_json.clone(),
                v.updated_at,
            )
        })
        .collect();
    expected.sort_by_key(|f| f.0);
    assert_eq!(fields, expected);
    assert_eq!(fields[0].4.as_deref(), Some("the last one"));

    // No tags loaded is NULL, an empty list is an empty array.
    let (mut none, mut empty) = (row(8, "Bob", 10, "b@x"), row(9, "Cy", 10, "c@x"));
    none.tags = None;
    empty.tags = Some(vec![]);
    upsert_customers(&mut conn, 1.into(), &[none, empty])
        .await
        .unwrap();
    let tags: Vec<Option<Vec<String>>> = sqlx::query_scalar(
        "SELECT tags FROM lightspeed.customers WHERE customer_id IN (8, 9) ORDER BY customer_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tags, vec![None, Some(vec![])]);
}

/// Postgres text cannot hold a NUL (JSON's `\u0000` decodes to one): the page fails with
/// Postgres' own error, as it did when the child rows were bound rather than copied, and the
/// transaction it was in writes nothing.
#[sqlx::test]
async fn a_nul_in_a_child_row_fails_the_page_cleanly(pool: PgPool) {
    let mut txn = pool.begin().await.unwrap();
    let mut r = row(7, "Ann", 10, "a@x");
    r.websites = vec!["http://x/\u{0}".into()];
    let err = upsert_customers(&mut txn, 1.into(), &[r])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("0x00"),
        "Postgres names the byte: {err}"
    );
    drop(txn);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// An account ID is a `u64` in the API and a `bigint` in the tables: one beyond `i64::MAX` is
/// refused by name when bound (it was silently saturated to `i64::MAX` before `AccountId`), and a
/// negative one in the database is refused when read.
#[sqlx::test]
async fn an_account_id_that_does_not_fit_a_bigint_is_refused_by_name(pool: PgPool) {
    use lightspeed_sync::model::{AccountId, Stream};
    let too_big = AccountId::from(u64::MAX);
    let err = lightspeed_sync::db::cursors::watermark(&pool, too_big, Stream::Customers)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("account ID 18446744073709551615 does not fit a bigint"),
        "{err}"
    );
    let err = sqlx::query_scalar::<_, AccountId>("SELECT (-5)::bigint")
        .fetch_one(&pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("account ID -5 in the database is negative"),
        "{err}"
    );
    let fine: AccountId = sqlx::query_scalar("SELECT $1::bigint")
        .bind(AccountId::from(120_645))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fine, 120_645);
}
