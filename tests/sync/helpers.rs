//! A simulator, a token store holding its accounts' tokens, an API client and an engine, per test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lightspeed_sync::config::Settings;
use lightspeed_sync::db::leases::Lease;
use lightspeed_sync::lightspeed::ApiClient;
use lightspeed_sync::lightspeed::retry::Backoff;
use lightspeed_sync::sim::{SimConfig, Simulator, TruthCustomer};
use lightspeed_sync::sync::{Engine, Kind, NoProgress, Progress, RunReport, Stream};
use lightspeed_sync::tokens::source::TokenSource;
use lightspeed_sync::tokens::store::NewTokens;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Everything one test needs.
pub struct Env {
    pub pool: PgPool,
    pub sim: Arc<Simulator>,
    pub settings: Settings,
    pub tokens: TokenSource,
    pub engine: Engine,
}

/// Settings pointing at `sim`, with a fresh token key.
pub fn settings_for(sim: &Simulator, extra: &[(&str, &str)]) -> Settings {
    let base = sim.base_url();
    let key = lightspeed_sync::tokens::crypto::generate_key_base64();
    let mut env: Vec<(String, String)> = vec![
        ("LSSYNC__LIGHTSPEED__API_BASE_URL".into(), base.clone()),
        ("LSSYNC__LIGHTSPEED__AUTH_BASE_URL".into(), base),
        (
            "LSSYNC__LIGHTSPEED__CLIENT_ID".into(),
            sim.client_id().into(),
        ),
        (
            "LSSYNC__LIGHTSPEED__CLIENT_SECRET".into(),
            sim.client_secret().into(),
        ),
        (
            "LSSYNC__LIGHTSPEED__REDIRECT_URI".into(),
            sim.redirect_uri().into(),
        ),
        ("LSSYNC__LIGHTSPEED__REQUEST_TIMEOUT".into(), "5s".into()),
        ("LSSYNC__SECURITY__TOKEN_KEY".into(), key),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_from(std::path::Path::new("/nonexistent/config.toml"), false, env).unwrap()
}

/// Start a simulator and connect all its accounts (tokens handed out by the simulator's hook).
pub async fn env(pool: PgPool, cfg: SimConfig) -> Env {
    env_with(pool, cfg, Arc::new(NoProgress)).await
}

/// As [`env`], with a progress observer (tests use it to act between pages).
pub async fn env_with(pool: PgPool, cfg: SimConfig, progress: Arc<dyn Progress>) -> Env {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("lightspeed_sync=debug")
            .with_test_writer()
            .try_init();
    }
    let sim = Simulator::start(cfg).await.unwrap();
    let settings = settings_for(&sim, &[]);
    let tokens = TokenSource::from_settings(&settings, pool.clone()).unwrap();
    for account in sim.account_ids() {
        let pair = sim.issue_tokens(account);
        let access = SecretString::from(pair.access_token);
        let refresh = SecretString::from(pair.refresh_token);
        let new = NewTokens {
            access_token: &access,
            refresh_token: &refresh,
            access_expires_at: Utc::now() + chrono::Duration::seconds(pair.expires_in as i64),
        };
        tokens
            .store()
            .save_authorized(account, "", &new)
            .await
            .unwrap();
    }
    let api = ApiClient::new(&settings.lightspeed, Arc::new(tokens.clone()))
        .unwrap()
        .with_backoff(Backoff {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        });
    let engine = Engine {
        pool: pool.clone(),
        api,
        page_size: settings.sync.page_size,
        overlap: settings.sync.overlap,
        replica: "test-replica".into(),
        progress,
    };
    Env {
        pool,
        sim: Arc::new(sim),
        settings,
        tokens,
        engine,
    }
}

impl Env {
    /// Take the account's lease for this test's replica.
    pub async fn lease(&self, account: u64) -> Lease {
        lightspeed_sync::db::leases::try_acquire(
            &self.pool,
            account as i64,
            &self.engine.replica,
            Duration::from_secs(600),
        )
        .await
        .unwrap()
        .expect("lease free")
    }

    /// One run of one stream.
    pub async fn run(&self, account: u64, stream: Stream, kind: Kind) -> RunReport {
        let lease = self.lease(account).await;
        self.engine
            .run(&lease, stream, kind, &CancellationToken::new())
            .await
    }

    /// One customers run that must succeed.
    pub async fn sync_ok(&self, account: u64, kind: Kind) -> RunReport {
        let report = self.run(account, Stream::Customers, kind).await;
        assert_eq!(report.error, None, "run failed: {report:?}");
        report
    }

    /// Assert the mirror (rows not marked deleted) equals the simulator's truth for `account`.
    pub async fn assert_mirror_matches(&self, account: u64) {
        let truth: BTreeMap<u64, Comparable> = self
            .sim
            .truth(account)
            .into_iter()
            .map(|c| (c.id, Comparable::from_truth(c)))
            .collect();
        let mirror = mirror(&self.pool, account).await;
        let missing: Vec<_> = truth
            .keys()
            .filter(|id| !mirror.contains_key(id))
            .take(10)
            .collect();
        let extra: Vec<_> = mirror
            .keys()
            .filter(|id| !truth.contains_key(id))
            .take(10)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "account {account}: missing {missing:?}, extra {extra:?} (truth {}, mirror {})",
            truth.len(),
            mirror.len()
        );
        for (id, t) in &truth {
            assert_eq!(&mirror[id], t, "account {account}, customer {id} differs");
        }
    }
}

/// What is compared between the mirror and the truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparable {
    pub first_name: String,
    pub last_name: String,
    pub title: String,
    pub company: String,
    pub archived: bool,
    pub created: Option<DateTime<Utc>>,
    pub updated: DateTime<Utc>,
    pub emails: Vec<(String, String)>,
    pub phones: Vec<(String, String)>,
    pub addresses: Vec<Vec<String>>,
}

impl Comparable {
    fn from_truth(c: TruthCustomer) -> Self {
        Comparable {
            first_name: c.first_name,
            last_name: c.last_name,
            title: c.title,
            company: c.company,
            archived: c.archived,
            created: Some(c.created),
            updated: c.updated,
            emails: c.emails,
            phones: c.phones,
            addresses: c
                .addresses
                .into_iter()
                .map(|a| {
                    vec![
                        a.address1,
                        a.address2,
                        a.city,
                        a.state,
                        a.state_code,
                        a.zip,
                        a.country,
                        a.country_code,
                    ]
                })
                .collect(),
        }
    }
}

/// The mirror's live rows (not marked deleted) of an account.
pub async fn mirror(pool: &PgPool, account: u64) -> BTreeMap<u64, Comparable> {
    let a = account as i64;
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        bool,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT customer_id, first_name, last_name, title, company, archived, created_at, updated_at
         FROM lightspeed.customers WHERE account_id = $1 AND deleted_at IS NULL",
    )
    .bind(a)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out: BTreeMap<u64, Comparable> = rows
        .into_iter()
        .map(
            |(id, first_name, last_name, title, company, archived, created, updated)| {
                (
                    id as u64,
                    Comparable {
                        first_name,
                        last_name,
                        title,
                        company,
                        archived,
                        created,
                        updated,
                        emails: vec![],
                        phones: vec![],
                        addresses: vec![],
                    },
                )
            },
        )
        .collect();
    for (table, column) in [
        ("customer_emails", "address"),
        ("customer_phones", "number"),
    ] {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT customer_id, {column}, use_type FROM lightspeed.{table}
             WHERE account_id = $1 ORDER BY customer_id, position"
        )))
        .bind(a)
        .fetch_all(pool)
        .await
        .unwrap();
        for (id, x, y) in rows {
            if let Some(c) = out.get_mut(&(id as u64)) {
                let list = if table == "customer_emails" {
                    &mut c.emails
                } else {
                    &mut c.phones
                };
                list.push((x, y));
            }
        }
    }
    type Addr = (
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let addresses: Vec<Addr> = sqlx::query_as(
        "SELECT customer_id, address1, address2, city, state, state_code, zip, country, country_code
         FROM lightspeed.customer_addresses WHERE account_id = $1 ORDER BY customer_id, position",
    )
    .bind(a)
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, a1, a2, city, state, sc, zip, country, cc) in addresses {
        if let Some(c) = out.get_mut(&(id as u64)) {
            c.addresses
                .push(vec![a1, a2, city, state, sc, zip, country, cc]);
        }
    }
    out
}

/// A fast simulator: big bucket, no burst limit, no background mutations.
pub fn fast(accounts: usize, customers: usize) -> SimConfig {
    SimConfig {
        accounts,
        customers,
        rate_limits: false,
        ..SimConfig::default()
    }
}

/// The URL of the test's own database (`#[sqlx::test]` made it).
pub async fn test_database_url(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&name);
    url.to_string()
}
