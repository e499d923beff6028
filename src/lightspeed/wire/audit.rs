//! What a record holds that the client does not expect: fields it does not know and values of an
//! unexpected kind, named by path and kind, never by value (`doctor` prints them, and a bug report
//! may quote them). The parsers accept all of these (an unknown field is kept in `raw`; a number
//! where a string was expected is read as its text), so an audit finding is a note, not a failure.
//!
//! The expected shapes are those of the fact sheet (§2, §4, §5, §6) and of `../shared/recorded/`.

use std::collections::BTreeSet;

use serde_json::Value;

/// The expected shape of a value.
#[derive(Debug)]
pub enum Shape {
    /// A JSON string (the API sends every scalar as one).
    Text,
    /// An object with these known fields (others are findings; missing ones are not).
    Object(&'static [(&'static str, Shape)]),
    /// A relation container: `""`, or `{"<Key>": one-or-many <item>}`.
    Container(&'static str, &'static Shape),
    /// One object or an array of them.
    OneOrMany(&'static Shape),
    /// Anything (a relation the mirror keeps only in `raw`).
    Any,
}

const ADDRESS: Shape = Shape::Object(&[
    ("address1", Shape::Text),
    ("address2", Shape::Text),
    ("city", Shape::Text),
    ("state", Shape::Text),
    ("stateCode", Shape::Text),
    ("zip", Shape::Text),
    ("country", Shape::Text),
    ("countryCode", Shape::Text),
]);
const PHONE: Shape = Shape::Object(&[("number", Shape::Text), ("useType", Shape::Text)]);
const EMAIL: Shape = Shape::Object(&[("address", Shape::Text), ("useType", Shape::Text)]);
const WEBSITE: Shape = Shape::Object(&[("url", Shape::Text)]);
const CONTACT: Shape = Shape::Object(&[
    ("custom", Shape::Text),
    ("noEmail", Shape::Text),
    ("noPhone", Shape::Text),
    ("noMail", Shape::Text),
    ("timeStamp", Shape::Text),
    ("Addresses", Shape::Container("ContactAddress", &ADDRESS)),
    ("Phones", Shape::Container("ContactPhone", &PHONE)),
    ("Emails", Shape::Container("ContactEmail", &EMAIL)),
    ("Websites", Shape::Container("ContactWebsite", &WEBSITE)),
]);

/// `Note` (fact sheet §6.1; the 2019 recording).
const NOTE: Shape = Shape::Object(&[
    ("note", Shape::Text),
    ("isPublic", Shape::Text),
    ("timeStamp", Shape::Text),
]);
/// `CreditAccount` (creditaccount.md of the koop-voor-hoop docs mirror; the 2019 recording).
const CREDIT_ACCOUNT: Shape = Shape::Object(&[
    ("creditAccountID", Shape::Text),
    ("name", Shape::Text),
    ("code", Shape::Text),
    ("creditLimit", Shape::Text),
    ("description", Shape::Text),
    ("giftCard", Shape::Text),
    ("archived", Shape::Text),
    ("timeStamp", Shape::Text),
    ("customerID", Shape::Text),
    ("balance", Shape::Text),
]);
/// `CustomerType` (customertype.md).
pub const CUSTOMER_TYPE: Shape = Shape::Object(&[
    ("customerTypeID", Shape::Text),
    ("name", Shape::Text),
    ("taxCategoryID", Shape::Text),
    ("discountID", Shape::Text),
    ("Discount", Shape::Any),
    ("TaxCategory", Shape::Any),
]);
/// A `CustomField` definition (customer-customfield.md).
pub const CUSTOM_FIELD: Shape = Shape::Object(&[
    ("customFieldID", Shape::Text),
    ("type", Shape::Text),
    ("name", Shape::Text),
    ("uom", Shape::Text),
    ("decimalPrecision", Shape::Text),
    ("archived", Shape::Text),
    ("default", Shape::Any),
    ("timeStamp", Shape::Text),
]);
/// One `CustomFieldValue` (customer-customfield.md); `value` is a string or, for the choice types,
/// choice objects in a shape no sample shows (see `relations.rs`).
const CUSTOM_FIELD_VALUE: Shape = Shape::Object(&[
    ("customFieldValueID", Shape::Text),
    ("value", Shape::Any),
    ("name", Shape::Text),
    ("type", Shape::Text),
    ("deleted", Shape::Text),
    ("customFieldID", Shape::Text),
    ("timeStamp", Shape::Text),
]);

/// A `Customer` record (fact sheet §6.1; `contactID`, `employeeID`, `noteID` and `measurementID`
/// from the 2016 recording and the API's generated spec; the relations the mirror keeps in `raw`).
pub const CUSTOMER: Shape = Shape::Object(&[
    ("customerID", Shape::Text),
    ("firstName", Shape::Text),
    ("lastName", Shape::Text),
    ("title", Shape::Text),
    ("company", Shape::Text),
    ("companyRegistrationNumber", Shape::Text),
    ("vatNumber", Shape::Text),
    ("dob", Shape::Text),
    ("archived", Shape::Text),
    ("createTime", Shape::Text),
    ("timeStamp", Shape::Text),
    ("creditAccountID", Shape::Text),
    ("customerTypeID", Shape::Text),
    ("discountID", Shape::Text),
    ("taxCategoryID", Shape::Text),
    ("contactID", Shape::Text),
    ("employeeID", Shape::Text),
    ("noteID", Shape::Text),
    ("measurementID", Shape::Text),
    ("Contact", CONTACT),
    ("CreditAccount", CREDIT_ACCOUNT),
    ("CustomerType", CUSTOMER_TYPE),
    ("Discount", Shape::Any),
    ("Note", NOTE),
    ("TaxCategory", Shape::Any),
    // Unverified on a Customer (fact sheet §14): every plausible shape is parsed (`relations.rs`).
    ("Tags", Shape::Any),
    (
        "CustomFieldValues",
        Shape::Container("CustomFieldValue", &CUSTOM_FIELD_VALUE),
    ),
]);

const LINK: Shape = Shape::Object(&[("@attributes", Shape::Object(&[("href", Shape::Text)]))]);
const CURRENCY: Shape = Shape::Object(&[
    ("code", Shape::Text),
    ("symbol", Shape::Text),
    ("rate", Shape::Text),
]);

/// An `Account` of `Account.json` (the 2015–2016 recordings).
pub const ACCOUNT: Shape = Shape::Object(&[
    ("accountID", Shape::Text),
    ("name", Shape::Text),
    ("link", LINK),
]);

/// The detail of `Account/{id}.json`, bare (the documentation sample) or the inside of a wrapped one.
pub const ACCOUNT_DETAIL: Shape = Shape::Object(&[
    (
        "@attributes",
        Shape::Object(&[("systemCustomerID", Shape::Text), ("count", Shape::Text)]),
    ),
    ("accountID", Shape::Text),
    ("name", Shape::Text),
    ("status", Shape::Text),
    ("employeeCount", Shape::Text),
    ("employeeLimit", Shape::Text),
    ("uniqueSubscriptionIdentifier", Shape::Text),
    ("defaultCurrency", CURRENCY),
    (
        "purchasingCurrencies",
        Shape::Container("purchasingCurrency", &CURRENCY),
    ),
    ("link", LINK),
]);

/// The findings for `value` against `shape` at `path`, added to `out` as "`path`: what" lines.
pub fn audit(value: &Value, shape: &Shape, path: &str, out: &mut BTreeSet<String>) {
    match shape {
        Shape::Any => {}
        Shape::Text => {
            if !value.is_string() {
                out.insert(format!(
                    "`{path}`: {} where a string was expected",
                    kind(value)
                ));
            }
        }
        Shape::Object(fields) => {
            let Value::Object(map) = value else {
                if !is_empty(value) {
                    out.insert(format!(
                        "`{path}`: {} where an object was expected",
                        kind(value)
                    ));
                }
                return;
            };
            for (key, v) in map {
                let sub = join(path, key);
                match fields.iter().find(|(k, _)| k == key) {
                    Some((_, s)) => audit(v, s, &sub, out),
                    None => {
                        out.insert(format!("`{sub}`: unexpected field ({})", kind(v)));
                    }
                }
            }
        }
        Shape::Container(key, item) => match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let sub = join(path, k);
                    if k == key {
                        audit(v, &Shape::OneOrMany(item), &sub, out);
                    } else {
                        out.insert(format!("`{sub}`: unexpected field ({})", kind(v)));
                    }
                }
            }
            v if is_empty(v) => {}
            v => {
                out.insert(format!(
                    "`{path}`: {} where `\"\"` or an object with `{key}` was expected",
                    kind(v)
                ));
            }
        },
        Shape::OneOrMany(item) => match value {
            Value::Array(items) => {
                let sub = format!("{path}[]");
                for v in items {
                    audit(v, item, &sub, out);
                }
            }
            v => audit(v, item, path, out),
        },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The kind of a value, never the value itself.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(a) if a.is_empty() => "an empty array",
        Value::Array(_) => "an array",
        Value::Object(o) if o.is_empty() => "an empty object",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn findings(v: Value, shape: &Shape, path: &str) -> Vec<String> {
        let mut out = BTreeSet::new();
        audit(&v, shape, path, &mut out);
        out.into_iter().collect()
    }

    #[test]
    fn recorded_customers_have_no_findings() {
        let body = include_str!("../../../../shared/recorded/mp-2019-customer-list.json");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            findings(v["Customer"].clone(), &CUSTOMER, "Customer"),
            Vec::<String>::new()
        );
        let body = include_str!("../../../../shared/recorded/doc-samples/searching-customers.json");
        let v: Value = serde_json::from_str(body).unwrap();
        let f = findings(
            v["Customer"].clone(),
            &Shape::OneOrMany(&CUSTOMER),
            "Customer",
        );
        assert_eq!(f, Vec::<String>::new());
        let body = include_str!("../../../../shared/recorded/doc-samples/account-detail.json");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(findings(v, &ACCOUNT_DETAIL, ""), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_and_kinds_are_named_without_values() {
        let v = json!({"customerID": 7, "firstName": "Zoë", "secretField": "hunter2",
            "Contact": {"Emails": {"ContactEmail": [{"address": "a@b.c", "verified": "true"}]},
                        "Phones": "x", "Addresses": {"Other": {}}}});
        let f = findings(v, &CUSTOMER, "Customer");
        assert_eq!(
            f,
            vec![
                "`Customer.Contact.Addresses.Other`: unexpected field (an empty object)",
                "`Customer.Contact.Emails.ContactEmail[].verified`: unexpected field (a string)",
                "`Customer.Contact.Phones`: a string where `\"\"` or an object with `ContactPhone` was expected",
                "`Customer.customerID`: a number where a string was expected",
                "`Customer.secretField`: unexpected field (a string)",
            ]
        );
        assert!(
            !f.iter()
                .any(|l| l.contains("hunter2") || l.contains("a@b.c"))
        );
    }
}
