//! The words every layer shares: an account's ID, the streams, the kinds and outcomes of a run, the
//! state of an account's authorization. Plain values with no behaviour beyond naming themselves, in
//! Postgres (`sqlx::Type`), JSON and logs the same way. Uses nothing of ours.

use std::fmt;
use std::str::FromStr;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// A Lightspeed account (`accountID`): a positive integer in the API, a `bigint` in every table.
///
/// The one place where the two meet: an ID that does not fit a `bigint` is refused when it is
/// bound (a named error, not a silently saturated value), and a negative one when it is read.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct AccountId(u64);

impl AccountId {
    /// The ID as the API writes it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for AccountId {
    fn from(id: u64) -> Self {
        AccountId(id)
    }
}

impl From<AccountId> for u64 {
    fn from(id: AccountId) -> Self {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for AccountId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(AccountId)
    }
}

impl PartialEq<u64> for AccountId {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl Type<Postgres> for AccountId {
    fn type_info() -> PgTypeInfo {
        <i64 as Type<Postgres>>::type_info()
    }
}

impl PgHasArrayType for AccountId {
    fn array_type_info() -> PgTypeInfo {
        <i64 as PgHasArrayType>::array_type_info()
    }
}

impl Encode<'_, Postgres> for AccountId {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let id = i64::try_from(self.0)
            .map_err(|_| format!("account ID {} does not fit a bigint", self.0))?;
        <i64 as Encode<Postgres>>::encode_by_ref(&id, buf)
    }
}

impl Decode<'_, Postgres> for AccountId {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        let id = <i64 as Decode<Postgres>>::decode(value)?;
        Ok(AccountId(u64::try_from(id).map_err(|_| {
            format!("account ID {id} in the database is negative")
        })?))
    }
}

/// A stream of the mirror.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Stream {
    /// `lightspeed.accounts`
    Accounts,
    /// `lightspeed.customers` with emails, phones, addresses
    Customers,
}

impl Stream {
    /// Every stream, in display order.
    pub const ALL: [Stream; 2] = [Stream::Accounts, Stream::Customers];

    /// The name used in tables, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Accounts => "accounts",
            Stream::Customers => "customers",
        }
    }
}

/// Incremental (from the stored watermark) or full (every record; marks vanished ones deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Kind {
    /// From the watermark on.
    Incremental,
    /// Everything.
    Full,
    /// The cheaper pass a scheduled full refresh runs when the counts match: the customers whose
    /// `Contact.timeStamp` moved since the watermark (minus the overlap), walked by `customerID`;
    /// catches Contact-only edits that did not move `Customer.timeStamp`. Leaves the watermark.
    Contacts,
}

impl Kind {
    /// The name used in tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incremental => "incremental",
            Kind::Full => "full",
            Kind::Contacts => "contacts",
        }
    }
}

/// Where a run stands (`lightspeed_sync.runs.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not finished: going on, or its process died and no one has taken its lease yet.
    Running,
    /// Walked to the end; everything committed.
    Succeeded,
    /// Stopped by an error; committed pages stay, the cursor is where the last commit left it.
    Failed,
    /// Stopped on request (shutdown), or closed by the replica that took its lease over.
    Interrupted,
}

impl RunStatus {
    /// The name stored in `lightspeed_sync.runs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The outcomes a finished run can have (for metrics exported from zero).
    pub const FINISHED: [RunStatus; 3] = [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Interrupted,
    ];
}

/// The authorization of an account (`lightspeed_sync.credentials.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum AccountStatus {
    /// The tokens work (as far as is known).
    Connected,
    /// The refresh token was rejected; a person must run `lightspeed-sync authorize`.
    NeedsReauth,
}

impl AccountStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Connected => "connected",
            AccountStatus::NeedsReauth => "needs_reauth",
        }
    }
}

/// Each name prints as itself and compares equal to its text (`run.status == "succeeded"`).
macro_rules! named {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    )*};
}
named!(Stream, Kind, RunStatus, AccountStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_those_of_the_tables() {
        for (s, name) in [
            (Stream::Accounts, "accounts"),
            (Stream::Customers, "customers"),
        ] {
            assert_eq!(s.to_string(), name);
            assert_eq!(serde_json::to_value(s).unwrap(), name);
        }
        assert_eq!(
            serde_json::to_value(AccountStatus::NeedsReauth).unwrap(),
            "needs_reauth"
        );
        assert_eq!(RunStatus::Interrupted.to_string(), "interrupted");
        assert_eq!(Kind::Contacts.to_string(), "contacts");
        assert!(RunStatus::Running == "running" && Stream::Customers != "accounts");
    }

    #[test]
    fn an_account_id_reads_and_prints_as_the_api_writes_it() {
        let id: AccountId = " 120645".parse().unwrap();
        assert_eq!(id, 120645);
        assert_eq!(id.to_string(), "120645");
        assert_eq!(serde_json::to_string(&id).unwrap(), "120645");
        assert!("-1".parse::<AccountId>().is_err());
    }
}
