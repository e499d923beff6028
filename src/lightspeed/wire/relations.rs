//! The Customer relations beyond `Contact` (fact sheet §5, §6.1, §14) and the definitions they
//! refer to: `Note`, `CreditAccount`, `Tags`, `CustomFieldValues` on a Customer; `CustomField`
//! (`Customer/CustomField.json`) and `CustomerType` (`CustomerType.json`) records.
//!
//! Field names follow Lightspeed's endpoint pages as mirrored in koop-voor-hoop/lightspeed-retail-client
//! `docs/endpoints/` (customer.md, customer-customfield.md, customer-customfield-customfieldchoice.md,
//! customertype.md, creditaccount.md, tag.md). Where those pages show no sample of a shape (a
//! non-empty `Tags` on a Customer; a choice value inside a `CustomFieldValue`), every plausible shape
//! is accepted and the source of each is named where it is read.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::scalar::{Scalar, flag, foreign_key, id, opt_text, text, time};
use super::shape::{Entries, Item};
use super::{FieldError, Record, field};

/// The `Note` relation: `{note, isPublic, timeStamp}` (fact sheet §6.1; the 2019 recording).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Note {
    /// `note`, `None` when empty.
    pub note: Option<String>,
    /// `isPublic`.
    pub is_public: Option<bool>,
    /// `timeStamp`.
    pub time_stamp: Option<DateTime<Utc>>,
}

/// The `CreditAccount` relation (creditaccount.md; `creditLimit` from its samples and the 2019
/// recording). Money stays decimal text (`"12.50"`), stored as `numeric`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditAccount {
    /// `creditAccountID`.
    pub credit_account_id: u64,
    /// `name`.
    pub name: Option<String>,
    /// `balance`.
    pub balance: Option<String>,
    /// `creditLimit`.
    pub credit_limit: Option<String>,
    /// `giftCard`.
    pub gift_card: Option<bool>,
    /// `archived`.
    pub archived: Option<bool>,
    /// `timeStamp`.
    pub time_stamp: Option<DateTime<Utc>>,
    /// The relation's JSON as sent.
    pub raw: String,
}

/// One `CustomFieldValue` that is set and not `deleted` (customer-customfield.md).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomFieldValue {
    /// `customFieldValueID`.
    pub custom_field_value_id: Option<u64>,
    /// `customFieldID`.
    pub custom_field_id: u64,
    /// `name` (of the field).
    pub name: String,
    /// `type`: string, text, url, email, datetime, date, boolean, integer, float, single_choice,
    /// multi_choice.
    pub kind: String,
    /// The value as text; for choice types the chosen choices' names joined by `", "`.
    pub value: Option<String>,
    /// The value exactly as sent.
    pub value_json: Value,
    /// `timeStamp`.
    pub time_stamp: Option<DateTime<Utc>>,
}

/// A custom field definition of `Customer/CustomField.json`.
#[derive(Debug, Clone)]
pub struct CustomField {
    /// `customFieldID`.
    pub custom_field_id: u64,
    /// `name`.
    pub name: String,
    /// `type`.
    pub kind: String,
    /// `uom`.
    pub uom: Option<String>,
    /// `decimalPrecision`.
    pub decimal_precision: Option<i32>,
    /// `archived`.
    pub archived: bool,
    /// The whole record.
    pub raw: Box<RawValue>,
}

/// A customer type of `CustomerType.json`.
#[derive(Debug, Clone)]
pub struct CustomerType {
    /// `customerTypeID`.
    pub customer_type_id: u64,
    /// `name`.
    pub name: String,
    /// `taxCategoryID`, `None` for `"0"`.
    pub tax_category_id: Option<i64>,
    /// `discountID`, `None` for `"0"`.
    pub discount_id: Option<i64>,
    /// The whole record.
    pub raw: Box<RawValue>,
}

#[derive(Deserialize)]
pub(super) struct NoteWire<'a> {
    #[serde(borrow)]
    note: Option<Scalar<'a>>,
    #[serde(borrow, rename = "isPublic")]
    is_public: Option<Scalar<'a>>,
    #[serde(borrow, rename = "timeStamp")]
    time_stamp: Option<Scalar<'a>>,
}

#[derive(Deserialize)]
pub(super) struct CreditAccountWire {
    #[serde(flatten)]
    fields: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
pub(super) struct CustomFieldValueWire<'a> {
    #[serde(borrow, rename = "customFieldValueID")]
    value_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "customFieldID")]
    field_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    deleted: Option<Scalar<'a>>,
    #[serde(borrow, rename = "timeStamp")]
    time_stamp: Option<Scalar<'a>>,
    value: Option<Value>,
}

impl Item for CustomFieldValueWire<'_> {
    const KEY: &'static str = "CustomFieldValue";
}

/// `Note`: none, or one object (an array of one is taken too).
pub(super) fn note(e: Entries<NoteWire<'_>>) -> Result<Option<Note>, FieldError> {
    let Some(n) = one("Note", e)? else {
        return Ok(None);
    };
    Ok(Some(Note {
        note: field("Note.note", opt_text(n.note.as_ref()))?,
        is_public: field("Note.isPublic", flag(n.is_public.as_ref()))?,
        time_stamp: field("Note.timeStamp", time(n.time_stamp.as_ref()))?,
    }))
}

/// `CreditAccount`: none (absent, `""`, `{}`), or one object.
pub(super) fn credit_account(
    e: Entries<CreditAccountWire>,
) -> Result<Option<CreditAccount>, FieldError> {
    let Some(w) = one("CreditAccount", e)? else {
        return Ok(None);
    };
    let get = |k: &str| w.fields.get(k).map(scalar_of);
    let s = |k: &'static str| -> Result<Option<Scalar<'static>>, FieldError> {
        match get(k) {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(p)) => Err(FieldError {
                field: format!("CreditAccount.{k}"),
                problem: p,
            }),
        }
    };
    let money = |k: &'static str| -> Result<Option<String>, FieldError> {
        let v = field(&format!("CreditAccount.{k}"), opt_text(s(k)?.as_ref()))?;
        match v {
            Some(t) if t.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
                Ok(Some(t.trim().to_string()))
            }
            Some(t) => Err(FieldError {
                field: format!("CreditAccount.{k}"),
                problem: format!("expected a decimal amount, got {t:?}"),
            }),
            None => Ok(None),
        }
    };
    Ok(Some(CreditAccount {
        credit_account_id: field(
            "CreditAccount.creditAccountID",
            id(s("creditAccountID")?.as_ref()),
        )?,
        name: field("CreditAccount.name", opt_text(s("name")?.as_ref()))?,
        balance: money("balance")?,
        credit_limit: money("creditLimit")?,
        gift_card: field("CreditAccount.giftCard", flag(s("giftCard")?.as_ref()))?,
        archived: field("CreditAccount.archived", flag(s("archived")?.as_ref()))?,
        time_stamp: field("CreditAccount.timeStamp", time(s("timeStamp")?.as_ref()))?,
        raw: Value::Object(w.fields.clone()).to_string(),
    }))
}

/// An owned [`Scalar`] from a parsed JSON value (the relations read through `Value` are small).
fn scalar_of(v: &Value) -> Result<Scalar<'static>, String> {
    Ok(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Num(n.to_string()),
        Value::String(s) => Scalar::Str(s.clone().into()),
        Value::Array(a) => Scalar::Array {
            empty: a.is_empty(),
        },
        Value::Object(o) => Scalar::Object {
            empty: o.is_empty(),
        },
    })
}

/// Exactly zero or one entry of a one-to-one relation.
fn one<T>(name: &str, e: Entries<T>) -> Result<Option<T>, FieldError> {
    if let Some(bad) = e.bad {
        return Err(FieldError {
            field: name.to_string(),
            problem: format!("expected an object or \"\", got {bad}"),
        });
    }
    let mut items = e.items;
    if items.len() > 1 {
        return Err(FieldError {
            field: name.to_string(),
            problem: format!("expected one object, got an array of {}", items.len()),
        });
    }
    Ok(items.pop())
}

/// `Tags` on a Customer. Its non-empty shape is unverified (fact sheet §14), so each plausible one
/// is read:
/// - `""` (the 2019 recording; the docs' Customer sample) and `{}` / `null`: no tags;
/// - `{"tag": "a"}` or `{"tag": ["a", "b"]}`, with or without `"@attributes": {"count": …}`:
///   how Lightspeed renders `Tags` on an Item (the Item endpoint page of the same docs);
/// - `{"Tag": {"tagID", "name"}}` or `{"Tag": [ … ]}`: the container convention of the other
///   relations (fact sheet §4.1) holding `Tag` records (tag.md);
/// - a bare array of strings or of `{name}` objects (seen in no source; harmless to accept).
///
/// Anything else is an error naming `Tags`.
pub(super) fn tags(v: Option<&Value>) -> Result<Option<Vec<String>>, FieldError> {
    let Some(v) = v else { return Ok(None) };
    let bad = |what: String| FieldError {
        field: "Tags".into(),
        problem: format!("expected \"\", {{\"tag\": …}} or {{\"Tag\": …}}, got {what}"),
    };
    let mut out = Vec::new();
    let mut push_one = |item: &Value, path: &str| -> Result<(), FieldError> {
        match item {
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            Value::Object(o) => match o.get("name") {
                Some(Value::String(s)) if !s.is_empty() => out.push(s.clone()),
                Some(Value::Number(n)) => out.push(n.to_string()),
                _ if o.is_empty() => {}
                _ => return Err(bad(format!("an object without `name` at {path}"))),
            },
            other => return Err(bad(format!("{} at {path}", super::audit::kind(other)))),
        }
        Ok(())
    };
    match v {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::Array(items) => {
            for item in items {
                push_one(item, "Tags[]")?;
            }
        }
        Value::Object(map) => {
            for (k, inner) in map {
                match k.as_str() {
                    "@attributes" => {}
                    "tag" | "Tag" => match inner {
                        Value::Array(items) => {
                            for item in items {
                                push_one(item, &format!("Tags.{k}[]"))?;
                            }
                        }
                        item => push_one(item, &format!("Tags.{k}"))?,
                    },
                    other => return Err(bad(format!("an object with `{other}`"))),
                }
            }
        }
        other => return Err(bad(super::audit::kind(other).to_string())),
    }
    Ok(Some(out))
}

/// The entries of `CustomFieldValues` (a container `{"CustomFieldValue": one-or-many}`, `""` when
/// none), without the `deleted` ones.
pub(super) fn custom_field_values(
    e: Entries<CustomFieldValueWire<'_>>,
) -> Result<Vec<CustomFieldValue>, FieldError> {
    if let Some(bad) = e.bad {
        return Err(FieldError {
            field: "CustomFieldValues".into(),
            problem: format!("expected an object, an array of objects or \"\", got {bad}"),
        });
    }
    let mut out = Vec::with_capacity(e.items.len());
    for (i, w) in e.items.into_iter().enumerate() {
        fn at<T>(i: usize, name: &str, r: Result<T, String>) -> Result<T, FieldError> {
            r.map_err(|problem| FieldError {
                field: format!("CustomFieldValues.CustomFieldValue[{i}].{name}"),
                problem,
            })
        }
        if at(i, "deleted", flag(w.deleted.as_ref()))?.unwrap_or(false) {
            continue;
        }
        let kind = at(i, "type", text(w.kind.as_ref()))?;
        let value_json = w.value.unwrap_or(Value::Null);
        let value = at(i, "value", value_text(&kind, &value_json))?;
        out.push(CustomFieldValue {
            custom_field_value_id: at(i, "customFieldValueID", foreign_key(w.value_id.as_ref()))?
                .map(|v| v as u64),
            custom_field_id: at(i, "customFieldID", id(w.field_id.as_ref()))?,
            name: at(i, "name", text(w.name.as_ref()))?,
            kind,
            value,
            value_json,
            time_stamp: at(i, "timeStamp", time(w.time_stamp.as_ref()))?,
        });
    }
    Ok(out)
}

/// A value as text. Scalars (every type but the choice ones: strings on the wire, fact sheet §4)
/// are taken as their text, `""` as `None`. Choice types "return choice objects"
/// (customer-customfield.md); no sample shows how, so each plausible form is read: one
/// `CustomFieldChoice` object (`{customFieldChoiceID, name, value}`,
/// customer-customfield-customfieldchoice.md), an array of them, or the container
/// `{"CustomFieldChoice": one-or-many}`. The text is the choices' names joined by `", "`.
fn value_text(kind: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Object(o) if o.is_empty() => Ok(None),
        Value::Array(_) | Value::Object(_) => {
            let names = choice_names(v)?;
            if names.is_empty() {
                Ok(None)
            } else {
                Ok(Some(names.join(", ")))
            }
        }
    }
    .map_err(|p: String| format!("{p} (a `{kind}` value)"))
}

fn choice_names(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(choice_names(item)?);
            }
            Ok(out)
        }
        Value::Object(o) => {
            if let Some(inner) = o.get("CustomFieldChoice") {
                return choice_names(inner);
            }
            let name = o.get("name").or_else(|| o.get("value"));
            match name {
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Number(n)) => Ok(vec![n.to_string()]),
                _ if o.contains_key("customFieldChoiceID") => Ok(vec![String::new()]),
                _ => Err("expected a choice object with `name`".into()),
            }
        }
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![s.clone()]),
        other => Err(format!(
            "expected a choice object, got {}",
            super::audit::kind(other)
        )),
    }
}

#[derive(Deserialize)]
struct CustomFieldWire<'a> {
    #[serde(borrow, rename = "customFieldID")]
    id: Option<Scalar<'a>>,
    #[serde(borrow)]
    name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    uom: Option<Scalar<'a>>,
    #[serde(borrow, rename = "decimalPrecision")]
    decimal_precision: Option<Scalar<'a>>,
    #[serde(borrow)]
    archived: Option<Scalar<'a>>,
}

impl Record for CustomField {
    const KEY: &'static str = "CustomField";
    const ID_FIELD: &'static str = "customFieldID";

    fn from_raw(raw: &RawValue) -> Result<Self, FieldError> {
        let w: CustomFieldWire<'_> = serde_json::from_str(raw.get()).map_err(FieldError::shape)?;
        let precision = field(
            "decimalPrecision",
            foreign_key(w.decimal_precision.as_ref()),
        )?;
        Ok(CustomField {
            custom_field_id: field("customFieldID", id(w.id.as_ref()))?,
            name: field("name", text(w.name.as_ref()))?,
            kind: field("type", text(w.kind.as_ref()))?,
            uom: field("uom", opt_text(w.uom.as_ref()))?,
            decimal_precision: Some(precision.unwrap_or(0) as i32),
            archived: field("archived", flag(w.archived.as_ref()))?.unwrap_or(false),
            raw: raw.to_owned(),
        })
    }
}

#[derive(Deserialize)]
struct CustomerTypeWire<'a> {
    #[serde(borrow, rename = "customerTypeID")]
    id: Option<Scalar<'a>>,
    #[serde(borrow)]
    name: Option<Scalar<'a>>,
    #[serde(borrow, rename = "taxCategoryID")]
    tax_category_id: Option<Scalar<'a>>,
    #[serde(borrow, rename = "discountID")]
    discount_id: Option<Scalar<'a>>,
}

impl Record for CustomerType {
    const KEY: &'static str = "CustomerType";
    const ID_FIELD: &'static str = "customerTypeID";

    fn from_raw(raw: &RawValue) -> Result<Self, FieldError> {
        let w: CustomerTypeWire<'_> = serde_json::from_str(raw.get()).map_err(FieldError::shape)?;
        Ok(CustomerType {
            customer_type_id: field("customerTypeID", id(w.id.as_ref()))?,
            name: field("name", text(w.name.as_ref()))?,
            tax_category_id: field("taxCategoryID", foreign_key(w.tax_category_id.as_ref()))?,
            discount_id: field("discountID", foreign_key(w.discount_id.as_ref()))?,
            raw: raw.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_in_every_plausible_shape() {
        let t = |v: Value| tags(Some(&v)).unwrap().unwrap();
        assert!(t(json!("")).is_empty());
        assert!(t(json!(null)).is_empty());
        assert!(t(json!({})).is_empty());
        assert_eq!(t(json!({"tag": "vip"})), ["vip"]);
        assert_eq!(
            t(json!({"@attributes": {"count": "2"}, "tag": ["vip", "staff"]})),
            ["vip", "staff"]
        );
        assert_eq!(t(json!({"Tag": {"tagID": "4", "name": "aqui"}})), ["aqui"]);
        assert_eq!(
            t(json!({"Tag": [{"tagID": "4", "name": "a"}, {"tagID": "3", "name": "b"}]})),
            ["a", "b"]
        );
        assert_eq!(t(json!(["x", {"name": "y"}])), ["x", "y"]);
        assert_eq!(tags(None).unwrap(), None);
        assert_eq!(tags(Some(&json!({"other": 1}))).unwrap_err().field, "Tags");
        assert_eq!(tags(Some(&json!(5))).unwrap_err().field, "Tags");
    }

    #[test]
    fn choice_values_in_every_plausible_shape() {
        let one = json!({"customFieldChoiceID": "3", "name": "Gold", "value": ""});
        assert_eq!(
            value_text("single_choice", &one).unwrap().as_deref(),
            Some("Gold")
        );
        let many = json!([{"customFieldChoiceID": "1", "name": "A"}, {"customFieldChoiceID": "2", "name": "B"}]);
        assert_eq!(
            value_text("multi_choice", &many).unwrap().as_deref(),
            Some("A, B")
        );
        let wrapped = json!({"CustomFieldChoice": many});
        assert_eq!(
            value_text("multi_choice", &wrapped).unwrap().as_deref(),
            Some("A, B")
        );
        assert_eq!(value_text("multi_choice", &json!("")).unwrap(), None);
        assert_eq!(
            value_text("integer", &json!("42")).unwrap().as_deref(),
            Some("42")
        );
        assert!(value_text("single_choice", &json!({"x": 1})).is_err());
    }
}
