//! URLs of the endpoints the daemon reads: `Account.json`, `Account/{id}.json` and the first page of
//! `Account/{id}/Customer.json` with `limit`, `sort`, `archived`, `load_relations` and operator filters
//! (fact sheet §5). Later pages come from `@attributes.next`, followed verbatim: this module never
//! builds cursors.
//!
//! Query values are percent-encoded by hand so that the operator and its comma are encoded as the docs
//! ask (`timeStamp=%3E%3D%2C2026-01-01T00:00:00-00:00`) and a `+` never appears unencoded.

use chrono::{DateTime, Utc};
use url::Url;

use crate::model::AccountId;

/// `https://api…/API/V3/Account.json`.
pub fn accounts_url(api_base: &Url) -> Url {
    api_url(api_base, &["Account.json"])
}

/// `https://api…/API/V3/Account/{id}.json`.
pub fn account_url(api_base: &Url, account_id: AccountId) -> Url {
    api_url(api_base, &[&format!("Account/{account_id}.json")])
}

/// `https://api…/API/V3/Account/{id}/Customer.json` with the query's parameters.
pub fn customers_url(api_base: &Url, account_id: AccountId, query: &CustomerQuery) -> Url {
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
    /// More relations in `load_relations` (after `Contact` when `load_contact`).
    pub relations: Vec<CustomerRelation>,
    /// Filters on `timeStamp`.
    pub time_stamp: Option<Filter<DateTime<Utc>>>,
    /// Filters on `customerID`.
    pub customer_id: Option<Filter<u64>>,
    /// Filters on `Contact.timeStamp` (a search inside the Contact relation, fact sheet §5: only
    /// with `Contact` loaded).
    pub contact_time_stamp: Option<Filter<DateTime<Utc>>>,
}

impl CustomerQuery {
    /// A query that loads `relations` (`Contact` through `load_contact`, the others after it).
    pub fn loading(relations: &[CustomerRelation]) -> CustomerQuery {
        CustomerQuery {
            load_contact: relations.contains(&CustomerRelation::Contact),
            relations: relations
                .iter()
                .copied()
                .filter(|r| *r != CustomerRelation::Contact)
                .collect(),
            ..CustomerQuery::default()
        }
    }
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

/// A relation loadable with a Customer (fact sheet §5, §14) that the mirror keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerRelation {
    /// `Contact` (emails, phones, addresses, websites): one-to-one.
    Contact,
    /// `CustomerType`: one-to-one.
    CustomerType,
    /// `Note`: one-to-one.
    Note,
    /// `CreditAccount`: one-to-one.
    CreditAccount,
    /// `Tags`: one-to-many.
    Tags,
    /// `CustomFieldValues`: one-to-many; not part of `all`, it must be named.
    CustomFieldValues,
}

impl CustomerRelation {
    /// Every relation the mirror keeps: the default of `sync.customer_relations`.
    pub const ALL: [CustomerRelation; 6] = [
        CustomerRelation::Contact,
        CustomerRelation::CustomerType,
        CustomerRelation::Note,
        CustomerRelation::CreditAccount,
        CustomerRelation::Tags,
        CustomerRelation::CustomFieldValues,
    ];

    /// The name in `load_relations`.
    pub fn name(self) -> &'static str {
        match self {
            CustomerRelation::Contact => "Contact",
            CustomerRelation::CustomerType => "CustomerType",
            CustomerRelation::Note => "Note",
            CustomerRelation::CreditAccount => "CreditAccount",
            CustomerRelation::Tags => "Tags",
            CustomerRelation::CustomFieldValues => "CustomFieldValues",
        }
    }

    /// The relation called `name` (as in `load_relations`, case-sensitive).
    pub fn parse(name: &str) -> Option<CustomerRelation> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Relations loaded by `load_relations=all` on Customer (fact sheet §5: everything but
/// `CustomFieldValues`), with whether each is one-to-many.
const ALL_RELATIONS: &[(&str, bool)] = &[
    ("Contact", false),
    ("CreditAccount", false),
    ("CustomerType", false),
    ("Discount", false),
    ("Note", false),
    ("TaxCategory", false),
    ("Tags", true),
];

/// Whether a Customer relation is one-to-many (`Tags`, `CustomFieldValues`; the rest one-to-one).
fn one_to_many(name: &str) -> bool {
    matches!(
        name,
        "Tags" | "CustomFieldValues" | "CustomFieldValues.value"
    )
}

/// The drip cost of a GET of `url`, computed as the 2026 model says (fact sheet §7.1, §14): 1, or 10
/// with `count=1`; plus, for each relation in `load_relations`, 0.1 (one-to-one) or 0.2 (one-to-many)
/// on a single record, twice that on a list endpoint (a path that does not end in `/{id}.json`).
pub fn request_cost(url: &Url) -> f64 {
    let mut relations: Vec<String> = Vec::new();
    for (k, v) in url.query_pairs() {
        match &*k {
            "count" if matches!(v.trim(), "1" | "true") => return 10.0,
            "load_relations" if v.trim() == "all" => {
                relations.extend(ALL_RELATIONS.iter().map(|(n, _)| n.to_string()));
            }
            "load_relations" => {
                if let Ok(names) = serde_json::from_str::<Vec<String>>(&v) {
                    relations.extend(names);
                }
            }
            _ => {}
        }
    }
    relations.sort();
    relations.dedup();
    let single = url
        .path()
        .rsplit('/')
        .next()
        .and_then(|last| last.strip_suffix(".json"))
        .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()));
    let factor = if single { 1.0 } else { 2.0 };
    1.0 + relations
        .iter()
        .map(|r| if one_to_many(r) { 0.2 } else { 0.1 } * factor)
        .sum::<f64>()
}

/// `https://api…/API/V3/Account/{id}/Customer/CustomField.json?limit=100&sort=customFieldID`: the
/// custom field definitions, paged like customers (customer-customfield.md).
pub fn custom_fields_url(api_base: &Url, account_id: AccountId) -> Url {
    let mut url = api_url(
        api_base,
        &[&format!("Account/{account_id}/Customer/CustomField.json")],
    );
    url.set_query(Some("limit=100&sort=customFieldID"));
    url
}

/// `https://api…/API/V3/Account/{id}/CustomerType.json?limit=100&sort=customerTypeID`
/// (customertype.md: sortable by `customerTypeID` only).
pub fn customer_types_url(api_base: &Url, account_id: AccountId) -> Url {
    let mut url = api_url(
        api_base,
        &[&format!("Account/{account_id}/CustomerType.json")],
    );
    url.set_query(Some("limit=100&sort=customerTypeID"));
    url
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
        let mut names: Vec<&str> = Vec::new();
        if self.load_contact {
            names.push(CustomerRelation::Contact.name());
        }
        for r in &self.relations {
            if !names.contains(&r.name()) {
                names.push(r.name());
            }
        }
        if !names.is_empty() {
            let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            pairs.push(("load_relations", format!("[{}]", quoted.join(","))));
        }
        if let Some(f) = &self.customer_id {
            pairs.push(("customerID", f.render()));
        }
        if let Some(f) = &self.time_stamp {
            pairs.push(("timeStamp", f.render()));
        }
        if let Some(f) = &self.contact_time_stamp {
            pairs.push(("Contact.timeStamp", f.render()));
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
            account_url(&base(), 42.into()).as_str(),
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
        let url = customers_url(&base(), 7.into(), &CustomerQuery::default());
        assert_eq!(
            url.as_str(),
            "https://api.lightspeedapp.com/API/V3/Account/7/Customer.json"
        );
    }

    #[test]
    fn contact_time_stamp_is_a_dotted_filter() {
        let q = CustomerQuery {
            contact_time_stamp: Some(Filter::Ge(
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            )),
            ..CustomerQuery::loading(&[CustomerRelation::Contact])
        };
        assert_eq!(
            customers_url(&base(), 7.into(), &q).as_str(),
            "https://api.lightspeedapp.com/API/V3/Account/7/Customer.json\
             ?load_relations=%5B%22Contact%22%5D&Contact.timeStamp=%3E%3D%2C2026-01-01T00:00:00-00:00"
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
            relations: vec![],
            time_stamp: Some(Filter::Ge(
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            )),
            customer_id: None,
            contact_time_stamp: None,
        };
        let url = customers_url(&base(), 7.into(), &q);
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
            customers_url(&base(), 1.into(), &q)
                .query()
                .unwrap()
                .to_string()
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
    fn relations_and_their_cost() {
        let q = CustomerQuery {
            limit: Some(100),
            load_contact: true,
            relations: CustomerRelation::ALL.to_vec(),
            ..Default::default()
        };
        let url = customers_url(&base(), 7.into(), &q);
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert!(
            pairs.contains(&(
                "load_relations".into(),
                r#"["Contact","CustomerType","Note","CreditAccount","Tags","CustomFieldValues"]"#
                    .into()
            ))
        );
        // A list: 1 + 4 one-to-one × 0.2 + 2 one-to-many × 0.4.
        assert!((request_cost(&url) - 2.6).abs() < 1e-9);
        let plain = customers_url(&base(), 7.into(), &CustomerQuery::default());
        assert_eq!(request_cost(&plain), 1.0);
        let single = Url::parse(
            "https://x/API/V3/Account/7/Customer/5.json?load_relations=%5B%22Contact%22%5D",
        )
        .unwrap();
        assert!((request_cost(&single) - 1.1).abs() < 1e-9);
        let all =
            Url::parse("https://x/API/V3/Account/7/Customer.json?load_relations=all").unwrap();
        assert!((request_cost(&all) - (1.0 + 6.0 * 0.2 + 0.4)).abs() < 1e-9);
        let count = Url::parse("https://x/API/V3/Account/7/Customer.json?count=1").unwrap();
        assert_eq!(request_cost(&count), 10.0);
        assert_eq!(
            CustomerRelation::parse("Tags"),
            Some(CustomerRelation::Tags)
        );
        assert_eq!(CustomerRelation::parse("tags"), None);
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
        let url = customers_url(&base(), 1.into(), &q);
        assert_eq!(url.query(), Some("limit=100&sort=-lastName&archived=only"));
    }
}
