//! Against the project's simulator (`lightspeed_sync::sim`): walk every customer and compare with the
//! ground truth; a throttled walk with zero 429s near the bucket's minimum time; faults survived; an
//! expired token refreshed through `token_rejected`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lightspeed_sync::lightspeed::query::{Archived, CustomerQuery, Sort, SortField};
use lightspeed_sync::lightspeed::retry::Backoff;
use lightspeed_sync::lightspeed::wire::Customer;
use lightspeed_sync::lightspeed::{ApiClient, AuthFailure, BoxFuture, CallStats, TokenProvider};
use lightspeed_sync::sim::{SimConfig, Simulator, TruthCustomer};
use secrecy::{ExposeSecret, SecretString};

use crate::client::helpers::settings;

/// Tokens straight from the simulator; a rejection issues a new chain.
struct SimTokens {
    sim: Arc<Simulator>,
    current: std::sync::Mutex<String>,
    rejected: std::sync::Mutex<u32>,
}

impl TokenProvider for SimTokens {
    fn access_token(
        &self,
        _account_id: lightspeed_sync::model::AccountId,
    ) -> BoxFuture<'_, Result<SecretString, AuthFailure>> {
        Box::pin(async move { Ok(SecretString::from(self.current.lock().unwrap().clone())) })
    }

    fn token_rejected<'a>(
        &'a self,
        account_id: lightspeed_sync::model::AccountId,
        rejected: &'a SecretString,
    ) -> BoxFuture<'a, Result<SecretString, AuthFailure>> {
        Box::pin(async move {
            *self.rejected.lock().unwrap() += 1;
            let mut current = self.current.lock().unwrap();
            if *current == rejected.expose_secret() {
                *current = self.sim.issue_tokens(account_id.get()).access_token;
            }
            Ok(SecretString::from(current.clone()))
        })
    }
}

async fn start(cfg: SimConfig) -> (Arc<Simulator>, u64, ApiClient, Arc<SimTokens>) {
    let sim = Arc::new(Simulator::start(cfg).await.unwrap());
    let account = sim.account_ids()[0];
    let token = sim.issue_tokens(account).access_token;
    let tokens = Arc::new(SimTokens {
        sim: sim.clone(),
        current: token.into(),
        rejected: 0.into(),
    });
    let api = ApiClient::new(&settings(&sim.base_url(), 6), tokens.clone())
        .unwrap()
        .with_backoff(Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        });
    (sim, account, api, tokens)
}

/// Every customer (archived too) by ID, with Contact, following `next` to the end.
async fn walk(api: &ApiClient, account: u64) -> (Vec<Customer>, CallStats) {
    let query = CustomerQuery {
        limit: Some(100),
        sort: Some(Sort {
            field: SortField::CustomerId,
            descending: false,
        }),
        archived: Some(Archived::Include),
        load_contact: true,
        ..Default::default()
    };
    let (mut all, mut stats) = (Vec::new(), CallStats::default());
    let mut url = Some(api.customers_url(account.into(), &query));
    while let Some(u) = url {
        let page = api.get_customers_page(account.into(), &u).await.unwrap();
        stats.add(&page.stats);
        all.extend(page.records);
        url = page.next;
    }
    (all, stats)
}

fn assert_matches_truth(got: &[Customer], truth: &[TruthCustomer]) {
    assert_eq!(got.len(), truth.len());
    for (c, t) in got.iter().zip(truth) {
        assert_eq!(c.customer_id, t.id);
        assert_eq!(
            (&c.first_name, &c.last_name, &c.title, &c.company),
            (&t.first_name, &t.last_name, &t.title, &t.company)
        );
        assert_eq!(
            (c.archived, c.create_time, c.time_stamp, c.dob),
            (t.archived, Some(t.created), t.updated, t.dob)
        );
        let contact = c.contact.as_ref().expect("Contact loaded");
        assert_eq!(
            contact.time_stamp,
            Some(t.contact_updated),
            "customer {}",
            t.id
        );
        let emails: Vec<_> = contact
            .emails
            .iter()
            .map(|e| (e.address.clone(), e.use_type.clone()))
            .collect();
        let phones: Vec<_> = contact
            .phones
            .iter()
            .map(|p| (p.number.clone(), p.use_type.clone()))
            .collect();
        assert_eq!(
            (&emails, &phones),
            (&t.emails, &t.phones),
            "customer {}",
            t.id
        );
        let addresses: Vec<_> = contact
            .addresses
            .iter()
            .map(|a| (&a.address1, &a.city, &a.zip, &a.country_code))
            .collect();
        let expected: Vec<_> = t
            .addresses
            .iter()
            .map(|a| (&a.address1, &a.city, &a.zip, &a.country_code))
            .collect();
        assert_eq!(addresses, expected, "customer {}", t.id);
    }
}

#[tokio::test]
async fn walk_matches_the_truth() {
    // 201 customers: the last page holds one record (an object, not an array).
    let cfg = SimConfig {
        customers: 201,
        rate_limits: false,
        ..SimConfig::default()
    };
    let (sim, account, api, _) = start(cfg).await;
    let (got, stats) = walk(&api, account).await;
    assert_eq!(stats.requests, 3);
    assert_matches_truth(&got, &sim.truth(account));
}

#[tokio::test]
async fn throttled_walk_has_no_429_and_is_near_the_minimum() {
    let (size, drip) = (10.0, 20.0);
    let cfg = SimConfig {
        customers: 3_000,
        bucket_size: size,
        drip_rate: drip,
        burst_limit: 20,
        ..SimConfig::default()
    };
    let (sim, account, api, _) = start(cfg).await;
    let started = Instant::now();
    let (got, stats) = walk(&api, account).await;
    let elapsed = started.elapsed().as_secs_f64();
    let counters = sim.counters();
    assert_eq!(
        (
            stats.throttled,
            counters.throttled_bucket,
            counters.throttled_burst
        ),
        (0, 0, 0)
    );
    assert_matches_truth(&got, &sim.truth(account));
    let minimum = (counters.drip_charged - size) / drip;
    println!(
        "throttled walk: {elapsed:.3}s, minimum {minimum:.3}s, waited {:?}",
        stats.waited
    );
    assert!(minimum > 0.5, "the bucket must bind: {minimum}");
    assert!(
        elapsed < minimum * 1.10 + 0.2,
        "{elapsed:.3}s vs minimum {minimum:.3}s"
    );
}

#[tokio::test]
async fn faults_are_survived() {
    let cfg = SimConfig {
        customers: 1_000,
        fault_rate: 0.25,
        slow: Duration::from_millis(50),
        rate_limits: false,
        ..SimConfig::default()
    };
    let (sim, account, api, _) = start(cfg).await;
    let (got, stats) = walk(&api, account).await;
    assert_matches_truth(&got, &sim.truth(account));
    assert!(
        sim.counters().faults > 0 && stats.retries > 0,
        "faults: {}, retries: {}",
        sim.counters().faults,
        stats.retries
    );
}

#[tokio::test]
async fn expired_token_is_refreshed_once() {
    let cfg = SimConfig {
        customers: 150,
        rate_limits: false,
        ..SimConfig::default()
    };
    let (sim, account, api, tokens) = start(cfg).await;
    sim.expire_access_tokens(account);
    let (got, stats) = walk(&api, account).await;
    assert_eq!(got.len(), 150);
    assert_eq!((stats.refreshes, *tokens.rejected.lock().unwrap()), (1, 1));
}

/// The benchmark's shape: 30,000 customers, bucket 90, drip 10/s, burst 20/s (about 30 s; run with
/// `cargo nextest run --run-ignored only -E "test(/^client::sim::/)"`).
#[tokio::test]
#[ignore = "takes about 30 s"]
async fn benchmark_30000_customers() {
    let (size, drip) = (90.0, 10.0);
    let cfg = SimConfig {
        customers: 30_000,
        bucket_size: size,
        drip_rate: drip,
        burst_limit: 20,
        ..SimConfig::default()
    };
    let (sim, account, api, _) = start(cfg).await;
    let started = Instant::now();
    let (got, stats) = walk(&api, account).await;
    let elapsed = started.elapsed().as_secs_f64();
    let counters = sim.counters();
    let minimum = (counters.drip_charged - size) / drip;
    println!(
        "30000 customers: {elapsed:.3}s, minimum {minimum:.3}s, requests {}, 429s {}",
        stats.requests, stats.throttled
    );
    assert_eq!(got.len(), 30_000);
    assert_eq!(
        (counters.throttled_bucket, counters.throttled_burst),
        (0, 0)
    );
    assert!(
        elapsed <= minimum * 1.03,
        "{elapsed:.3}s vs minimum {minimum:.3}s"
    );
}
