//! URLs of the endpoints the daemon reads: `Account.json`, `Account/{id}.json` and the first page of
//! `Account/{id}/Customer.json` with `limit`, `sort`, `archived`, `load_relations` and operator filters
//! (fact sheet §5). Later pages come from `@attributes.next`, followed verbatim: this module never
//! builds cursors.
//!
//! Query values are percent-encoded by hand so that the operator and its comma are encoded as the docs
//! ask (`timeStamp=%3E%3D%2C2026-01-01T00:00:00-00:00`) and a `+` never appears unencoded.

use chrono::{DateTime, Utc};
use url::Url;

/// `https://api…/API/V3/Account.json`.
pub fn accounts_url(api_base: &Url) -> Url {
    api_url(api_base, &["Account.json"])
}

/// `https://api…/API/V3/Account/{id}.json`.
pub fn account_url(api_base: &Url, account_id: u64) -> Url {
    api_url(api_base, &[&format!("Account/{account_id}.json")])
}

/// `https://api…/API/V3/Account/{id}/Customer.json` with the query's parameters.
pub fn customers_url(api_base: &Url, account_id: u64, query: &CustomerQuery) -> Url {
    let mut url = api_url(api_base, &[&format!("Account/{account_id}/Customer.json")]);
    let pairs = query.pairs();
    if !pairs.is_empty() {
        let q: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        url.set_query(Some(&q.join("&")));
    }
    url
}

/// Append `/API/V3/<rest>` to the base URL's path (which may carry a prefix of its own).
fn api_url(api_base: &Url, rest: &[&str]) -> Url {
    let mut url = api_base.clone();
    let path = format!(
        "{}/API/V3/{}",
        url.path().trim_end_matches('/'),
        rest.join("/")
    );
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Percent-encode everything but RFC 3986 unreserved characters and `:` (kept readable in times).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The first-page query of `Customer.json`. `Default` is: no parameters (the API's defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerQuery {
    /// `limit` (the API allows 0..=100; values above 100 are sent as 100).
    pub limit: Option<u32>,
    /// `sort`.
    pub sort: Option<Sort>,
    /// `archived`.
    pub archived: Option<Archived>,
    /// `load_relations=["Contact"]`.
    pub load_contact: bool,
    /// Filters on `timeStamp`.
    pub time_stamp: Option<Filter<DateTime<Utc>>>,
    /// Filters on `customerID`.
    pub customer_id: Option<Filter<u64>>,
}

/// A sortable Customer field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// `customerID`.
    CustomerId,
    /// `timeStamp` (last modified).
    TimeStamp,
    /// `firstName`.
    FirstName,
    /// `lastName`.
    LastName,
}

/// `sort=<field>` or `sort=-<field>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The field.
    pub field: SortField,
    /// Descending (`-` prefix).
    pub descending: bool,
}

/// `archived=false|true|only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// Active records only (the API's default).
    Exclude,
    /// Active and archived records.
    Include,
    /// Archived records only.
    Only,
}

/// An operator filter `field=<op>,<value>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter<T> {
    /// `>`.
    Gt(T),
    /// `>=`.
    Ge(T),
    /// `<`.
    Lt(T),
    /// `<=`.
    Le(T),
    /// `=`.
    Eq(T),
    /// `><`: between, inclusive.
    Between(T, T),
    /// `IN,[a,b,c]` (the API takes at most 100 values).
    In(Vec<T>),
}

/// How a filter value is written in a query (IDs and UTC times).
pub trait FilterValue {
    /// The value as the API expects it.
    fn render(&self) -> String;
}

impl FilterValue for u64 {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl FilterValue for DateTime<Utc> {
    /// Whole seconds (the API's precision), UTC written `-00:00` as the docs show.
    fn render(&self) -> String {
        self.format("%Y-%m-%dT%H:%M:%S-00:00").to_string()
    }
}

impl<T: FilterValue> Filter<T> {
    fn render(&self) -> String {
        match self {
            Filter::Gt(v) => format!(">,{}", v.render()),
            Filter::Ge(v) => format!(">=,{}", v.render()),
            Filter::Lt(v) => format!("<,{}", v.render()),
            Filter::Le(v) => format!("<=,{}", v.render()),
            Filter::Eq(v) => format!("=,{}", v.render()),
            Filter::Between(a, b) => format!("><,{},{}", a.render(), b.render()),
            Filter::In(vs) => {
                let items: Vec<String> = vs.iter().map(FilterValue::render).collect();
                format!("IN,[{}]", items.join(","))
            }
        }
    }
}

impl CustomerQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.min(100).to_string()));
        }
        if let Some(sort) = self.sort {
            let name = match sort.field {
                SortField::CustomerId => "customerID",
                SortField::TimeStamp => "timeStamp",
                SortField::FirstName => "firstName",
                SortField::LastName => "lastName",
            };
            pairs.push((
                "sort",
                format!("{}{name}", if sort.descending { "-" } else { "" }),
            ));
        }
        if let Some(archived) = self.archived {
            let v = match archived {
                Archived::Exclude => "false",
                Archived::Include => "true",
                Archived::Only => "only",
            };
            pairs.push(("archived", v.to_string()));
        }
        if self.load_contact {
            pairs.push(("load_relations", r#"["Contact"]"#.to_string()));
        }
        if let Some(f) = &self.customer_id {
            pairs.push(("customerID", f.render()));
        }
        if let Some(f) = &self.time_stamp {
            pairs.push(("timeStamp", f.render()));
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn base() -> Url {
        Url::parse("https://api.lightspeedapp.com").unwrap()
    }

    #[test]
    fn account_urls() {
        assert_eq!(
            accounts_url(&base()).as_str(),
            "https://api.lightspeedapp.com/API/V3/Account.json"
        );
        assert_eq!(
            account_url(&base(), 42).as_str(),
            "https://api.lightspeedapp.com/API/V3/Account/42.json"
        );
        let prefixed = Url::parse("http://127.0.0.1:9000/proxy/").unwrap();
        assert_eq!(
            accounts_url(&prefixed).as_str(),
            "http://127.0.0.1:9000/proxy/API/V3/Account.json"
        );
    }

    #[test]
    fn plain_customers_url() {
        let url = customers_url(&base(), 7, &CustomerQuery::default());
        assert_eq!(
            url.as_str(),
            "https://api.lightspeedapp.com/API/V3/Account/7/Customer.json"
        );
    }

    #[test]
    fn incremental_query_is_encoded_like_the_docs() {
        let q = CustomerQuery {
            limit: Some(100),
            sort: Some(Sort {
                field: SortField::TimeStamp,
                descending: false,
            }),
            archived: Some(Archived::Include),
            load_contact: true,
            time_stamp: Some(Filter::Ge(
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            )),
            customer_id: None,
        };
        let url = customers_url(&base(), 7, &q);
        assert_eq!(
            url.as_str(),
            "https://api.lightspeedapp.com/API/V3/Account/7/Customer.json?limit=100&sort=timeStamp&archived=true\
             &load_relations=%5B%22Contact%22%5D&timeStamp=%3E%3D%2C2026-01-01T00:00:00-00:00"
        );
        assert!(!url.as_str().contains('+'));
        // What a server decodes:
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert!(pairs.contains(&("timeStamp".into(), ">=,2026-01-01T00:00:00-00:00".into())));
        assert!(pairs.contains(&("load_relations".into(), r#"["Contact"]"#.into())));
    }

    #[test]
    fn every_operator() {
        let t = |f: Filter<u64>| {
            let q = CustomerQuery {
                customer_id: Some(f),
                ..Default::default()
            };
            customers_url(&base(), 1, &q).query().unwrap().to_string()
        };
        assert_eq!(t(Filter::Gt(5)), "customerID=%3E%2C5");
        assert_eq!(t(Filter::Ge(5)), "customerID=%3E%3D%2C5");
        assert_eq!(t(Filter::Lt(5)), "customerID=%3C%2C5");
        assert_eq!(t(Filter::Le(5)), "customerID=%3C%3D%2C5");
        assert_eq!(t(Filter::Eq(5)), "customerID=%3D%2C5");
        assert_eq!(t(Filter::Between(1, 10)), "customerID=%3E%3C%2C1%2C10");
        assert_eq!(
            t(Filter::In(vec![1, 2, 3])),
            "customerID=IN%2C%5B1%2C2%2C3%5D"
        );
    }

    #[test]
    fn sort_descending_archived_only_and_limit_cap() {
        let q = CustomerQuery {
            limit: Some(500),
            sort: Some(Sort {
                field: SortField::LastName,
                descending: true,
            }),
            archived: Some(Archived::Only),
            ..Default::default()
        };
        let url = customers_url(&base(), 1, &q);
        assert_eq!(url.query(), Some("limit=100&sort=-lastName&archived=only"));
    }
}
