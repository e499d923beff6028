//! The sync engine against the simulator and a real Postgres: the mirror must equal the simulator's
//! truth after every kind of change, fault and interruption.

pub mod helpers;

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
