//! `Customer` and its `Contact` (emails, phones, addresses) as the API sends them (fact sheet §6.1,
//! §5 "What `Contact` contains").

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::scalar::{
    self, describe, flag, foreign_key, id, one_or_many, opt_text, required_time, text, time,
};
use super::{FieldError, Record, field};

/// A customer, typed, with its whole JSON record in `raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// `customerID`.
    pub customer_id: u64,
    /// `firstName` (`""` when empty).
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `title`: the job title.
    pub title: String,
    /// `company`.
    pub company: String,
    /// `companyRegistrationNumber`, `None` when empty.
    pub company_registration_number: Option<String>,
    /// `vatNumber`, `None` when empty.
    pub vat_number: Option<String>,
    /// `dob`, `None` when absent or empty.
    pub dob: Option<DateTime<Utc>>,
    /// `archived` (false when absent).
    pub archived: bool,
    /// `createTime`.
    pub create_time: Option<DateTime<Utc>>,
    /// `timeStamp`: last modified.
    pub time_stamp: DateTime<Utc>,
    /// `creditAccountID`, `None` for `"0"`.
    pub credit_account_id: Option<i64>,
    /// `customerTypeID`, `None` for `"0"`.
    pub customer_type_id: Option<i64>,
    /// `discountID`, `None` for `"0"`.
    pub discount_id: Option<i64>,
    /// `taxCategoryID`, `None` for `"0"`.
    pub tax_category_id: Option<i64>,
    /// The `Contact` relation, when loaded and not empty.
    pub contact: Option<Contact>,
    /// The whole record as received.
    pub raw: Value,
}

/// A customer's contact details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    /// `noEmail`.
    pub no_email: Option<bool>,
    /// `noPhone`.
    pub no_phone: Option<bool>,
    /// `noMail`.
    pub no_mail: Option<bool>,
    /// `timeStamp` of the contact.
    pub time_stamp: Option<DateTime<Utc>>,
    /// `Emails.ContactEmail`.
    pub emails: Vec<Email>,
    /// `Phones.ContactPhone`.
    pub phones: Vec<Phone>,
    /// `Addresses.ContactAddress`.
    pub addresses: Vec<Address>,
}

/// One `ContactEmail`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Email {
    /// `address`.
    pub address: String,
    /// `useType` (`Primary`, `Secondary`).
    pub use_type: String,
}

/// One `ContactPhone`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phone {
    /// `number`.
    pub number: String,
    /// `useType` (`Home`, `Work`, `Mobile`, `Pager`, `Fax`).
    pub use_type: String,
}

/// One `ContactAddress`; empty fields are `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// `address1`.
    pub address1: String,
    /// `address2`.
    pub address2: String,
    /// `city`.
    pub city: String,
    /// `state`.
    pub state: String,
    /// `stateCode`.
    pub state_code: String,
    /// `zip`.
    pub zip: String,
    /// `country`.
    pub country: String,
    /// `countryCode`.
    pub country_code: String,
}

impl Record for Customer {
    const KEY: &'static str = "Customer";
    const ID_FIELD: &'static str = "customerID";

    fn from_json(obj: Map<String, Value>) -> Result<Self, FieldError> {
        let g = |k: &str| obj.get(k);
        let customer = Customer {
            customer_id: field("customerID", id(g("customerID")))?,
            first_name: field("firstName", text(g("firstName")))?,
            last_name: field("lastName", text(g("lastName")))?,
            title: field("title", text(g("title")))?,
            company: field("company", text(g("company")))?,
            company_registration_number: field(
                "companyRegistrationNumber",
                opt_text(g("companyRegistrationNumber")),
            )?,
            vat_number: field("vatNumber", opt_text(g("vatNumber")))?,
            dob: field("dob", time(g("dob")))?,
            archived: field("archived", flag(g("archived")))?.unwrap_or(false),
            create_time: field("createTime", time(g("createTime")))?,
            time_stamp: field("timeStamp", required_time(g("timeStamp")))?,
            credit_account_id: field("creditAccountID", foreign_key(g("creditAccountID")))?,
            customer_type_id: field("customerTypeID", foreign_key(g("customerTypeID")))?,
            discount_id: field("discountID", foreign_key(g("discountID")))?,
            tax_category_id: field("taxCategoryID", foreign_key(g("taxCategoryID")))?,
            contact: contact(g("Contact"))?,
            raw: Value::Null,
        };
        Ok(Customer {
            raw: Value::Object(obj),
            ..customer
        })
    }
}

/// `Contact`: absent, `""` or `null` → `None`; an object (or an array of one) → `Some`.
fn contact(v: Option<&Value>) -> Result<Option<Contact>, FieldError> {
    let obj = match v {
        Some(Value::Object(m)) => m,
        Some(Value::Array(items)) if items.len() == 1 => match &items[0] {
            Value::Object(m) => m,
            other => return Err(bad("Contact", other)),
        },
        v if scalar::is_empty(v) => return Ok(None),
        Some(other) => return Err(bad("Contact", other)),
        None => return Ok(None),
    };
    let g = |k: &str| obj.get(k);
    Ok(Some(Contact {
        no_email: field("Contact.noEmail", flag(g("noEmail")))?,
        no_phone: field("Contact.noPhone", flag(g("noPhone")))?,
        no_mail: field("Contact.noMail", flag(g("noMail")))?,
        time_stamp: field("Contact.timeStamp", time(g("timeStamp")))?,
        emails: entries(obj, "Emails", "ContactEmail", |e, f| {
            Ok(Email {
                address: f("address", text(e.get("address")))?,
                use_type: f("useType", text(e.get("useType")))?,
            })
        })?,
        phones: entries(obj, "Phones", "ContactPhone", |e, f| {
            Ok(Phone {
                number: f("number", text(e.get("number")))?,
                use_type: f("useType", text(e.get("useType")))?,
            })
        })?,
        addresses: entries(obj, "Addresses", "ContactAddress", |a, f| {
            Ok(Address {
                address1: f("address1", text(a.get("address1")))?,
                address2: f("address2", text(a.get("address2")))?,
                city: f("city", text(a.get("city")))?,
                state: f("state", text(a.get("state")))?,
                state_code: f("stateCode", text(a.get("stateCode")))?,
                zip: f("zip", text(a.get("zip")))?,
                country: f("country", text(a.get("country")))?,
                country_code: f("countryCode", text(a.get("countryCode")))?,
            })
        })?,
    }))
}

type Namer<'a> = &'a dyn Fn(&str, Result<String, scalar::Problem>) -> Result<String, FieldError>;

/// The entries of `Contact.<container>.<item>`: `""`/missing → none, an object → one, an array → many.
fn entries<T>(
    contact: &Map<String, Value>,
    container: &str,
    item: &str,
    convert: impl Fn(&Map<String, Value>, Namer<'_>) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    let path = format!("Contact.{container}");
    let inner = match contact.get(container) {
        Some(Value::Object(m)) => m.get(item),
        v if scalar::is_empty(v) => return Ok(Vec::new()),
        Some(other) => return Err(bad(&path, other)),
        None => return Ok(Vec::new()),
    };
    let list = one_or_many(inner).map_err(|problem| FieldError {
        field: format!("{path}.{item}"),
        problem,
    })?;
    list.into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let namer = |name: &str, r: Result<String, scalar::Problem>| {
                r.map_err(|problem| FieldError {
                    field: format!("{path}.{item}[{i}].{name}"),
                    problem,
                })
            };
            convert(entry, &namer)
        })
        .collect()
}

fn bad(path: &str, v: &Value) -> FieldError {
    FieldError {
        field: path.to_string(),
        problem: format!("expected an object or \"\", got {}", describe(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(v: Value) -> Result<Customer, FieldError> {
        match v {
            Value::Object(m) => Customer::from_json(m),
            _ => unreachable!(),
        }
    }

    /// The Customer docs sample (fact sheet §5, §6.1): strings everywhere, `"0"` keys, `""` containers.
    fn docs_sample() -> Value {
        json!({
            "customerID": "1", "firstName": "Bob", "lastName": "Smith", "title": "", "company": "",
            "companyRegistrationNumber": "", "vatNumber": "", "createTime": "2019-04-29T08:40:04+00:00",
            "timeStamp": "2019-04-29T08:40:04+00:00", "archived": "false", "creditAccountID": "0",
            "customerTypeID": "0", "discountID": "0", "taxCategoryID": "0", "dob": "2019-04-29T04:00:00+00:00",
            "Contact": {
                "custom": "", "noEmail": "false", "noPhone": "false", "noMail": "true",
                "Addresses": {"ContactAddress": {"address1": "1 Main St", "address2": "", "city": "Montréal",
                    "state": "Quebec", "zip": "H2X 1Y4", "country": "Canada", "countryCode": "CA", "stateCode": "QC"}},
                "Phones": "", "Emails": {"ContactEmail": {"address": "bob@example.com", "useType": "Primary"}},
                "Websites": "", "timeStamp": "2019-04-29T08:40:04+00:00"
            },
            "Tags": ""
        })
    }

    #[test]
    fn docs_sample_converts() {
        let c = convert(docs_sample()).unwrap();
        assert_eq!(c.customer_id, 1);
        assert_eq!(
            (
                c.first_name.as_str(),
                c.last_name.as_str(),
                c.title.as_str()
            ),
            ("Bob", "Smith", "")
        );
        assert_eq!((c.company_registration_number, c.vat_number), (None, None));
        assert!(!c.archived);
        assert_eq!(c.time_stamp.to_rfc3339(), "2019-04-29T08:40:04+00:00");
        assert_eq!(c.dob.unwrap().to_rfc3339(), "2019-04-29T04:00:00+00:00");
        assert_eq!(
            (
                c.credit_account_id,
                c.customer_type_id,
                c.discount_id,
                c.tax_category_id
            ),
            (None, None, None, None)
        );
        let contact = c.contact.unwrap();
        assert_eq!(
            (contact.no_email, contact.no_mail),
            (Some(false), Some(true))
        );
        assert_eq!(
            contact.emails,
            vec![Email {
                address: "bob@example.com".into(),
                use_type: "Primary".into()
            }]
        );
        assert!(contact.phones.is_empty());
        assert_eq!(contact.addresses[0].city, "Montréal");
        assert_eq!(contact.addresses[0].state_code, "QC");
        assert_eq!(c.raw["Tags"], json!(""), "the whole record is kept");
    }

    #[test]
    fn several_entries_are_arrays_and_foreign_keys_are_kept() {
        let mut v = docs_sample();
        v["creditAccountID"] = json!("17");
        v["archived"] = json!(true);
        v["Contact"]["Phones"] = json!({"ContactPhone": [
            {"number": "555-1234", "useType": "Home"}, {"number": "555-9876", "useType": "Mobile"}]});
        v["Contact"]["Emails"] = json!({"ContactEmail": []});
        v["Contact"]["Addresses"] = json!("");
        let c = convert(v).unwrap();
        assert_eq!(c.credit_account_id, Some(17));
        assert!(c.archived);
        let contact = c.contact.unwrap();
        assert_eq!(contact.phones.len(), 2);
        assert_eq!(contact.phones[1].use_type, "Mobile");
        assert!(contact.emails.is_empty() && contact.addresses.is_empty());
    }

    #[test]
    fn minimal_record_without_contact_or_dob() {
        let c = convert(
            json!({"customerID": 5, "timeStamp": "2026-01-01T00:00:00+00:00", "title": {}}),
        )
        .unwrap();
        assert_eq!(c.customer_id, 5);
        assert_eq!(
            (c.dob, c.create_time, c.contact.clone()),
            (None, None, None)
        );
        assert_eq!(c.title, "");
        let c = convert(json!({"customerID": "5", "timeStamp": "2026-01-01T00:00:00+00:00", "dob": "", "Contact": ""}))
            .unwrap();
        assert_eq!((c.dob, c.contact), (None, None));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("customerID", json!("abc"), "customerID"),
            ("timeStamp", json!("not a date"), "timeStamp"),
            ("archived", json!("maybe"), "archived"),
            ("discountID", json!("x1"), "discountID"),
        ];
        for (key, value, expected) in cases {
            let mut v = docs_sample();
            v[key] = value;
            assert_eq!(convert(v).unwrap_err().field, expected);
        }
        let mut v = docs_sample();
        v.as_object_mut().unwrap().remove("customerID");
        let err = convert(v).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.problem.as_str()),
            ("customerID", "missing")
        );
        let mut v = docs_sample();
        v["Contact"]["Emails"]["ContactEmail"] = json!([{"address": "a@b.c"}, {"address": ["x"]}]);
        assert_eq!(
            convert(v).unwrap_err().field,
            "Contact.Emails.ContactEmail[1].address"
        );
    }
}
