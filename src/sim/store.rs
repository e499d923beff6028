//! Per-account state: the customers by ID, the sort indexes, and cached JSON fragments.
//!
//! Each customer's rendering (with and without Contact) is cached on first use and dropped on
//! any change, so serving a page is mostly string concatenation. All edits go through
//! [`AccountData::put`] and [`AccountData::remove`], which keep the indexes consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{self, Excluded, Unbounded};
use std::sync::OnceLock;

use super::data::{Customer, FieldDef, TypeDef};
use super::json::{self, rel};

/// A sortable field of Customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortField {
    Id,
    TimeStamp,
    FirstName,
    LastName,
}

/// A sort-key value (what a cursor carries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Int(i64),
    Str(String),
}

/// A stored customer and its cached renderings.
pub(crate) struct Entry {
    pub c: Customer,
    plain: OnceLock<String>,
    full: OnceLock<String>,
    /// The unclosed object and each relation's fragment (`,"Note":{…}`), for other relation sets.
    open: OnceLock<String>,
    fragments: [OnceLock<String>; 5],
}

impl Entry {
    /// The customer's JSON object, with its Contact when `contact`.
    pub(crate) fn json(&self, contact: bool) -> &str {
        let cell = if contact { &self.full } else { &self.plain };
        cell.get_or_init(|| json::customer(&self.c, contact))
    }

    /// The customer's JSON object with the relations `rels` (bits of [`rel`]); `types` renders
    /// `CustomerType` (it may change without the customer changing). Discount and TaxCategory are
    /// charged but not rendered (the mirror keeps them only as IDs).
    pub(crate) fn render(
        &self,
        rels: u16,
        types: &BTreeMap<u64, TypeDef>,
        defs: &[FieldDef],
    ) -> std::borrow::Cow<'_, str> {
        let rest = rels & !(rel::CONTACT | rel::DISCOUNT | rel::TAX_CATEGORY);
        if rest == 0 {
            return self.json(rels & rel::CONTACT != 0).into();
        }
        let c = &self.c;
        let frag = |i: usize, f: &dyn Fn() -> String| -> &str { self.fragments[i].get_or_init(f) };
        let mut o = String::with_capacity(2048);
        o.push_str(self.open.get_or_init(|| json::customer_open(c)));
        if rels & rel::CONTACT != 0 {
            o.push_str(frag(0, &|| json::contact_fragment(c)));
        }
        if rels & rel::CUSTOMER_TYPE != 0 {
            let t = (c.customer_type_id != 0)
                .then(|| types.get(&c.customer_type_id))
                .flatten();
            o.push_str(&json::customer_type_fragment(t));
        }
        if rels & rel::NOTE != 0 {
            o.push_str(frag(1, &|| json::note_fragment(&c.note)));
        }
        if rels & rel::CREDIT_ACCOUNT != 0 {
            o.push_str(frag(2, &|| json::credit_fragment(c.credit.as_ref(), c.id)));
        }
        if rels & rel::TAGS != 0 {
            o.push_str(frag(3, &|| json::tags_fragment(&c.tags)));
        }
        if rels & rel::CUSTOM_FIELD_VALUES != 0 {
            o.push_str(frag(4, &|| {
                json::custom_values_fragment(&c.custom_fields, defs)
            }));
        }
        o.push('}');
        o.into()
    }

    /// The value of the sort key `field`.
    pub(crate) fn key(&self, field: SortField) -> Key {
        match field {
            SortField::Id => Key::Int(self.c.id as i64),
            SortField::TimeStamp => Key::Int(self.c.time_stamp),
            SortField::FirstName => Key::Str(self.c.first_name.clone()),
            SortField::LastName => Key::Str(self.c.last_name.clone()),
        }
    }
}

/// One account: its name, customers and indexes.
pub(crate) struct AccountData {
    pub name: String,
    /// Custom field definitions (`Customer/CustomField.json`).
    pub fields: Vec<FieldDef>,
    /// Customer types (`CustomerType.json`), by ID.
    pub types: BTreeMap<u64, TypeDef>,
    pub next_id: u64,
    customers: BTreeMap<u64, Entry>,
    by_ts: BTreeSet<(i64, u64)>,
    by_first: BTreeSet<(String, u64)>,
    by_last: BTreeSet<(String, u64)>,
}

/// Where an index walk starts: strictly after `key` (and after `id` on that key, when given).
pub(crate) type Start = Option<(Key, Option<u64>)>;

impl AccountData {
    /// An account holding `customers`.
    pub(crate) fn new(name: String, customers: Vec<Customer>) -> Self {
        let mut a = AccountData {
            name,
            fields: super::data::field_defs(),
            types: super::data::type_defs()
                .into_iter()
                .map(|t| (t.id, t))
                .collect(),
            next_id: 1,
            customers: BTreeMap::new(),
            by_ts: BTreeSet::new(),
            by_first: BTreeSet::new(),
            by_last: BTreeSet::new(),
        };
        for c in customers {
            a.put(c);
        }
        a
    }

    /// Insert or replace a customer (its cached JSON is rebuilt lazily).
    pub(crate) fn put(&mut self, c: Customer) {
        self.remove(c.id);
        self.next_id = self.next_id.max(c.id + 1);
        self.by_ts.insert((c.time_stamp, c.id));
        self.by_first.insert((c.first_name.clone(), c.id));
        self.by_last.insert((c.last_name.clone(), c.id));
        let entry = Entry {
            c,
            plain: OnceLock::new(),
            full: OnceLock::new(),
            open: OnceLock::new(),
            fragments: Default::default(),
        };
        self.customers.insert(entry.c.id, entry);
    }

    /// Remove a customer; returns it if it existed.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Customer> {
        let e = self.customers.remove(&id)?;
        self.by_ts.remove(&(e.c.time_stamp, id));
        self.by_first.remove(&(e.c.first_name.clone(), id));
        self.by_last.remove(&(e.c.last_name.clone(), id));
        Some(e.c)
    }

    /// The customer `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&Entry> {
        self.customers.get(&id)
    }

    /// A clone of customer `id`, for editing and `put` back.
    pub(crate) fn cloned(&self, id: u64) -> Option<Customer> {
        self.customers.get(&id).map(|e| e.c.clone())
    }

    /// All customers in ID order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Entry> {
        self.customers.values()
    }

    /// The largest `timeStamp` stored (0 when empty).
    pub(crate) fn max_time_stamp(&self) -> i64 {
        self.by_ts.last().map_or(0, |(t, _)| *t)
    }

    /// Customer entries in index order of `field`, strictly after `from`; `up` walks ascending.
    pub(crate) fn walk(
        &self,
        field: SortField,
        up: bool,
        from: Start,
    ) -> Box<dyn Iterator<Item = &Entry> + '_> {
        let ids: Box<dyn Iterator<Item = u64> + '_> = match field {
            SortField::Id => {
                let k = from.map(|(k, _)| int(&k) as u64);
                match (up, k) {
                    (true, None) => Box::new(self.customers.keys().copied()),
                    (true, Some(k)) => Box::new(
                        self.customers
                            .range((Excluded(k), Unbounded))
                            .map(|(id, _)| *id),
                    ),
                    (false, None) => Box::new(self.customers.keys().rev().copied()),
                    (false, Some(k)) => {
                        Box::new(self.customers.range(..k).rev().map(|(id, _)| *id))
                    }
                }
            }
            SortField::TimeStamp => {
                let from = from.map(|(k, id)| (int(&k), id));
                walk_set(&self.by_ts, up, from)
            }
            SortField::FirstName => {
                walk_set(&self.by_first, up, from.map(|(k, id)| (string(k), id)))
            }
            SortField::LastName => walk_set(&self.by_last, up, from.map(|(k, id)| (string(k), id))),
        };
        Box::new(ids.filter_map(|id| self.customers.get(&id)))
    }
}

/// Walk a `(key, id)` index strictly past `from`: past every entry with that key when `id` is
/// `None` (the skip-ties cursor), past exactly `(key, id)` otherwise.
fn walk_set<K: Ord + Clone>(
    set: &BTreeSet<(K, u64)>,
    up: bool,
    from: Option<(K, Option<u64>)>,
) -> Box<dyn Iterator<Item = u64> + '_> {
    match (up, from) {
        (true, None) => Box::new(set.iter().map(|(_, id)| *id)),
        (false, None) => Box::new(set.iter().rev().map(|(_, id)| *id)),
        (true, Some((k, id))) => {
            let lo: Bound<(K, u64)> = Excluded((k, id.unwrap_or(u64::MAX)));
            Box::new(set.range((lo, Unbounded)).map(|(_, id)| *id))
        }
        (false, Some((k, id))) => {
            let hi: Bound<(K, u64)> = Excluded((k, id.unwrap_or(0)));
            Box::new(set.range((Unbounded, hi)).rev().map(|(_, id)| *id))
        }
    }
}

fn int(k: &Key) -> i64 {
    match k {
        Key::Int(i) => *i,
        Key::Str(s) => s.parse().unwrap_or(0),
    }
}

fn string(k: Key) -> String {
    match k {
        Key::Int(i) => i.to_string(),
        Key::Str(s) => s,
    }
}
