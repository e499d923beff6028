//! The simulator's own customer model and its deterministic generation from a seed.
//!
//! Nothing here knows about HTTP or JSON; `json.rs` renders these structs. Times are whole
//! Unix seconds (the API has second precision). Generation never reads the wall clock, so a
//! seed always yields the same data.

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::names::{CITIES, COMPANIES, FIRST, LAST, PHONE_TYPES, STREETS, TITLES};

/// The reference "now" of generated data: 2026-01-01T00:00:00Z. Generated times lie before it.
pub(crate) const GEN_NOW: i64 = 1_767_225_600;
const SIX_YEARS: i64 = 6 * 365 * 86_400;

/// Date of birth: present, absent from the wire, or the empty string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dob {
    Absent,
    Empty,
    At(i64),
}

/// One customer as the simulator stores it.
#[derive(Clone, Debug)]
pub(crate) struct Customer {
    pub id: u64,
    pub first_name: String,
    pub last_name: String,
    pub title: String,
    pub company: String,
    pub company_reg: String,
    pub vat: String,
    pub dob: Dob,
    pub archived: bool,
    pub create_time: i64,
    pub time_stamp: i64,
    pub credit_account_id: u64,
    pub customer_type_id: u64,
    pub discount_id: u64,
    pub tax_category_id: u64,
    pub contact: Contact,
    pub note: Note,
    pub credit: Option<Credit>,
    pub tags: Vec<String>,
    pub custom_fields: Vec<FieldValue>,
}

/// The `Note` relation (the 2019 recording: present, `note` `""`, even when nothing was written).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Note {
    pub text: String,
    pub is_public: bool,
    pub time_stamp: i64,
}

/// A customer's credit account; money in cents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credit {
    pub id: u64,
    pub balance_cents: i64,
    pub limit_cents: i64,
    pub time_stamp: i64,
}

/// A custom field value: text for the scalar types, choice IDs for the choice types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldVal {
    Text(String),
    Choices(Vec<u64>),
}

/// One `CustomFieldValue` of a customer; `deleted` ones are still served (with `deleted` true).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldValue {
    pub field_id: u64,
    pub value_id: u64,
    pub val: FieldVal,
    pub time_stamp: i64,
    pub deleted: bool,
}

/// A custom field definition (`Customer/CustomField.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldDef {
    pub id: u64,
    pub name: String,
    pub kind: &'static str,
    pub uom: &'static str,
    pub archived: bool,
    pub choices: Vec<(u64, String)>,
}

/// A customer type (`CustomerType.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TypeDef {
    pub id: u64,
    pub name: String,
    pub tax_category_id: u64,
    pub discount_id: u64,
}

/// The custom fields every simulated account defines: one of each of the 11 types
/// (customer-customfield.md), choices numbered across fields.
pub(crate) fn field_defs() -> Vec<FieldDef> {
    let choices = |first: u64, names: &[&str]| -> Vec<(u64, String)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (first + i as u64, n.to_string()))
            .collect()
    };
    let def = |id: u64, name: &str, kind: &'static str, uom: &'static str| FieldDef {
        id,
        name: name.into(),
        kind,
        uom,
        archived: false,
        choices: Vec::new(),
    };
    vec![
        FieldDef {
            choices: choices(1, &["Bronze", "Silver", "Gold"]),
            ..def(1, "Loyalty tier", "single_choice", "")
        },
        FieldDef {
            choices: choices(4, &["Running", "Cycling", "Swimming", "Yoga"]),
            ..def(2, "Interests", "multi_choice", "")
        },
        def(3, "Store of origin", "string", ""),
        def(4, "Staff notes", "text", ""),
        def(5, "Homepage", "url", ""),
        def(6, "Billing email", "email", ""),
        def(7, "Last fitting", "datetime", ""),
        def(8, "Birthday", "date", ""),
        def(9, "Newsletter opt-in", "boolean", ""),
        def(10, "Visits", "integer", ""),
        def(11, "Shoe size", "float", "EU"),
        FieldDef {
            archived: true,
            ..def(12, "Old fax opt-in", "boolean", "")
        },
    ]
}

/// The customer types every simulated account defines (customertype.md's sample names among them).
pub(crate) fn type_defs() -> Vec<TypeDef> {
    [
        (1, "Retail", 0, 0),
        (2, "Wholesale", 1, 3),
        (3, "Staff", 0, 1),
        (4, "VIP", 0, 2),
        (5, "Loyalty", 0, 1),
    ]
    .into_iter()
    .map(|(id, name, tax, discount)| TypeDef {
        id,
        name: name.into(),
        tax_category_id: tax,
        discount_id: discount,
    })
    .collect()
}

const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "wholesale",
    "staff",
    "webstore",
    "local",
];
const STORES: &[&str] = &["Downtown", "Harbour", "Airport", "Online"];

/// A random value for field `def` of customer `id`.
pub(crate) fn field_value(rng: &mut SmallRng, def: &FieldDef, id: u64, now: i64) -> FieldVal {
    let text = match def.kind {
        "single_choice" => {
            return FieldVal::Choices(vec![def.choices[rng.random_range(0..def.choices.len())].0]);
        }
        "multi_choice" => {
            let n = rng.random_range(1..=def.choices.len().min(3));
            let mut picked: Vec<u64> = rand::seq::index::sample(rng, def.choices.len(), n)
                .into_iter()
                .map(|i| def.choices[i].0)
                .collect();
            picked.sort_unstable();
            return FieldVal::Choices(picked);
        }
        "string" => pick(rng, STORES).to_string(),
        "text" => format!(
            "Prefers {} fittings; call before delivery.",
            pick(rng, TITLES)
        ),
        "url" => format!("https://example.com/people/{id}"),
        "email" => format!("billing.{id}@example.com"),
        "datetime" => super::json::ts(now - rng.random_range(0..SIX_YEARS)),
        "date" => {
            let t = GEN_NOW - rng.random_range(18 * 365..80 * 365) * 86_400;
            super::json::ts(t)[..10].to_string()
        }
        "boolean" => if rng.random_bool(0.5) {
            "true"
        } else {
            "false"
        }
        .to_string(),
        "integer" => rng.random_range(0..200).to_string(),
        _ => format!(
            "{}.{}",
            rng.random_range(35..48),
            [0, 5][rng.random_range(0..2)]
        ),
    };
    FieldVal::Text(text)
}

/// The relations beyond Contact, drawn after everything else so older fields keep their values.
fn relations(rng: &mut SmallRng, c: &mut Customer) {
    let notes = [
        "Prefers email over phone.",
        "Allergic to latex gloves.",
        "Pays by invoice, net 30.",
        "Ask about the loyalty card.",
    ];
    c.note = Note {
        text: if rng.random_bool(0.25) {
            notes[rng.random_range(0..notes.len())].to_string()
        } else {
            String::new()
        },
        is_public: rng.random_bool(0.3),
        time_stamp: rng.random_range(c.create_time..=c.time_stamp),
    };
    if c.credit_account_id != 0 {
        // One credit account per customer: its ID is the customer's (unique in the account).
        c.credit_account_id = c.id;
        c.credit = Some(Credit {
            id: c.id,
            balance_cents: rng.random_range(-20_000..50_000),
            limit_cents: [0, 50_000, 100_000][rng.random_range(0..3)],
            time_stamp: rng.random_range(c.create_time..=c.time_stamp),
        });
    }
    let n_tags = [0, 0, 0, 1, 1, 2, 3][rng.random_range(0..7)];
    c.tags = rand::seq::index::sample(rng, TAGS.len(), n_tags)
        .into_iter()
        .map(|i| TAGS[i].to_string())
        .collect();
    let mut value_id = c.id * 100;
    for def in field_defs() {
        if def.archived || !rng.random_bool(0.3) {
            continue;
        }
        value_id += 1;
        let val = field_value(rng, &def, c.id, c.time_stamp);
        c.custom_fields.push(FieldValue {
            field_id: def.id,
            value_id,
            val,
            time_stamp: rng.random_range(c.create_time..=c.time_stamp),
            deleted: rng.random_bool(0.05),
        });
    }
}

/// A customer's Contact relation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Contact {
    pub custom: String,
    pub no_email: bool,
    pub no_phone: bool,
    pub no_mail: bool,
    pub time_stamp: i64,
    pub emails: Vec<(String, &'static str)>,
    pub phones: Vec<(String, &'static str)>,
    pub addresses: Vec<Address>,
    pub websites: Vec<String>,
}

/// One `ContactAddress`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Address {
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub state: String,
    pub state_code: String,
    pub zip: String,
    pub country: String,
    pub country_code: String,
}

/// A fresh RNG for `account_index` under `seed` (independent streams per account).
pub(crate) fn account_rng(seed: u64, account_index: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ (account_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Deterministic account IDs for a seed: distinct, six digits.
pub(crate) fn account_ids(seed: u64, n: usize) -> Vec<u64> {
    let base = 100_000 + (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) % 700_000;
    (0..n as u64).map(|i| base + i * 1_009).collect()
}

/// Generate `n` customers with IDs 1..=n; `shared` of them share exactly one `timeStamp`.
pub(crate) fn generate(rng: &mut SmallRng, n: usize, shared: usize) -> Vec<Customer> {
    // A few bulk imports: clusters of customers sharing one timeStamp, some bigger than a page.
    let imports: Vec<i64> = (0..3)
        .map(|_| GEN_NOW - rng.random_range(86_400..SIX_YEARS / 2))
        .collect();
    let mut out: Vec<Customer> = (1..=n as u64)
        .map(|id| {
            let created = GEN_NOW - SIX_YEARS
                + (id as i64 * SIX_YEARS / (n as i64 + 1))
                + rng.random_range(0..3_600);
            let mut c = customer(rng, id, created, &imports);
            relations(rng, &mut c);
            c
        })
        .collect();
    if shared > 0 && !out.is_empty() {
        let t = GEN_NOW - 30 * 86_400;
        for idx in rand::seq::index::sample(rng, out.len(), shared.min(out.len())) {
            let c = &mut out[idx];
            c.time_stamp = t;
            c.create_time = c.create_time.min(t);
            c.contact.time_stamp = c.contact.time_stamp.min(t);
            c.note.time_stamp = c.note.time_stamp.min(t);
            if let Some(k) = c.credit.as_mut() {
                k.time_stamp = k.time_stamp.min(t);
            }
            for v in &mut c.custom_fields {
                v.time_stamp = v.time_stamp.min(t);
            }
        }
    }
    out
}

fn customer(rng: &mut SmallRng, id: u64, created: i64, imports: &[i64]) -> Customer {
    let created = created.min(GEN_NOW - 1);
    let time_stamp = match rng.random_range(0..100) {
        0..30 => created,
        30..40 => imports
            .iter()
            .copied()
            .find(|t| *t >= created)
            .unwrap_or(created),
        _ => rng.random_range(created..GEN_NOW),
    };
    let first_name = pick(rng, FIRST).to_string();
    let last_name = pick(rng, LAST).to_string();
    let contact = contact(rng, id, &first_name, created, time_stamp);
    Customer {
        id,
        first_name,
        last_name,
        title: if rng.random_bool(0.7) {
            String::new()
        } else {
            pick(rng, TITLES).into()
        },
        company: if rng.random_bool(0.6) {
            String::new()
        } else {
            pick(rng, COMPANIES).into()
        },
        company_reg: if rng.random_bool(0.9) {
            String::new()
        } else {
            format!("{}", rng.random_range(10_000_000..99_999_999u64))
        },
        vat: if rng.random_bool(0.9) {
            String::new()
        } else {
            format!("BE0{}", rng.random_range(100_000_000..999_999_999u64))
        },
        dob: match rng.random_range(0..100) {
            0..45 => Dob::Absent,
            45..60 => Dob::Empty,
            _ => Dob::At(
                rng.random_range(-1_500_000_000..1_100_000_000i64) / 86_400 * 86_400 + 4 * 3600,
            ),
        },
        archived: rng.random_bool(0.08),
        create_time: created,
        time_stamp,
        credit_account_id: if rng.random_bool(0.1) {
            rng.random_range(1..500)
        } else {
            0
        },
        customer_type_id: if rng.random_bool(0.2) {
            rng.random_range(1..4)
        } else {
            0
        },
        discount_id: if rng.random_bool(0.1) {
            rng.random_range(1..6)
        } else {
            0
        },
        tax_category_id: if rng.random_bool(0.05) {
            rng.random_range(1..3)
        } else {
            0
        },
        contact,
        note: Note::default(),
        credit: None,
        tags: Vec::new(),
        custom_fields: Vec::new(),
    }
}

fn contact(rng: &mut SmallRng, id: u64, first: &str, created: i64, time_stamp: i64) -> Contact {
    let mut c = Contact {
        no_email: rng.random_bool(0.3),
        no_phone: rng.random_bool(0.3),
        no_mail: rng.random_bool(0.5),
        time_stamp: rng.random_range(created..=time_stamp),
        ..Contact::default()
    };
    let n_emails = [0, 1, 1, 2][rng.random_range(0..4)];
    for (i, use_type) in ["Primary", "Secondary"]
        .into_iter()
        .take(n_emails)
        .enumerate()
    {
        c.emails.push((email(first, id, i), use_type));
    }
    set_random_phones(rng, &mut c);
    let n_addr = [0, 0, 0, 1, 1, 1, 1, 1, 1, 2][rng.random_range(0..10)];
    c.addresses = (0..n_addr).map(|_| address(rng)).collect();
    if rng.random_bool(0.1) {
        c.websites.push(format!("https://example.com/c/{id}"));
    }
    if rng.random_bool(0.05) {
        c.custom = "VIP".into();
    }
    c
}

/// Replace the phones with 0–3 random ones, at most one per `useType`.
pub(crate) fn set_random_phones(rng: &mut SmallRng, c: &mut Contact) {
    let n = rng.random_range(0..=3usize);
    c.phones = rand::seq::index::sample(rng, PHONE_TYPES.len(), n)
        .into_iter()
        .map(|i| (phone(rng), PHONE_TYPES[i]))
        .collect();
}

/// An email address derived from a name (ASCII local part) and the customer ID.
pub(crate) fn email(first: &str, id: u64, n: usize) -> String {
    let local: String = first
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let local = if local.is_empty() {
        "customer".into()
    } else {
        local
    };
    format!(
        "{local}.{id}{}@example.com",
        if n == 0 {
            String::new()
        } else {
            format!("+{n}")
        }
    )
}

/// A phone number in one of several real-world formats.
pub(crate) fn phone(rng: &mut SmallRng) -> String {
    let n = rng.random_range(1_000..9_999);
    match rng.random_range(0..3) {
        0 => format!("+1 (514) 555-{n}"),
        1 => format!("555-{n}"),
        _ => format!("+32 9 {n} 12 34"),
    }
}

/// A random address.
pub(crate) fn address(rng: &mut SmallRng) -> Address {
    let (city, state, state_code, country, country_code) = *CITIES.choose(rng).expect("non-empty");
    Address {
        address1: format!("{} {}", rng.random_range(1..9_999), pick(rng, STREETS)),
        address2: if rng.random_bool(0.2) {
            format!("Apt {}", rng.random_range(1..40))
        } else {
            String::new()
        },
        city: city.into(),
        state: state.into(),
        state_code: state_code.into(),
        zip: if country_code.is_empty() {
            String::new()
        } else {
            format!("{}", rng.random_range(10_000..99_999))
        },
        country: country.into(),
        country_code: country_code.into(),
    }
}

/// A random first or last name (for mutations).
pub(crate) fn random_name(rng: &mut SmallRng, first: bool) -> String {
    pick(rng, if first { FIRST } else { LAST }).to_string()
}

/// A brand-new customer created at `now`.
pub(crate) fn new_customer(rng: &mut SmallRng, id: u64, now: i64) -> Customer {
    let mut c = customer(rng, id, now, &[]);
    relations(rng, &mut c);
    c.archived = false;
    c.create_time = now;
    c.time_stamp = now;
    c.contact.time_stamp = now;
    c
}

fn pick(rng: &mut SmallRng, list: &'static [&'static str]) -> &'static str {
    list.choose(rng).expect("non-empty list")
}
