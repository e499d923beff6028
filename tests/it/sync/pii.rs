//! PII policies (`mirror.pii.*`): what the mirror stores of emails, phones and names, in every
//! table and in `raw`, checked against a `pg_dump` of the database and against HMACs computed here.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use lightspeed_sync::config::Settings;
use lightspeed_sync::sim::{Mutation, TruthCustomer};
use lightspeed_sync::sync::{Kind, MirrorOptions};
use sha2::Sha256;
use sqlx::PgPool;

use crate::sync::helpers::{Env, env, fast, settings_for};
use crate::sync::history::{pg_dump, tick};

const KEY_HEX: &str = "8f3c2a6d1e9b4f70a5c8d2e61b7f3a9c4d0e5f6a7b8c9d0e1f2a3b4c5d6e7f80";

/// HMAC-SHA256 of `v` with [`KEY_HEX`], hex: what a `hash` policy must store.
fn hmac_hex(v: &str) -> String {
    let key: Vec<u8> = (0..KEY_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY_HEX[i..i + 2], 16).unwrap())
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(v.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Apply `[mirror]` settings given as environment variables to the test's engine.
fn set_mirror(env: &mut Env, vars: &[(&str, &str)]) {
    let settings = settings_for(&env.sim, vars);
    env.engine.mirror = MirrorOptions::from_settings(&settings.mirror).unwrap();
}

const HASH_EMAIL_DROP_PHONE: [(&str, &str); 4] = [
    ("LSSYNC__MIRROR__HISTORY", "true"),
    ("LSSYNC__MIRROR__PII__EMAIL", "hash"),
    ("LSSYNC__MIRROR__PII__PHONE", "drop"),
    ("LSSYNC__MIRROR__PII_KEY", KEY_HEX),
];

fn emails_and_phones(seen: &[TruthCustomer]) -> (BTreeSet<String>, BTreeSet<String>) {
    let emails = seen
        .iter()
        .flat_map(|c| c.emails.iter().map(|(e, _)| e.clone()))
        .collect();
    let phones = seen
        .iter()
        .flat_map(|c| c.phones.iter().map(|(p, _)| p.clone()))
        .collect();
    (emails, phones)
}

/// Every email address stored anywhere as a string: the child table, `raw` of the customers and of
/// their history.
async fn stored_emails(pool: &PgPool) -> Vec<(String, i64, String)> {
    sqlx::query_as(
        "SELECT 'customer_emails', customer_id, address FROM lightspeed.customer_emails
         UNION ALL
         SELECT 'customers.raw', customer_id, x #>> '{}' FROM lightspeed.customers,
             jsonb_path_query(raw, 'lax $.Contact.Emails.ContactEmail[*].address') AS x
         UNION ALL
         SELECT 'customers_history.raw', customer_id, x #>> '{}'
         FROM lightspeed.customers_history,
             jsonb_path_query(raw, 'lax $.Contact.Emails.ContactEmail[*].address') AS x",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn hashed_emails_and_dropped_phones_leave_no_trace(pool: PgPool) {
    let mut env = env(pool, fast(1, 40)).await;
    set_mirror(&mut env, &HASH_EMAIL_DROP_PHONE);
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Full).await;
    let mut seen = env.sim.truth(a);
    // More versions: new emails and phones, recorded in history too.
    tick().await;
    for id in 1..=10 {
        env.sim
            .mutate(
                a,
                Mutation::ContactEdit {
                    id,
                    bump_timestamp: true,
                },
            )
            .unwrap();
    }
    env.sync_ok(a, Kind::Incremental).await;
    seen.extend(env.sim.truth(a));
    let (emails, phones) = emails_and_phones(&seen);
    assert!(
        emails.len() >= 20 && phones.len() >= 20,
        "{emails:?} {phones:?}"
    );

    let dump = pg_dump(&env.pool).await;
    let leaked: Vec<&String> = emails
        .iter()
        .chain(&phones)
        .filter(|v| dump.contains(v.as_str()))
        .collect();
    assert!(leaked.is_empty(), "in the dump: {leaked:?}");

    // Each stored address is the HMAC of one the simulator served, the same in every table
    // (equal values hash equally, so they join).
    let expected: BTreeMap<String, String> =
        emails.iter().map(|e| (hmac_hex(e), e.clone())).collect();
    let stored = stored_emails(&env.pool).await;
    assert!(stored.len() >= 3 * 20, "{}", stored.len());
    for (table, id, v) in &stored {
        assert!(
            expected.contains_key(v),
            "{table}, customer {id}: {v} is not the HMAC of an email served"
        );
    }
    // The current emails of each customer, as hashes, in every table.
    for c in env.sim.truth(a) {
        let mut want: Vec<String> = c.emails.iter().map(|(e, _)| hmac_hex(e)).collect();
        want.sort();
        for table in ["customer_emails", "customers.raw"] {
            let mut got: Vec<String> = stored
                .iter()
                .filter(|(t, id, _)| *t == table && *id == c.id as i64)
                .map(|(_, _, v)| v.clone())
                .collect();
            got.sort();
            assert_eq!(got, want, "{table}, customer {}", c.id);
        }
    }
    // Phones: no child row, and no `Phones` in any raw.
    let phones_left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM lightspeed.customer_phones)
              + (SELECT count(*) FROM lightspeed.customers WHERE raw->'Contact' ? 'Phones')
              + (SELECT count(*) FROM lightspeed.customers_history
                 WHERE raw->'Contact' ? 'Phones')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(phones_left, 0);
    // Everything else is kept: the mirror equals the truth but for emails and phones.
    let names: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed.customers WHERE first_name <> '' AND raw ? 'firstName'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(names > 0, "names are kept");
}

#[test]
fn hash_without_a_key_is_refused_at_load() {
    let load = |vars: &[(&str, &str)]| {
        Settings::load_from(
            std::path::Path::new("/nonexistent/config.toml"),
            false,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let err = load(&[("LSSYNC__MIRROR__PII__EMAIL", "hash")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`mirror.pii_key`") && err.contains("`mirror.pii_key_file`"),
        "{err}"
    );
    assert!(err.contains("mirror.pii.email"), "names the group: {err}");
    let err = load(&[
        ("LSSYNC__MIRROR__PII__EMAIL", "hash"),
        ("LSSYNC__MIRROR__PII_KEY", "not hex at all"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("mirror.pii_key") && err.contains("hex"),
        "{err}"
    );
    assert!(
        !err.contains("not hex at all"),
        "the key is not echoed: {err}"
    );
    let err = load(&[("LSSYNC__MIRROR__PII__EMAIL", "scramble")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("scramble") || err.contains("variant"), "{err}");
    // With a key: accepted, and the key is shown nowhere.
    let settings = load(&[
        ("LSSYNC__MIRROR__PII__EMAIL", "hash"),
        ("LSSYNC__MIRROR__PII_KEY", KEY_HEX),
    ])
    .unwrap();
    let shown = settings.redacted_toml();
    assert!(
        shown.contains("[mirror]") && shown.contains("REDACTED"),
        "{shown}"
    );
    assert!(shown.contains("email = \"hash\""), "{shown}");
    let options = MirrorOptions::from_settings(&settings.mirror).unwrap();
    for text in [shown, format!("{settings:?}"), format!("{options:?}")] {
        assert!(!text.contains(KEY_HEX), "key in {text}");
        assert!(!text.contains("143, 60, 42"), "key bytes in {text}");
    }
}

#[sqlx::test]
async fn rewrite_reapplies_a_changed_policy(pool: PgPool) {
    let mut env = env(pool, fast(1, 40)).await;
    env.engine.mirror.history = true;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    let mut seen = env.sim.truth(a);
    tick().await;
    for id in 1..=5 {
        env.sim.mutate(a, Mutation::Update(id)).unwrap();
        env.sim
            .mutate(
                a,
                Mutation::ContactEdit {
                    id,
                    bump_timestamp: true,
                },
            )
            .unwrap();
    }
    env.sync_ok(a, Kind::Incremental).await;
    seen.extend(env.sim.truth(a));
    // A customer with emails vanishes upstream: a full walk marks it deleted, and no walk will
    // serve it again; the rewrite must reach its stored rows all the same.
    let gone = seen
        .iter()
        .find(|c| c.id > 5 && !c.emails.is_empty() && !c.addresses.is_empty())
        .expect("a customer with emails")
        .clone();
    env.sim.mutate(a, Mutation::HardDelete(gone.id)).unwrap();
    assert_eq!(env.sync_ok(a, Kind::Full).await.deleted, 1);
    let (emails, _) = emails_and_phones(&seen);
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers_history")
        .fetch_one(&env.pool)
        .await
        .unwrap();

    // The policy changes: rows written from then on follow it, the others stay as they were.
    set_mirror(
        &mut env,
        &[
            ("LSSYNC__MIRROR__HISTORY", "true"),
            ("LSSYNC__MIRROR__PII__EMAIL", "hash"),
            ("LSSYNC__MIRROR__PII__NAME", "drop"),
            ("LSSYNC__MIRROR__PII__ADDRESS", "drop"),
            ("LSSYNC__MIRROR__PII_KEY", KEY_HEX),
        ],
    );
    env.sync_ok(a, Kind::Incremental).await;
    let dump = pg_dump(&env.pool).await;
    assert!(
        emails.iter().any(|e| dump.contains(e.as_str())),
        "without --rewrite, rows not written again keep what they held"
    );

    env.engine.mirror.rewrite = true;
    let report = env.sync_ok(a, Kind::Full).await;
    assert!(
        report.rows > 0,
        "rows rewritten although their versions did not change"
    );
    let dump = pg_dump(&env.pool).await;
    let leaked: Vec<&String> = emails
        .iter()
        .filter(|e| dump.contains(e.as_str()))
        .collect();
    assert!(leaked.is_empty(), "in the dump after --rewrite: {leaked:?}");
    let expected: BTreeSet<String> = emails.iter().map(|e| hmac_hex(e)).collect();
    let stored = stored_emails(&env.pool).await;
    assert!(
        stored.iter().all(|(_, _, v)| expected.contains(v)),
        "{stored:?}"
    );
    let named: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM lightspeed.customers
                 WHERE first_name <> '' OR last_name <> '' OR raw ? 'firstName' OR raw ? 'lastName')
              + (SELECT count(*) FROM lightspeed.customers_history
                 WHERE first_name <> '' OR last_name <> '' OR raw ? 'firstName' OR raw ? 'lastName')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(named, 0, "names dropped everywhere, history included");
    let addresses: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM lightspeed.customer_addresses)
              + (SELECT count(*) FROM lightspeed.customers WHERE raw->'Contact' ? 'Addresses')
              + (SELECT count(*) FROM lightspeed.customers_history
                 WHERE raw->'Contact' ? 'Addresses')",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        addresses, 0,
        "addresses dropped everywhere, the deleted customer's included"
    );
    let gone_emails: Vec<String> = sqlx::query_scalar(
        "SELECT address FROM lightspeed.customer_emails WHERE customer_id = $1 ORDER BY position",
    )
    .bind(gone.id as i64)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let want: Vec<String> = gone.emails.iter().map(|(e, _)| hmac_hex(e)).collect();
    assert_eq!(
        gone_emails, want,
        "the deleted customer's emails are hashed in place"
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers_history")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(after, versions, "a rewrite adds no version");

    // Again: nothing changes (hashes are not hashed twice).
    let mut before = stored_emails(&env.pool).await;
    env.sync_ok(a, Kind::Full).await;
    let mut again = stored_emails(&env.pool).await;
    before.sort();
    again.sort();
    assert_eq!(again, before);
}
