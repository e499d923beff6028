//! The whole customer (issue 13): every new table compared field by field with the simulator's
//! truth after a first sync, after each kind of relation edit (with and without a `timeStamp`
//! bump), and after a full walk.

use lightspeed_sync::sim::{Mutation, Relation};
use lightspeed_sync::sync::Kind;
use sqlx::PgPool;

use crate::sync::helpers::{env, fast};

/// Customers of the account that have each relation to edit: one per kind.
fn targets(env: &crate::sync::helpers::Env, account: u64) -> Vec<u64> {
    let truth = env.sim.truth(account);
    let pick = |f: &dyn Fn(&lightspeed_sync::sim::TruthCustomer) -> bool, skip: &[u64]| {
        truth
            .iter()
            .find(|c| f(c) && !skip.contains(&c.id))
            .map(|c| c.id)
            .expect("a customer for each edit")
    };
    type Wanted = fn(&lightspeed_sync::sim::TruthCustomer) -> bool;
    let wanted: [Wanted; 5] = [
        |c| !c.custom_fields.is_empty(),
        |_| true,
        |c| c.credit.is_some(),
        |c| c.credit.is_none(),
        |_| true,
    ];
    let mut ids = Vec::new();
    for w in wanted {
        let id = pick(&w, &ids);
        ids.push(id);
    }
    ids
}

fn edit_every_relation(env: &crate::sync::helpers::Env, account: u64) -> Vec<u64> {
    let ids = targets(env, account);
    let kinds = [
        Relation::CustomField,
        Relation::Note,
        Relation::CreditBalance,
        Relation::CreditBalance,
        Relation::Tags,
    ];
    for (id, relation) in ids.iter().zip(kinds) {
        env.sim
            .mutate(account, Mutation::RelationEdit { id: *id, relation })
            .unwrap();
    }
    ids
}

#[sqlx::test]
async fn a_first_sync_mirrors_every_relation_and_the_definitions(pool: PgPool) {
    let env = env(pool, fast(1, 450)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
    // The data has every kind of value: a sync that loaded nothing would not match the truth.
    let counts: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customer_custom_fields),
                (SELECT count(DISTINCT type) FROM lightspeed.customer_custom_fields),
                (SELECT count(*) FROM lightspeed.credit_accounts),
                (SELECT count(*) FROM lightspeed.customers WHERE cardinality(tags) > 0),
                (SELECT count(*) FROM lightspeed.customers WHERE note IS NOT NULL),
                (SELECT count(*) FROM lightspeed.customer_websites)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(counts.0 > 100, "{counts:?}");
    assert_eq!(
        counts.1, 11,
        "every custom field type has values: {counts:?}"
    );
    assert!(
        counts.2 > 10 && counts.3 > 50 && counts.4 > 50 && counts.5 > 5,
        "{counts:?}"
    );
    // Deleted values are not rows; the simulator serves some.
    let raw_deleted: i64 = sqlx::query_scalar(
        r#"SELECT count(*) FROM lightspeed.customers WHERE raw::text LIKE '%"deleted": "true"%'"#,
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(raw_deleted > 0, "the simulator sends deleted values");
}

#[sqlx::test]
async fn relation_edits_that_do_not_move_the_timestamp_are_caught_by_the_full_walk(pool: PgPool) {
    let env = env(pool, fast(1, 300)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.assert_mirror_matches(a).await;
    env.sim.set_relation_edits_bump_timestamp(false);
    let before = crate::sync::helpers::mirror(&env.pool, a).await;
    let ids = edit_every_relation(&env, a);
    env.sim.mutate(a, Mutation::DeleteCustomerType(5)).unwrap();
    // An incremental run cannot see them: the customers' timeStamps did not move.
    env.sync_ok(a, Kind::Incremental).await;
    let after = crate::sync::helpers::mirror(&env.pool, a).await;
    for id in &ids {
        assert_eq!(
            after[id], before[id],
            "customer {id} changed without a newer timeStamp"
        );
    }
    // The full walk does: same timeStamp, different content.
    env.sync_ok(a, Kind::Full).await;
    env.assert_mirror_matches(a).await;
    let after = crate::sync::helpers::mirror(&env.pool, a).await;
    for id in &ids {
        assert_ne!(
            after[id], before[id],
            "customer {id}: the edit reached the mirror"
        );
    }
    let deleted: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT deleted_at FROM lightspeed.customer_types WHERE customer_type_id = 5",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(
        deleted.is_some(),
        "a hard-deleted customer type is marked deleted"
    );
}

#[sqlx::test]
async fn relation_edits_that_move_the_timestamp_are_caught_incrementally(pool: PgPool) {
    let env = env(pool, fast(1, 300)).await;
    let a = env.sim.account_ids()[0];
    env.sync_ok(a, Kind::Incremental).await;
    env.sim.set_relation_edits_bump_timestamp(true);
    let before = crate::sync::helpers::mirror(&env.pool, a).await;
    let ids = edit_every_relation(&env, a);
    let moved = env
        .sim
        .truth(a)
        .iter()
        .find(|c| c.customer_type_id != Some(3))
        .unwrap()
        .id;
    env.sim
        .mutate(
            a,
            Mutation::SetCustomerType {
                id: moved,
                type_id: 3,
            },
        )
        .unwrap();
    let report = env.sync_ok(a, Kind::Incremental).await;
    assert!(report.rows >= ids.len() as u64, "{report:?}");
    env.assert_mirror_matches(a).await;
    let after = crate::sync::helpers::mirror(&env.pool, a).await;
    for id in ids.iter().chain([&moved]) {
        assert_ne!(
            after[id], before[id],
            "customer {id}: the edit reached the mirror"
        );
    }
    env.sync_ok(a, Kind::Full).await;
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn relations_left_out_of_the_config_are_not_requested(pool: PgPool) {
    use lightspeed_sync::lightspeed::query::CustomerRelation;
    // Rate limits on (the simulator charges drips only then), with room to spare.
    let cfg = lightspeed_sync::sim::SimConfig {
        rate_limits: true,
        bucket_size: 10_000.0,
        drip_rate: 1_000.0,
        burst_limit: 0,
        ..fast(1, 120)
    };
    let mut env = env(pool, cfg).await;
    env.engine.api = env
        .engine
        .api
        .clone()
        .with_customer_relations(vec![CustomerRelation::Contact]);
    let a = env.sim.account_ids()[0];
    let before = env.sim.counters();
    let report = env.sync_ok(a, Kind::Incremental).await;
    // Pages of Contact only (1.2 drips each), no definitions walked.
    let after = env.sim.counters();
    let (charged, requests) = (
        after.drip_charged - before.drip_charged,
        after.api_requests - before.api_requests,
    );
    assert_eq!(requests, u64::from(report.stats.requests));
    assert!(
        (charged - 1.2 * requests as f64).abs() < 1e-6,
        "charged {charged} for {requests}"
    );
    let (fields, notes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.custom_fields),
                (SELECT count(*) FROM lightspeed.customers WHERE note IS NOT NULL OR tags IS NOT NULL)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((fields, notes), (0, 0));
}

#[test]
fn sync_customer_relations_is_read_from_the_file_or_the_environment_and_checked() {
    use lightspeed_sync::config::Settings;
    use lightspeed_sync::lightspeed::query::CustomerRelation;
    let load = |vars: &[(&str, &str)], file: Option<&str>| {
        let dir = std::env::temp_dir().join(format!("lssync-rel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("c{}.toml", vars.len() + file.map_or(0, str::len)));
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let mut env: Vec<(String, String)> = vec![(
            "LSSYNC__SECURITY__TOKEN_KEY".into(),
            lightspeed_sync::tokens::crypto::generate_key_base64(),
        )];
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::load_from(&path, false, env)
    };
    let default = load(&[], None).unwrap();
    assert_eq!(default.sync.relations(), CustomerRelation::ALL.to_vec());
    let env = load(
        &[("LSSYNC__SYNC__CUSTOMER_RELATIONS", "Contact, Tags")],
        None,
    )
    .unwrap();
    assert_eq!(
        env.sync.relations(),
        [CustomerRelation::Contact, CustomerRelation::Tags]
    );
    let file = load(&[], Some("[sync]\ncustomer_relations = [\"Note\"]\n")).unwrap();
    assert_eq!(file.sync.relations(), [CustomerRelation::Note]);
    let err = load(
        &[("LSSYNC__SYNC__CUSTOMER_RELATIONS", "Contact,Discount")],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sync.customer_relations") && err.contains("\"Discount\""),
        "{err}"
    );
}
