//! The sync engine against the simulator and a real Postgres: the mirror must equal the simulator's
//! truth after every kind of change, fault and interruption.

mod helpers;

/// The API client's test fixtures (a counting token provider, settings), shared with the client tests.
#[path = "../client/helpers.rs"]
#[allow(dead_code)]
mod client_helpers;

mod doctor;
mod engine;
mod faults;
mod history;
mod mirror;
mod mock;
mod pii;
mod process;
mod recorded;
mod relations;
