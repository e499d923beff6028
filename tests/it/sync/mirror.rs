//! The mirror's upsert rules, straight against Postgres.

use chrono::{DateTime, TimeZone, Utc};
use lightspeed_sync::db::mirror::{AddressRow, CustomerRow, dedupe_newest, upsert_customers};
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
    assert_eq!(upsert_customers(&mut conn, 1, &newer).await.unwrap(), 2);
    let older = vec![
        row(1, "Old", 10, "old@example.com"),
        row(2, "Two", 50, "two@example.com"),
    ];
    assert_eq!(
        upsert_customers(&mut conn, 1, &older).await.unwrap(),
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
        upsert_customers(&mut conn, 1, &same_stamp).await.unwrap(),
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
    assert_eq!(upsert_customers(&mut conn, 1, &rows).await.unwrap(), 2);
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
        1,
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
    upsert_customers(&mut tx, 1, &[row(1, "A", 1, "a@x")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        mark_unseen_deleted(&mut conn, 1, walk_started)
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
    upsert_customers(&mut conn, 1, &[row(2, "B", 1, "b@x")])
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
    assert_eq!(upsert_customers(&mut conn, 1, &page).await.unwrap(), 2);
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
    assert_eq!(upsert_customers(&mut conn, 1, &page).await.unwrap(), 1);
    let after = versions().await;
    assert_ne!(after[0].1, before[0].1, "Ann's email was replaced");
    assert_ne!(after[0].2, before[0].2, "Ann's address was replaced");
    assert_eq!(after[1], before[1], "Bob's child rows were not rewritten");
    assert_eq!(stored(&pool, 1).await.2, vec!["ann@x".to_string()]);
    assert_eq!(stored(&pool, 2).await.2, vec!["b@x".to_string()]);
}
