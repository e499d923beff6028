//! [`Scalar`]: any JSON value where the API should send a scalar, deserialized without allocating
//! (strings are borrowed unless escaped), and the readers that turn it into typed values the way
//! Lightspeed means them: numbers and booleans as strings, `""` (or `{}`, `[]`, `null`, a missing
//! key) for "empty", `"0"` for "no foreign key", ISO-8601 times with a numeric offset. Each reader
//! returns the problem as text; the caller adds the field name and the record's position.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What went wrong with one value (without the field name, which the caller knows).
pub(crate) type Problem = String;

/// One JSON value in a scalar position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// A string (borrowed from the body unless it had escapes).
    Str(Cow<'a, str>),
    /// A number, as its JSON text.
    Num(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object; only whether it was empty is kept.
    Object { empty: bool },
    /// An array; only whether it was empty is kept.
    Array { empty: bool },
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(std::marker::PhantomData))
    }
}

struct ScalarVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Num(v.to_string()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            empty = false;
        }
        Ok(Scalar::Object { empty })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut empty = true;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            empty = false;
        }
        Ok(Scalar::Array { empty })
    }
}

/// True for the shapes Lightspeed uses for "nothing here": missing, `null`, `""`, `{}`, `[]`.
pub(crate) fn is_empty(v: Option<&Scalar<'_>>) -> bool {
    match v {
        None | Some(Scalar::Null) => true,
        Some(Scalar::Str(s)) => s.is_empty(),
        Some(Scalar::Object { empty } | Scalar::Array { empty }) => *empty,
        Some(Scalar::Num(_) | Scalar::Bool(_)) => false,
    }
}

/// A short description of an unexpected value for error messages (at most ~40 characters).
pub(crate) fn describe(v: &Scalar<'_>) -> String {
    match v {
        Scalar::Object { .. } => "an object".into(),
        Scalar::Array { .. } => "an array".into(),
        Scalar::Null => "null".into(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Num(n) => n.clone(),
        Scalar::Str(s) => match s.char_indices().nth(40) {
            Some((i, _)) => format!("{:?}…", &s[..i]),
            None => format!("{s:?}"),
        },
    }
}

/// Text; empty shapes become `""`; numbers and booleans are taken as their text.
pub(crate) fn text(v: Option<&Scalar<'_>>) -> Result<String, Problem> {
    match v {
        Some(Scalar::Str(s)) => Ok(s.as_ref().to_owned()),
        Some(Scalar::Num(n)) => Ok(n.clone()),
        Some(Scalar::Bool(b)) => Ok(b.to_string()),
        v if is_empty(v) => Ok(String::new()),
        Some(other) => Err(format!("expected text, got {}", describe(other))),
        None => Ok(String::new()),
    }
}

/// Text that is `None` when empty.
pub(crate) fn opt_text(v: Option<&Scalar<'_>>) -> Result<Option<String>, Problem> {
    text(v).map(|s| if s.is_empty() { None } else { Some(s) })
}

/// The digits of a string or number, else `None`.
fn number_text<'s>(v: &'s Scalar<'_>) -> Option<&'s str> {
    match v {
        Scalar::Str(s) => Some(s.trim()),
        Scalar::Num(n) => Some(n),
        _ => None,
    }
}

/// A required unsigned integer (an ID): `"123"` or `123`.
pub(crate) fn id(v: Option<&Scalar<'_>>) -> Result<u64, Problem> {
    let v = v.ok_or("missing")?;
    number_text(v)
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| format!("expected an unsigned integer, got {}", describe(v)))
}

/// A foreign key: `"0"`, `0` and the empty shapes mean "none".
pub(crate) fn foreign_key(v: Option<&Scalar<'_>>) -> Result<Option<i64>, Problem> {
    let Some(v) = v.filter(|v| !is_empty(Some(v))) else {
        return Ok(None);
    };
    match number_text(v).and_then(|t| t.parse::<i64>().ok()) {
        Some(0) => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(format!("expected an integer ID, got {}", describe(v))),
    }
}

/// A boolean: `"true"`/`"false"` (any case), `"1"`/`"0"`, `true`/`false`, `1`/`0`; empty is `None`.
pub(crate) fn flag(v: Option<&Scalar<'_>>) -> Result<Option<bool>, Problem> {
    let Some(v) = v.filter(|v| !is_empty(Some(v))) else {
        return Ok(None);
    };
    let t = match v {
        Scalar::Bool(b) => return Ok(Some(*b)),
        other => number_text(other).unwrap_or(""),
    };
    if t.eq_ignore_ascii_case("true") || t == "1" {
        Ok(Some(true))
    } else if t.eq_ignore_ascii_case("false") || t == "0" {
        Ok(Some(false))
    } else {
        Err(format!(
            "expected \"true\" or \"false\", got {}",
            describe(v)
        ))
    }
}

/// A date-time; empty shapes (and MySQL's zero date) are `None`.
pub(crate) fn time(v: Option<&Scalar<'_>>) -> Result<Option<DateTime<Utc>>, Problem> {
    let Some(v) = v.filter(|v| !is_empty(Some(v))) else {
        return Ok(None);
    };
    match v {
        Scalar::Str(s) => parse_time(s.trim()).map_err(|()| {
            format!(
                "expected a date-time like 2019-04-29T08:40:04+00:00, got {}",
                describe(v)
            )
        }),
        other => Err(format!("expected a date-time, got {}", describe(other))),
    }
}

/// A required date-time.
pub(crate) fn required_time(v: Option<&Scalar<'_>>) -> Result<DateTime<Utc>, Problem> {
    match (time(v)?, v) {
        (Some(t), _) => Ok(t),
        (None, None) => Err("missing".into()),
        (None, Some(v)) => Err(format!("expected a date-time, got {}", describe(v))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(json: &str) -> Scalar<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn text_accepts_every_empty_shape_and_scalars() {
        for empty in [r#""""#, "{}", "[]", "null"] {
            assert_eq!(text(Some(&s(empty))).unwrap(), "");
        }
        assert_eq!(text(None).unwrap(), "");
        assert_eq!(text(Some(&s(r#""Zoë 🚲""#))).unwrap(), "Zoë 🚲");
        assert_eq!(text(Some(&s(r#""a\"b""#))).unwrap(), "a\"b");
        assert_eq!(text(Some(&s("12"))).unwrap(), "12");
        assert!(text(Some(&s(r#"{"a": "b"}"#))).is_err());
        assert_eq!(opt_text(Some(&s(r#""""#))).unwrap(), None);
        assert_eq!(opt_text(Some(&s("{}"))).unwrap(), None);
        assert_eq!(
            opt_text(Some(&s(r#""GB123""#))).unwrap().as_deref(),
            Some("GB123")
        );
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        assert_eq!(id(Some(&s(r#""120645""#))).unwrap(), 120_645);
        assert_eq!(id(Some(&s("7"))).unwrap(), 7);
        assert_eq!(id(None).unwrap_err(), "missing");
        let err = id(Some(&s(r#""abc""#))).unwrap_err();
        assert!(err.contains("\"abc\""), "{err}");
        assert!(id(Some(&s(r#""""#))).is_err());
        assert!(id(Some(&s("-3"))).is_err());
        assert!(id(Some(&s("1.5"))).is_err());
    }

    #[test]
    fn foreign_key_zero_and_empty_are_none() {
        for none in [r#""0""#, "0", r#""""#, "null", "{}"] {
            assert_eq!(foreign_key(Some(&s(none))).unwrap(), None, "{none}");
        }
        assert_eq!(foreign_key(None).unwrap(), None);
        assert_eq!(foreign_key(Some(&s(r#""42""#))).unwrap(), Some(42));
        assert_eq!(foreign_key(Some(&s("42"))).unwrap(), Some(42));
        assert!(foreign_key(Some(&s(r#""x""#))).is_err());
    }

    #[test]
    fn flags_are_strings_or_booleans() {
        assert_eq!(flag(Some(&s(r#""true""#))).unwrap(), Some(true));
        assert_eq!(flag(Some(&s(r#""false""#))).unwrap(), Some(false));
        assert_eq!(flag(Some(&s(r#""TRUE""#))).unwrap(), Some(true));
        assert_eq!(flag(Some(&s("true"))).unwrap(), Some(true));
        assert_eq!(flag(Some(&s(r#""0""#))).unwrap(), Some(false));
        assert_eq!(flag(Some(&s("1"))).unwrap(), Some(true));
        assert_eq!(flag(Some(&s(r#""""#))).unwrap(), None);
        assert_eq!(flag(None).unwrap(), None);
        assert!(flag(Some(&s(r#""yes""#))).is_err());
    }

    #[test]
    fn times_in_every_seen_format() {
        let t = |v: &str| {
            time(Some(&Scalar::Str(v.into())))
                .unwrap()
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(t("2019-04-29T08:40:04+00:00"), "2019-04-29T08:40:04+00:00");
        assert_eq!(t("2019-04-29T04:00:00-04:00"), "2019-04-29T08:00:00+00:00");
        assert_eq!(t("2016-11-01T00:00:00-0400"), "2016-11-01T04:00:00+00:00");
        assert_eq!(t("2019-04-29T08:40:04Z"), "2019-04-29T08:40:04+00:00");
        assert_eq!(t("2019-04-29T08:40:04"), "2019-04-29T08:40:04+00:00");
        assert_eq!(t("1980-05-01"), "1980-05-01T00:00:00+00:00");
        assert_eq!(time(Some(&s(r#""""#))).unwrap(), None);
        assert_eq!(time(Some(&s("{}"))).unwrap(), None);
        assert_eq!(time(Some(&s(r#""0000-00-00 00:00:00""#))).unwrap(), None);
        assert!(time(Some(&s(r#""yesterday""#))).is_err());
        assert!(time(Some(&s("1556527204"))).is_err());
        assert_eq!(required_time(None).unwrap_err(), "missing");
        assert!(required_time(Some(&s(r#""""#))).is_err());
    }
}
