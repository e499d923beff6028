//! Tokens: credentials at rest and the token source.

pub mod crypto;
