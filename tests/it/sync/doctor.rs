//! `doctor` against the simulator and a real Postgres: it passes when everything works, names the
//! account and what to do when the key is wrong, names the database when it is down, and its output
//! holds no token, secret or customer data.

use lightspeed_sync::cli::doctor::{DoctorArgs, check};
use lightspeed_sync::config::Settings;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::sync::helpers::{Env, env, fast, settings_for};

async fn doctor(settings: &Settings, accounts: Vec<u64>) -> (usize, String) {
    let mut out = Vec::new();
    let failed = check(
        settings,
        &DoctorArgs {
            accounts: accounts.into_iter().map(Into::into).collect(),
        },
        &mut out,
    )
    .await
    .unwrap();
    (failed, String::from_utf8(out).unwrap())
}

/// The env's settings, with the test's database.
async fn settings(env: &Env, extra: &[(&str, &str)]) -> Settings {
    let db = crate::common::database_url(&env.pool);
    let key = env.settings.security.token_key().unwrap();
    let mut vars = vec![
        ("LSSYNC__DATABASE__URL", db.as_str()),
        ("LSSYNC__SECURITY__TOKEN_KEY", key.expose_secret()),
    ];
    vars.extend_from_slice(extra);
    settings_for(&env.sim, &vars)
}

/// Every secret and every piece of customer data the output must not hold.
async fn assert_no_secret_or_personal_data(env: &Env, settings: &Settings, out: &str) {
    let mut secrets = vec![
        env.sim.client_secret().to_string(),
        settings
            .security
            .token_key()
            .unwrap()
            .expose_secret()
            .to_string(),
    ];
    for account in env.sim.account_ids() {
        if let Ok(Some(stored)) = env.tokens.store().load(account.into()).await {
            secrets.push(stored.access_token.expose_secret().to_string());
            secrets.push(stored.refresh_token.expose_secret().to_string());
        }
    }
    for account in env.sim.account_ids() {
        for c in env.sim.truth(account) {
            secrets.extend(c.emails.iter().map(|e| e.0.clone()));
            secrets.extend(c.phones.iter().map(|p| p.0.clone()));
            if c.last_name.len() > 3 {
                secrets.push(c.last_name.clone());
            }
        }
    }
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !out.contains(s.as_str()),
            "doctor printed a secret or personal data: {s:?}\n{out}"
        );
    }
    // Token shapes: JWTs start `eyJ`, the simulator's refresh tokens `def50200`.
    assert!(!out.contains("eyJ") && !out.contains("def50200"), "{out}");
}

#[sqlx::test]
async fn doctor_passes_against_the_simulator_and_prints_no_secret(pool: PgPool) {
    let env = env(pool, fast(2, 120)).await;
    let settings = settings(&env, &[]).await;
    let (failed, out) = doctor(&settings, vec![]).await;
    eprintln!("{out}");
    assert_eq!(failed, 0, "{out}");
    for account in env.sim.account_ids() {
        for check in [
            "credentials decrypt",
            "Account.json lists it",
            "parsed (the documented bare shape)",
            "customer(s) parsed",
        ] {
            assert!(
                out.lines().any(|l| l.starts_with("ok")
                    && l.contains(&format!("account {account}"))
                    && l.contains(check)),
                "{account}: {check}\n{out}"
            );
        }
        assert!(
            out.contains(&format!("account {account}: rate limit: bucket")),
            "{out}"
        );
        assert!(
            out.contains(&format!("account {account}: 120 customers")),
            "{out}"
        );
    }
    assert!(
        !out.contains("note"),
        "the simulator sends nothing unexpected:\n{out}"
    );
    assert_no_secret_or_personal_data(&env, &settings, &out).await;
}

#[sqlx::test]
async fn doctor_names_the_account_and_the_key_when_the_key_is_wrong(pool: PgPool) {
    let env = env(pool, fast(1, 20)).await;
    let other = lightspeed_sync::tokens::crypto::generate_key_base64();
    let settings = settings(&env, &[("LSSYNC__SECURITY__TOKEN_KEY", other.as_str())]).await;
    let (failed, out) = doctor(&settings, vec![]).await;
    assert_eq!(failed, 1, "{out}");
    let account = env.sim.account_ids()[0];
    let line = out.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(
        line.contains(&format!("account {account}")) && line.contains("security.token_key"),
        "{line}"
    );
    assert_no_secret_or_personal_data(&env, &settings, &out).await;
}

#[sqlx::test]
async fn doctor_names_the_database_when_it_is_down(pool: PgPool) {
    let env = env(pool, fast(1, 5)).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/lightspeed");
    let settings = settings(&env, &[("LSSYNC__DATABASE__URL", url.as_str())]).await;
    let (failed, out) = doctor(&settings, vec![]).await;
    assert_eq!(failed, 1, "{out}");
    let line = out.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("database"),
        "{line}"
    );
    assert!(!out.contains("hunter2"), "{out}");
}

#[sqlx::test]
async fn doctor_names_a_wrapped_detail_and_an_unknown_account(pool: PgPool) {
    let mut cfg = fast(1, 10);
    cfg.wrapped_account_detail = true;
    let env = env(pool, cfg).await;
    let settings = settings(&env, &[]).await;
    let (failed, out) = doctor(&settings, vec![env.sim.account_ids()[0], 4242]).await;
    assert_eq!(failed, 1, "{out}");
    assert!(out.contains("parsed (wrapped in `Account`)"), "{out}");
    assert!(out.contains("FAIL  account 4242: not connected"), "{out}");
}

#[sqlx::test]
async fn doctor_samples_with_the_configured_relations(pool: PgPool) {
    let env = env(pool, fast(1, 10)).await;
    let settings = settings(
        &env,
        &[("LSSYNC__SYNC__CUSTOMER_RELATIONS", "Contact,Note")],
    )
    .await;
    let (failed, out) = doctor(&settings, vec![]).await;
    assert_eq!(failed, 0, "{out}");
    assert!(out.contains("(limit 5, loading Contact, Note)"), "{out}");
}
