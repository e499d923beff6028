//! Statements on the mirror (`lightspeed.*`): bulk upserts of one page, deletion marking.
//!
//! A page is written with a handful of set-based statements (`UNNEST` of column arrays), whatever its
//! size, so a page costs the same few round trips. A customer row is replaced only by a version at least
//! as new (`updated_at`) that differs from it, so an older page replayed never overwrites newer data;
//! its emails, phones, addresses, websites, custom field values and credit account are replaced
//! together with it. The definitions (`custom_fields`, `customer_types`) are upserted as listed and
//! marked deleted when a complete walk no longer lists them.

use crate::db::col;
use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::PgConnection;

use crate::model::AccountId;

/// One customer as the mirror stores it.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    /// Lightspeed customerID.
    pub customer_id: i64,
    /// firstName
    pub first_name: String,
    /// lastName
    pub last_name: String,
    /// title (the job title)
    pub title: String,
    /// company
    pub company: String,
    /// companyRegistrationNumber
    pub company_registration_number: Option<String>,
    /// vatNumber
    pub vat_number: Option<String>,
    /// dob
    pub dob: Option<DateTime<Utc>>,
    /// archived (deleted or anonymized upstream)
    pub archived: bool,
    /// creditAccountID (`"0"` → None)
    pub credit_account_id: Option<i64>,
    /// customerTypeID
    pub customer_type_id: Option<i64>,
    /// discountID
    pub discount_id: Option<i64>,
    /// taxCategoryID
    pub tax_category_id: Option<i64>,
    /// Contact.noEmail
    pub no_email: Option<bool>,
    /// Contact.noPhone
    pub no_phone: Option<bool>,
    /// Contact.noMail
    pub no_mail: Option<bool>,
    /// Contact.timeStamp
    pub contact_updated_at: Option<DateTime<Utc>>,
    /// createTime
    pub created_at: Option<DateTime<Utc>>,
    /// timeStamp (last modified upstream)
    pub updated_at: DateTime<Utc>,
    /// The whole record as received.
    pub raw: Box<RawValue>,
    /// Contact emails: (address, useType).
    pub emails: Vec<(String, String)>,
    /// Contact phones: (number, useType).
    pub phones: Vec<(String, String)>,
    /// Contact addresses.
    pub addresses: Vec<AddressRow>,
    /// Contact.custom
    pub contact_custom: Option<String>,
    /// Note.note
    pub note: Option<String>,
    /// Note.isPublic
    pub note_is_public: Option<bool>,
    /// Tags (`None` when the relation was not loaded).
    pub tags: Option<Vec<String>>,
    /// Contact website URLs.
    pub websites: Vec<String>,
    /// Custom field values that are set and not deleted.
    pub custom_fields: Vec<CustomFieldValueRow>,
    /// The CreditAccount relation.
    pub credit_account: Option<CreditAccountRow>,
}

/// One custom field value of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomFieldValueRow {
    /// customFieldID
    pub custom_field_id: i64,
    /// customFieldValueID
    pub custom_field_value_id: Option<i64>,
    /// name
    pub name: String,
    /// type
    pub kind: String,
    /// The value as text.
    pub value: Option<String>,
    /// The value as sent.
    pub value_json: Value,
    /// timeStamp
    pub updated_at: Option<DateTime<Utc>>,
}

/// A customer's credit account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditAccountRow {
    /// creditAccountID
    pub credit_account_id: i64,
    /// name
    pub name: Option<String>,
    /// balance (decimal text)
    pub balance: Option<String>,
    /// creditLimit (decimal text)
    pub credit_limit: Option<String>,
    /// giftCard
    pub gift_card: Option<bool>,
    /// archived
    pub archived: Option<bool>,
    /// timeStamp
    pub updated_at: Option<DateTime<Utc>>,
    /// The relation as sent (JSON text).
    pub raw: String,
}

/// A custom field definition (`Customer/CustomField.json`).
#[derive(Debug, Clone)]
pub struct CustomFieldDefRow {
    /// customFieldID
    pub custom_field_id: i64,
    /// name
    pub name: String,
    /// type
    pub kind: String,
    /// uom
    pub uom: Option<String>,
    /// decimalPrecision
    pub decimal_precision: Option<i32>,
    /// archived
    pub archived: bool,
    /// The record as sent.
    pub raw: Box<RawValue>,
}

/// A customer type (`CustomerType.json`).
#[derive(Debug, Clone)]
pub struct CustomerTypeRow {
    /// customerTypeID
    pub customer_type_id: i64,
    /// name
    pub name: String,
    /// taxCategoryID
    pub tax_category_id: Option<i64>,
    /// discountID
    pub discount_id: Option<i64>,
    /// The record as sent.
    pub raw: Box<RawValue>,
}

/// One Contact address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressRow {
    /// address1
    pub address1: String,
    /// address2
    pub address2: String,
    /// city
    pub city: String,
    /// state
    pub state: String,
    /// stateCode
    pub state_code: String,
    /// zip
    pub zip: String,
    /// country
    pub country: String,
    /// countryCode
    pub country_code: String,
}

/// The typed columns of a page of customers as one `UNNEST` over `$2`..`$26`, named `u`: bound by
/// [`bind_customer_columns`], shared by the mirror's upsert and the history's insert so that both
/// read a row the same way.
macro_rules! customer_columns {
    () => {
        "UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::timestamptz[], $10::bool[], $11::bigint[], $12::bigint[],
                $13::bigint[], $14::bigint[], $15::bool[], $16::bool[], $17::bool[],
                $18::timestamptz[], $19::timestamptz[], $20::timestamptz[], $21::jsonb[],
                $22::text[], $23::text[], $24::bool[], $25::bool[], $26::jsonb[])
            AS u(customer_id, first_name, last_name, title, company, reg, vat, dob, archived,
                 credit, ctype, discount, tax, no_email, no_phone, no_mail, contact_ts, created,
                 updated, raw, custom, note, note_public, has_tags, tags_json)"
    };
}
pub(crate) use customer_columns;

/// `$1` (the account) and `$2`..`$26` of [`customer_columns!`] from `rows`, in its order.
pub(crate) fn customer_arguments<'a>(
    account_id: AccountId,
    rows: &[&'a CustomerRow],
) -> Result<sqlx::postgres::PgArguments, sqlx::Error> {
    use sqlx::Arguments;
    let mut args = sqlx::postgres::PgArguments::default();
    macro_rules! col {
        ($f:expr) => {
            args.add(rows.iter().map(|r| $f(*r)).collect::<Vec<_>>())
                .map_err(sqlx::Error::Encode)?
        };
    }
    args.add(account_id).map_err(sqlx::Error::Encode)?;
    col!(|r: &CustomerRow| r.customer_id);
    col!(|r: &CustomerRow| r.first_name.clone());
    col!(|r: &CustomerRow| r.last_name.clone());
    col!(|r: &CustomerRow| r.title.clone());
    col!(|r: &CustomerRow| r.company.clone());
    col!(|r: &CustomerRow| r.company_registration_number.clone());
    col!(|r: &CustomerRow| r.vat_number.clone());
    col!(|r: &CustomerRow| r.dob);
    col!(|r: &CustomerRow| r.archived);
    col!(|r: &CustomerRow| r.credit_account_id);
    col!(|r: &CustomerRow| r.customer_type_id);
    col!(|r: &CustomerRow| r.discount_id);
    col!(|r: &CustomerRow| r.tax_category_id);
    col!(|r: &CustomerRow| r.no_email);
    col!(|r: &CustomerRow| r.no_phone);
    col!(|r: &CustomerRow| r.no_mail);
    col!(|r: &CustomerRow| r.contact_updated_at);
    col!(|r: &CustomerRow| r.created_at);
    col!(|r: &CustomerRow| r.updated_at);
    col!(|r: &'a CustomerRow| sqlx::types::Json(r.raw.as_ref()));
    col!(|r: &CustomerRow| r.contact_custom.clone());
    col!(|r: &CustomerRow| r.note.clone());
    col!(|r: &CustomerRow| r.note_is_public);
    col!(|r: &CustomerRow| r.tags.is_some());
    col!(|r: &CustomerRow| sqlx::types::Json(r.tags.clone().unwrap_or_default()));
    Ok(args)
}

/// Upsert a page of customers (IDs must be unique: see `sync::convert::customer_rows`) and replace the contact rows
/// of those that changed. A row is replaced by a newer version, or by the same version with different
/// content (a Contact-only edit that did not move `timeStamp`); an older or identical one changes
/// nothing. Every row of the page is marked seen (`synced_at = now()`, `deleted_at` cleared),
/// replaced or not. Returns the number of customers whose row was written.
pub async fn upsert_customers(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[CustomerRow],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
    let page: Vec<&CustomerRow> = rows.iter().collect();
    let written: Vec<(i64,)> = sqlx::query_as_with(
        concat!(
            r#"
        INSERT INTO lightspeed.customers AS c (
            account_id, customer_id, first_name, last_name, title, company,
            company_registration_number, vat_number, dob, archived, credit_account_id,
            customer_type_id, discount_id, tax_category_id, no_email, no_phone, no_mail,
            contact_updated_at, created_at, updated_at, raw, contact_custom, note, note_is_public,
            tags, synced_at, deleted_at)
        SELECT $1, u.customer_id, u.first_name, u.last_name, u.title, u.company, u.reg, u.vat,
            u.dob, u.archived, u.credit, u.ctype, u.discount, u.tax, u.no_email, u.no_phone,
            u.no_mail, u.contact_ts, u.created, u.updated, u.raw, u.custom, u.note, u.note_public,
            CASE WHEN u.has_tags THEN
                ARRAY(SELECT jsonb_array_elements_text(u.tags_json)) END,
            now(), NULL
        FROM "#,
            customer_columns!(),
            r#"
        ON CONFLICT (account_id, customer_id) DO UPDATE SET
            first_name = excluded.first_name, last_name = excluded.last_name,
            title = excluded.title, company = excluded.company,
            company_registration_number = excluded.company_registration_number,
            vat_number = excluded.vat_number, dob = excluded.dob, archived = excluded.archived,
            credit_account_id = excluded.credit_account_id,
            customer_type_id = excluded.customer_type_id, discount_id = excluded.discount_id,
            tax_category_id = excluded.tax_category_id, no_email = excluded.no_email,
            no_phone = excluded.no_phone, no_mail = excluded.no_mail,
            contact_updated_at = excluded.contact_updated_at, created_at = excluded.created_at,
            updated_at = excluded.updated_at, raw = excluded.raw,
            contact_custom = excluded.contact_custom, note = excluded.note,
            note_is_public = excluded.note_is_public, tags = excluded.tags, synced_at = now(),
            deleted_at = NULL
        WHERE excluded.updated_at > c.updated_at
           OR (excluded.updated_at = c.updated_at AND excluded.raw IS DISTINCT FROM c.raw)
        RETURNING customer_id
        "#
        ),
        customer_arguments(account_id, &page)?,
    )
    .fetch_all(&mut *conn)
    .await?;

    let written: Vec<i64> = written.into_iter().map(|(id,)| id).collect();
    // Rows not replaced (an older version) were still seen upstream: keep them alive.
    if written.len() < rows.len() {
        sqlx::query(
            "UPDATE lightspeed.customers SET synced_at = now(), deleted_at = NULL
             WHERE account_id = $1 AND customer_id = ANY($2) AND NOT (customer_id = ANY($3))",
        )
        .bind(account_id)
        .bind(&ids)
        .bind(&written)
        .execute(&mut *conn)
        .await?;
    }
    if !written.is_empty() {
        let changed: std::collections::HashSet<i64> = written.iter().copied().collect();
        let changed_rows: Vec<&CustomerRow> = rows
            .iter()
            .filter(|r| changed.contains(&r.customer_id))
            .collect();
        // Also for fresh inserts: contact rows may outlive their customer row (an operator who
        // truncated the customers to force a resync), and must not block the insert.
        replace_contacts(conn, account_id, &written, &changed_rows).await?;
    }
    Ok(written.len() as u64)
}

/// Drop the contact rows of the customers in `ids`, then insert those of `rows`: two statements
/// for the whole page, whatever it holds (one `DELETE` per table and one `INSERT` per table, each
/// a data-modifying `WITH` of one statement; the tables differ, so their order within a statement
/// does not matter, and the inserts only run once the deletes are done).
async fn replace_contacts(
    conn: &mut PgConnection,
    account_id: AccountId,
    ids: &[i64],
    rows: &[&CustomerRow],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH e AS (DELETE FROM lightspeed.customer_emails
                    WHERE account_id = $1 AND customer_id = ANY($2)),
              p AS (DELETE FROM lightspeed.customer_phones
                    WHERE account_id = $1 AND customer_id = ANY($2)),
              a AS (DELETE FROM lightspeed.customer_addresses
                    WHERE account_id = $1 AND customer_id = ANY($2)),
              w AS (DELETE FROM lightspeed.customer_websites
                    WHERE account_id = $1 AND customer_id = ANY($2)),
              f AS (DELETE FROM lightspeed.customer_custom_fields
                    WHERE account_id = $1 AND customer_id = ANY($2))
         DELETE FROM lightspeed.credit_accounts WHERE account_id = $1 AND customer_id = ANY($2)",
    )
    .bind(account_id)
    .bind(ids)
    .execute(&mut *conn)
    .await?;

    let pairs = |pick: fn(&CustomerRow) -> &Vec<(String, String)>| {
        let (mut id, mut pos, mut a, mut b) = (vec![], vec![], vec![], vec![]);
        for r in rows {
            for (i, (x, y)) in pick(r).iter().enumerate() {
                id.push(r.customer_id);
                pos.push(i as i32);
                a.push(x.as_str());
                b.push(y.as_str());
            }
        }
        (id, pos, a, b)
    };
    let (e_id, e_pos, e_addr, e_use) = pairs(|r| &r.emails);
    let (p_id, p_pos, p_num, p_use) = pairs(|r| &r.phones);

    let (mut a_id, mut a_pos) = (vec![], vec![]);
    let mut a_cols: [Vec<&str>; 8] = Default::default();
    let (mut w_id, mut w_pos, mut w_url) = (vec![], vec![], vec![]);
    for r in rows {
        for (i, a) in r.addresses.iter().enumerate() {
            a_id.push(r.customer_id);
            a_pos.push(i as i32);
            let values = [
                &a.address1,
                &a.address2,
                &a.city,
                &a.state,
                &a.state_code,
                &a.zip,
                &a.country,
                &a.country_code,
            ];
            for (c, v) in a_cols.iter_mut().zip(values) {
                c.push(v.as_str());
            }
        }
        for (i, u) in r.websites.iter().enumerate() {
            w_id.push(r.customer_id);
            w_pos.push(i as i32);
            w_url.push(u.as_str());
        }
    }
    // A field listed twice for one customer keeps its last value (one insert may not touch a row
    // twice, not even through ON CONFLICT).
    let values: Vec<(i64, &CustomFieldValueRow)> = rows
        .iter()
        .flat_map(|r| {
            let fields = &r.custom_fields;
            fields.iter().enumerate().filter_map(move |(i, v)| {
                let later = fields[i + 1..]
                    .iter()
                    .any(|w| w.custom_field_id == v.custom_field_id);
                (!later).then_some((r.customer_id, v))
            })
        })
        .collect();
    let credits: Vec<(i64, &CreditAccountRow)> = rows
        .iter()
        .filter_map(|r| r.credit_account.as_ref().map(|c| (r.customer_id, c)))
        .collect();
    if e_id.is_empty()
        && p_id.is_empty()
        && a_id.is_empty()
        && w_id.is_empty()
        && values.is_empty()
        && credits.is_empty()
    {
        return Ok(());
    }
    let [a1, a2, city, state, state_code, zip, country, country_code] = a_cols;
    // A credit account belongs to one customer, and should it move, the newer owner has it.
    sqlx::query(
        "WITH e AS (
             INSERT INTO lightspeed.customer_emails (account_id, customer_id, position, address,
                 use_type)
             SELECT $1, * FROM UNNEST($2::bigint[], $3::int[], $4::text[], $5::text[])),
         p AS (
             INSERT INTO lightspeed.customer_phones (account_id, customer_id, position, number,
                 use_type)
             SELECT $1, * FROM UNNEST($6::bigint[], $7::int[], $8::text[], $9::text[])),
         a AS (
             INSERT INTO lightspeed.customer_addresses (account_id, customer_id, position,
                 address1, address2, city, state, state_code, zip, country, country_code)
             SELECT $1, * FROM UNNEST($10::bigint[], $11::int[], $12::text[], $13::text[],
                 $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[])),
         w AS (
             INSERT INTO lightspeed.customer_websites (account_id, customer_id, position, url)
             SELECT $1, * FROM UNNEST($20::bigint[], $21::int[], $22::text[])),
         f AS (
             INSERT INTO lightspeed.customer_custom_fields (account_id, customer_id,
                 custom_field_id, custom_field_value_id, name, type, value, value_json, updated_at)
             SELECT $1, * FROM UNNEST($23::bigint[], $24::bigint[], $25::bigint[], $26::text[],
                 $27::text[], $28::text[], $29::jsonb[], $30::timestamptz[])
             ON CONFLICT (account_id, customer_id, custom_field_id) DO UPDATE SET
                 custom_field_value_id = excluded.custom_field_value_id, name = excluded.name,
                 type = excluded.type, value = excluded.value, value_json = excluded.value_json,
                 updated_at = excluded.updated_at)
         INSERT INTO lightspeed.credit_accounts (account_id, customer_id, credit_account_id,
             name, balance, credit_limit, gift_card, archived, updated_at, raw)
         SELECT $1, u.c, u.id, u.name, u.balance::numeric, u.credit_limit::numeric, u.gift,
             u.archived, u.ts, u.raw
         FROM UNNEST($31::bigint[], $32::bigint[], $33::text[], $34::text[], $35::text[],
             $36::bool[], $37::bool[], $38::timestamptz[], $39::jsonb[])
             AS u(c, id, name, balance, credit_limit, gift, archived, ts, raw)
         ON CONFLICT (account_id, credit_account_id) DO UPDATE SET
             customer_id = excluded.customer_id, name = excluded.name,
             balance = excluded.balance, credit_limit = excluded.credit_limit,
             gift_card = excluded.gift_card, archived = excluded.archived,
             updated_at = excluded.updated_at, raw = excluded.raw",
    )
    .bind(account_id)
    .bind(e_id)
    .bind(e_pos)
    .bind(e_addr)
    .bind(e_use)
    .bind(p_id)
    .bind(p_pos)
    .bind(p_num)
    .bind(p_use)
    .bind(a_id)
    .bind(a_pos)
    .bind(a1)
    .bind(a2)
    .bind(city)
    .bind(state)
    .bind(state_code)
    .bind(zip)
    .bind(country)
    .bind(country_code)
    .bind(w_id)
    .bind(w_pos)
    .bind(w_url)
    .bind(col(&values, |(c, _)| *c))
    .bind(col(&values, |(_, v)| v.custom_field_id))
    .bind(col(&values, |(_, v)| v.custom_field_value_id))
    .bind(col(&values, |(_, v)| v.name.as_str()))
    .bind(col(&values, |(_, v)| v.kind.as_str()))
    .bind(col(&values, |(_, v)| v.value.as_deref()))
    .bind(col(&values, |(_, v)| sqlx::types::Json(&v.value_json)))
    .bind(col(&values, |(_, v)| v.updated_at))
    .bind(col(&credits, |(c, _)| *c))
    .bind(col(&credits, |(_, a)| a.credit_account_id))
    .bind(col(&credits, |(_, a)| a.name.as_deref()))
    .bind(col(&credits, |(_, a)| a.balance.as_deref()))
    .bind(col(&credits, |(_, a)| a.credit_limit.as_deref()))
    .bind(col(&credits, |(_, a)| a.gift_card))
    .bind(col(&credits, |(_, a)| a.archived))
    .bind(col(&credits, |(_, a)| a.updated_at))
    .bind(col(&credits, |(_, a)| {
        sqlx::types::Json(serde_json::from_str::<Value>(&a.raw).unwrap_or(Value::Null))
    }))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Upsert a page of custom field definitions (marked seen now).
pub async fn upsert_custom_fields(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[CustomFieldDefRow],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "INSERT INTO lightspeed.custom_fields AS f (account_id, custom_field_id, name, type, uom,
             decimal_precision, archived, raw, synced_at, deleted_at)
         SELECT $1, *, now(), NULL FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[],
             $6::int[], $7::bool[], $8::jsonb[])
         ON CONFLICT (account_id, custom_field_id) DO UPDATE SET name = excluded.name,
             type = excluded.type, uom = excluded.uom,
             decimal_precision = excluded.decimal_precision, archived = excluded.archived,
             raw = excluded.raw, synced_at = now(), deleted_at = NULL",
    )
    .bind(account_id)
    .bind(col(rows, |r| r.custom_field_id))
    .bind(col(rows, |r| r.name.clone()))
    .bind(col(rows, |r| r.kind.clone()))
    .bind(col(rows, |r| r.uom.clone()))
    .bind(col(rows, |r| r.decimal_precision))
    .bind(col(rows, |r| r.archived))
    .bind(col(rows, |r| sqlx::types::Json(r.raw.as_ref())))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Upsert a page of customer types (marked seen now).
pub async fn upsert_customer_types(
    conn: &mut PgConnection,
    account_id: AccountId,
    rows: &[CustomerTypeRow],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "INSERT INTO lightspeed.customer_types (account_id, customer_type_id, name,
             tax_category_id, discount_id, raw, synced_at, deleted_at)
         SELECT $1, *, now(), NULL FROM UNNEST($2::bigint[], $3::text[], $4::bigint[],
             $5::bigint[], $6::jsonb[])
         ON CONFLICT (account_id, customer_type_id) DO UPDATE SET name = excluded.name,
             tax_category_id = excluded.tax_category_id, discount_id = excluded.discount_id,
             raw = excluded.raw, synced_at = now(), deleted_at = NULL",
    )
    .bind(account_id)
    .bind(col(rows, |r| r.customer_type_id))
    .bind(col(rows, |r| r.name.clone()))
    .bind(col(rows, |r| r.tax_category_id))
    .bind(col(rows, |r| r.discount_id))
    .bind(col(rows, |r| sqlx::types::Json(r.raw.as_ref())))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A table of definitions walked whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definitions {
    /// `lightspeed.custom_fields`
    CustomFields,
    /// `lightspeed.customer_types`
    CustomerTypes,
}

/// After a complete walk of `table` that started at `walk_started_at`: mark the definitions it no
/// longer listed as deleted (customer types are deleted for good upstream). Returns how many.
pub async fn mark_unseen_definitions_deleted(
    conn: &mut PgConnection,
    account_id: AccountId,
    table: Definitions,
    walk_started_at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let table = match table {
        Definitions::CustomFields => "custom_fields",
        Definitions::CustomerTypes => "customer_types",
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE lightspeed.{table} SET deleted_at = now()
         WHERE account_id = $1 AND synced_at < $2 AND deleted_at IS NULL"
    )))
    .bind(account_id)
    .bind(walk_started_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// After a complete full walk that started at `walk_started_at`: mark every customer of the account not
/// seen since then as deleted upstream. Returns how many were marked.
pub async fn mark_unseen_deleted(
    conn: &mut PgConnection,
    account_id: AccountId,
    walk_started_at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE lightspeed.customers SET deleted_at = now()
         WHERE account_id = $1 AND synced_at < $2 AND deleted_at IS NULL",
    )
    .bind(account_id)
    .bind(walk_started_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Upsert an account as `Account.json` lists it: its name, and `raw.Account` (the detail already
/// stored, if any, is kept until the next one replaces it).
pub async fn upsert_listed_account(
    conn: &mut PgConnection,
    account_id: AccountId,
    name: &str,
    raw: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lightspeed.accounts (account_id, name, raw, synced_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (account_id) DO UPDATE SET name = excluded.name,
             raw = lightspeed.accounts.raw || excluded.raw, synced_at = now()",
    )
    .bind(account_id)
    .bind(name)
    .bind(raw)
    .execute(conn)
    .await?;
    Ok(())
}

/// Enrich an account row with its detail (`Account/{id}.json`), kept whole in `raw.detail`.
pub async fn enrich_account(
    conn: &mut PgConnection,
    account_id: AccountId,
    status: Option<&str>,
    currency_code: Option<&str>,
    detail: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lightspeed.accounts SET status = $2, currency_code = $3,
             raw = raw || jsonb_build_object('detail', $4::jsonb), synced_at = now()
         WHERE account_id = $1",
    )
    .bind(account_id)
    .bind(status)
    .bind(currency_code)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}
