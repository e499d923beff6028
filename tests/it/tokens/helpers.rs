//! Shared test helpers: settings pointing at a fake auth server, a small rotating fake of
//! Lightspeed's OAuth server on wiremock (for precise fault injection), log capture, database dump.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lightspeed_sync::config::Settings;
use lightspeed_sync::lightspeed::oauth::{TOKEN_PATH, pkce_challenge};
use rand::RngCore;
use sqlx::PgPool;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The fake's client credentials.
pub const CLIENT_ID: &str = "fake-client";
/// The fake's client secret.
pub const CLIENT_SECRET: &str = "fake-client-secret-5e3c1d";
/// The registered redirect URI.
pub const REDIRECT_URI: &str = "https://localhost/oauth/callback";

/// A fresh base64 key.
pub fn key() -> String {
    lightspeed_sync::tokens::crypto::generate_key_base64()
}

/// Settings with the OAuth client and API pointed at `base`.
pub fn settings_for(
    base: &str,
    client_id: &str,
    secret: &str,
    redirect: &str,
    key: Option<&str>,
) -> Settings {
    let mut env: Vec<(String, String)> = [
        ("LSSYNC__LIGHTSPEED__CLIENT_ID", client_id),
        ("LSSYNC__LIGHTSPEED__CLIENT_SECRET", secret),
        ("LSSYNC__LIGHTSPEED__AUTH_BASE_URL", base),
        ("LSSYNC__LIGHTSPEED__API_BASE_URL", base),
        ("LSSYNC__LIGHTSPEED__REDIRECT_URI", redirect),
        ("LSSYNC__LIGHTSPEED__REQUEST_TIMEOUT", "5s"),
        ("LSSYNC__LIGHTSPEED__REFRESH_MARGIN", "5m"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(key) = key {
        env.push(("LSSYNC__SECURITY__TOKEN_KEY".into(), key.into()));
    }
    Settings::load_from(
        Path::new("/nonexistent/lightspeed-sync-tests.toml"),
        false,
        env,
    )
    .expect("test settings")
}

/// Settings for the fake auth server.
pub fn settings(fake: &FakeAuth, key: Option<&str>) -> Settings {
    settings_for(
        &fake.server.uri(),
        CLIENT_ID,
        CLIENT_SECRET,
        REDIRECT_URI,
        key,
    )
}

/// A fast retry policy for tests (millisecond backoff).
pub fn fast_retries(attempts: u32) -> lightspeed_sync::tokens::source::RetryPolicy {
    lightspeed_sync::tokens::source::RetryPolicy {
        attempts,
        backoff: lightspeed_sync::lightspeed::retry::Backoff {
            base: std::time::Duration::from_millis(1),
            cap: std::time::Duration::from_millis(5),
        },
        max_retry_after: std::time::Duration::from_secs(1),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A JWT-shaped access token carrying `acct` and `exp` (signature is random bytes).
pub fn fake_jwt(account: u64, lifetime_secs: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + lifetime_secs;
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"acct": account.to_string(), "exp": exp}).to_string());
    format!("eyJhbGciOiJSUzI1NiJ9.{payload}.{}", random_hex(24))
}

/// What the fake remembers.
#[derive(Default)]
pub struct FakeState {
    /// Refresh tokens still valid, with their account (strict rotation: used once).
    pub refresh_owner: HashMap<String, u64>,
    /// Outstanding codes: account and PKCE challenge.
    codes: HashMap<String, (u64, String)>,
    /// Codes reported as expired.
    expired_codes: bool,
    /// Accounts handed out by the authorize endpoint, round robin.
    accounts: Vec<u64>,
    next_account: usize,
    /// Successful refreshes.
    pub refreshes: u32,
    /// `invalid_grant` answers.
    pub invalid_grants: u32,
    /// Every token and code ever issued (to look for leaks).
    pub issued: Vec<String>,
    /// Access-token lifetime in seconds.
    pub lifetime: i64,
    /// Whether access tokens carry `acct` (else `authorize` must call Account.json).
    pub no_acct_claim: bool,
}

impl FakeState {
    fn issue(&mut self, account: u64) -> serde_json::Value {
        let access = if self.no_acct_claim {
            format!("opaque-{}", random_hex(24))
        } else {
            fake_jwt(account, self.lifetime)
        };
        let refresh = format!("def50{}", random_hex(32));
        self.refresh_owner.insert(refresh.clone(), account);
        self.issued.push(access.clone());
        self.issued.push(refresh.clone());
        serde_json::json!({"token_type": "Bearer", "expires_in": self.lifetime, "access_token": access, "refresh_token": refresh})
    }
}

/// A fake of Lightspeed's auth server with strict rotation, on wiremock.
pub struct FakeAuth {
    /// The mock server (mount extra mocks with a lower priority number to inject faults).
    pub server: MockServer,
    /// The fake's memory.
    pub state: Arc<Mutex<FakeState>>,
}

fn error(status: u16, code: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        serde_json::json!({"error": code, "error_description": description, "hint": ""}),
    )
}

struct TokenEndpoint(Arc<Mutex<FakeState>>);

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let mut s = self.0.lock().unwrap();
        if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return error(401, "invalid_client", "Client authentication failed");
        }
        match form.get("grant_type").map(String::as_str) {
            Some("refresh_token") => {
                let owner = form
                    .get("refresh_token")
                    .and_then(|t| s.refresh_owner.remove(t));
                match owner {
                    Some(account) if !form.contains_key("scope") => {
                        s.refreshes += 1;
                        ResponseTemplate::new(200).set_body_json(s.issue(account))
                    }
                    _ => {
                        s.invalid_grants += 1;
                        error(400, "invalid_grant", "The refresh token is invalid.")
                    }
                }
            }
            Some("authorization_code") => {
                let code = form.get("code").cloned().unwrap_or_default();
                let entry = s.codes.remove(&code);
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                match entry {
                    Some((account, challenge))
                        if !s.expired_codes && pkce_challenge(&verifier) == challenge =>
                    {
                        ResponseTemplate::new(200).set_body_json(s.issue(account))
                    }
                    _ => {
                        s.invalid_grants += 1;
                        error(400, "invalid_grant", "The authorization code has expired")
                    }
                }
            }
            _ => error(400, "invalid_request", "unsupported grant_type"),
        }
    }
}

struct AuthorizeEndpoint(Arc<Mutex<FakeState>>);

impl Respond for AuthorizeEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let q: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let mut s = self.0.lock().unwrap();
        let account = s.accounts[s.next_account % s.accounts.len()];
        s.next_account += 1;
        let code = random_hex(20);
        s.codes.insert(
            code.clone(),
            (
                account,
                q.get("code_challenge").cloned().unwrap_or_default(),
            ),
        );
        s.issued.push(code.clone());
        let mut location = url::Url::parse(REDIRECT_URI).unwrap();
        location
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", q.get("state").map(String::as_str).unwrap_or(""));
        ResponseTemplate::new(302).insert_header("Location", location.as_str())
    }
}

struct AccountEndpoint;

/// `Account.json` lists the token's account (`acct` of the JWT) with its name, as recorded
/// (`../shared/recorded/mp-2016-account-list.json`); `Account/{id}.json` answers the documented bare
/// detail, whose `name` ("Main") is not the account's: `authorize` must take the name from the list.
impl Respond for AccountEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path() == "/API/V3/Account.json" {
            let acct = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| t.split('.').nth(1))
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["acct"].as_str().map(str::to_string))
                .unwrap_or_default();
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "@attributes": {"count": "1"},
                "Account": {"accountID": acct, "name": format!("Shop {acct}"),
                            "link": {"@attributes": {"href": format!("/API/Account/{acct}")}}}
            }));
        }
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "@attributes": {"systemCustomerID": "1"}, "status": "customer", "name": "Main"
        }))
    }
}

impl FakeAuth {
    /// Start a fake serving `accounts` (authorize hands them out in turn) with token lifetime 3600 s.
    pub async fn start(accounts: &[u64]) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(FakeState {
            accounts: accounts.to_vec(),
            lifetime: 3600,
            ..FakeState::default()
        }));
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(TokenEndpoint(state.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/auth/oauth/authorize"))
            .respond_with(AuthorizeEndpoint(state.clone()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/auth/oauth/revoke"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/API/V3/Account(/\d+)?\.json$"))
            .respond_with(AccountEndpoint)
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// A valid pair for `account`, without a browser: `(access, refresh)`.
    pub fn issue(&self, account: u64) -> (String, String) {
        let v = self.state.lock().unwrap().issue(account);
        (
            v["access_token"].as_str().unwrap().into(),
            v["refresh_token"].as_str().unwrap().into(),
        )
    }

    /// Invalidate every refresh token of `account`.
    pub fn revoke(&self, account: u64) {
        self.state
            .lock()
            .unwrap()
            .refresh_owner
            .retain(|_, a| *a != account);
    }

    /// Make every outstanding authorization code expired.
    pub fn expire_codes(&self) {
        self.state.lock().unwrap().expired_codes = true;
    }

    /// Calls to the token endpoint (including injected faults).
    pub async fn token_calls(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == TOKEN_PATH)
            .count()
    }

    /// `(successful refreshes, invalid_grants)`.
    pub fn counts(&self) -> (u32, u32) {
        let s = self.state.lock().unwrap();
        (s.refreshes, s.invalid_grants)
    }

    /// Every token and code issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }
}

/// Store a pair for `account` directly (as `authorize` would), expiring at `expires_at`.
pub async fn store_pair(
    settings: &Settings,
    pool: &PgPool,
    account: u64,
    (access, refresh): &(String, String),
    expires_at: chrono::DateTime<chrono::Utc>,
) {
    let ring = lightspeed_sync::tokens::crypto::Keyring::from_settings(&settings.security).unwrap();
    let store = lightspeed_sync::tokens::TokenStore::new(pool.clone(), Arc::new(ring));
    let access = secrecy::SecretString::from(access.clone());
    let refresh = secrecy::SecretString::from(refresh.clone());
    let tokens = lightspeed_sync::tokens::store::NewTokens {
        access_token: &access,
        refresh_token: &refresh,
        access_expires_at: expires_at,
    };
    store
        .save_authorized(account.into(), "", &tokens)
        .await
        .unwrap();
}

/// A log sink for a test: everything at TRACE, kept in memory.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// The captured text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Capture every event at TRACE on this thread (the `#[sqlx::test]` runtime is single-threaded, so
/// that is every task of the test) until the guard is dropped.
pub fn capture_logs() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(buffer.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

/// Every column of every table of our schemas, as text (bytea as hex), one line per row.
pub async fn dump_database(pool: &PgPool) -> String {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema IN ('lightspeed', 'lightspeed_sync', 'public') ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = String::new();
    for (schema, table) in tables {
        let sql = format!("SELECT t::text FROM \"{schema}\".\"{table}\" t");
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap();
        for (row,) in rows {
            out.push_str(&format!("{schema}.{table}: {row}\n"));
        }
    }
    out
}

/// Assert that none of `secrets` (nor their hex encoding, as bytea prints) occurs in `text`.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(s.as_str()), "{what} contains a secret");
        assert!(!text.contains(&hex), "{what} contains a secret in hex");
    }
}
