//! Wire models of the R-Series API and the list envelope, tolerant of every quirk in the fact sheet
//! (§4): one record is an object and several an array, none a missing key; numbers and booleans are
//! strings; `"0"` foreign keys; `""` for empty containers and scalars. The body is split into raw
//! records without building a DOM, each record is deserialized into borrowed "any value" fields
//! (`scalar`, `shape`) and converted, and keeps its JSON text as `raw` ([`RawValue`]), so no field
//! is lost and storing it as `jsonb` costs a copy. A record that does not convert is an error naming the field and the record's position;
//! nothing is skipped silently. This module does no I/O.

mod account;
pub mod audit;
mod customer;
mod relations;
mod scalar;
mod shape;

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use url::Url;

use scalar::Scalar;

pub use account::{Account, AccountDetail, DetailShape};
pub use customer::{Address, Contact, Customer, Email, Phone};
pub use relations::{CreditAccount, CustomField, CustomFieldValue, CustomerType, Note};

/// A body or a record that does not match the API's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct WireError {
    /// The resource key (`Customer`, `Account`), when a record is at fault.
    pub resource: Option<&'static str>,
    /// Zero-based position of the record in the page.
    pub position: Option<usize>,
    /// The record's ID as sent, when it could be read.
    pub record_id: Option<String>,
    /// The field at fault, as a path (`Contact.Emails.ContactEmail[1].address`).
    pub field: Option<String>,
    /// What was wrong.
    pub problem: String,
    /// The body ended in the middle of the JSON (a cut connection rather than a bad record).
    pub truncated: bool,
}

impl WireError {
    fn body(problem: impl Into<String>) -> Self {
        WireError {
            resource: None,
            position: None,
            record_id: None,
            field: None,
            problem: problem.into(),
            truncated: false,
        }
    }

    /// An error about a whole body (not one record).
    pub fn from_problem(problem: String) -> Self {
        WireError::body(problem)
    }

    fn truncated_if(self, truncated: bool) -> Self {
        WireError { truncated, ..self }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(resource) = self.resource {
            out.push_str(resource);
            if let Some(p) = self.position {
                out.push_str(&format!(" record #{p}"));
            }
            if let Some(id) = &self.record_id {
                out.push_str(&format!(" (ID {id})"));
            }
            out.push_str(": ");
        }
        if let Some(field) = &self.field {
            out.push_str(&format!("field `{field}`: "));
        }
        out.push_str(&self.problem);
        out
    }
}

/// A field-level problem inside one record, before the record's position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as a path (empty when the record's structure is at fault).
    pub field: String,
    /// What was wrong.
    pub problem: String,
}

impl FieldError {
    /// A record whose structure does not deserialize (serde's message names the place).
    pub(crate) fn shape(e: serde_json::Error) -> Self {
        FieldError {
            field: String::new(),
            problem: e.to_string(),
        }
    }
}

/// Attach the field name to a scalar reader's result.
pub(crate) fn field<T>(name: &str, r: Result<T, scalar::Problem>) -> Result<T, FieldError> {
    r.map_err(|problem| FieldError {
        field: name.to_string(),
        problem,
    })
}

/// A record type the API lists under a resource key.
pub trait Record: Sized {
    /// The resource key in the envelope (`"Customer"`).
    const KEY: &'static str;
    /// The name of the ID field (`"customerID"`), for error messages.
    const ID_FIELD: &'static str;
    /// Convert one record, keeping its JSON text as `raw`.
    fn from_raw(raw: &RawValue) -> Result<Self, FieldError>;
}

/// One page of a list endpoint.
#[derive(Debug, Clone)]
pub struct ListPage<T> {
    /// The records, in the order sent.
    pub records: Vec<T>,
    /// `@attributes.next`: the next page, `None` at the end (`""`).
    pub next: Option<Url>,
    /// `@attributes.previous`, `None` on the first page.
    pub previous: Option<Url>,
}

/// Parse a list body (`{"@attributes":{"next":…,"previous":…},"Customer":…}`); `request_url`
/// resolves a relative `next` (the API sends absolute ones).
pub fn parse_list<T: Record>(body: &[u8], request_url: &Url) -> Result<ListPage<T>, WireError> {
    let top = parse_top(body, T::KEY)?;
    let (next, previous) = match top.attributes {
        Some(raw) => links(raw, request_url)?,
        None => (None, None),
    };
    Ok(ListPage {
        records: records::<T>(top.records)?,
        next,
        previous,
    })
}

/// Parse a single-record body (`{"@attributes":{…},"Account":{…}}`); exactly one record must be there.
pub fn parse_single<T: Record>(body: &[u8]) -> Result<T, WireError> {
    let mut records = records::<T>(parse_top(body, T::KEY)?.records)?;
    match records.len() {
        1 => Ok(records.remove(0)),
        n => Err(WireError::body(format!(
            "expected one `{}` record, got {n}",
            T::KEY
        ))),
    }
}

/// The two members of the top-level object that matter, unparsed.
struct Top<'a> {
    attributes: Option<&'a RawValue>,
    records: Option<&'a RawValue>,
}

fn parse_top<'a>(body: &'a [u8], key: &'static str) -> Result<Top<'a>, WireError> {
    let map: HashMap<Cow<'a, str>, &'a RawValue> = match serde_json::from_slice(body) {
        Ok(map) => map,
        Err(e) if e.is_eof() => {
            let problem = format!("body is not valid JSON (cut short?): {e}");
            return Err(WireError {
                truncated: true,
                ..WireError::body(problem)
            });
        }
        Err(e) => {
            let problem = match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => format!("expected a JSON object: {e}"),
                Err(e) => format!("body is not valid JSON: {e}"),
            };
            return Err(WireError::body(problem));
        }
    };
    Ok(Top {
        attributes: map.get("@attributes").copied(),
        records: map.get(key).copied(),
    })
}

/// `@attributes.next` and `.previous`; `""` or absent is `None`.
fn links(raw: &RawValue, base: &Url) -> Result<(Option<Url>, Option<Url>), WireError> {
    #[derive(Deserialize)]
    struct Attributes<'a> {
        #[serde(borrow)]
        next: Option<Scalar<'a>>,
        #[serde(borrow)]
        previous: Option<Scalar<'a>>,
    }
    let attrs = match serde_json::from_str::<Attributes<'_>>(raw.get()) {
        Ok(a) => a,
        Err(_) if scalar::is_empty(serde_json::from_str::<Scalar<'_>>(raw.get()).ok().as_ref()) => {
            return Ok((None, None));
        }
        Err(e) => return Err(WireError::body(format!("`@attributes`: {e}"))),
    };
    let link = |key: &str, v: Option<&Scalar<'_>>| -> Result<Option<Url>, WireError> {
        let text =
            scalar::text(v).map_err(|p| WireError::body(format!("`@attributes.{key}`: {p}")))?;
        if text.is_empty() {
            return Ok(None);
        }
        base.join(&text).map(Some).map_err(|e| {
            WireError::body(format!("`@attributes.{key}` is not a URL ({e}): {text:?}"))
        })
    };
    Ok((
        link("next", attrs.next.as_ref())?,
        link("previous", attrs.previous.as_ref())?,
    ))
}

/// Convert the value under the resource key: missing or empty → none, an object → one, an array → many.
fn records<T: Record>(value: Option<&RawValue>) -> Result<Vec<T>, WireError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let text = value.get();
    let items: Vec<&RawValue> = match text.as_bytes().first() {
        Some(b'[') => serde_json::from_str(text).map_err(|e| WireError::body(e.to_string()))?,
        Some(b'{') if is_empty_object(text) => Vec::new(),
        Some(b'{') => vec![value],
        _ => {
            let v: Scalar<'_> =
                serde_json::from_str(text).map_err(|e| WireError::body(e.to_string()))?;
            if scalar::is_empty(Some(&v)) {
                return Ok(Vec::new());
            }
            let got = scalar::describe(&v);
            return Err(WireError::body(format!(
                "`{}`: expected an object or an array, got {got}",
                T::KEY
            )));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        match T::from_raw(item) {
            Ok(record) => out.push(record),
            Err(e) => return Err(record_error::<T>(item, position, e)),
        }
    }
    Ok(out)
}

fn is_empty_object(text: &str) -> bool {
    text[1..].trim_start().starts_with('}')
}

/// The error for the record at `position`, with its ID when it can be read.
fn record_error<T: Record>(item: &RawValue, position: usize, e: FieldError) -> WireError {
    let id = serde_json::from_str::<HashMap<Cow<'_, str>, Scalar<'_>>>(item.get())
        .ok()
        .and_then(|m| m.get(T::ID_FIELD).and_then(|v| scalar::text(Some(v)).ok()));
    WireError {
        resource: Some(T::KEY),
        position: Some(position),
        record_id: id,
        field: (!e.field.is_empty()).then_some(e.field),
        problem: e.problem,
        truncated: false,
    }
}

#[cfg(test)]
mod tests;
