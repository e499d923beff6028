//! Changes to customers while the daemon syncs: single deterministic ones (test hooks) and a
//! background stream at `mutations_per_sec`. Each follows the fact sheet: archiving and
//! anonymizing bump `timeStamp` (§9); a Contact edit always moves `Contact.timeStamp` but may
//! leave `Customer.timeStamp` alone (§6.1); an edit of another relation (a custom field value, the
//! note, the credit balance, the tags) moves that relation's own `timeStamp` and moves
//! `Customer.timeStamp` only when the simulator is told so (unverified upstream, §14); hard deletes
//! (customers, customer types) just vanish.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use super::Shared;
use super::data::{self, Customer, Dob, FieldVal, FieldValue};
use super::store::AccountData;

/// One change to an account's customers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Rename the customer (first and/or last name); bumps `timeStamp`.
    Update(u64),
    /// A new customer with the next ID.
    Create,
    /// Archive (what the API's DELETE does); bumps `timeStamp`.
    Archive(u64),
    /// Un-archive (a PUT with `archived=false`); bumps `timeStamp`.
    Unarchive(u64),
    /// Archive and scrub: firstName `Customer`, lastName `[id]`, contact emptied.
    Anonymize(u64),
    /// Change emails/phones/addresses; `Contact.timeStamp` always moves, `timeStamp` only if asked.
    ContactEdit {
        /// The customer.
        id: u64,
        /// Whether `Customer.timeStamp` moves too.
        bump_timestamp: bool,
    },
    /// Remove the customer entirely (undocumented upstream, but possible).
    HardDelete(u64),
    /// `count` random customers get one identical new `timeStamp` (a mass edit).
    TouchMany { count: usize },
    /// Edit one relation of the customer; `Customer.timeStamp` moves only when the simulator's
    /// `relation_edits_bump_timestamp` knob says so.
    RelationEdit {
        /// The customer.
        id: u64,
        /// What changes.
        relation: Relation,
    },
    /// Move the customer to another customer type (a Customer field: bumps `timeStamp`).
    SetCustomerType {
        /// The customer.
        id: u64,
        /// The new `customerTypeID` (0: none).
        type_id: u64,
    },
    /// Delete a customer type for good (customers keep its ID, as the API would not say).
    DeleteCustomerType(u64),
}

/// A relation edited by [`Mutation::RelationEdit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// Set, change or delete (`deleted` true) one custom field value.
    CustomField,
    /// Rewrite the note.
    Note,
    /// Change the credit balance (opening a credit account if there is none).
    CreditBalance,
    /// Add or remove a tag.
    Tags,
}

/// What a mutation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// The customers touched (created, edited or deleted).
    pub ids: Vec<u64>,
    /// The new `timeStamp` they carry (Unix seconds; unchanged ones keep theirs).
    pub time_stamp: i64,
}

/// Apply `m` to `acct` at wall time `now`; `None` when the customer does not exist.
pub(crate) fn apply(
    acct: &mut AccountData,
    m: Mutation,
    rng: &mut SmallRng,
    now: i64,
    relation_bump: bool,
) -> Option<Changed> {
    // Never move time backwards relative to what is stored (generated data ends at GEN_NOW).
    let now = now.max(acct.max_time_stamp());
    let edit =
        |acct: &mut AccountData, id: u64, f: &mut dyn FnMut(&mut Customer)| -> Option<Changed> {
            let mut c = acct.cloned(id)?;
            f(&mut c);
            acct.put(c);
            Some(Changed {
                ids: vec![id],
                time_stamp: now,
            })
        };
    match m {
        Mutation::Update(id) => edit(acct, id, &mut |c| {
            if rng.random_bool(0.5) {
                c.first_name = data::random_name(rng, true);
            }
            c.last_name = format!(
                "{}{}",
                data::random_name(rng, false),
                if rng.random_bool(0.3) { "-Smith" } else { "" }
            );
            c.time_stamp = now;
        }),
        Mutation::Create => {
            let id = acct.next_id;
            acct.put(data::new_customer(rng, id, now));
            Some(Changed {
                ids: vec![id],
                time_stamp: now,
            })
        }
        Mutation::Archive(id) => edit(acct, id, &mut |c| {
            c.archived = true;
            c.time_stamp = now;
        }),
        Mutation::Unarchive(id) => edit(acct, id, &mut |c| {
            c.archived = false;
            c.time_stamp = now;
        }),
        Mutation::Anonymize(id) => edit(acct, id, &mut |c| anonymize(c, now)),
        Mutation::ContactEdit { id, bump_timestamp } => edit(acct, id, &mut |c| {
            contact_edit(c, rng);
            c.contact.time_stamp = now;
            if bump_timestamp {
                c.time_stamp = now;
            }
        }),
        Mutation::RelationEdit { id, relation } => {
            let defs = acct.fields.clone();
            edit(acct, id, &mut |c| {
                relation_edit(c, relation, &defs, rng, now);
                if relation_bump {
                    c.time_stamp = now;
                }
            })
        }
        Mutation::SetCustomerType { id, type_id } => edit(acct, id, &mut |c| {
            c.customer_type_id = type_id;
            c.time_stamp = now;
        }),
        Mutation::DeleteCustomerType(type_id) => acct.types.remove(&type_id).map(|_| Changed {
            ids: vec![],
            time_stamp: now,
        }),
        Mutation::HardDelete(id) => acct.remove(id).map(|_| Changed {
            ids: vec![id],
            time_stamp: now,
        }),
        Mutation::TouchMany { count } => {
            let ids: Vec<u64> = acct.all().map(|e| e.c.id).collect();
            let picked: Vec<u64> = rand::seq::index::sample(rng, ids.len(), count.min(ids.len()))
                .into_iter()
                .map(|i| ids[i])
                .collect();
            for id in &picked {
                let mut c = acct.cloned(*id)?;
                c.time_stamp = now;
                acct.put(c);
            }
            Some(Changed {
                ids: picked,
                time_stamp: now,
            })
        }
    }
}

fn anonymize(c: &mut Customer, now: i64) {
    c.archived = true;
    c.first_name = "Customer".into();
    c.last_name = format!("[{}]", c.id);
    c.title.clear();
    c.company.clear();
    c.vat.clear();
    c.company_reg.clear();
    c.dob = Dob::Absent;
    let ts = c.contact.time_stamp;
    c.contact = data::Contact {
        time_stamp: ts.max(now),
        no_email: true,
        no_phone: true,
        no_mail: true,
        ..Default::default()
    };
    c.time_stamp = now;
}

/// Add, change or remove one email, phone or address.
fn contact_edit(c: &mut Customer, rng: &mut SmallRng) {
    let k = &mut c.contact;
    match rng.random_range(0..3) {
        0 => match k.emails.len() {
            0 => k
                .emails
                .push((data::email(&c.first_name, c.id, 0), "Primary")),
            1 => k
                .emails
                .push((data::email(&c.first_name, c.id, 1), "Secondary")),
            _ => {
                k.emails.pop();
            }
        },
        1 => {
            let before = k.phones.clone();
            while k.phones == before {
                data::set_random_phones(rng, k);
            }
        }
        _ => match k.addresses.len() {
            0 => k.addresses.push(data::address(rng)),
            _ => k.addresses[0].address1 = format!("{} Changed Ave", rng.random_range(1..999)),
        },
    }
}

/// Change one relation of `c`; its own `timeStamp` moves to `now`.
fn relation_edit(
    c: &mut Customer,
    relation: Relation,
    defs: &[data::FieldDef],
    rng: &mut SmallRng,
    now: i64,
) {
    match relation {
        Relation::Note => {
            let before = c.note.text.clone();
            while c.note.text == before {
                c.note.text = format!(
                    "Called on {}: {}",
                    super::json::ts(now),
                    rng.random_range(1..1000)
                );
            }
            c.note.is_public = rng.random_bool(0.5);
            c.note.time_stamp = now;
        }
        Relation::CreditBalance => {
            let credit = c.credit.get_or_insert(data::Credit {
                id: c.id,
                balance_cents: 0,
                limit_cents: 0,
                time_stamp: now,
            });
            credit.balance_cents +=
                rng.random_range(1..20_000) * if rng.random_bool(0.5) { 1 } else { -1 };
            credit.time_stamp = now;
            c.credit_account_id = credit.id;
        }
        Relation::Tags => {
            const MORE: &[&str] = &[
                "vip",
                "newsletter",
                "wholesale",
                "staff",
                "webstore",
                "local",
                "events",
            ];
            match MORE.iter().find(|t| !c.tags.iter().any(|x| x == *t)) {
                Some(t) if c.tags.len() < 3 || rng.random_bool(0.5) => c.tags.push(t.to_string()),
                _ => {
                    c.tags.remove(0);
                }
            }
        }
        Relation::CustomField => {
            let live: Vec<usize> = (0..c.custom_fields.len())
                .filter(|i| !c.custom_fields[*i].deleted)
                .collect();
            let choice = rng.random_range(0..3);
            if choice == 0 && !live.is_empty() {
                // Delete one: the API keeps it with `deleted` true.
                let i = live[rng.random_range(0..live.len())];
                c.custom_fields[i].deleted = true;
                c.custom_fields[i].time_stamp = now;
            } else if choice == 1 && !live.is_empty() {
                let i = live[rng.random_range(0..live.len())];
                let def = defs
                    .iter()
                    .find(|d| d.id == c.custom_fields[i].field_id)
                    .cloned();
                if let Some(def) = def {
                    let before = c.custom_fields[i].val.clone();
                    let mut val = before.clone();
                    for _ in 0..20 {
                        val = data::field_value(rng, &def, c.id, now);
                        if val != before {
                            break;
                        }
                    }
                    if val == before {
                        val = FieldVal::Text(format!("changed {now}"));
                    }
                    c.custom_fields[i].val = val;
                    c.custom_fields[i].time_stamp = now;
                }
            } else {
                // Set a field the customer has no live value for (reviving a deleted one).
                let free: Vec<&data::FieldDef> = defs
                    .iter()
                    .filter(|d| !d.archived)
                    .filter(|d| {
                        !c.custom_fields
                            .iter()
                            .any(|v| v.field_id == d.id && !v.deleted)
                    })
                    .collect();
                if let Some(def) = free.get(rng.random_range(0..free.len().max(1))).copied() {
                    let val = data::field_value(rng, def, c.id, now);
                    let next_id = c
                        .custom_fields
                        .iter()
                        .map(|v| v.value_id)
                        .max()
                        .unwrap_or(c.id * 100)
                        + 1;
                    c.custom_fields.retain(|v| v.field_id != def.id);
                    c.custom_fields.push(FieldValue {
                        field_id: def.id,
                        value_id: next_id,
                        val,
                        time_stamp: now,
                        deleted: false,
                    });
                } else if let Some(v) = c.custom_fields.first_mut() {
                    v.deleted = !v.deleted;
                    v.time_stamp = now;
                }
            }
        }
    }
}

/// Pick a random mutation for `acct` (the background mix).
fn random_mutation(acct: &AccountData, rng: &mut SmallRng) -> Mutation {
    let n = acct.next_id.max(2);
    let id = rng.random_range(1..n);
    match rng.random_range(0..100) {
        0..40 => Mutation::Update(id),
        40..55 => Mutation::Create,
        55..63 => Mutation::Archive(id),
        63..66 => Mutation::Unarchive(id),
        66..69 => Mutation::Anonymize(id),
        69..81 => Mutation::ContactEdit {
            id,
            bump_timestamp: true,
        },
        81..93 => Mutation::ContactEdit {
            id,
            bump_timestamp: false,
        },
        93..95 => Mutation::TouchMany {
            count: rng.random_range(2..60),
        },
        95..97 => Mutation::RelationEdit {
            id,
            relation: [
                Relation::CustomField,
                Relation::Note,
                Relation::CreditBalance,
                Relation::Tags,
            ][rng.random_range(0..4)],
        },
        _ => Mutation::HardDelete(id),
    }
}

/// The background mutation loop: `per_sec` random mutations per second over all accounts.
pub(crate) async fn run(shared: Arc<Shared>, per_sec: f64) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if shared.paused.load(Ordering::Relaxed) {
            continue;
        }
        let now = shared.clock.wall();
        let mut rng = shared.rng.lock().expect("rng lock");
        let account = shared.account_ids[rng.random_range(0..shared.account_ids.len())];
        let mut acct = shared.data[&account].write().expect("account lock");
        let m = random_mutation(&acct, &mut rng);
        let bump = shared.relation_bump.load(Ordering::Relaxed);
        apply(&mut acct, m, &mut rng, now, bump);
    }
}
