//! [`ApiClient`]: GET requests to the R-Series API with per-account pacing, retries (5xx, timeouts,
//! dropped connections and bodies, `400 … Please try again later.`), 429 handling (`Retry-After`),
//! 401 → refresh once → retry, and the typed page calls the sync engine uses. Pagination is the
//! caller's loop: each [`Page`] carries `next`, followed verbatim. The request loop itself is in
//! `request.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use url::Url;

use super::TokenProvider;
use super::error::ApiError;
use super::guard;
use super::pacing::Pacer;
use super::query::{self, CustomerQuery, CustomerRelation};
use super::retry::Backoff;
use super::wire::{self, Account, AccountDetail, Customer, WireError};
use crate::config::LightspeedSettings;
use crate::model::AccountId;

/// What one call cost: requests sent, 429s, retries and time spent waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP requests sent (including retries).
    pub requests: u32,
    /// 429 responses.
    pub throttled: u32,
    /// Retries after transient failures (5xx, network, cut bodies).
    pub retries: u32,
    /// Access-token refreshes after a 401.
    pub refreshes: u32,
    /// Time spent in the pacer (bucket, burst limit, `Retry-After`).
    pub waited: Duration,
    /// Drips spent, in thousandths: the pacer's computed cost of each request sent
    /// ([`query::request_cost`]: 1 a page plus the relations' surcharges, 10 a count).
    pub drips_milli: u64,
}

impl CallStats {
    /// Add another call's counts to these.
    pub fn add(&mut self, other: &CallStats) {
        self.requests += other.requests;
        self.throttled += other.throttled;
        self.retries += other.retries;
        self.refreshes += other.refreshes;
        self.waited += other.waited;
        self.drips_milli += other.drips_milli;
    }

    /// Drips spent, as a number.
    pub fn drips(&self) -> f64 {
        self.drips_milli as f64 / 1000.0
    }
}

/// One page of a list: the URL fetched, its records, the next page's URL (`None` at the end).
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The URL fetched.
    pub url: Url,
    /// The records, in the order sent.
    pub records: Vec<T>,
    /// `@attributes.next`, verbatim; `None` when it was `""`.
    pub next: Option<Url>,
    /// What fetching it cost.
    pub stats: CallStats,
    /// The page's place among the pages held in memory ([`Gates`]): released when the page (what
    /// is left of it once its records are moved out) is dropped, i.e. after its write.
    pub held: Option<Arc<OwnedSemaphorePermit>>,
}

/// Default HTTP requests in flight at once in a process (`sync.concurrency` sets it).
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 16;
/// Default pages fetched and not yet written at once in a process (sized from the pool).
pub const DEFAULT_PAGES_HELD: usize = 8;

/// What a process shares between all its accounts, bounded: HTTP requests in flight, and pages
/// fetched but not yet written (each needs a pool connection for its write, and memory meanwhile).
/// An account waiting on its own rate-limit bucket holds neither: the request permit is taken only
/// after the pacer lets the request go, and given back when the body is in. Both semaphores are
/// FIFO, so ready accounts are served round robin (one request or page each, in turn).
#[derive(Debug)]
pub struct Gates {
    requests: Arc<Semaphore>,
    pages: Arc<Semaphore>,
    limits: (usize, usize),
}

impl Gates {
    /// At most `requests` requests in flight and `pages` pages held (both at least 1).
    pub fn new(requests: usize, pages: usize) -> Self {
        let (requests, pages) = (requests.max(1), pages.max(1));
        Gates {
            requests: Arc::new(Semaphore::new(requests)),
            pages: Arc::new(Semaphore::new(pages)),
            limits: (requests, pages),
        }
    }

    /// The limits: (requests in flight, pages held).
    pub fn limits(&self) -> (usize, usize) {
        self.limits
    }

    /// Requests in flight and pages held right now.
    pub fn in_use(&self) -> (usize, usize) {
        (
            self.limits.0 - self.requests.available_permits(),
            self.limits.1 - self.pages.available_permits(),
        )
    }

    pub(super) async fn request(&self) -> OwnedSemaphorePermit {
        // The semaphores are never closed.
        self.requests
            .clone()
            .acquire_owned()
            .await
            .expect("request gate closed")
    }

    pub(super) fn try_request(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().try_acquire_owned().ok()
    }

    pub(super) async fn page(&self) -> OwnedSemaphorePermit {
        self.pages
            .clone()
            .acquire_owned()
            .await
            .expect("page gate closed")
    }
}

/// A value fetched with one or more GETs.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The (first) URL fetched.
    pub url: Url,
    /// The value.
    pub value: T,
    /// What fetching it cost.
    pub stats: CallStats,
}

/// The R-Series API client. Cheap to clone; clones share the HTTP pool and the per-account pacers,
/// so use one per process.
#[derive(Clone)]
pub struct ApiClient {
    pub(super) inner: Arc<Inner>,
    pub(super) gates: Arc<Gates>,
    /// `sync.customer_relations` (per clone: an engine may load fewer relations than another).
    customer_relations: Arc<[CustomerRelation]>,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) api_base: Url,
    pub(super) tokens: Arc<dyn TokenProvider>,
    pub(super) max_attempts: u32,
    pub(super) backoff: Backoff,
    pub(super) max_body: usize,
    pub(super) pacers: Mutex<HashMap<AccountId, Arc<Pacer>>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `settings.api_base_url`, with the request timeout and attempts from `settings`.
    pub fn new(
        settings: &LightspeedSettings,
        tokens: Arc<dyn TokenProvider>,
    ) -> Result<ApiClient, reqwest::Error> {
        // reqwest is built with `rustls-no-provider`; main installs ring too, this makes tests work.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("lightspeed-sync/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            // A redirect could carry the bearer token to another host: a 30x is an error.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(ApiClient {
            inner: Arc::new(Inner {
                http,
                api_base: settings.api_base_url.clone(),
                tokens,
                max_attempts: settings.max_attempts.max(1),
                backoff: Backoff::default(),
                max_body: guard::MAX_API_BODY,
                pacers: Mutex::new(HashMap::new()),
            }),
            gates: Arc::new(Gates::new(DEFAULT_REQUESTS_IN_FLIGHT, DEFAULT_PAGES_HELD)),
            customer_relations: CustomerRelation::ALL.into(),
        })
    }

    /// Bound this client (and its clones made from now on) to `requests` HTTP requests in flight
    /// and `pages` pages held at once, over all accounts ([`Gates`]).
    pub fn with_gates(mut self, requests: usize, pages: usize) -> Self {
        self.gates = Arc::new(Gates::new(requests, pages));
        self
    }

    /// The shared bounds.
    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    /// Replace the retry backoff (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.backoff = backoff;
        }
        self
    }

    /// Replace the body size limit (default [`guard::MAX_API_BODY`]).
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_body = bytes;
        }
        self
    }

    /// Set the relations loaded with customers (`sync.customer_relations`; default: all of
    /// [`CustomerRelation::ALL`]).
    pub fn with_customer_relations(mut self, relations: Vec<CustomerRelation>) -> Self {
        self.customer_relations = relations.into();
        self
    }

    /// The relations loaded with customers.
    pub fn customer_relations(&self) -> &[CustomerRelation] {
        &self.customer_relations
    }

    /// GET one page of a list of `T` (`url` is a first-page or `next` URL, used verbatim).
    pub async fn get_records_page<T: wire::Record>(
        &self,
        account_id: AccountId,
        url: &Url,
    ) -> Result<Page<T>, ApiError> {
        let (page, stats, held) = self
            .get_parsed_held(account_id, url, |b| wire::parse_list::<T>(b, url))
            .await?;
        if let Some(e) = self.foreign_next(url, page.next.as_ref()) {
            return Err(e);
        }
        if page.next.as_ref() == Some(url) {
            return Err(ApiError::Malformed {
                url: url.clone(),
                reason: "`next` repeats this page's URL".into(),
            });
        }
        Ok(Page {
            url: url.clone(),
            records: page.records,
            next: page.next,
            stats,
            held: Some(Arc::new(held)),
        })
    }

    /// The API origin this client talks to.
    pub fn api_base(&self) -> &Url {
        &self.inner.api_base
    }

    /// The first-page URL of `Customer.json` for `query`; later pages come from [`Page::next`].
    pub fn customers_url(&self, account_id: AccountId, query: &CustomerQuery) -> Url {
        query::customers_url(&self.inner.api_base, account_id, query)
    }

    /// The pacer shared by every request to `account_id`.
    pub fn pacer(&self, account_id: AccountId) -> Arc<Pacer> {
        let mut pacers = self.inner.pacers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(pacers.entry(account_id).or_default())
    }

    /// Seconds one request costs `account_id`'s bucket (request cost / drip rate), when this
    /// process has seen its bucket; does not create a pacer.
    pub fn known_pace(&self, account_id: AccountId) -> Option<f64> {
        let pacers = self.inner.pacers.lock().unwrap_or_else(|p| p.into_inner());
        let pacer = pacers.get(&account_id)?;
        let bucket = pacer.bucket()?;
        Some(pacer.cost() / bucket.drip.max(0.01))
    }

    /// GET one page of customers (`url` is a first-page URL or a `next` URL, used verbatim).
    pub async fn get_customers_page(
        &self,
        account_id: AccountId,
        url: &Url,
    ) -> Result<Page<Customer>, ApiError> {
        self.get_records_page(account_id, url).await
    }

    /// GET `Account.json` (following `next` if there is one): the accounts this token sees.
    pub async fn get_accounts(
        &self,
        account_id: AccountId,
    ) -> Result<Fetched<Vec<Account>>, ApiError> {
        let first = query::accounts_url(&self.inner.api_base);
        let (mut accounts, mut stats, mut url) = (Vec::new(), CallStats::default(), first.clone());
        loop {
            let (page, s) = self
                .get_parsed(account_id, &url, |b| wire::parse_list::<Account>(b, &url))
                .await?;
            stats.add(&s);
            if let Some(e) = self.foreign_next(&url, page.next.as_ref()) {
                return Err(e);
            }
            accounts.extend(page.records);
            match page.next {
                Some(next) if next != url => url = next,
                _ => break,
            }
        }
        Ok(Fetched {
            url: first,
            value: accounts,
            stats,
        })
    }

    /// A `next` is followed only on the API's own origin (scheme, host and port).
    fn foreign_next(&self, url: &Url, next: Option<&Url>) -> Option<ApiError> {
        let next = next.filter(|n| !guard::same_origin(n, &self.inner.api_base))?;
        Some(ApiError::ForeignOrigin {
            url: url.clone(),
            origin: guard::origin(next).into(),
            expected: guard::origin(&self.inner.api_base).into(),
        })
    }

    /// GET `Account/{id}.json`.
    pub async fn get_account_detail(
        &self,
        account_id: AccountId,
    ) -> Result<Fetched<AccountDetail>, ApiError> {
        let url = query::account_url(&self.inner.api_base, account_id);
        let (value, stats) = self
            .get_parsed(account_id, &url, AccountDetail::parse)
            .await?;
        Ok(Fetched { url, value, stats })
    }

    /// GET `url` and parse the body with `parse`, with pacing, retries and 401 handling. A body cut
    /// short (JSON ends early) is retried like a dropped connection.
    pub async fn get_parsed<T>(
        &self,
        account_id: AccountId,
        url: &Url,
        parse: impl Fn(&[u8]) -> Result<T, WireError>,
    ) -> Result<(T, CallStats), ApiError> {
        let (value, stats, _held) = self.get_parsed_held(account_id, url, parse).await?;
        Ok((value, stats))
    }

    /// As [`ApiClient::get_parsed`], also returning the value's page permit ([`Gates`]).
    async fn get_parsed_held<T>(
        &self,
        account_id: AccountId,
        url: &Url,
        parse: impl Fn(&[u8]) -> Result<T, WireError>,
    ) -> Result<(T, CallStats, OwnedSemaphorePermit), ApiError> {
        let span = tracing::debug_span!(
            "lightspeed.get",
            account.id = account_id.get(),
            url.path = url.path()
        );
        // Pace this request at its own computed cost (its relations), not only at the last
        // response's `X-LS-API-Request-Cost`, so a page dearer than the request before it does not
        // overshoot the bucket; the response's header then confirms or corrects it.
        self.pacer(account_id).expect_cost(query::request_cost(url));
        async {
            let mut stats = CallStats::default();
            let mut transient_failures = 0;
            loop {
                let (body, unframed, held) = self
                    .get_bytes(account_id, url, &mut stats, &mut transient_failures)
                    .await?;
                match parse(&body) {
                    Ok(value) => return Ok((value, stats, held)),
                    // A body delimited only by the connection closing may have been cut without
                    // the transport noticing: JSON that ends early is then a transient failure.
                    Err(e)
                        if e.truncated
                            && unframed
                            && transient_failures + 1 < self.inner.max_attempts =>
                    {
                        transient_failures += 1;
                        self.back_off(transient_failures, None, &mut stats, "body cut short")
                            .await;
                    }
                    // Otherwise a body that does not parse (even one that ends early although its
                    // length said it was whole) is a malformed page: the run fails with the URL
                    // and the reason, and the next run asks again.
                    Err(e) => {
                        return Err(ApiError::Malformed {
                            url: url.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}
