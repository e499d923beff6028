//! The request loop behind [`ApiClient`]: one GET until it yields a 2xx body or a final error.
//! Pacing before each send, 429 → wait and retry (not counted as an attempt, at most
//! [`MAX_THROTTLED_IN_A_ROW`] in a row; a bare 429 without `Retry-After` or rate-limit headers backs
//! off exponentially, at most `max_attempts` in a row), 401 → `token_rejected` once → retry,
//! transient failures (5xx, `400 … Please try again later.`, timeouts, connection errors, cut
//! bodies) → capped exponential backoff with full jitter up to `max_attempts`. Tokens are exposed only to build the
//! `Authorization` header, which reqwest marks sensitive, and only for URLs on the API's origin;
//! redirects are not followed and bodies are capped (`guard`).

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OwnedSemaphorePermit;
use url::Url;

use super::AuthFailure;
use super::api::{ApiClient, CallStats};
use super::error::{ApiError, excerpt};
use super::guard::{self, BodyError};
use super::pacing::Slot;
use super::retry::{self, Verdict};
use crate::error::report;

use crate::model::AccountId;

/// 429s in a row after which a call gives up.
pub const MAX_THROTTLED_IN_A_ROW: u32 = 20;

/// Why a request got no complete response.
enum SendError {
    /// Worth retrying: timeout, connection error, cut body.
    Transient(reqwest::Error),
    /// The request could not even be built (a token that is not a valid header value).
    Invalid(String),
    /// Not retried: a redirect, a body over the limit.
    Final(ApiError),
}

impl ApiClient {
    /// One successful (2xx) body, after as many tries as allowed.
    pub(super) async fn get_bytes(
        &self,
        account_id: AccountId,
        url: &Url,
        stats: &mut CallStats,
        failures: &mut u32,
    ) -> Result<(Bytes, bool, OwnedSemaphorePermit), ApiError> {
        let auth_err = |source: AuthFailure| ApiError::Auth {
            url: url.clone(),
            source,
        };
        if !guard::same_origin(url, &self.inner.api_base) {
            return Err(ApiError::ForeignOrigin {
                url: url.clone(),
                origin: guard::origin(url).into(),
                expected: guard::origin(&self.inner.api_base).into(),
            });
        }
        let pacer = self.pacer(account_id);
        let mut token = self
            .inner
            .tokens
            .access_token(account_id)
            .await
            .map_err(auth_err)?;
        let mut refreshed = false;
        let mut throttled_in_a_row = 0;
        let mut bare_in_a_row = 0;
        loop {
            // The bucket first (the account waits on its own), then a request permit (shared).
            let mut slot = pacer.acquire().await;
            let request = match self.gates.try_request() {
                Some(permit) => permit,
                None => {
                    // Wait for the permit without keeping the bucket's reservation, then ask the
                    // bucket again, so the send time it records is the real one.
                    let waited = slot.waited();
                    drop(slot);
                    let permit = self.gates.request().await;
                    slot = pacer.acquire().await;
                    record_wait(stats, waited);
                    permit
                }
            };
            record_wait(stats, slot.waited());
            stats.requests += 1;
            stats.drips_milli += (super::query::request_cost(url) * 1000.0).round() as u64;
            let sent = self.send(url, &token, slot).await;
            // A whole 2xx body is a page to hold until it is written: take its place before
            // giving the request permit back (back-pressure when the writers fall behind).
            let held = match &sent {
                Ok((status, _, _)) if status.is_success() => Some(self.gates.page().await),
                _ => None,
            };
            drop(request);
            let (status, headers, body) = match sent {
                Ok(response) => response,
                Err(SendError::Invalid(reason)) => {
                    return Err(auth_err(AuthFailure {
                        account_id,
                        needs_reauth: false,
                        message: reason,
                        source: None,
                    }));
                }
                Err(SendError::Final(e)) => return Err(e),
                Err(SendError::Transient(e)) => {
                    metrics::counter!("lightspeed_api_requests_total", "status" => "error")
                        .increment(1);
                    let reason = if e.is_timeout() {
                        "timed out"
                    } else {
                        "request failed"
                    };
                    // The caller names the URL.
                    let e = e.without_url();
                    self.transient(url, failures, None, stats, reason.into(), Some(e))
                        .await?;
                    continue;
                }
            };
            metrics::counter!("lightspeed_api_requests_total", "status" => status.as_str().to_owned()).increment(1);
            let verdict = retry::classify(status, &body);
            if verdict != Verdict::Throttled {
                throttled_in_a_row = 0;
                bare_in_a_row = 0;
            }
            match verdict {
                Verdict::Success => {
                    // Without a length or chunking, only the connection's close ended the body.
                    let framed = headers.contains_key(reqwest::header::CONTENT_LENGTH)
                        || headers.contains_key(reqwest::header::TRANSFER_ENCODING);
                    let held = match held {
                        Some(held) => held,
                        None => self.gates.page().await,
                    };
                    return Ok((body, !framed, held));
                }
                Verdict::Unauthorized if !refreshed => {
                    tracing::debug!(
                        account.id = account_id.get(),
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
                    let mut wait = retry::retry_after(&headers);
                    // A 429 that says nothing (no Retry-After, no bucket or limiter headers, as
                    // recorded from the old API) gets the capped exponential backoff with jitter,
                    // and at most `max_attempts` of them in a row.
                    let bare = wait.is_none()
                        && !headers.contains_key("x-ls-api-bucket-level")
                        && !headers.contains_key("x-ls-api-ratelimit-type");
                    if bare {
                        bare_in_a_row += 1;
                        if bare_in_a_row >= self.inner.max_attempts {
                            return Err(ApiError::Throttled {
                                url: url.clone(),
                                count: throttled_in_a_row,
                            });
                        }
                        wait = Some(self.inner.backoff.delay(bare_in_a_row));
                    }
                    metrics::counter!("lightspeed_api_throttled_total", "type" => kind.clone())
                        .increment(1);
                    tracing::debug!(account.id = account_id.get(), throttle.kind = %kind, retry_after = ?wait, bare, "429");
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
                    let retry_after = retry::retry_after(&headers);
                    self.transient(url, failures, retry_after, stats, reason, None)
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
        slot: Slot<'_>,
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
            .map_err(SendError::Transient)?;
        let (status, headers) = (response.status(), response.headers().clone());
        slot.finish(&headers);
        if status.is_redirection() {
            return Err(SendError::Final(ApiError::Redirect {
                url: url.clone(),
                status: status.as_u16(),
                location: guard::location_origin(url, &headers),
            }));
        }
        tracing::debug!(
            http.status = status.as_u16(),
            bucket = headers
                .get("x-ls-api-bucket-level")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "response"
        );
        let limit = self.inner.max_body;
        let body = guard::read_capped(response, limit)
            .await
            .map_err(|e| match e {
                BodyError::Transport(e) => SendError::Transient(e),
                BodyError::TooLarge => SendError::Final(ApiError::TooLarge {
                    url: url.clone(),
                    limit: guard::human_size(limit),
                }),
            })?;
        Ok((status, headers, body))
    }

    /// Count a transient failure (`reason`, caused by `source` if the transport failed); give up
    /// when attempts are spent, else back off.
    async fn transient(
        &self,
        url: &Url,
        failures: &mut u32,
        retry_after: Option<Duration>,
        stats: &mut CallStats,
        reason: String,
        source: Option<reqwest::Error>,
    ) -> Result<(), ApiError> {
        *failures += 1;
        if *failures >= self.inner.max_attempts {
            return Err(ApiError::Unavailable {
                url: url.clone(),
                attempts: *failures,
                reason,
                source,
            });
        }
        let reason = match &source {
            Some(e) => format!("{reason}: {}", report(e)),
            None => reason,
        };
        self.back_off(*failures, retry_after, stats, &reason).await;
        Ok(())
    }

    pub(super) async fn back_off(
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
