//! Statements on `lightspeed.customers_history` (`mirror.history = true`): one row per version of a
//! customer the sync has seen, a slowly changing dimension of type 2.
//!
//! A version is keyed by its `timeStamp` (`valid_from`); the next version's `timeStamp` closes it
//! (`valid_to`, `is_current = false`). Written in the page's transaction, after the page's upsert,
//! which holds the lock of every customer row of the page until the commit: two pages sharing a
//! customer (committed at once) therefore record its versions one after the other.
//!
//! - A version newer than the last recorded one is added, and closes the one before.
//! - A replayed version (same `timeStamp`, same content) or an older one adds nothing.
//! - The same `timeStamp` with different content (a Contact-only edit that did not move
//!   `timeStamp`, or a changed PII policy) replaces the last recorded version in place, as the
//!   mirror's row is replaced: versions are keyed by `timeStamp`, and two contents at one instant
//!   cannot both have been valid from it. The row keeps the content last seen.
//! - A hard delete (a full walk no longer sees the customer) closes the current version
//!   ([`close_deleted`]); seen again unchanged, that version is reopened.
//! - An anonymized version (an erasure) scrubs what anonymization clears from every earlier
//!   version ([`erase_earlier`]).

use crate::db::col;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::db::mirror::{CustomerRow, customer_arguments, customer_columns};
use crate::model::AccountId;

/// Record the versions of a page of customers (rows as written, policy applied; unique IDs).
/// Returns the number of versions added or replaced.
pub async fn record_versions(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[CustomerRow],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
    let ts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.updated_at).collect();
    let raws: Vec<_> = rows
        .iter()
        .map(|r| sqlx::types::Json(r.raw.as_ref()))
        .collect();
    // The last recorded version of each customer of the page.
    // (customer, last valid_from, is it current, does the page's content differ from it)
    type Last = (i64, Option<DateTime<Utc>>, Option<bool>, Option<bool>);
    let last: Vec<Last> = sqlx::query_as(
        "SELECT u.id, l.valid_from, l.is_current, l.raw IS DISTINCT FROM u.raw
         FROM UNNEST($2::bigint[], $3::jsonb[]) AS u(id, raw)
         LEFT JOIN LATERAL (
             SELECT h.valid_from, h.is_current, h.raw FROM lightspeed.customers_history h
             WHERE h.account_id = $1 AND h.customer_id = u.id
             ORDER BY h.valid_from DESC LIMIT 1) l ON true",
    )
    .bind(account_id)
    .bind(&ids)
    .bind(&raws)
    .fetch_all(&mut *conn)
    .await?;
    let last: std::collections::HashMap<i64, _> = last
        .into_iter()
        .map(|(id, f, c, d)| (id, (f, c, d)))
        .collect();
    let (mut close_id, mut close_from, mut close_to) = (vec![], vec![], vec![]);
    let (mut replace_id, mut replace_from) = (vec![], vec![]);
    let mut add: Vec<&CustomerRow> = Vec::new();
    for (row, ts) in rows.iter().zip(&ts) {
        match last.get(&row.customer_id) {
            Some((Some(from), current, differs)) => {
                if ts > from {
                    if *current == Some(true) {
                        close_id.push(row.customer_id);
                        close_from.push(*from);
                        close_to.push(*ts);
                    }
                    add.push(row);
                } else if ts == from && (*differs == Some(true) || *current != Some(true)) {
                    replace_id.push(row.customer_id);
                    replace_from.push(*from);
                    add.push(row);
                }
            }
            _ => add.push(row),
        }
    }
    if add.is_empty() {
        return Ok(0);
    }
    if !close_id.is_empty() || !replace_id.is_empty() {
        sqlx::query(
            "WITH d AS (
                 DELETE FROM lightspeed.customers_history h
                 USING UNNEST($5::bigint[], $6::timestamptz[]) AS r(id, vf)
                 WHERE h.account_id = $1 AND h.customer_id = r.id AND h.valid_from = r.vf)
             UPDATE lightspeed.customers_history h SET valid_to = c.vt, is_current = false
             FROM UNNEST($2::bigint[], $3::timestamptz[], $4::timestamptz[]) AS c(id, vf, vt)
             WHERE h.account_id = $1 AND h.customer_id = c.id AND h.valid_from = c.vf",
        )
        .bind(account_id)
        .bind(&close_id)
        .bind(&close_from)
        .bind(&close_to)
        .bind(&replace_id)
        .bind(&replace_from)
        .execute(&mut *conn)
        .await?;
    }
    let done = sqlx::query_with(
        concat!(
            "INSERT INTO lightspeed.customers_history (account_id, customer_id, valid_from, valid_to,
                 is_current, archived, deleted_at, first_name, last_name, title, company,
                 company_registration_number, vat_number, dob, credit_account_id, customer_type_id,
                 discount_id, tax_category_id, no_email, no_phone, no_mail, contact_updated_at,
                 created_at, contact_custom, note, note_is_public, tags, raw, seen_at)
             SELECT $1, u.customer_id, u.updated, NULL, true, u.archived, NULL, u.first_name,
                 u.last_name, u.title, u.company, u.reg, u.vat, u.dob, u.credit, u.ctype,
                 u.discount, u.tax, u.no_email, u.no_phone, u.no_mail, u.contact_ts, u.created,
                 u.custom, u.note, u.note_public,
                 CASE WHEN u.has_tags THEN ARRAY(SELECT jsonb_array_elements_text(u.tags_json)) END,
                 u.raw, now()
             FROM ",
            customer_columns!(),
            " ON CONFLICT (account_id, customer_id, valid_from) DO NOTHING"
        ),
        customer_arguments(account_id, &add)?,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// After [`crate::db::mirror::mark_unseen_deleted`]: close the current version of every customer of
/// the account marked deleted (`deleted_at`, `valid_to` = when the walk noticed). Returns how many.
pub async fn close_deleted(
    conn: &mut PgConnection,
    account_id: AccountId,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lightspeed.customers_history h
         SET deleted_at = c.deleted_at, valid_to = GREATEST(c.deleted_at, h.valid_from),
             is_current = false
         FROM lightspeed.customers c
         WHERE h.account_id = $1 AND h.is_current AND c.account_id = h.account_id
           AND c.customer_id = h.customer_id AND c.deleted_at IS NOT NULL",
    )
    .bind(account_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The anonymized customers of a page that the mirror held un-erased (not yet marked `erased_at`):
/// the erasures this page performs. Run before the page's upsert.
pub async fn unerased(
    conn: &mut PgConnection,
    account_id: AccountId,
    ids: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT customer_id FROM lightspeed.customers
         WHERE account_id = $1 AND customer_id = ANY($2) AND erased_at IS NULL",
    )
    .bind(account_id)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Mark anonymized customers erased (`customers.erased_at`, once). Run after the page's upsert.
pub async fn mark_erased(
    conn: &mut PgConnection,
    account_id: AccountId,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed.customers SET erased_at = now()
         WHERE account_id = $1 AND customer_id = ANY($2) AND erased_at IS NULL",
    )
    .bind(account_id)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// For each anonymized version in `rows`: every earlier version of that customer gets what
/// anonymization cleared replaced by the anonymized version's values (typed columns, and the
/// `erased_raw_keys` of `raw`, removed where the anonymized version has none). Notes, custom field
/// values, tags and the credit account stay, as Lightspeed keeps them. Returns the rows scrubbed.
pub async fn erase_earlier(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[&CustomerRow],
    erased_raw_keys: &[&str],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE lightspeed.customers_history h SET first_name = u.first_name,
             last_name = u.last_name, title = u.title, company = u.company,
             company_registration_number = u.reg, vat_number = u.vat, dob = u.dob,
             no_email = u.no_email, no_phone = u.no_phone, no_mail = u.no_mail,
             contact_custom = u.custom, contact_updated_at = u.contact_ts,
             raw = (h.raw - $16::text[]) || COALESCE(
                 (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(u.raw) e
                  WHERE e.key = ANY($16::text[])), '{}'::jsonb)
         FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::bool[],
                     $12::bool[], $13::bool[], $14::text[], $15::timestamptz[], $17::jsonb[])
             AS u(id, ts, first_name, last_name, title, company, reg, vat, dob, no_email,
                  no_phone, no_mail, custom, contact_ts, raw)
         WHERE h.account_id = $1 AND h.customer_id = u.id AND h.valid_from < u.ts
           -- Scrubbed already (every full walk serves the anonymized customer again): left alone.
           AND h.raw IS DISTINCT FROM (h.raw - $16::text[]) || COALESCE(
                 (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(u.raw) e
                  WHERE e.key = ANY($16::text[])), '{}'::jsonb)",
    )
    .bind(account_id)
    .bind(col(rows, |r| r.customer_id))
    .bind(col(rows, |r| r.updated_at))
    .bind(col(rows, |r| r.first_name.as_str()))
    .bind(col(rows, |r| r.last_name.as_str()))
    .bind(col(rows, |r| r.title.as_str()))
    .bind(col(rows, |r| r.company.as_str()))
    .bind(col(rows, |r| r.company_registration_number.clone()))
    .bind(col(rows, |r| r.vat_number.clone()))
    .bind(col(rows, |r| r.dob))
    .bind(col(rows, |r| r.no_email))
    .bind(col(rows, |r| r.no_phone))
    .bind(col(rows, |r| r.no_mail))
    .bind(col(rows, |r| r.contact_custom.clone()))
    .bind(col(rows, |r| r.contact_updated_at))
    .bind(erased_raw_keys)
    .bind(col(rows, |r| sqlx::types::Json(r.raw.as_ref())))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// One stored history row, as `sync --full --rewrite` reads and rewrites it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredVersion {
    /// customerID
    pub customer_id: i64,
    /// The version's `timeStamp`.
    pub valid_from: DateTime<Utc>,
    /// Its personal data.
    #[sqlx(flatten)]
    pub pii: crate::db::stored::StoredPii,
}

/// The account's history rows after `(customer_id, valid_from)`, in key order, at most `limit`.
pub async fn stored_versions(
    conn: &mut PgConnection,
    account_id: AccountId,
    after: Option<(i64, DateTime<Utc>)>,
    limit: i64,
) -> Result<Vec<StoredVersion>, sqlx::Error> {
    // No customer has the smallest ID, so any time goes with it (one Postgres can hold).
    let (id, from) = after.unwrap_or((i64::MIN, DateTime::<Utc>::UNIX_EPOCH));
    sqlx::query_as(
        "SELECT customer_id, valid_from, first_name, last_name, dob, note, raw
         FROM lightspeed.customers_history
         WHERE account_id = $1 AND (customer_id, valid_from) > ($2, $3)
         ORDER BY customer_id, valid_from LIMIT $4",
    )
    .bind(account_id)
    .bind(id)
    .bind(from)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Write back rewritten history rows (the columns of [`StoredVersion`]).
pub async fn rewrite_versions(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[StoredVersion],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE lightspeed.customers_history h SET first_name = u.first_name,
             last_name = u.last_name, dob = u.dob, note = u.note, raw = u.raw
         FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::timestamptz[],
                     $7::text[], $8::jsonb[]) AS u(id, vf, first_name, last_name, dob, note, raw)
         WHERE h.account_id = $1 AND h.customer_id = u.id AND h.valid_from = u.vf",
    )
    .bind(account_id)
    .bind(col(rows, |r| r.customer_id))
    .bind(col(rows, |r| r.valid_from))
    .bind(col(rows, |r| &r.pii.first_name))
    .bind(col(rows, |r| &r.pii.last_name))
    .bind(col(rows, |r| r.pii.dob))
    .bind(col(rows, |r| &r.pii.note))
    .bind(col(rows, |r| &r.pii.raw))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
