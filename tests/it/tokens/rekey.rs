//! Key rotation end to end, against the simulator and the real binary: rows written under the old
//! key still sync once the new key is current (`security.previous_token_keys`), `rekey` rewrites
//! them under the new key (idempotently, without touching the token chain, waiting for a refresh in
//! flight), after which the old key can go; a row no configured key can read is a clear error that
//! names the account and leaves the row as it was.

use std::process::Output;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use chrono::Utc;
use lightspeed_sync::sim::{SimConfig, Simulator};
use lightspeed_sync::tokens::crypto::{self, Keyring, TokenField, TokenKey};
use lightspeed_sync::tokens::store::TokenStore;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::tokens::helpers::{key, settings_for, store_pair};

async fn sim(accounts: usize) -> Simulator {
    Simulator::start(SimConfig {
        accounts,
        customers: 5,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Where the binary runs: the simulator, the test's database, and the keys.
struct Setup<'a> {
    sim: &'a Simulator,
    database_url: String,
}

impl Setup<'_> {
    fn command(&self, args: &[&str], key: &str, previous: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LSSYNC__DATABASE__URL", &self.database_url)
            .env("LSSYNC__LIGHTSPEED__API_BASE_URL", self.sim.base_url())
            .env("LSSYNC__LIGHTSPEED__AUTH_BASE_URL", self.sim.base_url())
            .env("LSSYNC__LIGHTSPEED__CLIENT_ID", self.sim.client_id())
            .env(
                "LSSYNC__LIGHTSPEED__CLIENT_SECRET",
                self.sim.client_secret(),
            )
            .env("LSSYNC__SECURITY__TOKEN_KEY", key)
            .env("LSSYNC__LOG__FORMAT", "json")
            .kill_on_drop(true);
        if !previous.is_empty() {
            c.env("LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS", previous.join(","));
        }
        c
    }

    async fn run(&self, args: &[&str], key: &str, previous: &[&str]) -> Output {
        tokio::time::timeout(
            Duration::from_secs(120),
            self.command(args, key, previous).output(),
        )
        .await
        .expect("the command finished")
        .unwrap()
    }

    /// `sync`, asserting that it succeeded.
    async fn sync_ok(&self, key: &str, previous: &[&str]) {
        let out = self.run(&["sync"], key, previous).await;
        assert!(out.status.success(), "sync failed:\n{}", text(&out));
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn version_of(key_text: &str) -> i32 {
    TokenKey::from_base64(&SecretString::from(key_text.to_string()))
        .unwrap()
        .version()
}

/// `(account_id, key_version, generation)` of every row.
async fn rows(pool: &PgPool) -> Vec<(i64, i32, i64)> {
    sqlx::query_as(
        "SELECT account_id, key_version, generation FROM lightspeed_sync.credentials ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Succeeded runs per account (both streams).
async fn succeeded_runs(pool: &PgPool, account: u64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM lightspeed_sync.runs WHERE account_id = $1 AND status = 'succeeded'",
    )
    .bind(account as i64)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A whole credentials row as text (ciphertexts included), to compare before and after.
async fn row_text(pool: &PgPool, account: u64) -> String {
    sqlx::query_scalar("SELECT c::text FROM lightspeed_sync.credentials c WHERE account_id = $1")
        .bind(account as i64)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Store a fresh simulator pair for `account` under `key`, expiring `expires_in` from now.
async fn connect(setup: &Setup<'_>, pool: &PgPool, account: u64, key: &str, expires_in: i64) {
    let settings = settings_for(
        &setup.sim.base_url(),
        setup.sim.client_id(),
        setup.sim.client_secret(),
        setup.sim.redirect_uri(),
        Some(key),
    );
    let pair = setup.sim.issue_tokens(account);
    store_pair(
        &settings,
        pool,
        account,
        &(pair.access_token, pair.refresh_token),
        Utc::now() + chrono::Duration::seconds(expires_in),
    )
    .await;
}

#[sqlx::test]
async fn rotate_rekey_then_drop_the_old_key_and_every_account_still_syncs(pool: PgPool) {
    let sim = sim(4).await;
    let setup = Setup {
        sim: &sim,
        database_url: crate::common::database_url(&pool),
    };
    let ids = sim.account_ids();
    let (old, new) = (key(), key());
    let (v_old, v_new) = (version_of(&old), version_of(&new));
    assert_ne!(v_old, v_new);
    // Three accounts connected under the old key; the first one's access token is due, so the next
    // sync refreshes it (and writes the new pair under whatever key is current then).
    for (i, &id) in ids[..3].iter().enumerate() {
        connect(&setup, &pool, id, &old, if i == 0 { -60 } else { 3600 }).await;
    }
    let rows_of = |v: i32| {
        ids[..3]
            .iter()
            .map(move |&id| (id as i64, v))
            .collect::<Vec<_>>()
    };
    let versions = |r: &[(i64, i32, i64)]| r.iter().map(|&(a, v, _)| (a, v)).collect::<Vec<_>>();
    assert_eq!(versions(&rows(&pool).await), rows_of(v_old));

    // The new key becomes current, the old one is kept for reading: every account syncs.
    setup.sync_ok(&new, &[&old]).await;
    for &id in &ids[..3] {
        assert_eq!(succeeded_runs(&pool, id).await, 2, "account {id} synced");
    }
    let before = rows(&pool).await;
    assert_eq!(
        versions(&before),
        [
            (ids[0] as i64, v_new),
            (ids[1] as i64, v_old),
            (ids[2] as i64, v_old)
        ],
        "the refreshed pair was written with the new key, the others are still under the old one"
    );

    // rekey re-encrypts the two old rows and leaves the token chain alone (same generation).
    let out = setup.run(&["rekey"], &new, &[&old]).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("re-encrypted 2, already current 1, failed 0"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains(&format!(
            "account {}: re-encrypted (key version {v_old} -> {v_new})",
            ids[1]
        )),
        "{stdout}"
    );
    let after = rows(&pool).await;
    assert_eq!(versions(&after), rows_of(v_new));
    assert_eq!(
        after.iter().map(|r| r.2).collect::<Vec<_>>(),
        before.iter().map(|r| r.2).collect::<Vec<_>>(),
        "rekey does not touch the generations"
    );
    // Idempotent.
    let out = setup.run(&["rekey"], &new, &[&old]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("re-encrypted 0, already current 3, failed 0"),
        "{}",
        text(&out)
    );
    assert_eq!(rows(&pool).await, after);

    // The old key is gone from the configuration: every account still syncs.
    setup.sync_ok(&new, &[]).await;
    for &id in &ids[..3] {
        assert_eq!(succeeded_runs(&pool, id).await, 4, "account {id} synced");
    }

    // An account whose row was written under a key that is not configured: a clear error naming
    // it, for that account only, and its row is left exactly as it was (never a reset).
    let stranger = ids[3];
    connect(&setup, &pool, stranger, &key(), 3600).await;
    let untouched = row_text(&pool, stranger).await;
    let out = setup.run(&["sync"], &new, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot decrypt the tokens of account {stranger}"))
            && stderr.contains("security.previous_token_keys"),
        "{}",
        text(&out)
    );
    for &id in &ids[..3] {
        assert_eq!(succeeded_runs(&pool, id).await, 6, "account {id} synced");
    }
    assert_eq!(row_text(&pool, stranger).await, untouched);

    let out = setup.run(&["rekey"], &new, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("re-encrypted 0, already current 3, failed 1"),
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "could not re-encrypt the credentials of account {stranger}"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(row_text(&pool, stranger).await, untouched);
    let status: String =
        sqlx::query_scalar("SELECT status FROM lightspeed_sync.credentials WHERE account_id = $1")
            .bind(stranger as i64)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "connected");
}

/// Encrypt as releases before derived key versions did: key version 1 in the associated data.
fn legacy_ciphertext(key_text: &str, account: u64, field: TokenField, plain: &str) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key_text)
        .unwrap();
    let cipher = Aes256Gcm::new_from_slice(&bytes).unwrap();
    let nonce = [7u8; 12];
    let aad = crypto::associated_data(account.into(), crypto::LEGACY_KEY_VERSION, field);
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap(),
    );
    out
}

#[sqlx::test]
async fn rows_of_the_single_key_era_rotate_without_reauthorizing(pool: PgPool) {
    let sim = sim(1).await;
    let setup = Setup {
        sim: &sim,
        database_url: crate::common::database_url(&pool),
    };
    let id = sim.account_ids()[0];
    let old = key();
    let pair = sim.issue_tokens(id);
    sqlx::query(
        "INSERT INTO lightspeed_sync.credentials (account_id, account_name, key_version, \
         access_token_enc, refresh_token_enc, access_expires_at, generation, status, connected_at) \
         VALUES ($1, '', 1, $2, $3, now() + interval '1 hour', 1, 'connected', now())",
    )
    .bind(id as i64)
    .bind(legacy_ciphertext(
        &old,
        id,
        TokenField::Access,
        &pair.access_token,
    ))
    .bind(legacy_ciphertext(
        &old,
        id,
        TokenField::Refresh,
        &pair.refresh_token,
    ))
    .execute(&pool)
    .await
    .unwrap();

    // The key the row was written with, as the current key or as an older one: it syncs.
    setup.sync_ok(&old, &[]).await;
    let new = key();
    setup.sync_ok(&new, &[&old]).await;
    let out = setup.run(&["rekey"], &new, &[&old]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "account {id}: re-encrypted (key version 1 -> {})",
            version_of(&new)
        )),
        "{}",
        text(&out)
    );
    setup.sync_ok(&new, &[]).await;
    assert_eq!(succeeded_runs(&pool, id).await, 6);
}

#[sqlx::test]
async fn rekey_waits_for_a_refresh_in_flight_and_re_encrypts_its_new_pair(pool: PgPool) {
    let sim = sim(1).await;
    let setup = Setup {
        sim: &sim,
        database_url: crate::common::database_url(&pool),
    };
    let id = sim.account_ids()[0];
    let (old, new) = (key(), key());
    connect(&setup, &pool, id, &old, 3600).await;

    // A daemon still on the old key refreshes: it holds the row lock while it talks to Lightspeed.
    let old_ring = std::sync::Arc::new(
        Keyring::from_settings(
            &settings_for(&sim.base_url(), "c", "s", "https://x/cb", Some(&old)).security,
        )
        .unwrap(),
    );
    let mut refresh = pool.begin().await.unwrap();
    let row = lightspeed_sync::db::credentials::select_for_update(&mut *refresh, id.into())
        .await
        .unwrap()
        .unwrap();
    let mut rekey = setup.command(&["rekey"], &new, &[&old]);
    let rekey = rekey
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait until rekey is blocked on that lock.
    let db = crate::common::database_name(&pool);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&db)
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rekey never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The refresh stores its rotated pair (under the old key) and commits.
    let rotated = sim.issue_tokens(id);
    let (access, refresh_token) = (
        SecretString::from(rotated.access_token.clone()),
        SecretString::from(rotated.refresh_token.clone()),
    );
    let (v, access_enc, refresh_enc) = TokenStore::new(pool.clone(), old_ring).encrypt_pair(
        id.into(),
        &lightspeed_sync::tokens::store::NewTokens {
            access_token: &access,
            refresh_token: &refresh_token,
            access_expires_at: Utc::now() + chrono::Duration::hours(1),
        },
    );
    let pair = lightspeed_sync::db::credentials::EncryptedPair {
        key_version: v,
        access_token_enc: &access_enc,
        refresh_token_enc: &refresh_enc,
        access_expires_at: Utc::now() + chrono::Duration::hours(1),
    };
    lightspeed_sync::db::credentials::update_rotated(
        &mut *refresh,
        id.into(),
        row.generation,
        &pair,
    )
    .await
    .unwrap()
    .expect("stored the rotated pair");
    refresh.commit().await.unwrap();

    let out = tokio::time::timeout(Duration::from_secs(60), rekey.wait_with_output())
        .await
        .expect("rekey finished")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("re-encrypted 1, already current 0, failed 0"),
        "{}",
        text(&out)
    );
    // What rekey wrote is the rotated pair, under the new key only.
    let new_only = std::sync::Arc::new(
        Keyring::from_settings(
            &settings_for(&sim.base_url(), "c", "s", "https://x/cb", Some(&new)).security,
        )
        .unwrap(),
    );
    let stored = TokenStore::new(pool.clone(), new_only)
        .load(id.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.refresh_token.expose_secret(), rotated.refresh_token);
    assert_eq!(stored.access_token.expose_secret(), rotated.access_token);
    assert_eq!(stored.generation, row.generation + 1);
    setup.sync_ok(&new, &[]).await;
}
