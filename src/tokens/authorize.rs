//! The `authorize` flow and `disconnect`, as functions of settings, a pool and I/O streams so tests
//! can drive them: print the authorization URL (state + PKCE), take the redirect from the input (or
//! serve the callback with `--listen`), check `state`, exchange the code at once (it lives 60 s),
//! learn the account, store the encrypted pair, and report `connected account <id> (<name>)`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Html;
use chrono::Utc;
use secrecy::SecretString;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::config::Settings;
use crate::db::credentials;
use crate::error::report;
use crate::lightspeed::guard::printable;
use crate::lightspeed::oauth::{self, AuthorizationRequest, OAuthClient, OAuthError};
use crate::model::AccountId;
use crate::tokens::crypto::Keyring;
use crate::tokens::source::SetupError;
use crate::tokens::store::{NewTokens, StoreError, TokenStore};

/// How `authorize` receives the redirect.
#[derive(Debug, Clone)]
pub struct AuthorizeOptions {
    /// Serve the callback on this address instead of reading the redirect from the input.
    pub listen: Option<SocketAddr>,
    /// How long `--listen` waits for the redirect.
    pub timeout: Duration,
}

impl Default for AuthorizeOptions {
    fn default() -> Self {
        Self {
            listen: None,
            timeout: Duration::from_secs(300),
        }
    }
}

/// The account that was connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// Lightspeed account ID.
    pub account_id: AccountId,
    /// Account name (empty if Lightspeed did not tell).
    pub account_name: String,
}

/// Why `authorize` failed; each message is one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// No token key or no client secret.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The redirect's `state` is not the one of this run.
    #[error(
        "the redirect's `state` does not match this authorization request (an old or foreign redirect): \
         run authorize again and use the URL it prints"
    )]
    StateMismatch,
    /// The code was rejected (`invalid_grant`).
    #[error(
        "the authorization code was rejected (expired after 60 s, already used, or for another client): \
         run authorize again"
    )]
    CodeRejected,
    /// The client credentials were rejected (`invalid_client`).
    #[error(
        "Lightspeed rejected the client credentials (invalid_client{0}): check lightspeed.client_id and \
         lightspeed.client_secret"
    )]
    InvalidClient(String),
    /// The person (or Lightspeed) refused the authorization.
    #[error("the authorization was refused: {0}")]
    Denied(String),
    /// The input held no code.
    #[error(
        "no authorization code found: paste the whole address your browser was redirected to \
         (…?code=…&state=…), or just the code"
    )]
    NoCode,
    /// The exchange failed for another reason. The endpoint's error is kept; it has no cause of its
    /// own, so the message carries all of it (not a `source()`, which would print it twice).
    #[error(
        "exchanging the authorization code failed: {0}; the code expires after 60 s, run authorize again"
    )]
    Exchange(OAuthError),
    /// The token's account could not be determined.
    #[error("cannot tell which account the new token belongs to")]
    Account(#[source] OAuthError),
    /// `--listen` could not bind.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--listen` waited in vain.
    #[error(
        "no redirect arrived on http://{addr} within {timeout}: check that the registered redirect URI \
         ({redirect_uri}) is forwarded to this address, or run authorize without --listen and paste the \
         redirect URL"
    )]
    Timeout {
        /// The listening address.
        addr: SocketAddr,
        /// How long we waited, human-readable.
        timeout: String,
        /// The registered redirect URI.
        redirect_uri: String,
    },
    /// Storing the tokens failed.
    #[error("storing the tokens failed")]
    Store(#[from] StoreError),
    /// Reading the input or writing the output failed.
    #[error("terminal I/O failed")]
    Io(#[from] std::io::Error),
}

/// Run the authorization flow once. The key and the client secret are checked before the URL is
/// printed, so nothing fails after a code has been spent for a reason known in advance.
pub async fn authorize<R, W>(
    settings: &Settings,
    pool: &PgPool,
    input: R,
    mut output: W,
    options: &AuthorizeOptions,
) -> Result<Connected, AuthorizeError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let keyring = Arc::new(Keyring::from_settings(&settings.security).map_err(SetupError::from)?);
    let client = OAuthClient::from_settings(&settings.lightspeed).map_err(SetupError::from)?;
    let store = TokenStore::new(pool.clone(), keyring);
    let request = client.authorization_request();
    let flow = Flow {
        settings,
        client: &client,
        store: &store,
        request: &request,
    };
    let connected = match options.listen {
        None => {
            print_url(&mut output, &request, None).await?;
            let line = read_line(input).await?;
            flow.complete(&parse_redirect(&line)?).await?
        }
        Some(addr) => flow.listen(addr, options.timeout, &mut output).await?,
    };
    output
        .write_all(format!("{}\n", connected_line(&connected)).as_bytes())
        .await?;
    output.flush().await?;
    Ok(connected)
}

/// `connected account <id> (<name>)`, the name stripped of control characters.
pub fn connected_line(c: &Connected) -> String {
    if c.account_name.is_empty() {
        format!("connected account {}", c.account_id)
    } else {
        format!(
            "connected account {} ({})",
            c.account_id,
            printable(&c.account_name)
        )
    }
}

/// What the redirect carried.
#[derive(Default, Deserialize)]
struct Redirect {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// True when a URL (not a bare code) was given, so `state` must be checked.
    #[serde(skip)]
    is_url: bool,
}

/// Parse a pasted redirect URL, a query string, or a bare code.
fn parse_redirect(input: &str) -> Result<Redirect, AuthorizeError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(AuthorizeError::NoCode);
    }
    let url = if text.contains("://") {
        Url::parse(text).ok()
    } else if text.starts_with('?') || text.contains("code=") || text.contains("error=") {
        Url::parse(&format!(
            "http://redirect/?{}",
            text.trim_start_matches('?')
        ))
        .ok()
    } else {
        None
    };
    match url {
        Some(url) => {
            let mut r = Redirect {
                is_url: true,
                ..Redirect::default()
            };
            for (k, v) in url.query_pairs() {
                match k.as_ref() {
                    "code" => r.code = Some(v.into_owned()),
                    "state" => r.state = Some(v.into_owned()),
                    "error" => r.error = Some(v.into_owned()),
                    "error_description" => r.error_description = Some(v.into_owned()),
                    _ => {}
                }
            }
            Ok(r)
        }
        None if text.chars().all(|c| c.is_ascii_graphic()) => Ok(Redirect {
            code: Some(text.to_string()),
            ..Redirect::default()
        }),
        None => Err(AuthorizeError::NoCode),
    }
}

struct Flow<'a> {
    settings: &'a Settings,
    client: &'a OAuthClient,
    store: &'a TokenStore,
    request: &'a AuthorizationRequest,
}

impl Flow<'_> {
    /// A redirect URL must carry this run's `state` (a bare pasted code carries none).
    fn state_matches(&self, redirect: &Redirect) -> bool {
        !redirect.is_url || redirect.state.as_deref() == Some(self.request.state.as_str())
    }

    /// Check the redirect (`state` first: nothing else of a foreign redirect is looked at), exchange
    /// the code, learn the account, store the tokens.
    async fn complete(&self, redirect: &Redirect) -> Result<Connected, AuthorizeError> {
        if !self.state_matches(redirect) {
            return Err(AuthorizeError::StateMismatch);
        }
        if let Some(error) = &redirect.error {
            let detail = redirect
                .error_description
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(AuthorizeError::Denied(printable(&format!(
                "{error}{detail}"
            ))));
        }
        let code = redirect
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| SecretString::from(c.to_string()))
            .ok_or(AuthorizeError::NoCode)?;
        let tokens = self
            .client
            .exchange_code(&code, &self.request.verifier)
            .await
            .map_err(|e| match e {
                OAuthError::InvalidGrant { .. } => AuthorizeError::CodeRejected,
                OAuthError::InvalidClient { description } => {
                    AuthorizeError::InvalidClient(if description.is_empty() {
                        description
                    } else {
                        format!(": {description}")
                    })
                }
                other => AuthorizeError::Exchange(other),
            })?;
        let api_base = &self.settings.lightspeed.api_base_url;
        let http = self.client.http();
        let (account_id, mut name) = match tokens.claims.account_id {
            Some(id) => (id, String::new()),
            None => {
                let who = oauth::fetch_account_identity(http, api_base, &tokens.access_token)
                    .await
                    .map_err(AuthorizeError::Account)?;
                (who.account_id, who.name)
            }
        };
        if name.is_empty() {
            match oauth::fetch_account_name(http, api_base, &tokens.access_token, account_id).await
            {
                Ok(n) => name = n,
                Err(e) => {
                    tracing::warn!(account.id = account_id.get(), error = %report(&e), "could not read the account's name; storing it without one")
                }
            }
        }
        let refresh = tokens
            .refresh_token
            .as_ref()
            .expect("exchange_code checks for a refresh token");
        let new = NewTokens {
            access_token: &tokens.access_token,
            refresh_token: refresh,
            access_expires_at: tokens.expires_at(Utc::now()),
        };
        self.store.save_authorized(account_id, &name, &new).await?;
        tracing::info!(account.id = account_id.get(), account_name = %name, "account connected");
        Ok(Connected {
            account_id,
            account_name: name,
        })
    }

    /// Serve the callback on `addr` until a redirect with a code (or an error) arrives.
    async fn listen<W: AsyncWrite + Unpin>(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        output: &mut W,
    ) -> Result<Connected, AuthorizeError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AuthorizeError::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| AuthorizeError::Listen { addr, source })?;
        print_url(output, self.request, Some(local)).await?;
        let (tx, mut rx) = mpsc::channel::<Callback>(4);
        let path = match self.settings.lightspeed.redirect_uri.path() {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        let app = axum::Router::new()
            .fallback(callback)
            .with_state(Arc::new(CallbackState { tx, path }));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Callback { redirect, reply })) => {
                    // A request without this run's `state` is not the redirect of this run: refuse
                    // it, say so, and keep waiting for the real one.
                    if !self.state_matches(&redirect) {
                        let _ = reply.send(Err(AuthorizeError::StateMismatch.to_string()));
                        output
                            .write_all(
                                b"ignored a request to the callback without this run's `state`; still waiting\n",
                            )
                            .await?;
                        output.flush().await?;
                        continue;
                    }
                    let result = self.complete(&redirect).await;
                    let page = match &result {
                        Ok(c) => Ok(connected_line(c)),
                        Err(e) => Err(report(e).to_string()),
                    };
                    let _ = reply.send(page);
                    break result;
                }
                _ => {
                    break Err(AuthorizeError::Timeout {
                        addr: local,
                        timeout: humantime::format_duration(timeout).to_string(),
                        redirect_uri: self.settings.lightspeed.redirect_uri.to_string(),
                    });
                }
            }
        };
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .is_err()
        {
            tracing::debug!("the callback server did not stop within 5 s");
        }
        outcome
    }
}

struct Callback {
    redirect: Redirect,
    reply: oneshot::Sender<Result<String, String>>,
}

struct CallbackState {
    tx: mpsc::Sender<Callback>,
    /// The redirect URI's path: the only one served.
    path: String,
}

/// The redirect URI's path with `code` or `error` is the redirect; anything else (favicon, other
/// paths) is a 404.
async fn callback(
    State(state): State<Arc<CallbackState>>,
    uri: axum::http::Uri,
    Query(mut redirect): Query<Redirect>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    let tx = &state.tx;
    if uri.path() != state.path || (redirect.code.is_none() && redirect.error.is_none()) {
        return (
            StatusCode::NOT_FOUND,
            page(
                "Waiting for Lightspeed",
                "This is not the Lightspeed redirect.",
            ),
        );
    }
    redirect.is_url = true;
    let (reply, answer) = oneshot::channel();
    if tx.send(Callback { redirect, reply }).await.is_err() {
        return (
            StatusCode::GONE,
            page(
                "Too late",
                "lightspeed-sync is no longer waiting: run authorize again.",
            ),
        );
    }
    match answer.await {
        Ok(Ok(line)) => (
            StatusCode::OK,
            page("Connected", &format!("{line}. You can close this tab.")),
        ),
        Ok(Err(message)) => (
            StatusCode::BAD_REQUEST,
            page("Authorization failed", &message),
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            page("Authorization failed", "see the terminal"),
        ),
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lightspeed-sync: {t}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{t}</h1><p>{b}</p></body></html>",
        t = escape(title),
        b = escape(body)
    );
    Html(html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn print_url<W: AsyncWrite + Unpin>(
    output: &mut W,
    request: &AuthorizationRequest,
    listening: Option<SocketAddr>,
) -> std::io::Result<()> {
    let mut text =
        String::from("Open this URL in a browser, sign in to Lightspeed and allow access:\n");
    let _ = writeln!(text, "{}", request.url);
    match listening {
        None => text.push_str(
            "Then paste the address your browser was sent to (or just the code) and press Enter; the code expires after 60 s:\n",
        ),
        Some(addr) => {
            let _ = writeln!(text, "listening on http://{addr} for the redirect");
        }
    }
    output.write_all(text.as_bytes()).await?;
    output.flush().await
}

async fn read_line<R: AsyncBufRead + Unpin>(mut input: R) -> Result<String, AuthorizeError> {
    let mut line = String::new();
    input.read_line(&mut line).await?;
    Ok(line)
}

/// What `disconnect` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnected {
    /// The refresh token was revoked at Lightspeed and the credentials deleted.
    Revoked,
    /// Lightspeed already considered the grant dead; the credentials were deleted.
    AlreadyInvalid,
    /// `--force`: the credentials were deleted without revoking them (the reason says why).
    Forgotten(String),
}

/// Revoke an account's refresh token at Lightspeed and delete its credentials (under the row lock, so
/// no refresh rotates the chain meanwhile). The mirrored data is kept. With `force`, credentials are
/// deleted even when they cannot be decrypted or revoked.
pub async fn disconnect(
    settings: &Settings,
    pool: &PgPool,
    account_id: AccountId,
    force: bool,
) -> anyhow::Result<Disconnected> {
    let keyring = Arc::new(Keyring::from_settings(&settings.security)?);
    let client = OAuthClient::from_settings(&settings.lightspeed)?;
    let store = TokenStore::new(pool.clone(), keyring);
    let mut tx = pool.begin().await?;
    let row = credentials::select_for_update(&mut *tx, account_id)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("account {account_id} is not connected (no stored credentials)")
        })?;
    let outcome = match store.decrypt_row(&row) {
        Err(e) if force => Disconnected::Forgotten(report(&e).to_string()),
        Err(e) => {
            anyhow::bail!(
                "{}; pass --force to delete the credentials without revoking them",
                report(&e)
            )
        }
        Ok(creds) => match client.revoke(&creds.refresh_token).await {
            Ok(()) => Disconnected::Revoked,
            Err(OAuthError::InvalidGrant { .. }) => Disconnected::AlreadyInvalid,
            Err(e) if force => Disconnected::Forgotten(format!("revoking failed: {}", report(&e))),
            Err(e) => anyhow::bail!(
                "could not revoke the tokens of account {account_id} at Lightspeed: {}; retry, or pass --force \
                 to delete the credentials without revoking them",
                report(&e)
            ),
        },
    };
    credentials::delete(&mut *tx, account_id).await?;
    tx.commit().await?;
    tracing::info!(account.id = account_id.get(), outcome = ?outcome, "account disconnected; its mirrored data is kept");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_queries_and_codes() {
        let r = parse_redirect("https://example.com/cb?code=abc&state=xyz\n").unwrap();
        assert_eq!(
            (r.code.as_deref(), r.state.as_deref(), r.is_url),
            (Some("abc"), Some("xyz"), true)
        );
        let r = parse_redirect("?code=abc&state=s").unwrap();
        assert_eq!(r.code.as_deref(), Some("abc"));
        let r = parse_redirect("  def502abc  ").unwrap();
        assert_eq!((r.code.as_deref(), r.is_url), (Some("def502abc"), false));
        let r = parse_redirect("https://e.com/cb?error=access_denied&error_description=no&state=s")
            .unwrap();
        assert_eq!(r.error.as_deref(), Some("access_denied"));
        assert!(matches!(parse_redirect(""), Err(AuthorizeError::NoCode)));
        assert!(matches!(
            parse_redirect("two words"),
            Err(AuthorizeError::NoCode)
        ));
    }

    #[test]
    fn html_is_escaped() {
        assert!(page("t", "<script>").0.contains("&lt;script&gt;"));
    }
}
