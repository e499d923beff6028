//! `Account` as listed by `Account.json`, and the detail of `Account/{id}.json` (fact sheet §2).

use serde_json::{Map, Value};

use super::scalar::{id, opt_text, text};
use super::{FieldError, Record, field};

/// An account from `Account.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// `accountID`.
    pub account_id: u64,
    /// `name`.
    pub name: String,
    /// The whole record as received.
    pub raw: Value,
}

/// An account from `Account/{id}.json`.
#[derive(Debug, Clone, PartialEq)]
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
    pub raw: Value,
}

impl Record for Account {
    const KEY: &'static str = "Account";
    const ID_FIELD: &'static str = "accountID";

    fn from_json(obj: Map<String, Value>) -> Result<Self, FieldError> {
        Ok(Account {
            account_id: field("accountID", id(obj.get("accountID")))?,
            name: field("name", text(obj.get("name")))?,
            raw: Value::Object(obj),
        })
    }
}

impl Record for AccountDetail {
    const KEY: &'static str = "Account";
    const ID_FIELD: &'static str = "accountID";

    fn from_json(obj: Map<String, Value>) -> Result<Self, FieldError> {
        let currency = match obj.get("defaultCurrency") {
            Some(Value::Object(c)) => field("defaultCurrency.code", opt_text(c.get("code")))?,
            _ => None,
        };
        Ok(AccountDetail {
            account_id: field("accountID", id(obj.get("accountID")))?,
            name: field("name", text(obj.get("name")))?,
            status: field("status", opt_text(obj.get("status")))?,
            currency_code: currency,
            raw: Value::Object(obj),
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
        assert_eq!(
            page.records[0].raw["link"]["@attributes"]["href"],
            "/API/Account/120645"
        );
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
