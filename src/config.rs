//! The settings tree: built-in defaults, then `config.toml`, then `LSSYNC__SECTION__KEY` environment
//! variables (the environment wins). Every value is typed and checked at load, so a bad value or an
//! unknown key is reported at start with the key's name and what was expected. Secrets are held as
//! [`SecretString`] and never printed: the settings types serialize *redacted* (every secret as
//! `"REDACTED"`, the database URL through [`redact_url`]), and [`Settings::redacted_toml`], what
//! `lightspeed-sync config` shows, is that serialization. A secret field without its redacting
//! `serialize_with` does not compile (`SecretString` has no `Serialize`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

/// The example configuration, every key with its default; `config.toml.example` in the repository.
pub const EXAMPLE: &str = include_str!("../config.toml.example");

/// Environment variable prefix: `LSSYNC__DATABASE__URL` sets `database.url`.
pub const ENV_PREFIX: &str = "LSSYNC";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Postgres URL; may carry a password, hence secret.
    #[serde(serialize_with = "redact::database_url")]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LightspeedSettings {
    /// OAuth client ID as registered with Lightspeed.
    pub client_id: String,
    /// OAuth client secret (or use `client_secret_file`).
    #[serde(serialize_with = "redact::secret_opt")]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// 32 bytes, base64 (`lightspeed-sync keygen`).
    #[serde(serialize_with = "redact::secret_opt")]
    pub token_key: Option<SecretString>,
    /// A file holding the key.
    pub token_key_file: Option<PathBuf>,
    /// Older keys (base64), tried by key version when reading, never used to write: a list, or one
    /// string of keys separated by commas or white space (for `LSSYNC__SECURITY__PREVIOUS_TOKEN_KEYS`).
    #[serde(
        default,
        deserialize_with = "key_list",
        serialize_with = "redact::secret_list"
    )]
    pub previous_token_keys: Vec<SecretString>,
    /// A file holding older keys, one per line (blank lines and `#` comments are skipped).
    #[serde(default)]
    pub previous_token_keys_file: Option<PathBuf>,
}

/// `[sync]`: how streams are walked.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    /// Incremental customers sync.
    pub customers: Schedule,
    /// Accounts sync.
    pub accounts: Schedule,
    /// Full refresh of customers (finds hard deletes and Contact-only edits). When the upstream
    /// count equals the mirror's, a cheaper `Contact.timeStamp` pass runs instead, unless the
    /// account's last full walk is older than `full_walk_every`.
    pub full_refresh: Schedule,
    /// The backstop: a scheduled full refresh walks everything when the account's last complete
    /// full walk is older than this, even when the counts match (staggered across accounts).
    #[serde(with = "humantime_serde", default = "default_full_walk_every")]
    pub full_walk_every: Duration,
}

impl ScheduleSettings {
    /// The dotted keys of the three cron schedules.
    pub const KEYS: [&'static str; 3] = [
        "schedule.customers",
        "schedule.accounts",
        "schedule.full_refresh",
    ];
}

/// A cron expression with seconds (`sec min hour day month weekday`), parsed once, at load: it
/// keeps the text as written (what `config` prints, what logs show) and the parsed [`croner::Cron`]
/// (what the scheduler runs). Deserializing fails with the expression and what was expected.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
}

impl Schedule {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed expression.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match parse_cron(text) {
            Ok(cron) => Ok(Schedule {
                text: text.to_string(),
                cron,
            }),
            Err(e) => Err(format!(
                "`{text}` is not a cron expression with seconds (sec min hour day month weekday): {e}"
            )),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

fn default_full_walk_every() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// `[mirror]`: what the mirror keeps: history, and how personal data is stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSettings {
    /// Keep every seen version of a customer in `lightspeed.customers_history`.
    #[serde(default)]
    pub history: bool,
    /// The HMAC key of `hash` policies, hex (or use `pii_key_file`).
    #[serde(default, serialize_with = "redact::secret_opt")]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address of `/healthz`, `/readyz`, `/metrics`, `/status`.
    pub listen: SocketAddr,
    /// `server.admin_token`, removed: it guarded a `/connect` route that never existed. Still
    /// accepted, so that an older configuration loads, but its value is not kept;
    /// [`Settings::warnings`] says it is ignored.
    #[serde(default, rename = "admin_token", skip_serializing)]
    removed_admin_token: Removed,
}

/// A removed key: whether it was set (its value is dropped unread).
#[derive(Debug, Clone, Copy, Default)]
struct Removed(bool);

impl<'de> Deserialize<'de> for Removed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Removed(true))
    }
}

/// `[log]`: telemetry.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
        let env: config::Map<String, String> = env.into_iter().collect();
        // DATABASE_URL is honoured too, below LSSYNC__DATABASE__URL and above the file: alone in
        // an environment of its own, whose `_` separates levels (`database.url`).
        let database_url: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| *k == "DATABASE_URL")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let builder = config::Config::builder()
            .add_source(config::File::from_str(EXAMPLE, config::FileFormat::Toml))
            .add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(false),
            )
            .add_source(
                config::Environment::default()
                    .separator("_")
                    .source(Some(database_url)),
            )
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(env)),
            );
        let raw = builder
            .build()
            .map_err(|e| ConfigError::Invalid(format!("{e} (in {})", path.display())))?;
        let settings: Settings = raw.try_deserialize().map_err(|e| {
            schedule_error(&e).unwrap_or_else(|| {
                ConfigError::Invalid(format!(
                    "{e} (from {} or {ENV_PREFIX}__* variables)",
                    path.display()
                ))
            })
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

    /// The effective configuration as TOML, with every secret replaced by `"REDACTED"` (the
    /// types' own, redacting, serialization; unset keys left out).
    pub fn redacted_toml(&self) -> String {
        serde_json::to_value(self)
            .map_err(|e| e.to_string())
            .and_then(|view| toml::to_string(&without_nulls(view)).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| format!("# could not render: {e}\n"))
    }

    /// What to warn about in a configuration that loaded: keys that were removed and are ignored.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.server.removed_admin_token.0 {
            warnings.push(
                "configuration key `server.admin_token` is ignored: it was removed (it guarded a \
                 `/connect` route that does not exist); delete it from the configuration file or \
                 the environment (LSSYNC__SERVER__ADMIN_TOKEN)"
                    .to_string(),
            );
        }
        warnings
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

/// A schedule's parse error, as config reports it (the message at the key's path), in the words
/// validation uses for every other key: `configuration key `schedule.customers`: ...`.
fn schedule_error(e: &config::ConfigError) -> Option<ConfigError> {
    let config::ConfigError::At {
        error,
        key: Some(key),
        ..
    } = e
    else {
        return None;
    };
    let config::ConfigError::Message(problem) = error.as_ref() else {
        return None;
    };
    let key = ScheduleSettings::KEYS.into_iter().find(|k| k == key)?;
    Some(ConfigError::Value {
        key,
        problem: problem.clone(),
    })
}

/// The redacting `serialize_with`s of the secret fields.
mod redact {
    use secrecy::{ExposeSecret, SecretString};
    use serde::Serializer;

    use super::REDACTED;

    /// A secret that is set: `"REDACTED"`; unset: none.
    pub fn secret_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(_) => s.serialize_some(REDACTED),
            None => s.serialize_none(),
        }
    }

    /// One `"REDACTED"` per secret.
    pub fn secret_list<S: Serializer>(v: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|_| REDACTED))
    }

    /// The database URL through [`super::redact_url`].
    pub fn database_url<S: Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::redact_url(v.expose_secret()))
    }
}

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

/// Parse a cron expression the way the scheduler does: seconds field required, and a day-of-month
/// and a day-of-week that are both restricted must both match (what tokio-cron-scheduler's
/// `Job::new_async` parses with, and re-parses the expression with at every tick).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
}
