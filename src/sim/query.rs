//! Customer list queries: parsing `limit`, `sort`, `after`/`before`, `archived`, `count`,
//! `load_relations` and the operator filters on `timeStamp` and `customerID` (§3, §5), and
//! running one against an account's indexes to produce a page and its cursors.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDateTime;

use super::store::{Key, SortField};

/// Which customers the `archived` parameter selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Archived {
    Active,
    Both,
    Only,
}

/// A filter operator with its values (timestamps as Unix seconds).
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Eq(i64),
    Ne(i64),
    Gt(i64),
    Ge(i64),
    Lt(i64),
    Le(i64),
    Between(i64, i64),
    In(Vec<i64>),
}

/// A parsed list (or single-record) query.
#[derive(Clone, Debug)]
pub(crate) struct ListQuery {
    pub limit: usize,
    pub sort: SortField,
    pub desc: bool,
    pub sort_raw: String,
    pub after: Option<(Key, Option<u64>)>,
    pub before: Option<(Key, Option<u64>)>,
    pub archived: Archived,
    /// The relations of `load_relations`, as bits of `json::rel`.
    pub rels: u16,
    pub count: bool,
    pub filters: Vec<(SortField, Op)>,
    /// Filters on `Contact.timeStamp` (searching inside the Contact relation, §5): only with
    /// `Contact` in `load_relations`.
    pub contact_filters: Vec<Op>,
    /// Raw `k=v` segments to carry into `next`/`previous` (all but limit, sort, after, before).
    pub carry: Vec<String>,
}

const SORTS: &str = "customerID, timeStamp, firstName, lastName";
const RELATIONS: &[&str] = &[
    "Contact",
    "CustomerType",
    "Discount",
    "Note",
    "TaxCategory",
    "CreditAccount",
    "Tags",
    "CustomFieldValues",
    "CustomFieldValues.value",
];

/// Parse a raw query string (as received, before decoding).
pub(crate) fn parse(raw: &str) -> Result<ListQuery, String> {
    let mut q = ListQuery {
        limit: 100,
        sort: SortField::Id,
        desc: false,
        sort_raw: "customerID".into(),
        after: None,
        before: None,
        archived: Archived::Active,
        rels: 0,
        count: false,
        filters: Vec::new(),
        contact_filters: Vec::new(),
        carry: Vec::new(),
    };
    let mut paging_params = false;
    for segment in raw.split('&').filter(|s| !s.is_empty()) {
        let Some((k, v)) = url::form_urlencoded::parse(segment.as_bytes()).next() else {
            continue;
        };
        let carry = !matches!(&*k, "limit" | "sort" | "after" | "before");
        if carry {
            q.carry.push(segment.to_string());
        } else {
            paging_params = true;
        }
        match &*k {
            "limit" => q.limit = parse_limit(&v)?,
            "sort" => parse_sort(&v, &mut q)?,
            "after" => q.after = Some(parse_cursor(&v)?),
            "before" => q.before = Some(parse_cursor(&v)?),
            "archived" => q.archived = parse_archived(&v)?,
            "load_relations" => q.rels = parse_relations(&v)?,
            "count" => q.count = matches!(v.trim(), "1" | "true"),
            "timeStamp" => q
                .filters
                .push((SortField::TimeStamp, parse_filter(&v, true)?)),
            "customerID" => q.filters.push((SortField::Id, parse_filter(&v, false)?)),
            "Contact.timeStamp" => q.contact_filters.push(parse_filter(&v, true)?),
            _ => {}
        }
    }
    if q.count && paging_params {
        return Err("count cannot be combined with limit, sort, after or before.".into());
    }
    if !q.contact_filters.is_empty() && q.rels & super::json::rel::CONTACT == 0 {
        return Err(
            "Searching on Contact.timeStamp needs the Contact relation: add load_relations=[\"Contact\"]."
                .into(),
        );
    }
    if q.after.is_some() && q.before.is_some() {
        return Err("after and before cannot be combined.".into());
    }
    if q.sort == SortField::TimeStamp {
        for cursor in [&mut q.after, &mut q.before].into_iter().flatten() {
            if let Key::Str(s) = &cursor.0 {
                cursor.0 =
                    Key::Int(parse_ts(s).ok_or_else(|| format!("Invalid cursor value '{s}'."))?);
            }
        }
    }
    Ok(q)
}

fn parse_limit(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(0) => Ok(100),
        Ok(n) if n <= 100 => Ok(n),
        Ok(_) => Err("Limit must be between 0 and 100.".into()),
        Err(_) => Err(format!("Invalid limit value '{v}'.")),
    }
}

fn parse_sort(v: &str, q: &mut ListQuery) -> Result<(), String> {
    let (desc, name) = v.strip_prefix('-').map_or((false, v), |n| (true, n));
    q.sort = match name {
        "customerID" => SortField::Id,
        "timeStamp" => SortField::TimeStamp,
        "firstName" => SortField::FirstName,
        "lastName" => SortField::LastName,
        _ => {
            return Err(format!(
                "Invalid sort field '{v}'. Allowed sort fields are: {SORTS}."
            ));
        }
    };
    q.desc = desc;
    q.sort_raw = v.to_string();
    Ok(())
}

fn parse_archived(v: &str) -> Result<Archived, String> {
    match v.trim() {
        "false" | "0" => Ok(Archived::Active),
        "true" | "1" => Ok(Archived::Both),
        "only" => Ok(Archived::Only),
        _ => Err(format!(
            "Invalid value for archived: '{v}'. Use true, false or only."
        )),
    }
}

/// The bit of a relation name (`CustomFieldValues.value` counts as `CustomFieldValues`).
fn relation_bit(name: &str) -> u16 {
    use super::json::rel;
    match name {
        "Contact" => rel::CONTACT,
        "CustomerType" => rel::CUSTOMER_TYPE,
        "Note" => rel::NOTE,
        "CreditAccount" => rel::CREDIT_ACCOUNT,
        "Tags" => rel::TAGS,
        "Discount" => rel::DISCOUNT,
        "TaxCategory" => rel::TAX_CATEGORY,
        _ => rel::CUSTOM_FIELD_VALUES,
    }
}

/// `["Contact", …]` (JSON) or `all` (every relation but `CustomFieldValues`, fact sheet §5).
fn parse_relations(v: &str) -> Result<u16, String> {
    if v.trim() == "all" {
        return Ok(RELATIONS
            .iter()
            .filter(|n| !n.starts_with("CustomFieldValues"))
            .fold(0, |bits, n| bits | relation_bit(n)));
    }
    let names: Vec<String> = serde_json::from_str(v).map_err(|_| {
        format!("load_relations must be a JSON array of relation names, got '{v}'.")
    })?;
    if let Some(bad) = names.iter().find(|n| !RELATIONS.contains(&n.as_str())) {
        return Err(format!("Invalid relation '{bad}' for Customer."));
    }
    Ok(names.iter().fold(0, |bits, n| bits | relation_bit(n)))
}

impl Op {
    /// Whether `v` passes this operator.
    pub(crate) fn test(&self, v: i64) -> bool {
        match self {
            Op::Eq(x) => v == *x,
            Op::Ne(x) => v != *x,
            Op::Gt(x) => v > *x,
            Op::Ge(x) => v >= *x,
            Op::Lt(x) => v < *x,
            Op::Le(x) => v <= *x,
            Op::Between(a, b) => *a <= v && v <= *b,
            Op::In(xs) => xs.contains(&v),
        }
    }
}

/// `>=,v`, `><,a,b`, `IN,[a,b]`, `v`, ... with `v` a timestamp (`is_ts`) or an integer.
fn parse_filter(v: &str, is_ts: bool) -> Result<Op, String> {
    let value = |s: &str| -> Result<i64, String> {
        let s = s.trim().trim_matches('"');
        let parsed = if is_ts {
            parse_ts(s)
        } else {
            s.parse::<i64>().ok()
        };
        parsed.ok_or_else(|| {
            format!(
                "Invalid {} value '{s}'.",
                if is_ts { "timeStamp" } else { "customerID" }
            )
        })
    };
    const OPS: &[&str] = &[
        "><,", ">=,", "<=,", "!=,", "!~,", ">,", "<,", "=,", "~,", "IN,",
    ];
    let Some(op) = OPS.iter().find(|op| v.starts_with(**op)) else {
        return Ok(Op::Eq(value(v)?));
    };
    let rest = &v[op.len()..];
    Ok(match *op {
        "><," => {
            let (a, b) = rest
                .split_once(',')
                .ok_or("Between (><) needs two comma-separated values.")?;
            Op::Between(value(a)?, value(b)?)
        }
        ">=," => Op::Ge(value(rest)?),
        "<=," => Op::Le(value(rest)?),
        "!=," => Op::Ne(value(rest)?),
        ">," => Op::Gt(value(rest)?),
        "<," => Op::Lt(value(rest)?),
        "=," => Op::Eq(value(rest)?),
        "IN," => {
            let inner = rest
                .trim()
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'));
            let inner = inner.ok_or("IN needs a bracketed list, e.g. IN,[1,2,3].")?;
            let values = inner
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(value)
                .collect::<Result<Vec<_>, _>>()?;
            if values.len() > 100 {
                return Err("IN accepts at most 100 values.".into());
            }
            Op::In(values)
        }
        _ => {
            return Err(format!(
                "Operator '{}' is not supported on this field.",
                op.trim_end_matches(',')
            ));
        }
    })
}

/// Parse `YYYY-MM-DDTHH:MM:SS` with an optional offset (`-00:00`, `+00:00`, `-0400`, `Z`); a
/// space before the offset is a `+` that arrived unencoded. Returns Unix seconds.
pub(crate) fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim_start();
    if s.len() == 10 {
        return NaiveDateTime::parse_from_str(&format!("{s}T00:00:00"), "%Y-%m-%dT%H:%M:%S")
            .ok()
            .map(|d| d.and_utc().timestamp());
    }
    let local = NaiveDateTime::parse_from_str(s.get(..19)?, "%Y-%m-%dT%H:%M:%S")
        .ok()?
        .and_utc()
        .timestamp();
    let off = &s[19..];
    let offset = match off {
        "" | "Z" => 0,
        _ => {
            let sign = match off.as_bytes()[0] {
                b'+' | b' ' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (h, m): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    Some(local - offset)
}

/// Decode `after`/`before`: base64 of a JSON array `[value]` or `[value, id]`.
fn parse_cursor(v: &str) -> Result<(Key, Option<u64>), String> {
    let bad = || format!("Invalid cursor '{v}'.");
    let bytes = STANDARD
        .decode(v.trim().replace(' ', "+"))
        .map_err(|_| bad())?;
    let arr: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let key = match arr.first() {
        Some(serde_json::Value::Number(n)) => Key::Int(n.as_i64().ok_or_else(bad)?),
        Some(serde_json::Value::String(s)) => Key::Str(s.clone()),
        _ => return Err(bad()),
    };
    let id = arr.get(1).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    });
    Ok((key, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_time_stamp_filters_need_the_contact_relation() {
        let q = parse("load_relations=%5B%22Contact%22%5D&Contact.timeStamp=%3E%3D%2C2026-01-01T00:00:00-00:00")
            .unwrap();
        assert!(
            matches!(q.contact_filters[..], [Op::Ge(t)] if t == parse_ts("2026-01-01T00:00:00").unwrap())
        );
        let e = parse("Contact.timeStamp=%3E%2C2026-01-01T00:00:00").unwrap_err();
        assert!(e.contains("Contact relation"), "{e}");
        assert!(parse("load_relations=%5B%22Contact%22%5D&Contact.timeStamp=junk").is_err());
    }
}
