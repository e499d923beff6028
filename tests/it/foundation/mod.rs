//! Foundation: configuration, the command line, the database schema.

mod cli;
mod config;
mod insecure_http;
mod schema;
