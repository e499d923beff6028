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
    pub records: Vec<std::borrow::Cow<'a, str>>,
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
                op.test(v)
            })
            && self
                .contact_filters
                .iter()
                .all(|op| op.test(e.c.contact.time_stamp))
    }

    /// The drip cost of this request on a list endpoint (`list`) or a single record.
    pub(crate) fn cost(&self, list: bool) -> f64 {
        if self.count {
            return 10.0;
        }
        // Fact sheet §7.1/§14: +0.1 per one-to-one and +0.2 per one-to-many relation on a single
        // record, doubled on lists.
        use super::json::rel;
        let factor = if list { 2.0 } else { 1.0 };
        let mut surcharge = 0.0;
        for bit in [
            rel::CONTACT,
            rel::CUSTOMER_TYPE,
            rel::NOTE,
            rel::CREDIT_ACCOUNT,
            rel::DISCOUNT,
            rel::TAX_CATEGORY,
        ] {
            if self.rels & bit != 0 {
                surcharge += 0.1 * factor;
            }
        }
        for bit in [rel::TAGS, rel::CUSTOM_FIELD_VALUES] {
            if self.rels & bit != 0 {
                surcharge += 0.2 * factor;
            }
        }
        1.0 + surcharge
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
        let mut page: Vec<&Entry> = self.scan(acct, up, from).take(self.limit).collect();
        if !forward {
            page.reverse();
        }
        let cursor_of = |e: &Entry| (e.key(self.sort), by_id.then_some(e.c.id));
        let exists_past =
            |e: &Entry, up: bool| self.scan(acct, up, Some(cursor_of(e))).next().is_some();
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
            records: page
                .iter()
                .map(|e| e.render(self.rels, &acct.types, &acct.fields))
                .collect(),
            next,
            previous,
        }
    }

    /// The matching entries in index order strictly past `from`. When the sort field is also
    /// filtered, the walk seeks to the filter's bound and stops past the other one, so a filtered
    /// page costs its own size rather than a scan of the whole account.
    fn scan<'s, 'a: 's>(
        &'s self,
        acct: &'a AccountData,
        up: bool,
        from: Option<(Key, Option<u64>)>,
    ) -> impl Iterator<Item = &'a Entry> + 's {
        let (lo, hi) = self.bounds();
        let (start, end) = if up { (lo, hi) } else { (hi, lo) };
        // Seek: begin just before the first value the filter admits, unless the cursor is further.
        let from = match (start, from) {
            (Some(b), f) => {
                let seek = if up { b - 1 } else { b + 1 };
                let cursor_behind = f.as_ref().is_none_or(|(k, _)| {
                    let k = key_int(k);
                    if up { k < seek } else { k > seek }
                });
                if cursor_behind {
                    Some((Key::Int(seek), None))
                } else {
                    f
                }
            }
            (None, f) => f,
        };
        let sort = self.sort;
        acct.walk(sort, up, from)
            .take_while(move |e| match end {
                Some(b) => {
                    let k = key_int(&e.key(sort));
                    if up { k <= b } else { k >= b }
                }
                None => true,
            })
            .filter(move |e| self.matches(e))
    }

    /// Inclusive bounds that the filters put on the sort field, when it is an integer field.
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        if !matches!(self.sort, SortField::Id | SortField::TimeStamp) {
            return (None, None);
        }
        let (mut lo, mut hi) = (None::<i64>, None::<i64>);
        let mut raise = |v: i64| lo = Some(lo.map_or(v, |l| l.max(v)));
        for (field, op) in &self.filters {
            if *field != self.sort {
                continue;
            }
            match op {
                Op::Eq(x) | Op::Ge(x) => raise(*x),
                Op::Gt(x) => raise(x.saturating_add(1)),
                Op::Between(a, _) => raise(*a),
                _ => {}
            }
        }
        let mut lower = |v: i64| hi = Some(hi.map_or(v, |h| h.min(v)));
        for (field, op) in &self.filters {
            if *field != self.sort {
                continue;
            }
            match op {
                Op::Eq(x) | Op::Le(x) => lower(*x),
                Op::Lt(x) => lower(x.saturating_sub(1)),
                Op::Between(_, b) => lower(*b),
                _ => {}
            }
        }
        (lo, hi)
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

fn key_int(k: &Key) -> i64 {
    match k {
        Key::Int(i) => *i,
        Key::Str(s) => s.parse().unwrap_or(0),
    }
}
