//! The settings tree: built-in defaults, then `config.toml`, then `LSSYNC__SECTION__KEY` environment
//! variables (the environment wins). Every value is typed and checked at load, so a bad value or an
//! unknown key is reported at start with the key's name and what was expected. Secrets are held as
//! [`SecretString`] and never printed: [`Settings::redacted_toml`] is what `lightspeed-sync config` shows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

/// The example configuration, every key with its default; `config.toml.example` in the repository.
pub const EXAMPLE: &str = include_str!("../config.toml.example");

/// Environment variable prefix: `LSSYNC__DATABASE__URL` sets `database.url`.
pub const ENV_PREFIX: &str = "LSSYNC";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[database]`
    pub database: DatabaseSettings,
    /// `[lightspeed]`
    pub lightspeed: LightspeedSettings,
    /// `[security]`
    pub security: SecuritySettings,
    /// `[sync]`
    pub sync: SyncSettings,
    /// `[schedule]`
    pub schedule: ScheduleSettings,
    /// `[mirror]`
    pub mirror: MirrorSettings,
    /// `[server]`
    pub server: ServerSettings,
    /// `[log]`
    pub log: LogSettings,
}

/// `[database]`: where the mirror lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Postgres URL; may carry a password, hence secret.
    pub url: SecretString,
    /// A file holding the password (wins over one in the URL).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// How long to wait for a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

/// `[lightspeed]`: the OAuth client and the API endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightspeedSettings {
    /// OAuth client ID as registered with Lightspeed.
    pub client_id: String,
    /// OAuth client secret (or use `client_secret_file`).
    pub client_secret: Option<SecretString>,
    /// A file holding the client secret (systemd `LoadCredential`, Docker secrets).
    pub client_secret_file: Option<PathBuf>,
    /// The redirect URI registered with the client.
    pub redirect_uri: Url,
    /// OAuth scope(s), space separated.
    pub scope: String,
    /// API origin; `/API/V3/...` is appended.
    pub api_base_url: Url,
    /// OAuth origin; `/auth/oauth/...` is appended.
    pub auth_base_url: Url,
    /// Accept plain `http://` for `api_base_url` and `auth_base_url` on non-loopback hosts (tokens
    /// and the client secret then cross the network unencrypted). Loopback is always accepted.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Timeout of one HTTP request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Attempts for one request on transient failures (5xx, timeouts, dropped connections).
    pub max_attempts: u32,
    /// Refresh the access token this long before it expires.
    #[serde(with = "humantime_serde")]
    pub refresh_margin: Duration,
}

/// `[security]`: the key that encrypts tokens at rest, and the older keys still read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// 32 bytes, base64 (`lightspeed-sync keygen`).
    pub token_key: Option<SecretString>,
    /// A file holding the key.
    pub token_key_file: Option<PathBuf>,
    /// Older keys (base64), tried by key version when reading, never used to write: a list, or one
    /// string of keys separated by commas or white space (for `LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS`).
    #[serde(default, deserialize_with = "key_list")]
    pub previous_token_keys: Vec<SecretString>,
    /// A file holding older keys, one per line (blank lines and `#` comments are skipped).
    #[serde(default)]
    pub previous_token_keys_file: Option<PathBuf>,
}

/// `[sync]`: how streams are walked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Records per page (1..=100).
    pub page_size: u32,
    /// How far before the stored watermark an incremental run starts again.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// HTTP requests to Lightspeed in flight at once in one process, over all its accounts (an
    /// account waiting on its own rate-limit bucket does not count). Pages held until written are
    /// bounded by `database.max_connections` (less 2).
    pub concurrency: usize,
    /// Accounts one process syncs at once (each costs its lease and a few kilobytes, not a
    /// connection); more wait their turn, first come first served.
    pub max_accounts: usize,
    /// Relations loaded with customers (`load_relations`): any of `Contact`, `CustomerType`, `Note`,
    /// `CreditAccount`, `Tags`, `CustomFieldValues`. A list, or one comma-separated string (as an
    /// environment variable gives it). Each adds to a page's drip cost.
    #[serde(deserialize_with = "list_or_csv")]
    pub customer_relations: Vec<String>,
}

impl SyncSettings {
    /// `customer_relations`, parsed (the names were checked at load; unknown ones are skipped).
    pub fn relations(&self) -> Vec<crate::lightspeed::query::CustomerRelation> {
        self.customer_relations
            .iter()
            .filter_map(|n| crate::lightspeed::query::CustomerRelation::parse(n.trim()))
            .collect()
    }
}

/// A list of strings, or one string of comma-separated items.
fn list_or_csv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(d)? {
        ListOrCsv::List(l) => l,
        ListOrCsv::Csv(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    })
}

/// `[schedule]`: cron expressions (with seconds: `sec min hour day month weekday`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Incremental customers sync.
    pub customers: String,
    /// Accounts sync.
    pub accounts: String,
    /// Full refresh of customers (finds hard deletes and Contact-only edits). When the upstream
    /// count equals the mirror's, a cheaper `Contact.timeStamp` pass runs instead, unless the
    /// account's last full walk is older than `full_walk_every`.
    pub full_refresh: String,
    /// The backstop: a scheduled full refresh walks everything when the account's last complete
    /// full walk is older than this, even when the counts match (staggered across accounts).
    #[serde(with = "humantime_serde", default = "default_full_walk_every")]
    pub full_walk_every: Duration,
}

fn default_full_walk_every() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// `[mirror]`: what the mirror keeps: history, and how personal data is stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSettings {
    /// Keep every seen version of a customer in `lightspeed.customers_history`.
    #[serde(default)]
    pub history: bool,
    /// The HMAC key of `hash` policies, hex (or use `pii_key_file`).
    #[serde(default)]
    pub pii_key: Option<SecretString>,
    /// A file holding the key.
    #[serde(default)]
    pub pii_key_file: Option<PathBuf>,
    /// `[mirror.pii]`: one policy per group of personal data.
    #[serde(default)]
    pub pii: PiiSettings,
}

/// `[mirror.pii]`: what is stored of each group of personal data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiSettings {
    /// firstName, lastName
    pub name: PiiAction,
    /// Contact emails
    pub email: PiiAction,
    /// Contact phones
    pub phone: PiiAction,
    /// Contact addresses
    pub address: PiiAction,
    /// dob
    pub dob: PiiAction,
    /// Note.note
    pub note: PiiAction,
    /// Custom field values
    pub custom_fields: PiiAction,
}

impl PiiSettings {
    /// Every group with its key name, in a fixed order.
    pub fn groups(&self) -> [(&'static str, PiiAction); 7] {
        [
            ("name", self.name),
            ("email", self.email),
            ("phone", self.phone),
            ("address", self.address),
            ("dob", self.dob),
            ("note", self.note),
            ("custom_fields", self.custom_fields),
        ]
    }
}

/// What is stored of one group of personal data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    /// As Lightspeed sends it.
    #[default]
    Keep,
    /// HMAC-SHA256 with `mirror.pii_key`, hex.
    Hash,
    /// Not stored.
    Drop,
}

impl MirrorSettings {
    /// The HMAC key's bytes from `pii_key` or `pii_key_file` (hex), `None` when neither is set.
    pub fn pii_key(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, ConfigError> {
        const KEY: &str = "mirror.pii_key";
        let text: zeroize::Zeroizing<String> = if let Some(v) = self
            .pii_key
            .as_ref()
            .filter(|v| !v.expose_secret().trim().is_empty())
        {
            zeroize::Zeroizing::new(v.expose_secret().trim().to_string())
        } else if let Some(path) = self
            .pii_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let text = read_secret_file(path, KEY)?;
            zeroize::Zeroizing::new(text.trim().to_string())
        } else {
            return Ok(None);
        };
        let bytes = decode_hex(&text).ok_or_else(|| ConfigError::Value {
            key: KEY,
            problem:
                "not hex (expected an even number of hex digits, e.g. from `openssl rand -hex 32`)"
                    .into(),
        })?;
        if bytes.len() < 16 {
            return Err(ConfigError::Value {
                key: KEY,
                problem: format!(
                    "{} bytes is too short: expected at least 16 (32 hex digits)",
                    bytes.len()
                ),
            });
        }
        Ok(Some(bytes))
    }

    /// Whether any group is hashed (and a key is needed).
    pub fn hashes(&self) -> bool {
        self.pii.groups().iter().any(|(_, a)| *a == PiiAction::Hash)
    }
}

/// Hex text to bytes; `None` when it is not hex.
fn decode_hex(text: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(text.len() / 2));
    for pair in text.as_bytes().chunks(2) {
        out.push(digit(pair[0])? << 4 | digit(pair[1])?);
    }
    Some(out)
}

/// `[server]`: the daemon's HTTP endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address of `/healthz`, `/readyz`, `/metrics`, `/status`.
    pub listen: SocketAddr,
    /// Bearer token that protects the browser connect flow (`/connect`); unset disables it.
    pub admin_token: Option<SecretString>,
}

/// `[log]`: telemetry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Filter when `RUST_LOG` is unset (`info`, `lightspeed_sync=debug`, ...).
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human on a terminal, JSON otherwise.
    Auto,
    /// Always human-readable.
    Human,
    /// Always JSON lines.
    Json,
}

/// Why the configuration could not be loaded; always names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a value had the wrong type.
    #[error("configuration: {0}")]
    Invalid(String),
    /// A value parsed but is not acceptable.
    #[error("configuration key `{key}`: {problem}")]
    Value {
        /// dotted key
        key: &'static str,
        /// what was wrong and what was expected
        problem: String,
    },
}

impl Settings {
    /// Load defaults, then `path` (if it exists; it must exist when `required`), then the environment.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        Self::load_from(path, required, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (for tests).
    pub fn load_from(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        if required && !path.exists() {
            return Err(ConfigError::Invalid(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut map = config::Map::new();
        let prefix = format!("{ENV_PREFIX}__");
        for (k, v) in &env {
            if let Some(rest) = k.strip_prefix(&prefix) {
                map.insert(rest.to_lowercase().replace("__", "."), v.clone());
            }
        }
        // DATABASE_URL is honoured too, below LSSYNC__DATABASE__URL.
        let database_url = env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.clone());
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(EXAMPLE, config::FileFormat::Toml))
            .add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(false),
            );
        if let Some(url) = database_url {
            builder = builder
                .set_override("database.url", url)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        for (key, value) in map {
            builder = builder
                .set_override(key, value)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Invalid(format!("{e} (in {})", path.display())))?;
        let settings: Settings = raw.try_deserialize().map_err(|e| {
            ConfigError::Invalid(format!(
                "{e} (from {} or {ENV_PREFIX}__* variables)",
                path.display()
            ))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, problem: String| Err(ConfigError::Value { key, problem });
        if !(1..=100).contains(&self.sync.page_size) {
            return bad(
                "sync.page_size",
                format!("{} is out of range: expected 1 to 100", self.sync.page_size),
            );
        }
        if self.sync.concurrency == 0 {
            return bad("sync.concurrency", "expected at least 1".into());
        }
        if self.sync.max_accounts == 0 {
            return bad("sync.max_accounts", "expected at least 1".into());
        }
        if self.schedule.full_walk_every < Duration::from_secs(3600) {
            return bad(
                "schedule.full_walk_every",
                "expected at least 1h (e.g. \"7d\")".into(),
            );
        }
        if let Some(unknown) = self
            .sync
            .customer_relations
            .iter()
            .find(|n| crate::lightspeed::query::CustomerRelation::parse(n.trim()).is_none())
        {
            let known: Vec<&str> = crate::lightspeed::query::CustomerRelation::ALL
                .iter()
                .map(|r| r.name())
                .collect();
            return bad(
                "sync.customer_relations",
                format!(
                    "unknown relation {unknown:?}: expected any of {}",
                    known.join(", ")
                ),
            );
        }
        if self.lightspeed.max_attempts == 0 {
            return bad("lightspeed.max_attempts", "expected at least 1".into());
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections", "expected at least 1".into());
        }
        for (key, expr) in [
            ("schedule.customers", &self.schedule.customers),
            ("schedule.accounts", &self.schedule.accounts),
            ("schedule.full_refresh", &self.schedule.full_refresh),
        ] {
            if let Err(e) = parse_cron(expr) {
                return bad(
                    key,
                    format!(
                        "`{expr}` is not a cron expression with seconds (sec min hour day month weekday): {e}"
                    ),
                );
            }
        }
        if self.mirror.hashes() {
            // The key file is read here too: a policy that cannot hash must stop the start, not
            // the first page.
            if self.mirror.pii_key()?.is_none() {
                let hashed: Vec<&str> = self
                    .mirror
                    .pii
                    .groups()
                    .iter()
                    .filter(|(_, a)| *a == PiiAction::Hash)
                    .map(|(g, _)| *g)
                    .collect();
                return bad(
                    "mirror.pii_key",
                    format!(
                        "not set, and mirror.pii.{} = \"hash\" needs it: set `mirror.pii_key` \
                         (hex) or `mirror.pii_key_file`",
                        hashed.join(", mirror.pii.")
                    ),
                );
            }
        } else if self.mirror.pii_key.is_some() {
            // Checked even when unused, so a typo shows before the day it is needed.
            self.mirror.pii_key()?;
        }
        if let Err(e) = Url::parse(self.database.url.expose_secret()) {
            return bad("database.url", format!("not a URL: {e}"));
        }
        for (key, url) in [
            ("lightspeed.api_base_url", &self.lightspeed.api_base_url),
            ("lightspeed.auth_base_url", &self.lightspeed.auth_base_url),
            ("lightspeed.redirect_uri", &self.lightspeed.redirect_uri),
        ] {
            if !matches!(url.scheme(), "http" | "https") {
                return bad(key, format!("expected an http(s) URL, got `{url}`"));
            }
        }
        for (key, url) in [
            ("lightspeed.api_base_url", &self.lightspeed.api_base_url),
            ("lightspeed.auth_base_url", &self.lightspeed.auth_base_url),
        ] {
            if url.scheme() == "http" && !is_loopback(url) && !self.lightspeed.allow_insecure_http {
                return bad(
                    key,
                    format!(
                        "`{url}` is plain http: tokens and the client secret would travel unencrypted; \
                         use https (plain http is accepted only for loopback hosts, or with \
                         lightspeed.allow_insecure_http = true)"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, with every secret replaced by `"REDACTED"`.
    pub fn redacted_toml(&self) -> String {
        let secret = |s: &Option<SecretString>| s.as_ref().map(|_| REDACTED.to_string());
        let view = serde_json::json!({
            "database": {
                "url": redact_url(self.database.url.expose_secret()),
                "password_file": self.database.password_file,
                "max_connections": self.database.max_connections,
                "connect_timeout": humantime::format_duration(self.database.connect_timeout).to_string(),
            },
            "lightspeed": {
                "client_id": self.lightspeed.client_id,
                "client_secret": secret(&self.lightspeed.client_secret),
                "client_secret_file": self.lightspeed.client_secret_file,
                "redirect_uri": self.lightspeed.redirect_uri.as_str(),
                "scope": self.lightspeed.scope,
                "api_base_url": self.lightspeed.api_base_url.as_str(),
                "auth_base_url": self.lightspeed.auth_base_url.as_str(),
                "allow_insecure_http": self.lightspeed.allow_insecure_http,
                "request_timeout": humantime::format_duration(self.lightspeed.request_timeout).to_string(),
                "max_attempts": self.lightspeed.max_attempts,
                "refresh_margin": humantime::format_duration(self.lightspeed.refresh_margin).to_string(),
            },
            "security": {
                "token_key": secret(&self.security.token_key),
                "token_key_file": self.security.token_key_file,
                "previous_token_keys": self.security.previous_token_keys.iter().map(|_| REDACTED).collect::<Vec<_>>(),
                "previous_token_keys_file": self.security.previous_token_keys_file,
            },
            "sync": {
                "page_size": self.sync.page_size,
                "overlap": humantime::format_duration(self.sync.overlap).to_string(),
                "concurrency": self.sync.concurrency,
                "max_accounts": self.sync.max_accounts,
                "customer_relations": self.sync.customer_relations,
            },
            "schedule": {
                "customers": self.schedule.customers,
                "accounts": self.schedule.accounts,
                "full_refresh": self.schedule.full_refresh,
                "full_walk_every": humantime::format_duration(self.schedule.full_walk_every).to_string(),
            },
            "mirror": {
                "history": self.mirror.history,
                "pii_key": secret(&self.mirror.pii_key),
                "pii_key_file": self.mirror.pii_key_file,
                "pii": self.mirror.pii,
            },
            "server": {
                "listen": self.server.listen.to_string(),
                "admin_token": secret(&self.server.admin_token),
            },
            "log": { "level": self.log.level, "format": self.log.format },
        });
        toml::to_string(&without_nulls(view))
            .unwrap_or_else(|e| format!("# could not render: {e}\n"))
    }
}

impl DatabaseSettings {
    /// The password from `password_file`, if that is set (an empty file means no password).
    pub fn password_from_file(&self) -> Result<Option<SecretString>, ConfigError> {
        let Some(path) = self
            .password_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(None);
        };
        let text = read_secret_file(path, "database.password")?;
        let password = text.trim_end_matches(['\r', '\n']);
        Ok((!password.is_empty()).then(|| SecretString::from(password.to_string())))
    }
}

impl LightspeedSettings {
    /// The client secret from `client_secret` or `client_secret_file`.
    pub fn client_secret(&self) -> Result<SecretString, ConfigError> {
        read_secret(
            &self.client_secret,
            &self.client_secret_file,
            "lightspeed.client_secret",
        )
    }
}

impl SecuritySettings {
    /// The token key text from `token_key` or `token_key_file`.
    pub fn token_key(&self) -> Result<SecretString, ConfigError> {
        read_secret(&self.token_key, &self.token_key_file, "security.token_key")
    }

    /// The older keys' texts: `previous_token_keys`, then the lines of `previous_token_keys_file`.
    pub fn previous_token_keys(&self) -> Result<Vec<SecretString>, ConfigError> {
        let mut keys: Vec<SecretString> = self
            .previous_token_keys
            .iter()
            .filter(|k| !k.expose_secret().trim().is_empty())
            .cloned()
            .collect();
        if let Some(path) = self
            .previous_token_keys_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let text = read_secret_file(path, "security.previous_token_keys")?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| SecretString::from(l.to_string())),
            );
        }
        Ok(keys)
    }
}

/// `previous_token_keys`: a TOML list, or one string of keys separated by commas or white space (an
/// environment variable is always a string). Base64 has neither, so the split is unambiguous.
fn key_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<SecretString>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of base64 keys, or a string of keys separated by commas")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|k| !k.is_empty())
                .map(|k| SecretString::from(k.to_string()))
                .collect())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(k) = seq.next_element::<SecretString>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    d.deserialize_any(Keys)
}

fn read_secret(
    value: &Option<SecretString>,
    file: &Option<PathBuf>,
    key: &'static str,
) -> Result<SecretString, ConfigError> {
    if let Some(v) = value.as_ref().filter(|v| !v.expose_secret().is_empty()) {
        return Ok(v.clone());
    }
    if let Some(path) = file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
        let text = read_secret_file(path, key)?;
        return Ok(SecretString::from(text.trim().to_string()));
    }
    Err(ConfigError::Value {
        key,
        problem: format!("not set (set `{key}` or `{key}_file`)"),
    })
}

/// The whole text of a secret's file, wiped from memory when dropped.
fn read_secret_file(
    path: &Path,
    key: &'static str,
) -> Result<zeroize::Zeroizing<String>, ConfigError> {
    std::fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| ConfigError::Value {
            key,
            problem: format!(
                "cannot read {}_file {}: {e}",
                key.rsplit('.').next().unwrap_or(key),
                path.display()
            ),
        })
}

const REDACTED: &str = "REDACTED";

/// TOML has no null: unset keys are left out of the printed configuration.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Query parameters of a PostgreSQL URL whose values are secrets (libpq's names; sqlx reads
/// `password`, and would log `sslpassword` as an unknown parameter, value and all).
pub const SECRET_URL_PARAMS: [&str; 2] = ["password", "sslpassword"];

/// A database URL fit to be shown (`config`, error messages, logs): the userinfo password and the
/// values of the [`SECRET_URL_PARAMS`] query parameters (matched after percent-decoding, ignoring
/// case) are replaced by `REDACTED`, and so is a fragment (a `#` in an unencoded password starts one).
/// Every other part is kept as written. Text that is not a URL is replaced whole.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return REDACTED.to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(REDACTED));
    }
    if let Some(query) = u.query() {
        let query = query
            .split('&')
            .map(|pair| {
                let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
                if is_secret_url_param(raw_key) {
                    format!("{raw_key}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        u.set_query(Some(&query));
    }
    if u.fragment().is_some() {
        u.set_fragment(Some(REDACTED));
    }
    u.to_string()
}

/// Whether a raw (still percent-encoded) query key names a [`SECRET_URL_PARAMS`] parameter.
pub fn is_secret_url_param(raw_key: &str) -> bool {
    SECRET_URL_PARAMS.contains(&url_param_name(raw_key).as_str())
}

/// A raw query key as the driver reads it (percent-decoded), in lower case.
pub fn url_param_name(raw_key: &str) -> String {
    url::form_urlencoded::parse(raw_key.as_bytes())
        .next()
        .map(|(k, _)| k.to_lowercase())
        .unwrap_or_default()
}

/// `localhost`, 127.0.0.0/8 or `::1`: where the simulators run.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parse a cron expression the way the scheduler does (seconds field required).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
}
