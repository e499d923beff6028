//! The database: the pool, the embedded migrations, and one small module of statements per table
//! (`credentials`, `mirror`, `runs`, `cursors`, `leases`). Nothing here speaks HTTP.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::{ConfigError, DatabaseSettings, redact_url};

/// The embedded migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Why the database could not be used, in one line a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server did not answer.
    #[error(
        "cannot reach PostgreSQL at {url}: {reason}. Is it running? Start a local server (e.g. \
         `pg_ctlcluster 15 main start` or `docker compose -f deploy/compose.yaml up -d postgres`) or set \
         database.url / LSSYNC__DATABASE__URL"
    )]
    Unreachable {
        /// URL with the password redacted
        url: String,
        /// the driver's one-line reason
        reason: String,
    },
    /// The server refused the login (no such role, wrong password, not allowed by pg_hba.conf).
    #[error(
        "PostgreSQL at {url} refused the connection: {reason}. Set database.url \
         (LSSYNC__DATABASE__URL or DATABASE_URL) to postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    Refused {
        /// URL with the password redacted
        url: String,
        /// the server's message
        reason: String,
    },
    /// The server answered with an error.
    #[error("PostgreSQL at {url}")]
    Query {
        /// URL with the password redacted
        url: String,
        /// the driver error
        #[source]
        source: sqlx::Error,
    },
    /// `database.password_file` could not be read.
    #[error(transparent)]
    PasswordFile(ConfigError),
    /// A migration failed.
    #[error("migrating the database at {url}")]
    Migrate {
        /// URL with the password redacted
        url: String,
        /// the migration error
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// One column of a set-based statement (`UNNEST($n::type[])`): `f` of each row, in order.
pub(crate) fn col<'a, T, U>(rows: &'a [T], f: impl FnMut(&'a T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

/// Connect options from the settings (the URL is exposed only here). A URL without a user name
/// connects as the user a person expects, as libpq does: `PGUSER`, else the login name (`USER`,
/// `LOGNAME`), else `postgres`.
pub fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, DbError> {
    let raw = settings.url.expose_secret();
    let options = without_sslpassword(raw)
        .parse::<PgConnectOptions>()
        .map_err(|e| DbError::Unreachable {
            url: redact_url(raw),
            reason: format!("invalid database.url: {e}"),
        })?;
    let has_user = url::Url::parse(raw).is_ok_and(|u| !u.username().is_empty());
    let options = if has_user {
        options
    } else {
        options.username(&default_user())
    };
    match settings.password_from_file() {
        Ok(Some(password)) => Ok(options.password(password.expose_secret())),
        Ok(None) => Ok(options),
        Err(e) => Err(DbError::PasswordFile(e)),
    }
}

/// The user name for a URL that names none.
pub fn default_user() -> String {
    ["PGUSER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres".into())
}

/// The URL without `sslpassword` parameters. The driver cannot use encrypted client keys and would
/// log the parameter as unknown, value and all; it is dropped here with a warning that names only
/// the parameter.
fn without_sslpassword(url: &str) -> zeroize::Zeroizing<String> {
    let is_sslpassword = |raw_key: &str| crate::config::url_param_name(raw_key) == "sslpassword";
    let Ok(mut parsed) = url::Url::parse(url) else {
        return zeroize::Zeroizing::new(url.to_string());
    };
    let Some(query) = parsed
        .query()
        .map(str::to_string)
        .map(zeroize::Zeroizing::new)
    else {
        return zeroize::Zeroizing::new(url.to_string());
    };
    let pairs: Vec<&str> = query.split('&').collect();
    let kept: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|pair| !is_sslpassword(pair.split_once('=').map_or(pair, |(k, _)| k)))
        .collect();
    if kept.len() == pairs.len() {
        return zeroize::Zeroizing::new(url.to_string());
    }
    tracing::warn!(
        "database.url: the `sslpassword` parameter is ignored (encrypted client keys are not \
         supported: give `sslkey` an unencrypted key file readable only by this service)"
    );
    let kept = zeroize::Zeroizing::new(kept.join("&"));
    parsed.set_query((!kept.is_empty()).then_some(kept.as_str()));
    zeroize::Zeroizing::new(parsed.to_string())
}

/// Open a pool and check the server answers.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    let url = redact_url(settings.url.expose_secret());
    let options = connect_options(settings)?;
    // One direct attempt first: a pool only says "timed out" where the driver knows "refused".
    let probe = tokio::time::timeout(settings.connect_timeout, options.connect()).await;
    match probe {
        Ok(Ok(conn)) => drop(conn),
        Ok(Err(e)) => return Err(classify(&url, e)),
        Err(_) => {
            return Err(DbError::Unreachable {
                url,
                reason: "timed out connecting".into(),
            });
        }
    }
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .connect_with(options)
        .await
        .map_err(|e| classify(&url, e))
}

/// Connect, creating the database first when the server is up but the database does not exist.
pub async fn connect_or_create(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    match connect(settings).await {
        Err(DbError::Query { source, .. }) if is_missing_database(&source) => {
            let url = redact_url(settings.url.expose_secret());
            let options = connect_options(settings)?;
            let name = options.get_database().unwrap_or("lightspeed").to_string();
            let admin = options.clone().database("postgres");
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(settings.connect_timeout)
                .connect_with(admin)
                .await
                .map_err(|e| classify(&url, e))?;
            let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .map_err(|e| classify(&url, e))?;
            tracing::info!(database = %name, "created database");
            connect(settings).await
        }
        other => other,
    }
}

/// Apply the embedded migrations (idempotent).
pub async fn migrate(pool: &PgPool, settings: &DatabaseSettings) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(|source| DbError::Migrate {
        url: redact_url(settings.url.expose_secret()),
        source,
    })
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("3D000")
}

fn classify(url: &str, e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Io(io) => DbError::Unreachable {
            url: url.into(),
            reason: io.to_string(),
        },
        sqlx::Error::PoolTimedOut => DbError::Unreachable {
            url: url.into(),
            reason: "timed out waiting for a connection".into(),
        },
        sqlx::Error::Tls(t) => DbError::Unreachable {
            url: url.into(),
            reason: format!("TLS: {t}"),
        },
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("28")) => {
            DbError::Refused {
                url: url.into(),
                reason: d.message().to_string(),
            }
        }
        source => DbError::Query {
            url: url.into(),
            source,
        },
    }
}

/// A short pause used between reconnection attempts by long-running loops.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(2);

pub mod credentials;
pub mod cursors;
pub mod history;
pub mod leases;
pub mod mirror;
pub mod runs;
pub mod stored;
