//! Integration tests of the R-Series simulator (`lightspeed_sync::sim`), over real HTTP.

mod args;
mod auth;
mod determinism;
mod drift;
mod faults;
mod filters;
mod helpers;
mod mutations;
mod oauth;
mod pagination;
mod ratelimit;
mod relations;
mod rotation;
mod shapes;
mod throughput;
