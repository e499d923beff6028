//! `Account` as listed by `Account.json`, and the detail of `Account/{id}.json` (fact sheet §2, §14).
//!
//! The detail comes in two shapes, both accepted:
//! - **bare** (the vendor's documentation sample, `../shared/recorded/doc-samples/account-detail.json`,
//!   and the default of our simulator): the fields at the top level beside `@attributes`
//!   (`systemCustomerID`), with no `Account` key and no `accountID`;
//! - **wrapped** (`{"@attributes":{…},"Account":{…}}`, the shape of every other single-record GET in
//!   the fact sheet §4.7; no live recording of the detail exists, so it stays accepted).
//!
//! The account's identity and name always come from `Account.json` (recorded live, 2015–2016); the
//! detail only enriches the row.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::scalar::{Scalar, id, opt_text, text};
use super::{FieldError, Record, WireError, field};

use crate::model::AccountId;

/// An account from `Account.json`.
#[derive(Debug, Clone)]
pub struct Account {
    /// `accountID`.
    pub account_id: AccountId,
    /// `name`.
    pub name: String,
    /// The whole record as received.
    pub raw: Box<RawValue>,
}

/// Which shape an account detail came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailShape {
    /// Fields at the top level, no `Account` key (the documentation sample).
    Bare,
    /// Fields inside an `Account` object.
    Wrapped,
}

/// An account from `Account/{id}.json`.
#[derive(Debug, Clone)]
pub struct AccountDetail {
    /// `accountID`, when the detail carries one (the documented bare shape does not).
    pub account_id: Option<AccountId>,
    /// `name`, `None` when absent or empty.
    pub name: Option<String>,
    /// `status` (for example `customer`), `None` when empty.
    pub status: Option<String>,
    /// `defaultCurrency.code`, `None` when absent or empty.
    pub currency_code: Option<String>,
    /// The shape it came in.
    pub shape: DetailShape,
    /// The whole document as received (bare: the whole body; wrapped: the `Account` object).
    pub raw: Box<RawValue>,
}

/// The fields of the documented detail, any of which marks a top-level object as the bare shape.
const DETAIL_FIELDS: [&str; 7] = [
    "name",
    "status",
    "employeeCount",
    "employeeLimit",
    "uniqueSubscriptionIdentifier",
    "defaultCurrency",
    "purchasingCurrencies",
];

/// `Account` as sent (list and detail alike).
#[derive(Deserialize)]
struct AccountWire<'a> {
    #[serde(borrow, rename = "accountID")]
    account_id: Option<Scalar<'a>>,
    #[serde(borrow)]
    name: Option<Scalar<'a>>,
    #[serde(borrow)]
    status: Option<Scalar<'a>>,
    #[serde(borrow, rename = "defaultCurrency")]
    default_currency: Option<CurrencyField<'a>>,
}

/// `defaultCurrency`: an object with `code`, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum CurrencyField<'a> {
    Object {
        #[serde(borrow)]
        code: Option<Scalar<'a>>,
    },
    Other(IgnoredAny),
}

impl Record for Account {
    const KEY: &'static str = "Account";
    const ID_FIELD: &'static str = "accountID";

    fn from_raw(raw: &RawValue) -> Result<Self, FieldError> {
        let w: AccountWire<'_> = serde_json::from_str(raw.get()).map_err(FieldError::shape)?;
        Ok(Account {
            account_id: field("accountID", id(w.account_id.as_ref()))?.into(),
            name: field("name", text(w.name.as_ref()))?,
            raw: raw.to_owned(),
        })
    }
}

impl AccountDetail {
    /// Parse `Account/{id}.json` in either shape. A body that is neither (not an object, an empty
    /// or scalar `Account`, an object with none of the documented fields) is an error that names
    /// the top-level keys it had (never their values).
    pub fn parse(body: &[u8]) -> Result<AccountDetail, WireError> {
        let top: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_slice(body).map_err(|e| {
            WireError::body(format!(
                "Account detail: expected a JSON object{}: {e}",
                if e.is_eof() { " (cut short?)" } else { "" }
            ))
            .truncated_if(e.is_eof())
        })?;
        if let Some(inner) = top.get("Account") {
            let text = inner.get();
            let one: &RawValue = match text.as_bytes().first() {
                Some(b'{') => inner,
                Some(b'[') => {
                    let items: Vec<&RawValue> =
                        serde_json::from_str(text).map_err(|e| WireError::body(e.to_string()))?;
                    match items.as_slice() {
                        [one] => one,
                        _ => {
                            return Err(WireError::body(format!(
                                "Account detail: expected one `Account` record, got {}",
                                items.len()
                            )));
                        }
                    }
                }
                _ => {
                    return Err(WireError::body(
                        "Account detail: `Account` is not an object".to_string(),
                    ));
                }
            };
            return Self::convert(one, DetailShape::Wrapped);
        }
        if DETAIL_FIELDS.iter().any(|k| top.contains_key(*k)) {
            let raw = RawValue::from_string(String::from_utf8_lossy(body).into_owned())
                .map_err(|e| WireError::body(e.to_string()))?;
            return Self::convert(&raw, DetailShape::Bare);
        }
        let mut keys: Vec<&str> = top.keys().map(|k| k.as_ref()).collect();
        keys.sort_unstable();
        Err(WireError::body(format!(
            "Account detail matches neither the documented shape (fields such as `name` and \
             `status` at the top level) nor a wrapped `Account` object; top-level keys: [{}]",
            keys.join(", ")
        )))
    }

    fn convert(raw: &RawValue, shape: DetailShape) -> Result<AccountDetail, WireError> {
        let named = |e: FieldError| WireError {
            resource: Some("Account"),
            field: (!e.field.is_empty()).then_some(e.field),
            ..WireError::body(e.problem)
        };
        let w: AccountWire<'_> = serde_json::from_str(raw.get())
            .map_err(FieldError::shape)
            .map_err(named)?;
        let currency = match &w.default_currency {
            Some(CurrencyField::Object { code }) => {
                field("defaultCurrency.code", opt_text(code.as_ref())).map_err(named)?
            }
            _ => None,
        };
        let account_id = match &w.account_id {
            None => None,
            Some(v) => Some(field("accountID", id(Some(v))).map_err(named)?.into()),
        };
        Ok(AccountDetail {
            account_id,
            name: field("name", opt_text(w.name.as_ref())).map_err(named)?,
            status: field("status", opt_text(w.status.as_ref())).map_err(named)?,
            currency_code: currency,
            shape,
            raw: raw.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_list;
    use super::*;

    #[test]
    fn recorded_account_list_with_one_object() {
        let body = br#"{"@attributes":{"count":"1"},"Account":{"accountID":"120645","name":"Kit Kraft Sandbox","link":{"@attributes":{"href":"/API/Account/120645"}}}}"#;
        let base = url::Url::parse("https://api.lightspeedapp.com/API/V3/Account.json").unwrap();
        let page = parse_list::<Account>(body, &base).unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].account_id, 120_645);
        assert_eq!(page.records[0].name, "Kit Kraft Sandbox");
        let raw = page.records[0].raw.get();
        assert!(raw.contains(r#""href":"/API/Account/120645""#), "{raw}");
        assert_eq!(page.next, None);
    }

    #[test]
    fn documented_bare_detail() {
        // Lightspeed's documentation sample: no `Account` key, no `accountID`.
        let body = include_bytes!("../../../../shared/recorded/doc-samples/account-detail.json");
        let d = AccountDetail::parse(body).unwrap();
        assert_eq!(d.shape, DetailShape::Bare);
        assert_eq!(d.account_id, None);
        assert_eq!(d.name.as_deref(), Some("Main"));
        assert_eq!(d.status.as_deref(), Some("customer"));
        assert_eq!(d.currency_code.as_deref(), Some("CAD"));
        let raw: serde_json::Value = serde_json::from_str(d.raw.get()).unwrap();
        let want: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(raw, want, "the whole body is kept");
    }

    #[test]
    fn wrapped_detail() {
        let body =
            br#"{"@attributes":{"systemCustomerID":"99"},"Account":{"accountID":"7","name":"Shop",
            "status":"customer","employeeCount":"3","defaultCurrency":{"code":"CAD","symbol":"$"},
            "purchasingCurrencies":{"purchasingCurrency":{"code":"USD"}}}}"#;
        let d = AccountDetail::parse(body).unwrap();
        assert_eq!(d.shape, DetailShape::Wrapped);
        assert_eq!(
            (d.account_id, d.name.as_deref()),
            (Some(7.into()), Some("Shop"))
        );
        assert_eq!(d.status.as_deref(), Some("customer"));
        assert_eq!(d.currency_code.as_deref(), Some("CAD"));
        let bare = br#"{"Account":[{"accountID":"7","name":"Shop","status":""}]}"#;
        let d = AccountDetail::parse(bare).unwrap();
        assert_eq!((d.status, d.currency_code), (None, None));
    }

    #[test]
    fn detail_of_neither_shape_names_the_keys_not_values() {
        for body in [
            &br#"{"@attributes":{"count":"0"},"secret":"s3cr3t"}"#[..],
            br#"{"Account":""}"#,
            br#"{"Account":[]}"#,
            br#"[]"#,
            br#"{"name":"#,
        ] {
            let e = AccountDetail::parse(body).unwrap_err().to_string();
            assert!(e.contains("Account"), "{e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        let e = AccountDetail::parse(br#"{"@attributes":{},"secret":"s3cr3t"}"#).unwrap_err();
        assert!(e.to_string().contains("[@attributes, secret]"), "{e}");
        assert!(AccountDetail::parse(br#"{"name":"#).unwrap_err().truncated);
        let e = AccountDetail::parse(br#"{"name":"A","accountID":"x"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("accountID"));
    }
}
