//! Wire rendering, written from the fact sheet (§4, §6) and nothing else: every number and
//! boolean is a string, foreign keys are `"0"` when unset, empty scalars are `""`, empty relation
//! containers are `""`, one entry is an object and several an array. Rendering is plain string
//! concatenation so pages are cheap; callers cache per-customer fragments.

use chrono::DateTime;

use super::data::{
    Address, Contact, Credit, Customer, Dob, FieldDef, FieldVal, FieldValue, Note, TypeDef,
};

/// The relations of a Customer request, as bits (`load_relations`).
pub(crate) mod rel {
    pub(crate) const CONTACT: u16 = 1;
    pub(crate) const CUSTOMER_TYPE: u16 = 2;
    pub(crate) const NOTE: u16 = 4;
    pub(crate) const CREDIT_ACCOUNT: u16 = 8;
    pub(crate) const TAGS: u16 = 16;
    pub(crate) const CUSTOM_FIELD_VALUES: u16 = 32;
    pub(crate) const DISCOUNT: u16 = 64;
    pub(crate) const TAX_CATEGORY: u16 = 128;
}

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
    let mut o = customer_open(c);
    if with_contact {
        o.push_str(&contact_fragment(c));
    }
    o.push('}');
    o
}

/// `,"Contact":{…}`.
pub(crate) fn contact_fragment(c: &Customer) -> String {
    let mut o = String::with_capacity(450);
    o.push_str(",\"Contact\":");
    contact(&mut o, &c.contact, c.id.is_multiple_of(2));
    o
}

/// `,"Note":{note, isPublic, timeStamp}` (fact sheet §6.1; the 2019 recording).
pub(crate) fn note_fragment(n: &Note) -> String {
    let mut o = String::from(",\"Note\":{");
    field(&mut o, "note", &n.text);
    field(&mut o, "isPublic", bool_str(n.is_public));
    field(&mut o, "timeStamp", &ts(n.time_stamp));
    o.push('}');
    o
}

/// Cents as the API writes money: `"0"`, `"12.5"`, `"-3.25"`.
pub(crate) fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let (whole, frac) = (cents.abs() / 100, cents.abs() % 100);
    match frac {
        0 => format!("{sign}{whole}"),
        f if f % 10 == 0 => format!("{sign}{whole}.{}", f / 10),
        f => format!("{sign}{whole}.{f:02}"),
    }
}

/// `,"CreditAccount":{…}` in the fields of creditaccount.md's samples; nothing when the customer
/// has none (no source shows that case: an absent key is what the parser expects least of all, so
/// the simulator sends it).
pub(crate) fn credit_fragment(k: Option<&Credit>, customer_id: u64) -> String {
    let Some(k) = k else { return String::new() };
    let mut o = String::from(",\"CreditAccount\":{");
    field(&mut o, "creditAccountID", &k.id.to_string());
    field(&mut o, "name", "Customer Credit Account");
    field(&mut o, "code", "");
    field(&mut o, "creditLimit", &money(k.limit_cents));
    field(&mut o, "description", "");
    field(&mut o, "giftCard", "false");
    field(&mut o, "archived", "false");
    field(&mut o, "timeStamp", &ts(k.time_stamp));
    field(&mut o, "customerID", &customer_id.to_string());
    field(&mut o, "balance", &money(k.balance_cents));
    o.push('}');
    o
}

/// `,"Tags":""` or `,"Tags":{"@attributes":{"count":"N"},"tag":one-or-many}`: the shape Lightspeed
/// gives `Tags` on an Item; on a Customer no sample shows a non-empty one (fact sheet §14).
pub(crate) fn tags_fragment(tags: &[String]) -> String {
    let mut o = String::from(",\"Tags\":");
    if tags.is_empty() {
        o.push_str("\"\"");
        return o;
    }
    o.push_str(&format!(
        "{{\"@attributes\":{{\"count\":\"{}\"}},\"tag\":",
        tags.len()
    ));
    one_or_many(&mut o, tags, |o, t| push_str(o, t));
    o.push('}');
    o
}

/// `,"CustomerType":{…}` (customertype.md's fields), nothing when the customer has none or its
/// type was deleted.
pub(crate) fn customer_type_fragment(t: Option<&TypeDef>) -> String {
    match t {
        Some(t) => format!(",\"CustomerType\":{}", customer_type(t)),
        None => String::new(),
    }
}

/// One `CustomerType` record.
pub(crate) fn customer_type(t: &TypeDef) -> String {
    let mut o = String::from("{");
    field(&mut o, "customerTypeID", &t.id.to_string());
    field(&mut o, "name", &t.name);
    field(&mut o, "taxCategoryID", &t.tax_category_id.to_string());
    field(&mut o, "discountID", &t.discount_id.to_string());
    o.push('}');
    o
}

/// One `CustomField` definition (customer-customfield.md's sample).
pub(crate) fn custom_field(d: &FieldDef) -> String {
    let mut o = String::from("{");
    field(&mut o, "customFieldID", &d.id.to_string());
    field(&mut o, "type", d.kind);
    field(&mut o, "name", &d.name);
    field(&mut o, "uom", d.uom);
    field(
        &mut o,
        "decimalPrecision",
        if d.kind == "float" { "1" } else { "0" },
    );
    field(&mut o, "archived", bool_str(d.archived));
    o.push('}');
    o
}

/// `,"CustomFieldValues":""` or `,"CustomFieldValues":{"CustomFieldValue":one-or-many}` (the
/// container convention of fact sheet §4.1; fields of customer-customfield.md). Choice values are
/// choice objects (customer-customfield-customfieldchoice.md): one object for `single_choice`,
/// `{"CustomFieldChoice": one-or-many}` for `multi_choice` (no source shows either: the parser reads
/// both and a bare array).
pub(crate) fn custom_values_fragment(values: &[FieldValue], defs: &[FieldDef]) -> String {
    let mut o = String::from(",\"CustomFieldValues\":");
    if values.is_empty() {
        o.push_str("\"\"");
        return o;
    }
    o.push_str("{\"CustomFieldValue\":");
    one_or_many(&mut o, values, |o, v| {
        let def = defs.iter().find(|d| d.id == v.field_id);
        o.push('{');
        field(o, "customFieldValueID", &v.value_id.to_string());
        field(o, "name", def.map_or("", |d| d.name.as_str()));
        field(o, "type", def.map_or("string", |d| d.kind));
        field(o, "customFieldID", &v.field_id.to_string());
        field(o, "deleted", bool_str(v.deleted));
        field(o, "timeStamp", &ts(v.time_stamp));
        o.push_str(",\"value\":");
        match &v.val {
            FieldVal::Text(t) => push_str(o, t),
            FieldVal::Choices(ids) => {
                let choice = |o: &mut String, id: &u64| {
                    let name = def
                        .and_then(|d| d.choices.iter().find(|(c, _)| c == id))
                        .map_or("", |(_, n)| n.as_str());
                    o.push('{');
                    field(o, "customFieldChoiceID", &id.to_string());
                    field(o, "name", name);
                    field(o, "value", "");
                    field(o, "canBeDeleted", "false");
                    field(o, "customFieldID", &v.field_id.to_string());
                    o.push('}');
                };
                if def.is_some_and(|d| d.kind == "multi_choice") {
                    o.push_str("{\"CustomFieldChoice\":");
                    one_or_many(o, ids, choice);
                    o.push('}');
                } else if let Some(id) = ids.first() {
                    choice(o, id);
                } else {
                    o.push_str("\"\"");
                }
            }
        }
        o.push('}');
    });
    o.push('}');
    o
}

/// A list page of any resource: `{"@attributes":{"next","previous"},"<key>":one-or-many}`.
pub(crate) fn list_page(key: &str, next: &str, previous: &str, records: &[String]) -> String {
    let mut o = String::from("{\"@attributes\":{");
    field(&mut o, "next", next);
    field(&mut o, "previous", previous);
    o.push('}');
    if !records.is_empty() {
        o.push_str(&format!(",\"{key}\":"));
        one_or_many(&mut o, records, |o, r| o.push_str(r));
    }
    o.push('}');
    o
}

/// The customer's own fields, as an unclosed object (`{"customerID":…,"taxCategoryID":"0"`).
pub(crate) fn customer_open(c: &Customer) -> String {
    let mut o = String::with_capacity(1200);
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
pub(crate) fn page<R: AsRef<str>>(next: &str, previous: &str, records: &[R]) -> String {
    let size: usize = records.iter().map(|r| r.as_ref().len() + 1).sum();
    let mut o = String::with_capacity(size + next.len() + previous.len() + 64);
    o.push_str("{\"@attributes\":{");
    field(&mut o, "next", next);
    field(&mut o, "previous", previous);
    o.push('}');
    if !records.is_empty() {
        o.push_str(",\"Customer\":");
        one_or_many(&mut o, records, |o, r| o.push_str(r.as_ref()));
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
