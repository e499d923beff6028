//! Wire rendering, written from the fact sheet (§4, §6) and nothing else: every number and
//! boolean is a string, foreign keys are `"0"` when unset, empty scalars are `""`, empty relation
//! containers are `""`, one entry is an object and several an array. Rendering is plain string
//! concatenation so pages are cheap; callers cache per-customer fragments.

use chrono::DateTime;

use super::data::{Address, Contact, Customer, Dob};

/// `2019-04-29T08:40:04+00:00` for Unix seconds `t`.
pub(crate) fn ts(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// Append `s` as a JSON string literal (UTF-8 kept as is).
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '/' => out.push_str("\\/"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Append `"key":"value"` (with a leading comma unless `first`).
fn field(out: &mut String, key: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    push_str(out, value);
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// One customer object; with its `Contact` when `with_contact`.
pub(crate) fn customer(c: &Customer, with_contact: bool) -> String {
    let mut o = String::with_capacity(if with_contact { 900 } else { 450 });
    o.push('{');
    field(&mut o, "customerID", &c.id.to_string());
    field(&mut o, "firstName", &c.first_name);
    field(&mut o, "lastName", &c.last_name);
    field(&mut o, "title", &c.title);
    field(&mut o, "company", &c.company);
    field(&mut o, "companyRegistrationNumber", &c.company_reg);
    field(&mut o, "vatNumber", &c.vat);
    match c.dob {
        Dob::Absent => {}
        Dob::Empty => field(&mut o, "dob", ""),
        Dob::At(t) => field(&mut o, "dob", &ts(t)),
    }
    field(&mut o, "archived", bool_str(c.archived));
    field(&mut o, "createTime", &ts(c.create_time));
    field(&mut o, "timeStamp", &ts(c.time_stamp));
    field(&mut o, "creditAccountID", &c.credit_account_id.to_string());
    field(&mut o, "customerTypeID", &c.customer_type_id.to_string());
    field(&mut o, "discountID", &c.discount_id.to_string());
    field(&mut o, "taxCategoryID", &c.tax_category_id.to_string());
    if with_contact {
        o.push_str(",\"Contact\":");
        contact(&mut o, &c.contact, c.id.is_multiple_of(2));
    }
    o.push('}');
    o
}

/// A Contact. A customer without an address gets `"Addresses":""` or, when `blank_address`, one
/// `ContactAddress` whose fields are all `""`: the 2019 recording (`mp-2019-customer-list.json`) and
/// the docs' create sample send the latter, the docs' Sale sample the former.
fn contact(o: &mut String, c: &Contact, blank_address: bool) {
    o.push('{');
    field(o, "custom", &c.custom);
    field(o, "noEmail", bool_str(c.no_email));
    field(o, "noPhone", bool_str(c.no_phone));
    field(o, "noMail", bool_str(c.no_mail));
    if c.addresses.is_empty() && blank_address {
        o.push_str(",\"Addresses\":{\"ContactAddress\":");
        address(o, &Address::default());
        o.push('}');
    } else {
        container(o, "Addresses", "ContactAddress", &c.addresses, address);
    }
    container(o, "Phones", "ContactPhone", &c.phones, |o, (n, u)| {
        o.push('{');
        field(o, "number", n);
        field(o, "useType", u);
        o.push('}');
    });
    container(o, "Emails", "ContactEmail", &c.emails, |o, (a, u)| {
        o.push('{');
        field(o, "address", a);
        field(o, "useType", u);
        o.push('}');
    });
    container(o, "Websites", "ContactWebsite", &c.websites, |o, url| {
        o.push('{');
        field(o, "url", url);
        o.push('}');
    });
    field(o, "timeStamp", &ts(c.time_stamp));
    o.push('}');
}

/// `"Outer":""` when empty, `"Outer":{"Inner":{…}}` for one, `"Outer":{"Inner":[…]}` for several.
fn container<T>(
    o: &mut String,
    outer: &str,
    inner: &str,
    items: &[T],
    each: impl Fn(&mut String, &T),
) {
    o.push_str(",\"");
    o.push_str(outer);
    o.push_str("\":");
    if items.is_empty() {
        o.push_str("\"\"");
        return;
    }
    o.push_str("{\"");
    o.push_str(inner);
    o.push_str("\":");
    one_or_many(o, items, each);
    o.push('}');
}

/// An object for one item, an array for several (the caller handles zero).
pub(crate) fn one_or_many<T>(o: &mut String, items: &[T], each: impl Fn(&mut String, &T)) {
    if let [only] = items {
        each(o, only);
        return;
    }
    o.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        each(o, item);
    }
    o.push(']');
}

fn address(o: &mut String, a: &Address) {
    o.push('{');
    field(o, "address1", &a.address1);
    field(o, "address2", &a.address2);
    field(o, "city", &a.city);
    field(o, "state", &a.state);
    field(o, "stateCode", &a.state_code);
    field(o, "zip", &a.zip);
    field(o, "country", &a.country);
    field(o, "countryCode", &a.country_code);
    o.push('}');
}

/// A list page: `{"@attributes":{"next":…,"previous":…},"Customer":…}`, key absent when empty.
pub(crate) fn page(next: &str, previous: &str, records: &[&str]) -> String {
    let size: usize = records.iter().map(|r| r.len() + 1).sum();
    let mut o = String::with_capacity(size + next.len() + previous.len() + 64);
    o.push_str("{\"@attributes\":{");
    field(&mut o, "next", next);
    field(&mut o, "previous", previous);
    o.push('}');
    if !records.is_empty() {
        o.push_str(",\"Customer\":");
        one_or_many(&mut o, records, |o, r| o.push_str(r));
    }
    o.push('}');
    o
}

/// `{"@attributes":{"count":"N"}}`, optionally followed by `,"Key":record`.
pub(crate) fn counted(n: usize, key: &str, record: Option<&str>) -> String {
    let mut o = format!("{{\"@attributes\":{{\"count\":\"{n}\"}}");
    if let Some(r) = record {
        o.push_str(&format!(",\"{key}\":{r}"));
    }
    o.push('}');
    o
}

/// The short Account object of `Account.json` (the 2016 recording: `accountID`, `name`, `link`).
pub(crate) fn account_short(id: u64, name: &str) -> String {
    let mut o = String::from("{");
    field(&mut o, "accountID", &id.to_string());
    field(&mut o, "name", name);
    o.push_str(",\"link\":{\"@attributes\":{");
    field(&mut o, "href", &format!("/API/V3/Account/{id}"));
    o.push_str("}}}");
    o
}

/// The body of `Account/{id}.json`. Bare (the default) follows the vendor's documentation sample
/// (`recorded/doc-samples/account-detail.json`): `@attributes.systemCustomerID` and the fields at the
/// top level, no `Account` key, no `accountID`, no `link`. Wrapped puts the same fields, with
/// `accountID` first, in `{"@attributes":{"count":"1"},"Account":{…}}` like other single GETs.
pub(crate) fn account_detail(id: u64, name: &str, wrapped: bool) -> String {
    let mut o = String::from("{");
    if wrapped {
        field(&mut o, "accountID", &id.to_string());
    } else {
        o.push_str(&format!(
            "\"@attributes\":{{\"systemCustomerID\":\"{}\"}}",
            id * 7 + 3
        ));
    }
    field(&mut o, "status", "customer");
    field(&mut o, "name", name);
    field(&mut o, "employeeCount", &(id % 9 + 1).to_string());
    field(&mut o, "employeeLimit", "10");
    field(
        &mut o,
        "uniqueSubscriptionIdentifier",
        &format!("ls-r-{id:x}"),
    );
    o.push_str(",\"defaultCurrency\":{\"code\":\"CAD\",\"symbol\":\"$\"}");
    o.push_str(",\"purchasingCurrencies\":{\"purchasingCurrency\":");
    let currencies = if id.is_multiple_of(2) {
        &["CAD"][..]
    } else {
        &["CAD", "USD", "EUR"][..]
    };
    one_or_many(&mut o, currencies, |o, c| {
        o.push_str(&format!(
            "{{\"code\":\"{c}\",\"symbol\":\"{}\",\"rate\":\"1\"}}",
            if *c == "EUR" { "€" } else { "$" }
        ));
    });
    o.push_str("}}");
    if wrapped {
        counted(1, "Account", Some(&o))
    } else {
        o
    }
}

/// The classic API error body, e.g. `{"httpCode":"400","httpMessage":"Bad Request",…}`.
pub(crate) fn classic_error(code: u16, message: &str, error_class: &str) -> String {
    let reason = axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut o = String::from("{");
    field(&mut o, "httpCode", &code.to_string());
    field(&mut o, "httpMessage", reason);
    field(&mut o, "message", message);
    field(&mut o, "errorClass", error_class);
    o.push('}');
    o
}

/// The OAuth-style error body `{"error","error_description","hint"}`.
pub(crate) fn oauth_error(error: &str, description: &str, hint: &str) -> String {
    let mut o = String::from("{");
    field(&mut o, "error", error);
    field(&mut o, "error_description", description);
    field(&mut o, "hint", hint);
    o.push('}');
    o
}
