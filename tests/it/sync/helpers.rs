//! A simulator, a token store holding its accounts' tokens, an API client and an engine, per test.

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
            .save_authorized(account.into(), "", &new)
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
        mirror: Default::default(),
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
            account.into(),
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
        self.assert_definitions_match(account).await;
    }

    /// Assert `custom_fields` and `customer_types` (rows not marked deleted) equal the simulator's
    /// definitions, and that every row marked deleted is gone from the simulator.
    pub async fn assert_definitions_match(&self, account: u64) {
        let a = account as i64;
        let fields: Vec<(i64, String, String, bool)> = sqlx::query_as(
            "SELECT custom_field_id, name, type, archived FROM lightspeed.custom_fields
             WHERE account_id = $1 AND deleted_at IS NULL ORDER BY custom_field_id",
        )
        .bind(a)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let truth: Vec<(i64, String, String, bool)> = self
            .sim
            .truth_custom_fields(account)
            .into_iter()
            .map(|d| (d.id as i64, d.name, d.kind, d.archived))
            .collect();
        assert_eq!(fields, truth, "account {account}: custom_fields differ");
        let types: Vec<(i64, String)> = sqlx::query_as(
            "SELECT customer_type_id, name FROM lightspeed.customer_types
             WHERE account_id = $1 AND deleted_at IS NULL ORDER BY customer_type_id",
        )
        .bind(a)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let truth: Vec<(i64, String)> = self
            .sim
            .truth_customer_types(account)
            .into_iter()
            .map(|t| (t.id as i64, t.name))
            .collect();
        assert_eq!(types, truth, "account {account}: customer_types differ");
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
    pub websites: Vec<String>,
    pub contact_custom: Option<String>,
    pub customer_type_id: Option<i64>,
    pub credit_account_id: Option<i64>,
    pub note: Option<String>,
    pub note_is_public: Option<bool>,
    pub tags: Option<Vec<String>>,
    /// (creditAccountID, balance in cents, limit in cents, timeStamp)
    pub credit: Option<(i64, i64, i64, Option<DateTime<Utc>>)>,
    /// By field ID.
    pub custom_fields: Vec<FieldCmp>,
}

/// A custom field value compared: (customFieldID, name, type, value, choice IDs, timeStamp).
pub type FieldCmp = (
    i64,
    String,
    String,
    Option<String>,
    Vec<i64>,
    Option<DateTime<Utc>>,
);

impl Comparable {
    fn from_truth(c: TruthCustomer) -> Self {
        let some = |s: String| (!s.is_empty()).then_some(s);
        Comparable {
            websites: c.websites,
            contact_custom: some(c.contact_custom),
            customer_type_id: c.customer_type_id.map(|v| v as i64),
            credit_account_id: c.credit_account_id.map(|v| v as i64),
            note: some(c.note),
            note_is_public: Some(c.note_is_public),
            tags: Some(c.tags),
            credit: c
                .credit
                .map(|k| (k.id as i64, k.balance_cents, k.limit_cents, Some(k.updated))),
            custom_fields: c
                .custom_fields
                .into_iter()
                .map(|f| {
                    (
                        f.field_id as i64,
                        f.name,
                        f.kind,
                        some(f.value),
                        f.choice_ids.into_iter().map(|i| i as i64).collect(),
                        Some(f.updated),
                    )
                })
                .collect(),
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
                        websites: vec![],
                        contact_custom: None,
                        customer_type_id: None,
                        credit_account_id: None,
                        note: None,
                        note_is_public: None,
                        tags: None,
                        credit: None,
                        custom_fields: vec![],
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
    type Rel = (
        i64,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<bool>,
        Option<Vec<String>>,
    );
    let rels: Vec<Rel> = sqlx::query_as(
        "SELECT customer_id, contact_custom, customer_type_id, credit_account_id, note,
                note_is_public, tags
         FROM lightspeed.customers WHERE account_id = $1 AND deleted_at IS NULL",
    )
    .bind(a)
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, custom, ctype, credit, note, public, tags) in rels {
        if let Some(c) = out.get_mut(&(id as u64)) {
            (c.contact_custom, c.customer_type_id, c.credit_account_id) = (custom, ctype, credit);
            (c.note, c.note_is_public, c.tags) = (note, public, tags);
        }
    }
    let websites: Vec<(i64, String)> = sqlx::query_as(
        "SELECT customer_id, url FROM lightspeed.customer_websites
         WHERE account_id = $1 ORDER BY customer_id, position",
    )
    .bind(a)
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, url) in websites {
        if let Some(c) = out.get_mut(&(id as u64)) {
            c.websites.push(url);
        }
    }
    type Credit = (i64, i64, Option<i64>, Option<i64>, Option<DateTime<Utc>>);
    let credits: Vec<Credit> = sqlx::query_as(
        "SELECT customer_id, credit_account_id, (balance * 100)::bigint,
                (credit_limit * 100)::bigint, updated_at
         FROM lightspeed.credit_accounts WHERE account_id = $1",
    )
    .bind(a)
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, credit_id, balance, limit, updated) in credits {
        if let Some(c) = out.get_mut(&(id as u64)) {
            c.credit = Some((credit_id, balance.unwrap_or(0), limit.unwrap_or(0), updated));
        }
    }
    type Field = (
        i64,
        i64,
        String,
        String,
        Option<String>,
        Vec<i64>,
        Option<DateTime<Utc>>,
    );
    let fields: Vec<Field> = sqlx::query_as(
        "SELECT customer_id, custom_field_id, name, type, value,
                ARRAY(SELECT (x #>> '{}')::bigint
                      FROM jsonb_path_query(value_json, 'strict $.**.customFieldChoiceID') AS x),
                updated_at
         FROM lightspeed.customer_custom_fields
         WHERE account_id = $1 ORDER BY customer_id, custom_field_id",
    )
    .bind(a)
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, field, name, kind, value, choices, updated) in fields {
        if let Some(c) = out.get_mut(&(id as u64)) {
            c.custom_fields
                .push((field, name, kind, value, choices, updated));
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
