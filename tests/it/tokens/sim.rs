//! The token store against the project's simulator (`crate::sim`): authorize for two accounts
//! (stdin and `--listen`), refusals, single flight across pools in both rotation modes, a long run
//! through the API client, a revoked grant, and no secret in TRACE logs or in the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use lightspeed_sync::config::Settings;
use lightspeed_sync::lightspeed::TokenProvider;
use lightspeed_sync::lightspeed::api::ApiClient;
use lightspeed_sync::lightspeed::oauth::OAuthClient;
use lightspeed_sync::sim::{RotationMode, SimConfig, Simulator};
use lightspeed_sync::tokens::authorize::AuthorizeError;
use lightspeed_sync::tokens::{AccountStatus, TokenSource, list_accounts};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::tokens::authorize::{listen, run_flow, run_flow_slowly, stdin, unchanged};
use crate::tokens::helpers::{
    capture_logs, dump_database, fast_retries, key, settings_for, store_pair,
};

/// Prefixes every simulated secret starts with: refresh tokens and codes (`def50…`) and access
/// tokens (a JWT whose header starts `{"alg":"RS256"`).
const SECRET_PREFIXES: [&str; 2] = ["def50", "eyJhbGciOiJSUzI1NiIs"];

async fn sim(accounts: usize, rotation: RotationMode, token_lifetime: Duration) -> Simulator {
    Simulator::start(SimConfig {
        accounts,
        customers: 5,
        rotation,
        token_lifetime,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn settings(sim: &Simulator, key: &str) -> Settings {
    settings_for(
        &sim.base_url(),
        sim.client_id(),
        sim.client_secret(),
        sim.redirect_uri(),
        Some(key),
    )
}

fn source(settings: &Settings, pool: PgPool) -> TokenSource {
    TokenSource::from_settings(settings, pool)
        .unwrap()
        .with_retry_policy(fast_retries(3))
}

/// Store a simulator-issued pair as `authorize` would, already due for a refresh.
async fn store_due(sim: &Simulator, settings: &Settings, pool: &PgPool, account: u64) {
    let pair = sim.issue_tokens(account);
    store_pair(
        settings,
        pool,
        account,
        &(pair.access_token, pair.refresh_token),
        Utc::now(),
    )
    .await;
}

/// `text` without the hex digits of bytea values (`\x…`, as Postgres prints them): random
/// ciphertext in hex contains a short all-hex prefix such as `def50` about once in 10^6 positions.
fn without_bytea_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = rest[i + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - i - 2);
        out.push_str("<bytea>");
        rest = &rest[i + 2 + hex..];
    }
    out.push_str(rest);
    out
}

fn assert_clean(what: &str, text: &str, secret: &str) {
    assert!(!text.contains(secret), "{what} contains the client secret");
    let plain = without_bytea_hex(text);
    for prefix in SECRET_PREFIXES {
        let hex: String = prefix.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !plain.contains(prefix),
            "{what} contains a token ({prefix}…)"
        );
        assert!(
            !text.contains(&hex),
            "{what} contains a token in hex ({prefix}…)"
        );
    }
}

#[sqlx::test]
async fn authorize_two_accounts_via_stdin_and_listen(pool: PgPool) {
    let sim = sim(2, RotationMode::Deferred, Duration::from_secs(3600)).await;
    let s = settings(&sim, &key());
    let ids = sim.account_ids();
    for (i, options) in [stdin(), stdin(), listen(), listen()]
        .into_iter()
        .enumerate()
    {
        let run = run_flow(&s, &pool, options, unchanged).await;
        let connected = run.result.unwrap();
        assert_eq!(connected.account_id, ids[i % 2]);
        let line = format!(
            "connected account {} (Simulated Shop {} ({}))",
            ids[i % 2],
            i % 2 + 1,
            ids[i % 2]
        );
        assert_eq!(run.output.last().unwrap(), &line);
        if let Some(page) = run.page {
            assert!(page.contains("You can close this tab"), "{page}");
        }
    }
    let info = list_accounts(&pool).await.unwrap();
    assert_eq!(info.len(), 2, "re-authorizing replaced the rows");
    assert!(
        info.iter().all(|i| i.status == AccountStatus::Connected
            && i.account_name.starts_with("Simulated Shop"))
    );
    // The stored tokens work against the API.
    let source = source(&s, pool.clone());
    let api = ApiClient::new(&s.lightspeed, Arc::new(source)).unwrap();
    for id in ids {
        api.get_account_detail(id.into()).await.unwrap();
    }
    let c = sim.counters();
    assert_eq!(
        (c.code_exchanges, c.invalid_grants, c.revoked_token_requests),
        (4, 0, 0)
    );
}

#[sqlx::test]
async fn authorize_refusals_are_one_clear_line(pool: PgPool) {
    let sim = sim(1, RotationMode::Deferred, Duration::from_secs(3600)).await;
    let s = settings(&sim, &key());
    fn forged(location: String) -> String {
        location.replace("state=", "state=x")
    }
    let err = run_flow(&s, &pool, stdin(), forged)
        .await
        .result
        .unwrap_err();
    assert!(matches!(err, AuthorizeError::StateMismatch), "{err}");
    // The person takes 61 s: the code (60 s) has expired.
    let err = run_flow_slowly(&s, &pool, stdin(), unchanged, Some(Duration::from_secs(61)))
        .await
        .result
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the authorization code was rejected (expired after 60 s, already used, or for another client): run authorize again"
    );
    let wrong = settings_for(
        &sim.base_url(),
        sim.client_id(),
        "wrong-secret",
        sim.redirect_uri(),
        Some(&key()),
    );
    let err = run_flow(&wrong, &pool, stdin(), unchanged)
        .await
        .result
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid_client")
            && err.to_string().contains("lightspeed.client_secret"),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'));
    assert!(list_accounts(&pool).await.unwrap().is_empty());
    let c = sim.counters();
    assert_eq!(
        (c.code_exchanges, c.invalid_grants, c.invalid_clients),
        (0, 1, 1)
    );
}

/// 16 tasks in each of 3 pools (3 token sources, like 3 processes) need a refresh at the same
/// moment: exactly one token-endpoint call, one new token for all, zero invalid_grant.
async fn single_flight(rotation: RotationMode, opts: PgPoolOptions, connect: PgConnectOptions) {
    let sim = sim(1, rotation, Duration::from_secs(3600)).await;
    let account = sim.account_ids()[0];
    let s = settings(&sim, &key());
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(
            opts.clone()
                .max_connections(6)
                .connect_with(connect.clone())
                .await
                .unwrap(),
        );
    }
    store_due(&sim, &s, &pools[0], account).await;
    let sources: Vec<TokenSource> = pools.iter().map(|p| source(&s, p.clone())).collect();
    let before = sim.counters();
    let calls = sources
        .iter()
        .flat_map(|src| (0..16).map(move |_| src.access_token(account.into())));
    let tokens: Vec<String> = join_all(calls)
        .await
        .into_iter()
        .map(|t| t.unwrap().expose_secret().to_string())
        .collect();
    let c = sim.counters();
    assert_eq!(tokens.len(), 48);
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all 48 tasks hold the same new token"
    );
    assert_eq!(
        c.token_requests - before.token_requests,
        1,
        "{rotation:?}: one token-endpoint call"
    );
    assert_eq!((c.refreshes, c.invalid_grants), (1, 0), "{rotation:?}");
    // And the new token works for every source (no fork, nothing revoked).
    for src in sources {
        let api = ApiClient::new(&s.lightspeed, Arc::new(src)).unwrap();
        api.get_account_detail(account.into()).await.unwrap();
    }
    let c = sim.counters();
    assert_eq!(
        (
            c.revoked_token_requests,
            c.expired_token_requests,
            c.token_requests - before.token_requests
        ),
        (0, 0, 1)
    );
}

#[sqlx::test]
async fn single_flight_deferred_rotation(opts: PgPoolOptions, connect: PgConnectOptions) {
    single_flight(RotationMode::Deferred, opts, connect).await;
}

#[sqlx::test]
async fn single_flight_strict_rotation(opts: PgPoolOptions, connect: PgConnectOptions) {
    single_flight(RotationMode::Strict, opts, connect).await;
}

/// A long run: every few requests the simulator expires the access token (as a token lifetime of
/// seconds would, without sleeping). Each expiry costs exactly one 401 and one refresh; no
/// request is ever sent with an expired token after that 401; nothing fails. TRACE logs and the
/// database hold no token and no client secret.
#[sqlx::test]
async fn long_run_with_expiring_tokens(pool: PgPool) {
    let (logs, guard) = capture_logs();
    let sim = sim(2, RotationMode::Strict, Duration::from_secs(3600)).await;
    let s = settings(&sim, &key());
    run_flow(&s, &pool, stdin(), unchanged)
        .await
        .result
        .unwrap();
    let account = sim.account_ids()[0];
    let api = ApiClient::new(&s.lightspeed, Arc::new(source(&s, pool.clone()))).unwrap();
    let expiries = 25;
    for round in 0..expiries {
        for _ in 0..4 {
            api.get_account_detail(account.into())
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        sim.expire_access_tokens(account);
    }
    api.get_account_detail(account.into()).await.unwrap();
    let c = sim.counters();
    assert_eq!(c.refreshes, expiries, "one refresh per expiry");
    assert_eq!(
        c.expired_token_requests, expiries,
        "one 401 per expiry, never a second one"
    );
    assert_eq!((c.invalid_grants, c.revoked_token_requests), (0, 0));
    assert_eq!(
        c.token_requests,
        expiries + 1,
        "refreshes + the code exchange"
    );
    assert_eq!(
        list_accounts(&pool).await.unwrap()[0].status,
        AccountStatus::Connected
    );
    drop(guard);
    let text = logs.text();
    assert!(
        text.contains("refreshed the access token") && text.contains("TRACE"),
        "the log captured everything"
    );
    assert_clean("the TRACE log", &text, sim.client_secret());
    assert_clean(
        "the database",
        &dump_database(&pool).await,
        sim.client_secret(),
    );
}

/// A real token lifetime of 2 s: the source refreshes ahead of expiry (margin capped at half the
/// lifetime), so not a single request carries an expired token. Bounded by iterations.
#[sqlx::test]
async fn short_real_lifetime_is_refreshed_ahead(pool: PgPool) {
    let sim = sim(1, RotationMode::Deferred, Duration::from_secs(2)).await;
    let s = settings(&sim, &key());
    run_flow(&s, &pool, stdin(), unchanged)
        .await
        .result
        .unwrap();
    let account = sim.account_ids()[0];
    let api = ApiClient::new(&s.lightspeed, Arc::new(source(&s, pool.clone()))).unwrap();
    for _ in 0..20_000 {
        api.get_account_detail(account.into()).await.unwrap();
        if sim.counters().refreshes >= 3 {
            break;
        }
    }
    let c = sim.counters();
    assert!(c.refreshes >= 3, "refreshed {} times", c.refreshes);
    assert_eq!(
        (
            c.expired_token_requests,
            c.revoked_token_requests,
            c.invalid_grants
        ),
        (0, 0, 0)
    );
}

#[sqlx::test]
async fn revoked_grant_needs_reauth_while_another_account_goes_on(pool: PgPool) {
    let sim = sim(2, RotationMode::Deferred, Duration::from_secs(3600)).await;
    let (a, b) = (sim.account_ids()[0], sim.account_ids()[1]);
    let s = settings(&sim, &key());
    store_due(&sim, &s, &pool, a).await;
    store_due(&sim, &s, &pool, b).await;
    sim.revoke_refresh_tokens(a);
    let source = source(&s, pool.clone());
    let before = sim.counters().token_requests;
    let err = source.access_token(a.into()).await.unwrap_err();
    assert!(err.needs_reauth, "{err}");
    let spent = sim.counters().token_requests - before;
    assert!(
        spent <= 2,
        "needs_reauth after {spent} token-endpoint calls"
    );
    let info = list_accounts(&pool).await.unwrap();
    let status = |id: u64| info.iter().find(|i| i.account_id == id).unwrap().status;
    assert_eq!(
        (status(a), status(b)),
        (AccountStatus::NeedsReauth, AccountStatus::Connected)
    );
    // b keeps getting fresh tokens, a is refused without touching the token endpoint.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        sqlx::query("UPDATE lightspeed_sync.credentials SET access_expires_at = now() WHERE account_id = $1")
            .bind(b as i64)
            .execute(&pool)
            .await
            .unwrap();
        assert!(
            seen.insert(
                source
                    .access_token(b.into())
                    .await
                    .unwrap()
                    .expose_secret()
                    .to_string()
            )
        );
        assert!(
            source
                .access_token(a.into())
                .await
                .unwrap_err()
                .needs_reauth
        );
    }
    let c = sim.counters();
    assert_eq!(
        c.token_requests - before,
        spent + 5,
        "only b's five refreshes"
    );
    assert_eq!(c.invalid_grants, 1);
}

/// A process that received a new pair and died before saving it: with Lightspeed's deferred
/// revocation the stored (older) refresh token still works, because the new access token was
/// never used. This is why the pair is committed before its access token is used.
#[sqlx::test]
async fn a_crash_before_saving_loses_nothing(pool: PgPool) {
    let sim = sim(1, RotationMode::Deferred, Duration::from_secs(3600)).await;
    let account = sim.account_ids()[0];
    let s = settings(&sim, &key());
    let pair = sim.issue_tokens(account);
    store_pair(
        &s,
        &pool,
        account,
        &(pair.access_token, pair.refresh_token.clone()),
        Utc::now(),
    )
    .await;
    // The "crashed" process: refreshed, got a pair, never stored or used it.
    let lost = OAuthClient::from_settings(&s.lightspeed)
        .unwrap()
        .refresh(&SecretString::from(pair.refresh_token))
        .await;
    drop(lost.unwrap());
    let api = ApiClient::new(&s.lightspeed, Arc::new(source(&s, pool.clone()))).unwrap();
    api.get_account_detail(account.into()).await.unwrap();
    let c = sim.counters();
    assert_eq!(
        (c.refreshes, c.invalid_grants, c.revoked_token_requests),
        (2, 0, 0)
    );
}

#[test]
fn bytea_hex_is_left_out_of_the_plain_check() {
    let dump = r"row: (1,\x00def5012ab,def50200real)";
    let plain = without_bytea_hex(dump);
    assert_eq!(plain, "row: (1,<bytea>,def50200real)");
}
