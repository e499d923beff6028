//! Integration tests of the Lightspeed API client (`lightspeed_sync::lightspeed`) against wiremock
//! and a raw TCP server for cut connections. Modules by concern.

pub mod helpers;

mod auth;
mod errors;
mod hostile;
mod pacing;
mod pages;
mod retries;
mod sim;
