//! [`ApiError`]: why a GET failed, always naming the URL (URLs carry no secrets; tokens never appear).

use url::Url;

use super::AuthFailure;

/// Why a call to the API failed. Every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The token source could not give a token (see [`AuthFailure::needs_reauth`]).
    #[error("GET {url}: no usable access token")]
    Auth {
        /// The URL.
        url: Url,
        /// What the token source said.
        #[source]
        source: AuthFailure,
    },
    /// 401 again after one refresh.
    #[error("GET {url}: 401 Unauthorized, also after refreshing the access token")]
    Unauthorized {
        /// The URL.
        url: Url,
    },
    /// Too many 429s in a row.
    #[error("GET {url}: still rate limited (429) after {count} throttled attempts in a row")]
    Throttled {
        /// The URL.
        url: Url,
        /// 429s in a row.
        count: u32,
    },
    /// A status that is not retried (4xx other than 401/429).
    #[error("GET {url}: HTTP {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The URL.
        url: Url,
        /// The start of the body.
        body: String,
    },
    /// Transient failures (5xx, timeouts, connection errors, cut bodies) until attempts ran out.
    #[error("GET {url}: gave up after {attempts} attempts: {reason}")]
    Unavailable {
        /// The URL.
        url: Url,
        /// Attempts made.
        attempts: u32,
        /// The last failure (`HTTP 503: …`, `timed out`, `request failed`).
        reason: String,
        /// The transport's error behind it, if the last failure was one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// A URL (a page's `next`, or one asked for) is not on `lightspeed.api_base_url`'s origin: the
    /// access token is not sent there.
    #[error(
        "GET {url}: refusing to send the access token to {origin}: only {expected} \
         (lightspeed.api_base_url) is trusted with it"
    )]
    ForeignOrigin {
        /// The page whose `next` pointed elsewhere (or the URL refused).
        url: Url,
        /// The unexpected origin, `scheme://host:port`.
        origin: Box<str>,
        /// The API origin.
        expected: Box<str>,
    },
    /// A 30x: redirects are not followed (they could carry the token or client secret elsewhere).
    #[error("GET {url}: HTTP {status} redirect to {location}: redirects are not followed")]
    Redirect {
        /// The URL.
        url: Url,
        /// The HTTP status.
        status: u16,
        /// The `Location`'s origin only.
        location: String,
    },
    /// The body grew past the limit.
    #[error("GET {url}: the response body is larger than the limit of {limit}")]
    TooLarge {
        /// The URL.
        url: Url,
        /// The limit, human-readable.
        limit: String,
    },
    /// The body is not valid JSON or a record has wrong types (the reason names field and position).
    #[error("GET {url}: malformed response: {reason}")]
    Malformed {
        /// The URL.
        url: Url,
        /// What is wrong.
        reason: String,
    },
}

impl ApiError {
    /// The URL the failed call was for.
    pub fn url(&self) -> &Url {
        match self {
            ApiError::Auth { url, .. }
            | ApiError::Unauthorized { url }
            | ApiError::Throttled { url, .. }
            | ApiError::Status { url, .. }
            | ApiError::Unavailable { url, .. }
            | ApiError::Malformed { url, .. }
            | ApiError::ForeignOrigin { url, .. }
            | ApiError::Redirect { url, .. }
            | ApiError::TooLarge { url, .. } => url,
        }
    }

    /// A person must run `authorize` again for this account.
    pub fn needs_reauth(&self) -> bool {
        matches!(self, ApiError::Auth { source, .. } if source.needs_reauth)
    }

    /// The next run may well succeed (the API was down, slow or throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::Throttled { .. }
        ) || matches!(self, ApiError::Auth { source, .. } if !source.needs_reauth)
    }
}

/// The first `max` characters of a body, lossily decoded, on one line.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max * 4)]);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
