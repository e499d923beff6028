//! Statements of `sync --full --rewrite` on customers that are no longer served (marked
//! `deleted_at`): their stored values are read, put through the PII policy in Rust (an HMAC needs
//! the key, which never goes to the database), and written back. The full walk rewrites every other
//! customer from what Lightspeed serves.

use crate::db::col;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use crate::model::AccountId;

/// The columns of a stored customer row or history row that hold personal data outside child
/// tables, as `--rewrite` reads and rewrites them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredPii {
    /// firstName
    pub first_name: String,
    /// lastName
    pub last_name: String,
    /// dob
    pub dob: Option<DateTime<Utc>>,
    /// Note.note
    pub note: Option<String>,
    /// The record as stored.
    pub raw: sqlx::types::Json<Value>,
}

/// A stored customer row's PII columns.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCustomer {
    /// customerID
    pub customer_id: i64,
    /// Its personal data.
    #[sqlx(flatten)]
    pub pii: StoredPii,
}

/// The account's customers marked deleted, after `after` (customer ID), at most `limit`.
pub async fn deleted_customers(
    conn: &mut PgConnection,
    account_id: AccountId,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredCustomer>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customer_id, first_name, last_name, dob, note, raw FROM lightspeed.customers
         WHERE account_id = $1 AND deleted_at IS NOT NULL AND customer_id > $2
         ORDER BY customer_id LIMIT $3",
    )
    .bind(account_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Write back the PII columns of stored customer rows.
pub async fn rewrite_customers(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[StoredCustomer],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE lightspeed.customers c SET first_name = u.first_name, last_name = u.last_name,
             dob = u.dob, note = u.note, raw = u.raw
         FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                     $7::jsonb[]) AS u(id, first_name, last_name, dob, note, raw)
         WHERE c.account_id = $1 AND c.customer_id = u.id",
    )
    .bind(account_id)
    .bind(col(rows, |r| r.customer_id))
    .bind(col(rows, |r| &r.pii.first_name))
    .bind(col(rows, |r| &r.pii.last_name))
    .bind(col(rows, |r| r.pii.dob))
    .bind(col(rows, |r| &r.pii.note))
    .bind(col(rows, |r| &r.pii.raw))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A child table of customers keyed by `(account_id, customer_id, position)`, with its text
/// columns that hold personal data.
#[derive(Debug, Clone, Copy)]
pub enum Child {
    /// `customer_emails.address`
    Emails,
    /// `customer_phones.number`
    Phones,
    /// `customer_addresses`, every text column
    Addresses,
}

impl Child {
    fn table(self) -> &'static str {
        match self {
            Child::Emails => "customer_emails",
            Child::Phones => "customer_phones",
            Child::Addresses => "customer_addresses",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Child::Emails => &["address"],
            Child::Phones => &["number"],
            Child::Addresses => &[
                "address1",
                "address2",
                "city",
                "state",
                "state_code",
                "zip",
                "country",
                "country_code",
            ],
        }
    }
}

/// Delete the child rows of these customers (a `drop` policy).
pub async fn drop_children(
    conn: &mut PgConnection,
    account_id: AccountId,
    child: Child,
    ids: &[i64],
) -> Result<u64, sqlx::Error> {
    let table = child.table();
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM lightspeed.{table} WHERE account_id = $1 AND customer_id = ANY($2)"
    )))
    .bind(account_id)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Replace every text value of the child rows of these customers by `f(value)` (a `hash` policy).
pub async fn map_children(
    conn: &mut PgConnection,
    account_id: AccountId,
    child: Child,
    ids: &[i64],
    f: impl Fn(&str) -> String,
) -> Result<u64, sqlx::Error> {
    let table = child.table();
    let cols = child.columns();
    let rows: Vec<(i64, i32, Vec<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT customer_id, position, ARRAY[{}] FROM lightspeed.{table}
         WHERE account_id = $1 AND customer_id = ANY($2)",
        cols.join(", ")
    )))
    .bind(account_id)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut changed: Vec<(i64, i32, Value)> = Vec::new();
    for (id, pos, values) in rows {
        let mapped: Vec<String> = values.iter().map(|v| f(v)).collect();
        if mapped != values {
            changed.push((id, pos, Value::from(mapped)));
        }
    }
    if changed.is_empty() {
        return Ok(0);
    }
    let set: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = u.v->>{i}"))
        .collect();
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE lightspeed.{table} t SET {}
         FROM UNNEST($2::bigint[], $3::int[], $4::jsonb[]) AS u(id, pos, v)
         WHERE t.account_id = $1 AND t.customer_id = u.id AND t.position = u.pos",
        set.join(", ")
    )))
    .bind(account_id)
    .bind(col(&changed, |c| c.0))
    .bind(col(&changed, |c| c.1))
    .bind(col(&changed, |c| sqlx::types::Json(&c.2)))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Replace the custom field values of these customers by `f(value, value_json)`.
pub async fn map_custom_fields(
    conn: &mut PgConnection,
    account_id: AccountId,
    ids: &[i64],
    f: impl Fn(Option<String>, Value) -> (Option<String>, Value),
) -> Result<u64, sqlx::Error> {
    type Stored = (i64, i64, Option<String>, Option<sqlx::types::Json<Value>>);
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT customer_id, custom_field_id, value, value_json
         FROM lightspeed.customer_custom_fields WHERE account_id = $1 AND customer_id = ANY($2)",
    )
    .bind(account_id)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut changed: Vec<(i64, i64, Option<String>, Value)> = Vec::new();
    for (id, field, value, json) in rows {
        let json = json.map(|j| j.0).unwrap_or(Value::Null);
        let (v, j) = f(value.clone(), json.clone());
        if v != value || j != json {
            changed.push((id, field, v, j));
        }
    }
    if changed.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE lightspeed.customer_custom_fields t SET value = u.v, value_json = u.j
         FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::jsonb[]) AS u(id, field, v, j)
         WHERE t.account_id = $1 AND t.customer_id = u.id AND t.custom_field_id = u.field",
    )
    .bind(account_id)
    .bind(col(&changed, |c| c.0))
    .bind(col(&changed, |c| c.1))
    .bind(col(&changed, |c| c.2.clone()))
    .bind(col(&changed, |c| sqlx::types::Json(&c.3)))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
