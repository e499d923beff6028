//! The token source against the rotating fake and a real Postgres: single flight across tasks and
//! pools, 401 handling, failure classes, no secrets in logs or in the database.

use std::sync::Arc;

use chrono::{Duration as Ch, Utc};
use futures::future::join_all;
use lightspeed_sync::lightspeed::TokenProvider;
use lightspeed_sync::lightspeed::oauth::TOKEN_PATH;
use lightspeed_sync::tokens::{AccountStatus, TokenSource, list_accounts};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::tokens::helpers::{
    CLIENT_SECRET, FakeAuth, assert_no_secret, capture_logs, dump_database, fast_retries, key,
    settings, store_pair,
};

fn source(fake: &FakeAuth, key: &str, pool: PgPool) -> TokenSource {
    TokenSource::from_settings(&settings(fake, Some(key)), pool)
        .unwrap()
        .with_retry_policy(fast_retries(3))
}

#[sqlx::test]
async fn a_fresh_token_is_served_without_the_token_endpoint(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let key = key();
    let pair = fake.issue(1);
    store_pair(
        &settings(&fake, Some(&key)),
        &pool,
        1,
        &pair,
        Utc::now() + Ch::hours(1),
    )
    .await;
    let source = source(&fake, &key, pool);
    for _ in 0..5 {
        assert_eq!(
            source.access_token(1.into()).await.unwrap().expose_secret(),
            pair.0
        );
    }
    assert_eq!(fake.token_calls().await, 0);
}

#[sqlx::test]
async fn an_expiring_token_is_refreshed_once_and_stored_before_use(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let key = key();
    let pair = fake.issue(1);
    store_pair(&settings(&fake, Some(&key)), &pool, 1, &pair, Utc::now()).await;
    let source = source(&fake, &key, pool.clone());
    let new = source.access_token(1.into()).await.unwrap();
    assert_ne!(new.expose_secret(), pair.0);
    // What was returned is what is stored (durable before use), under generation 2.
    let stored = source.store().load(1.into()).await.unwrap().unwrap();
    assert_eq!(stored.access_token.expose_secret(), new.expose_secret());
    assert_eq!(stored.generation, 2);
    assert!(
        list_accounts(&pool).await.unwrap()[0]
            .refreshed_at
            .is_some()
    );
    assert_eq!(
        source.access_token(1.into()).await.unwrap().expose_secret(),
        new.expose_secret()
    );
    assert_eq!(fake.token_calls().await, 1);
}

/// 16 tasks in each of 3 pools (each with its own token source, like 3 processes) all need a
/// refresh at once: one token-endpoint call, one new token for everybody, no `invalid_grant`.
#[sqlx::test]
async fn concurrent_refreshes_across_pools_are_single_flight(
    opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let fake = FakeAuth::start(&[7]).await;
    let key = key();
    let pools: Vec<PgPool> = join_all((0..3).map(|_| {
        opts.clone()
            .max_connections(8)
            .connect_with(connect.clone())
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let pair = fake.issue(7);
    store_pair(
        &settings(&fake, Some(&key)),
        &pools[0],
        7,
        &pair,
        Utc::now(),
    )
    .await;
    let sources: Vec<TokenSource> = pools
        .iter()
        .map(|p| source(&fake, &key, p.clone()))
        .collect();
    let tasks = sources
        .iter()
        .flat_map(|s| (0..16).map(move |_| s.access_token(7.into())));
    let tokens: Vec<String> = join_all(tasks)
        .await
        .into_iter()
        .map(|t| t.unwrap().expose_secret().to_string())
        .collect();
    assert_eq!(tokens.len(), 48);
    assert!(
        tokens.iter().all(|t| t == &tokens[0] && t != &pair.0),
        "everybody got the one new token"
    );
    assert_eq!(
        fake.token_calls().await,
        1,
        "exactly one call to the token endpoint"
    );
    assert_eq!(fake.counts(), (1, 0), "one refresh, zero invalid_grant");
}

#[sqlx::test]
async fn a_rejected_token_is_replaced_once(opts: PgPoolOptions, connect: PgConnectOptions) {
    let fake = FakeAuth::start(&[3]).await;
    let key = key();
    let a = opts.clone().connect_with(connect.clone()).await.unwrap();
    let b = opts.connect_with(connect).await.unwrap();
    let pair = fake.issue(3);
    store_pair(
        &settings(&fake, Some(&key)),
        &a,
        3,
        &pair,
        Utc::now() + Ch::hours(1),
    )
    .await;
    let (sa, sb) = (source(&fake, &key, a), source(&fake, &key, b));
    let old = sa.access_token(3.into()).await.unwrap();
    assert_eq!(
        sb.access_token(3.into()).await.unwrap().expose_secret(),
        old.expose_secret()
    );
    // Both processes get a 401 for the same token at once: one refresh.
    let (x, y) = tokio::join!(
        sa.token_rejected(3.into(), &old),
        sb.token_rejected(3.into(), &old)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.expose_secret(), y.expose_secret());
    assert_ne!(x.expose_secret(), old.expose_secret());
    assert_eq!(fake.token_calls().await, 1);
    // A late 401 for the old token returns the newer one without a call; the cache follows generations.
    assert_eq!(
        sb.token_rejected(3.into(), &old)
            .await
            .unwrap()
            .expose_secret(),
        x.expose_secret()
    );
    assert_eq!(
        sb.access_token(3.into()).await.unwrap().expose_secret(),
        x.expose_secret()
    );
    assert_eq!(fake.token_calls().await, 1);
}

#[sqlx::test]
async fn a_revoked_grant_needs_reauth_and_other_accounts_go_on(pool: PgPool) {
    let fake = FakeAuth::start(&[1, 2]).await;
    let key = key();
    let s = settings(&fake, Some(&key));
    store_pair(&s, &pool, 1, &fake.issue(1), Utc::now()).await;
    store_pair(&s, &pool, 2, &fake.issue(2), Utc::now()).await;
    fake.revoke(1);
    let (logs, _guard) = capture_logs();
    let source = source(&fake, &key, pool.clone());
    let err = source.access_token(1.into()).await.unwrap_err();
    assert!(err.needs_reauth, "{err}");
    assert!(
        err.to_string().contains("lightspeed-sync authorize"),
        "{err}"
    );
    assert!(fake.token_calls().await <= 2);
    let calls = fake.token_calls().await;
    // Refused from now on without calling the token endpoint.
    assert!(
        source
            .access_token(1.into())
            .await
            .unwrap_err()
            .needs_reauth
    );
    assert_eq!(fake.token_calls().await, calls);
    let info = list_accounts(&pool).await.unwrap();
    assert_eq!(info[0].status, AccountStatus::NeedsReauth);
    assert!(
        info[0]
            .status_reason
            .as_deref()
            .unwrap()
            .contains("invalid_grant")
    );
    assert!(info[0].status_changed_at.is_some());
    // The other account keeps working.
    assert!(source.access_token(2.into()).await.is_ok());
    assert_eq!(info[1].status, AccountStatus::Connected);
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("needs re-authorization"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line: {text}");
    assert!(lines[0].contains("account 1") && lines[0].contains("lightspeed-sync authorize"));
}

#[sqlx::test]
async fn transient_failures_are_retried_and_never_need_reauth(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let key = key();
    store_pair(
        &settings(&fake, Some(&key)),
        &pool,
        1,
        &fake.issue(1),
        Utc::now(),
    )
    .await;
    let unavailable = || ResponseTemplate::new(503).insert_header("Retry-After", "0");
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(unavailable())
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&fake.server)
        .await;
    let source = source(&fake, &key, pool.clone());
    assert!(
        source.access_token(1.into()).await.is_ok(),
        "two 503s then success"
    );
    assert_eq!(fake.token_calls().await, 3);

    // Down for longer than the retries: a failure, but never needs_reauth, and the row is intact.
    sqlx::query("UPDATE lightspeed_sync.credentials SET access_expires_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(500))
        .with_priority(1)
        .mount(&fake.server)
        .await;
    let err = source.access_token(1.into()).await.unwrap_err();
    assert!(!err.needs_reauth, "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(fake.token_calls().await, 6);
    assert_eq!(
        list_accounts(&pool).await.unwrap()[0].status,
        AccountStatus::Connected
    );
}

#[sqlx::test]
async fn a_bad_client_secret_is_not_a_dead_grant(pool: PgPool) {
    let fake = FakeAuth::start(&[1]).await;
    let key = key();
    let s = settings(&fake, Some(&key));
    store_pair(&s, &pool, 1, &fake.issue(1), Utc::now()).await;
    let wrong = crate::tokens::helpers::settings_for(
        &fake.server.uri(),
        "fake-client",
        "wrong-secret",
        "https://x/cb",
        Some(&key),
    );
    let source = TokenSource::from_settings(&wrong, pool.clone()).unwrap();
    let err = source.access_token(1.into()).await.unwrap_err();
    assert!(!err.needs_reauth);
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert_eq!(
        list_accounts(&pool).await.unwrap()[0].status,
        AccountStatus::Connected
    );
}

#[sqlx::test]
async fn a_wrong_key_is_a_clear_error_and_resets_nothing(pool: PgPool) {
    let fake = FakeAuth::start(&[4]).await;
    let key1 = key();
    store_pair(
        &settings(&fake, Some(&key1)),
        &pool,
        4,
        &fake.issue(4),
        Utc::now() + Ch::hours(1),
    )
    .await;
    let before = dump_database(&pool).await;
    let err = source(&fake, &crate::tokens::helpers::key(), pool.clone())
        .access_token(4.into())
        .await
        .unwrap_err();
    // Key versions are fingerprints of the keys: another key is another version, named as such.
    let text = err.to_string();
    assert!(
        text.starts_with("account 4: cannot decrypt the tokens of account 4: they were encrypted with key version ")
            && text.contains("security.previous_token_keys"),
        "{text}"
    );
    assert!(!err.needs_reauth);
    assert_eq!(dump_database(&pool).await, before, "nothing was reset");
    assert_eq!(fake.token_calls().await, 0);
}

#[sqlx::test]
async fn tampered_or_moved_ciphertexts_are_refused(pool: PgPool) {
    let fake = FakeAuth::start(&[4, 5]).await;
    let key = key();
    let s = settings(&fake, Some(&key));
    store_pair(&s, &pool, 4, &fake.issue(4), Utc::now() + Ch::hours(1)).await;
    store_pair(&s, &pool, 5, &fake.issue(5), Utc::now() + Ch::hours(1)).await;
    let source = source(&fake, &key, pool.clone());
    // Move account 5's access ciphertext onto account 4: bound to the account, so it fails.
    sqlx::query(
        "UPDATE lightspeed_sync.credentials SET access_token_enc = \
         (SELECT access_token_enc FROM lightspeed_sync.credentials WHERE account_id = 5) WHERE account_id = 4",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        source
            .access_token(4.into())
            .await
            .unwrap_err()
            .to_string()
            .contains("tampered")
    );
    // Flip one byte of account 5's refresh ciphertext.
    sqlx::query(
        "UPDATE lightspeed_sync.credentials SET refresh_token_enc = \
         set_byte(refresh_token_enc, 20, get_byte(refresh_token_enc, 20) # 1) WHERE account_id = 5",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(
        source
            .access_token(5.into())
            .await
            .unwrap_err()
            .to_string()
            .contains("tampered")
    );
}

#[sqlx::test]
async fn reauthorizing_replaces_credentials_and_reconnects(pool: PgPool) {
    let fake = FakeAuth::start(&[9]).await;
    let key = key();
    let s = settings(&fake, Some(&key));
    store_pair(&s, &pool, 9, &fake.issue(9), Utc::now()).await;
    lightspeed_sync::tokens::mark_needs_reauth(&pool, 9.into(), "test")
        .await
        .unwrap();
    let source = source(&fake, &key, pool.clone());
    assert!(
        source
            .access_token(9.into())
            .await
            .unwrap_err()
            .needs_reauth
    );
    let fresh = fake.issue(9);
    store_pair(&s, &pool, 9, &fresh, Utc::now() + Ch::hours(1)).await;
    assert_eq!(
        source.access_token(9.into()).await.unwrap().expose_secret(),
        fresh.0
    );
    let info = &list_accounts(&pool).await.unwrap()[0];
    assert_eq!(
        (info.status, info.status_reason.as_deref()),
        (AccountStatus::Connected, None)
    );
}

/// Many rotations driven by expiring tokens (no sleeps): every expiry and every 401 answered by
/// exactly one refresh, nothing fails; logs, `Debug` and the database hold no secret.
#[sqlx::test]
async fn many_rotations_leak_nothing(pool: PgPool) {
    let fake = FakeAuth::start(&[11]).await;
    let key = key();
    let (logs, _guard) = capture_logs();
    store_pair(
        &settings(&fake, Some(&key)),
        &pool,
        11,
        &fake.issue(11),
        Utc::now() + Ch::hours(1),
    )
    .await;
    let source = Arc::new(source(&fake, &key, pool.clone()));
    let mut seen = std::collections::HashSet::new();
    for round in 0..40 {
        // Every other round the stored token is made to look expired; otherwise the API "rejects" it.
        let token = source.access_token(11.into()).await.unwrap();
        let token = if round % 2 == 0 {
            sqlx::query("UPDATE lightspeed_sync.credentials SET access_expires_at = now()")
                .execute(&pool)
                .await
                .unwrap();
            source.access_token(11.into()).await.unwrap()
        } else {
            source.token_rejected(11.into(), &token).await.unwrap()
        };
        assert!(
            seen.insert(token.expose_secret().to_string()),
            "a new token each round"
        );
    }
    assert_eq!(fake.counts(), (40, 0), "40 refreshes, no invalid_grant");
    assert_eq!(fake.token_calls().await, 40);
    drop(_guard);
    let mut secrets = fake.issued();
    secrets.push(CLIENT_SECRET.to_string());
    secrets.push(key.clone());
    assert_no_secret("the TRACE log", &logs.text(), &secrets);
    assert!(
        logs.text().contains("refreshed the access token"),
        "the log captured the run"
    );
    assert_no_secret("the database", &dump_database(&pool).await, &secrets);
    let debug = format!(
        "{source:?} {:?}",
        source.store().load(11.into()).await.unwrap()
    );
    assert_no_secret("Debug output", &debug, &secrets);
    let _: &SecretString = &source.access_token(11.into()).await.unwrap();
}

/// Disconnect and authorize again: the new row starts at generation 1 again, yet the cached token
/// of the old row is never served (the cache is keyed by `connected_at` and generation).
#[sqlx::test]
async fn a_new_row_never_serves_the_old_cached_token(pool: PgPool) {
    let fake = FakeAuth::start(&[8]).await;
    let key = key();
    let s = settings(&fake, Some(&key));
    let old = fake.issue(8);
    store_pair(&s, &pool, 8, &old, Utc::now() + Ch::hours(1)).await;
    let source = source(&fake, &key, pool.clone());
    assert_eq!(
        source.access_token(8.into()).await.unwrap().expose_secret(),
        old.0
    );
    lightspeed_sync::tokens::store::delete(&pool, 8.into())
        .await
        .unwrap();
    let new = fake.issue(8);
    store_pair(&s, &pool, 8, &new, Utc::now() + Ch::hours(1)).await;
    assert_eq!(
        source.access_token(8.into()).await.unwrap().expose_secret(),
        new.0
    );
    assert_eq!(fake.token_calls().await, 0);
}
