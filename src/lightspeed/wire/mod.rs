//! Wire models of the R-Series API and the list envelope, tolerant of every quirk in the fact sheet
//! (§4): one record is an object and several an array, none a missing key; numbers and booleans are
//! strings; `"0"` foreign keys; `""` for empty containers and scalars. A body is parsed once into a
//! [`serde_json::Value`], then each record is converted and keeps its whole JSON as `raw`, so no field
//! is lost. A record that does not convert is an error naming the field and the record's position;
//! nothing is skipped silently. This module does no I/O.

mod account;
mod customer;
mod scalar;

use serde_json::{Map, Value};
use url::Url;

pub use account::{Account, AccountDetail};
pub use customer::{Address, Contact, Customer, Email, Phone};

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
    /// The field, as a path.
    pub field: String,
    /// What was wrong.
    pub problem: String,
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
    /// Convert one record, taking its JSON as `raw`.
    fn from_json(obj: Map<String, Value>) -> Result<Self, FieldError>;
}

/// One page of a list endpoint.
#[derive(Debug, Clone, PartialEq)]
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
    let mut top = parse_object(body)?;
    let (next, previous) = match top.get("@attributes") {
        Some(Value::Object(attrs)) => (
            link(attrs, "next", request_url)?,
            link(attrs, "previous", request_url)?,
        ),
        v if scalar::is_empty(v) => (None, None),
        None => (None, None),
        Some(other) => {
            return Err(WireError::body(format!(
                "`@attributes`: expected an object, got {}",
                scalar::describe(other)
            )));
        }
    };
    let records = records::<T>(top.remove(T::KEY))?;
    Ok(ListPage {
        records,
        next,
        previous,
    })
}

/// Parse a single-record body (`{"@attributes":{…},"Account":{…}}`); exactly one record must be there.
pub fn parse_single<T: Record>(body: &[u8]) -> Result<T, WireError> {
    let mut top = parse_object(body)?;
    let mut records = records::<T>(top.remove(T::KEY))?;
    match records.len() {
        1 => Ok(records.remove(0)),
        n => Err(WireError::body(format!(
            "expected one `{}` record, got {n}",
            T::KEY
        ))),
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, WireError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(WireError::body(format!(
            "expected a JSON object, got {}",
            scalar::describe(&other)
        ))),
        Err(e) => Err(WireError {
            truncated: e.is_eof(),
            ..WireError::body(format!("body is not valid JSON: {e}"))
        }),
    }
}

fn link(attrs: &Map<String, Value>, key: &str, base: &Url) -> Result<Option<Url>, WireError> {
    let text = scalar::text(attrs.get(key))
        .map_err(|p| WireError::body(format!("`@attributes.{key}`: {p}")))?;
    if text.is_empty() {
        return Ok(None);
    }
    base.join(&text)
        .map(Some)
        .map_err(|e| WireError::body(format!("`@attributes.{key}` is not a URL ({e}): {text:?}")))
}

/// Convert the value under the resource key: missing or empty → none, an object → one, an array → many.
fn records<T: Record>(value: Option<Value>) -> Result<Vec<T>, WireError> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(Value::Object(m)) if m.is_empty() => return Ok(Vec::new()),
        Some(v @ Value::Object(_)) => vec![v],
        Some(v) if scalar::is_empty(Some(&v)) => return Ok(Vec::new()),
        Some(other) => {
            return Err(WireError::body(format!(
                "`{}`: expected an object or an array, got {}",
                T::KEY,
                scalar::describe(&other)
            )));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        let record_error =
            |record_id: Option<String>, field: Option<String>, problem: String| WireError {
                resource: Some(T::KEY),
                position: Some(position),
                record_id,
                field,
                problem,
                truncated: false,
            };
        let Value::Object(obj) = item else {
            return Err(record_error(
                None,
                None,
                format!("expected an object, got {}", scalar::describe(&item)),
            ));
        };
        let record_id = obj
            .get(T::ID_FIELD)
            .and_then(|v| scalar::text(Some(v)).ok());
        match T::from_json(obj) {
            Ok(record) => out.push(record),
            Err(e) => return Err(record_error(record_id, Some(e.field), e.problem)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
