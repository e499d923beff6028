//! `Customer` and its `Contact` (emails, phones, addresses, websites) as the API sends them (fact
//! sheet §6.1, §5 "What `Contact` contains"), with the other relations of `relations.rs`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::relations::{
    self, CreditAccount, CreditAccountWire, CustomFieldValue, CustomFieldValueWire, Note, NoteWire,
};
use super::scalar::{self, Scalar, flag, foreign_key, id, opt_text, required_time, text, time};
use super::shape::{Container, Entries, Item, OneOrMany};
use super::{FieldError, Record, field};

/// A customer, typed, with its whole JSON record in `raw`.
#[derive(Debug, Clone)]
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
    /// The `Note` relation, when loaded.
    pub note: Option<Note>,
    /// The `CreditAccount` relation, when loaded and the customer has one.
    pub credit_account: Option<CreditAccount>,
    /// `Tags`: `None` when not loaded, else the tag names.
    pub tags: Option<Vec<String>>,
    /// `CustomFieldValues` that are set and not `deleted` (empty when not loaded).
    pub custom_fields: Vec<CustomFieldValue>,
    /// The whole record as received (JSON text, as `jsonb` wants it).
    pub raw: Box<RawValue>,
}

/// A customer's contact details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    /// `custom`, `None` when empty.
    pub custom: Option<String>,
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
    /// `Addresses.ContactAddress`, without blank ones (every field `""`).
    pub addresses: Vec<Address>,
    /// `Websites.ContactWebsite` URLs (the docs' searching sample), without empty ones.
    pub websites: Vec<String>,
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

impl Address {
    /// Every field is `""`. The 2019 recording and the docs' create sample send such an address for
    /// a customer without one (`"Addresses":{"ContactAddress":{"address1":"",…}}`), where others send
    /// `"Addresses":""`: both mean "no address", so a blank one is no row (`raw` keeps it).
    pub fn is_blank(&self) -> bool {
        let Address {
            address1,
            address2,
            city,
            state,
            state_code,
            zip,
            country,
            country_code,
        } = self;
        [
            address1,
            address2,
            city,
            state,
            state_code,
            zip,
            country,
            country_code,
        ]
        .iter()
        .all(|f| f.trim().is_empty())
    }
}

/// `Customer` as sent: every field any JSON value, read by the `scalar` readers.
#[derive(Deserialize)]
struct CustomerWire<'a> {
    #[serde(borrow, rename = "customerID")]
    customer_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "firstName")]
    first_name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "lastName")]
    last_name: Option<Scalar<'a>>,
    #[serde(borrow)]
    title: Option<Scalar<'a>>,
    #[serde(borrow)]
    company: Option<Scalar<'a>>,
    #[serde(borrow, rename = "companyRegistrationNumber")]
    company_registration_number: Option<Scalar<'a>>,
    #[serde(borrow, rename = "vatNumber")]
    vat_number: Option<Scalar<'a>>,
    #[serde(borrow)]
    dob: Option<Scalar<'a>>,
    #[serde(borrow)]
    archived: Option<Scalar<'a>>,
    #[serde(borrow, rename = "createTime")]
    create_time: Option<Scalar<'a>>,
    #[serde(borrow, rename = "timeStamp")]
    time_stamp: Option<Scalar<'a>>,
    #[serde(borrow, rename = "creditAccountID")]
    credit_account_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "customerTypeID")]
    customer_type_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "discountID")]
    discount_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "taxCategoryID")]
    tax_category_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "Contact")]
    contact: Option<OneOrMany<ContactWire<'a>>>,
    #[serde(borrow, rename = "Note")]
    note: Option<OneOrMany<NoteWire<'a>>>,
    #[serde(rename = "CreditAccount")]
    credit_account: Option<OneOrMany<CreditAccountWire>>,
    #[serde(rename = "Tags")]
    tags: Option<serde_json::Value>,
    #[serde(borrow, rename = "CustomFieldValues")]
    custom_field_values: Option<Container<CustomFieldValueWire<'a>>>,
}

#[derive(Deserialize)]
struct ContactWire<'a> {
    #[serde(borrow)]
    custom: Option<Scalar<'a>>,
    #[serde(borrow, rename = "noEmail")]
    no_email: Option<Scalar<'a>>,
    #[serde(borrow, rename = "noPhone")]
    no_phone: Option<Scalar<'a>>,
    #[serde(borrow, rename = "noMail")]
    no_mail: Option<Scalar<'a>>,
    #[serde(borrow, rename = "timeStamp")]
    time_stamp: Option<Scalar<'a>>,
    #[serde(borrow, rename = "Emails")]
    emails: Option<Container<EmailWire<'a>>>,
    #[serde(borrow, rename = "Phones")]
    phones: Option<Container<PhoneWire<'a>>>,
    #[serde(borrow, rename = "Addresses")]
    addresses: Option<Container<AddressWire<'a>>>,
    #[serde(borrow, rename = "Websites")]
    websites: Option<Container<WebsiteWire<'a>>>,
}

#[derive(Deserialize)]
struct WebsiteWire<'a> {
    #[serde(borrow)]
    url: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct EmailWire<'a> {
    #[serde(borrow)]
    address: Option<Scalar<'a>>,
    #[serde(borrow, rename = "useType")]
    use_type: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct PhoneWire<'a> {
    #[serde(borrow)]
    number: Option<Scalar<'a>>,
    #[serde(borrow, rename = "useType")]
    use_type: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
struct AddressWire<'a> {
    #[serde(borrow)]
    address1: Option<Scalar<'a>>,
    #[serde(borrow)]
    address2: Option<Scalar<'a>>,
    #[serde(borrow)]
    city: Option<Scalar<'a>>,
    #[serde(borrow)]
    state: Option<Scalar<'a>>,
    #[serde(borrow, rename = "stateCode")]
    state_code: Option<Scalar<'a>>,
    #[serde(borrow)]
    zip: Option<Scalar<'a>>,
    #[serde(borrow)]
    country: Option<Scalar<'a>>,
    #[serde(borrow, rename = "countryCode")]
    country_code: Option<Scalar<'a>>,
}

impl Item for EmailWire<'_> {
    const KEY: &'static str = "ContactEmail";
}
impl Item for PhoneWire<'_> {
    const KEY: &'static str = "ContactPhone";
}
impl Item for AddressWire<'_> {
    const KEY: &'static str = "ContactAddress";
}
impl Item for WebsiteWire<'_> {
    const KEY: &'static str = "ContactWebsite";
}

impl Record for Customer {
    const KEY: &'static str = "Customer";
    const ID_FIELD: &'static str = "customerID";

    fn from_raw(raw: &RawValue) -> Result<Self, FieldError> {
        let w: CustomerWire<'_> = serde_json::from_str(raw.get()).map_err(FieldError::shape)?;
        Ok(Customer {
            customer_id: field("customerID", id(w.customer_id.as_ref()))?,
            first_name: field("firstName", text(w.first_name.as_ref()))?,
            last_name: field("lastName", text(w.last_name.as_ref()))?,
            title: field("title", text(w.title.as_ref()))?,
            company: field("company", text(w.company.as_ref()))?,
            company_registration_number: field(
                "companyRegistrationNumber",
                opt_text(w.company_registration_number.as_ref()),
            )?,
            vat_number: field("vatNumber", opt_text(w.vat_number.as_ref()))?,
            dob: field("dob", time(w.dob.as_ref()))?,
            archived: field("archived", flag(w.archived.as_ref()))?.unwrap_or(false),
            create_time: field("createTime", time(w.create_time.as_ref()))?,
            time_stamp: field("timeStamp", required_time(w.time_stamp.as_ref()))?,
            credit_account_id: field("creditAccountID", foreign_key(w.credit_account_id.as_ref()))?,
            customer_type_id: field("customerTypeID", foreign_key(w.customer_type_id.as_ref()))?,
            discount_id: field("discountID", foreign_key(w.discount_id.as_ref()))?,
            tax_category_id: field("taxCategoryID", foreign_key(w.tax_category_id.as_ref()))?,
            contact: match w.contact {
                Some(OneOrMany(e)) => contact(e)?,
                None => None,
            },
            note: match w.note {
                Some(OneOrMany(e)) => relations::note(e)?,
                None => None,
            },
            credit_account: match w.credit_account {
                Some(OneOrMany(e)) => relations::credit_account(e)?,
                None => None,
            },
            tags: relations::tags(w.tags.as_ref())?,
            custom_fields: match w.custom_field_values {
                Some(Container(e)) => relations::custom_field_values(e)?,
                None => Vec::new(),
            },
            raw: raw.to_owned(),
        })
    }
}

/// `Contact`: none → `None`; one (an object, or an array of one) → `Some`.
fn contact(e: Entries<ContactWire<'_>>) -> Result<Option<Contact>, FieldError> {
    if let Some(bad) = e.bad {
        return Err(shape_error("Contact", &bad));
    }
    let mut items = e.items;
    if items.len() > 1 {
        return Err(shape_error(
            "Contact",
            &format!("an array of {}", items.len()),
        ));
    }
    let Some(c) = items.pop() else {
        return Ok(None);
    };
    Ok(Some(Contact {
        custom: field("Contact.custom", opt_text(c.custom.as_ref()))?,
        no_email: field("Contact.noEmail", flag(c.no_email.as_ref()))?,
        no_phone: field("Contact.noPhone", flag(c.no_phone.as_ref()))?,
        no_mail: field("Contact.noMail", flag(c.no_mail.as_ref()))?,
        time_stamp: field("Contact.timeStamp", time(c.time_stamp.as_ref()))?,
        emails: entries(c.emails, "Emails", |e, f| {
            Ok(Email {
                address: f("address", text(e.address.as_ref()))?,
                use_type: f("useType", text(e.use_type.as_ref()))?,
            })
        })?,
        phones: entries(c.phones, "Phones", |p, f| {
            Ok(Phone {
                number: f("number", text(p.number.as_ref()))?,
                use_type: f("useType", text(p.use_type.as_ref()))?,
            })
        })?,
        addresses: entries(c.addresses, "Addresses", |a, f| {
            Ok(Address {
                address1: f("address1", text(a.address1.as_ref()))?,
                address2: f("address2", text(a.address2.as_ref()))?,
                city: f("city", text(a.city.as_ref()))?,
                state: f("state", text(a.state.as_ref()))?,
                state_code: f("stateCode", text(a.state_code.as_ref()))?,
                zip: f("zip", text(a.zip.as_ref()))?,
                country: f("country", text(a.country.as_ref()))?,
                country_code: f("countryCode", text(a.country_code.as_ref()))?,
            })
        })?
        .into_iter()
        .filter(|a| !a.is_blank())
        .collect(),
        websites: entries(c.websites, "Websites", |w, f| {
            f("url", text(w.url.as_ref()))
        })?
        .into_iter()
        .filter(|u| !u.trim().is_empty())
        .collect(),
    }))
}

type Namer<'a> = &'a dyn Fn(&str, Result<String, scalar::Problem>) -> Result<String, FieldError>;

/// Convert the entries of `Contact.<container>`; errors name `Contact.<container>.<Item>[i].<field>`.
fn entries<W: Item, T>(
    container: Option<Container<W>>,
    name: &str,
    convert: impl Fn(&W, Namer<'_>) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    let Some(Container(e)) = container else {
        return Ok(Vec::new());
    };
    if let Some(bad) = e.bad {
        return Err(shape_error(&format!("Contact.{name}"), &bad));
    }
    e.items
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let namer = |f: &str, r: Result<String, scalar::Problem>| {
                r.map_err(|problem| FieldError {
                    field: format!("Contact.{name}.{}[{i}].{f}", W::KEY),
                    problem,
                })
            };
            convert(entry, &namer)
        })
        .collect()
}

fn shape_error(path: &str, got: &str) -> FieldError {
    FieldError {
        field: path.to_string(),
        problem: format!("expected an object, an array of objects or \"\", got {got}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn convert(v: Value) -> Result<Customer, FieldError> {
        let raw = RawValue::from_string(v.to_string()).unwrap();
        Customer::from_raw(&raw)
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
        let raw: Value = serde_json::from_str(c.raw.get()).unwrap();
        assert_eq!(raw["Tags"], json!(""), "the whole record is kept");
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
    fn every_relation_in_one_record() {
        let mut v = docs_sample();
        v["Contact"]["custom"] = json!("VIP");
        v["Contact"]["Websites"] =
            json!({"ContactWebsite": [{"url": "https://a.example"}, {"url": ""}]});
        // The 2019 recording's relations.
        v["CreditAccount"] = json!({"creditAccountID": "1", "balance": "-12.50", "creditLimit": "0",
            "timeStamp": "2019-04-29T08:45:22+00:00"});
        v["Note"] =
            json!({"note": "", "isPublic": "false", "timeStamp": "2019-04-29T08:40:04+00:00"});
        v["Tags"] = json!({"@attributes": {"count": "1"}, "tag": "vip"});
        v["CustomerType"] = json!({"customerTypeID": "2", "name": "Wholesale", "taxCategoryID": "0", "discountID": "0"});
        v["CustomFieldValues"] = json!({"CustomFieldValue": [
            {"customFieldValueID": "7", "customFieldID": "3", "name": "Store", "type": "string",
             "value": "Harbour", "deleted": "false", "timeStamp": "2026-01-01T00:00:00+00:00"},
            {"customFieldValueID": "8", "customFieldID": "4", "name": "Gone", "type": "integer",
             "value": "3", "deleted": "true"},
            {"customFieldValueID": "9", "customFieldID": "1", "name": "Tier", "type": "single_choice",
             "value": {"customFieldChoiceID": "2", "name": "Silver", "value": ""}}]});
        let c = convert(v).unwrap();
        let contact = c.contact.clone().unwrap();
        assert_eq!(contact.custom.as_deref(), Some("VIP"));
        assert_eq!(contact.websites, ["https://a.example"]);
        let credit = c.credit_account.clone().unwrap();
        assert_eq!(
            (credit.credit_account_id, credit.balance.as_deref()),
            (1, Some("-12.50"))
        );
        let note = c.note.clone().unwrap();
        assert_eq!((note.note, note.is_public), (None, Some(false)));
        assert_eq!(c.tags.as_deref(), Some(&["vip".to_string()][..]));
        let fields: Vec<(u64, Option<&str>)> = c
            .custom_fields
            .iter()
            .map(|f| (f.custom_field_id, f.value.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [(3, Some("Harbour")), (1, Some("Silver"))],
            "deleted values are not rows"
        );
        assert_eq!(c.custom_fields[1].value_json["customFieldChoiceID"], "2");
        // Not loaded: none of them.
        let c = convert(docs_sample()).unwrap();
        assert!(c.note.is_none() && c.credit_account.is_none() && c.custom_fields.is_empty());
        assert_eq!(c.tags.as_deref(), Some(&[][..]), "`Tags: \"\"` is no tags");
        // Bad values name their field.
        let mut v = docs_sample();
        v["CreditAccount"] = json!({"creditAccountID": "1", "balance": "lots"});
        assert_eq!(convert(v).unwrap_err().field, "CreditAccount.balance");
        let mut v = docs_sample();
        v["CustomFieldValues"] =
            json!({"CustomFieldValue": {"customFieldID": "x", "type": "string"}});
        assert_eq!(
            convert(v).unwrap_err().field,
            "CustomFieldValues.CustomFieldValue[0].customFieldID"
        );
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
