//! Readers for single JSON values as Lightspeed sends them: numbers and booleans as strings, `""`
//! (or `{}`, `[]`, `null`, a missing key) for "empty", `"0"` for "no foreign key", ISO-8601 times with
//! a numeric offset, and one-or-many collections. Each reader returns the problem as text; the caller
//! adds the field name and the record's position.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// What went wrong with one value (without the field name, which the caller knows).
pub(crate) type Problem = String;

/// True for the shapes Lightspeed uses for "nothing here": missing, `null`, `""`, `{}`, `[]`.
pub(crate) fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// A short description of an unexpected value for error messages (at most ~40 characters).
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "an array".into(),
        Value::Null => "null".into(),
        other => {
            let text = other.to_string();
            match text.char_indices().nth(40) {
                Some((i, _)) => format!("{}…", &text[..i]),
                None => text,
            }
        }
    }
}

/// Text; empty shapes become `""`; numbers and booleans are taken as their text.
pub(crate) fn text(v: Option<&Value>) -> Result<String, Problem> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        v if is_empty(v) => Ok(String::new()),
        Some(other) => Err(format!("expected text, got {}", describe(other))),
        None => Ok(String::new()),
    }
}

/// Text that is `None` when empty.
pub(crate) fn opt_text(v: Option<&Value>) -> Result<Option<String>, Problem> {
    text(v).map(|s| if s.is_empty() { None } else { Some(s) })
}

/// A required unsigned integer (an ID): `"123"` or `123`.
pub(crate) fn id(v: Option<&Value>) -> Result<u64, Problem> {
    match v {
        None => Err("missing".into()),
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| {
            format!(
                "expected an unsigned integer, got {}",
                describe(&Value::String(s.clone()))
            )
        }),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("expected an unsigned integer, got {n}")),
        Some(other) => Err(format!(
            "expected an unsigned integer, got {}",
            describe(other)
        )),
    }
}

/// A foreign key: `"0"`, `0` and the empty shapes mean "none".
pub(crate) fn foreign_key(v: Option<&Value>) -> Result<Option<i64>, Problem> {
    let parsed = match v {
        v if is_empty(v) => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    match parsed {
        Some(0) => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(format!(
            "expected an integer ID, got {}",
            describe(v.unwrap_or(&Value::Null))
        )),
    }
}

/// A boolean: `"true"`/`"false"` (any case), `"1"`/`"0"`, `true`/`false`, `1`/`0`; empty is `None`.
pub(crate) fn flag(v: Option<&Value>) -> Result<Option<bool>, Problem> {
    match v {
        v if is_empty(v) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.trim() {
            t if t.eq_ignore_ascii_case("true") || t == "1" => Ok(Some(true)),
            t if t.eq_ignore_ascii_case("false") || t == "0" => Ok(Some(false)),
            _ => Err(format!(
                "expected \"true\" or \"false\", got {}",
                describe(&Value::String(s.clone()))
            )),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(other) => Err(format!(
            "expected \"true\" or \"false\", got {}",
            describe(other)
        )),
        None => Ok(None),
    }
}

/// A date-time; empty shapes (and MySQL's zero date) are `None`.
pub(crate) fn time(v: Option<&Value>) -> Result<Option<DateTime<Utc>>, Problem> {
    match v {
        v if is_empty(v) => Ok(None),
        Some(Value::String(s)) => parse_time(s.trim()).map_err(|()| {
            format!(
                "expected a date-time like 2019-04-29T08:40:04+00:00, got {}",
                describe(&Value::String(s.clone()))
            )
        }),
        Some(other) => Err(format!("expected a date-time, got {}", describe(other))),
        None => Ok(None),
    }
}

/// A required date-time.
pub(crate) fn required_time(v: Option<&Value>) -> Result<DateTime<Utc>, Problem> {
    match time(v)? {
        Some(t) => Ok(t),
        None if v.is_none() => Err("missing".into()),
        None => Err(format!(
            "expected a date-time, got {}",
            describe(v.unwrap_or(&Value::Null))
        )),
    }
}

fn parse_time(s: &str) -> Result<Option<DateTime<Utc>>, ()> {
    if s.starts_with("0000-00-00") {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    // `2016-11-01T00:00:00-0400` (offset without a colon), as in the docs' filter examples.
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    // No offset at all: the docs say every time is stored in UTC.
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(Some(t.and_utc()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    Err(())
}

/// The records of a one-or-many value: an object is one record, an array several, an empty shape none.
pub(crate) fn one_or_many(v: Option<&Value>) -> Result<Vec<&Map<String, Value>>, Problem> {
    match v {
        v if is_empty(v) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(vec![m]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => Ok(m),
                other => Err(format!(
                    "item {i}: expected an object, got {}",
                    describe(other)
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "expected an object or an array, got {}",
            describe(other)
        )),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_accepts_every_empty_shape_and_scalars() {
        for empty in [json!(""), json!({}), json!([]), json!(null)] {
            assert_eq!(text(Some(&empty)).unwrap(), "");
        }
        assert_eq!(text(None).unwrap(), "");
        assert_eq!(text(Some(&json!("Zoë 🚲"))).unwrap(), "Zoë 🚲");
        assert_eq!(text(Some(&json!(12))).unwrap(), "12");
        assert!(text(Some(&json!({"a": "b"}))).is_err());
        assert_eq!(opt_text(Some(&json!(""))).unwrap(), None);
        assert_eq!(opt_text(Some(&json!({}))).unwrap(), None);
        assert_eq!(
            opt_text(Some(&json!("GB123"))).unwrap().as_deref(),
            Some("GB123")
        );
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        assert_eq!(id(Some(&json!("120645"))).unwrap(), 120_645);
        assert_eq!(id(Some(&json!(7))).unwrap(), 7);
        assert_eq!(id(None).unwrap_err(), "missing");
        let err = id(Some(&json!("abc"))).unwrap_err();
        assert!(err.contains("\"abc\""), "{err}");
        assert!(id(Some(&json!(""))).is_err());
        assert!(id(Some(&json!(-3))).is_err());
    }

    #[test]
    fn foreign_key_zero_and_empty_are_none() {
        for none in [json!("0"), json!(0), json!(""), json!(null), json!({})] {
            assert_eq!(foreign_key(Some(&none)).unwrap(), None, "{none}");
        }
        assert_eq!(foreign_key(None).unwrap(), None);
        assert_eq!(foreign_key(Some(&json!("42"))).unwrap(), Some(42));
        assert_eq!(foreign_key(Some(&json!(42))).unwrap(), Some(42));
        assert!(foreign_key(Some(&json!("x"))).is_err());
    }

    #[test]
    fn flags_are_strings_or_booleans() {
        assert_eq!(flag(Some(&json!("true"))).unwrap(), Some(true));
        assert_eq!(flag(Some(&json!("false"))).unwrap(), Some(false));
        assert_eq!(flag(Some(&json!("TRUE"))).unwrap(), Some(true));
        assert_eq!(flag(Some(&json!(true))).unwrap(), Some(true));
        assert_eq!(flag(Some(&json!("0"))).unwrap(), Some(false));
        assert_eq!(flag(Some(&json!(""))).unwrap(), None);
        assert_eq!(flag(None).unwrap(), None);
        assert!(flag(Some(&json!("yes"))).is_err());
    }

    #[test]
    fn times_in_every_seen_format() {
        let t = |s: &str| time(Some(&json!(s))).unwrap().unwrap().to_rfc3339();
        assert_eq!(t("2019-04-29T08:40:04+00:00"), "2019-04-29T08:40:04+00:00");
        assert_eq!(t("2019-04-29T04:00:00-04:00"), "2019-04-29T08:00:00+00:00");
        assert_eq!(t("2016-11-01T00:00:00-0400"), "2016-11-01T04:00:00+00:00");
        assert_eq!(t("2019-04-29T08:40:04Z"), "2019-04-29T08:40:04+00:00");
        assert_eq!(t("2019-04-29T08:40:04"), "2019-04-29T08:40:04+00:00");
        assert_eq!(t("1980-05-01"), "1980-05-01T00:00:00+00:00");
        assert_eq!(time(Some(&json!(""))).unwrap(), None);
        assert_eq!(time(Some(&json!({}))).unwrap(), None);
        assert_eq!(time(Some(&json!("0000-00-00 00:00:00"))).unwrap(), None);
        assert!(time(Some(&json!("yesterday"))).is_err());
        assert!(time(Some(&json!(1556527204))).is_err());
        assert_eq!(required_time(None).unwrap_err(), "missing");
        assert!(required_time(Some(&json!(""))).is_err());
    }

    #[test]
    fn one_or_many_normalizes() {
        assert_eq!(one_or_many(None).unwrap().len(), 0);
        assert_eq!(one_or_many(Some(&json!(""))).unwrap().len(), 0);
        assert_eq!(one_or_many(Some(&json!({"a": "1"}))).unwrap().len(), 1);
        assert_eq!(
            one_or_many(Some(&json!([{"a": "1"}, {"a": "2"}])))
                .unwrap()
                .len(),
            2
        );
        assert!(one_or_many(Some(&json!(["x"]))).is_err());
        assert!(one_or_many(Some(&json!("x"))).is_err());
    }
}
