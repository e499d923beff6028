//! Running a parsed [`ListQuery`] against an account: the filters, the drip cost, one page of
//! records in sort order, and the `after`/`before` cursors (`TieBreak::Skip` resumes strictly
//! after the boundary value, skipping ties that did not fit on the page).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::TieBreak;
use super::query::{Archived, ListQuery, Op};
use super::store::{AccountData, Entry, Key, SortField};

/// A served page: rendered records and base64 cursors for next/previous.
pub(crate) struct PageOut<'a> {
    pub records: Vec<&'a str>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

impl ListQuery {
    /// Whether a customer passes the `archived` mode and every filter.
    pub(crate) fn matches(&self, e: &Entry) -> bool {
        let archived_ok = match self.archived {
            Archived::Active => !e.c.archived,
            Archived::Both => true,
            Archived::Only => e.c.archived,
        };
        archived_ok
            && self.filters.iter().all(|(field, op)| {
                let v = if *field == SortField::Id {
                    e.c.id as i64
                } else {
                    e.c.time_stamp
                };
                match op {
                    Op::Eq(x) => v == *x,
                    Op::Ne(x) => v != *x,
                    Op::Gt(x) => v > *x,
                    Op::Ge(x) => v >= *x,
                    Op::Lt(x) => v < *x,
                    Op::Le(x) => v <= *x,
                    Op::Between(a, b) => *a <= v && v <= *b,
                    Op::In(xs) => xs.contains(&v),
                }
            })
    }

    /// The drip cost of this request on a list endpoint (`list`) or a single record.
    pub(crate) fn cost(&self, list: bool) -> f64 {
        if self.count {
            return 10.0;
        }
        1.0 + if self.contact {
            if list { 0.2 } else { 0.1 }
        } else {
            0.0
        }
    }

    /// Run the query on `acct`: one page of records plus next/previous cursors.
    pub(crate) fn run<'a>(&self, acct: &'a AccountData, tie: TieBreak) -> PageOut<'a> {
        let by_id = tie == TieBreak::ById && self.sort != SortField::Id;
        let strip = |(k, id): (Key, Option<u64>)| (k, if by_id { id } else { None });
        let (from, forward) = match (&self.after, &self.before) {
            (_, Some(b)) => (Some(strip(b.clone())), false),
            (a, None) => (a.clone().map(strip), true),
        };
        // `up` is the index direction: ascending sorts walk up when going forward.
        let up = forward != self.desc;
        let mut page: Vec<&Entry> = acct
            .walk(self.sort, up, from)
            .filter(|e| self.matches(e))
            .take(self.limit)
            .collect();
        if !forward {
            page.reverse();
        }
        let cursor_of = |e: &Entry| (e.key(self.sort), by_id.then_some(e.c.id));
        let exists_past = |e: &Entry, up: bool| {
            acct.walk(self.sort, up, Some(cursor_of(e)))
                .any(|x| self.matches(x))
        };
        let (next, previous) = match (page.first(), page.last()) {
            (Some(first), Some(last)) => {
                let next = exists_past(last, !self.desc).then(|| self.encode(last, by_id));
                let paged = self.after.is_some() || self.before.is_some();
                let previous =
                    (paged && exists_past(first, self.desc)).then(|| self.encode(first, by_id));
                (next, previous)
            }
            _ => (None, None),
        };
        PageOut {
            records: page.iter().map(|e| e.json(self.contact)).collect(),
            next,
            previous,
        }
    }

    /// The cursor for record `e`: base64 of `[sort value]` (or `[sort value, id]`).
    fn encode(&self, e: &Entry, by_id: bool) -> String {
        let mut arr = vec![match self.sort {
            SortField::Id => serde_json::Value::from(e.c.id),
            SortField::TimeStamp => serde_json::Value::from(super::json::ts(e.c.time_stamp)),
            SortField::FirstName => serde_json::Value::from(e.c.first_name.clone()),
            SortField::LastName => serde_json::Value::from(e.c.last_name.clone()),
        }];
        if by_id {
            arr.push(serde_json::Value::from(e.c.id));
        }
        STANDARD.encode(serde_json::Value::Array(arr).to_string())
    }

    /// The number of records matching (for `count=1`).
    pub(crate) fn count_in(&self, acct: &AccountData) -> usize {
        acct.all().filter(|e| self.matches(e)).count()
    }
}
