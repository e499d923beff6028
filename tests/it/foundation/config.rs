use std::io::Write;
use std::path::Path;

use lightspeed_sync::config::{ConfigError, Settings};
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    if let Some(text) = file {
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    Settings::load_from(&path, false, env(vars))
}

#[test]
fn defaults_load_without_a_file() {
    let s = load(None, &[]).unwrap();
    assert_eq!(
        s.database.url.expose_secret(),
        "postgres://localhost/lightspeed"
    );
    assert_eq!(s.lightspeed.scope, "employee:customers_read");
    assert_eq!(
        s.lightspeed.api_base_url.as_str(),
        "https://api.lightspeedapp.com/"
    );
    assert_eq!(s.sync.page_size, 100);
    assert!(s.security.token_key.is_none());
}

#[test]
fn environment_wins_over_file_and_database_url() {
    let file = "[sync]\npage_size = 50\n[database]\nurl = \"postgres://file/db\"\n";
    let s = load(Some(file), &[]).unwrap();
    assert_eq!(s.sync.page_size, 50);
    assert_eq!(s.database.url.expose_secret(), "postgres://file/db");
    let s = load(
        Some(file),
        &[
            ("LSSYNC__SYNC__PAGE_SIZE", "20"),
            ("DATABASE_URL", "postgres://env/db"),
        ],
    )
    .unwrap();
    assert_eq!(s.sync.page_size, 20);
    assert_eq!(s.database.url.expose_secret(), "postgres://env/db");
    let s = load(
        Some(file),
        &[
            ("DATABASE_URL", "postgres://env/db"),
            ("LSSYNC__DATABASE__URL", "postgres://lssync/db"),
        ],
    )
    .unwrap();
    assert_eq!(s.database.url.expose_secret(), "postgres://lssync/db");
}

#[test]
fn bad_values_are_refused_with_their_key_named() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("LSSYNC__SYNC__PAGE_SIZE", "500")], "sync.page_size"),
        (&[("LSSYNC__SYNC__PAGE_SIZE", "many")], "sync.page_size"),
        (&[("LSSYNC__SYNC__OVERLAP", "soon")], "sync.overlap"),
        (
            &[("LSSYNC__SCHEDULE__CUSTOMERS", "every hour")],
            "schedule.customers",
        ),
        (
            &[("LSSYNC__LIGHTSPEED__API_BASE_URL", "not a url")],
            "lightspeed.api_base_url",
        ),
        (
            &[("LSSYNC__LIGHTSPEED__REDIRECT_URI", "ftp://x/y")],
            "lightspeed.redirect_uri",
        ),
        (&[("LSSYNC__SERVER__LISTEN", "localhost")], "server.listen"),
        (&[("LSSYNC__LOG__FORMAT", "xml")], "log.format"),
    ];
    for (vars, key) in cases {
        let err = load(None, vars).expect_err(key).to_string();
        assert!(err.contains(key), "error for {key} does not name it: {err}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let err = load(Some("[sync]\npage_sise = 10\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("page_sise"), "{err}");
    let err = load(None, &[("LSSYNC__SERVER__LISTENING", "x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("listening"), "{err}");
    let err = load(Some("[nope]\nx = 1\n"), &[]).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn printed_configuration_never_shows_a_secret() {
    let s = load(
        Some("[security]\ntoken_key = \"S3cr3tKeyMaterial\"\n"),
        &[
            ("LSSYNC__LIGHTSPEED__CLIENT_SECRET", "client-secret-value"),
            (
                "LSSYNC__DATABASE__URL",
                "postgres://user:db-password@host/db",
            ),
            ("LSSYNC__SERVER__ADMIN_TOKEN", "admin-token-value"),
        ],
    )
    .unwrap();
    let printed = s.redacted_toml();
    let debug = format!("{s:?}");
    for secret in [
        "S3cr3tKeyMaterial",
        "client-secret-value",
        "db-password",
        "admin-token-value",
    ] {
        assert!(
            !printed.contains(secret),
            "config printed {secret}:\n{printed}"
        );
        assert!(!debug.contains(secret), "Debug shows {secret}");
    }
    assert!(printed.contains("REDACTED"));
    assert!(printed.contains("postgres://user:REDACTED@host/db"));
    // And it is valid TOML that says what is in force.
    let parsed: toml::Value = toml::from_str(&printed).unwrap();
    assert_eq!(parsed["sync"]["page_size"].as_integer(), Some(100));
}

#[test]
fn secrets_come_from_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "from-file\n").unwrap();
    let var = secret_file.to_str().unwrap();
    let s = load(None, &[("LSSYNC__LIGHTSPEED__CLIENT_SECRET_FILE", var)]).unwrap();
    assert_eq!(
        s.lightspeed.client_secret().unwrap().expose_secret(),
        "from-file"
    );
    let err = s.security.token_key().unwrap_err().to_string();
    assert!(err.contains("security.token_key"), "{err}");
    let s = load(
        None,
        &[("LSSYNC__SECURITY__TOKEN_KEY_FILE", "/nonexistent/key")],
    )
    .unwrap();
    let err = s.security.token_key().unwrap_err().to_string();
    assert!(
        err.contains("security.token_key") && err.contains("/nonexistent/key"),
        "{err}"
    );
}

#[test]
fn the_example_file_is_the_defaults() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
    let text = std::fs::read_to_string(example).unwrap();
    assert_eq!(text, lightspeed_sync::config::EXAMPLE);
    load(Some(&text), &[]).unwrap();
}

/// A database URL carrying secrets in every place a PostgreSQL URL can: the userinfo, the
/// `password` and `sslpassword` query parameters (one with a percent-encoded name, as the driver
/// decodes names), and a fragment (what follows an unencoded `#` in a password).
const URL_WITH_SECRETS: &str = "postgres://me:userinfoSECRET@127.0.0.1:1/nowhere?sslmode=prefer\
    &password=hunter2SECRET&application_name=lss&sslpassword=keySECRET&pass%77ord=encodedSECRET\
    #fragmentSECRET";
const URL_SECRETS: [&str; 5] = [
    "userinfoSECRET",
    "hunter2SECRET",
    "keySECRET",
    "encodedSECRET",
    "fragmentSECRET",
];

fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_lightspeed-sync"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn config_redacts_passwords_in_the_database_url_query() {
    let out = bin()
        .arg("config")
        .env("LSSYNC__DATABASE__URL", URL_WITH_SECRETS)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for secret in URL_SECRETS {
        assert!(!text.contains(secret), "config printed {secret}:\n{text}");
    }
    // What is not secret is shown as it was written.
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        parsed["database"]["url"].as_str(),
        Some(
            "postgres://me:REDACTED@127.0.0.1:1/nowhere?sslmode=prefer&password=REDACTED\
             &application_name=lss&sslpassword=REDACTED&pass%77ord=REDACTED#REDACTED"
        ),
        "{text}"
    );
}

#[test]
fn connect_errors_and_logs_hold_no_password_from_the_url_query() {
    let out = bin()
        .arg("migrate")
        .env("LSSYNC__DATABASE__URL", URL_WITH_SECRETS)
        .env("LSSYNC__LOG__LEVEL", "trace")
        .env("LSSYNC__LOG__FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stderr.contains("cannot reach PostgreSQL at postgres://me:REDACTED@127.0.0.1:1/nowhere?"),
        "{stderr}"
    );
    assert!(stderr.contains("password=REDACTED"), "{stderr}");
    for secret in URL_SECRETS {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{secret} printed:\n{stderr}{stdout}"
        );
    }
}

#[test]
fn redaction_keeps_urls_without_secrets_as_they_are() {
    use lightspeed_sync::config::redact_url;
    for url in [
        "postgres://localhost/lightspeed",
        "postgres://me@db.example.com:5433/lightspeed?sslmode=verify-full&sslrootcert=/etc/ca.pem",
        "postgresql://me@%2Frun%2Fpostgresql/lightspeed",
    ] {
        assert_eq!(redact_url(url), url::Url::parse(url).unwrap().to_string());
    }
    assert_eq!(
        redact_url("postgres://h/db?PASSWORD=x&sslpassword"),
        "postgres://h/db?PASSWORD=REDACTED&sslpassword=REDACTED"
    );
    assert_eq!(redact_url("not a url with hunter2"), "REDACTED");
}

#[test]
fn previous_token_keys_come_from_a_list_a_string_or_a_file_and_are_never_printed() {
    let (a, b, c) = (
        lightspeed_sync::tokens::crypto::generate_key_base64(),
        lightspeed_sync::tokens::crypto::generate_key_base64(),
        lightspeed_sync::tokens::crypto::generate_key_base64(),
    );
    let texts = |s: &Settings| -> Vec<String> {
        s.security
            .previous_token_keys()
            .unwrap()
            .iter()
            .map(|k| k.expose_secret().to_owned())
            .collect()
    };
    let file = format!("[security]\nprevious_token_keys = [\"{a}\", \"{b}\"]\n");
    assert_eq!(
        texts(&load(Some(&file), &[]).unwrap()),
        [a.clone(), b.clone()]
    );
    let joined = format!("{a}, {b}");
    let s = load(None, &[("LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS", &joined)]).unwrap();
    assert_eq!(texts(&s), [a.clone(), b.clone()]);

    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("previous");
    std::fs::write(&keys_file, format!("# retired 2026-12\n{c}\n\n")).unwrap();
    let s = load(
        None,
        &[
            ("LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS", &a),
            (
                "LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS_FILE",
                keys_file.to_str().unwrap(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(texts(&s), [a.clone(), c.clone()]);
    let printed = s.redacted_toml();
    let debug = format!("{s:?}");
    for key in [&a, &c] {
        assert!(!printed.contains(key.as_str()), "{printed}");
        assert!(!debug.contains(key.as_str()));
    }
    assert!(
        printed.contains("previous_token_keys = [\"REDACTED\"]"),
        "{printed}"
    );
}

#[test]
fn an_unreadable_database_password_file_is_named() {
    let out = bin()
        .arg("migrate")
        .env("LSSYNC__DATABASE__URL", "postgres://me@127.0.0.1:1/nowhere")
        .env(
            "LSSYNC__DATABASE__PASSWORD_FILE",
            "/nonexistent/db_password",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("database.password") && err.contains("/nonexistent/db_password"),
        "{err}"
    );
}

/// `config.toml.example` with its commented-out keys (`# key = value`) set.
fn example_with_every_key() -> String {
    lightspeed_sync::config::EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if is_key_line(rest) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `name = ...` with a lower-case key name.
fn is_key_line(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(k, _)| {
        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    })
}

/// Every dotted key of a TOML document (tables are not keys, their entries are).
fn dotted_keys(value: &toml::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    if let toml::Value::Table(t) = value {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                dotted_keys(v, &key, out);
            } else {
                out.insert(key);
            }
        }
    }
}

/// Secrets set on every secret key, each with a value that must never be printed.
const EVERY_SECRET: &[(&str, &str)] = &[
    (
        "LSSYNC__DATABASE__URL",
        "postgres://u:dbSECRET@h/db?password=pSECRET",
    ),
    ("LSSYNC__LIGHTSPEED__CLIENT_SECRET", "csSECRET"),
    ("LSSYNC__SECURITY__TOKEN_KEY", "tkSECRET"),
    (
        "LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS",
        "ptkSECRET1,ptkSECRET2",
    ),
    (
        "LSSYNC__MIRROR__PII_KEY",
        "00112233445566778899aabbccddeeff",
    ),
    ("LSSYNC__MIRROR__PII__EMAIL", "hash"),
    ("LSSYNC__MIRROR__HISTORY", "true"),
];

#[test]
fn the_printed_configuration_has_every_key_of_the_example_and_no_secret() {
    let s = load(Some(&example_with_every_key()), EVERY_SECRET).unwrap();
    let printed = s.redacted_toml();
    let (mut shown, mut documented) = (Default::default(), Default::default());
    dotted_keys(&toml::from_str(&printed).unwrap(), "", &mut shown);
    dotted_keys(
        &toml::from_str(&example_with_every_key()).unwrap(),
        "",
        &mut documented,
    );
    assert_eq!(shown, documented, "{printed}");
    for secret in [
        "dbSECRET",
        "pSECRET",
        "csSECRET",
        "tkSECRET",
        "ptkSECRET",
        "00112233445566778899aabbccddeeff",
    ] {
        assert!(!printed.contains(secret), "printed {secret}:\n{printed}");
    }
}

/// What `lightspeed-sync config` printed before the settings types serialized themselves (the
/// hand-copied tree), for the example with every key set and [`EVERY_SECRET`]; less
/// `server.admin_token`, since removed.
const PRINTED_BEFORE: &str = r#"[database]
connect_timeout = "5s"
max_connections = 10
password_file = "/run/secrets/db_password"
url = "postgres://u:REDACTED@h/db?password=REDACTED"

[lightspeed]
allow_insecure_http = false
api_base_url = "https://api.lightspeedapp.com/"
auth_base_url = "https://cloud.lightspeedapp.com/"
client_id = ""
client_secret = "REDACTED"
client_secret_file = "/run/credentials/lightspeed-sync.service/client_secret"
max_attempts = 6
redirect_uri = "https://localhost/oauth/callback"
refresh_margin = "5m"
request_timeout = "30s"
scope = "employee:customers_read"

[log]
format = "auto"
level = "info,sqlx=warn"

[mirror]
history = true
pii_key = "REDACTED"
pii_key_file = "/run/credentials/lightspeed-sync.service/pii_key"

[mirror.pii]
address = "keep"
custom_fields = "keep"
dob = "keep"
email = "hash"
name = "keep"
note = "keep"
phone = "keep"

[schedule]
accounts = "0 5 * * * *"
customers = "0 */15 * * * *"
full_refresh = "0 30 3 * * *"
full_walk_every = "7days"

[security]
previous_token_keys = ["REDACTED", "REDACTED"]
previous_token_keys_file = "/run/credentials/lightspeed-sync.service/previous_token_keys"
token_key = "REDACTED"
token_key_file = "/run/credentials/lightspeed-sync.service/token_key"

[server]
listen = "127.0.0.1:8080"

[sync]
concurrency = 16
customer_relations = ["Contact", "CustomerType", "Note", "CreditAccount", "Tags", "CustomFieldValues"]
max_accounts = 1000
overlap = "2m"
page_size = 100
"#;

#[test]
fn the_printed_configuration_is_what_it_was() {
    let s = load(Some(&example_with_every_key()), EVERY_SECRET).unwrap();
    assert_eq!(s.redacted_toml(), PRINTED_BEFORE);
    // The defaults: the unset keys are left out, an empty list is kept.
    let printed = load(None, &[]).unwrap().redacted_toml();
    let mut expected = PRINTED_BEFORE
        .lines()
        .filter(|l| !l.contains("REDACTED\"") && !l.contains("_file = "))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    for (before, default) in [
        ("history = true", "history = false"),
        ("email = \"hash\"", "email = \"keep\""),
        ("[security]\n", "[security]\nprevious_token_keys = []\n"),
        (
            "max_connections = 10\n",
            "max_connections = 10\nurl = \"postgres://localhost/lightspeed\"\n",
        ),
    ] {
        expected = expected.replacen(before, default, 1);
    }
    assert_eq!(printed, expected);
}

#[test]
fn every_kind_of_value_comes_from_the_environment() {
    let s = load(
        None,
        &[
            ("LSSYNC__SYNC__CUSTOMER_RELATIONS", "Contact, Tags"),
            ("LSSYNC__SYNC__CONCURRENCY", "3"),
            ("LSSYNC__DATABASE__MAX_CONNECTIONS", "7"),
            ("LSSYNC__LIGHTSPEED__ALLOW_INSECURE_HTTP", "true"),
            ("LSSYNC__MIRROR__HISTORY", "true"),
            ("LSSYNC__SYNC__OVERLAP", "1h 30m"),
            ("LSSYNC__SCHEDULE__FULL_WALK_EVERY", "2d"),
            ("LSSYNC__MIRROR__PII__EMAIL", "drop"),
            ("LSSYNC__MIRROR__PII__CUSTOM_FIELDS", "drop"),
            ("LSSYNC__SCHEDULE__ACCOUNTS", "0 0 * * * *"),
            ("LSSYNC__LOG__FORMAT", "json"),
            ("LSSYNC__SERVER__LISTEN", "0.0.0.0:9000"),
            ("OTHER__SYNC__PAGE_SIZE", "1"),
        ],
    )
    .unwrap();
    assert_eq!(s.sync.customer_relations, ["Contact", "Tags"]);
    assert_eq!(s.sync.concurrency, 3);
    assert_eq!(s.database.max_connections, 7);
    assert!(s.lightspeed.allow_insecure_http);
    assert!(s.mirror.history);
    assert_eq!(s.sync.overlap, std::time::Duration::from_secs(5400));
    assert_eq!(
        s.schedule.full_walk_every,
        std::time::Duration::from_secs(2 * 86400)
    );
    use lightspeed_sync::config::{LogFormat, PiiAction};
    assert_eq!(s.mirror.pii.email, PiiAction::Drop);
    assert_eq!(s.mirror.pii.custom_fields, PiiAction::Drop);
    assert_eq!(s.mirror.pii.name, PiiAction::Keep);
    assert_eq!(s.schedule.accounts.as_str(), "0 0 * * * *");
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(s.sync.page_size, 100);
}

#[test]
fn database_url_is_above_the_file_and_below_lssync() {
    let file = "[database]\nurl = \"postgres://file/db\"\n";
    let s = load(Some(file), &[("DATABASE_URL", "postgres://env/db")]).unwrap();
    assert_eq!(s.database.url.expose_secret(), "postgres://env/db");
    // Only that variable: no other `DATABASE_*` is read as a `database.*` key.
    let s = load(None, &[("DATABASE_MAX_CONNECTIONS", "3")]).unwrap();
    assert_eq!(s.database.max_connections, 10);
}

#[test]
fn a_bad_schedule_is_refused_in_the_words_of_the_other_keys() {
    for key in ["CUSTOMERS", "ACCOUNTS", "FULL_REFRESH"] {
        let var = format!("LSSYNC__SCHEDULE__{key}");
        let err = load(None, &[(&var, "every hour")]).unwrap_err().to_string();
        let expected = format!(
            "configuration key `schedule.{}`: `every hour` is not a cron expression with seconds \
             (sec min hour day month weekday): ",
            key.to_lowercase()
        );
        assert!(err.starts_with(&expected), "{err}");
    }
    let err = load(Some("[schedule]\ncustomers = \"0 * * *\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("configuration key `schedule.customers`: `0 * * *` is not a cron"),
        "{err}"
    );
}

#[test]
fn the_removed_admin_token_is_accepted_ignored_and_warned_about() {
    let s = load(Some("[server]\nadmin_token = \"admin-token-value\"\n"), &[]).unwrap();
    let [warning] = s.warnings().try_into().unwrap();
    assert!(
        warning.contains("`server.admin_token`") && warning.contains("removed"),
        "{warning}"
    );
    assert!(!s.redacted_toml().contains("admin_token"));
    assert!(!format!("{s:?}").contains("admin-token-value"));
    assert!(load(None, &[]).unwrap().warnings().is_empty());
}

#[test]
fn config_warns_of_the_removed_admin_token_on_stderr() {
    let out = bin()
        .arg("config")
        .env("LSSYNC__SERVER__ADMIN_TOKEN", "admin-token-value")
        .env("LSSYNC__LOG__FORMAT", "human")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        stderr.contains("`server.admin_token` is ignored"),
        "{stderr}"
    );
    assert!(!stdout.contains("admin") && !stderr.contains("admin-token-value"));
}
