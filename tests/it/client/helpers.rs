//! Shared fixtures: settings, a counting token provider, page bodies and a raw HTTP server that can
//! cut connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lightspeed_sync::config::LightspeedSettings;
use lightspeed_sync::lightspeed::retry::Backoff;
use lightspeed_sync::lightspeed::{ApiClient, AuthFailure, BoxFuture, TokenProvider};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// The account used by every test.
pub const ACCOUNT: u64 = 182_255;

/// Settings pointing at `base`, with `max_attempts` attempts and a short timeout.
pub fn settings(base: &str, max_attempts: u32) -> LightspeedSettings {
    LightspeedSettings {
        client_id: "client".into(),
        client_secret: Some(SecretString::from("client-secret")),
        client_secret_file: None,
        redirect_uri: Url::parse("https://localhost/oauth/callback").unwrap(),
        scope: "employee:customers_read".into(),
        api_base_url: Url::parse(base).unwrap(),
        auth_base_url: Url::parse(base).unwrap(),
        allow_insecure_http: false,
        request_timeout: Duration::from_secs(2),
        max_attempts,
        refresh_margin: Duration::from_secs(300),
    }
}

/// A client for `base` with fast backoff, and its token provider.
pub fn client(base: &str, max_attempts: u32) -> (ApiClient, Arc<TestTokens>) {
    client_from(&settings(base, max_attempts))
}

/// A client from `settings` with fast backoff, and its token provider.
pub fn client_from(settings: &LightspeedSettings) -> (ApiClient, Arc<TestTokens>) {
    let tokens = Arc::new(TestTokens::default());
    let client = ApiClient::new(settings, tokens.clone())
        .unwrap()
        .with_backoff(Backoff {
            base: Duration::from_millis(2),
            cap: Duration::from_millis(10),
        });
    (client, tokens)
}

/// Hands out `token-1`; each rejection moves to the next (`token-2`, ...) and is recorded.
#[derive(Default)]
pub struct TestTokens {
    /// Tokens passed to `token_rejected`, in order.
    pub rejected: Mutex<Vec<String>>,
    /// Calls of `access_token`.
    pub issued: Mutex<u32>,
    /// When set, every call fails like this (`needs_reauth`).
    pub fail: Mutex<Option<bool>>,
    /// When set, `token_rejected` fails like this (`needs_reauth`).
    pub refresh_fails: Mutex<Option<bool>>,
}

impl TestTokens {
    fn current(&self) -> String {
        format!("token-{}", self.rejected.lock().unwrap().len() + 1)
    }

    fn failure(&self, account_id: u64) -> Option<AuthFailure> {
        self.fail.lock().unwrap().map(|needs_reauth| AuthFailure {
            account_id: account_id.into(),
            needs_reauth,
            message: "refresh token revoked".into(),
            source: None,
        })
    }
}

impl TokenProvider for TestTokens {
    fn access_token(
        &self,
        account_id: lightspeed_sync::model::AccountId,
    ) -> BoxFuture<'_, Result<SecretString, AuthFailure>> {
        Box::pin(async move {
            *self.issued.lock().unwrap() += 1;
            match self.failure(account_id.get()) {
                Some(f) => Err(f),
                None => Ok(SecretString::from(self.current())),
            }
        })
    }

    fn token_rejected<'a>(
        &'a self,
        account_id: lightspeed_sync::model::AccountId,
        rejected: &'a SecretString,
    ) -> BoxFuture<'a, Result<SecretString, AuthFailure>> {
        Box::pin(async move {
            self.rejected
                .lock()
                .unwrap()
                .push(rejected.expose_secret().to_string());
            if let Some(needs_reauth) = *self.refresh_fails.lock().unwrap() {
                let message = "token endpoint unreachable".into();
                return Err(AuthFailure {
                    account_id,
                    needs_reauth,
                    message,
                    source: None,
                });
            }
            match self.failure(account_id.get()) {
                Some(f) => Err(f),
                None => Ok(SecretString::from(self.current())),
            }
        })
    }
}

/// A customer record as the API sends it (strings everywhere).
pub fn customer(id: u64) -> Value {
    json!({
        "customerID": id.to_string(), "firstName": format!("First{id}"), "lastName": "Last", "title": "",
        "company": "", "archived": "false", "creditAccountID": "0", "customerTypeID": "0",
        "discountID": "0", "taxCategoryID": "0", "createTime": "2019-04-29T08:40:04+00:00",
        "timeStamp": "2019-04-29T08:40:04+00:00",
        "Contact": {"noEmail": "false", "noPhone": "true", "noMail": "true", "Phones": "", "Addresses": "",
            "Emails": {"ContactEmail": {"address": format!("c{id}@example.com"), "useType": "Primary"}},
            "timeStamp": "2019-04-29T08:40:04+00:00"}
    })
}

/// A list body with `records` under `Customer` (omitted when `Null`) and `next`.
pub fn page(records: Value, next: &str) -> Value {
    let mut v = json!({"@attributes": {"next": next, "previous": ""}});
    if !records.is_null() {
        v["Customer"] = records;
    }
    v
}

/// What the raw server does with one connection.
pub enum Reply {
    /// Read the request, then close without answering.
    Close,
    /// Write these bytes verbatim, then close.
    Raw(String),
}

/// A complete HTTP/1.1 response with a JSON body and extra header lines.
pub fn http_ok(body: &str, extra_headers: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// Serve one reply per connection, in order; returns the base URL and the requests seen.
pub async fn raw_server(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for reply in replies {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            if let Reply::Raw(bytes) = reply {
                let _ = socket.write_all(bytes.as_bytes()).await;
                let _ = socket.flush().await;
            }
            drop(socket);
        }
    });
    (base, seen)
}
