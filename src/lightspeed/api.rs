//! [`ApiClient`]: GET requests to the R-Series API with per-account pacing, retries (5xx, timeouts,
//! dropped connections and bodies, `400 … Please try again later.`), 429 handling (`Retry-After`),
//! 401 → refresh once → retry, and the typed page calls the sync engine uses. Pagination is the
//! caller's loop: each [`Page`] carries `next`, followed verbatim.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;
use url::Url;

use super::error::{ApiError, excerpt};
use super::pacing::Pacer;
use super::query::{self, CustomerQuery};
use super::retry::{self, Backoff, Verdict};
use super::wire::{self, Account, AccountDetail, Customer, WireError};
use super::{AuthFailure, TokenProvider};
use crate::config::LightspeedSettings;

/// 429s in a row after which a call gives up.
pub const MAX_THROTTLED_IN_A_ROW: u32 = 20;

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
    /// Time spent in backoff before retries.
    pub backoff: Duration,
}

impl CallStats {
    /// Add another call's counts to these.
    pub fn add(&mut self, other: &CallStats) {
        self.requests += other.requests;
        self.throttled += other.throttled;
        self.retries += other.retries;
        self.refreshes += other.refreshes;
        self.waited += other.waited;
        self.backoff += other.backoff;
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
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_base: Url,
    tokens: Arc<dyn TokenProvider>,
    max_attempts: u32,
    backoff: Backoff,
    pacers: Mutex<HashMap<u64, Arc<Pacer>>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("api_base", &self.inner.api_base.as_str())
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Why a request got no complete response.
enum SendError {
    /// Worth retrying: timeout, connection error, cut body.
    Transient(String),
    /// The request could not even be built (a token that is not a valid header value).
    Invalid(String),
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
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(ApiClient {
            inner: Arc::new(Inner {
                http,
                api_base: settings.api_base_url.clone(),
                tokens,
                max_attempts: settings.max_attempts.max(1),
                backoff: Backoff::default(),
                pacers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Replace the retry backoff (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.backoff = backoff;
        }
        self
    }

    /// The API origin this client talks to.
    pub fn api_base(&self) -> &Url {
        &self.inner.api_base
    }

    /// The first-page URL of `Customer.json` for `query`; later pages come from [`Page::next`].
    pub fn customers_url(&self, account_id: u64, query: &CustomerQuery) -> Url {
        query::customers_url(&self.inner.api_base, account_id, query)
    }

    /// The pacer shared by every request to `account_id`.
    pub fn pacer(&self, account_id: u64) -> Arc<Pacer> {
        let mut pacers = self.inner.pacers.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(pacers.entry(account_id).or_default())
    }

    /// GET one page of customers (`url` is a first-page URL or a `next` URL, used verbatim).
    pub async fn get_customers_page(
        &self,
        account_id: u64,
        url: &Url,
    ) -> Result<Page<Customer>, ApiError> {
        let (page, stats) = self
            .get_parsed(account_id, url, |b| wire::parse_list::<Customer>(b, url))
            .await?;
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
        })
    }

    /// GET `Account.json` (following `next` if there is one): the accounts this token sees.
    pub async fn get_accounts(&self, account_id: u64) -> Result<Fetched<Vec<Account>>, ApiError> {
        let first = query::accounts_url(&self.inner.api_base);
        let (mut accounts, mut stats, mut url) = (Vec::new(), CallStats::default(), first.clone());
        loop {
            let (page, s) = self
                .get_parsed(account_id, &url, |b| wire::parse_list::<Account>(b, &url))
                .await?;
            stats.add(&s);
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

    /// GET `Account/{id}.json`.
    pub async fn get_account_detail(
        &self,
        account_id: u64,
    ) -> Result<Fetched<AccountDetail>, ApiError> {
        let url = query::account_url(&self.inner.api_base, account_id);
        let (value, stats) = self
            .get_parsed(account_id, &url, wire::parse_single::<AccountDetail>)
            .await?;
        Ok(Fetched { url, value, stats })
    }

    /// GET `url` and parse the body with `parse`, with pacing, retries and 401 handling. A body cut
    /// short (JSON ends early) is retried like a dropped connection.
    pub async fn get_parsed<T>(
        &self,
        account_id: u64,
        url: &Url,
        parse: impl Fn(&[u8]) -> Result<T, WireError>,
    ) -> Result<(T, CallStats), ApiError> {
        let span = tracing::debug_span!(
            "lightspeed.get",
            account.id = account_id,
            url.path = url.path()
        );
        async {
            let mut stats = CallStats::default();
            let mut transient_failures = 0;
            loop {
                let (body, unframed) = self
                    .get_bytes(account_id, url, &mut stats, &mut transient_failures)
                    .await?;
                match parse(&body) {
                    Ok(value) => return Ok((value, stats)),
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

    /// One successful (2xx) body, after as many tries as allowed, and whether it was delimited only
    /// by the connection closing (no `Content-Length`, not chunked).
    async fn get_bytes(
        &self,
        account_id: u64,
        url: &Url,
        stats: &mut CallStats,
        failures: &mut u32,
    ) -> Result<(Bytes, bool), ApiError> {
        let auth_err = |source: AuthFailure| ApiError::Auth {
            url: url.clone(),
            source,
        };
        let pacer = self.pacer(account_id);
        let mut token = self
            .inner
            .tokens
            .access_token(account_id)
            .await
            .map_err(auth_err)?;
        let mut refreshed = false;
        let mut throttled_in_a_row = 0;
        loop {
            let slot = pacer.acquire().await;
            record_wait(stats, slot.waited());
            stats.requests += 1;
            let (status, headers, body) = match self.send(url, &token, slot).await {
                Ok(response) => response,
                Err(SendError::Invalid(reason)) => {
                    return Err(auth_err(AuthFailure {
                        account_id,
                        needs_reauth: false,
                        message: reason,
                    }));
                }
                Err(SendError::Transient(reason)) => {
                    metrics::counter!("lightspeed_api_requests_total", "status" => "error")
                        .increment(1);
                    self.transient(url, failures, None, stats, reason).await?;
                    continue;
                }
            };
            metrics::counter!("lightspeed_api_requests_total", "status" => status.as_str().to_owned()).increment(1);
            let verdict = retry::classify(status, &body);
            if verdict != Verdict::Throttled {
                throttled_in_a_row = 0;
            }
            match verdict {
                Verdict::Success => {
                    let framed = headers.contains_key(reqwest::header::CONTENT_LENGTH)
                        || headers.contains_key(reqwest::header::TRANSFER_ENCODING);
                    return Ok((body, !framed));
                }
                Verdict::Unauthorized if !refreshed => {
                    tracing::debug!(
                        account.id = account_id,
                        "401: refreshing the access token once"
                    );
                    token = self
                        .inner
                        .tokens
                        .token_rejected(account_id, &token)
                        .await
                        .map_err(auth_err)?;
                    refreshed = true;
                    stats.refreshes += 1;
                }
                Verdict::Unauthorized => return Err(ApiError::Unauthorized { url: url.clone() }),
                Verdict::Throttled => {
                    stats.throttled += 1;
                    throttled_in_a_row += 1;
                    let kind = retry::rate_limit_type(&headers).unwrap_or_else(|| "unknown".into());
                    let burst = kind.contains("burst") || excerpt(&body, 500).contains("burst");
                    let wait = retry::retry_after(&headers);
                    metrics::counter!("lightspeed_api_throttled_total", "type" => kind.clone())
                        .increment(1);
                    tracing::debug!(account.id = account_id, throttle.kind = %kind, retry_after = ?wait, "429");
                    if throttled_in_a_row >= MAX_THROTTLED_IN_A_ROW {
                        return Err(ApiError::Throttled {
                            url: url.clone(),
                            count: throttled_in_a_row,
                        });
                    }
                    pacer.throttled(burst, wait);
                }
                Verdict::Transient => {
                    let reason = format!("HTTP {status}: {}", excerpt(&body, 200));
                    self.transient(url, failures, retry::retry_after(&headers), stats, reason)
                        .await?;
                }
                Verdict::Fatal => {
                    return Err(ApiError::Status {
                        status: status.as_u16(),
                        url: url.clone(),
                        body: excerpt(&body, 300),
                    });
                }
            }
        }
    }

    /// Send one GET; the pacer learns from the headers as soon as they arrive.
    async fn send(
        &self,
        url: &Url,
        token: &SecretString,
        slot: super::pacing::Slot<'_>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), SendError> {
        let request = self
            .inner
            .http
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .build()
            .map_err(|_| {
                SendError::Invalid("the access token is not a valid HTTP header value".into())
            })?;
        let response = self
            .inner
            .http
            .execute(request)
            .await
            .map_err(|e| SendError::Transient(describe(&e)))?;
        let (status, headers) = (response.status(), response.headers().clone());
        slot.finish(&headers);
        tracing::debug!(
            http.status = status.as_u16(),
            bucket = headers
                .get("x-ls-api-bucket-level")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "response"
        );
        let body = response
            .bytes()
            .await
            .map_err(|e| SendError::Transient(describe(&e)))?;
        Ok((status, headers, body))
    }

    /// Count a transient failure; give up when attempts are spent, else back off.
    async fn transient(
        &self,
        url: &Url,
        failures: &mut u32,
        retry_after: Option<Duration>,
        stats: &mut CallStats,
        reason: String,
    ) -> Result<(), ApiError> {
        *failures += 1;
        if *failures >= self.inner.max_attempts {
            return Err(ApiError::Unavailable {
                url: url.clone(),
                attempts: *failures,
                reason,
            });
        }
        self.back_off(*failures, retry_after, stats, &reason).await;
        Ok(())
    }

    async fn back_off(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        stats: &mut CallStats,
        reason: &str,
    ) {
        let backoff = self.inner.backoff;
        let delay = retry_after.map_or_else(|| backoff.delay(failures), |d| d.min(backoff.cap));
        tracing::debug!(attempt = failures, delay = ?delay, reason, "transient failure; retrying");
        metrics::counter!("lightspeed_api_retries_total").increment(1);
        stats.retries += 1;
        stats.backoff += delay;
        tokio::time::sleep(delay).await;
    }
}

fn record_wait(stats: &mut CallStats, waited: Duration) {
    if !waited.is_zero() {
        stats.waited += waited;
        metrics::gauge!("lightspeed_api_rate_limit_wait_seconds_total")
            .increment(waited.as_secs_f64());
    }
}

/// A reqwest error as text: its kind and cause chain, without the URL (the caller names it).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
