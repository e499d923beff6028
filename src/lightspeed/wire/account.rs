//! `Account` as listed by `Account.json`, and the detail of `Account/{id}.json` (fact sheet §2).

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::scalar::{Scalar, id, opt_text, text};
use super::{FieldError, Record, field};

/// An account from `Account.json`.
#[derive(Debug, Clone)]
pub struct Account {
    /// `accountID`.
    pub account_id: u64,
    /// `name`.
    pub name: String,
    /// The whole record as received.
    pub raw: Box<RawValue>,
}

/// An account from `Account/{id}.json`.
#[derive(Debug, Clone)]
pub struct AccountDetail {
    /// `accountID`.
    pub account_id: u64,
    /// `name`.
    pub name: String,
    /// `status` (for example `customer`), `None` when empty.
    pub status: Option<String>,
    /// `defaultCurrency.code`, `None` when absent or empty.
    pub currency_code: Option<String>,
    /// The whole record as received.
    pub raw: Box<RawValue>,
}

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
            account_id: field("accountID", id(w.account_id.as_ref()))?,
            name: field("name", text(w.name.as_ref()))?,
            raw: raw.to_owned(),
        })
    }
}

impl Record for AccountDetail {
    const KEY: &'static str = "Account";
    const ID_FIELD: &'static str = "accountID";

    fn from_raw(raw: &RawValue) -> Result<Self, FieldError> {
        let w: AccountWire<'_> = serde_json::from_str(raw.get()).map_err(FieldError::shape)?;
        let currency = match &w.default_currency {
            Some(CurrencyField::Object { code }) => {
                field("defaultCurrency.code", opt_text(code.as_ref()))?
            }
            _ => None,
        };
        Ok(AccountDetail {
            account_id: field("accountID", id(w.account_id.as_ref()))?,
            name: field("name", text(w.name.as_ref()))?,
            status: field("status", opt_text(w.status.as_ref()))?,
            currency_code: currency,
            raw: raw.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_list, parse_single};
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
    fn account_detail() {
        let body =
            br#"{"@attributes":{"systemCustomerID":"99"},"Account":{"accountID":"7","name":"Shop",
            "status":"customer","employeeCount":"3","defaultCurrency":{"code":"CAD","symbol":"$"},
            "purchasingCurrencies":{"purchasingCurrency":{"code":"USD"}}}}"#;
        let d = parse_single::<AccountDetail>(body).unwrap();
        assert_eq!((d.account_id, d.name.as_str()), (7, "Shop"));
        assert_eq!(d.status.as_deref(), Some("customer"));
        assert_eq!(d.currency_code.as_deref(), Some("CAD"));
        let bare = br#"{"Account":{"accountID":"7","name":"Shop","status":""}}"#;
        let d = parse_single::<AccountDetail>(bare).unwrap();
        assert_eq!((d.status, d.currency_code), (None, None));
    }
}
