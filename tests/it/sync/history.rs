//! `mirror.history`: `lightspeed.customers_history` holds the versions the simulator served at each
//! sync, no more; a hard delete closes a customer's history; an anonymized customer leaves nothing
//! of what anonymization cleared anywhere in the database (a `pg_dump` says so).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lightspeed_sync::sim::{Mutation, TruthCustomer};
use lightspeed_sync::sync::Kind;
use sqlx::PgPool;

use crate::sync::helpers::{Env, env, fast};

/// The test's engine with `mirror.history = true`.
async fn with_history(pool: PgPool, customers: usize) -> Env {
    let mut env = env(pool, fast(1, customers)).await;
    env.engine.mirror.history = true;
    env
}

/// Move the simulator's clock (tokio's) one second on, so the next mutations carry a later
/// `timeStamp` than the ones before (mutations within one second share it). Time runs normally
/// again afterwards: the database and HTTP timeouts see real time.
pub async fn tick() {
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    tokio::time::resume();
}

/// A version as compared: (valid_from, first name, last name, customer type, archived).
type Version = (DateTime<Utc>, String, String, Option<i64>, bool);

fn version_of(c: &TruthCustomer) -> Version {
    (
        c.updated,
        c.first_name.clone(),
        c.last_name.clone(),
        c.customer_type_id.map(|t| t as i64),
        c.archived,
    )
}

/// What history must hold after each sync: the truth served then, appended when its `timeStamp`
/// moved; the same `timeStamp` with other content replaces the last version (the documented rule).
#[derive(Default)]
struct Expected(BTreeMap<i64, Vec<Version>>);

impl Expected {
    fn observe(&mut self, truth: &[TruthCustomer]) {
        for c in truth {
            let v = version_of(c);
            let list = self.0.entry(c.id as i64).or_default();
            match list.last_mut() {
                Some(last) if last.0 == v.0 => *last = v,
                Some(last) if last.0 > v.0 => {}
                _ => list.push(v),
            }
        }
    }
}

type Row = (
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    bool,
    String,
    String,
    Option<i64>,
    bool,
    Option<DateTime<Utc>>,
);

async fn history_rows(pool: &PgPool, account: u64) -> Vec<Row> {
    sqlx::query_as(
        "SELECT customer_id, valid_from, valid_to, is_current, first_name, last_name,
                customer_type_id, archived, deleted_at
         FROM lightspeed.customers_history WHERE account_id = $1
         ORDER BY customer_id, valid_from",
    )
    .bind(account as i64)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// History equals `expected`, with `valid_to` the next version's `valid_from` and only the last
/// version current.
async fn assert_history(env: &Env, account: u64, expected: &Expected) {
    let rows = history_rows(&env.pool, account).await;
    let mut got: BTreeMap<i64, Vec<Version>> = BTreeMap::new();
    for (id, from, _, _, first, last, ctype, archived, _) in &rows {
        got.entry(*id)
            .or_default()
            .push((*from, first.clone(), last.clone(), *ctype, *archived));
    }
    assert_eq!(got, expected.0, "history differs from the versions served");
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.0 == b.0 {
            assert_eq!(
                a.2,
                Some(b.1),
                "customer {}: valid_to is the next valid_from",
                a.0
            );
            assert!(!a.3, "customer {}: only the last version is current", a.0);
        }
    }
    for r in rows
        .iter()
        .filter(|r| rows.iter().rfind(|o| o.0 == r.0) == Some(r))
    {
        assert!(
            r.3 && r.2.is_none(),
            "customer {}: the last version is open",
            r.0
        );
    }
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers_history")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn history_holds_the_versions_served_at_each_sync(pool: PgPool) {
    let env = with_history(pool, 40).await;
    let a = env.sim.account_ids()[0];
    let mut expected = Expected::default();
    env.sync_ok(a, Kind::Incremental).await;
    expected.observe(&env.sim.truth(a));
    assert_history(&env, a, &expected).await;
    for round in 0..4u64 {
        // Renames, type moves, archives, a new customer; customer 5 changes every round (twice in
        // round 2: only the second version is served, the first was never seen).
        tick().await;
        env.sim.mutate(a, Mutation::Update(5)).unwrap();
        if round == 2 {
            env.sim.mutate(a, Mutation::Update(5)).unwrap();
        }
        env.sim.mutate(a, Mutation::Update(10 + round)).unwrap();
        env.sim
            .mutate(
                a,
                Mutation::SetCustomerType {
                    id: 20 + round,
                    type_id: 1 + round % 3,
                },
            )
            .unwrap();
        env.sim.mutate(a, Mutation::Archive(30 + round)).unwrap();
        env.sim.mutate(a, Mutation::Create).unwrap();
        let kind = if round == 3 {
            Kind::Full
        } else {
            Kind::Incremental
        };
        env.sync_ok(a, kind).await;
        expected.observe(&env.sim.truth(a));
        assert_history(&env, a, &expected).await;
    }
    assert!(
        expected.0[&5].len() >= 5,
        "customer 5 has several versions: {:?}",
        expected.0[&5]
    );
    // History matches the mirror's current rows.
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed.customers c
         JOIN lightspeed.customers_history h USING (account_id, customer_id)
         WHERE h.is_current AND (h.valid_from <> c.updated_at OR h.raw <> c.raw)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(stale, 0, "the current versions are the mirror's rows");
}

#[sqlx::test]
async fn a_replay_adds_nothing(pool: PgPool) {
    let env = with_history(pool, 30).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.mutate(a, Mutation::Update(3)).unwrap();
    env.sync_ok(a, Kind::Incremental).await;
    let before = history_rows(&env.pool, a).await;
    let xmin_before: Vec<String> = sqlx::query_scalar(
        "SELECT xmin::text FROM lightspeed.customers_history ORDER BY customer_id, valid_from",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    // The overlap replays the newest records; a full walk replays all of them.
    env.sync_ok(a, Kind::Incremental).await;
    env.sync_ok(a, Kind::Full).await;
    assert_eq!(history_rows(&env.pool, a).await, before);
    let xmin_after: Vec<String> = sqlx::query_scalar(
        "SELECT xmin::text FROM lightspeed.customers_history ORDER BY customer_id, valid_from",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        xmin_after, xmin_before,
        "replayed versions are not even rewritten"
    );
}

#[sqlx::test]
async fn a_contact_only_edit_replaces_the_version_in_place(pool: PgPool) {
    let env = with_history(pool, 30).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    let raw_before: serde_json::Value =
        sqlx::query_scalar("SELECT raw FROM lightspeed.customers_history WHERE customer_id = 6")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    env.sim
        .mutate(
            a,
            Mutation::ContactEdit {
                id: 6,
                bump_timestamp: false,
            },
        )
        .unwrap();
    env.sync_ok(a, Kind::Full).await;
    let rows: Vec<(serde_json::Value, bool)> = sqlx::query_as(
        "SELECT raw, is_current FROM lightspeed.customers_history WHERE customer_id = 6",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "same timeStamp: still one version");
    assert!(rows[0].1);
    assert_ne!(
        rows[0].0["Contact"], raw_before["Contact"],
        "with the new Contact"
    );
}

#[sqlx::test]
async fn a_hard_delete_closes_the_current_version(pool: PgPool) {
    let env = with_history(pool, 30).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    tick().await;
    env.sim.mutate(a, Mutation::Update(7)).unwrap();
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.mutate(a, Mutation::HardDelete(7)).unwrap();
    let report = env.sync_ok(a, Kind::Full).await;
    assert_eq!(report.deleted, 1);
    let rows: Vec<_> = history_rows(&env.pool, a)
        .await
        .into_iter()
        .filter(|r| r.0 == 7)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let last = &rows[1];
    assert!(!last.3, "no longer current");
    assert!(last.8.is_some() && last.2.is_some(), "closed: {last:?}");
    assert_eq!(
        rows[0].8, None,
        "the earlier version was not deleted, only superseded"
    );
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed.customers_history WHERE is_current AND customer_id <> 7",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        open,
        env.sim.truth(a).len() as i64,
        "the others stay current"
    );
    // A second full walk closes nothing more.
    env.sync_ok(a, Kind::Full).await;
    assert_eq!(
        history_rows(&env.pool, a)
            .await
            .into_iter()
            .filter(|r| r.0 == 7)
            .collect::<Vec<_>>(),
        rows
    );
}

#[sqlx::test]
async fn history_off_writes_nothing(pool: PgPool) {
    let env = env(pool, fast(1, 30)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.mutate(a, Mutation::Update(2)).unwrap();
    env.sim.mutate(a, Mutation::HardDelete(3)).unwrap();
    env.sim.mutate(a, Mutation::Anonymize(4)).unwrap();
    env.sync_ok(a, Kind::Incremental).await;
    let report = env.sync_ok(a, Kind::Full).await;
    assert_eq!(report.deleted, 1);
    assert_eq!(count(&env.pool).await, 0);
    env.assert_mirror_matches(a).await;
}

/// `pg_dump --data-only` of the test's own database, as text.
pub async fn pg_dump(pool: &PgPool) -> String {
    let url = crate::common::database_url(pool);
    let out = tokio::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &url])
        .output()
        .await
        .expect("running pg_dump (PostgreSQL client tools)");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The personal values of a customer version: names, emails, phones, address lines, dob (as the
/// date, which both `raw` and the `dob` column hold).
fn personal_values(c: &TruthCustomer) -> Vec<String> {
    let mut v = vec![c.first_name.clone(), c.last_name.clone()];
    v.extend(c.emails.iter().map(|(e, _)| e.clone()));
    v.extend(c.phones.iter().map(|(p, _)| p.clone()));
    for a in &c.addresses {
        v.extend([a.address1.clone(), a.address2.clone(), a.zip.clone()]);
    }
    v.extend(c.dob.map(|d| d.format("%Y-%m-%d").to_string()));
    v.retain(|s| !s.is_empty());
    v
}

#[sqlx::test]
async fn an_anonymized_customer_leaves_none_of_its_cleared_fields_anywhere(pool: PgPool) {
    let env = with_history(pool, 40).await;
    let a = env.sim.account_ids()[0];
    // A customer with something in every group anonymization clears.
    let id = env
        .sim
        .truth(a)
        .into_iter()
        .find(|c| {
            !c.archived
                && c.dob.is_some()
                && !c.emails.is_empty()
                && !c.phones.is_empty()
                && !c.addresses.is_empty()
        })
        .expect("a customer with emails, phones, addresses and dob")
        .id;
    let mut seen: Vec<TruthCustomer> = Vec::new();
    env.sync_ok(a, Kind::Incremental).await;
    let truth_of = |env: &Env| env.sim.truth(a).into_iter().find(|c| c.id == id).unwrap();
    seen.push(truth_of(&env));
    // A few versions with other names and contacts, each synced into history.
    for bump in [true, true, false] {
        tick().await;
        env.sim.mutate(a, Mutation::Update(id)).unwrap();
        env.sim
            .mutate(
                a,
                Mutation::ContactEdit {
                    id,
                    bump_timestamp: bump,
                },
            )
            .unwrap();
        env.sync_ok(a, Kind::Incremental).await;
        seen.push(truth_of(&env));
    }
    let versions = count_versions(&env.pool, id).await;
    assert!(versions >= 3, "several versions recorded: {versions}");
    // Values another customer also holds (common names) would be in the dump anyway.
    let others = format!(
        "{:?}",
        env.sim
            .truth(a)
            .into_iter()
            .filter(|c| c.id != id)
            .collect::<Vec<_>>()
    );
    let mut values: Vec<String> = seen.iter().flat_map(personal_values).collect();
    values.sort();
    values.dedup();
    values.retain(|v| !others.contains(v.as_str()));
    let before = pg_dump(&env.pool).await;
    let held: Vec<&String> = values
        .iter()
        .filter(|v| before.contains(v.as_str()))
        .collect();
    assert!(
        held.len() == values.len() && values.len() >= 4,
        "the dump holds the customer's values before: {held:?} of {values:?}"
    );

    tick().await;
    env.sim.mutate(a, Mutation::Anonymize(id)).unwrap();
    let report = env.sync_ok(a, Kind::Incremental).await;
    assert_eq!(report.erased, 1);
    let after = pg_dump(&env.pool).await;
    let left: Vec<&String> = values
        .iter()
        .filter(|v| after.contains(v.as_str()))
        .collect();
    assert!(left.is_empty(), "left after the erasure: {left:?}");
    // History keeps the versions (their number and times), scrubbed; notes and the rest stay.
    assert_eq!(count_versions(&env.pool, id).await, versions + 1);
    type Scrubbed = (String, String, Option<DateTime<Utc>>, Option<String>);
    let names: Vec<Scrubbed> = sqlx::query_as(
        "SELECT first_name, last_name, dob, note FROM lightspeed.customers_history
         WHERE customer_id = $1 ORDER BY valid_from",
    )
    .bind(id as i64)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let kept_note = seen.last().unwrap().note.clone();
    for (first, last, dob, note) in &names {
        assert_eq!(
            (first.as_str(), last.as_str()),
            ("Customer", format!("[{id}]").as_str())
        );
        assert_eq!(*dob, None);
        if !kept_note.is_empty() {
            assert!(note.is_some(), "notes are kept, as Lightspeed keeps them");
        }
    }
    // Counted in the run, once: a replay erases nothing more.
    let erased: i64 =
        sqlx::query_scalar("SELECT erased FROM lightspeed_sync.runs WHERE run_id = $1")
            .bind(report.run_id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(erased, 1);
    let xmin = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT string_agg(xmin::text, ',' ORDER BY valid_from)
             FROM lightspeed.customers_history WHERE customer_id = $1",
        )
        .bind(id as i64)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let scrubbed = xmin(env.pool.clone()).await;
    assert_eq!(env.sync_ok(a, Kind::Full).await.erased, 0);
    assert_eq!(
        xmin(env.pool.clone()).await,
        scrubbed,
        "a replay scrubs nothing again"
    );
    env.assert_mirror_matches(a).await;
}

async fn count_versions(pool: &PgPool, id: u64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM lightspeed.customers_history WHERE customer_id = $1")
        .bind(id as i64)
        .fetch_one(pool)
        .await
        .unwrap()
}
