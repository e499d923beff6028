//! PII policies (`mirror.pii.<group>` = keep | hash | drop), applied to a customer before anything
//! is written: to its row model ([`CustomerRow`]: typed columns and child rows) and to its `raw`
//! JSON alike, so that no table (history included) holds more than the policy lets through.
//!
//! - `hash`: HMAC-SHA256 of the value as sent, keyed with `mirror.pii_key`, as 64 lower-case hex
//!   digits. Equal values hash equally (analysts can join on them), different keys give unrelated
//!   hashes, and nothing can be read back. Empty strings stay empty: "no value" is not personal data,
//!   and hashing it would only hide that the value is missing.
//! - `drop`: the value is not stored: NULL in nullable columns (`dob`, `note`, custom field
//!   `value`), the empty string in the NOT NULL `first_name`/`last_name`, no child row at all for
//!   emails, phones and addresses, and the key removed from `raw`.
//!
//! Values rewritten by `sync --full --rewrite` from what the mirror stored ([`PiiPolicy::for_stored`])
//! may already be hashes: a value of the shape of a hash (64 lower-case hex digits) is then left as
//! it is, so applying a policy twice changes nothing. (A hash cannot be turned back into the value:
//! `hash` → `keep` cannot be undone by a rewrite, only by the next version Lightspeed serves.)

use hmac::{Hmac, Mac};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::config::{ConfigError, MirrorSettings, PiiAction, PiiSettings};
use crate::db::mirror::CustomerRow;

/// The HMAC key, wiped when dropped and never printed.
#[derive(Clone)]
struct Key(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(REDACTED)")
    }
}

/// The policies of every group, with the key `hash` needs.
#[derive(Debug, Clone, Default)]
pub struct PiiPolicy {
    groups: PiiSettings,
    key: Option<Key>,
    /// Rewriting stored values: leave those that are already hashes.
    stored: bool,
}

/// The `raw` keys of a customer that each group covers (for documentation and tests).
pub const RAW_NAME_KEYS: [&str; 2] = ["firstName", "lastName"];

const ADDRESS_KEYS: [&str; 8] = [
    "address1",
    "address2",
    "city",
    "state",
    "stateCode",
    "zip",
    "country",
    "countryCode",
];

impl PiiPolicy {
    /// Keep everything (the default).
    pub fn keep_all() -> Self {
        Self::default()
    }

    /// The policy of `[mirror]`. A `hash` group without a key is refused (as at config load).
    pub fn from_settings(m: &MirrorSettings) -> Result<Self, ConfigError> {
        let key = m.pii_key()?.map(Key);
        if m.hashes() && key.is_none() {
            return Err(ConfigError::Value {
                key: "mirror.pii_key",
                problem: "not set, and a mirror.pii group is \"hash\": set `mirror.pii_key` (hex) \
                          or `mirror.pii_key_file`"
                    .into(),
            });
        }
        Ok(PiiPolicy {
            groups: m.pii,
            key,
            stored: false,
        })
    }

    /// A policy with the given groups and key bytes (tests, tools).
    pub fn new(groups: PiiSettings, key: Option<&[u8]>) -> Self {
        PiiPolicy {
            groups,
            key: key.map(|k| Key(zeroize::Zeroizing::new(k.to_vec()))),
            stored: false,
        }
    }

    /// The same policy for values read back from the mirror (see the module's documentation).
    pub fn for_stored(&self) -> Self {
        PiiPolicy {
            stored: true,
            ..self.clone()
        }
    }

    /// The groups' actions.
    pub fn groups(&self) -> &PiiSettings {
        &self.groups
    }

    /// Whether every group is `keep` (nothing to do).
    pub fn keeps_all(&self) -> bool {
        self.groups
            .groups()
            .iter()
            .all(|(_, a)| *a == PiiAction::Keep)
    }

    /// HMAC-SHA256 of `value`, hex; `""` stays `""` (and, for stored values, a hash stays as is).
    pub fn hash(&self, value: &str) -> String {
        if value.is_empty() || (self.stored && looks_hashed(value)) {
            return value.to_string();
        }
        let Some(key) = &self.key else {
            // Unreachable through `from_settings`, which refuses `hash` without a key; dropping the
            // value is the safe way out should a caller build such a policy anyway.
            return String::new();
        };
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC takes any key");
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(64);
        for b in out {
            hex.push_str(&format!("{b:02x}"));
        }
        hex
    }

    fn text(&self, action: PiiAction, value: &mut String) {
        match action {
            PiiAction::Keep => {}
            PiiAction::Hash => *value = self.hash(value),
            PiiAction::Drop => value.clear(),
        }
    }

    fn opt_text(&self, action: PiiAction, value: &mut Option<String>) {
        match action {
            PiiAction::Keep => {}
            PiiAction::Hash => {
                if let Some(v) = value {
                    *v = self.hash(v);
                }
            }
            PiiAction::Drop => *value = None,
        }
    }

    /// A JSON value hashed: a string as it is, anything else as its JSON text.
    fn hash_json(&self, v: &Value) -> Value {
        match v {
            Value::Null => Value::Null,
            Value::String(s) => Value::String(self.hash(s)),
            other => Value::String(self.hash(&other.to_string())),
        }
    }

    /// Apply the policy to a customer row: typed columns, child rows and `raw`.
    pub fn apply(&self, row: &mut CustomerRow) {
        if self.keeps_all() {
            return;
        }
        let g = self.groups;
        self.text(g.name, &mut row.first_name);
        self.text(g.name, &mut row.last_name);
        match g.email {
            PiiAction::Keep => {}
            PiiAction::Hash => row.emails.iter_mut().for_each(|(a, _)| *a = self.hash(a)),
            PiiAction::Drop => row.emails.clear(),
        }
        match g.phone {
            PiiAction::Keep => {}
            PiiAction::Hash => row.phones.iter_mut().for_each(|(n, _)| *n = self.hash(n)),
            PiiAction::Drop => row.phones.clear(),
        }
        match g.address {
            PiiAction::Keep => {}
            PiiAction::Hash => {
                for a in &mut row.addresses {
                    for v in [
                        &mut a.address1,
                        &mut a.address2,
                        &mut a.city,
                        &mut a.state,
                        &mut a.state_code,
                        &mut a.zip,
                        &mut a.country,
                        &mut a.country_code,
                    ] {
                        *v = self.hash(v);
                    }
                }
            }
            PiiAction::Drop => row.addresses.clear(),
        }
        // A timestamp column cannot hold a hash: the typed `dob` is NULL, `raw` holds the hash.
        if g.dob != PiiAction::Keep {
            row.dob = None;
        }
        self.opt_text(g.note, &mut row.note);
        if g.custom_fields != PiiAction::Keep {
            for f in &mut row.custom_fields {
                self.opt_text(g.custom_fields, &mut f.value);
                f.value_json = match g.custom_fields {
                    PiiAction::Hash => self.hash_json(&f.value_json),
                    _ => Value::Null,
                };
            }
        }
        row.raw = self.apply_raw_text(&row.raw);
    }

    /// `raw` (JSON text) with the policy applied; as it is when the policy keeps everything or the
    /// text does not parse (the wire parser already accepted it, so it does).
    pub fn apply_raw_text(&self, raw: &RawValue) -> Box<RawValue> {
        if self.keeps_all() {
            return raw.to_owned();
        }
        let Ok(mut v) = serde_json::from_str::<Value>(raw.get()) else {
            return raw.to_owned();
        };
        self.apply_raw(&mut v);
        serde_json::value::to_raw_value(&v).unwrap_or_else(|_| raw.to_owned())
    }

    /// Apply the policy to a customer's JSON as Lightspeed sends it (`Customer` object, relations
    /// loaded or not; a list of one is an object, an empty list `""`).
    pub fn apply_raw(&self, v: &mut Value) {
        let Some(c) = v.as_object_mut() else { return };
        let g = self.groups;
        for k in RAW_NAME_KEYS {
            self.raw_field(g.name, c, k);
        }
        self.raw_field(g.dob, c, "dob");
        if let Some(contact) = c.get_mut("Contact").and_then(Value::as_object_mut) {
            for (action, list, item, fields) in [
                (g.email, "Emails", "ContactEmail", &["address"][..]),
                (g.phone, "Phones", "ContactPhone", &["number"][..]),
                (g.address, "Addresses", "ContactAddress", &ADDRESS_KEYS[..]),
            ] {
                match action {
                    PiiAction::Keep => {}
                    PiiAction::Drop => {
                        contact.remove(list);
                    }
                    PiiAction::Hash => {
                        for_each_item(contact.get_mut(list), item, |o| {
                            for f in fields {
                                self.raw_field(PiiAction::Hash, o, f);
                            }
                        });
                    }
                }
            }
        }
        if let Some(note) = c.get_mut("Note").and_then(Value::as_object_mut) {
            self.raw_field(g.note, note, "note");
        }
        if g.custom_fields != PiiAction::Keep {
            for_each_item(c.get_mut("CustomFieldValues"), "CustomFieldValue", |o| {
                self.raw_field(g.custom_fields, o, "value");
            });
        }
    }

    fn raw_field(&self, action: PiiAction, o: &mut serde_json::Map<String, Value>, key: &str) {
        match action {
            PiiAction::Keep => {}
            PiiAction::Drop => {
                o.remove(key);
            }
            PiiAction::Hash => {
                if let Some(v) = o.get_mut(key) {
                    *v = self.hash_json(v);
                }
            }
        }
    }
}

/// Call `f` on each object of `{"<item>": object | [objects]}` (Lightspeed's list shape).
fn for_each_item(
    list: Option<&mut Value>,
    item: &str,
    mut f: impl FnMut(&mut serde_json::Map<String, Value>),
) {
    match list.and_then(|l| l.get_mut(item)) {
        Some(Value::Object(o)) => f(o),
        Some(Value::Array(items)) => items
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(f),
        _ => {}
    }
}

/// 64 lower-case hex digits: what [`PiiPolicy::hash`] writes.
pub fn looks_hashed(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether a customer comes back anonymized (`DELETE Customer/{id}/Anonymize.json`, fact sheet §9):
/// archived, and named `Customer` / `[<customerID>]`. Lightspeed sets no flag; this shape is what
/// its documentation shows (`Customer` / `[70]` for customer 70), and a shop would not name a live
/// customer so. Judged on the row as received, before any policy hashes the name.
pub fn is_anonymized(row: &CustomerRow) -> bool {
    row.archived
        && row.first_name == "Customer"
        && row
            .last_name
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            == Some(row.customer_id.to_string().as_str())
}

/// The fields anonymization clears (the name is replaced, the rest emptied): `raw` keys, replaced in
/// earlier history rows by the anonymized version's (or removed when it has none). Notes, custom
/// field values, tags and the credit account are kept, as Lightspeed keeps them.
pub const ERASED_RAW_KEYS: [&str; 8] = [
    "firstName",
    "lastName",
    "title",
    "company",
    "companyRegistrationNumber",
    "vatNumber",
    "dob",
    "Contact",
];

/// `sync --full --rewrite`, after the full walk has rewritten every live customer from what
/// Lightspeed serves: apply the policy to every stored history row of the account (older versions
/// are never served again), in batches, each in its own transaction under the lease. Values already
/// hashed stay as they are; a dropped or hashed value cannot come back. Returns the rows changed.
pub(crate) async fn rewrite_history(
    engine: &super::Engine,
    lease: &crate::db::leases::Lease,
) -> Result<u64, super::SyncError> {
    use crate::db::history;
    const BATCH: i64 = 500;
    let policy = engine.mirror.pii.for_stored();
    let mut after = None;
    let mut changed = 0;
    loop {
        let mut txn = engine.pool.begin().await?;
        if !crate::db::leases::verify(&mut txn, lease).await? {
            return Err(super::SyncError::LeaseLost(lease.account_id));
        }
        let rows = history::stored_versions(&mut txn, lease.account_id, after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = Some((last.customer_id, last.valid_from));
        let done = rows.len() < BATCH as usize;
        let rewritten: Vec<history::StoredVersion> = rows
            .into_iter()
            .filter_map(|v| {
                let mut new = v.clone();
                policy.rewrite_stored(&mut new.pii);
                (new.pii != v.pii).then_some(new)
            })
            .collect();
        changed += history::rewrite_versions(&mut txn, lease.account_id, &rewritten).await?;
        txn.commit().await?;
        if done {
            break;
        }
    }
    Ok(changed)
}

/// `sync --full --rewrite`, after the full walk: apply the policy to the customers it did not
/// rewrite because Lightspeed no longer serves them (marked `deleted_at`): their PII columns, `raw`
/// and child rows. Returns the customers changed.
pub(crate) async fn rewrite_deleted(
    engine: &super::Engine,
    lease: &crate::db::leases::Lease,
) -> Result<u64, super::SyncError> {
    use crate::db::stored::{self, Child};
    const BATCH: i64 = 500;
    let policy = engine.mirror.pii.for_stored();
    let g = policy.groups;
    let account_id = lease.account_id;
    let mut after = i64::MIN;
    let mut changed = 0;
    loop {
        let mut txn = engine.pool.begin().await?;
        if !crate::db::leases::verify(&mut txn, lease).await? {
            return Err(super::SyncError::LeaseLost(account_id));
        }
        let rows = stored::deleted_customers(&mut txn, account_id, after, BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = last.customer_id;
        let done = rows.len() < BATCH as usize;
        let ids: Vec<i64> = rows.iter().map(|r| r.customer_id).collect();
        let rewritten: Vec<stored::StoredCustomer> = rows
            .into_iter()
            .filter_map(|r| {
                let mut new = r.clone();
                policy.rewrite_stored(&mut new.pii);
                (new.pii != r.pii).then_some(new)
            })
            .collect();
        changed += stored::rewrite_customers(&mut txn, account_id, &rewritten).await?;
        for (action, child) in [
            (g.email, Child::Emails),
            (g.phone, Child::Phones),
            (g.address, Child::Addresses),
        ] {
            match action {
                PiiAction::Keep => {}
                PiiAction::Drop => {
                    stored::drop_children(&mut txn, account_id, child, &ids).await?;
                }
                PiiAction::Hash => {
                    stored::map_children(&mut txn, account_id, child, &ids, |v| policy.hash(v))
                        .await?;
                }
            }
        }
        if g.custom_fields != PiiAction::Keep {
            stored::map_custom_fields(&mut txn, account_id, &ids, |mut v, j| {
                policy.opt_text(g.custom_fields, &mut v);
                let j = match g.custom_fields {
                    PiiAction::Hash => policy.hash_json(&j),
                    _ => Value::Null,
                };
                (v, j)
            })
            .await?;
        }
        txn.commit().await?;
        if done {
            break;
        }
    }
    Ok(changed)
}

impl PiiPolicy {
    /// Apply the policy to a stored history row (its typed PII columns and `raw`).
    /// Apply the policy to stored personal data (a customer row or a history version).
    fn rewrite_stored(&self, v: &mut crate::db::stored::StoredPii) {
        let g = self.groups;
        self.text(g.name, &mut v.first_name);
        self.text(g.name, &mut v.last_name);
        if g.dob != PiiAction::Keep {
            v.dob = None;
        }
        self.opt_text(g.note, &mut v.note);
        self.apply_raw(&mut v.raw.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `../shared/recorded/<name>` (the project's contract fixtures, as tests/sync/recorded.rs).
    fn recorded(name: &str) -> Vec<u8> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/recorded")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn policy(groups: PiiSettings) -> PiiPolicy {
        PiiPolicy::new(groups, Some(b"0123456789abcdef0123456789abcdef"))
    }

    /// RFC 4231 test case 2 ("Jefe"): the hash is plain HMAC-SHA256, computable anywhere.
    #[test]
    fn hash_is_hmac_sha256_hex() {
        let p = PiiPolicy::new(PiiSettings::default(), Some(b"Jefe"));
        assert_eq!(
            p.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(p.hash(""), "");
        let h = p.hash("a@example.com");
        assert!(looks_hashed(&h));
        // Applied again to a stored value: unchanged; to a fresh one: hashed again.
        assert_eq!(p.for_stored().hash(&h), h);
        assert_ne!(p.hash(&h), h);
    }

    #[test]
    fn anonymized_is_the_documented_shape() {
        let body = recorded("doc-samples/customer-anonymize-70.json");
        let c: crate::lightspeed::wire::Customer =
            crate::lightspeed::wire::parse_single(&body).unwrap();
        let row = crate::sync::convert::customer_row(c);
        assert!(is_anonymized(&row));
        let mut other = row.clone();
        other.last_name = "[71]".into();
        assert!(!is_anonymized(&other));
        other.last_name = "[70]".into();
        other.archived = false;
        assert!(!is_anonymized(&other));
    }

    /// The raw transform on a recorded body (the vendor's populated Contacts): hashed emails and
    /// addresses, dropped phones and names, nothing of the originals left in the JSON text.
    #[test]
    fn raw_transform_on_a_recorded_body() {
        let v: Value =
            serde_json::from_slice(&recorded("doc-samples/searching-customers.json")).unwrap();
        let p = policy(PiiSettings {
            name: PiiAction::Drop,
            email: PiiAction::Hash,
            phone: PiiAction::Drop,
            address: PiiAction::Hash,
            dob: PiiAction::Hash,
            ..Default::default()
        });
        for original in v["Customer"].as_array().unwrap() {
            let mut c = original.clone();
            p.apply_raw(&mut c);
            let text = c.to_string();
            assert!(c.get("firstName").is_none() && c.get("lastName").is_none());
            assert!(c["Contact"].get("Phones").is_none());
            let email = original["Contact"]["Emails"]["ContactEmail"]["address"]
                .as_str()
                .unwrap();
            assert_eq!(
                c["Contact"]["Emails"]["ContactEmail"]["address"],
                json!(p.hash(email))
            );
            for leaked in [
                original["firstName"].as_str().unwrap(),
                original["lastName"].as_str().unwrap(),
                email,
                original["Contact"]["Phones"]["ContactPhone"]["number"]
                    .as_str()
                    .unwrap(),
                original["dob"].as_str().unwrap(),
            ] {
                assert!(!text.contains(leaked), "{leaked} left in {text}");
            }
            if let Some(a) = original["Contact"]["Addresses"]["ContactAddress"].as_object() {
                for (k, val) in a {
                    let val = val.as_str().unwrap();
                    assert_eq!(
                        c["Contact"]["Addresses"]["ContactAddress"][k],
                        json!(p.hash(val))
                    );
                }
            }
            // What no group covers is untouched.
            assert_eq!(c["customerID"], original["customerID"]);
            assert_eq!(c["company"], original["company"]);
            assert_eq!(c["Contact"]["Websites"], original["Contact"]["Websites"]);
            // Applying it again to the stored result changes nothing.
            let mut again = c.clone();
            p.for_stored().apply_raw(&mut again);
            assert_eq!(again, c);
        }
    }

    #[test]
    fn custom_fields_and_notes() {
        let mut v = json!({
            "Note": {"note": "likes cats", "isPublic": "false"},
            "CustomFieldValues": {"CustomFieldValue": [
                {"customFieldID": "1", "value": "secret"},
                {"customFieldID": "2", "value": {"customFieldChoiceID": "3", "name": "Gold"}}
            ]}
        });
        let hashed = policy(PiiSettings {
            note: PiiAction::Hash,
            custom_fields: PiiAction::Hash,
            ..Default::default()
        });
        let mut h = v.clone();
        hashed.apply_raw(&mut h);
        assert_eq!(h["Note"]["note"], json!(hashed.hash("likes cats")));
        let cf = &h["CustomFieldValues"]["CustomFieldValue"];
        assert_eq!(cf[0]["value"], json!(hashed.hash("secret")));
        assert!(looks_hashed(cf[1]["value"].as_str().unwrap()));
        let dropped = policy(PiiSettings {
            note: PiiAction::Drop,
            custom_fields: PiiAction::Drop,
            ..Default::default()
        });
        dropped.apply_raw(&mut v);
        assert!(v["Note"].get("note").is_none());
        assert!(
            v["CustomFieldValues"]["CustomFieldValue"][1]
                .get("value")
                .is_none()
        );
        assert_eq!(
            v["CustomFieldValues"]["CustomFieldValue"][1]["customFieldID"],
            json!("2")
        );
    }
}
