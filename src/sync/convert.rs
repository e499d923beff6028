//! Wire records to mirror rows, and a page's records to the rows it writes. Pure functions, no I/O.

use crate::db::mirror::{
    AddressRow, CreditAccountRow, CustomFieldDefRow, CustomFieldValueRow, CustomerRow,
    CustomerTypeRow,
};
use crate::lightspeed::wire::{CustomField, Customer, CustomerType};

/// The mirror row of a custom field definition.
pub fn custom_field_row(f: CustomField) -> CustomFieldDefRow {
    CustomFieldDefRow {
        custom_field_id: f.custom_field_id as i64,
        name: f.name,
        kind: f.kind,
        uom: f.uom,
        decimal_precision: f.decimal_precision,
        archived: f.archived,
        raw: f.raw,
    }
}

/// The mirror row of a customer type.
pub fn customer_type_row(t: CustomerType) -> CustomerTypeRow {
    CustomerTypeRow {
        customer_type_id: t.customer_type_id as i64,
        name: t.name,
        tax_category_id: t.tax_category_id,
        discount_id: t.discount_id,
        raw: t.raw,
    }
}

/// The rows a page of customers writes: one per customer ID, the newest version of each (a
/// record edited while the walk runs shows up twice), in ID order.
pub fn customer_rows(records: Vec<Customer>) -> Vec<CustomerRow> {
    dedupe_newest(records.into_iter().map(customer_row).collect())
}

/// Keep one row per customer ID (the newest `updated_at`, the later one on a tie), in ID order.
pub fn dedupe_newest(rows: Vec<CustomerRow>) -> Vec<CustomerRow> {
    let mut out: Vec<CustomerRow> = Vec::with_capacity(rows.len());
    let mut index = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        match index.get(&row.customer_id) {
            Some(&i) => {
                let kept: &mut CustomerRow = &mut out[i];
                if row.updated_at >= kept.updated_at {
                    *kept = row;
                }
            }
            None => {
                index.insert(row.customer_id, out.len());
                out.push(row);
            }
        }
    }
    // Pages are committed several at once and may share customers (a record edited while the walk
    // runs shows up on two pages): rows locked in one order, by ID, cannot deadlock each other.
    out.sort_unstable_by_key(|r| r.customer_id);
    out
}

/// The mirror row of a customer (the wire record is consumed; its `raw` JSON moves into the row).
pub fn customer_row(c: Customer) -> CustomerRow {
    let contact = c.contact.unwrap_or_default();
    let note = c.note.unwrap_or_default();
    CustomerRow {
        contact_custom: contact.custom,
        note: note.note,
        note_is_public: note.is_public,
        tags: c.tags,
        websites: contact.websites,
        custom_fields: c
            .custom_fields
            .into_iter()
            .map(|v| CustomFieldValueRow {
                custom_field_id: v.custom_field_id as i64,
                custom_field_value_id: v.custom_field_value_id.map(|i| i as i64),
                name: v.name,
                kind: v.kind,
                value: v.value,
                value_json: v.value_json,
                updated_at: v.time_stamp,
            })
            .collect(),
        credit_account: c.credit_account.map(|a| CreditAccountRow {
            credit_account_id: a.credit_account_id as i64,
            name: a.name,
            balance: a.balance,
            credit_limit: a.credit_limit,
            gift_card: a.gift_card,
            archived: a.archived,
            updated_at: a.time_stamp,
            raw: a.raw,
        }),
        customer_id: c.customer_id as i64,
        first_name: c.first_name,
        last_name: c.last_name,
        title: c.title,
        company: c.company,
        company_registration_number: c.company_registration_number,
        vat_number: c.vat_number,
        dob: c.dob,
        archived: c.archived,
        credit_account_id: c.credit_account_id,
        customer_type_id: c.customer_type_id,
        discount_id: c.discount_id,
        tax_category_id: c.tax_category_id,
        no_email: contact.no_email,
        no_phone: contact.no_phone,
        no_mail: contact.no_mail,
        contact_updated_at: contact.time_stamp,
        created_at: c.create_time,
        updated_at: c.time_stamp,
        raw: c.raw,
        emails: contact
            .emails
            .into_iter()
            .map(|e| (e.address, e.use_type))
            .collect(),
        phones: contact
            .phones
            .into_iter()
            .map(|p| (p.number, p.use_type))
            .collect(),
        addresses: contact
            .addresses
            .into_iter()
            .map(|a| AddressRow {
                address1: a.address1,
                address2: a.address2,
                city: a.city,
                state: a.state,
                state_code: a.state_code,
                zip: a.zip,
                country: a.country,
                country_code: a.country_code,
            })
            .collect(),
    }
}
