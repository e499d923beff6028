//! The OAuth 2 endpoints of Lightspeed's auth server: the authorization URL (with `state` and PKCE
//! S256), the token endpoint (code exchange and refresh, form-encoded, client credentials in the body,
//! no `scope` on refresh), revocation, and the one "who am I" call `authorize` needs when a token
//! carries no `acct` claim. Failures are classified ([`OAuthError`]) so the token store can tell a
//! dead grant from a network blip. Tokens are [`SecretString`] throughout; no error, log line or
//! `Debug` output contains a token, a code or the client secret.
//!
//! This module knows nothing of Postgres; storing and single-flight refreshing live in `crate::tokens`.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeZone, Utc};
use rand::RngCore;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::guard::{self, BodyError};
use super::{retry, wire};
use crate::config::{ConfigError, LightspeedSettings};
use crate::model::AccountId;

/// Path of the authorization endpoint, below `lightspeed.auth_base_url`.
pub const AUTHORIZE_PATH: &str = "/auth/oauth/authorize";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/auth/oauth/token";
/// Path of the revocation endpoint.
pub const REVOKE_PATH: &str = "/auth/oauth/revoke";

/// Longest server-provided description kept in an error.
const MAX_DESCRIPTION: usize = 300;

/// A client of the auth server for one registered OAuth client.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    auth_base: Url,
    client_id: String,
    client_secret: SecretString,
    scope: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("auth_base", &self.auth_base.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Everything the caller must keep between printing the URL and exchanging the code.
pub struct AuthorizationRequest {
    /// The URL to open in a browser.
    pub url: Url,
    /// The random `state`, to compare with the one on the redirect.
    pub state: String,
    /// The PKCE code verifier, sent with the code exchange.
    pub verifier: SecretString,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// A successful answer of the token endpoint.
#[derive(Debug)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: SecretString,
    /// The new refresh token; `None` only from the legacy server, which did not rotate.
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires, as sent.
    pub expires_in: Option<u64>,
    /// Usually "Bearer".
    pub token_type: String,
    /// The claims read from the access token (unverified).
    pub claims: AccessClaims,
}

impl TokenResponse {
    /// When the access token expires: `expires_in` from `now`, else the JWT `exp`, else 30 minutes.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if let Some(secs) = self.expires_in {
            return now + chrono::Duration::seconds(secs.min(i64::MAX as u64 / 2) as i64);
        }
        self.claims
            .expires_at
            .unwrap_or(now + chrono::Duration::minutes(30))
    }
}

/// What the access token says about itself (payload decoded without checking the signature: it is
/// only used to learn the account and expiry of a token the server just handed us over TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessClaims {
    /// The `acct` claim: the Lightspeed account ID.
    pub account_id: Option<AccountId>,
    /// The `exp` claim.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The account a fresh token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountIdentity {
    /// `Account.accountID`.
    pub account_id: AccountId,
    /// `Account.name` (empty when unknown).
    pub name: String,
}

/// Why a call to the auth server failed, classified for the caller's decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// `400 invalid_grant`: the code or refresh token is expired, used, revoked or for another client.
    /// Final: retrying the same grant cannot succeed.
    #[error("the grant was rejected (invalid_grant){}", describe(.description))]
    InvalidGrant {
        /// `error_description` / `hint` from the server.
        description: String,
    },
    /// `401 invalid_client`: the client ID or secret is wrong, or the client is blocked. Final for
    /// this operation; fix the configuration.
    #[error("the client credentials were rejected (invalid_client){}: check lightspeed.client_id and lightspeed.client_secret", describe(.description))]
    InvalidClient {
        /// `error_description` / `hint` from the server.
        description: String,
    },
    /// Network error, timeout, 5xx or 429: back off and retry.
    #[error("temporary failure: {reason}")]
    Transient {
        /// What happened.
        reason: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Anything else (another 4xx, a malformed answer).
    #[error("unexpected answer{}: {reason}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Other {
        /// The HTTP status, if there was a response.
        status: Option<u16>,
        /// What was wrong, without secrets.
        reason: String,
    },
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

impl OAuthError {
    /// True for failures worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Transient { .. })
    }
}

impl OAuthClient {
    /// A client from the settings (reads the client secret; builds its own HTTP client).
    pub fn from_settings(settings: &LightspeedSettings) -> Result<Self, ConfigError> {
        let secret = settings.client_secret()?;
        Ok(Self::new(
            http_client(settings.request_timeout),
            settings,
            secret,
        ))
    }

    /// A client with an explicit HTTP client and secret.
    pub fn new(
        http: reqwest::Client,
        settings: &LightspeedSettings,
        client_secret: SecretString,
    ) -> Self {
        Self {
            http,
            auth_base: settings.auth_base_url.clone(),
            client_id: settings.client_id.clone(),
            client_secret,
            scope: settings.scope.clone(),
        }
    }

    /// The HTTP client (shared connection pool).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A new authorization URL with a fresh random `state` and PKCE (S256) challenge.
    pub fn authorization_request(&self) -> AuthorizationRequest {
        let state = random_urlsafe(16);
        let verifier = random_urlsafe(48); // 64 characters of [A-Za-z0-9_-]
        let mut url = endpoint(&self.auth_base, AUTHORIZE_PATH);
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &self.scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        AuthorizationRequest {
            url,
            state,
            verifier: SecretString::from(verifier),
        }
    }

    /// Exchange an authorization code (valid 60 s) for a token pair. One attempt: a code is single-use.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        verifier: &SecretString,
    ) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("code", code.expose_secret()),
            ("code_verifier", verifier.expose_secret()),
        ];
        let secrets = [code.expose_secret(), verifier.expose_secret()];
        let response = self.post(TOKEN_PATH, &form, &secrets).await?;
        let tokens = parse_token_response(response, &secrets).await?;
        if tokens.refresh_token.is_none() {
            return Err(OAuthError::Other {
                status: None,
                reason: "the token response has no refresh_token".into(),
            });
        }
        Ok(tokens)
    }

    /// Trade a refresh token for a new pair. One attempt; the caller decides about retries. No
    /// `scope` is sent (a `scope` on refresh has been seen to cause `invalid_grant`).
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse, OAuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        let secrets = [refresh_token.expose_secret()];
        let response = self.post(TOKEN_PATH, &form, &secrets).await?;
        parse_token_response(response, &secrets).await
    }

    /// Revoke a refresh token (and with it the grant).
    pub async fn revoke(&self, refresh_token: &SecretString) -> Result<(), OAuthError> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        self.post(REVOKE_PATH, &form, &[refresh_token.expose_secret()])
            .await?;
        Ok(())
    }

    /// POST a form; a non-success status becomes a classified error.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<reqwest::Response, OAuthError> {
        let url = endpoint(&self.auth_base, path);
        let response = self
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        tracing::debug!(
            endpoint = path,
            status = status.as_u16(),
            "auth server answered"
        );
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            return Err(redirect_error(status, &url, response.headers()));
        }
        let mut secrets = secrets.to_vec();
        secrets.push(self.client_secret.expose_secret());
        Err(classify_response(response, &secrets).await)
    }
}

/// An HTTP client for the auth server with the configured timeout.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    // reqwest is built without a default rustls provider; make sure one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        // A redirect could carry the client secret, a code or a token elsewhere: a 30x is an error.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("lightspeed-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect(
            "a reqwest client with only timeouts, a redirect policy and a user agent always builds",
        )
}

/// Learn the account of a fresh access token: `GET {api_base}/API/V3/Account.json`.
pub async fn fetch_account_identity(
    http: &reqwest::Client,
    api_base: &Url,
    access_token: &SecretString,
) -> Result<AccountIdentity, OAuthError> {
    let url = endpoint(api_base, "/API/V3/Account.json");
    let body = api_get(http, &url, access_token).await?;
    listed_accounts(&body, &url)?
        .into_iter()
        .next()
        .ok_or_else(|| OAuthError::Other {
            status: None,
            reason: "Account.json lists no account".into(),
        })
}

/// The account's name as `GET {api_base}/API/V3/Account.json` lists it (the list always carries
/// `accountID` and `name`; the detail `Account/{id}.json` is documented without them).
pub async fn fetch_account_name(
    http: &reqwest::Client,
    api_base: &Url,
    access_token: &SecretString,
    account_id: AccountId,
) -> Result<String, OAuthError> {
    let url = endpoint(api_base, "/API/V3/Account.json");
    let body = api_get(http, &url, access_token).await?;
    Ok(listed_accounts(&body, &url)?
        .into_iter()
        .find(|a| a.account_id == account_id)
        .map(|a| a.name)
        .unwrap_or_default())
}

/// GET an API URL with a fresh token, before the account is stored (so not through the API
/// client, whose tokens come from the store): the same guards (no redirects, capped body).
async fn api_get(
    http: &reqwest::Client,
    url: &Url,
    access_token: &SecretString,
) -> Result<bytes::Bytes, OAuthError> {
    let response = http
        .get(url.clone())
        .bearer_auth(access_token.expose_secret())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| transport_error(&e))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(redirect_error(status, url, response.headers()));
    }
    if !status.is_success() {
        return Err(status_error(
            status,
            retry::retry_after(response.headers()),
            String::new(),
        ));
    }
    read_body(response, guard::MAX_API_BODY, url).await
}

/// A claim or `expires_in`: a number, or a string of digits.
fn as_u64(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The accounts of an `Account.json` body, parsed as the API client parses them (one object or an
/// array; IDs as strings or numbers).
fn listed_accounts(body: &[u8], url: &Url) -> Result<Vec<AccountIdentity>, OAuthError> {
    let page = wire::parse_list::<wire::Account>(body, url).map_err(|e| OAuthError::Other {
        status: None,
        reason: format!("GET {}: {e}", guard::printable(url.as_str())),
    })?;
    Ok(page
        .records
        .into_iter()
        .map(|a| AccountIdentity {
            account_id: a.account_id,
            name: a.name,
        })
        .collect())
}

/// Decode the payload of a JWT (base64url, no signature check) for `acct` and `exp`.
pub fn decode_claims(access_token: &SecretString) -> AccessClaims {
    let Some(payload) = access_token.expose_secret().split('.').nth(1) else {
        return AccessClaims::default();
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(payload));
    let Some(value) = bytes
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return AccessClaims::default();
    };
    AccessClaims {
        account_id: value.get("acct").and_then(as_u64).map(AccountId::from),
        expires_at: value
            .get("exp")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .and_then(|secs| Utc.timestamp_opt(secs, 0).single()),
    }
}

/// The S256 code challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random_urlsafe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// `base` with `path` appended to its own path (so a base with a path prefix keeps it).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url.set_query(None);
    url
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    token_type: Option<String>,
}

async fn parse_token_response(
    response: reqwest::Response,
    secrets: &[&str],
) -> Result<TokenResponse, OAuthError> {
    let status = response.status().as_u16();
    let url = response.url().clone();
    let bytes = read_body(response, guard::MAX_AUTH_BODY, &url).await?;
    let raw: RawTokenResponse = serde_json::from_slice(&bytes).map_err(|e| OAuthError::Other {
        status: Some(status),
        // serde's message names the position and the expected type, never the input.
        reason: scrub(
            &format!("the token response is not the expected JSON: {e}"),
            secrets,
        ),
    })?;
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| OAuthError::Other {
            status: Some(status),
            reason: "the token response has no access_token".into(),
        })?;
    let claims = decode_claims(&access_token);
    Ok(TokenResponse {
        access_token,
        refresh_token: raw
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
        expires_in: raw.expires_in.as_ref().and_then(as_u64),
        token_type: raw.token_type.unwrap_or_else(|| "Bearer".into()),
        claims,
    })
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    hint: Option<String>,
    message: Option<String>,
}

async fn classify_response(response: reqwest::Response, secrets: &[&str]) -> OAuthError {
    let status = response.status();
    let retry = retry::retry_after(response.headers());
    let body: ErrorBody = match guard::read_capped(response, guard::MAX_AUTH_BODY).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => ErrorBody::default(),
    };
    let mut description = [
        body.error_description.as_deref(),
        body.hint.as_deref(),
        body.message.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    description = guard::printable(&scrub(&description, secrets));
    if description.chars().count() > MAX_DESCRIPTION {
        description = description
            .chars()
            .take(MAX_DESCRIPTION)
            .collect::<String>()
            + "…";
    }
    let code = body.error.as_deref().unwrap_or_default();
    match (status.as_u16(), code) {
        (_, "invalid_grant") if status.is_client_error() => {
            OAuthError::InvalidGrant { description }
        }
        (401, _) | (_, "invalid_client") => OAuthError::InvalidClient { description },
        _ => {
            let description = if code.is_empty() {
                description
            } else {
                format!("{} {description}", guard::printable(&scrub(code, secrets)))
            };
            status_error(status, retry, description.trim().to_string())
        }
    }
}

fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    description: String,
) -> OAuthError {
    let reason = if description.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {description}", status.as_u16())
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        OAuthError::Transient {
            reason,
            retry_after,
        }
    } else {
        OAuthError::Other {
            status: Some(status.as_u16()),
            reason,
        }
    }
}

/// A 30x from the auth server or the API: named by its `Location`'s origin, never followed.
fn redirect_error(
    status: StatusCode,
    url: &Url,
    headers: &reqwest::header::HeaderMap,
) -> OAuthError {
    OAuthError::Other {
        status: Some(status.as_u16()),
        reason: format!(
            "{} answered with a redirect to {}: redirects are not followed (client credentials and \
             tokens go only to the configured lightspeed.auth_base_url and lightspeed.api_base_url)",
            guard::origin(url),
            guard::location_origin(url, headers)
        ),
    }
}

/// A body of at most `limit` bytes.
async fn read_body(
    response: reqwest::Response,
    limit: usize,
    url: &Url,
) -> Result<bytes::Bytes, OAuthError> {
    guard::read_capped(response, limit)
        .await
        .map_err(|e| match e {
            BodyError::Transport(e) => transport_error(&e),
            BodyError::TooLarge => OAuthError::Other {
                status: None,
                reason: format!(
                    "the answer of {}{} is larger than the limit of {}",
                    guard::origin(url),
                    url.path(),
                    guard::human_size(limit)
                ),
            },
        })
}

fn transport_error(e: &reqwest::Error) -> OAuthError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    if e.is_builder() {
        return OAuthError::Other {
            status: None,
            reason: format!("cannot build the request: {}", without_url(e)),
        };
    }
    OAuthError::Transient {
        reason: format!("{what}: {}", without_url(e)),
        retry_after: None,
    }
}

/// A reqwest error's message without its URL (URLs carry no secrets here, but keep lines short).
fn without_url(e: &reqwest::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    chain.dedup();
    chain.join(": ")
}

/// Replace any occurrence of a secret by `<redacted>` (defence in depth for server-echoed text).
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn claims_from_jwt_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"acct":"12345","exp":1700000000,"sub":"7"}"#);
        let token = SecretString::from(format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig"));
        let claims = decode_claims(&token);
        assert_eq!(claims.account_id, Some(12345.into()));
        assert_eq!(
            claims.expires_at,
            Utc.timestamp_opt(1_700_000_000, 0).single()
        );
        let numeric = URL_SAFE_NO_PAD.encode(br#"{"acct":42}"#);
        assert_eq!(
            decode_claims(&SecretString::from(format!("a.{numeric}.b"))).account_id,
            Some(42.into())
        );
        assert_eq!(
            decode_claims(&SecretString::from("not-a-jwt".to_string())),
            AccessClaims::default()
        );
        assert_eq!(
            decode_claims(&SecretString::from("a.!!!.b".to_string())),
            AccessClaims::default()
        );
    }

    #[test]
    fn account_object_or_array() {
        let url = Url::parse("https://api.example/API/V3/Account.json").unwrap();
        let parse = |v: serde_json::Value| listed_accounts(v.to_string().as_bytes(), &url);
        let one = serde_json::json!({"Account": {"accountID": "99", "name": "Shop"}});
        let many =
            serde_json::json!({"Account": [{"accountID": "7", "name": "A"}, {"accountID": 8}]});
        assert_eq!(
            parse(one).unwrap(),
            [AccountIdentity {
                account_id: 99.into(),
                name: "Shop".into()
            }]
        );
        let ids: Vec<AccountId> = parse(many).unwrap().iter().map(|a| a.account_id).collect();
        assert_eq!(ids, [7, 8]);
        assert_eq!(parse(serde_json::json!({"@attributes": {}})).unwrap(), []);
        // A record without its ID is a malformed answer, named as such.
        let err = parse(serde_json::json!({"Account": {"name": "no id"}})).unwrap_err();
        assert!(err.to_string().contains("accountID"), "{err}");
    }

    #[test]
    fn endpoint_keeps_a_path_prefix() {
        let base = Url::parse("https://example.com/prefix/").unwrap();
        assert_eq!(
            endpoint(&base, TOKEN_PATH).as_str(),
            "https://example.com/prefix/auth/oauth/token"
        );
        let root = Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            endpoint(&root, TOKEN_PATH).as_str(),
            "http://127.0.0.1:9/auth/oauth/token"
        );
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("bad token abcdef here", &["abcdef"]),
            "bad token <redacted> here"
        );
    }
}
