//! What every part of the integration tests shares: where the test's own database is, where the
//! recordings are, and how a test says it skipped.

use std::path::PathBuf;

use sqlx::PgPool;

/// The name of the test's own database (`#[sqlx::test]` made it).
pub fn database_name(pool: &PgPool) -> String {
    pool.connect_options()
        .get_database()
        .expect("a test database")
        .to_string()
}

/// The URL of the test's own database, for child processes and other pools.
pub fn database_url(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        database_name(pool)
    )
}

/// `../shared/recorded/<name>`: responses recorded against the live API, and the vendor's
/// documentation samples (see that folder's README for their provenance).
pub fn recorded_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/recorded")
        .join(name)
}

/// A recorded body, parsed.
pub fn recorded_json(name: &str) -> serde_json::Value {
    let path = recorded_path(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The recorded bodies whose `Customer` key holds customers (a list or one record).
pub const CUSTOMER_RECORDINGS: [&str; 8] = [
    "mp-2019-customer-list.json",
    "mp-2019-customer-show.json",
    "doc-samples/searching-customers.json",
    "doc-samples/customer-single-7.json",
    "doc-samples/customer-create-11.json",
    "doc-samples/customer-update-16.json",
    "doc-samples/customer-archive-16.json",
    "doc-samples/customer-anonymize-70.json",
];

/// Say that a test did not run its check because `what` is missing here. The tests that can skip
/// show their output even when they pass (`.config/nextest.toml`), so a skip is seen in the
/// summary instead of passing silently.
pub fn skipped(test: &str, what: &str) {
    eprintln!("SKIPPED {test}: {what}");
}
