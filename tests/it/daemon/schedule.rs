//! Ticks, the fair worker, and two daemons splitting the accounts on a real schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightspeed_sync::daemon::worker::{Enqueued, Job, Tick, Worker};
use lightspeed_sync::model::AccountId;
use lightspeed_sync::sync::lease::LEASE_TTL;
use lightspeed_sync::tokens::store::{NewTokens, list_accounts, mark_needs_reauth};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::daemon::helpers::{
    EVERY_SECOND, Env, Later, NEVER, OnPage, RunningDaemon, assert_no_overlap, daemon_settings,
    engine_for, env, fast, no_progress, options, own_pool, runs, wait_for,
};

fn worker(env: &Env, requests: usize) -> Worker {
    let engine = lightspeed_sync::sync::Engine {
        api: env.engine.api.clone().with_gates(requests, requests),
        ..env.engine.clone()
    };
    Worker::new(
        engine,
        1000,
        LEASE_TTL,
        TaskTracker::new(),
        CancellationToken::new(),
    )
}

async fn reconnect(env: &Env, account: u64) {
    let pair = env.sim.issue_tokens(account);
    let access = SecretString::from(pair.access_token);
    let refresh = SecretString::from(pair.refresh_token);
    let new = NewTokens {
        access_token: &access,
        refresh_token: &refresh,
        access_expires_at: chrono::Utc::now() + chrono::Duration::seconds(pair.expires_in as i64),
    };
    env.tokens
        .store()
        .save_authorized(account.into(), "", &new)
        .await
        .unwrap();
}

fn sorted<T: Into<u64>>(v: Vec<T>) -> Vec<u64> {
    let mut v: Vec<u64> = v.into_iter().map(Into::into).collect();
    v.sort();
    v
}

#[sqlx::test]
async fn a_tick_syncs_every_connected_account_skips_those_needing_reauth_and_sees_new_ones(
    pool: PgPool,
) {
    let env = env(pool, fast(3, 150)).await;
    let ids = sorted(env.sim.account_ids());
    mark_needs_reauth(&env.pool, ids[2].into(), "invalid_grant: revoked in a test")
        .await
        .unwrap();
    let worker = worker(&env, 2);

    let report = worker.tick(Tick::Initial).await.unwrap();
    assert_eq!(sorted(report.started), ids[..2]);
    assert_eq!(report.needs_reauth, vec![AccountId::from(ids[2])]);
    worker.wait_idle().await;
    let all = runs(&env.pool).await;
    for &a in &ids[..2] {
        let mine: Vec<_> = all.iter().filter(|r| r.account_id == a as i64).collect();
        let what: Vec<(&str, &str, &str)> = mine
            .iter()
            .map(|r| (r.stream.as_str(), r.kind.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            what,
            [
                ("accounts", "full", "succeeded"),
                ("customers", "incremental", "succeeded")
            ]
        );
        env.assert_mirror_matches(a).await;
    }
    assert!(all.iter().all(|r| r.account_id != ids[2] as i64));

    // Re-authorized while the daemon runs: the next tick includes it, no restart needed.
    reconnect(&env, ids[2]).await;
    let report = worker.tick(Tick::Customers).await.unwrap();
    assert_eq!(sorted(report.started), ids);
    assert!(report.needs_reauth.is_empty());
    worker.wait_idle().await;
    env.assert_mirror_matches(ids[2]).await;
}

#[sqlx::test]
async fn jobs_for_a_busy_account_are_coalesced_and_never_overlap(pool: PgPool) {
    let env = env(pool, fast(1, 300)).await;
    let a = env.sim.account_ids()[0];
    let info = list_accounts(&env.pool).await.unwrap().remove(0);
    let slot: Later<Worker> = Arc::new(Mutex::new(None));
    let fired = Arc::new(AtomicBool::new(false));
    let engine = {
        let (slot, fired, info) = (slot.clone(), fired.clone(), info.clone());
        // While the customers run is going, the schedule fires twice more.
        let hook = OnPage(move |_| {
            if !fired.swap(true, Ordering::SeqCst) {
                let w = slot.lock().unwrap().clone().unwrap();
                assert_eq!(
                    w.enqueue(info.clone(), &[Job::Customers]),
                    Enqueued::Coalesced
                );
                assert_eq!(
                    w.enqueue(info.clone(), &[Job::Customers]),
                    Enqueued::Coalesced
                );
            }
        });
        lightspeed_sync::sync::Engine {
            progress: Arc::new(hook),
            mirror: Default::default(),
            ..env.engine.clone()
        }
    };
    let worker = Worker::new(
        engine,
        1000,
        LEASE_TTL,
        TaskTracker::new(),
        CancellationToken::new(),
    );
    *slot.lock().unwrap() = Some(worker.clone());

    // Three ticks before the account's task gets going: one batch, each job once, in job order.
    assert_eq!(
        worker.enqueue(info.clone(), &[Job::Customers]),
        Enqueued::Started
    );
    assert_eq!(
        worker.enqueue(info.clone(), &[Job::FullRefresh, Job::Customers]),
        Enqueued::Coalesced
    );
    assert_eq!(
        worker.enqueue(info.clone(), &[Job::Accounts]),
        Enqueued::Coalesced
    );
    worker.wait_idle().await;

    let all = runs(&env.pool).await;
    let what: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|r| (r.stream.as_str(), r.kind.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        what,
        [
            ("accounts", "full", "succeeded"),
            ("customers", "incremental", "succeeded"),
            ("customers", "full", "succeeded"),
            // the two jobs that arrived during the batch: coalesced into one run, after it
            ("customers", "incremental", "succeeded"),
        ]
    );
    assert_no_overlap(&all);
    env.assert_mirror_matches(a).await;
}

#[sqlx::test]
async fn slots_are_shared_fairly_between_accounts(pool: PgPool) {
    let env = env(pool, fast(3, 300)).await;
    let infos = list_accounts(&env.pool).await.unwrap();
    let first = infos[0].clone();
    let slot: Later<Worker> = Arc::new(Mutex::new(None));
    let fired = Arc::new(AtomicBool::new(false));
    let engine = {
        let (slot, fired, first) = (slot.clone(), fired.clone(), first.clone());
        // The first account gets more work while it runs: it must queue behind the others.
        let hook = OnPage(move |account| {
            if first.account_id == account && !fired.swap(true, Ordering::SeqCst) {
                let w = slot.lock().unwrap().clone().unwrap();
                w.enqueue(first.clone(), &[Job::Customers]);
            }
        });
        lightspeed_sync::sync::Engine {
            progress: Arc::new(hook),
            mirror: Default::default(),
            // One request and one page at a time for the whole process.
            api: env.engine.api.clone().with_gates(1, 1),
            ..env.engine.clone()
        }
    };
    let worker = Worker::new(
        engine,
        1000,
        LEASE_TTL,
        TaskTracker::new(),
        CancellationToken::new(),
    );
    *slot.lock().unwrap() = Some(worker.clone());
    for info in &infos {
        assert_eq!(
            worker.enqueue(info.clone(), &[Job::Customers]),
            Enqueued::Started
        );
    }
    worker.wait_idle().await;
    let order: Vec<u64> = runs(&env.pool)
        .await
        .iter()
        .map(|r| r.account_id as u64)
        .collect();
    let ids: Vec<u64> = infos.iter().map(|i| i.account_id.get()).collect();
    // Every account's first run starts before the first account's second one: the accounts are
    // not queued behind one another, and the extra work queues behind theirs.
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(
        sorted(order[..3].to_vec()),
        sorted(ids.clone()),
        "{order:?}"
    );
    assert_eq!(order[3], ids[0], "{order:?}");
}

#[sqlx::test]
async fn two_daemons_split_the_accounts_on_schedule_and_never_sync_one_at_once(pool: PgPool) {
    let env = env(pool, fast(6, 1000)).await;
    let ids = sorted(env.sim.account_ids());
    let settings = daemon_settings(&env, [EVERY_SECOND, NEVER, NEVER], 2);
    let mut daemons = Vec::new();
    for replica in ["replica-a", "replica-b"] {
        let engine = engine_for(&settings, own_pool(&env.pool).await, replica, no_progress());
        daemons.push(RunningDaemon::start(&settings, engine, options(true)).await);
    }
    // The initial sync and at least two scheduled ticks per account.
    wait_for(
        "three successful customers runs of every account",
        Duration::from_secs(90),
        || async {
            let mut n: BTreeMap<i64, usize> = BTreeMap::new();
            for r in runs(&env.pool).await {
                if r.stream == "customers" && r.status == "succeeded" {
                    *n.entry(r.account_id).or_default() += 1;
                }
            }
            (n.len() == ids.len() && n.values().all(|&c| c >= 3)).then_some(())
        },
    )
    .await;
    for d in daemons {
        let stopped = d.stop().await;
        assert!(stopped.drained, "{stopped:?}");
    }

    let all = runs(&env.pool).await;
    assert_no_overlap(&all);
    let replicas: BTreeSet<&str> = all.iter().filter_map(|r| r.replica.as_deref()).collect();
    assert_eq!(
        replicas,
        BTreeSet::from(["replica-a", "replica-b"]),
        "both replicas did some of the work"
    );
    assert!(
        all.iter()
            .all(|r| r.status == "succeeded" || r.status == "interrupted"),
        "{all:?}"
    );
    let leases_held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM lightspeed_sync.leases WHERE expires_at > now()")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(leases_held, 0, "every lease is released on shutdown");
    for &a in &ids {
        env.assert_mirror_matches(a).await;
    }
}

#[sqlx::test]
async fn an_account_waiting_on_its_bucket_holds_no_slot(pool: PgPool) {
    // Each account has its own small bucket; the process may send one request at a time and hold
    // one page. Waiting on a bucket must not hold that up: the accounts wait side by side, so the
    // whole takes about one account's own minimum, not the sum of them.
    let accounts = 4;
    let (size, drip) = (2.0, 1.0);
    let env = env(
        pool,
        lightspeed_sync::sim::SimConfig {
            accounts,
            customers: 300,
            bucket_size: size,
            drip_rate: drip,
            rate_limits: true,
            ..lightspeed_sync::sim::SimConfig::default()
        },
    )
    .await;
    let worker = worker(&env, 1);
    let started = std::time::Instant::now();
    let report = worker.tick(Tick::Initial).await.unwrap();
    assert_eq!(report.started.len(), accounts);
    worker.wait_idle().await;
    let wall = started.elapsed().as_secs_f64();
    let c = env.sim.counters();
    let minimum = (c.drip_charged / accounts as f64 - size) / drip;
    assert_eq!(c.throttled_bucket + c.throttled_burst, 0, "{c:?}");
    assert!(minimum > 2.0, "each account waits on its bucket: {minimum}");
    assert!(
        wall < 2.0 * minimum,
        "{wall:.2} s for {accounts} accounts whose own minimum is {minimum:.2} s: they waited in turn"
    );
    for r in runs(&env.pool).await {
        assert_eq!(r.status, "succeeded", "{r:?}");
    }
    for a in env.sim.account_ids() {
        env.assert_mirror_matches(a).await;
    }
}
