//! Test hooks on [`Simulator`]: issue and spoil tokens, mutate data, inject faults, read
//! counters, bucket levels and the ground truth, all without HTTP.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::data::{Dob, FieldVal};
use super::{Fault, Mutation, Simulator, TokenPair, mutations};

/// Counters since start (a snapshot).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Requests to `/API/...`.
    pub api_requests: u64,
    /// Every response (API and OAuth) by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// 429s from the leaky bucket.
    pub throttled_bucket: u64,
    /// 429s from the burst limiter.
    pub throttled_burst: u64,
    /// Calls to `/auth/oauth/token`, whatever the outcome.
    pub token_requests: u64,
    /// Successful code exchanges.
    pub code_exchanges: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// `invalid_grant` answers.
    pub invalid_grants: u64,
    /// `invalid_client` answers.
    pub invalid_clients: u64,
    /// API requests made with a revoked access token.
    pub revoked_token_requests: u64,
    /// API requests made with an expired access token.
    pub expired_token_requests: u64,
    /// Total drips charged to all buckets.
    pub drip_charged: f64,
    /// Faults served (injected or random).
    pub faults: u64,
}

/// A bucket as the simulator sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketState {
    /// Current level in drips.
    pub level: f64,
    /// Size in drips.
    pub size: f64,
    /// Drips leaked per second.
    pub drip_rate: f64,
}

/// One address of a [`TruthCustomer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthAddress {
    /// `address1`.
    pub address1: String,
    /// `address2`.
    pub address2: String,
    /// `city`.
    pub city: String,
    /// `state`.
    pub state: String,
    /// `stateCode`.
    pub state_code: String,
    /// `zip`.
    pub zip: String,
    /// `country`.
    pub country: String,
    /// `countryCode`.
    pub country_code: String,
}

/// A customer as the simulator holds it (the ground truth a mirror should converge to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthCustomer {
    /// `customerID`.
    pub id: u64,
    /// `firstName`.
    pub first_name: String,
    /// `lastName`.
    pub last_name: String,
    /// `title` (job title).
    pub title: String,
    /// `company`.
    pub company: String,
    /// `archived`.
    pub archived: bool,
    /// `createTime`.
    pub created: DateTime<Utc>,
    /// `timeStamp`.
    pub updated: DateTime<Utc>,
    /// `Contact.timeStamp`.
    pub contact_updated: DateTime<Utc>,
    /// `dob`, when set.
    pub dob: Option<DateTime<Utc>>,
    /// Emails as `(address, useType)`.
    pub emails: Vec<(String, String)>,
    /// Phones as `(number, useType)`.
    pub phones: Vec<(String, String)>,
    /// Addresses.
    pub addresses: Vec<TruthAddress>,
    /// `Contact.custom`.
    pub contact_custom: String,
    /// `Contact.Websites` URLs.
    pub websites: Vec<String>,
    /// `customerTypeID` (`None` for 0).
    pub customer_type_id: Option<u64>,
    /// `creditAccountID` (`None` for 0).
    pub credit_account_id: Option<u64>,
    /// `Note.note`.
    pub note: String,
    /// `Note.isPublic`.
    pub note_is_public: bool,
    /// Tag names, in order.
    pub tags: Vec<String>,
    /// The credit account, if any.
    pub credit: Option<TruthCredit>,
    /// Custom field values that are set and not deleted, by field ID.
    pub custom_fields: Vec<TruthCustomField>,
}

/// A credit account of a [`TruthCustomer`]; money in cents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthCredit {
    /// `creditAccountID`.
    pub id: u64,
    /// `balance`, in cents.
    pub balance_cents: i64,
    /// `creditLimit`, in cents.
    pub limit_cents: i64,
    /// `timeStamp`.
    pub updated: DateTime<Utc>,
}

/// A custom field value of a [`TruthCustomer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthCustomField {
    /// `customFieldID`.
    pub field_id: u64,
    /// The field's `name`.
    pub name: String,
    /// The field's `type`.
    pub kind: String,
    /// The value as text; choice types: the choices' names joined by `", "`.
    pub value: String,
    /// The chosen `customFieldChoiceID`s (choice types), in order.
    pub choice_ids: Vec<u64>,
    /// `timeStamp`.
    pub updated: DateTime<Utc>,
}

/// A custom field definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthFieldDef {
    /// `customFieldID`.
    pub id: u64,
    /// `name`.
    pub name: String,
    /// `type`.
    pub kind: String,
    /// `archived`.
    pub archived: bool,
}

/// A customer type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruthType {
    /// `customerTypeID`.
    pub id: u64,
    /// `name`.
    pub name: String,
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

impl Simulator {
    fn account(&self, id: u64) -> anyhow::Result<&std::sync::RwLock<super::store::AccountData>> {
        self.shared
            .data
            .get(&id)
            .with_context(|| format!("no simulated account {id}"))
    }

    /// A fresh token pair for `account` without the browser step. Panics on an unknown account.
    pub fn issue_tokens(&self, account: u64) -> TokenPair {
        assert!(
            self.shared.data.contains_key(&account),
            "no simulated account {account}"
        );
        let mut g = self.shared.grants.lock().expect("grants lock");
        g.start_chain(
            account,
            "employee:all".into(),
            Instant::now(),
            self.shared.clock.wall(),
        )
    }

    /// Expire every access token of `account` now.
    pub fn expire_access_tokens(&self, account: u64) {
        self.shared
            .grants
            .lock()
            .expect("grants lock")
            .expire_account_access(account, Instant::now());
    }

    /// Revoke every refresh token of `account` (its access tokens keep working until they expire).
    pub fn revoke_refresh_tokens(&self, account: u64) {
        self.shared
            .grants
            .lock()
            .expect("grants lock")
            .revoke_account_refresh(account);
    }

    /// Pause or resume the background mutations.
    pub fn set_mutations_paused(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Relaxed);
    }

    /// Apply one mutation now; errors when the account or customer does not exist.
    pub fn mutate(&self, account: u64, m: Mutation) -> anyhow::Result<mutations::Changed> {
        let now = self.shared.clock.wall();
        let mut rng = self.shared.rng.lock().expect("rng lock");
        let mut acct = self.account(account)?.write().expect("account lock");
        let bump = self.shared.relation_bump.load(Ordering::Relaxed);
        mutations::apply(&mut acct, m, &mut rng, now, bump)
            .with_context(|| format!("{m:?}: no such customer in account {account}"))
    }

    /// Whether relation edits ([`Mutation::RelationEdit`]) move `Customer.timeStamp` from now on.
    pub fn set_relation_edits_bump_timestamp(&self, bump: bool) {
        self.shared.relation_bump.store(bump, Ordering::Relaxed);
    }

    /// The custom field definitions of `account`, by ID.
    pub fn truth_custom_fields(&self, account: u64) -> Vec<TruthFieldDef> {
        let Ok(lock) = self.account(account) else {
            return Vec::new();
        };
        let acct = lock.read().expect("account lock");
        acct.fields
            .iter()
            .map(|d| TruthFieldDef {
                id: d.id,
                name: d.name.clone(),
                kind: d.kind.to_string(),
                archived: d.archived,
            })
            .collect()
    }

    /// The customer types of `account` (deleted ones absent), by ID.
    pub fn truth_customer_types(&self, account: u64) -> Vec<TruthType> {
        let Ok(lock) = self.account(account) else {
            return Vec::new();
        };
        let acct = lock.read().expect("account lock");
        acct.types
            .values()
            .map(|t| TruthType {
                id: t.id,
                name: t.name.clone(),
            })
            .collect()
    }

    /// Serve `fault` on the next API request (queued: several calls hit successive requests).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().expect("faults lock").push(fault);
    }

    /// Change the fraction of API requests that fail at random.
    pub fn set_fault_rate(&self, rate: f64) {
        self.shared.faults.lock().expect("faults lock").rate = rate;
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.lock().expect("counters lock").clone()
    }

    /// The bucket of `account` now.
    pub fn bucket(&self, account: u64) -> BucketState {
        let l = self
            .shared
            .limits
            .lock()
            .expect("limits lock")
            .levels(account, Instant::now());
        BucketState {
            level: l.level,
            size: l.size,
            drip_rate: l.drip,
        }
    }

    /// Every customer of `account` (archived included, hard-deleted ones absent), by ID.
    pub fn truth(&self, account: u64) -> Vec<TruthCustomer> {
        let Ok(lock) = self.account(account) else {
            return Vec::new();
        };
        let acct = lock.read().expect("account lock");
        acct.all().map(|e| truth_of(&e.c, &acct.fields)).collect()
    }
}

fn truth_of(c: &super::data::Customer, defs: &[super::data::FieldDef]) -> TruthCustomer {
    let k = &c.contact;
    let nonzero = |v: u64| (v != 0).then_some(v);
    TruthCustomer {
        contact_custom: k.custom.clone(),
        websites: k.websites.clone(),
        customer_type_id: nonzero(c.customer_type_id),
        credit_account_id: nonzero(c.credit_account_id),
        note: c.note.text.clone(),
        note_is_public: c.note.is_public,
        tags: c.tags.clone(),
        credit: c.credit.as_ref().map(|k| TruthCredit {
            id: k.id,
            balance_cents: k.balance_cents,
            limit_cents: k.limit_cents,
            updated: at(k.time_stamp),
        }),
        custom_fields: {
            let mut v: Vec<TruthCustomField> = c
                .custom_fields
                .iter()
                .filter(|v| !v.deleted)
                .map(|v| {
                    let def = defs.iter().find(|d| d.id == v.field_id);
                    let (value, choice_ids) = match &v.val {
                        FieldVal::Text(t) => (t.clone(), vec![]),
                        FieldVal::Choices(ids) => {
                            let names: Vec<String> = ids
                                .iter()
                                .map(|id| {
                                    def.and_then(|d| d.choices.iter().find(|(c, _)| c == id))
                                        .map_or(String::new(), |(_, n)| n.clone())
                                })
                                .collect();
                            (names.join(", "), ids.clone())
                        }
                    };
                    TruthCustomField {
                        field_id: v.field_id,
                        name: def.map_or(String::new(), |d| d.name.clone()),
                        kind: def.map_or("string".into(), |d| d.kind.to_string()),
                        value,
                        choice_ids,
                        updated: at(v.time_stamp),
                    }
                })
                .collect();
            v.sort_by_key(|f| f.field_id);
            v
        },
        id: c.id,
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        title: c.title.clone(),
        company: c.company.clone(),
        archived: c.archived,
        created: at(c.create_time),
        updated: at(c.time_stamp),
        contact_updated: at(k.time_stamp),
        dob: if let Dob::At(t) = c.dob {
            Some(at(t))
        } else {
            None
        },
        emails: k
            .emails
            .iter()
            .map(|(a, u)| (a.clone(), u.to_string()))
            .collect(),
        phones: k
            .phones
            .iter()
            .map(|(n, u)| (n.clone(), u.to_string()))
            .collect(),
        addresses: k
            .addresses
            .iter()
            .map(|a| TruthAddress {
                address1: a.address1.clone(),
                address2: a.address2.clone(),
                city: a.city.clone(),
                state: a.state.clone(),
                state_code: a.state_code.clone(),
                zip: a.zip.clone(),
                country: a.country.clone(),
                country_code: a.country_code.clone(),
            })
            .collect(),
    }
}
