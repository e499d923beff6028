//! Integration tests of the token store: OAuth on the wire, the `authorize` flow, encrypted
//! credentials in a real Postgres (each `#[sqlx::test]` gets its own migrated database; run with
//! `DATABASE_URL=postgres://postgres@127.0.0.1/postgres`), and the single-flight token source.

mod authorize;
mod helpers;
mod hostile;
mod oauth;
mod rekey;
mod sim;
mod source;
