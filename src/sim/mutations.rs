//! Changes to customers while the daemon syncs: single deterministic ones (test hooks) and a
//! background stream at `mutations_per_sec`. Each follows the fact sheet: archiving and
//! anonymizing bump `timeStamp` (§9); a Contact edit always moves `Contact.timeStamp` but may
//! leave `Customer.timeStamp` alone (§6.1); hard deletes just vanish.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;

use super::Shared;
use super::data::{self, Customer, Dob};
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
        93..97 => Mutation::TouchMany {
            count: rng.random_range(2..60),
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
        apply(&mut acct, m, &mut rng, now);
    }
}
