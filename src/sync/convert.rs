//! Wire records to mirror rows. Pure functions, no I/O.

use crate::db::mirror::{AddressRow, CustomerRow};
use crate::lightspeed::wire::Customer;

/// The mirror row of a customer (the wire record is consumed; its `raw` JSON moves into the row).
pub fn customer_row(c: Customer) -> CustomerRow {
    let contact = c.contact.unwrap_or_default();
    CustomerRow {
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
