//! The R-Series API simulator: OAuth (authorize, token, revoke), `Account` and `Customer`
//! endpoints with every wire quirk of the fact sheet, cursor pagination that can skip timestamp
//! ties, the 2026 rate limits, faults and background mutations.
//!
//! It is stand-alone: it shares no types or JSON code with `crate::lightspeed`, so a
//! misreading of the wire format cannot hide in both. Tests, `demo` and benchmarks start one
//! with [`Simulator::start`] and drive it over HTTP plus the test hooks on [`Simulator`].
//! `docs/simulator.md` lists what it models and the choices made where the fact sheet is unsure.

mod api;
mod args;
mod codes;
mod data;
mod faults;
mod grants;
mod hooks;
mod json;
mod mutations;
mod names;
mod oauth;
mod page;
mod query;
mod ratelimit;
mod respond;
mod server;
mod store;
mod tokens;
mod xml;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use args::{SimArgs, serve};
pub use faults::Fault;
pub use hooks::{
    BucketState, Counters, TruthAddress, TruthCredit, TruthCustomField, TruthCustomer,
    TruthFieldDef, TruthType,
};
pub use mutations::{Changed, Mutation, Relation};

/// How refresh tokens rotate (§1.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RotationMode {
    /// Since 2026-01-15: a refresh returns a new pair; the used refresh token dies when an access
    /// token issued from it is first used, together with every sibling pair issued from it.
    #[default]
    Deferred,
    /// The used refresh token dies at once (with the access tokens issued alongside it).
    Strict,
    /// No rotation: a refresh returns a new access token and the same refresh token.
    None,
}

/// How a cursor on a non-unique sort key resumes (§3.1, undocumented upstream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TieBreak {
    /// Worst case: the cursor is `[value]` and resumes strictly after it, skipping the
    /// records that share the boundary value but did not fit on the page.
    #[default]
    Skip,
    /// The cursor is `[value, customerID]`; nothing is skipped.
    ById,
}

/// Everything a simulator can be told.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to bind (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Origin used in `next`/`previous` URLs instead of the request's Host (e.g. behind a proxy).
    pub public_base_url: Option<String>,
    /// Seed of the generated data.
    pub seed: u64,
    /// Number of accounts.
    pub accounts: usize,
    /// Customers generated per account.
    pub customers: usize,
    /// Leaky-bucket size in drips (default 90).
    pub bucket_size: f64,
    /// Leaky-bucket drip rate per second (default 1).
    pub drip_rate: f64,
    /// Requests per one-second window (default 20; 0 turns the burst limiter off).
    pub burst_limit: u32,
    /// Rate limits on (default); off for throughput benchmarks (headers then show level 0).
    pub rate_limits: bool,
    /// Access-token lifetime (default 3600 s; `expires_in` reflects it).
    pub token_lifetime: Duration,
    /// Refresh-token rotation.
    pub rotation: RotationMode,
    /// Cursor tie breaking.
    pub tie_break: TieBreak,
    /// Fraction of API requests that fail at random (5xx HTML, dropped connection, slow).
    pub fault_rate: f64,
    /// Delay of a "slow" fault.
    pub slow: Duration,
    /// Background mutations per second over all accounts (0 = none).
    pub mutations_per_sec: f64,
    /// This many customers of each account share exactly one `timeStamp`.
    pub shared_timestamp: usize,
    /// Serve `Account/{id}.json` as `{"@attributes":…,"Account":{…}}` instead of the documented bare
    /// shape (fields at the top level, no `accountID`: the vendor's documentation sample).
    pub wrapped_account_detail: bool,
    /// Whether an edit of a customer's relations (a custom field value, the note, the credit
    /// balance, the tags) moves `Customer.timeStamp` too (unverified upstream: fact sheet §14).
    /// Default false, the case incremental runs cannot see; changeable at run time.
    pub relation_edits_bump_timestamp: bool,
    /// OAuth client ID.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// The registered redirect URI (the authorize step redirects there).
    pub redirect_uri: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_base_url: None,
            seed: 42,
            accounts: 1,
            customers: 250,
            bucket_size: 90.0,
            drip_rate: 1.0,
            burst_limit: 20,
            rate_limits: true,
            token_lifetime: Duration::from_secs(3600),
            rotation: RotationMode::Deferred,
            tie_break: TieBreak::Skip,
            fault_rate: 0.0,
            slow: Duration::from_millis(2_000),
            mutations_per_sec: 0.0,
            shared_timestamp: 0,
            wrapped_account_detail: false,
            relation_edits_bump_timestamp: false,
            client_id: "sim-client-id".into(),
            client_secret: "sim-client-secret".into(),
            redirect_uri: "https://localhost:8443/callback".into(),
        }
    }
}

/// A token pair as the token endpoint returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPair {
    /// The JWT-shaped access token.
    pub access_token: String,
    /// The `def50…` refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Wall time that follows tokio's (possibly paused) clock, so paused tests stay consistent.
pub(crate) struct Clock {
    wall0: i64,
    inst0: Instant,
}

impl Clock {
    /// Unix seconds now.
    pub(crate) fn wall(&self) -> i64 {
        self.wall0 + self.inst0.elapsed().as_secs() as i64
    }
}

/// State shared by the HTTP handlers, the mutation task and the hooks.
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub clock: Clock,
    pub account_ids: Vec<u64>,
    pub data: HashMap<u64, RwLock<store::AccountData>>,
    pub grants: Mutex<grants::Grants>,
    pub limits: Mutex<ratelimit::Limits>,
    pub faults: Mutex<faults::Faults>,
    pub counters: Mutex<Counters>,
    pub rng: Mutex<SmallRng>,
    pub paused: AtomicBool,
    /// See [`SimConfig::relation_edits_bump_timestamp`].
    pub relation_bump: AtomicBool,
    pub next_authorize: AtomicUsize,
    pub local: SocketAddr,
}

/// A running simulator. Dropping it without [`Simulator::shutdown`] leaves the server running
/// until the runtime ends.
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulator {
    /// Generate the data, bind `cfg.listen` and serve.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Simulator> {
        anyhow::ensure!(cfg.accounts > 0, "the simulator needs at least one account");
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        let local = listener.local_addr()?;
        let account_ids = data::account_ids(cfg.seed, cfg.accounts);
        let mut accounts = HashMap::new();
        for (i, id) in account_ids.iter().enumerate() {
            let mut rng = data::account_rng(cfg.seed, i);
            let customers = data::generate(&mut rng, cfg.customers, cfg.shared_timestamp);
            let name = format!("Simulated Shop {} ({id})", i + 1);
            accounts.insert(*id, RwLock::new(store::AccountData::new(name, customers)));
        }
        let wall0 = chrono::Utc::now().timestamp();
        let shared = Arc::new(Shared {
            clock: Clock {
                wall0,
                inst0: Instant::now(),
            },
            account_ids,
            data: accounts,
            grants: Mutex::new(grants::Grants::new(
                cfg.rotation,
                cfg.token_lifetime,
                cfg.client_id.clone(),
            )),
            limits: Mutex::new(ratelimit::Limits::new(
                cfg.rate_limits,
                cfg.bucket_size,
                cfg.drip_rate,
                cfg.burst_limit,
            )),
            faults: Mutex::new(faults::Faults::new(cfg.fault_rate, cfg.slow, cfg.seed)),
            counters: Mutex::new(Counters {
                by_status: BTreeMap::new(),
                ..Counters::default()
            }),
            rng: Mutex::new(SmallRng::seed_from_u64(cfg.seed ^ 0x5EED)),
            paused: AtomicBool::new(false),
            relation_bump: AtomicBool::new(cfg.relation_edits_bump_timestamp),
            next_authorize: AtomicUsize::new(0),
            local,
            cfg,
        });
        let cancel = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(server::run(
            listener,
            server::router(shared.clone()),
            cancel.clone(),
        ))];
        if shared.cfg.mutations_per_sec > 0.0 {
            let (s, c, rate) = (shared.clone(), cancel.clone(), shared.cfg.mutations_per_sec);
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = mutations::run(s, rate) => {}
                    _ = c.cancelled() => {}
                }
            }));
        }
        tracing::info!(sim.addr = %local, "simulator listening");
        Ok(Simulator {
            shared,
            cancel,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`: serves both `/API/V3/...` and `/auth/oauth/...`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.local)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The OAuth client ID.
    pub fn client_id(&self) -> &str {
        &self.shared.cfg.client_id
    }

    /// The OAuth client secret.
    pub fn client_secret(&self) -> &str {
        &self.shared.cfg.client_secret
    }

    /// The registered redirect URI.
    pub fn redirect_uri(&self) -> &str {
        &self.shared.cfg.redirect_uri
    }

    /// The account IDs, in creation order.
    pub fn account_ids(&self) -> Vec<u64> {
        self.shared.account_ids.clone()
    }

    /// Stop serving and end the background tasks.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
